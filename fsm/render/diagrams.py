"""Design-review diagrams, as Graphviz DOT (rendered to SVG and PNG) and Mermaid.

For each design: its connection and message machines with the forbidden
transitions marked, a counterexample diagram for each violated property, and
the reachable composed graph for one message. Between consecutive built-in
designs: a diff of each machine.

Every state and edge comes from a design's tables
(:meth:`fsm.model.MachineSpec.table`) or from the checker's reports; nothing
here restates the model. DOT and Mermaid output is byte-stable: everything is
sorted and nothing depends on the time or on the Graphviz version.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO, cast

from fsm.analysis.checker import check
from fsm.analysis.explorer import explore
from fsm.analysis.report import CheckReport, PropertyResult, StepView
from fsm.analysis.system import System
from fsm.model.design import DEFAULT_ENVIRONMENT, DESIGNS, ENVIRONMENTS, Design
from fsm.model.errors import DefinitionError, FsmError, SpecError
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.tables import CONNECTION, MESSAGE, MachineSpec, Row, Table
from fsm.render.text import TRACE_HEADERS, message_cell, trace_rows

if TYPE_CHECKING:
    import graphviz

__all__ = [
    "COMPOSED_ENVIRONMENT",
    "INSTALL_HINT",
    "MESSAGES",
    "SPECS",
    "Diagram",
    "OutputError",
    "RenderError",
    "Staging",
    "build",
    "compare",
    "composed",
    "composed_dot",
    "counterexample_dot",
    "diff_dot",
    "diff_pairs",
    "edge_changes",
    "feature_changes",
    "machine_dot",
    "machine_mermaid",
    "render",
    "run_checks",
]

#: Messages the checker explores for the counterexamples and the review.
MESSAGES = 2
#: The environment of the composed one-message graph.
COMPOSED_ENVIRONMENT = DEFAULT_ENVIRONMENT
#: Sub-directory of the design diffs; no design may take its name (``check_names``).
DIFF_DIR = "diff"
MINUS = "\u2212"
#: Layout direction per machine: the connection machine reads best top-down.
RANKDIR = {"connection": "TB", "message": "LR"}
#: What to tell a user without Graphviz.
INSTALL_HINT = (
    "Graphviz's dot is not on PATH, so only .dot and .mmd files were written; "
    "install Graphviz for SVG and PNG (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz)"
)

SPECS: tuple[MachineSpec[Any, Any], ...] = (CONNECTION, MESSAGE)

# -- style ------------------------------------------------------------------------------
FONT = "Helvetica"
INK = "#1a202c"
MUTED = "#5a6678"
FAINT = "#cfd6e0"
STATE_FILL = "#f4f6fa"
STATE_LINE = "#4a5568"
RED = "#c53030"
RED_SOFT = "#e57f7f"
GREEN = "#2f855a"
AMBER = "#b7791f"
BLUE = "#2b6cb0"
VISITED = "#fff3b0"
VIOLATION_COLORS: dict[str, str] = {
    "lost": "#fc8181",
    "duplicate": "#f6ad55",
    "connected-unacked": "#b794f4",
    "cannot-settle": "#a0aec0",
}
VIOLATION_TEXT: dict[str, str] = {
    "lost": "lost: the message is not on the server and no continuation delivers it or fails it",
    "duplicate": "duplicate: the server applied the message twice",
    "connected-unacked": "connected-unacked: 'connected' on a socket that is not open",
    "cannot-settle": "cannot-settle: no path left to confirmed or failed",
}
STIMULUS_COLORS: tuple[tuple[frozenset[str], str, str], ...] = (
    (frozenset({"send"}), "#2b6cb0", "the user sends"),
    (frozenset({"app_background", "app_foreground"}), "#805ad5", "app lifecycle"),
    (
        frozenset({"network_lost", "network_restored", "connection_dropped", "socket_error"}),
        "#c05621",
        "network and socket failures",
    ),
    (frozenset({"done", "rest_ok", "rest_error", "rest_lost_response"}), "#2f855a", "server"),
)
OTHER_STIMULUS = ("#718096", "connect, handshake, heartbeat")


def _esc(text: str) -> str:
    return html.escape(text, quote=False)


def _small(text: str, color: str = MUTED, size: int = 9, italic: bool = False) -> str:
    body = f"<i>{_esc(text)}</i>" if italic else _esc(text)
    return f'<font point-size="{size}" color="{color}">{body}</font>'


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _short(text: str, width: int = 48) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters."""
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0].rstrip(",;")
    return cut + "…"


def _html(rows: Iterable[str]) -> str:
    """An HTML-like Graphviz label made of lines."""
    return "<" + "<br/>".join(rows) + ">"


@dataclass(frozen=True)
class Legend:
    """One legend line: a drawn sample and what it means.

    ``kind`` is ``line``, ``bold``, ``dashed``, ``box`` (a filled square, ``edge``
    its border colour), ``ring`` (a border only) or ``text`` (``sample`` in bold).
    """

    kind: str
    color: str
    text: str
    sample: str = ""
    edge: str = STATE_LINE


def _bar(width: int, height: int, color: str = "") -> str:
    fill = f' bgcolor="{color}"' if color else ""
    return f'<td width="{width}" height="{height}" fixedsize="true"{fill}></td>'


def _sample(item: Legend) -> str:
    if item.kind == "text":
        if not item.sample:
            return ""
        return f'<font color="{item.color}" point-size="12"><b>{_esc(item.sample)}</b></font>'
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


_SPAN = 40


