"""The Mermaid writer: a neutral :class:`~fsm.render.graph.Graph` as a
``stateDiagram-v2`` (GitHub renders it inline in Markdown).

Mermaid cannot colour or dash single edges, so roles become words: a forbidden
edge's label starts with ``FORBIDDEN``, edges that must never exist are listed
in notes (one per first label span), unreachable states get a dashed class. Events that
leave a state where it is are listed inside the state, side blocks become
notes, clusters become composite states, and a label's supporting detail is
left out. Grids (a trace's steps) are for DOT only.
"""

from __future__ import annotations

from collections.abc import Sequence

from fsm.render.graph import (
    Cluster,
    Edge,
    EdgeRole,
    Graph,
    Line,
    Node,
    NodeRole,
    Panel,
    SpanKind,
)

__all__ = ["text", "write"]


def text(value: str) -> str:
    """Text safe inside a Mermaid transition label or note."""
    for bad, good in ((":", " -"), (";", ","), ("#", "no."), ("{", "("), ("}", ")")):
        value = value.replace(bad, good)
    return value


def _line_text(ln: Line) -> str:
    parts = []
    for span in ln:
        if span.kind is SpanKind.detail or not span.text:
            continue
        parts.append(f"({span.text})" if span.kind is SpanKind.note else span.text)
    return text(" ".join(parts))


def _texts(lines: Sequence[Line]) -> list[str]:
    """One string per line; a line of notes only joins the line before it."""
    out: list[str] = []
    for ln in lines:
        value = _line_text(ln)
        if not value:
            continue
        if out and all(s.kind is SpanKind.note for s in ln if s.text):
            out[-1] += " " + value
        else:
            out.append(value)
    return out


def _tag(edge: Edge) -> str:
    """The first span of an edge's label: what its note is headed by."""
    return edge.label[0][0].text.rstrip(":") if edge.label and edge.label[0] else ""


def _rest(edge: Edge) -> str:
    first = edge.label[0][1:] if edge.label else ()
    return text(" ".join(s.text for s in first if s.text))


def _body(nodes: Sequence[Node], edges: Sequence[Edge], indent: str) -> list[str]:
    lines = [
        f'{indent}state "{text(n.name)}" as {n.id}' for n in nodes if n.role is not NodeRole.start
    ]
    starts = {n.id for n in nodes if n.role is NodeRole.start}
    lines += [f"{indent}[*] --> {e.target}" for e in edges if e.source in starts]
    for node in nodes:
        lines += [f"{indent}{node.id} : ↻ {t}" for t in _texts(node.loops)]
    merged: dict[tuple[str, str], list[str]] = {}
    never: dict[str, list[Edge]] = {}
    for edge in edges:
        if edge.source in starts or edge.role is EdgeRole.other:
            continue
        if edge.role is EdgeRole.must_never:
            never.setdefault(_tag(edge), []).append(edge)
            continue
        texts = _texts(edge.label)
        if texts and edge.role in (EdgeRole.forbidden, EdgeRole.taken_forbidden):
            texts[0] = "FORBIDDEN " + texts[0]
        merged.setdefault((edge.source, edge.target), []).extend(texts)
    for (source, target), texts in merged.items():
        label = f" : {'<br/>'.join(texts)}" if texts else ""
        lines.append(f"{indent}{source} --> {target}{label}")
    for tag, group in never.items():
        lines.append(f"{indent}note right of {group[0].source}")
        lines.append(f"{indent}    {text(tag)}")
        lines += [f"{indent}    {e.source} -{_rest(e)}-> {e.target}" for e in group]
        lines.append(f"{indent}end note")
    return lines


def _panel(panel: Panel, anchor: str) -> list[str]:
    return [
        f"    note left of {anchor}",
        f"        {text(panel.title)}",
        *(f"        {t}" for t in _texts(panel.lines)),
        "    end note",
    ]


def _cluster(cluster: Cluster) -> list[str]:
    return [
        f'    state "{text(cluster.title)}" as {cluster.id} {{',
        *_body(cluster.nodes, cluster.edges, "        "),
        "    }",
    ]


def write(graph: Graph) -> str:
    """``graph`` as a Mermaid ``stateDiagram-v2``."""
    lines = [
        "---",
        f"title: {text(graph.title[0])}",
        "---",
        "stateDiagram-v2",
        f"    direction {graph.direction}",
        "    classDef unreachable stroke-dasharray:5 5,color:#718096",
        *_body(graph.nodes, graph.edges, "    "),
    ]
    for cluster in graph.clusters:
        lines += _cluster(cluster)
    nodes = graph.all_nodes()
    anchor = next((n.id for n in nodes if n.initial), None)
    if anchor is not None:
        for block in graph.blocks:
            if isinstance(block, Panel):
                lines += _panel(block, anchor)
    lines += [f"    class {n.id} unreachable" for n in nodes if n.role is NodeRole.unreachable]
    return "\n".join(lines) + "\n"
