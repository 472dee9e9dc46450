"""The counterexample diagram: a verdict's shortest trace, drawn over both machines.

Built from the typed :class:`~fsm.analysis.checker.Verdict`: each step's
:class:`~fsm.analysis.system.Fired` rows are the edges taken (with the forbidden
rules they break, :func:`~fsm.analysis.trace.broken_rules`), and the verdict's
explanation says, at the shaded last state, why it violates the property.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fsm.analysis.checker import CheckResult, Verdict
from fsm.analysis.report import message_name, reason_text
from fsm.analysis.trace import Trace, broken_rules
from fsm.model.design import Design
from fsm.model.tables import CONNECTION, MESSAGE, Row
from fsm.render import dot
from fsm.render.graph import (
    Cluster,
    Edge,
    EdgeRole,
    Graph,
    Grid,
    Line,
    Node,
    NodeRole,
    Span,
    SpanKind,
)
from fsm.render.machine import actions_text, behaviour_of, group, named_states, row_order
from fsm.render.style import AMBER, BLUE, FAINT, RED, VISITED, Legend, Tone, wrap
from fsm.render.text import trace_headers, trace_rows

__all__ = [
    "TakenEdge",
    "counterexample_dot",
    "counterexample_graph",
    "messages_in",
    "steps_grid",
    "taken_edges",
]

#: Characters per line of an explanation under the steps.
_WHY_WIDTH = 130


@dataclass(frozen=True)
class TakenEdge:
    """A table row a trace fired, with the step numbers (from 1) and the F-rules it broke.

    ``message`` is the index of the message whose machine fired it, ``None`` for
    the connection machine.
    """

    message: int | None
    row: Row[Any, Any]
    steps: tuple[int, ...]
    rules: tuple[str, ...]


def taken_edges(trace: Trace) -> list[TakenEdge]:
    """The rows each step of ``trace`` fired, merged by machine and row: the
    connection's first, then each message's, each by the step that first took it."""
    found: dict[tuple[int, Any], tuple[Row[Any, Any], list[int], set[str]]] = {}
    for n, step in enumerate(trace.steps, start=1):
        for fired in step.fired:
            machine = -1 if fired.message is None else fired.message
            _row, numbers, rules = found.setdefault(
                (machine, fired.row.edge), (fired.row, [], set())
            )
            numbers.append(n)
            rules.update(rule.id for rule in broken_rules(fired))
    keys = {"connection": row_order(CONNECTION), "message": row_order(MESSAGE)}
    ordered = sorted(
        found.items(),
        key=lambda kv: (
            kv[0][0],
            kv[1][1][0],
            keys["connection" if kv[0][0] < 0 else "message"](kv[1][0]),
        ),
    )
    return [
        TakenEdge(None if machine < 0 else machine, row, tuple(numbers), tuple(sorted(rules)))
        for (machine, _edge), (row, numbers, rules) in ordered
    ]


def messages_in(trace: Trace) -> list[int]:
    """The indexes of the messages the user sends during ``trace``."""
    worlds = trace.worlds()
    count = len(trace.start.messages)
    return [i for i in range(count) if any(w.messages[i].state is not None for w in worlds)]


def steps_grid(trace: Trace, pid: str, explanation: Sequence[str]) -> Grid:
    """The trace as a table, the violating state shaded and explained under it."""
    rows = trace_rows(trace)
    last = len(rows) - 1
    remarks: tuple[tuple[int, tuple[Line, ...]], ...] = ()
    if explanation:
        lines: list[Line] = [
            (Span(f"why this state violates {pid}:", SpanKind.strong, Tone.alarm),)
        ]
        for reason in explanation:
            for n, part in enumerate(wrap(reason, _WHY_WIDTH)):
                lines.append((Span(("• " if n == 0 else "   ") + part, tone=Tone.alarm),))
        remarks = ((last, tuple(lines)),)
    return Grid(
        caption=(
            Span("steps", SpanKind.strong),
            Span(
                "(held = in the pending-retry list; srv:N = copies on the server; "
                "the shaded row is the violating state)",
                tone=Tone.muted,
            ),
        ),
        headers=tuple(trace_headers(len(trace.start.messages))),
        rows=tuple(tuple(r) for r in rows),
        marked=frozenset({last}) if last > 0 else frozenset(),
        remarks=remarks,
    )


def _cluster(
    design: Design,
    message: int | None,
    seen: Sequence[Any],
    created: int,
    taken: Sequence[TakenEdge],
) -> Cluster:
    b = behaviour_of(design)
    table = b.connection if message is None else b.message
    prefix = "c" if message is None else message_name(message)
    final = seen[-1] if seen else None
    mine = [t for t in taken if t.message == message]
    # A step may enter a state and leave it at once (a send goes pending -> sent_ws):
    # the source of every row the trace fired is a state it passed through.
    passed = {*seen, *(t.row.source for t in mine), *(t.row.target for t in mine)}
    nodes = [
        Node(
            f"{prefix}__{state.value}",
            NodeRole.visited if state in passed else NodeRole.unvisited,
            name=state.value,
            tooltip=state.doc,
            last=state is final,
        )
        for state in named_states(table)
    ]
    nodes.append(Node(f"{prefix}__start", NodeRole.start))
    start_label: tuple[Line, ...] = ()
    if message is not None and created:
        start_label = ((Span(f"{created}: send {prefix}", SpanKind.detail, Tone.muted),),)
    edges = [
        Edge(f"{prefix}__start", f"{prefix}__{table.initial.value}", EdgeRole.start, start_label)
    ]
    used = {(t.row.source, t.row.target) for t in mine}
    for source, target in group(table):
        if (source, target) not in used:
            edges.append(
                Edge(f"{prefix}__{source.value}", f"{prefix}__{target.value}", EdgeRole.other)
            )
    for t in mine:
        numbers = ", ".join(str(n) for n in t.steps)
        label: list[Line] = [(Span(numbers, SpanKind.tag), Span(t.row.event.value))]
        if t.row.actions:
            label.append((Span("/ " + actions_text(t.row), SpanKind.action),))
        if t.rules:
            label.append((Span(" ".join(t.rules) + " forbidden", SpanKind.strong, Tone.alarm),))
        edges.append(
            Edge(
                f"{prefix}__{t.row.source.value}",
                f"{prefix}__{t.row.target.value}",
                EdgeRole.taken_forbidden if t.rules else EdgeRole.taken,
                tuple(label),
            )
        )
    title = "connection machine" if message is None else f"message {prefix}"
    return Cluster(prefix, title, tuple(nodes), tuple(edges))


def counterexample_graph(design: Design, result: CheckResult, verdict: Verdict) -> Graph:
    """The shortest trace to a violation of ``verdict``'s property, over both machines."""
    trace = verdict.trace
    if trace is None:
        raise ValueError(f"{verdict.id} holds: there is no counterexample to draw")
    env = result.environment.name
    rule = f"; forbidden transition {verdict.rule}" if verdict.rule else ""
    title = (
        f"{design.name} · {env} · counterexample: {verdict.id}",
        f"violated: {verdict.property.statement}",
        f"shortest trace: {len(trace)} steps with {result.messages} messages{rule}",
    )
    legend = (
        Legend("bold", BLUE, "taken by the numbered steps (event / actions)"),
        Legend("bold", RED, "a forbidden transition (F-rule) taken by the numbered steps"),
        Legend("box", VISITED, "a state the trace passes through", edge=AMBER),
        Legend("ring", AMBER, "the state after the last step (thick border)"),
        Legend("line", FAINT, "other transitions of the design"),
    )
    taken = taken_edges(trace)
    worlds = trace.worlds()
    clusters = []
    for message in reversed(messages_in(trace)):
        states = [w.messages[message].state for w in worlds[1:]]
        seen = [s for s in states if s is not None]
        created = next(n for n, s in enumerate(states, start=1) if s is not None)
        clusters.append(_cluster(design, message, seen, created, taken))
    clusters.append(_cluster(design, None, [w.connection for w in worlds], 0, taken))
    explanation = [reason_text(r) for r in verdict.explanation]
    return Graph(
        name=f"{design.name}_{env}_{verdict.id}",
        title=title,
        density="trace",
        legend=legend,
        blocks=(steps_grid(trace, verdict.id, explanation),),
        clusters=tuple(clusters),
    )


def counterexample_dot(design: Design, result: CheckResult, verdict: Verdict) -> str:
    return dot.write(counterexample_graph(design, result, verdict))