def _title(
    lines: Sequence[str], legend: Sequence[Legend] = (), extra: str = "", big: bool = False
) -> str:
    """A graph label: a bold title line, grey sub-lines, a legend, then ``extra``.

    ``big`` suits a large graph, whose title would otherwise look tiny beside it.
    """
    head, *rest = lines
    title, sub, text = (40, 22, 20) if big else (20, 12, 11)
    rows = [f'<tr><td align="left"><font point-size="{title}"><b>{_esc(head)}</b></font></td></tr>']
    rows += [
        f'<tr><td align="left"><font point-size="{sub}" color="{MUTED}">{_esc(line)}</font>'
        "</td></tr>"
        for line in rest
    ]
    if legend:
        # Graphviz spreads a nested table's spare width evenly over its columns; the
        # text spans many of them so that the samples stay beside their text.
        items = "".join(
            f'<tr><td align="left" width="44" height="17" fixedsize="true">{_sample(item)}</td>'
            f'<td align="left" colspan="{_SPAN}"><font point-size="{text}">{_esc(item.text)}</font>'
            "</td></tr>"
            for item in legend
        )
        rows.append(
            '<tr><td align="left"><table border="0" cellborder="0" cellspacing="0" '
            f'cellpadding="2">{items}</table></td></tr>'
        )
    if extra:
        rows.append(f'<tr><td align="left">{extra}</td></tr>')
    return (
        '<<table border="0" cellborder="0" cellspacing="0" cellpadding="3">'
        + "".join(rows)
        + "</table>>"
    )


def _digraph(name: str, label: str, rankdir: str = "LR", **graph: str) -> graphviz.Digraph:
    import graphviz

    attrs = {
        "rankdir": rankdir,
        "label": label,
        "labelloc": "t",
        "labeljust": "l",
        "fontname": FONT,
        "fontsize": "12",
        "nodesep": "0.8",
        "ranksep": "1.0" if rankdir == "LR" else "0.8",
        "pad": "0.4",
        "bgcolor": "white",
        "newrank": "true",
        "forcelabels": "true",
    }
    attrs.update(graph)
    return graphviz.Digraph(
        name=re.sub(r"\W", "_", name),
        graph_attr=attrs,
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fontname": FONT,
            "fontsize": "13",
            "fillcolor": STATE_FILL,
            "color": STATE_LINE,
            "fontcolor": INK,
            "margin": "0.18,0.08",
        },
        edge_attr={
            "fontname": FONT,
            "fontsize": "11",
            "color": INK,
            "fontcolor": INK,
            "arrowsize": "0.8",
        },
    )


def _start(g: Any, node: str, target: str, label: str = "") -> None:
    g.node(node, label="", shape="circle", style="filled", fillcolor=INK, width="0.16")
    attrs = {"arrowsize": "0.7"}
    if label:
        attrs["label"] = _html([_small(label)])
    g.edge(node, target, **attrs)


# -- rows and rules -----------------------------------------------------------------------
def _order(spec: MachineSpec[Any, Any]) -> Any:
    states: list[Any] = list(cast("Iterable[Any]", spec.states))
    events: list[Any] = list(cast("Iterable[Any]", spec.events))

    def key(row: Row[Any, Any]) -> tuple[int, int, int, tuple[str, ...]]:
        return (
            states.index(row.source),
            events.index(row.event),
            states.index(row.target),
            tuple(a.value for a in row.actions),
        )

    return key


def _table(spec: MachineSpec[Any, Any], design: Design) -> Table[Any, Any]:
    try:
        return spec.table(design)
    except DefinitionError as exc:
        raise SpecError(f"design {design.name!r}: {exc}") from None


def _rules(spec: MachineSpec[Any, Any]) -> list[ForbiddenRule]:
    return sorted((r for r in FORBIDDEN if r.machine == spec.name), key=lambda r: r.id)


def _candidates(spec: MachineSpec[Any, Any], rule: ForbiddenRule) -> list[Row[Any, Any]]:
    """Rows of any design that ``rule`` matches, one per (source, event, target)."""
    seen: dict[tuple[Any, Any, Any], Row[Any, Any]] = {}
    for row in sorted((r for r in spec.rows if rule.matches_row(r)), key=_order(spec)):
        seen.setdefault(row.edge, row)
    return list(seen.values())


def rule_scope(rule: ForbiddenRule) -> str:
    """When the rule applies, if not always (F1: only while the connection is stale)."""
    return f"only while the connection is {rule.scope}" if rule.scope else ""


def _actions(row: Row[Any, Any]) -> str:
    return ", ".join(a.value for a in row.actions)


def _row_text(row: Row[Any, Any]) -> str:
    actions = _actions(row)
    return f"{row.event.value} / {actions}" if actions else str(row.event.value)


def _row_lines(rows: Sequence[Row[Any, Any]], color: str = INK, notes: bool = True) -> list[str]:
    """Label lines for merged rows: plain events two a line, then event / actions, note."""
    lines: list[str] = []
    plain: list[str] = []

    def flush() -> None:
        for i in range(0, len(plain), 2):
            lines.append(f'<font color="{color}">{_esc(", ".join(plain[i : i + 2]))}</font>')
        plain.clear()

    for row in rows:
        actions = _actions(row)
        if not actions and not (notes and row.note):
            plain.append(row.event.value)
            continue
        flush()
        event = f'<font color="{color}">{_esc(row.event.value)}</font>'
        if actions and len(row.event.value) + len(actions) <= 34:
            lines.append(f"{event} {_small('/ ' + actions)}")
        elif actions:
            lines += [event, _small("/ " + actions)]
        else:
            lines.append(event)
        if notes and row.note:
            lines.append(_small(row.note, italic=True))
    flush()
    return lines


