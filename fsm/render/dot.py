"""The DOT writer: a neutral :class:`~fsm.render.graph.Graph` as Graphviz source.

Roles become colours, pens and shapes here (from :mod:`fsm.render.style`);
labels become Graphviz's HTML-like labels. The output is byte-stable: it
depends on the graph only, never on the time or the Graphviz version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from fsm.render.graph import (
    Cluster,
    Edge,
    EdgeRole,
    Graph,
    Grid,
    Line,
    Node,
    NodeRole,
    Panel,
    Span,
    SpanKind,
)
from fsm.render.style import (
    AMBER,
    BLUE,
    FAINT,
    FONT,
    GREEN,
    GREY,
    INK,
    MUTED,
    OTHER_STIMULUS,
    RED,
    RED_SOFT,
    SHADE,
    STATE_FILL,
    STATE_LINE,
    STIMULUS_COLORS,
    VISITED,
    Legend,
    Tone,
    esc,
    tone_color,
    violation_color,
)

__all__ = ["label_lines", "write"]

#: The tone of an edge's text, by role.
_EDGE_TONE: dict[EdgeRole, Tone] = {
    EdgeRole.forbidden: Tone.alarm,
    EdgeRole.must_never: Tone.alarm,
    EdgeRole.taken: Tone.path,
    EdgeRole.taken_forbidden: Tone.alarm,
    EdgeRole.removed: Tone.alarm,
    EdgeRole.added: Tone.good,
    EdgeRole.changed: Tone.change,
    EdgeRole.unchanged: Tone.grey,
}

#: How an edge of each role is drawn.
_EDGE_ATTRS: dict[EdgeRole, dict[str, str]] = {
    EdgeRole.allowed: {},
    EdgeRole.forbidden: {"color": RED, "fontcolor": RED, "penwidth": "2.6"},
    # Not a transition: thin, dashed, ending in a bar (blocked), and left out of the
    # layout so that the real edges decide where the states go.
    EdgeRole.must_never: {
        "color": RED_SOFT,
        "fontcolor": RED_SOFT,
        "style": "dashed",
        "penwidth": "0.8",
        "arrowhead": "tee",
        "fontsize": "9",
        "constraint": "false",
    },
    EdgeRole.taken: {"color": BLUE, "penwidth": "2.6"},
    EdgeRole.taken_forbidden: {"color": RED, "penwidth": "2.6"},
    EdgeRole.other: {"color": FAINT, "arrowsize": "0.5"},
    EdgeRole.removed: {"color": RED, "penwidth": "2.6", "style": "dashed"},
    EdgeRole.added: {"color": GREEN, "penwidth": "2.6"},
    EdgeRole.changed: {"color": AMBER, "penwidth": "2.6"},
    EdgeRole.unchanged: {"color": "#b8c2cc", "fontcolor": "#8a94a6", "fontsize": "10"},
    EdgeRole.start: {"arrowsize": "0.7"},
    EdgeRole.step: {},
}

_SMALL = frozenset({SpanKind.action, SpanKind.note, SpanKind.detail})
_SPAN = 40
#: Characters of event and actions above which the actions get a line of their own.
_LONG = 36


# -- labels -----------------------------------------------------------------------------
def _span(span: Span, context: str | None) -> str:
    """One span as HTML-label text; ``context`` is the colour of its edge or node."""
    if span.tone is not None:
        color: str | None = tone_color(span.tone)
    elif span.kind in (SpanKind.action, SpanKind.note):
        color = MUTED
    else:
        color = context
    body = esc(span.text)
    if span.kind in (SpanKind.tag, SpanKind.strong):
        body = f"<b>{body}</b>"
    elif span.kind is SpanKind.note:
        body = f"<i>{body}</i>"
    if span.kind in _SMALL:
        return f'<font point-size="9" color="{color or MUTED}">{body}</font>'
    return f'<font color="{color}">{body}</font>' if color else body


def _plain(ln: Line) -> bool:
    return all(s.kind is SpanKind.text and s.tone is None for s in ln)


def _packed(lines: Iterable[Line]) -> list[Line]:
    """Lines laid out for a label: runs of bare events (without a note under them)
    two to a line, an event whose actions would make its line long above them."""
    out: list[Line] = []
    run: list[Line] = []

    def flush() -> None:
        for i in range(0, len(run), 2):
            out.append((Span(", ".join(s.text for ln in run[i : i + 2] for s in ln)),))
        run.clear()

    given = list(lines)
    for n, ln in enumerate(given):
        noted = n + 1 < len(given) and all(s.kind is SpanKind.note for s in given[n + 1])
        if _plain(ln) and len(ln) == 1 and not noted:
            run.append(ln)
            continue
        flush()
        actions = [s for s in ln if s.kind is SpanKind.action]
        rest = tuple(s for s in ln if s.kind is not SpanKind.action)
        if actions and rest and sum(len(s.text) for s in ln) > _LONG:
            out += [rest, tuple(actions)]
        else:
            out.append(ln)
    flush()
    return out


def label_lines(lines: Iterable[Line], context: str | None = None, pack: bool = False) -> list[str]:
    """Label lines as HTML-label text, one string per line; ``pack`` lays them out
    as a transition label (see :func:`_packed`)."""
    laid = _packed(lines) if pack else list(lines)
    return [" ".join(_span(s, context) for s in ln if s.text) for ln in laid]


def _html(rows: Sequence[str]) -> str:
    return "<" + "<br/>".join(rows) + ">"


# -- the title, legend and side blocks --------------------------------------------------
def _bar(width: int, height: int, color: str = "") -> str:
    fill = f' bgcolor="{color}"' if color else ""
    return f'<td width="{width}" height="{height}" fixedsize="true"{fill}></td>'


def _sample(item: Legend) -> str:
    if item.kind == "text":
        if not item.sample:
            return ""
        return f'<font color="{item.color}" point-size="12"><b>{esc(item.sample)}</b></font>'
    if item.kind == "stripes":
        return "".join(f'<font color="{c}" point-size="12">█</font>' for c in item.color.split(":"))
    if item.kind == "box":
        return (
            '<table border="0" cellspacing="0" cellpadding="0"><tr>'
            f'<td width="22" height="13" fixedsize="true" bgcolor="{item.color}" border="1" '
            f'color="{item.edge}"></td></tr></table>'
        )
    if item.kind in ("ring", "dashring"):
        style = ' style="dashed"' if item.kind == "dashring" else ""
        return (
            '<table border="0" cellspacing="0" cellpadding="0"><tr>'
            f'<td width="22" height="12" fixedsize="true" border="2" '
            f'color="{item.color}"{style}></td></tr></table>'
        )
    if item.kind == "dashed":
        cells = "".join(_bar(6, 2, item.color) + _bar(4, 2) for _ in range(3)) + _bar(
            6, 2, item.color
        )
    else:
        cells = _bar(36, 4 if item.kind == "bold" else 1, item.color)
    return f'<table border="0" cellspacing="0" cellpadding="0"><tr>{cells}</tr></table>'


def _panel(block: Panel) -> str:
    body = "<br/>".join(label_lines(block.lines, INK))
    return (
        '<table border="1" cellborder="0" cellspacing="0" cellpadding="3" color="#cbd5e0">'
        f'<tr><td align="left"><b>{esc(block.title)}</b></td></tr>'
        f'<tr><td align="left" balign="left">{body}</td></tr></table>'
    )


def _grid(block: Grid) -> str:
    width = len(block.headers)
    rows = ["".join(f'<td align="left"><b>{esc(h)}</b></td>' for h in block.headers)]
    remarks = dict(block.remarks)
    for n, cells in enumerate(block.rows):
        bg = f' bgcolor="{SHADE}"' if n in block.marked else ""
        rows.append("".join(f'<td align="left"{bg}>{esc(c)}</td>' for c in cells))
        if n in remarks:
            text = "<br/>".join(label_lines(remarks[n], INK))
            rows.append(f'<td align="left" balign="left" colspan="{width}"{bg}>{text}</td>')
    caption = " ".join(label_lines([block.caption], INK))
    body = "".join(f"<tr>{r}</tr>" for r in rows)
    return (
        '<table border="1" cellborder="0" cellspacing="0" cellpadding="3" color="#cbd5e0">'
        f'<tr><td align="left" colspan="{width}">{caption}</td></tr>{body}</table>'
    )


def _title(graph: Graph) -> str:
    """The graph's label: a bold title line, grey sub-lines, the legend, the side blocks."""
    head, *rest = graph.title
    title, sub, text = (40, 22, 20) if graph.big else (20, 12, 11)
    rows = [f'<tr><td align="left"><font point-size="{title}"><b>{esc(head)}</b></font></td></tr>']
    rows += [
        f'<tr><td align="left"><font point-size="{sub}" color="{MUTED}">{esc(line)}</font>'
        "</td></tr>"
        for line in rest
    ]
    if graph.legend:
        # Graphviz spreads a nested table's spare width evenly over its columns; the
        # text spans many of them so that the samples stay beside their text.
        items = "".join(
            f'<tr><td align="left" width="44" height="17" fixedsize="true">{_sample(item)}</td>'
            f'<td align="left" colspan="{_SPAN}"><font point-size="{text}">{esc(item.text)}</font>'
            "</td></tr>"
            for item in graph.legend
        )
        rows.append(
            '<tr><td align="left"><table border="0" cellborder="0" cellspacing="0" '
            f'cellpadding="2">{items}</table></td></tr>'
        )
    for block in graph.blocks:
        body = _panel(block) if isinstance(block, Panel) else _grid(block)
        rows.append(f'<tr><td align="left">{body}</td></tr>')
    return (
        '<<table border="0" cellborder="0" cellspacing="0" cellpadding="3">'
        + "".join(rows)
        + "</table>>"
    )


