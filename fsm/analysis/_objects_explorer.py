"""Exhaustive breadth-first exploration of the composed system.

The explorer visits every reachable world of :class:`~fsm.analysis.system.System`
once, up to a permutation of the messages (they are interchangeable, so
sorting them is a sound symmetry reduction). States are numbered in
breadth-first order, so the first violating state found is one at the least
depth, and the path of parents to it is a shortest counterexample. Paths are
replayed on concrete, unsorted worlds (:meth:`Exploration.trace_to`), so a
message keeps its index along the whole trace: message 0 is the first one the
user sent.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from fsm.analysis.system import Message, Outcome, Stimulus, System, Transition, World
from fsm.analysis.trace import Trace
from fsm.model.errors import StateLimitExceeded
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.vocabulary import MessageState

__all__ = ["USER_STIMULI", "Exploration", "explore"]

Label = tuple[Stimulus, "int | None", "Outcome | None"]

#: Steps only the user takes. ``recovers-unaided`` asks whether the client
#: settles every message without them: the user neither sends again (a failed
#: send is what makes the seed's fix retry) nor leaves the app (iOS then resets
#: every socket, which heals a half-open one by accident).
USER_STIMULI = frozenset({Stimulus.send, Stimulus.app_background})

_FINAL = frozenset({MessageState.confirmed, MessageState.failed})


def _delivered_or_failed(m: Message) -> bool:
    return m.state is None or m.server >= 1 or m.state is MessageState.failed


def _settled(m: Message) -> bool:
    return m.state is None or m.state in _FINAL


@dataclass
class Exploration:
    """The reachable graph of one system, states numbered in BFS order."""

    system: System
    worlds: list[World] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    via: list[Label | None] = field(default_factory=list)
    successors: list[list[int]] = field(default_factory=list)
    #: Parallel to ``successors``: message ``i`` of the source is message
    #: ``positions[i]`` of the target (the explorer sorts messages).
    positions: list[list[tuple[int, ...]]] = field(default_factory=list)
    #: The successors through steps the user does not take (see :data:`USER_STIMULI`).
    unaided: list[list[int]] = field(default_factory=list)
    transitions: int = 0
    #: For each rule id: (source state, step) of the first step that took it.
    rule_hits: dict[str, tuple[int, Transition]] = field(default_factory=dict)

    # -- paths and traces -------------------------------------------------------------
    @cached_property
    def index(self) -> dict[World, int]:
        """State id of each (canonical) world."""
        return {w: i for i, w in enumerate(self.worlds)}

    def path(self, sid: int) -> list[tuple[Label, World]]:
        """The shortest path from the initial state to ``sid``."""
        steps: list[tuple[Label, World]] = []
        while sid != 0:
            label = self.via[sid]
            assert label is not None
            steps.append((label, self.worlds[sid]))
            sid = self.parent[sid]
        steps.reverse()
        return steps

    def trace_to(self, sid: int) -> Trace:
        """A shortest trace from the initial world to state ``sid``, on concrete worlds."""
        return self._replay(self.path(sid))

    def trace_through(self, src: int, step: Transition) -> Trace:
        """A shortest trace to state ``src``, then ``step``."""
        canonical = System.canonical(step.target)
        return self._replay([*self.path(src), (step.label, canonical)])

    def _replay(self, path: list[tuple[Label, World]]) -> Trace:
        """Turn a path of (label, canonical world) pairs into a trace of concrete worlds.

        At each step any concrete successor with the same stimulus and outcome
        whose canonical form is the next world on the path will do: they differ
        only in which interchangeable message is which.
        """
        system = self.system
        start = world = system.initial()
        steps: list[Transition] = []
        for (stimulus, _message, outcome), on_path in path:
            canonical = System.canonical(on_path)
            chosen = next(
                t
                for t in system.successors(world)
                if t.stimulus is stimulus
                and t.outcome is outcome
                and System.canonical(t.target) == canonical
            )
            steps.append(chosen)
            world = chosen.target
        return Trace(start, tuple(steps))

    def state_of(self, world: World) -> tuple[int, tuple[int, ...]]:
        """The state id of a concrete ``world``, and where each of its messages went."""
        canonical, positions = System.canonical_with_positions(world)
        return self.index[canonical], positions

    def first(self, predicate: Callable[[World], bool]) -> int | None:
        return next((i for i, w in enumerate(self.worlds) if predicate(w)), None)

    # -- backward analyses ------------------------------------------------------------
    @cached_property
    def lost_by_state(self) -> list[list[int]]:
        """For every state, the messages lost in it.

        A message is lost when it is :meth:`~fsm.analysis.system.System.undelivered`
        and no path from the state delivers it or shows it as failed: nothing
        holds it anywhere it will be retried from.
        """
        return self.doomed(_delivered_or_failed)

    def lost_messages(self) -> list[list[int]]:
        """:attr:`lost_by_state` (kept as a method for callers that compute it once)."""
        return self.lost_by_state

    def lost(self) -> tuple[int, list[int]] | None:
        """The first state with a lost message, and which messages are lost there."""
        for sid, lost in enumerate(self.lost_by_state):
            if lost:
                return sid, lost
        return None

    def never_settle(self, sid: int, *, unaided: bool = False) -> list[int]:
        """The messages of state ``sid`` that no continuation confirms or fails.

        A forward search over (state, message) pairs from ``sid`` only, following
        each message through the explorer's sorting; it stops for a message as
        soon as one continuation settles it.
        """
        doomed = []
        for p, m in enumerate(self.worlds[sid].messages):
            if _settled(m):
                continue
            seen = {(sid, p)}
            stack = [(sid, p)]
            found = False
            while stack and not found:
                src, q = stack.pop()
                for dst, moved in self._edges(src, unaided):
                    pair = (dst, moved[q])
                    if pair in seen:
                        continue
                    if _settled(self.worlds[dst].messages[moved[q]]):
                        found = True
                        break
                    seen.add(pair)
                    stack.append(pair)
            if not found:
                doomed.append(p)
        return doomed

    def _edges(self, src: int, unaided: bool) -> list[tuple[int, tuple[int, ...]]]:
        """The steps out of ``src`` as (target, positions); with ``unaided`` only the
        steps the user does not take (their stimuli are regenerated, in the
        explorer's order, since the exploration does not keep them)."""
        edges = list(zip(self.successors[src], self.positions[src], strict=True))
        if not unaided:
            return edges
        steps = self.system.successors(self.worlds[src], up_to_symmetry=True)
        return [
            edge
            for edge, step in zip(edges, steps, strict=True)
            if step.stimulus not in USER_STIMULI
        ]

    def doomed(self, good: Callable[[Message], bool]) -> list[list[int]]:
        """For every state, the sent messages for which no path reaches a state
        where ``good`` holds of them.

        Worked out backwards over (state, message) pairs, following each
        message through the explorer's sorting; identical messages in one state
        share their fate (the explorer steps only one of them).
        """
        n = self.system.n
        ok = [bytearray(n) for _ in self.worlds]
        back: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in self.worlds]
        inverses: dict[tuple[int, ...], tuple[int, ...]] = {}
        for src, (targets, moves) in enumerate(zip(self.successors, self.positions, strict=True)):
            for dst, moved in zip(targets, moves, strict=True):
                inverse = inverses.get(moved)
                if inverse is None:
                    flipped = [0] * n
                    for old, new in enumerate(moved):
                        flipped[new] = old
                    inverse = inverses[moved] = tuple(flipped)
                back[dst].append((src, inverse))
        queue: deque[tuple[int, int]] = deque()

        def mark(sid: int, p: int) -> None:
            messages = self.worlds[sid].messages
            for twin in range(n):
                if not ok[sid][twin] and messages[twin] == messages[p]:
                    ok[sid][twin] = 1
                    queue.append((sid, twin))

        # Seeds. A message not sent yet counts as good, but it was unsent in every
        # predecessor as well, so it need not spread anything.
        for sid, world in enumerate(self.worlds):
            row = ok[sid]
            for p, m in enumerate(world.messages):
                if m.state is None:
                    row[p] = 1
                elif good(m):
                    row[p] = 1
                    queue.append((sid, p))
        while queue:
            dst, q = queue.popleft()
            for src, origin in back[dst]:
                p = origin[q]
                if not ok[src][p]:
                    mark(src, p)
        return [[p for p in range(n) if not row[p]] for row in ok]

    def cannot_settle(self, *, unaided: bool = False) -> int | None:
        """The first state from which no settled state is reachable, if any."""
        return next((i for i, ok in enumerate(self.can_settle(unaided=unaided)) if not ok), None)

    def can_settle(self, *, unaided: bool = False) -> list[bool]:
        """For every state, whether a settled state is reachable from it.

        With ``unaided``, only steps the user does not take count.
        """
        key = "unaided" if unaided else "all"
        cached = self._settle_cache.get(key)
        if cached is not None:
            return cached
        n = len(self.worlds)
        back: list[list[int]] = [[] for _ in range(n)]
        for src, targets in enumerate(self.unaided if unaided else self.successors):
            for dst in targets:
                back[dst].append(src)
        good = [False] * n
        queue = deque(i for i, w in enumerate(self.worlds) if System.settled(w))
        for i in queue:
            good[i] = True
        while queue:
            for src in back[queue.popleft()]:
                if not good[src]:
                    good[src] = True
                    queue.append(src)
        self._settle_cache[key] = good
        return good

    @cached_property
    def _settle_cache(self) -> dict[str, list[bool]]:
        return {}