def _group(rows: Iterable[Row[Any, Any]]) -> dict[tuple[Any, Any], list[Row[Any, Any]]]:
    groups: dict[tuple[Any, Any], list[Row[Any, Any]]] = {}
    for row in rows:
        groups.setdefault((row.source, row.target), []).append(row)
    return groups


# -- machine diagrams --------------------------------------------------------------------
def _machine_legend(rules: Sequence[ForbiddenRule], unreachable: bool) -> list[Legend]:
    legend = [
        Legend("ring", INK, "initial state (thick border, entered from the black dot)"),
        *(
            [Legend("dashring", "#a0aec0", "a state no transition of this design leads to")]
            if unreachable
            else []
        ),
        Legend("text", MUTED, "events that leave the state where it is (self-loops)", "↻"),
        Legend("line", INK, "allowed transition: event / actions, note in italics"),
        Legend("bold", RED, "forbidden transition this design has (F-rule id and reason)"),
        Legend("dashed", RED_SOFT, "must never: an F-rule transition this design does not have"),
    ]
    for rule in rules:
        scope = rule_scope(rule)
        text = rule.reason + (f" ({scope})" if scope else "")
        for n, line in enumerate(_wrap(text, 100)):
            legend.append(Legend("text", RED, line, rule.id if n == 0 else ""))
    return legend


def _reachable(table: Table[Any, Any]) -> set[Any]:
    """States of ``table`` reachable from its initial state."""
    seen = {table.initial}
    frontier = [table.initial]
    while frontier:
        state = frontier.pop()
        for row in table:
            if row.source is state and row.target not in seen:
                seen.add(row.target)
                frontier.append(row.target)
    return seen


def _state_label(name: str, loops: Sequence[Row[Any, Any]], color: str = INK) -> str:
    """A state box: its name, then the events that leave it where it is (self-loops)."""
    head = f'<tr><td><font point-size="13" color="{color}">{_esc(name)}</font></td></tr>'
    if not loops:
        return f'<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">{head}</table>>'
    lines = "<br/>".join(_row_lines(loops, MUTED))
    return (
        '<<table border="0" cellborder="0" cellspacing="0" cellpadding="1">'
        f"{head}<hr/>"
        f'<tr><td align="left" balign="left"><font point-size="9">↻ {lines}</font></td></tr>'
        "</table>>"
    )


def _state_nodes(
    g: Any,
    table: Table[Any, Any],
    loops: Mapping[Any, Sequence[Row[Any, Any]]],
    dim_unreachable: bool = True,
) -> None:
    reachable = _reachable(table) if dim_unreachable else set(table.states)
    for state in table.states:
        attrs = {"tooltip": state.doc}
        color = INK
        if state is table.initial:
            attrs["penwidth"] = "2"
        if state not in reachable:
            color = MUTED
            attrs.update(style="rounded,dashed", color="#a0aec0")
            attrs["tooltip"] += " (not reachable in this design)"
        g.node(state.value, label=_state_label(state.value, loops.get(state, ()), color), **attrs)
    _start(g, "__start", table.initial.value)


def machine_dot(spec: MachineSpec[Any, Any], design: Design) -> str:
    """The design's table for one machine, with forbidden transitions marked."""
    table = _table(spec, design)
    rules = _rules(spec)
    g = _digraph(
        f"{design.name}_{spec.name}",
        _title(
            [f"{design.name} · {spec.name} machine", design.summary, _counts(table)],
            _machine_legend(rules, len(_reachable(table)) < len(table.states)),
        ),
        RANKDIR.get(spec.name, "LR"),
    )
    forbidden: dict[tuple[Any, Any, Any], list[ForbiddenRule]] = {}
    for row in table:
        hits = [rule for rule in rules if rule.matches_row(row)]
        if hits:
            forbidden[row.edge] = hits
    allowed = [row for row in table if row.edge not in forbidden]
    loops: dict[Any, list[Row[Any, Any]]] = {}
    for row in allowed:
        if row.source is row.target:
            loops.setdefault(row.source, []).append(row)
    _state_nodes(g, table, loops)
    for (source, target), rows in _group(allowed).items():
        if source is not target:
            g.edge(source.value, target.value, label=_html(_row_lines(rows)))
    for row in table:
        broken = forbidden.get(row.edge)
        if not broken:
            continue
        lines = []
        for rule in broken:
            scope = rule_scope(rule)
            lines.append(
                f'<font color="{RED}"><b>{_esc(rule.id)}  {_esc(_row_text(row))}</b></font>'
            )
            if scope:
                lines.append(_small(scope, RED, italic=True))
            lines += [_small(line, RED) for line in _wrap(_short(rule.reason, 60), 34)]
        g.edge(
            row.source.value,
            row.target.value,
            label=_html(lines),
            color=RED,
            fontcolor=RED,
            penwidth="2.6",
        )
    for rule in rules:
        for row in _candidates(spec, rule):
            if row.edge in forbidden and rule in forbidden[row.edge]:
                continue
            when = f" (while {rule.scope})" if rule.scope else ""
            lines = [
                f'<font color="{RED}">{_esc(rule.id)} must never{_esc(when)}: '
                f"{_esc(_row_text(row))}</font>"
            ]
            g.edge(
                row.source.value,
                row.target.value,
                label=_html(lines),
                color=RED_SOFT,
                fontcolor=RED,
                style="dashed",
            )
    return str(g.source)


def _counts(table: Table[Any, Any]) -> str:
    return (
        f"{len(table.states)} states, {len(table)} transitions; initial state {table.initial.value}"
    )