# -- nodes and edges --------------------------------------------------------------------
def _state_label(node: Node, color: str) -> str:
    """A state box: its name, then the events that leave it where it is (self-loops)."""
    head = f'<tr><td><font point-size="13" color="{color}">{esc(node.name)}</font></td></tr>'
    table = '<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
    if not node.loops:
        return f"{table}{head}</table>>"
    lines = "<br/>".join(label_lines(node.loops, MUTED, pack=True))
    return (
        f"{table}{head}<hr/>"
        f'<tr><td align="left" balign="left"><font point-size="9">↻ {lines}</font></td></tr>'
        "</table>>"
    )


def _node_attrs(node: Node) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if node.tooltip:
        attrs["tooltip"] = node.tooltip
    role = node.role
    if role is NodeRole.start:
        return {
            "label": "",
            "shape": "circle",
            "style": "filled",
            "fillcolor": INK,
            "width": "0.16",
        }
    if role in (NodeRole.state, NodeRole.unreachable):
        dim = role is NodeRole.unreachable
        attrs["label"] = _state_label(node, MUTED if dim else INK)
        if node.initial:
            attrs["penwidth"] = "2"
        if dim:
            attrs.update(style="rounded,dashed", color=GREY)
    elif role in (NodeRole.visited, NodeRole.unvisited):
        attrs["label"] = node.name
        if role is NodeRole.visited:
            attrs.update(fillcolor=VISITED, color=AMBER)
        else:
            attrs.update(fontcolor=MUTED, color=GREY)
        if node.last:
            attrs["penwidth"] = "3"
    else:
        head: Line = (Span(node.name, SpanKind.strong),)
        attrs["label"] = _html(label_lines([head, *node.lines]))
        colors = [violation_color(pid) for pid in node.violates]
        if role is NodeRole.group:
            # Filled with its first violation's colour; the label names each one.
            attrs["fillcolor"] = colors[0] if colors else "white"
        else:
            attrs["fillcolor"] = ":".join(colors) if colors else "white"
            if len(colors) > 1:
                attrs["style"] = "striped"
        if node.settled:
            attrs.update(color=GREEN, penwidth="2.4")
        if node.initial:
            attrs["peripheries"] = "2"
    return attrs


