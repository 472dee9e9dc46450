"""The composed graph: every reachable world of a design with one message.

:func:`composed` explores once and takes each world's violations from the
properties registry (:func:`fsm.analysis.properties.violating_worlds`, keyed
by property id); the diagram and the review both read the :class:`Composed`
it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsm.analysis.explorer import explore
from fsm.analysis.properties import get_property, violating_worlds
from fsm.analysis.report import message_name
from fsm.analysis.system import System, World
from fsm.model.design import DEFAULT_ENVIRONMENT, Design, get_environment
from fsm.render import dot
from fsm.render.graph import Edge, EdgeRole, Graph, Line, Node, NodeRole, Span
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
    for i, world in enumerate(ex.worlds):
        steps = system.successors(world, up_to_symmetry=True)
        for step, j in zip(steps, ex.successors[i], strict=True):
            names = edges.setdefault((i, j), [])
            if step.stimulus.value not in names:
                names.append(step.stimulus.value)
    flags = [tuple(pid for pid, states in bad.items() if states[i]) for i in range(len(ex.worlds))]
    return Composed(design, environment, list(ex.worlds), edges, flags, tuple(bad))


def _world(i: int, w: World, flags: tuple[str, ...]) -> Node:
    m = w.messages[0]
    name = message_name(0)
    msg = (
        f"{name} not sent"
        if m.state is None
        else f"{name} " + message_cell(m.state.value, m.held, m.server)
    )
    app = "fg" if w.foreground else "bg"
    net = "up" if w.network else "down"
    lines: tuple[Line, ...] = ((Span(f"{w.socket.value} · {app} · net {net}"),), (Span(msg),))
    return Node(
        f"w{i}",
        NodeRole.world,
        name=w.connection.value,
        lines=lines,
        tooltip=f"state {i}: {w.connection.value}; " + (", ".join(flags) or "no violation"),
        initial=i == 0,
        violates=flags,
        settled=m.state is not None and System.settled(w),
    )


def composed_graph(graph: Composed) -> Graph:
    """Every world of ``graph`` as a node coloured by its violations, every step an edge."""
    counts = graph.counts()
    title = (
        f"{graph.design.name} · {graph.environment} · reachable states with one message",
        f"{len(graph.worlds)} states, {len(graph.edges)} distinct transitions; "
        + ", ".join(f"{k}: {v}" for k, v in counts.items()),
        "each world: connection state / socket · app · network / the message "
        "(held = in the pending-retry list, srv:N = copies on the server)",
    )
    legend = (
        *(
            Legend(
                "box",
                violation_color(pid),
                f"violates {pid}: {get_property(pid).statement}",
            )
            for pid in graph.properties
        ),
        Legend(
            "stripes",
            ":".join(violation_color(pid) for pid in graph.properties[:2]),
            "striped: several of the above",
        ),
        Legend("ring", GREEN, "settled: the message was sent and is confirmed or visibly failed"),
        *(Legend("bold", color, f"step: {text}") for _, color, text in STIMULUS_COLORS),
        Legend("bold", OTHER_STIMULUS[0], f"step: {OTHER_STIMULUS[1]}"),
    )
    nodes = tuple(_world(i, w, graph.flags[i]) for i, w in enumerate(graph.worlds))
    edges = tuple(
        Edge(f"w{i}", f"w{j}", EdgeRole.step, tooltip=", ".join(names), group=names[0])
        for (i, j), names in sorted(graph.edges.items())
    )
    return Graph(
        name=f"{graph.design.name}_{graph.environment}_composed",
        title=title,
        direction="TB",
        density="dense",
        legend=legend,
        nodes=nodes,
        edges=edges,
        big=True,
    )


def composed_dot(graph: Composed) -> str:
    return dot.write(composed_graph(graph))
