"""The machine diagram: one design's table for one machine, forbidden transitions
marked, and the design's effects outside the machines.

:func:`machine_graph` builds the neutral graph; :func:`machine_dot` and
:func:`machine_mermaid` write that one graph object. The helpers here (rows as
label lines, state nodes, the effects block) are shared with the other views.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design
from fsm.model.errors import DefinitionError, SpecError
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.tables import CONNECTION, MESSAGE, MachineSpec, Row, Table
from fsm.model.vocabulary import Hook
from fsm.render import dot, mermaid
from fsm.render.graph import Edge, EdgeRole, Graph, Line, Node, NodeRole, Panel, Span, SpanKind
from fsm.render.style import GREY, INK, MUTED, RED, RED_SOFT, Legend, Tone, short, wrap

__all__ = [
    "RANKDIR",
    "SPECS",
    "actions_text",
    "behaviour_of",
    "candidates",
    "effects_panel",
    "group",
    "machine_dot",
    "machine_graph",
    "machine_mermaid",
    "row_lines",
    "row_order",
    "row_text",
    "rule_scope",
    "rules_for",
    "state_nodes",
    "table_of",
]

SPECS: tuple[MachineSpec[Any, Any], ...] = (CONNECTION, MESSAGE)
#: Layout direction per machine: the connection machine reads best top-down.
RANKDIR: dict[str, str] = {"connection": "TB", "message": "LR"}
#: The id of the dot an initial state is entered from.
START = "__start"


# -- the model, read once -----------------------------------------------------------------
def behaviour_of(design: Design) -> Behaviour:
    """``design``'s behaviour; :class:`SpecError` naming the design if its rows clash."""
    try:
        return select_behaviour(design)
    except DefinitionError as exc:
        raise SpecError(f"design {design.name!r}: {exc}") from None


def table_of(design: Design, machine: str) -> Table[Any, Any]:
    """``design``'s table for the machine named ``machine``."""
    b = behaviour_of(design)
    return b.connection if machine == "connection" else b.message


def row_order(spec: MachineSpec[Any, Any]) -> Any:
    """A sort key for rows of ``spec``: table order, then actions."""
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


def rules_for(machine: str) -> list[ForbiddenRule]:
    return sorted((r for r in FORBIDDEN if r.machine == machine), key=lambda r: r.id)


def candidates(spec: MachineSpec[Any, Any], rule: ForbiddenRule) -> list[Row[Any, Any]]:
    """Rows of any design that ``rule`` matches, one per (source, event, target)."""
    seen: dict[tuple[Any, Any, Any], Row[Any, Any]] = {}
    for row in sorted((r for r in spec.rows if rule.matches_row(r)), key=row_order(spec)):
        seen.setdefault(row.edge, row)
    return list(seen.values())


def rule_scope(rule: ForbiddenRule) -> str:
    """When the rule applies, if not always (F1: only while the connection is stale)."""
    return f"only while the connection is {rule.scope}" if rule.scope else ""


def group(rows: Iterable[Row[Any, Any]]) -> dict[tuple[Any, Any], list[Row[Any, Any]]]:
    """Rows by (source, target), in the order given."""
    groups: dict[tuple[Any, Any], list[Row[Any, Any]]] = {}
    for row in rows:
        groups.setdefault((row.source, row.target), []).append(row)
    return groups


def reachable(table: Table[Any, Any]) -> set[Any]:
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


def named_states(*tables: Table[Any, Any]) -> list[Any]:
    """The states a row of any of ``tables`` names, or that starts one, in the machine's
    order: a state no row of a design names (``buffered`` in a design without a buffer,
    the REST states in one without REST) is not part of its drawing."""
    named = {t.initial for t in tables}
    for table in tables:
        for row in table:
            named |= {row.source, row.target}
    return [s for s in tables[0].states if s in named]


# -- labels -------------------------------------------------------------------------------
def actions_text(row: Row[Any, Any]) -> str:
    return ", ".join(a.value for a in row.actions)


def row_text(row: Row[Any, Any]) -> str:
    """``event / actions`` (just the event when the row takes no action)."""
    actions = actions_text(row)
    return f"{row.event.value} / {actions}" if actions else str(row.event.value)


def row_lines(
    rows: Sequence[Row[Any, Any]], tone: Tone | None = None, notes: bool = True
) -> list[Line]:
    """One line per row (``event / actions``), each followed by its note in italics."""
    lines: list[Line] = []
    for row in rows:
        ln: list[Span] = [Span(row.event.value, tone=tone)]
        if row.actions:
            ln.append(Span("/ " + actions_text(row), SpanKind.action))
        lines.append(tuple(ln))
        if notes and row.note:
            lines.append((Span(row.note, SpanKind.note),))
    return lines


def state_nodes(
    table: Table[Any, Any],
    loops: Mapping[Any, Sequence[Row[Any, Any]]],
    dim_unreachable: bool = True,
    loop_tone: Tone | None = None,
    states: Sequence[Any] | None = None,
) -> list[Node]:
    """A node per state of ``states`` (by default those ``table`` names, see
    :func:`named_states`; self-loop rows listed inside), then the start dot."""
    live = reachable(table) if dim_unreachable else set(table.states)
    nodes = []
    for state in named_states(table) if states is None else states:
        dim = state not in live
        nodes.append(
            Node(
                state.value,
                NodeRole.unreachable if dim else NodeRole.state,
                name=state.value,
                loops=tuple(row_lines(loops.get(state, ()), loop_tone)),
                tooltip=state.doc + (" (not reachable in this design)" if dim else ""),
                initial=state is table.initial,
            )
        )
    nodes.append(Node(START, NodeRole.start))
    return nodes


