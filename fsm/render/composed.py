"""The composed graph: every reachable world of a design with one message.

:func:`composed` explores once and takes each world's violations from the
properties registry (:func:`fsm.analysis.properties.violating_worlds`, keyed
by property id); the diagram and the review both read the :class:`Composed`
it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsm.analysis.explore import explore
from fsm.analysis.properties import get_property, violating_worlds
from fsm.analysis.report import message_name
from fsm.analysis.system import System, World
from fsm.model.design import DEFAULT_ENVIRONMENT, Design, get_environment
from fsm.model.vocabulary import MessageState
from fsm.render import dot
from fsm.render.graph import Cluster, Edge, EdgeRole, Graph, Line, Node, NodeRole, Span, SpanKind
from fsm.render.style import (
    GREEN,
    OTHER_STIMULUS,
    STIMULUS_COLORS,
    Legend,
    violation_color,
)
from fsm.render.text import message_cell

__all__ = ["COMPOSED_ENVIRONMENT", "Composed", "composed", "composed_dot", "composed_graph"]

#: The environment of the composed one-message graph.
COMPOSED_ENVIRONMENT = DEFAULT_ENVIRONMENT


@dataclass(frozen=True)
class Composed:
    """The reachable graph of a design with one message, each world's violations named.

    ``edges`` maps (source, target) state ids to the stimuli that step between
    them; ``flags`` lists, per state, the ids of the properties it violates;
    ``properties`` is every property judged per state, in registry order.
    """

    design: Design
    environment: str
    worlds: list[World]
    edges: dict[tuple[int, int], list[str]]
    flags: list[tuple[str, ...]]
    properties: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        """For each state property, how many worlds violate it."""
        return {pid: sum(pid in f for f in self.flags) for pid in self.properties}


def composed(design: Design, environment: str = COMPOSED_ENVIRONMENT) -> Composed:
    """Explore ``design`` with one message and flag every world that violates a property."""
    system = System(design, get_environment(environment), 1)
    ex = explore(system)
    bad = violating_worlds(ex)
    edges: dict[tuple[int, int], list[str]] = {}
    for i in range(len(ex.worlds)):
        for step in ex.steps(i):
            stimulus = step.label[0]
            names = edges.setdefault((i, step.target), [])
            if stimulus.value not in names:
                names.append(stimulus.value)
    flags = [tuple(pid for pid, states in bad.items() if states[i]) for i in range(len(ex.worlds))]
    return Composed(design, environment, list(ex.worlds), edges, flags, tuple(bad))


#: A group of worlds: the connection state and the message's state (``None``: not sent).
Group = tuple[str, str | None]


def group_of(w: World) -> Group:
    """The group a world is drawn in: its connection state and its message's state."""
    m = w.messages[0]
    return (w.connection.value, None if m.state is None else m.state.value)


def _message_order(g: Group) -> int:
    return -1 if g[1] is None else [m.value for m in MessageState].index(g[1])


def _group_id(g: Group) -> str:
    return f"{g[0]}__{g[1] or 'unsent'}"


def _world_text(w: World) -> str:
    """A world's socket, app, network and message, for a tooltip."""
    m = w.messages[0]
    message = "" if m.state is None else " · " + message_cell(m.state.value, m.held, m.server)
    app = "fg" if w.foreground else "bg"
    return f"{w.socket.value} · {app} · net {'up' if w.network else 'down'}{message}"