def _stimulus_color(group: str) -> str:
    for names, color, _ in STIMULUS_COLORS:
        if group in names:
            return color
    return OTHER_STIMULUS[0]


def _edge_attrs(edge: Edge) -> dict[str, str]:
    attrs = dict(_EDGE_ATTRS[edge.role])
    if edge.label:
        tone = _EDGE_TONE.get(edge.role, Tone.ink)
        attrs["label"] = _html(label_lines(edge.label, tone_color(tone), pack=True))
    if edge.role is EdgeRole.step:
        attrs["color"] = _stimulus_color(edge.group)
    if edge.tooltip:
        attrs["tooltip"] = edge.tooltip
    return attrs


def _add(g: Any, nodes: Sequence[Node], edges: Sequence[Edge]) -> None:
    for node in nodes:
        g.node(node.id, **_node_attrs(node))
    for edge in edges:
        g.edge(edge.source, edge.target, **_edge_attrs(edge))


def _cluster(g: Any, cluster: Cluster) -> None:
    with g.subgraph(name=f"cluster_{cluster.id}") as c:
        c.attr(
            label=f"<<b>{esc(cluster.title)}</b>>",
            style="rounded",
            color=GREY,
            fontsize="13",
            margin="14",
        )
        if cluster.row:
            c.attr(rank="same")
        _add(c, cluster.nodes, cluster.edges)


def write(graph: Graph) -> str:
    """``graph`` as DOT source."""
    import graphviz

    dense = graph.density == "dense"
    attrs = {
        "rankdir": graph.direction,
        "label": _title(graph),
        "labelloc": "t",
        "labeljust": "l",
        "fontname": FONT,
        "fontsize": "12",
        "nodesep": "0.25" if dense else "0.8",
        "ranksep": {"dense": "0.55", "trace": "0.8"}.get(
            graph.density, "1.0" if graph.direction == "LR" else "0.8"
        ),
        "pad": "0.4",
        "bgcolor": "white",
        "newrank": "true",
        "forcelabels": "true",
    }
    node_attrs = {
        "shape": "box",
        "style": "rounded,filled",
        "fontname": FONT,
        "fontsize": "10" if dense else "13",
        "fillcolor": STATE_FILL,
        "color": STATE_LINE,
        "fontcolor": INK,
        "margin": "0.08,0.04" if dense else "0.18,0.08",
    }
    edge_attrs = {
        "fontname": FONT,
        "fontsize": "11",
        "color": INK,
        "fontcolor": INK,
        "arrowsize": "0.5" if dense else "0.8",
    }
    if dense:
        edge_attrs["penwidth"] = "0.8"
    g = graphviz.Digraph(
        name=re.sub(r"\W", "_", graph.name),
        graph_attr=attrs,
        node_attr=node_attrs,
        edge_attr=edge_attrs,
    )
    _add(g, graph.nodes, graph.edges)
    for cluster in graph.clusters:
        _cluster(g, cluster)
    return str(g.source)