def explore(
    system: System,
    max_states: int | None = None,
    *,
    symmetry: bool = True,
    start: World | None = None,
) -> Exploration:
    """Visit every reachable world of ``system``, breadth first.

    With ``symmetry`` (the default) worlds that differ only in which message is
    which are visited once. Without it every concrete world is visited; that is
    slower and exists to measure and cross-check the reduction. ``start``
    replaces the system's initial world.
    """
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small tuples, none of them in a cycle
    try:
        return _explore(system, max_states, symmetry, start)
    finally:
        if was_enabled:
            gc.enable()


def _explore(
    system: System, max_states: int | None, symmetry: bool, start: World | None
) -> Exploration:
    canonical: Callable[[World], tuple[World, tuple[int, ...]]] = (
        System.canonical_with_positions if symmetry else _identity
    )
    ex = Exploration(system)
    first = canonical(system.initial() if start is None else start)[0]
    index: dict[World, int] = {first: 0}
    ex.worlds.append(first)
    ex.parent.append(0)
    ex.via.append(None)
    # Which rules each row could match, worked out once per row.
    row_rules: dict[int, list[ForbiddenRule]] = {}
    for name, table in (("connection", system.connection), ("message", system.message)):
        for row in table:
            row_rules[id(row)] = [r for r in FORBIDDEN if r.machine == name and r.matches_row(row)]
    sid = 0
    while sid < len(ex.worlds):
        world = ex.worlds[sid]
        targets: list[int] = []
        positions: list[tuple[int, ...]] = []
        unaided: list[int] = []
        for t in system.successors(world, up_to_symmetry=symmetry):
            ex.transitions += 1
            for f in t.fired:
                for rule in row_rules[id(f.row)]:
                    if rule.id not in ex.rule_hits and rule.matches_step(f.row, f.connection):
                        ex.rule_hits[rule.id] = (sid, t)
            target, moved = canonical(t.target)
            tid = index.get(target)
            if tid is None:
                tid = len(ex.worlds)
                if max_states is not None and tid >= max_states:
                    raise StateLimitExceeded(max_states)
                index[target] = tid
                ex.worlds.append(target)
                ex.parent.append(sid)
                ex.via.append(t.label)
            targets.append(tid)
            positions.append(moved)
            if t.stimulus not in USER_STIMULI:
                unaided.append(tid)
        ex.successors.append(targets)
        ex.positions.append(positions)
        ex.unaided.append(unaided)
        sid += 1
    ex.__dict__["index"] = index
    return ex


def _identity(world: World) -> tuple[World, tuple[int, ...]]:
    return world, tuple(range(len(world.messages)))