def _mermaid_text(text: str) -> str:
    """Text safe inside a Mermaid transition label or note."""
    for bad, good in ((":", " -"), (";", ","), ("#", "no."), ("{", "("), ("}", ")")):
        text = text.replace(bad, good)
    return text


def machine_mermaid(spec: MachineSpec[Any, Any], design: Design) -> str:
    """The same machine as a Mermaid ``stateDiagram-v2`` (GitHub renders it inline).

    Mermaid cannot colour single edges, so a forbidden edge says so in its label;
    events that leave a state where it is are listed inside the state.
    """
    table = _table(spec, design)
    rules = _rules(spec)
    lines = [
        "---",
        f"title: {_mermaid_text(f'{design.name} · {spec.name} machine')}",
        "---",
        "stateDiagram-v2",
        f"    direction {RANKDIR.get(spec.name, 'LR')}",
        "    classDef unreachable stroke-dasharray:5 5,color:#718096",
        *(f'    state "{state.value}" as {state.value}' for state in table.states),
        f"    [*] --> {table.initial.value}",
    ]
    for (source, target), rows in _group(table).items():
        labels = []
        for row in rows:
            hits = [rule.id for rule in rules if rule.matches_row(row)]
            text = _row_text(row)
            if hits:
                scopes = [rule_scope(r) for r in rules if r.id in hits and rule_scope(r)]
                scope = f" ({'; '.join(scopes)})" if scopes else ""
                text = f"FORBIDDEN {' '.join(hits)}{scope} - {text}"
            elif source is target:
                lines.append(f"    {source.value} : ↻ {_mermaid_text(text)}")
                continue
            labels.append(_mermaid_text(text))
        if labels:
            lines.append(f"    {source.value} --> {target.value} : {'<br/>'.join(labels)}")
    for rule in rules:
        respected = [
            row
            for row in _candidates(spec, rule)
            if not any(rule.matches_row(r) and r.edge == row.edge for r in table)
        ]
        if not respected:
            continue
        scope = rule_scope(rule)
        lines.append(f"    note right of {respected[0].source.value}")
        lines.append(f"        {rule.id} must never{' (' + scope + ')' if scope else ''}")
        for row in respected:
            edge = f"{row.source.value} -{_row_text(row)}-> {row.target.value}"
            lines.append("        " + _mermaid_text(edge))
        lines.append("    end note")
    reachable = _reachable(table)
    lines += [f"    class {s.value} unreachable" for s in table.states if s not in reachable]
    return "\n".join(lines) + "\n"


# -- counterexamples ------------------------------------------------------------------
def _lookup(spec: MachineSpec[Any, Any], table: Table[Any, Any], source: str, event: str) -> Any:
    return table.rows[(spec.states(source), spec.events(event))]


@dataclass(frozen=True)
class TakenEdge:
    """A table edge a trace took, with the step numbers and any F-rules it broke."""

    machine: str
    source: str
    event: str
    target: str
    actions: str
    steps: tuple[int, ...]
    rules: tuple[str, ...]


def taken_edges(design: Design, steps: Sequence[StepView]) -> list[TakenEdge]:
    """Which machine edges each step of ``steps`` fired, merged by edge."""
    tables = {spec.name: _table(spec, design) for spec in SPECS}
    found: dict[tuple[str, str, str, str], tuple[list[int], set[str], str]] = {}
    connection = CONNECTION.initial
    for n, step in enumerate(steps, start=1):
        for fired in step.fired:
            spec = CONNECTION if fired.machine == "connection" else MESSAGE
            row = _lookup(spec, tables[spec.name], fired.source, fired.event)
            hits = {r.id for r in _rules(spec) if r.matches_step(row, connection)}
            key = (fired.machine, fired.source, fired.event, fired.target)
            numbers, rules, _ = found.setdefault(key, ([], set(), _actions(row)))
            numbers.append(n)
            rules.update(hits)
            if spec is CONNECTION:
                connection = row.target
    machines = ["connection", *sorted({k[0] for k in found} - {"connection"}, key=_mkey)]
    return [
        TakenEdge(*key, actions, tuple(numbers), tuple(sorted(rules)))
        for key, (numbers, rules, actions) in sorted(
            found.items(), key=lambda kv: (machines.index(kv[0][0]), kv[1][0][0], kv[0])
        )
    ]


def _mkey(machine: str) -> tuple[int, str]:
    return (int(machine[1:]), machine) if machine[1:].isdigit() else (0, machine)


def _messages_in(steps: Sequence[StepView]) -> list[str]:
    ids = {m.id for s in steps for m in s.messages if m.state != "-"}
    return sorted(ids, key=_mkey)


def _step_rows(design: Design, steps: Sequence[StepView], messages: int) -> str:
    header = [*TRACE_HEADERS, *(f"m{i + 1}" for i in range(messages))]
    cells = ["".join(f'<td align="left"><b>{_esc(h)}</b></td>' for h in header)]
    rows = trace_rows(steps, messages)
    for n, row in enumerate(rows):
        bg = ' bgcolor="#fed7d7"' if n == len(rows) - 1 and n > 0 else ""
        cells.append("".join(f'<td align="left"{bg}>{_esc(c)}</td>' for c in row))
    body = "".join(f"<tr>{c}</tr>" for c in cells)
    return (
        '<table border="1" cellborder="0" cellspacing="0" cellpadding="3" color="#cbd5e0">'
        f'<tr><td align="left" colspan="{len(header)}"><b>steps</b> '
        f'<font color="{MUTED}">(held = in the pending-retry list; srv:N = copies on the '
        f"server; the shaded row is the violating state)</font></td></tr>"
        f"{body}</table>"
    )


