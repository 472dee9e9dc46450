"""The design diff: one machine's edges, and the effects outside the machines,
removed, added, changed and kept between two designs.

Both designs are read through :func:`fsm.model.behaviour.select_behaviour`, so two
designs that behave differently always differ here, in a row or in an effect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from fsm.model.design import Design
from fsm.model.effects import Selected
from fsm.model.tables import MachineSpec, Row
from fsm.model.vocabulary import Hook
from fsm.render import dot
from fsm.render.graph import Edge, EdgeRole, Graph, Line, Panel, Span, SpanKind
from fsm.render.machine import (
    RANKDIR,
    actions_text,
    behaviour_of,
    group,
    named_states,
    row_lines,
    row_order,
    rules_for,
    start_edge,
    state_nodes,
    table_of,
)
from fsm.render.style import AMBER, GREEN, GREY, INK, MINUS, MUTED, RED, Legend, Tone

__all__ = [
    "EffectChange",
    "MachineDiff",
    "diff_dot",
    "diff_graph",
    "edge_changes",
    "effect_changes",
    "feature_changes",
    "machine_diff",
]

Change = Literal["removed", "added", "changed", "same"]


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


@dataclass(frozen=True)
class EffectChange:
    """One hook's effect in two designs; ``before``/``after`` ``None`` where it has none."""

    change: Change
    hook: Hook
    before: Selected | None
    after: Selected | None

    @staticmethod
    def text(selected: Selected | None) -> str:
        return "nothing" if selected is None else selected.describe().split(" / ", 1)[1]


def effect_changes(old: Design, new: Design) -> list[EffectChange]:
    """Each hook where either design has an effect, in hook order, with its change."""
    before = {s.hook: s for s in behaviour_of(old).effects}
    after = {s.hook: s for s in behaviour_of(new).effects}
    out = []
    for hook in Hook:
        a, b = before.get(hook), after.get(hook)
        if a is None and b is None:
            continue
        if a is None:
            change: Change = "added"
        elif b is None:
            change = "removed"
        elif (a.actions, a.param) != (b.actions, b.param):
            change = "changed"
        else:
            change = "same"
        out.append(EffectChange(change, hook, a, b))
    return out


@dataclass(frozen=True)
class MachineDiff:
    """The rows of a machine by change: removed ones from the old design, the others
    from the new one, each list in table order."""

    before: dict[tuple[Any, Any, Any], Row[Any, Any]]
    removed: list[Row[Any, Any]]
    added: list[Row[Any, Any]]
    changed: list[Row[Any, Any]]
    same: list[Row[Any, Any]]


def machine_diff(spec: MachineSpec[Any, Any], old: Design, new: Design) -> MachineDiff:
    before = {row.edge: row for row in table_of(old, spec.name)}
    after = {row.edge: row for row in table_of(new, spec.name)}
    key = row_order(spec)
    diff = MachineDiff(before, [], [], [], [])
    for edge in sorted(before.keys() | after.keys(), key=lambda e: key(before.get(e) or after[e])):
        if edge not in after:
            diff.removed.append(before[edge])
        elif edge not in before:
            diff.added.append(after[edge])
        elif before[edge].actions != after[edge].actions:
            diff.changed.append(after[edge])
        else:
            diff.same.append(after[edge])
    return diff


def edge_changes(
    spec: MachineSpec[Any, Any], old: Design, new: Design
) -> list[tuple[str, Row[Any, Any], str]]:
    """``(change, row, actions)`` for each edge removed, added or given new actions."""
    d = machine_diff(spec, old, new)
    out = [("removed", row, actions_text(row)) for row in d.removed]
    out += [("added", row, actions_text(row)) for row in d.added]
    out += [
        (
            "new actions",
            row,
            f"{actions_text(d.before[row.edge]) or 'none'} → {actions_text(row) or 'none'}",
        )
        for row in d.changed
    ]
    key = row_order(spec)
    return sorted(out, key=lambda item: key(item[1]))


def _wrapped(head: str, items: Sequence[str], width: int) -> list[str]:
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


def _counts(changes: Sequence[EffectChange]) -> str:
    n = {c: sum(e.change == c for e in changes) for c in ("removed", "added", "changed")}
    return f"{n['removed']} removed, {n['added']} added, {n['changed']} changed"


_SIGNS: dict[Change, tuple[str, Tone]] = {
    "removed": (MINUS, Tone.alarm),
    "added": ("+", Tone.good),
    "changed": ("~", Tone.change),
    "same": ("", Tone.grey),
}


