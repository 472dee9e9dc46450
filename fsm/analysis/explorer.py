"""Exhaustive breadth-first exploration of the composed system.

The explorer visits every reachable world of :class:`~fsm.analysis.system.System`
once, up to a permutation of the messages (they are interchangeable, so
sorting them is a sound symmetry reduction). States are numbered in
breadth-first order, so the first violating state found is one at the least
depth, and the path of parents to it is a shortest counterexample. Paths are
replayed on concrete, unsorted worlds (:meth:`Exploration.trace_to`), so a
message keeps its index along the whole trace: message 0 is the first one the
user sent.

States are small integers, not :class:`~fsm.analysis.system.World` objects:

* a message is a code below 2**11 whose order is the order the symmetry
  reduction sorts messages by (state, held, server copies, attempts, done owed);
* the messages of a world are one interned tuple of codes (its *multiset id*);
* the global part (connection state, socket, foreground, network) is a code below
  ``len(ConnectionState) * len(Socket) * 4``; a state is ``multiset * that + global``.

A step's effect is learnt from :meth:`System.successors` the first time it is
needed and memoised on exactly what it depends on: the global part of a step
depends on the stimulus and the global part only (no message row or per-message
effect moves the socket, checked once per design), a step that touches only
the message it concerns on that message and the connection state, a step that
only opens or closes the socket on whether it kills a socket, and any other
step on the whole multiset of messages. Per state and step the explorer then
mostly does dictionary look-ups on integers. The reachable graph is kept in
flat arrays (successor ids, permutation ids, a flag for steps the user takes);
:class:`Exploration` turns states back into worlds where traces, explanations
and diagrams need them.
"""

from __future__ import annotations

import gc
import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import TypeVar, overload

from fsm.analysis.system import (
    LOCAL_ACTIONS,
    OVER_REST,
    SOCKET_ACTIONS,
    STATE_ORDER,
    Message,
    Outcome,
    Stimulus,
    System,
    Transition,
    World,
    canonical_message,
)
from fsm.analysis.trace import Trace
from fsm.model.errors import SpecError, StateLimitExceeded
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.vocabulary import Action, ConnectionState, Hook, MessageState, Socket

__all__ = ["USER_STIMULI", "Exploration", "explore"]

Label = tuple[Stimulus, "int | None", "Outcome | None"]

#: Steps only the user takes. ``recovers-unaided`` asks whether the client
#: settles every message without them: the user neither sends again (a failed
#: send is what makes the seed's fix retry) nor leaves the app (iOS then resets
#: every socket, which heals a half-open one by accident).
USER_STIMULI = frozenset({Stimulus.send, Stimulus.app_background})

_FINAL = frozenset({MessageState.confirmed, MessageState.failed})

#: Explorations that run longer than this print a progress line on a terminal.
PROGRESS_AFTER = 1.0
_clock: Callable[[], float] = time.monotonic

T = TypeVar("T")


def _delivered_or_failed(m: Message) -> bool:
    return m.state is None or m.server >= 1 or m.state is MessageState.failed


def _settled(m: Message) -> bool:
    return m.state is None or m.state in _FINAL


# -- the encoding -------------------------------------------------------------------------
_CONNECTIONS = list(ConnectionState)
_SOCKETS = list(Socket)
_STIMULI = list(Stimulus)
_OUTCOMES = list(Outcome)
#: Number of global codes: connection state x socket x foreground x network.
_GLOBALS = len(_CONNECTIONS) * len(_SOCKETS) * 4
_GLOBAL: list[tuple[ConnectionState, Socket, bool, bool]] = [
    (c, s, fg, net)
    for c in _CONNECTIONS
    for s in _SOCKETS
    for fg in (False, True)
    for net in (False, True)
]
_GLOBAL_CODE = {g: i for i, g in enumerate(_GLOBAL)}
_CODES = 1 << 11
#: Permutation ids and multiset ids share one integer in the memo tables.
_PERM_BITS = 24


def _message_code(m: Message) -> int:
    """``m`` as an integer that sorts like the symmetry reduction's key."""
    if not 0 <= m.attempts < 16 or not 0 <= m.server < 4:
        raise SpecError(f"message out of the explorer's encoding: {m}")
    return STATE_ORDER[m.state] << 8 | m.held << 7 | m.server << 5 | m.attempts << 1 | m.done_owed


_ORDERED_STATES: list[MessageState | None] = sorted(STATE_ORDER, key=STATE_ORDER.__getitem__)


def _decode_message(c: int) -> Message:
    return Message(_ORDERED_STATES[c >> 8], bool(c >> 7 & 1), c >> 5 & 3, c >> 1 & 15, bool(c & 1))


_UNSENT = _message_code(Message())
_OVER_REST_ORDERS = frozenset(STATE_ORDER[s] for s in OVER_REST)


def _global_code(w: World) -> int:
    return _GLOBAL_CODE[(w.connection, w.socket, w.foreground, w.network)]


