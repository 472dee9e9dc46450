"""The explored graph of one system, with every edge labelled: what generators cover.

A *transition* of the composed system is an edge of the symmetry-reduced graph
the explorer builds (:func:`~fsm.analysis.explore.explore`): a state, a step
label (stimulus, message, outcome) and the state it leads to, up to which
interchangeable message is which. :class:`StateGraph` keeps each edge with the
table rows it fires, breadth-first distances from the initial state, and turns
any walk of edges back into concrete steps (:meth:`StateGraph.concretize`), in
which message ``m1`` is always the first one the user sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fsm.analysis.explore import Exploration, Label, explore
from fsm.analysis.system import System, Transition, World
from fsm.analysis.trace import broken_rules
from fsm.model.tables import Row

__all__ = ["Edge", "StateGraph", "row_id"]


def row_id(machine: str, row: Row[Any, Any]) -> str:
    """``message: pending -ws_send_ok-> sent_ws``: how suites name a table row."""
    return f"{machine}: {row.source} -{row.event}-> {row.target}"


@dataclass(frozen=True)
class Edge:
    """One transition of the reduced graph."""

    id: int
    src: int
    dst: int
    label: Label
    #: The rows it fires, by :func:`row_id`, in firing order.
    rows: tuple[str, ...]
    #: The forbidden rules those rows break (in the connection state they fired in).
    rules: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``s3 -send m1 (ws_delivered)-> s7``: how suites name a transition."""
        stimulus, message, outcome = self.label
        text = stimulus.value
        if message is not None:
            text += f" #{message}"
        if outcome is not None:
            text += f" ({outcome.value})"
        return f"s{self.src} -{text}-> s{self.dst}"


class StateGraph:
    """Every reachable state and transition of ``system``, up to message symmetry."""

    def __init__(self, system: System, exploration: Exploration | None = None) -> None:
        self.system = system
        self.ex = explore(system) if exploration is None else exploration
        self.edges: list[Edge] = []
        self.out: list[list[int]] = []
        self._by_label: dict[tuple[int, Label], int] = {}
        for sid, world in enumerate(self.ex.worlds):
            ids = []
            for out in self.ex.steps(sid):
                step = system.step(world, out.label)
                rows = tuple(row_id(f.machine, f.row) for f in step.fired)
                rules = tuple(r.id for f in step.fired for r in broken_rules(f))
                edge = Edge(len(self.edges), sid, out.target, out.label, rows, rules)
                self.edges.append(edge)
                self._by_label[(sid, step.label)] = edge.id
                ids.append(edge.id)
            self.out.append(ids)
        # The explorer may store one world as several states, told apart only by the
        # attempt counters of a settled message, which canonical_message resets
        # (fsm.analysis.explore.codec's _canonical_codes probes them with 1 and
        # clears only that bit): every lookup goes through System.canonical, and
        # one world names all the states that store it.
        self._canonical = [System.canonical(w) for w in self.ex.worlds]
        self._states: dict[World, list[int]] = {}
        for sid, canonical in enumerate(self._canonical):
            self._states.setdefault(canonical, []).append(sid)
        # Breadth-first distances and a shortest-path tree, over edge ids.
        self.depth = [-1] * len(self.ex.worlds)
        self.parent_edge = [-1] * len(self.ex.worlds)
        self.depth[0] = 0
        frontier = [0]
        while frontier:
            nxt = []
            for sid in frontier:
                for eid in self.out[sid]:
                    dst = self.edges[eid].dst
                    if self.depth[dst] < 0:
                        self.depth[dst] = self.depth[sid] + 1
                        self.parent_edge[dst] = eid
                        nxt.append(dst)
            frontier = nxt

    @property
    def states(self) -> int:
        return len(self.ex.worlds)

    def path_to(self, sid: int) -> list[int]:
        """A shortest walk of edge ids from the initial state to ``sid``."""
        path = []
        while sid != 0:
            eid = self.parent_edge[sid]
            path.append(eid)
            sid = self.edges[eid].src
        path.reverse()
        return path

    def rows(self) -> set[str]:
        """Every row some reachable transition fires."""
        return {r for e in self.edges for r in e.rows}

    # -- concrete runs ----------------------------------------------------------------
    def concretize(self, walk: list[int], start: World | None = None) -> list[Transition]:
        """The concrete steps of a walk of edge ids from ``start`` (default: the
        initial world)."""
        system = self.system
        world = system.initial() if start is None else start
        steps: list[Transition] = []
        for eid in walk:
            edge = self.edges[eid]
            canonical, positions = System.canonical_with_positions(world)
            if canonical != self._canonical[edge.src]:
                sid = self.state_of(world)
                raise ValueError(f"edge {edge.name} does not start where the walk is (s{sid})")
            stimulus, message, outcome = edge.label
            wanted = None if message is None else positions.index(message)
            goal = self._canonical[edge.dst]
            chosen = None
            for t in system.successors(world):
                if t.stimulus is not stimulus or t.outcome is not outcome:
                    continue
                if System.canonical(t.target) != goal:
                    continue
                if chosen is None or t.message == wanted:
                    chosen = t
            if chosen is None:  # pragma: no cover - the explorer found this edge
                raise ValueError(f"no concrete step for {edge.name}")
            steps.append(chosen)
            world = chosen.target
        return steps

    def edge_of(self, world: World, step: Transition) -> int:
        """The edge id a concrete ``step`` out of ``world`` takes."""
        canonical, positions = System.canonical_with_positions(world)
        message = None
        if step.message is not None:
            message = positions[step.message]
            # The explorer steps only the first of identical messages.
            twin = canonical.messages[message]
            message = canonical.messages.index(twin)
        label = (step.stimulus, message, step.outcome)
        for sid in self._states[canonical]:
            eid = self._by_label.get((sid, label))
            if eid is not None:
                return eid
        raise KeyError(label)

    def state_of(self, world: World) -> int:
        """The state id of a concrete ``world`` (the first, if the explorer stored it
        as several)."""
        return self._states[System.canonical(world)][0]

    def can_reach(self, goal: set[int]) -> list[bool]:
        """For each state: whether a walk from it can take one of the edges ``goal``."""
        back: list[list[int]] = [[] for _ in range(self.states)]
        for e in self.edges:
            back[e.dst].append(e.src)
        ok = [False] * self.states
        queue = [self.edges[eid].src for eid in goal]
        for sid in queue:
            ok[sid] = True
        while queue:
            sid = queue.pop()
            for src in back[sid]:
                if not ok[src]:
                    ok[src] = True
                    queue.append(src)
        return ok

    def shortest_to(self, sid: int, goal: set[int]) -> list[int]:
        """A shortest walk of edge ids from ``sid`` whose last edge is in ``goal``."""
        parent: dict[int, int] = {}
        frontier = [sid]
        seen = {sid}
        while frontier:
            nxt = []
            for s in frontier:
                for eid in self.out[s]:
                    if eid in goal:
                        walk = [eid]
                        while s != sid:
                            back = parent[s]
                            walk.append(back)
                            s = self.edges[back].src
                        walk.reverse()
                        return walk
                    dst = self.edges[eid].dst
                    if dst not in seen:
                        seen.add(dst)
                        parent[dst] = eid
                        nxt.append(dst)
            frontier = nxt
        raise ValueError(f"no edge of the goal is reachable from s{sid}")

    def edges_of(self, steps: list[Transition]) -> list[int]:
        """The edge ids of a concrete run from the initial world."""
        world = self.system.initial()
        ids = []
        for step in steps:
            ids.append(self.edge_of(world, step))
            world = step.target
        return ids