def effects_panel(changes: Sequence[EffectChange]) -> Panel:
    """The effects outside the machines, each marked as removed, added, changed or kept."""
    lines: list[Line] = []
    for c in changes:
        sign, tone = _SIGNS[c.change]
        head = f"{sign} {c.hook.value}".strip()
        if c.change == "changed":
            lines.append(
                (
                    Span(head, SpanKind.tag, tone),
                    Span("/ " + EffectChange.text(c.before), tone=Tone.alarm),
                    Span("→ " + EffectChange.text(c.after), tone=Tone.good),
                )
            )
            continue
        shown = c.before if c.change == "removed" else c.after
        ln: list[Span] = [
            Span(head, SpanKind.tag if sign else SpanKind.text, tone),
            Span("/ " + EffectChange.text(shown), tone=tone),
        ]
        if shown is not None and shown.note and c.change != "same":
            ln.append(Span(shown.note, SpanKind.note))
        lines.append(tuple(ln))
    if not lines:
        lines.append((Span("neither design has any", tone=Tone.muted),))
    return Panel(f"effects outside the machines: {_counts(changes)}", tuple(lines))


def diff_graph(spec: MachineSpec[Any, Any], old: Design, new: Design) -> Graph:
    """Edges of ``spec`` removed, added, changed and kept between two designs, and
    the effects outside the machines."""
    d = machine_diff(spec, old, new)
    effects = effect_changes(old, new)
    rules = rules_for(spec.name)
    title = (
        f"{spec.name} machine: {old.name} → {new.name}",
        f"edges: {len(d.removed)} removed, {len(d.added)} added, "
        f"{len(d.changed)} with new actions, {len(d.same)} unchanged; "
        f"effects: {_counts(effects)}",
        *_wrapped("features: ", feature_changes(old, new), 110),
    )
    legend = (
        Legend("dashed", RED, f"{MINUS} removed: in {old.name}, not in {new.name}"),
        Legend("bold", GREEN, f"+ added: in {new.name}, not in {old.name}"),
        Legend("bold", AMBER, "~ same edge, different actions (before → after)"),
        Legend("line", GREY, "unchanged"),
        Legend("text", MUTED, "unchanged events that leave the state where it is", "↻"),
        Legend("text", INK, "the edge matches an F-rule (a forbidden transition)", "F2"),
    )
    loops: dict[Any, list[Row[Any, Any]]] = {}
    for row in d.same:
        if row.source is row.target:
            loops.setdefault(row.source, []).append(row)
    table = table_of(new, spec.name)

    def tag(row: Row[Any, Any]) -> str:
        hits = [rule.id for rule in rules if rule.matches_row(row)]
        return f"{' '.join(hits)} " if hits else ""

    edges = [start_edge(table)]
    for (source, target), rows in group(d.same).items():
        if source is not target:
            label = row_lines(rows, notes=False)
            edges.append(Edge(source.value, target.value, EdgeRole.unchanged, tuple(label)))
    for role, rows, sign, tone in (
        (EdgeRole.removed, d.removed, MINUS, Tone.alarm),
        (EdgeRole.added, d.added, "+", Tone.good),
    ):
        for (source, target), grouped in group(rows).items():
            label = []
            for row in grouped:
                label.append((Span(f"{sign} {tag(row)}{row.event.value}", SpanKind.tag),))
                if row.actions:
                    label.append((Span("/ " + actions_text(row), SpanKind.action, tone),))
            edges.append(Edge(source.value, target.value, role, tuple(label)))
    for (source, target), rows in group(d.changed).items():
        label = []
        for row in rows:
            was = actions_text(d.before[row.edge]) or "nothing"
            now = actions_text(row) or "nothing"
            label.append((Span(f"~ {tag(row)}{row.event.value}", SpanKind.tag),))
            label.append((Span(f"/ {was}", SpanKind.action, Tone.alarm),))
            label.append((Span(f"→ {now}", SpanKind.action, Tone.good),))
        edges.append(Edge(source.value, target.value, EdgeRole.changed, tuple(label)))
    return Graph(
        name=f"diff_{spec.name}_{old.name}_{new.name}",
        title=title,
        direction="TB" if RANKDIR.get(spec.name) == "TB" else "LR",
        legend=legend,
        blocks=(effects_panel(effects),),
        nodes=tuple(
            state_nodes(
                table,
                loops,
                dim_unreachable=False,
                states=named_states(table_of(old, spec.name), table),
            )
        ),
        edges=tuple(edges),
    )


def diff_dot(spec: MachineSpec[Any, Any], old: Design, new: Design) -> str:
    return dot.write(diff_graph(spec, old, new))