def start_edge(table: Table[Any, Any]) -> Edge:
    return Edge(START, table.initial.value, EdgeRole.start)


#: Hooks whose point every design's system has, or every design with REST: where a
#: design has no effect there, the panel says "nothing". The other hooks exist only
#: where a design has an effect there (an acknowledgement timer, a disconnect that
#: fails the attempts awaiting one).
_ALWAYS = (Hook.accept, Hook.server_receives, Hook.connection_acknowledged)
_WITH_REST = (Hook.rest_attempt_fails, Hook.rest_succeeded)


def effects_panel(b: Behaviour) -> Panel:
    """The design's effects outside the machines, one line per hook."""
    lines: list[Line] = []
    selected = {s.hook: s for s in b.effects}
    rest = any(row.target.rest_in_flight for row in b.message)
    for hook in Hook:
        chosen = selected.get(hook)
        if chosen is None:
            if hook in _ALWAYS or (rest and hook in _WITH_REST):
                lines.append((Span(f"{hook.value} / nothing", tone=Tone.muted),))
            continue
        ln: list[Span] = [Span(chosen.describe())]
        if chosen.note:
            ln.append(Span(chosen.note, SpanKind.note))
        lines.append(tuple(ln))
    return Panel("outside the machines (this design's effects, hook / actions)", tuple(lines))


def _legend(rules: Sequence[ForbiddenRule], unreachable: bool) -> list[Legend]:
    legend = [
        Legend("ring", INK, "initial state (thick border, entered from the black dot)"),
        *(
            [Legend("dashring", GREY, "a state no transition of this design leads to")]
            if unreachable
            else []
        ),
        Legend("text", MUTED, "events that leave the state where it is (self-loops)", "↻"),
        Legend("line", INK, "allowed transition: event / actions, note in italics"),
        Legend("bold", RED, "forbidden transition this design has (F-rule id and reason)"),
        Legend(
            "dashed",
            RED_SOFT,
            "✗ must never (not a transition): an F-rule edge this design does not have",
        ),
    ]
    for rule in rules:
        scope = rule_scope(rule)
        text = rule.reason + (f" ({scope})" if scope else "")
        for n, line in enumerate(wrap(text, 100)):
            legend.append(Legend("text", RED, line, rule.id if n == 0 else ""))
    return legend


def _counts(table: Table[Any, Any]) -> str:
    states = len(named_states(table))
    return f"{states} states, {len(table)} transitions; initial state {table.initial.value}"


# -- the view -----------------------------------------------------------------------------
def machine_graph(spec: MachineSpec[Any, Any], design: Design) -> Graph:
    """The design's table for one machine, with forbidden transitions marked."""
    b = behaviour_of(design)
    table = b.connection if spec.name == "connection" else b.message
    rules = rules_for(spec.name)
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
    edges = [start_edge(table)]
    for (source, target), rows in group(allowed).items():
        if source is not target:
            edges.append(Edge(source.value, target.value, EdgeRole.allowed, tuple(row_lines(rows))))
    for row in table:
        for rule in forbidden.get(row.edge, ()):
            label: list[Line] = [
                (Span(rule.id, SpanKind.tag), Span(row_text(row), SpanKind.strong))
            ]
            scope = rule_scope(rule)
            if scope:
                label.append((Span(scope, SpanKind.note, Tone.alarm),))
            label += [(Span(ln, SpanKind.detail),) for ln in wrap(short(rule.reason, 60), 34)]
            edges.append(Edge(row.source.value, row.target.value, EdgeRole.forbidden, tuple(label)))
    drawn = set(named_states(table))
    for rule in rules:
        for row in candidates(spec, rule):
            if row.edge in forbidden and rule in forbidden[row.edge]:
                continue
            if not {row.source, row.target} <= drawn:
                continue  # between states this design does not have
            when = f" (while {rule.scope})" if rule.scope else ""
            label = [
                (
                    Span(f"✗ {rule.id} must never{when}:", SpanKind.note, Tone.alarm),
                    Span(row_text(row), SpanKind.note, Tone.alarm),
                ),
            ]
            edges.append(
                Edge(row.source.value, row.target.value, EdgeRole.must_never, tuple(label))
            )
    return Graph(
        name=f"{design.name}_{spec.name}",
        title=(f"{design.name} · {spec.name} machine", design.summary, _counts(table)),
        direction="TB" if RANKDIR.get(spec.name) == "TB" else "LR",
        legend=tuple(_legend(rules, len(reachable(table) & drawn) < len(drawn))),
        blocks=(effects_panel(b),),
        nodes=tuple(state_nodes(table, loops)),
        edges=tuple(edges),
    )


def machine_dot(spec: MachineSpec[Any, Any], design: Design) -> str:
    return dot.write(machine_graph(spec, design))


def machine_mermaid(spec: MachineSpec[Any, Any], design: Design) -> str:
    """The same graph as :func:`machine_dot`'s, as a Mermaid ``stateDiagram-v2``."""
    return mermaid.write(machine_graph(spec, design))