class _Codec:
    """Codes for messages, interned multisets of them and permutations, for one system."""

    def __init__(self, n: int, symmetry: bool) -> None:
        self.n = n
        self.symmetry = symmetry
        self.message: dict[int, Message] = {}
        self.code: dict[Message, int] = {}
        self.canonical: dict[int, int] = {}
        self.tuples: list[tuple[int, ...]] = []
        self.mid: dict[tuple[int, ...], int] = {}
        self.first_unsent: list[int] = []
        self.has_done: list[bool] = []
        #: Per multiset: the messages a done or REST step may concern, as
        #: (index, code, 2 * done owed + REST in flight); one per group of twins.
        self.candidates: list[tuple[tuple[int, int, int], ...]] = []
        self.decoded: list[tuple[Message, ...] | None] = []
        self.perms: list[tuple[int, ...]] = [tuple(range(n))]
        self.shift = n.bit_length()
        #: For every code a message can have, the code the symmetry reduction stores.
        self.canonical_codes = [
            self.canon(c) if c >> 8 < len(_ORDERED_STATES) and (c >> 5 & 3) < 3 else -1
            for c in range(_CODES)
        ]
        self.perm_id: dict[tuple[int, ...], int] = {self.perms[0]: 0}

    def encode(self, m: Message) -> int:
        c = self.code.get(m)
        if c is None:
            c = self.code[m] = _message_code(m)
            self.message[c] = m
        return c

    def decode(self, c: int) -> Message:
        m = self.message.get(c)
        if m is None:
            m = self.message[c] = _decode_message(c)
            self.code[m] = c
        return m

    def canon(self, c: int) -> int:
        """The code of the message the symmetry reduction stores for code ``c``."""
        hit = self.canonical.get(c)
        if hit is None:
            hit = self.canonical[c] = self.encode(canonical_message(self.decode(c))[1])
        return hit

    def intern(self, codes: tuple[int, ...]) -> int:
        mid = self.mid.get(codes)
        if mid is None:
            mid = self.mid[codes] = len(self.tuples)
            self.tuples.append(codes)
            self.first_unsent.append(codes.index(_UNSENT) if _UNSENT in codes else -1)
            self.has_done.append(any(c & 1 for c in codes))
            candidates = []
            for i, c in enumerate(codes):
                if self.symmetry and i and codes[i - 1] == c:
                    continue
                kind = (c & 1) << 1 | ((c >> 8) in _OVER_REST_ORDERS)
                if kind:
                    candidates.append((i, c, kind))
            self.candidates.append(tuple(candidates))
            self.decoded.append(None)
        return mid

    def perm(self, positions: tuple[int, ...]) -> int:
        pid = self.perm_id.get(positions)
        if pid is None:
            pid = self.perm_id[positions] = len(self.perms)
            if pid >= 1 << _PERM_BITS:
                raise SpecError("too many message permutations for the explorer's encoding")
            self.perms.append(positions)
        return pid

    def arrange(self, raw: list[int]) -> int:
        """The multiset id and permutation id of a world's raw message codes, packed."""
        if not self.symmetry:
            return self.intern(tuple(raw)) << _PERM_BITS
        canonical, shift = self.canonical_codes, self.shift
        # Sorting (code, index) pairs packed in one integer keeps twins in order.
        keyed = sorted([canonical[c] << shift | i for i, c in enumerate(raw)])
        low = (1 << shift) - 1
        positions = [0] * len(keyed)
        for new, x in enumerate(keyed):
            positions[x & low] = new
        mid = self.intern(tuple([x >> shift for x in keyed]))
        return mid << _PERM_BITS | self.perm(tuple(positions))

    def messages(self, mid: int) -> tuple[Message, ...]:
        hit = self.decoded[mid]
        if hit is None:
            hit = self.decoded[mid] = tuple(self.decode(c) for c in self.tuples[mid])
        return hit

    def world(self, key: int) -> World:
        mid, g = divmod(key, _GLOBALS)
        c, s, fg, net = _GLOBAL[g]
        return World(c, s, fg, net, self.messages(mid))

    def key(self, world: World) -> tuple[int, tuple[int, ...]]:
        """A concrete world's state key, and where each of its messages went."""
        packed = self.arrange([self.encode(m) for m in world.messages])
        mid, pid = packed >> _PERM_BITS, packed & ((1 << _PERM_BITS) - 1)
        return mid * _GLOBALS + _global_code(world), self.perms[pid]


# -- the reachable graph ----------------------------------------------------------------
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


def _label(lid: int, n: int) -> Label:
    outcome = lid % (len(_OUTCOMES) + 1)
    rest = lid // (len(_OUTCOMES) + 1)
    stimulus, message = divmod(rest, n + 1)
    return (
        _STIMULI[stimulus],
        message - 1 if message else None,
        _OUTCOMES[outcome - 1] if outcome else None,
    )


def _label_id(label: Label, n: int) -> int:
    stimulus, message, outcome = label
    m = 0 if message is None else message + 1
    o = 0 if outcome is None else _OUTCOMES.index(outcome) + 1
    return (_STIMULI.index(stimulus) * (n + 1) + m) * (len(_OUTCOMES) + 1) + o