def counterexample_dot(design: Design, report: CheckReport, prop: PropertyResult) -> str:
    """The shortest trace to a violation of ``prop``, drawn over both machines."""
    steps = prop.counterexample or []
    taken = taken_edges(design, steps)
    rule = f"; forbidden transition {prop.rule}" if prop.rule else ""
    title = [
        f"{design.name} · {report.environment} · counterexample: {prop.id}",
        f"violated: {prop.statement}",
        f"shortest trace: {len(steps)} steps with {report.messages} messages{rule}",
    ]
    legend = [
        Legend("bold", BLUE, "taken by the numbered steps (event / actions)"),
        Legend("bold", RED, "a forbidden transition (F-rule) taken by the numbered steps"),
        Legend("box", VISITED, "a state the trace passes through", edge=AMBER),
        Legend("ring", AMBER, "the state after the last step (thick border)"),
        Legend("line", FAINT, "other transitions of the design"),
    ]
    g = _digraph(
        f"{design.name}_{report.environment}_{prop.id}",
        _title(title, legend, _step_rows(design, steps, report.messages)),
        ranksep="0.8",
    )
    machines: list[tuple[str, str, MachineSpec[Any, Any]]] = [
        ("connection", "c", CONNECTION),
        *((m, m, MESSAGE) for m in _messages_in(steps)),
    ]
    start = CONNECTION.initial.value
    visited: dict[str, list[str]] = {"connection": [start, *(s.connection for s in steps)]}
    created: dict[str, int] = {}
    for n, s in enumerate(steps, start=1):
        for m in s.messages:
            if m.state != "-":
                visited.setdefault(m.id, []).append(m.state)
                created.setdefault(m.id, n)
    for machine, prefix, spec in reversed(machines):
        table = _table(spec, design)
        seen = visited.get(machine, [])
        final = seen[-1] if seen else None
        title_text = "connection machine" if machine == "connection" else f"message {machine}"
        with g.subgraph(name=f"cluster_{prefix}") as c:
            c.attr(
                label=f"<<b>{_esc(title_text)}</b>>",
                style="rounded",
                color="#a0aec0",
                fontsize="13",
                margin="14",
            )
            for state in table.states:
                attrs = {"tooltip": state.doc}
                if state.value in seen:
                    attrs["fillcolor"] = VISITED
                    attrs["color"] = "#b7791f"
                else:
                    attrs["fontcolor"] = MUTED
                    attrs["color"] = "#a0aec0"
                if state.value == final:
                    attrs["penwidth"] = "3"
                c.node(f"{prefix}__{state.value}", label=state.value, **attrs)
            if machine == "connection":
                _start(c, f"{prefix}__start", f"{prefix}__{table.initial.value}")
            else:
                step = created.get(machine, 0)
                label = f"{step}: send {machine}" if step else ""
                _start(c, f"{prefix}__start", f"{prefix}__{table.initial.value}", label)
            mine = [t for t in taken if t.machine == machine]
            used = {(t.source, t.target) for t in mine}
            for (source, target), _rows in _group(table).items():
                if (source.value, target.value) in used:
                    continue
                c.edge(
                    f"{prefix}__{source.value}",
                    f"{prefix}__{target.value}",
                    color=FAINT,
                    arrowsize="0.5",
                )
            for t in mine:
                color = RED if t.rules else BLUE
                numbers = ", ".join(str(n) for n in t.steps)
                lines = [f'<font color="{color}"><b>{numbers}</b>  {_esc(t.event)}</font>']
                if t.actions:
                    lines.append(_small("/ " + t.actions))
                if t.rules:
                    lines.append(
                        f'<font color="{RED}"><b>{_esc(" ".join(t.rules))} forbidden</b></font>'
                    )
                c.edge(
                    f"{prefix}__{t.source}",
                    f"{prefix}__{t.target}",
                    label=_html(lines),
                    color=color,
                    penwidth="2.6",
                )
    return str(g.source)


# -- design diffs ---------------------------------------------------------------------
def feature_changes(old: Design, new: Design) -> list[str]:
    """The features that differ: ``+name`` switched on, ``-name`` off, else ``name: a → b``."""
    before, after = old.features(), new.features()
    changes = []
    for name, value in before.items():
        if after[name] == value:
            continue
        if isinstance(value, bool):
            changes.append(f"{'+' if after[name] else '-'}{name}")
        else:
            changes.append(f"{name}: {value} → {after[name]}")
    return changes


def _lines(head: str, items: Sequence[str], width: int) -> list[str]:
    """``head`` and ``items`` joined by commas, wrapped between items."""
    lines: list[str] = []
    line = head
    for n, item in enumerate(items):
        text = item + ("," if n < len(items) - 1 else "")
        if line.strip() and len(line) + len(text) + 1 > width:
            lines.append(line.rstrip())
            line = "    "
        line += text + " "
    lines.append(line.rstrip())
    return lines


def _diff(spec: MachineSpec[Any, Any], old: Design, new: Design) -> dict[str, list[Row[Any, Any]]]:
    """The rows of ``new`` (of ``old`` for removed ones) by change, in table order."""
    before = {row.edge: row for row in _table(spec, old)}
    after = {row.edge: row for row in _table(spec, new)}
    key = _order(spec)
    status: dict[str, list[Row[Any, Any]]] = {"removed": [], "added": [], "changed": [], "same": []}
    for edge in sorted(before.keys() | after.keys(), key=lambda e: key(before.get(e) or after[e])):
        if edge not in after:
            status["removed"].append(before[edge])
        elif edge not in before:
            status["added"].append(after[edge])
        elif before[edge].actions != after[edge].actions:
            status["changed"].append(after[edge])
        else:
            status["same"].append(after[edge])
    return status


