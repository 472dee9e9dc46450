"""The reachable graph an exploration found, and the questions asked of it.

:class:`Exploration` keeps the graph in the flat arrays the search fills (state
keys, parents, the label of the step into each state; per step its target, the
permutation of messages it makes and its label) and turns states back into
worlds where traces, explanations and diagrams need them. Predicates of one
state are judged with :meth:`Exploration.first` and
:meth:`Exploration.states_where`, whose :class:`Scope` says which part of a
state the predicate reads; the backward questions go to
:mod:`fsm.analysis.backward`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from functools import cached_property
from typing import Any, NamedTuple, TypeVar, cast, overload

import numpy as np
from numpy.typing import NDArray

from fsm.analysis.backward import doomed_pairs, settle_reachable
from fsm.analysis.explore.codec import (
    BATCH,
    GLOBAL,
    GLOBALS,
    UNSENT,
    Codec,
    Label,
    label_of,
)
from fsm.analysis.system import Message, Stimulus, System, Transition, World
from fsm.analysis.trace import Trace
from fsm.model.vocabulary import MessageState

__all__ = ["USER_STIMULI", "Exploration", "Scope", "Step"]

#: Steps only the user takes. ``recovers-unaided`` asks whether the client
#: settles every message without them: the user neither sends again (a failed
#: send is what makes the seed's fix retry) nor leaves the app (iOS then resets
#: every socket, which heals a half-open one by accident).
USER_STIMULI = frozenset({Stimulus.send, Stimulus.app_background})

T = TypeVar("T")


def delivered_or_failed(m: Message) -> bool:
    return m.state is None or m.server >= 1 or m.state is MessageState.failed


def settled(m: Message) -> bool:
    return m.state is None or m.state.settled


class Scope(Enum):
    """The part of a state a predicate reads; it decides how a scan judges it."""

    #: A predicate of one :class:`~fsm.analysis.system.Message`; a state satisfies
    #: it when some message does. Each kind of message is judged once.
    message = "some message"
    #: A predicate of a :class:`~fsm.analysis.system.World` that reads only the
    #: connection state, socket, foreground and network; judged once for each of
    #: their combinations, on a world without messages.
    globals = "the global part"
    #: A predicate of the whole world, judged on every state.
    world = "the whole world"

    def on_world(self, predicate: Callable[[Any], bool]) -> Callable[[World], bool]:
        """``predicate`` as a predicate of a whole world, judged the slow way."""
        if self is Scope.message:
            return lambda w: any(predicate(m) for m in w.messages)
        return cast(Callable[[World], bool], predicate)


class Step(NamedTuple):
    """One step out of a state, as the exploration keeps it."""

    #: (stimulus, message, outcome); the message is its index in the state's world.
    label: Label
    #: The state it leads to.
    target: int
    #: Message ``i`` of the source is message ``positions[i]`` of the target.
    positions: tuple[int, ...]
    #: Whether only the user takes it (see :data:`USER_STIMULI`).
    user: bool


# -- read-only sequences over the arrays ----------------------------------------------------
class _View(Sequence[T]):
    """A read-only sequence computed per index from the exploration's arrays."""

    def __init__(self, length: int, get: Callable[[int], T]) -> None:
        self._length = length
        self._get = get

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._get(k) for k in range(*i.indices(self._length))]
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(i)
        return self._get(i)

    def __iter__(self) -> Iterator[T]:
        get = self._get
        for k in range(self._length):
            yield get(k)


class _Flags(Sequence[bool]):
    """A read-only sequence of one flag per state, kept in a numpy array;
    :meth:`index` finds a value without a Python loop."""

    def __init__(self, flags: NDArray[np.bool_]) -> None:
        self._flags = flags

    def __len__(self) -> int:
        return len(self._flags)

    @overload
    def __getitem__(self, i: int) -> bool: ...
    @overload
    def __getitem__(self, i: slice) -> list[bool]: ...
    def __getitem__(self, i: int | slice) -> bool | list[bool]:
        if isinstance(i, slice):
            flags: list[bool] = self._flags[i].tolist()
            return flags
        return bool(self._flags[i])

    def __iter__(self) -> Iterator[bool]:
        for start in range(0, len(self._flags), BATCH):
            yield from self._flags[start : start + BATCH].tolist()

    def index(self, value: Any, start: int = 0, stop: int = sys.maxsize) -> int:
        lo, hi, _step = slice(start, stop).indices(len(self._flags))
        hits = np.flatnonzero(self._flags[lo:hi] == bool(value))
        if not len(hits):
            raise ValueError(f"{value!r} is not in the flags")
        return lo + int(hits[0])