class Exploration:
    """The reachable graph of one system, states numbered in BFS order.

    ``worlds``, ``parent``, ``via``, ``successors``, ``positions`` and ``unaided``
    are read-only sequences indexed by state id; they decode the compact arrays
    on access.
    """

    def __init__(
        self,
        system: System,
        codec: _Codec,
        keys: array[int],
        parents: array[int],
        labels: array[int],
        offsets: array[int],
        targets: array[int],
        perms: array[int],
        user: bytearray,
        rule_hits: dict[str, tuple[int, Transition]],
    ) -> None:
        self.system = system
        self._codec = codec
        self._keys = keys
        self._offsets = offsets
        self._targets = targets
        self._perms = perms
        self._user = user
        self.transitions = len(targets)
        #: For each rule id: (source state, step) of the first step that took it.
        self.rule_hits = rule_hits
        n = len(keys)
        self.parent: Sequence[int] = parents
        self.worlds: Sequence[World] = _View(n, lambda sid: codec.world(keys[sid]))
        self.via: Sequence[Label | None] = _View(
            n, lambda sid: None if sid == 0 else _label(labels[sid], system.n)
        )
        self.successors: Sequence[list[int]] = _View(
            n, lambda sid: targets[offsets[sid] : offsets[sid + 1]].tolist()
        )
        #: Parallel to ``successors``: message ``i`` of the source is message
        #: ``positions[i]`` of the target (the explorer sorts messages).
        self.positions: Sequence[list[tuple[int, ...]]] = _View(
            n, lambda sid: [codec.perms[p] for p in perms[offsets[sid] : offsets[sid + 1]]]
        )
        #: The successors through steps the user does not take (see :data:`USER_STIMULI`).
        self.unaided: Sequence[list[int]] = _View(
            n,
            lambda sid: [targets[e] for e in range(offsets[sid], offsets[sid + 1]) if not user[e]],
        )

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
        try:
            return self._keys.index(key), positions
        except ValueError:
            raise KeyError(world) from None

    def per_state(self, value: Callable[[int], T]) -> Sequence[T]:
        """A read-only sequence of ``value(sid)`` for every state, computed on access."""
        return _View(len(self._keys), value)

    def first(self, predicate: Callable[[World], bool]) -> int | None:
        return next((i for i, w in enumerate(self.worlds) if predicate(w)), None)

    # -- backward analyses ------------------------------------------------------------
    @cached_property
    def _reverse(self) -> tuple[array[int], array[int], array[int], bytearray]:
        """The graph backwards: the steps into state ``t`` are ``start[t]`` up to
        ``start[t + 1]`` in ``source`` (where each starts), ``perm`` (its
        permutation id) and ``user`` (whether the user takes it)."""
        states, targets, offsets = len(self._keys), self._targets, self._offsets
        start = array("I", bytes(4 * (states + 1)))
        for t in targets:
            start[t + 1] += 1
        total = 0
        for k in range(states + 1):
            total += start[k]
            start[k] = total
        fill = array("I", start)
        source = array("I", bytes(4 * len(targets)))
        perm = array(self._perms.typecode, bytes(self._perms.itemsize * len(targets)))
        user = bytearray(len(targets))
        perms, users = self._perms, self._user
        for sid in range(states):
            for e in range(offsets[sid], offsets[sid + 1]):
                t = targets[e]
                k = fill[t]
                fill[t] = k + 1
                source[k] = sid
                perm[k] = perms[e]
                user[k] = users[e]
        return start, source, perm, user

    @cached_property
    def lost_by_state(self) -> Sequence[list[int]]:
        """For every state, the messages lost in it.

        A message is lost when it is :meth:`~fsm.analysis.system.System.undelivered`
        and no path from the state delivers it or shows it as failed: nothing
        holds it anywhere it will be retried from.
        """
        return self.doomed(_delivered_or_failed)

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
        steps the user does not take."""
        perms = self._codec.perms
        return [
            (self._targets[e], perms[self._perms[e]])
            for e in range(self._offsets[src], self._offsets[src + 1])
            if not (unaided and self._user[e])
        ]

    def doomed(self, good: Callable[[Message], bool]) -> Sequence[list[int]]:
        """For every state, the sent messages for which no path reaches a state
        where ``good`` holds of them.

        Worked out backwards over (state, message) pairs, following each
        message through the explorer's sorting; identical messages in one state
        share their fate (the explorer steps only one of them).
        """
        n = self.system.n
        codec, keys = self._codec, self._keys
        tuples = codec.tuples
        mids = array("I", [key // _GLOBALS for key in keys])
        ok = bytearray(len(keys) * n)
        inverse: list[tuple[int, ...]] = []
        for moved in codec.perms:
            flipped = [0] * n
            for old, new in enumerate(moved):
                flipped[new] = old
            inverse.append(tuple(flipped))
        is_good = {c: good(codec.decode(c)) for codes in tuples for c in codes}
        # Seeds: a message not sent yet counts as good, but it was unsent in every
        # predecessor as well, so it need not spread anything.
        for sid, mid in enumerate(mids):
            base = sid * n
            for p, c in enumerate(tuples[mid]):
                if c == _UNSENT or is_good[c]:
                    ok[base + p] = 1
        start, source, perms, _user = self._reverse
        stack = array("I")
        for sid, mid in enumerate(mids):
            for p, c in enumerate(tuples[mid]):
                if c == _UNSENT or not is_good[c]:
                    continue
                stack.append(sid * n + p)
                while stack:
                    dst, q = divmod(stack.pop(), n)
                    for k in range(start[dst], start[dst + 1]):
                        src = source[k]
                        p = inverse[perms[k]][q]
                        if not ok[src * n + p]:
                            codes = tuples[mids[src]]
                            mine = codes[p]
                            base = src * n
                            for twin in range(n):
                                if codes[twin] == mine and not ok[base + twin]:
                                    ok[base + twin] = 1
                                    stack.append(base + twin)
        empty: list[int] = []

        def lost(sid: int) -> list[int]:
            row = ok[sid * n : sid * n + n]
            return [p for p in range(n) if not row[p]] if 0 in row else empty

        return _View(len(keys), lost)

    def cannot_settle(self, *, unaided: bool = False) -> int | None:
        """The first state from which no settled state is reachable, if any."""
        return next((i for i, ok in enumerate(self.can_settle(unaided=unaided)) if not ok), None)

    def can_settle(self, *, unaided: bool = False) -> Sequence[bool]:
        """For every state, whether a settled state is reachable from it.

        With ``unaided``, only steps the user does not take count.
        """
        key = "unaided" if unaided else "all"
        cached = self._settle_cache.get(key)
        if cached is not None:
            return cached
        codec = self._codec
        settled = [
            all(_settled(m) for m in codec.messages(mid)) for mid in range(len(codec.tuples))
        ]
        good = bytearray(settled[key // _GLOBALS] for key in self._keys)
        start, source, _perms, user = self._reverse
        stack = array("I")
        for sid in range(len(good)):
            if not settled[self._keys[sid] // _GLOBALS]:
                continue
            stack.append(sid)
            while stack:
                dst = stack.pop()
                for k in range(start[dst], start[dst + 1]):
                    if unaided and user[k]:
                        continue
                    src = source[k]
                    if not good[src]:
                        good[src] = 1
                        stack.append(src)
        result = self.per_state(lambda sid: bool(good[sid]))
        self._settle_cache[key] = result
        return result

    @cached_property
    def _settle_cache(self) -> dict[str, Sequence[bool]]:
        return {}


# -- the search -------------------------------------------------------------------------
class _Progress:
    """A progress line on standard error, for long explorations on a terminal."""

    def __init__(self) -> None:
        self.started = _clock()
        self.shown = False
        self.next = self.started + PROGRESS_AFTER
        self.live = sys.stderr.isatty()

    def tick(self, states: int) -> None:
        now = _clock()
        if now >= self.next:
            self.show(states, now)
            self.next = now + 0.5

    def show(self, states: int, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        sys.stderr.write(
            f"\rexploring: {states:,} states, {states / elapsed:,.0f} states/s, "
            f"{elapsed:.1f} s\x1b[K"
        )
        sys.stderr.flush()
        self.shown = True

    def done(self, states: int) -> None:
        if self.shown:
            self.show(states, _clock())
            sys.stderr.write("\n")
            sys.stderr.flush()


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
    replaces the system's initial world. An exploration that takes more than
    :data:`PROGRESS_AFTER` seconds prints a progress line on standard error
    when that is a terminal; ``max_states`` stops it with
    :class:`~fsm.model.errors.StateLimitExceeded`.
    """
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects, none of them in a cycle
    try:
        return _Search(system, symmetry).run(max_states, start)
    finally:
        if was_enabled:
            gc.enable()