def edge_changes(
    spec: MachineSpec[Any, Any], old: Design, new: Design
) -> list[tuple[str, Row[Any, Any], str]]:
    """``(change, row, actions)`` for each edge removed, added or given new actions."""
    before = {row.edge: row for row in _table(spec, old)}
    status = _diff(spec, old, new)
    out = [("removed", row, _actions(row)) for row in status["removed"]]
    out += [("added", row, _actions(row)) for row in status["added"]]
    out += [
        ("new actions", row, f"{_actions(before[row.edge]) or 'none'} → {_actions(row) or 'none'}")
        for row in status["changed"]
    ]
    key = _order(spec)
    return sorted(out, key=lambda item: key(item[1]))


def diff_dot(spec: MachineSpec[Any, Any], old: Design, new: Design) -> str:
    """Edges of ``spec`` removed, added, changed and kept between two designs."""
    before = {row.edge: row for row in _table(spec, old)}
    status = _diff(spec, old, new)
    rules = _rules(spec)
    title = [
        f"{spec.name} machine: {old.name} → {new.name}",
        f"{len(status['removed'])} removed, {len(status['added'])} added, "
        f"{len(status['changed'])} with new actions, {len(status['same'])} unchanged",
        *_lines("features: ", feature_changes(old, new), 110),
    ]
    legend = [
        Legend("dashed", RED, f"{MINUS} removed: in {old.name}, not in {new.name}"),
        Legend("bold", GREEN, f"+ added: in {new.name}, not in {old.name}"),
        Legend("bold", AMBER, "~ same edge, different actions (before → after)"),
        Legend("line", "#a0aec0", "unchanged"),
        Legend("text", MUTED, "unchanged events that leave the state where it is", "↻"),
        Legend("text", INK, "the edge matches an F-rule (a forbidden transition)", "F2"),
    ]
    g = _digraph(
        f"diff_{spec.name}_{old.name}_{new.name}",
        _title(title, legend),
        RANKDIR.get(spec.name, "LR"),
    )
    loops: dict[Any, list[Row[Any, Any]]] = {}
    for row in status["same"]:
        if row.source is row.target:
            loops.setdefault(row.source, []).append(row)
    _state_nodes(g, _table(spec, new), loops, dim_unreachable=False)

    def tag(row: Row[Any, Any]) -> str:
        hits = [rule.id for rule in rules if rule.matches_row(row)]
        return f"{' '.join(hits)} " if hits else ""

    for (source, target), rows in _group(status["same"]).items():
        if source is target:
            continue
        g.edge(
            source.value,
            target.value,
            label=_html(_row_lines(rows, "#8a94a6", notes=False)),
            color="#b8c2cc",
            fontcolor="#8a94a6",
            fontsize="10",
        )
    styles = {"removed": (RED, MINUS), "added": (GREEN, "+")}
    for name, (color, sign) in styles.items():
        for (source, target), rows in _group(status[name]).items():
            lines = []
            for row in rows:
                lines.append(
                    f'<font color="{color}"><b>{sign} {_esc(tag(row) + row.event.value)}</b></font>'
                )
                if row.actions:
                    lines.append(_small("/ " + _actions(row), color))
            g.edge(
                source.value,
                target.value,
                label=_html(lines),
                color=color,
                penwidth="2.6",
                style="dashed" if name == "removed" else "solid",
            )
    for (source, target), rows in _group(status["changed"]).items():
        lines = []
        for row in rows:
            was = _actions(before[row.edge]) or "nothing"
            now = _actions(row) or "nothing"
            lines.append(
                f'<font color="{AMBER}"><b>~ {_esc(tag(row) + row.event.value)}</b></font>'
            )
            lines += [_small(f"/ {was}", RED), _small(f"→ {now}", GREEN)]
        g.edge(source.value, target.value, label=_html(lines), color=AMBER, penwidth="2.6")
    return str(g.source)


# -- the composed graph -----------------------------------------------------------------
def _stimulus_color(name: str) -> str:
    for names, color, _ in STIMULUS_COLORS:
        if name in names:
            return color
    return OTHER_STIMULUS[0]


@dataclass(frozen=True)
class Composed:
    """The reachable graph of a design with one message, each world's violations named."""

    worlds: list[Any]
    edges: dict[tuple[int, int], list[str]]
    flags: list[list[str]]

    def counts(self) -> dict[str, int]:
        return {k: sum(k in f for f in self.flags) for k in VIOLATION_COLORS}


def composed(design: Design, environment: str = COMPOSED_ENVIRONMENT) -> Composed:
    """Explore ``design`` with one message and flag every world that breaks a property."""
    system = System(design, ENVIRONMENTS[environment], 1)
    ex = explore(system)
    worlds = ex.worlds
    index = {w: i for i, w in enumerate(worlds)}
    settles = ex.can_settle()
    lost = ex.lost_messages()
    edges: dict[tuple[int, int], list[str]] = {}
    for i, world in enumerate(worlds):
        for t in system.successors(world):
            j = index[System.canonical(t.target)]
            names = edges.setdefault((i, j), [])
            if t.stimulus.value not in names:
                names.append(t.stimulus.value)
    flags: list[list[str]] = []
    for i, w in enumerate(worlds):
        f = []
        if lost[i]:
            f.append("lost")
        if System.duplicated(w):
            f.append("duplicate")
        if System.connected_unacked(w):
            f.append("connected-unacked")
        if not settles[i]:
            f.append("cannot-settle")
        flags.append(f)
    return Composed(worlds, edges, flags)