class _Lost(Sequence[list[int]]):
    """For every state, the messages for which no path reaches a good state,
    read off the matrix of the ones that are fine."""

    def __init__(self, ok: NDArray[np.bool_]) -> None:
        self.ok = ok
        #: Whether every message of the state is fine.
        self.fine: NDArray[np.bool_] = np.all(ok, axis=1)

    def __len__(self) -> int:
        return len(self.ok)

    @overload
    def __getitem__(self, i: int) -> list[int]: ...
    @overload
    def __getitem__(self, i: slice) -> list[list[int]]: ...
    def __getitem__(self, i: int | slice) -> list[int] | list[list[int]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if self.fine[i]:
            return []
        lost: list[int] = np.flatnonzero(~self.ok[i]).tolist()
        return lost


class Exploration:
    """The reachable graph of one system, states numbered in BFS order.

    ``worlds``, ``parent``, ``via``, ``successors``, ``positions`` and ``unaided``
    are read-only sequences indexed by state id; they decode the compact arrays
    on access. :meth:`steps` gives the steps out of a state with their labels.
    """

    def __init__(
        self,
        system: System,
        codec: Codec,
        keys: NDArray[np.int64],
        parents: NDArray[np.int32],
        labels: NDArray[np.int16] | NDArray[np.int32],
        offsets: NDArray[np.int32] | NDArray[np.int64],
        targets: NDArray[np.int32],
        perms: NDArray[np.int16],
        user: NDArray[np.bool_],
        rule_hits: dict[str, tuple[int, Transition]],
        edge_labels: NDArray[np.int16] | NDArray[np.int32] | None = None,
    ) -> None:
        self.system = system
        self._codec = codec
        self._keys = keys
        self._offsets = offsets
        self._targets = targets
        self._perms = perms
        self._user = user
        #: The label id of every step (the search always keeps them).
        self._edge_labels = edge_labels
        self.transitions = len(targets)
        #: For each rule id: (source state, step) of the first step that took it.
        self.rule_hits = rule_hits
        n = len(keys)
        self.parent: Sequence[int] = _View(n, lambda sid: int(parents[sid]))
        self.worlds: Sequence[World] = _View(n, lambda sid: codec.world(int(keys[sid])))
        self.via: Sequence[Label | None] = _View(
            n, lambda sid: None if sid == 0 else label_of(int(labels[sid]), system.n)
        )
        self.successors: Sequence[list[int]] = _View(
            n, lambda sid: targets[offsets[sid] : offsets[sid + 1]].tolist()
        )
        #: Parallel to ``successors``: message ``i`` of the source is message
        #: ``positions[i]`` of the target (the explorer sorts messages).
        self.positions: Sequence[list[tuple[int, ...]]] = _View(
            n,
            lambda sid: [codec.perms[p] for p in perms[offsets[sid] : offsets[sid + 1]].tolist()],
        )
        #: The successors through steps the user does not take (see :data:`USER_STIMULI`).
        self.unaided: Sequence[list[int]] = _View(
            n,
            lambda sid: targets[offsets[sid] : offsets[sid + 1]][
                ~user[offsets[sid] : offsets[sid + 1]]
            ].tolist(),
        )

    def steps(self, sid: int) -> list[Step]:
        """The steps out of state ``sid``, in the order System.successors lists
        them (up to symmetry), each with its label."""
        n, perms = self.system.n, self._codec.perms
        if self._edge_labels is None:
            raise ValueError("this exploration was built without the labels of its steps")
        a, b = int(self._offsets[sid]), int(self._offsets[sid + 1])
        return [
            Step(label_of(lid, n), t, perms[p], u)
            for lid, t, p, u in zip(
                self._edge_labels[a:b].tolist(),
                self._targets[a:b].tolist(),
                self._perms[a:b].tolist(),
                self._user[a:b].tolist(),
                strict=True,
            )
        ]

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
        key, positions = self._codec.key(world)
        hits = np.flatnonzero(self._keys == key)
        if not len(hits):
            raise KeyError(world)
        return int(hits[0]), positions

    # -- predicates of one state ------------------------------------------------------
    def first(self, predicate: Callable[[Any], bool], scope: Scope = Scope.world) -> int | None:
        """The first state (in BFS order) that satisfies ``predicate``, a predicate
        of the part of a state ``scope`` names."""
        if scope is not Scope.world:
            hits = np.flatnonzero(self._where(predicate, scope))
            return int(hits[0]) if len(hits) else None
        codec, globals_ = self._codec, GLOBAL
        decode = codec.decode
        seen: dict[int, tuple[Message, ...]] = {}  # every multiset decoded once per scan
        for start in range(0, len(self._keys), BATCH):
            for sid, key in enumerate(self._keys[start : start + BATCH].tolist(), start):
                mid, g = divmod(key, GLOBALS)
                messages = seen.get(mid)
                if messages is None:
                    messages = seen[mid] = tuple(map(decode, codec.rows[mid].tolist()))
                c, s, fg, net = globals_[g]
                if predicate(World(c, s, fg, net, messages)):
                    return sid
        return None

    def states_where(
        self, predicate: Callable[[Any], bool], scope: Scope = Scope.world
    ) -> Sequence[bool]:
        """For every state, whether it satisfies ``predicate``, a predicate of the
        part of a state ``scope`` names."""
        return _Flags(self._where(predicate, scope))

    def _where(self, predicate: Callable[[Any], bool], scope: Scope) -> NDArray[np.bool_]:
        if scope is Scope.message:
            some = np.any(self._codec.codes_where(predicate)[self._codec.rows], axis=1)
            flags: NDArray[np.bool_] = some[self._mids]
        elif scope is Scope.globals:
            by_global = np.array([predicate(World(*part, ())) for part in GLOBAL], np.bool_)
            flags = by_global[self._keys % GLOBALS]
        else:
            flags = np.fromiter(map(predicate, self.worlds), np.bool_, len(self._keys))
        return flags

    # -- backward analyses ------------------------------------------------------------
    @cached_property
    def _mids(self) -> NDArray[np.int32]:
        """The multiset id of every state."""
        mids: NDArray[np.int32] = (self._keys // GLOBALS).astype(np.int32)
        return mids

    @cached_property
    def lost_by_state(self) -> Sequence[list[int]]:
        """For every state, the messages lost in it.

        A message is lost when it is :meth:`~fsm.analysis.system.System.undelivered`
        and no path from the state delivers it or shows it as failed: nothing
        holds it anywhere it will be retried from.
        """
        return self.doomed(delivered_or_failed)

    def lost_states(self) -> Sequence[bool]:
        """For every state, whether a message is lost in it."""
        lost = self.lost_by_state
        assert isinstance(lost, _Lost)
        return _Flags(~lost.fine)

    def lost_messages(self) -> Sequence[list[int]]:
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
            if settled(m):
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
                    if settled(self.worlds[dst].messages[moved[q]]):
                        found = True
                        break
                    seen.add(pair)
                    stack.append(pair)
            if not found:
                doomed.append(p)
        return doomed

    def _edges(self, src: int, unaided: bool) -> list[tuple[int, tuple[int, ...]]]:
        """The steps out of ``src`` as (target, positions); with ``unaided`` only the
        steps the user does not take."""
        perms = self._codec.perms
        a, b = int(self._offsets[src]), int(self._offsets[src + 1])
        return [
            (t, perms[p])
            for t, p, u in zip(
                self._targets[a:b].tolist(),
                self._perms[a:b].tolist(),
                self._user[a:b].tolist(),
                strict=True,
            )
            if not (unaided and u)
        ]

    def doomed(self, good: Callable[[Message], bool]) -> Sequence[list[int]]:
        """For every state, the sent messages for which no path reaches a state
        where ``good`` holds of them.

        Worked out backwards over (state, message) pairs, following each
        message through the explorer's sorting
        (:func:`~fsm.analysis.backward.doomed_pairs`); identical messages in one
        state share their fate (the explorer steps only one of them).
        """
        codec, n = self._codec, self.system.n
        ok = doomed_pairs(
            n,
            self._mids,
            codec.rows,
            codec.codes_where(good),
            UNSENT,
            self._offsets,
            self._targets,
            self._perms,
            np.array(codec.perms, np.int8).reshape(-1, n),
        )
        return _Lost(ok)

    def can_settle(self, *, unaided: bool = False) -> Sequence[bool]:
        """For every state, whether a settled state is reachable from it.

        With ``unaided``, only steps the user does not take count.
        """
        return _Flags(self._can_settle(unaided))

    def cannot_settle_states(self, *, unaided: bool = False) -> Sequence[bool]:
        """For every state, whether no settled state is reachable from it."""
        return _Flags(~self._can_settle(unaided))

    def _can_settle(self, unaided: bool) -> NDArray[np.bool_]:
        key = "unaided" if unaided else "all"
        cached = self._settle_cache.get(key)
        if cached is None:
            settled_code = self._codec.codes_where(settled)
            settled_state = np.all(settled_code[self._codec.rows], axis=1)
            cached = self._settle_cache[key] = settle_reachable(
                settled_state[self._mids], self._offsets, self._targets, self._user, unaided=unaided
            )
        return cached

    @cached_property
    def _settle_cache(self) -> dict[str, NDArray[np.bool_]]:
        return {}