#: Actions that touch only the message whose row fired them, or besides set
#: every message's membership of the pending-retry list.
_NEARLY_LOCAL = LOCAL_ACTIONS | {
    a
    for a in Action
    if a.meaning.hold_all is not None
    and a.meaning.socket is None
    and a.meaning.hold is None
    and a.meaning.each_held is None
    and a.meaning.each_on_server is None
}

#: The memo tables of steps between multisets are dropped when they reach this size.
_MEMO_LIMIT = 1 << 14

#: Marks a memo entry for a step that is not local to its message.
_NOT_LOCAL = (-1, 0)


class _Search:
    """One breadth-first search, with the memo tables it learns as it goes."""

    def __init__(self, system: System, symmetry: bool) -> None:
        self.system = system
        self.symmetry = symmetry
        self.n = system.n
        self.codec = _Codec(system.n, symmetry)
        behaviour = system.behaviour
        effects = behaviour.effects
        # The global part of every step is a function of the stimulus and the
        # global part alone unless a message row or a per-message effect moves
        # the socket; then every memo is keyed on the whole global part.
        per_message = [
            a
            for h in (Hook.accept, Hook.rest_succeeded, Hook.rest_attempt_fails)
            for a in effects.actions(h)
        ] + [a for row in behaviour.message for a in row.actions]
        self.loose = any(a.meaning.socket is not None for a in per_message)
        self.ack_socket_only = set(effects.actions(Hook.connection_acknowledged)) <= SOCKET_ACTIONS
        # A connection step acts on each message on its own (so it is learnt one
        # message at a time) when every message row touches only its message.
        self.separable = (
            not self.loose
            and all(set(row.actions) <= LOCAL_ACTIONS for row in behaviour.message)
            and not any(
                a.meaning.hold is not None
                for a in (
                    *(a for row in behaviour.connection for a in row.actions),
                    *effects.actions(Hook.connection_acknowledged),
                )
            )
        )
        self.rules: dict[int, list[tuple[ForbiddenRule, int]]] = {}
        bits = {rule.id: 1 << k for k, rule in enumerate(FORBIDDEN)}
        for name, table in (("connection", system.connection), ("message", system.message)):
            for row in table:
                self.rules[id(row)] = [
                    (r, bits[r.id]) for r in FORBIDDEN if r.machine == name and r.matches_row(row)
                ]
        # (label id, global or its connection/socket part, code) -> (code after, rule mask)
        self.local: dict[int, tuple[int, int]] = {}
        # (label id, global or its connection/socket part, multiset)
        #   -> (packed multiset and permutation, rule mask, global code after)
        self.whole: dict[int, tuple[int, int, int]] = {}
        # (multiset, index, code) -> packed multiset and permutation
        self.replaced: dict[int, int] = {}
        self.cleared: dict[int, int] = {}
        # (label id, connection/socket part, code) -> (code after, rule mask)
        self.each: dict[int, tuple[int, int]] = {}
        # (label, connection/socket part, code of the message aimed at, another code)
        #   -> (their codes after, rule mask)
        self.pairs: dict[int, tuple[int, int, int]] = {}
        # Per global code: the sends and connection steps it allows, learnt on first use.
        self.steps: list[list[tuple[int, int, int, int]] | None] = [None] * _GLOBALS
        self.sends: list[list[tuple[int, int]] | None] = [None] * _GLOBALS

    def mask(self, t: Transition) -> int:
        mask = 0
        for f in t.fired:
            for rule, bit in self.rules[id(f.row)]:
                if rule.matches_step(f.row, f.connection):
                    mask |= bit
        return mask

    def each_message(self, lid: int, g: int, c: int) -> tuple[int, int]:
        """What connection step ``lid`` out of global code ``g`` does to a message with
        code ``c`` (for a separable step), and the rules it takes; memoised."""
        memo = ((lid * _GLOBALS + (g >> 2)) << 11) + c
        hit = self.each.get(memo)
        if hit is None:
            stimulus = _label(lid, self.n)[0]
            probe = World(*_GLOBAL[g], (self.codec.decode(c),))
            (t,) = (
                t
                for t in self.system.successors(probe)
                if t.stimulus is stimulus and t.message is None
            )
            hit = self.each[memo] = (self.codec.encode(t.target.messages[0]), self.mask(t))
        return hit

    def aimed_pair(self, lid: int, g: int, ci: int, c: int) -> tuple[int, int, int]:
        """What the step ``lid`` aimed at message 0 out of global code ``g`` does
        to it (code ``ci``) and to another message (code ``c``), and the rules it
        takes, in a separable design; memoised."""
        n1 = self.n + 1
        no = len(_OUTCOMES) + 1
        kind = lid // (n1 * no) * n1 * no + lid % no  # the label without the message
        memo = ((((kind * _GLOBALS + (g >> 2)) << 11) + ci) << 11) + c
        hit = self.pairs.get(memo)
        if hit is None:
            stimulus, _i, outcome = _label(lid, self.n)
            decode = self.codec.decode
            probe = World(*_GLOBAL[g], (decode(ci), decode(c)))
            (t,) = (
                t
                for t in self.system.successors(probe)
                if t.stimulus is stimulus and t.outcome is outcome and t.message == 0
            )
            encode = self.codec.encode
            hit = (encode(t.target.messages[0]), encode(t.target.messages[1]), self.mask(t))
            self.pairs[memo] = hit
            # Whether the step touches only message 0 (and at most every held flag).
            before: tuple[Action, ...] = ()
            after: tuple[Action, ...] = ()
            if stimulus is Stimulus.send:
                before = self.system.on_accept
            elif stimulus is Stimulus.rest_ok:
                after = self.system.behaviour.effects.actions(Hook.rest_succeeded)
            run = [*before, *(a for f in t.fired for a in f.row.actions), *after]
            key = ((kind * _GLOBALS + (g >> 2)) << 11) + ci
            if set(run) <= _NEARLY_LOCAL and all(f.message == 0 for f in t.fired):
                held = [a.meaning.hold_all for a in run if a.meaning.hold_all is not None]
                v = int(held[-1]) if held else -1
                x = hit[0] if not self.symmetry else self.codec.canon(hit[0])
                self.local.setdefault(key, (x * 3 + v + 1, hit[2]))
            else:
                self.local.setdefault(key, _NOT_LOCAL)
        return hit

    def aimed_step(self, lid: int, i: int, g: int, mid: int) -> tuple[int, int]:
        """Step ``lid`` aimed at message ``i`` of multiset ``mid`` out of global code
        ``g``, one pair of messages at a time: the arranged target, the rule mask."""
        codes = self.codec.tuples[mid]
        ci = codes[i]
        raw = list(codes)
        mask = 0
        for k, c in enumerate(codes):
            if k != i or len(codes) == 1:
                after_i, after, m = self.aimed_pair(lid, g, ci, _UNSENT if k == i else c)
                raw[i] = after_i
                if k != i:
                    raw[k] = after
                mask |= m
        return self.codec.arrange(raw), mask

    def learn_global(self, g: int) -> None:
        """The sends and connection steps global code ``g`` allows, from two probe worlds."""
        c, s, fg, net = _GLOBAL[g]
        n = self.n
        sends: list[tuple[int, int]] = []
        for t in self.system.successors(World(c, s, fg, net, (Message(),))):
            if t.stimulus is Stimulus.send:
                assert t.outcome is not None
                sends.append((_OUTCOMES.index(t.outcome), _global_code(t.target)))
        probe = Message(MessageState.sent_ws, False, 1, 0, True)
        steps: list[tuple[int, int, int, int]] = []
        for t in self.system.successors(World(c, s, fg, net, (probe,))):
            if t.stimulus is Stimulus.send or t.message is not None:
                continue
            socket_only = (
                all(f.message is None and set(f.row.actions) <= SOCKET_ACTIONS for f in t.fired)
                and (t.stimulus is not Stimulus.handshake_ack or self.ack_socket_only)
                and not self.loose
            )
            # 0: learn from the whole multiset; 1: messages unchanged; 2: done owed
            # dies; 3: learn one message at a time.
            if socket_only:
                how = 2 if not t.target.messages[0].done_owed else 1
            else:
                how = 3 if self.separable else 0
            lid = _label_id((t.stimulus, None, None), n)
            steps.append((lid, _global_code(t.target), how, self.mask(t) if how in (1, 2) else 0))
        self.sends[g] = sends
        self.steps[g] = steps

    def run(self, max_states: int | None, start: World | None) -> Exploration:
        system, codec, n, symmetry = self.system, self.codec, self.n, self.symmetry
        successors = system.successors
        first_world = system.initial() if start is None else start
        packed = codec.arrange([codec.encode(m) for m in first_world.messages])
        first_key = (packed >> _PERM_BITS) * _GLOBALS + _global_code(first_world)
        # The global codes a state can have, each given a slot: every multiset has
        # a row of slots in ``index`` holding the state id of (multiset, global).
        slot_of = [-1] * _GLOBALS
        if self.loose:
            reachable = list(range(_GLOBALS))
        else:
            reachable = [_global_code(first_world)]
            seen = set(reachable)
            for g in reachable:
                self.learn_global(g)
                for g2 in [g2 for _o, g2 in self.sends[g] or ()] + [
                    step[1] for step in self.steps[g] or ()
                ]:
                    if g2 not in seen:
                        seen.add(g2)
                        reachable.append(g2)
        for slot, g in enumerate(reachable):
            slot_of[g] = slot
        width = len(reachable)
        row = array("i", [-1]) * width
        index = array("i")
        keys = array("Q", [first_key])
        parents = array("I", [0])
        label_count = len(_STIMULI) * (n + 1) * (len(_OUTCOMES) + 1)
        labels = array("H" if label_count < 1 << 16 else "I", [0])
        offsets = array("I", [0])
        targets = array("I")
        perms = array("H")
        user = bytearray()
        rule_hits: dict[str, tuple[int, Transition]] = {}
        hit_mask = 0

        local, whole, replaced, cleared = self.local, self.whole, self.replaced, self.cleared
        tuples, first_unsent, candidates = codec.tuples, codec.first_unsent, codec.candidates
        has_done = codec.has_done
        canon = codec.canon if symmetry else None
        loose = self.loose
        perm_mask = (1 << _PERM_BITS) - 1
        step_table, send_table = self.steps, self.sends
        no = len(_OUTCOMES) + 1
        send_base = _STIMULI.index(Stimulus.send) * (n + 1) * no
        msg_stimuli = [
            (Stimulus.done, _STIMULI.index(Stimulus.done) * (n + 1) * no),
            (Stimulus.rest_ok, _STIMULI.index(Stimulus.rest_ok) * (n + 1) * no),
            (Stimulus.rest_error, _STIMULI.index(Stimulus.rest_error) * (n + 1) * no),
            (
                Stimulus.rest_lost_response,
                _STIMULI.index(Stimulus.rest_lost_response) * (n + 1) * no,
            ),
        ]
        done_base, ok_base, error_base, lost_base = (b for _s, b in msg_stimuli)
        progress = _Progress()
        tick = progress.tick if progress.live else None
        rest_succeeded = system.behaviour.effects.actions(Hook.rest_succeeded)
        # Per global code and kind of message: the steps aimed at it, in order.
        aimed: list[tuple[int, ...]] = []
        for g in range(_GLOBALS):
            _c, socket, fg, net = _GLOBAL[g]
            for kind in range(4):
                done, rest = kind & 2, kind & 1
                aimed.append(
                    tuple(
                        base
                        for base, enabled in (
                            (done_base, done and socket is Socket.open),
                            (ok_base, rest and fg and net),
                            (error_base, rest and fg),
                            (lost_base, rest and fg and net),
                        )
                        if enabled
                    )
                )
        is_user = bytearray(label_count)
        for lid in range(label_count):
            is_user[lid] = _label(lid, n)[0] in USER_STIMULI

        def replace(mid: int, i: int, x: int) -> int:
            """The multiset ``mid`` with message ``i`` now ``x // 3``, and every other
            message's ``held`` set to ``x % 3 - 1`` unless that is -1; arranged."""
            memo = (mid * n + i) * _CODES * 3 + x
            hit = replaced.get(memo)
            if hit is None:
                code, v = divmod(x, 3)
                if canon is not None and not v:
                    hit = moved(mid, i, code)
                    if len(replaced) >= _MEMO_LIMIT:
                        replaced.clear()
                    replaced[memo] = hit
                    return hit
                codes = list(tuples[mid])
                if v:
                    bit = (v - 1) << 7
                    codes = [c & ~0x80 | bit for c in codes]
                codes[i] = code
                hit = (
                    codec.intern(tuple(codes)) << _PERM_BITS
                    if canon is None
                    else codec.arrange(codes)
                )
                if len(replaced) >= _MEMO_LIMIT:
                    replaced.clear()
                replaced[memo] = hit
            return hit

        moves: dict[int, int] = {}

        def moved(mid: int, i: int, code: int) -> int:
            """Sorted multiset ``mid`` with message ``i`` now ``code`` (canonical),
            arranged: the message moves to its place, the others keep their order."""
            codes = tuples[mid]
            old = codes[i]
            if code == old:
                return mid << _PERM_BITS
            p = bisect_left(codes, code) - 1 if code > old else bisect_right(codes, code)
            others = codes[:i] + codes[i + 1 :]
            new = (*others[:p], code, *others[p:])
            pid = moves.get(i * n + p)
            if pid is None:
                positions = [k if k < i else k - 1 for k in range(n)]
                positions = [k if k < p else k + 1 for k in positions]
                positions[i] = p
                pid = moves[i * n + p] = codec.perm(tuple(positions))
            return codec.intern(new) << _PERM_BITS | pid

        def clear(mid: int) -> int:
            hit = cleared.get(mid)
            if hit is None:
                if len(cleared) >= _MEMO_LIMIT:
                    cleared.clear()
                hit = cleared[mid] = codec.arrange([c & ~1 for c in tuples[mid]])
            return hit

        def learn(t: Transition, lid: int, gpart: int, g: int, mid: int) -> tuple[int, int, int]:
            """Memoise step ``t`` (label ``lid``) out of (``g``, ``mid``); its packed
            target multiset and permutation, rule mask and target global code."""
            assert _label_id(t.label, n) == lid, (t.label, _label(lid, n))
            mask = self.mask(t)
            target = t.target
            g2 = _global_code(target)
            result = codec.arrange([codec.encode(m) for m in target.messages])
            i = t.message
            if not loose and i is not None:
                # Local: every row fired is message i's and touches no other
                # message but through "every held := v", which the last such
                # action decides for all of them.
                before: tuple[Action, ...] = ()
                after: tuple[Action, ...] = ()
                if t.stimulus is Stimulus.send:
                    before = system.on_accept
                elif t.stimulus is Stimulus.rest_ok:
                    after = rest_succeeded
                run = [*before, *(a for f in t.fired for a in f.row.actions), *after]
                is_local = set(run) <= _NEARLY_LOCAL and all(f.message == i for f in t.fired)
                code = tuples[mid][i]
                memo = (((lid - (i + 1) * no) * _GLOBALS + gpart) << 11) + code
                if is_local:
                    held = [a.meaning.hold_all for a in run if a.meaning.hold_all is not None]
                    v = int(held[-1]) if held else -1
                    moved = codec.encode(target.messages[i])
                    x = (moved if canon is None else canon(moved)) * 3 + v + 1
                    local[memo] = (x, mask)
                    return replace(mid, i, x), mask, g2
                local[memo] = _NOT_LOCAL
            if len(whole) >= _MEMO_LIMIT:
                whole.clear()
            whole[(mid * label_count + lid) * _GLOBALS + gpart] = (result, mask, g2)
            return result, mask, g2

        while len(index) < len(tuples) * width:
            index.extend(row)
        index[(packed >> _PERM_BITS) * width + slot_of[_global_code(first_world)]] = 0
        each = self.each_message
        aimed_step = self.aimed_step
        separable = self.separable
        sid = 0
        while sid < len(keys):
            key = keys[sid]
            mid, g = divmod(key, _GLOBALS)
            gpart = g if loose else g >> 2
            steps = step_table[g]
            if steps is None:
                self.learn_global(g)
                steps = step_table[g]
                assert steps is not None
            sends = send_table[g]
            assert sends is not None
            transitions: list[Transition] | None = None
            k = 0  # the step's position in System.successors
            edges: list[tuple[int, int, int, int]] = []  # (label, packed, mask, global)

            # Sends, in System.successors' order.
            i = first_unsent[mid]
            if i >= 0 and sends:
                for outcome, g2 in sends:
                    lid = send_base + (i + 1) * no + outcome + 1
                    hit = local.get((((lid - (i + 1) * no) * _GLOBALS + gpart) << 11) + _UNSENT)
                    if hit is not None and hit[0] >= 0:
                        edges.append((lid, replace(mid, i, hit[0]), hit[1], g2))
                    else:
                        w = whole.get((mid * label_count + lid) * _GLOBALS + gpart)
                        if w is not None:
                            edges.append((lid, w[0], w[1], w[2] if loose else g2))
                        elif separable:
                            arranged, mask = aimed_step(lid, i, g, mid)
                            if len(whole) >= _MEMO_LIMIT:
                                whole.clear()
                            whole[(mid * label_count + lid) * _GLOBALS + gpart] = (
                                arranged,
                                mask,
                                g2,
                            )
                            edges.append((lid, arranged, mask, g2))
                        else:
                            if transitions is None:
                                transitions = successors(codec.world(key), up_to_symmetry=symmetry)
                            edges.append((lid, *learn(transitions[k], lid, gpart, g, mid)))
                    k += 1
            # Connection steps.
            for lid, g2, how, mask in steps:
                if how == 1 or (how == 2 and not has_done[mid]):
                    edges.append((lid, mid << _PERM_BITS, mask, g2))
                elif how == 2:
                    edges.append((lid, clear(mid), mask, g2))
                else:
                    w = whole.get((mid * label_count + lid) * _GLOBALS + gpart)
                    if w is not None:
                        edges.append((lid, w[0], w[1], w[2] if loose else g2))
                    elif how == 3:
                        raw = []
                        mask = 0
                        for c in tuples[mid]:
                            c2, m2 = each(lid, g, c)
                            raw.append(c2)
                            mask |= m2
                        arranged = codec.arrange(raw)
                        if len(whole) >= _MEMO_LIMIT:
                            whole.clear()
                        whole[(mid * label_count + lid) * _GLOBALS + gpart] = (arranged, mask, g2)
                        edges.append((lid, arranged, mask, g2))
                    else:
                        if transitions is None:
                            transitions = successors(codec.world(key), up_to_symmetry=symmetry)
                        edges.append((lid, *learn(transitions[k], lid, gpart, g, mid)))
                k += 1
            # Steps aimed at one message: done, and the REST outcomes.
            for i, code, kind in candidates[mid]:
                for base in aimed[g << 2 | kind]:
                    lid = base + (i + 1) * no
                    hit = local.get(((base * _GLOBALS + gpart) << 11) + code)
                    if hit is not None and hit[0] >= 0:
                        edges.append((lid, replace(mid, i, hit[0]), hit[1], g))
                    else:
                        w = whole.get((mid * label_count + lid) * _GLOBALS + gpart)
                        if w is not None:
                            edges.append((lid, w[0], w[1], w[2] if loose else g))
                        elif separable:
                            arranged, mask = aimed_step(lid, i, g, mid)
                            if len(whole) >= _MEMO_LIMIT:
                                whole.clear()
                            whole[(mid * label_count + lid) * _GLOBALS + gpart] = (
                                arranged,
                                mask,
                                g,
                            )
                            edges.append((lid, arranged, mask, g))
                        else:
                            if transitions is None:
                                transitions = successors(codec.world(key), up_to_symmetry=symmetry)
                            edges.append((lid, *learn(transitions[k], lid, gpart, g, mid)))
                    k += 1

            while len(index) < len(tuples) * width:
                index.extend(row)
            for e, (lid, arranged, mask, g2) in enumerate(edges):
                mid2 = arranged >> _PERM_BITS
                at = mid2 * width + slot_of[g2]
                tid = index[at]
                if tid < 0:
                    tid = len(keys)
                    if max_states is not None and tid >= max_states:
                        progress.done(tid)
                        raise StateLimitExceeded(max_states)
                    index[at] = tid
                    keys.append(mid2 * _GLOBALS + g2)
                    parents.append(sid)
                    labels.append(lid)
                    if tick is not None and not tid & 0x1FFF:
                        tick(tid)
                targets.append(tid)
                pid = arranged & perm_mask
                if pid > 0xFFFF and perms.typecode == "H":
                    perms = array("I", perms)
                perms.append(pid)
                user.append(is_user[lid])
                if mask & ~hit_mask:
                    if transitions is None:
                        transitions = successors(codec.world(key), up_to_symmetry=symmetry)
                    t = transitions[e]
                    for f in t.fired:
                        for rule, bit in self.rules[id(f.row)]:
                            if rule.id not in rule_hits and rule.matches_step(f.row, f.connection):
                                rule_hits[rule.id] = (sid, t)
                                hit_mask |= bit
            offsets.append(len(targets))
            sid += 1
        progress.done(len(keys))
        del index
        return Exploration(
            system, codec, keys, parents, labels, offsets, targets, perms, user, rule_hits
        )