def composed_dot(design: Design, environment: str = COMPOSED_ENVIRONMENT) -> str:
    """Every reachable world of the design with one message, violations coloured."""
    graph = composed(design, environment)
    worlds, edges, flags = graph.worlds, graph.edges, graph.flags
    counts = graph.counts()
    title = [
        f"{design.name} · {environment} · reachable states with one message",
        f"{len(worlds)} states, {len(edges)} distinct transitions; "
        + ", ".join(f"{k}: {v}" for k, v in counts.items()),
        "each world: connection state / socket · app · network / the message "
        "(held = in the pending-retry list, srv:N = copies on the server)",
    ]
    legend = [
        *(Legend("box", VIOLATION_COLORS[k], VIOLATION_TEXT[k]) for k in VIOLATION_COLORS),
        Legend(
            "stripes",
            f"{VIOLATION_COLORS['lost']}:{VIOLATION_COLORS['cannot-settle']}",
            "striped: several of the above",
        ),
        Legend("ring", GREEN, "settled: the message was sent and is confirmed or visibly failed"),
        *(Legend("bold", color, f"step: {text}") for _, color, text in STIMULUS_COLORS),
        Legend("bold", OTHER_STIMULUS[0], f"step: {OTHER_STIMULUS[1]}"),
    ]
    g = _digraph(
        f"{design.name}_{environment}_composed",
        _title(title, legend, big=True),
        rankdir="TB",
        nodesep="0.25",
        ranksep="0.55",
    )
    g.attr("node", fontsize="10", margin="0.08,0.04")
    g.attr("edge", arrowsize="0.5", penwidth="0.8")
    for i, w in enumerate(worlds):
        g.node(f"w{i}", **_world_attrs(i, w, flags[i]))
    for (i, j), names in sorted(edges.items()):
        g.edge(f"w{i}", f"w{j}", color=_stimulus_color(names[0]), tooltip=", ".join(names))
    return str(g.source)


def _world_attrs(i: int, w: Any, flags: Sequence[str]) -> dict[str, str]:
    m = w.messages[0]
    msg = (
        "m1 not sent" if m.state is None else "m1 " + message_cell(m.state.value, m.held, m.server)
    )
    app = "fg" if w.foreground else "bg"
    net = "up" if w.network else "down"
    attrs = {
        "label": _html(
            [
                f"<b>{_esc(w.connection.value)}</b>",
                _esc(f"{w.socket.value} · {app} · net {net}"),
                _esc(msg),
            ]
        ),
        "tooltip": f"state {i}: {w.connection.value}; " + (", ".join(flags) or "no violation"),
        "fillcolor": "white",
    }
    colors = [VIOLATION_COLORS[k] for k in flags]
    if len(colors) == 1:
        attrs["fillcolor"] = colors[0]
    elif colors:
        attrs["fillcolor"] = ":".join(colors)
        attrs["style"] = "striped"
    if m.state is not None and System.settled(w):
        attrs["color"] = GREEN
        attrs["penwidth"] = "2.4"
    if i == 0:
        attrs["peripheries"] = "2"
    return attrs


# -- the set of diagrams ------------------------------------------------------------------
@dataclass(frozen=True)
class Diagram:
    """One diagram: ``path`` is its file name without extension, relative to the output."""

    path: str
    kind: str
    title: str
    dot: str
    mermaid: str | None = None

    def sources(self) -> dict[str, str]:
        files = {f"{self.path}.dot": self.dot}
        if self.mermaid is not None:
            files[f"{self.path}.mmd"] = self.mermaid
        return files


def run_checks(designs: Sequence[Design]) -> dict[tuple[str, str], CheckReport]:
    """Check every design in every built-in environment."""
    return {
        (d.name, env): check(d, ENVIRONMENTS[env], MESSAGES).report()
        for d in designs
        for env in ENVIRONMENTS
    }


def check_names(designs: Sequence[Design]) -> None:
    """Refuse designs whose names would overwrite another design's diagrams."""
    seen: dict[str, Design] = {}
    for d in designs:
        if d.name == DIFF_DIR:
            raise SpecError(f"design name {d.name!r} is reserved for the design diffs; rename it")
        if d.name in seen and seen[d.name] != d:
            raise SpecError(f"two different designs are named {d.name!r}; rename one")
        if d.name in DESIGNS and DESIGNS[d.name] != d:
            raise SpecError(f"design name {d.name!r} is a built-in design's; rename it")
        seen[d.name] = d


def diff_pairs(designs: Sequence[Design]) -> list[tuple[Design, Design]]:
    """Consecutive built-in designs among ``designs``, and each other design against
    the built-in it differs least from."""
    builtins = list(DESIGNS.values())
    names = {d.name for d in designs}
    pairs = [(a, b) for a, b in pairwise(builtins) if a.name in names or b.name in names]
    for d in designs:
        if d.name in DESIGNS:
            continue
        base = min(
            builtins, key=lambda b: sum(b.features()[k] != v for k, v in d.features().items())
        )
        pairs.append((base, d))
    return pairs