def _group_node(g: Group, members: list[int], graph: Composed, loops: list[str]) -> Node:
    """One node per group: the message's state, how many worlds, which violate what."""
    flags = [graph.flags[i] for i in members]
    violated = tuple(pid for pid in graph.properties if any(pid in f for f in flags))
    name = f"{message_name(0)} {g[1]}" if g[1] is not None else f"{message_name(0)} not sent"
    lines: list[Line] = [(Span(f"{len(members)} world{'s' if len(members) != 1 else ''}"),)]
    for pid in violated:
        bad = sum(pid in f for f in flags)
        lines.append((Span(f"{bad} violate {pid}", SpanKind.strong),))

    worlds = [graph.worlds[i] for i in members]
    tooltip = (
        f"connection {g[0]}, {name}: {len(members)} worlds ("
        + "; ".join(_world_text(w) for w in worlds)
        + ")"
        + (f"; violates {', '.join(violated)}" if violated else "")
        + (f"; steps that stay in the group: {', '.join(loops)}" if loops else "")
    )
    return Node(
        _group_id(g),
        NodeRole.group,
        name=name,
        lines=tuple(lines),
        tooltip=tooltip,
        initial=0 in members,
        violates=violated,
        settled=g[1] is not None and all(System.settled(w) for w in worlds),
    )


def composed_graph(graph: Composed) -> Graph:
    """The reachable worlds grouped by connection state (a box each) and message state
    (a node each, counting its worlds and those that violate each property); an edge
    between two groups is labelled with the steps that lead from one to the other."""
    counts = graph.counts()
    groups: dict[Group, list[int]] = {}
    for i, w in enumerate(graph.worlds):
        groups.setdefault(group_of(w), []).append(i)
    between: dict[tuple[Group, Group], list[str]] = {}
    for (i, j), names in sorted(graph.edges.items()):
        key = (group_of(graph.worlds[i]), group_of(graph.worlds[j]))
        found = between.setdefault(key, [])
        found += [n for n in names if n not in found]
    title = (
        f"{graph.design.name} · {graph.environment} · reachable states with one message",
        f"{len(graph.worlds)} states, {len(graph.edges)} distinct transitions, drawn as "
        f"{len(groups)} groups; " + ", ".join(f"{k}: {v}" for k, v in counts.items()),
        "a row per connection state, a node per state of the message: its worlds (which differ "
        "in socket, app, network, server copies) and how many violate each property",
        "a node's fill is the first property below that one of its worlds violates; "
        "in the SVG, hover over a node for its worlds, over an edge for its steps",
    )
    legend = (
        *(
            Legend(
                "box",
                violation_color(pid),
                f"{pid}: {get_property(pid).statement}",
            )
            for pid in graph.properties
        ),
        Legend("ring", GREEN, "settled: every world has the message confirmed or visibly failed"),
        *(Legend("bold", color, f"step: {text}") for _, color, text in STIMULUS_COLORS),
        Legend("bold", OTHER_STIMULUS[0], f"step: {OTHER_STIMULUS[1]}"),
    )
    clusters = []
    outer: list[Edge] = []
    for connection in dict.fromkeys(g[0] for g in sorted(groups, key=lambda g: min(groups[g]))):
        mine = sorted((g for g in groups if g[0] == connection), key=_message_order)
        nodes = tuple(_group_node(g, groups[g], graph, between.get((g, g), [])) for g in mine)
        inner = tuple(
            Edge(
                _group_id(a),
                _group_id(b),
                EdgeRole.step,
                tuple((Span(n),) for n in names),
                tooltip=", ".join(names),
                group=names[0],
            )
            for (a, b), names in between.items()
            if a != b and a[0] == b[0] == connection
        )
        clusters.append(Cluster(connection, f"connection {connection}", nodes, inner, row=True))
    # Between rows the stimulus colour says what kind of step it is and the SVG tooltip
    # names the steps: labels there would push the rows apart.
    outer = [
        Edge(
            _group_id(a),
            _group_id(b),
            EdgeRole.step,
            tooltip=f"{a[0]} → {b[0]}: " + ", ".join(names),
            group=names[0],
        )
        for (a, b), names in between.items()
        if a[0] != b[0]
    ]
    return Graph(
        name=f"{graph.design.name}_{graph.environment}_composed",
        title=title,
        direction="TB",
        density="dense",
        legend=legend,
        edges=tuple(outer),
        clusters=tuple(clusters),
    )


def composed_dot(graph: Composed) -> str:
    return dot.write(composed_graph(graph))