def build(
    designs: Sequence[Design], reports: Mapping[tuple[str, str], CheckReport]
) -> list[Diagram]:
    """Every diagram for ``designs`` (reports from :func:`run_checks`), in a stable order."""
    out: list[Diagram] = []
    for d in designs:
        for spec in SPECS:
            out.append(
                Diagram(
                    f"{d.name}/{spec.name}",
                    "machine",
                    f"{d.name}: {spec.name} machine",
                    machine_dot(spec, d),
                    machine_mermaid(spec, d),
                )
            )
        for env in ENVIRONMENTS:
            report = reports[(d.name, env)]
            for prop in report.properties:
                if prop.holds or not prop.counterexample:
                    continue
                out.append(
                    Diagram(
                        counterexample_path(d.name, env, prop.id),
                        "counterexample",
                        f"{d.name} in {env}: {prop.id}",
                        counterexample_dot(d, report, prop),
                    )
                )
        out.append(
            Diagram(
                composed_path(d.name),
                "composed",
                f"{d.name}: reachable states with one message ({COMPOSED_ENVIRONMENT})",
                composed_dot(d),
            )
        )
    for old, new in diff_pairs(designs):
        for spec in SPECS:
            out.append(
                Diagram(
                    diff_path(spec.name, old.name, new.name),
                    "diff",
                    f"{spec.name} machine: {old.name} → {new.name}",
                    diff_dot(spec, old, new),
                )
            )
    return out


def counterexample_path(design: str, environment: str, prop: str) -> str:
    return f"{design}/counterexample-{environment}-{prop}"


def composed_path(design: str) -> str:
    return f"{design}/composed-{COMPOSED_ENVIRONMENT}"


def diff_path(machine: str, old: str, new: str) -> str:
    return f"{DIFF_DIR}/{machine}-{old}-to-{new}"


def complete_dirs(designs: Sequence[Design]) -> list[str]:
    """Sub-directories whose every diagram ``build(designs)`` produces."""
    dirs = [d.name for d in designs]
    if all(name in {d.name for d in designs} for name in DESIGNS):
        dirs.append(DIFF_DIR)
    return sorted(dirs)


# -- comparing and writing ---------------------------------------------------------------
SOURCE_SUFFIXES = (".dot", ".mmd")


def compare(diagrams: Sequence[Diagram], out: Path, dirs: Sequence[str] = ()) -> list[str]:
    """Problems of the ``.dot``/``.mmd`` files in ``out``: ``stale: ...``, ``missing: ...``,
    and ``obsolete: ...`` for sources in ``dirs`` that nothing generates any more."""
    expected: dict[str, str] = {}
    for d in diagrams:
        expected.update(d.sources())
    problems: list[str] = []
    for rel, text in sorted(expected.items()):
        path = out / rel
        try:
            current = path.read_bytes()
        except OSError:
            problems.append(f"missing: {path}")
            continue
        if current != text.encode("utf-8"):
            problems.append(f"stale: {path}")
    for sub in dirs:
        for path in sorted((out / sub).glob("*")):
            rel = f"{sub}/{path.name}"
            if path.suffix in SOURCE_SUFFIXES and rel not in expected:
                problems.append(f"obsolete: {path}")
    return problems


class RenderError(FsmError):
    """Graphviz's dot refused a generated diagram."""


class OutputError(FsmError):
    """The output directory cannot be written."""


def _dot_binary() -> str | None:
    return shutil.which("dot")


def render(diagrams: Sequence[Diagram], root: Path, err: TextIO | None = None) -> bool:
    """Render each diagram's ``.dot`` under ``root`` to SVG and PNG with Graphviz.

    Without ``dot`` on PATH, say how to install it on ``err`` and return False.
    """
    dot = _dot_binary()
    if dot is None:
        print(f"fsm: {INSTALL_HINT}", file=sys.stderr if err is None else err)
        return False
    jobs = [
        (root / f"{d.path}.dot", fmt, extra)
        for d in diagrams
        for fmt, extra in (("svg", ()), ("png", ("-Gdpi=110",)))
    ]

    def one(job: tuple[Path, str, tuple[str, ...]]) -> None:
        src, fmt, extra = job
        target = src.with_suffix(f".{fmt}")
        proc = subprocess.run(
            [dot, f"-T{fmt}", *extra, "-o", str(target), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            message = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
            raise RenderError(f"dot failed on {src.relative_to(root)}: {message}")

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(one, jobs))
    return True


class Staging:
    """A temporary directory beside ``out``; :meth:`commit` moves its files into ``out``.

    Files are swapped in one by one with :func:`os.replace` (atomic on one file
    system), the report pages last, so an interrupted run leaves the previous
    files intact. On leaving the ``with`` block the temporary directory is removed.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = Path()

    def __enter__(self) -> Staging:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            parent = self.out.resolve().parent
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.out.resolve().name}-", dir=parent))
        except OSError as exc:
            raise OutputError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def write(self, rel: str, data: str | bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def write_sources(self, diagrams: Sequence[Diagram]) -> None:
        for d in diagrams:
            for rel, text in d.sources().items():
                self.write(rel, text)

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def commit(self, prune: Sequence[str] = (), last: Sequence[str] = ()) -> list[str]:
        """Move every staged file into ``out`` (``last`` ones at the end), then delete
        generated files in the ``prune`` sub-directories that were not staged."""
        files = self.files()
        order = [f for f in files if f not in last] + [f for f in last if f in files]
        for rel in order:
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / rel, target)
        kinds = {Path(f).suffix for f in files}
        staged = set(files)
        for sub in prune:
            for path in sorted((self.out / sub).glob("*")):
                rel = f"{sub}/{path.name}"
                if path.is_file() and path.suffix in kinds and rel not in staged:
                    path.unlink()
        return order


def svg_of(root: Path, diagram: Diagram) -> str | None:
    """The rendered SVG of ``diagram`` under ``root``, if there is one."""
    path = root / f"{diagram.path}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
