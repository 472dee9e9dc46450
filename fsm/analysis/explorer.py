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
* the messages of a world are a row of codes, known by a *multiset key* (the
  codes renumbered densely, packed into one integer) and a *multiset id*;
* the global part (connection state, socket, foreground, network) is a code below
  ``len(ConnectionState) * len(Socket) * 4``; a state is ``multiset * that + global``.

The search expands states in id order, a batch of a few thousand at a time,
with numpy: each kind of step (a send with each outcome, each connection
stimulus, done and each REST outcome for each message) is applied to the whole
batch at once, and the new states are numbered exactly as a one-by-one
breadth-first search numbers them. What a kind of step does is learnt from
:class:`System` the first time it is needed and memoised on exactly what it
depends on (see :class:`_Search`); most steps are then table look-ups on arrays
of codes, a sort of each row and a look-up of the row's key. The reachable
graph is kept in flat arrays (successor ids, permutation ids, a flag for steps
the user takes); :class:`Exploration` turns states back into worlds where
traces, explanations and diagrams need them, and answers the backward questions
with :mod:`fsm.analysis.backward`.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from functools import cached_property
from typing import Any, NamedTuple, TypeVar, overload

import numpy as np
from numpy.typing import NDArray

from fsm.analysis.backward import doomed_pairs, settle_reachable
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
from fsm.model.errors import SpecError, StateLimitExceeded, require_int
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.vocabulary import Action, ConnectionState, Hook, Meaning, MessageState, Socket

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
#: Bits of a global code in a state's search key.
_GLOBAL_BITS = 7
_CODES = 1 << 11


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


class _Memo:
    """Values for int64 keys in sorted arrays, looked up and added a batch at a time."""

    def __init__(self, *dtypes: type[np.generic]) -> None:
        self.keys: NDArray[np.int64] = np.empty(0, np.int64)
        self.columns: list[NDArray[Any]] = [np.empty(0, dt) for dt in dtypes]

    def __len__(self) -> int:
        return len(self.keys)

    def find(self, keys: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.intp]]:
        """For each key, whether it is known and where its values are."""
        if not len(self.keys):
            return np.zeros(len(keys), np.bool_), np.zeros(len(keys), np.intp)
        at = np.searchsorted(self.keys, keys)
        np.minimum(at, len(self.keys) - 1, out=at)
        return self.keys[at] == keys, at

    def add(self, keys: NDArray[np.int64], *values: NDArray[Any]) -> None:
        """Add new keys (sorted, none known yet) with their values."""
        at = np.searchsorted(self.keys, keys)
        self.keys = np.insert(self.keys, at, keys)
        self.columns = [np.insert(c, at, v) for c, v in zip(self.columns, values, strict=True)]

    def clear(self) -> None:
        self.keys = self.keys[:0]
        self.columns = [c[:0] for c in self.columns]


class _Codec:
    """Codes for messages, multisets of them and permutations, for one system.

    A multiset is stored as a row of message codes (sorted when the symmetry
    reduction is on) and known by a *multiset key*: the row's codes renumbered
    densely in order of first appearance, ``bits`` bits each, packed into one
    integer. Its *multiset id* numbers the multisets in order of first
    appearance; a state key is ``multiset id * _GLOBALS + global code``.
    """

    def __init__(self, n: int, symmetry: bool) -> None:
        self.n = n
        self.symmetry = symmetry
        self.bits = 6 if n * 6 + _GLOBAL_BITS <= 63 else 5
        if n * self.bits + _GLOBAL_BITS > 63:
            raise SpecError(f"the explorer encodes at most 11 messages, got {n}")
        self.message: dict[int, Message] = {}
        self.code: dict[Message, int] = {}
        self.canonical: dict[int, int] = {}
        #: For every code a message can have, the code the symmetry reduction stores.
        self.canonical_codes = np.array(
            [
                self.canon(c) if c >> 8 < len(_ORDERED_STATES) and (c >> 5 & 3) < 3 else c
                for c in range(_CODES)
            ],
            np.int16,
        )
        #: Dense numbers of the codes seen so far, and the codes by number.
        self.number = np.full(_CODES, -1, np.int64)
        self.numbered = np.zeros(1 << self.bits, np.int16)
        self.count = 0
        self.shifts = np.arange(n, dtype=np.int64) * self.bits
        #: Rows of codes by multiset id, and each multiset's key.
        self.rows: NDArray[np.int16] = np.zeros((64, n), np.int16)
        self.mkeys: NDArray[np.int64] = np.zeros(64, np.int64)
        self.multisets = 0
        self.index = _Memo(np.int32)
        self.perms: list[tuple[int, ...]] = []
        self.perm_id: dict[int, int] = {}
        self.perm(tuple(range(n)))  # the identity is permutation 0
        self.decoded: dict[int, tuple[Message, ...]] = {}

    # -- single messages -------------------------------------------------------------
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

    # -- rows of codes ---------------------------------------------------------------
    def arrange(self, rows: NDArray[np.int16]) -> tuple[NDArray[np.int64], NDArray[np.int32]]:
        """Multiset keys and permutation ids of raw rows of message codes.

        With the symmetry reduction each row is canonicalised and sorted (twins
        keep their order); the permutation says where each message went.
        """
        count = len(rows)
        if not self.symmetry:
            return self.pack(rows), np.zeros(count, np.int32)
        n = self.n
        keyed = self.canonical_codes[rows].astype(np.int32) << 4
        keyed |= np.arange(n, dtype=np.int32)
        keyed.sort(axis=1)
        old = keyed & 15
        positions = np.empty_like(old)
        np.put_along_axis(
            positions, old, np.broadcast_to(np.arange(n, dtype=np.int32), old.shape), 1
        )
        packed = (positions.astype(np.int64) << (np.arange(n, dtype=np.int64) * 4)).sum(1)
        unique, inverse = np.unique(packed, return_inverse=True)
        ids = np.empty(len(unique), np.int32)
        for k, p in enumerate(unique.tolist()):
            pid = self.perm_id.get(p)
            ids[k] = self.perm(tuple((p >> (4 * j)) & 15 for j in range(n))) if pid is None else pid
        return self.pack((keyed >> 4).astype(np.int16)), ids[inverse.reshape(-1)]

    def perm(self, positions: tuple[int, ...]) -> int:
        """The id of the permutation that takes message ``i`` to ``positions[i]``."""
        packed = sum(p << (4 * j) for j, p in enumerate(positions))
        pid = self.perm_id.get(packed)
        if pid is None:
            pid = self.perm_id[packed] = len(self.perms)
            if pid > 0x7FFF:
                raise SpecError("too many message permutations for the explorer's encoding")
            self.perms.append(positions)
        return pid

    def pack(self, rows: NDArray[np.int16]) -> NDArray[np.int64]:
        """The multiset keys of rows already in stored order."""
        numbers = self.number[rows]
        if (numbers < 0).any():
            for c in np.unique(rows[numbers < 0]).tolist():
                if self.count >= 1 << self.bits:
                    raise SpecError(
                        f"more than {1 << self.bits} kinds of message for the explorer's encoding"
                    )
                self.number[c] = self.count
                self.numbered[self.count] = c
                self.count += 1
            numbers = self.number[rows]
        packed: NDArray[np.int64] = (numbers << self.shifts).sum(1)
        return packed

    def unpack(self, mkeys: NDArray[np.int64]) -> NDArray[np.int16]:
        mask = (1 << self.bits) - 1
        rows: NDArray[np.int16] = self.numbered[(mkeys[:, None] >> self.shifts) & mask]
        return rows

    def intern(self, mkeys: NDArray[np.int64]) -> NDArray[np.int32]:
        """The multiset ids of multiset keys, numbering the new ones."""
        found, at = self.index.find(mkeys)
        if not found.all():
            new = np.unique(mkeys[~found])
            first = self.multisets
            self.multisets += len(new)
            while self.multisets > len(self.mkeys):
                self.rows = np.concatenate([self.rows, np.zeros_like(self.rows)])
                self.mkeys = np.concatenate([self.mkeys, np.zeros_like(self.mkeys)])
            self.rows[first : self.multisets] = self.unpack(new)
            self.mkeys[first : self.multisets] = new
            self.index.add(new, np.arange(first, self.multisets, dtype=np.int32))
            found, at = self.index.find(mkeys)
        mids: NDArray[np.int32] = self.index.columns[0][at]
        return mids

    def trim(self) -> None:
        self.rows = self.rows[: self.multisets].copy()
        self.mkeys = self.mkeys[: self.multisets].copy()

    # -- worlds ----------------------------------------------------------------------
    def messages(self, mid: int) -> tuple[Message, ...]:
        hit = self.decoded.get(mid)
        if hit is None:
            if len(self.decoded) >= _DECODED_LIMIT:
                self.decoded.clear()
            hit = self.decoded[mid] = tuple(self.decode(c) for c in self.rows[mid].tolist())
        return hit

    def world(self, key: int) -> World:
        mid, g = divmod(key, _GLOBALS)
        c, s, fg, net = _GLOBAL[g]
        return World(c, s, fg, net, self.messages(mid))

    def key(self, world: World) -> tuple[int, tuple[int, ...]]:
        """A concrete world's state key, and where each of its messages went;
        :class:`KeyError` when its multiset was never seen."""
        rows = np.array([[self.encode(m) for m in world.messages]], np.int16)
        mkeys, pids = self.arrange(rows)
        found, at = self.index.find(mkeys)
        if not found[0]:
            raise KeyError(world)
        mid = int(self.index.columns[0][at[0]])
        return mid * _GLOBALS + _global_code(world), self.perms[int(pids[0])]


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
        for start in range(0, len(self._flags), _BATCH):
            yield from self._flags[start : start + _BATCH].tolist()

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
        keys: NDArray[np.int64],
        parents: NDArray[np.int32],
        labels: NDArray[np.int16] | NDArray[np.int32],
        offsets: NDArray[np.int32] | NDArray[np.int64],
        targets: NDArray[np.int32],
        perms: NDArray[np.int16],
        user: NDArray[np.bool_],
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
        self.parent: Sequence[int] = _View(n, lambda sid: int(parents[sid]))
        self.worlds: Sequence[World] = _View(n, lambda sid: codec.world(int(keys[sid])))
        self.via: Sequence[Label | None] = _View(
            n, lambda sid: None if sid == 0 else _label(int(labels[sid]), system.n)
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

    def first(self, predicate: Callable[[World], bool]) -> int | None:
        """The first state (in BFS order) whose world satisfies ``predicate``."""
        codec, globals_ = self._codec, _GLOBAL
        decode = codec.decode
        seen: dict[int, tuple[Message, ...]] = {}  # every multiset decoded once per scan
        for start in range(0, len(self._keys), _BATCH):
            for sid, key in enumerate(self._keys[start : start + _BATCH].tolist(), start):
                mid, g = divmod(key, _GLOBALS)
                messages = seen.get(mid)
                if messages is None:
                    messages = seen[mid] = tuple(map(decode, codec.rows[mid].tolist()))
                c, s, fg, net = globals_[g]
                if predicate(World(c, s, fg, net, messages)):
                    return sid
        return None

    def first_with_a_message(self, predicate: Callable[[Message], bool]) -> int | None:
        """The first state (in BFS order) with a message that satisfies ``predicate``;
        each kind of message is judged once."""
        flags = np.any(self._codes_where(predicate)[self._codec.rows], axis=1)
        hits = np.flatnonzero(flags[self._mids])
        return int(hits[0]) if len(hits) else None

    def first_by_global(self, predicate: Callable[[World], bool]) -> int | None:
        """The first state (in BFS order) whose world satisfies ``predicate``, a
        predicate of the connection state, socket, foreground and network only;
        each of their combinations is judged once."""
        flags = np.array([predicate(World(*part, ())) for part in _GLOBAL], np.bool_)
        hits = np.flatnonzero(flags[self._keys % _GLOBALS])
        return int(hits[0]) if len(hits) else None

    # -- backward analyses ------------------------------------------------------------
    @cached_property
    def _mids(self) -> NDArray[np.int32]:
        """The multiset id of every state."""
        mids: NDArray[np.int32] = (self._keys // _GLOBALS).astype(np.int32)
        return mids

    def _codes_where(self, good: Callable[[Message], bool]) -> NDArray[np.bool_]:
        """For every code a message can have, whether ``good`` holds of it."""
        codec = self._codec
        flags = np.zeros(_CODES, np.bool_)
        for c in codec.numbered[: codec.count].tolist():
            flags[c] = good(codec.decode(c))
        return flags

    @cached_property
    def lost_by_state(self) -> Sequence[list[int]]:
        """For every state, the messages lost in it.

        A message is lost when it is :meth:`~fsm.analysis.system.System.undelivered`
        and no path from the state delivers it or shows it as failed: nothing
        holds it anywhere it will be retried from.
        """
        return self.doomed(_delivered_or_failed)

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
            self._codes_where(good),
            _UNSENT,
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
            settled_code = self._codes_where(_settled)
            settled = np.all(settled_code[self._codec.rows], axis=1)
            cached = self._settle_cache[key] = settle_reachable(
                settled[self._mids], self._offsets, self._targets, self._user, unaided=unaided
            )
        return cached

    @cached_property
    def _settle_cache(self) -> dict[str, NDArray[np.bool_]]:
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
    if max_states is not None:
        require_int("max_states", max_states, minimum=1)
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects, none of them in a cycle
    try:
        return _Search(system, symmetry).run(max_states, start)
    finally:
        if was_enabled:
            gc.enable()


def _touches_only_its_message(m: Meaning) -> bool:
    """Apart from setting every held flag."""
    return m.socket is None and m.each_held is None and m.each_on_server is None


def _touches_only_the_socket(m: Meaning) -> bool:
    """Apart from setting every held flag."""
    return m.hold is None and m.each_held is None and m.each_on_server is None


def _runs_on_each_held(m: Meaning) -> bool:
    """Runs a row on each held message, and nothing else but setting every held flag."""
    return (
        m.each_held is not None and m.socket is None and m.hold is None and m.each_on_server is None
    )


#: Actions that touch only the message whose row fired them, or besides set
#: every message's membership of the pending-retry list.
_NEARLY_LOCAL = frozenset(a for a in Action if _touches_only_its_message(a.meaning))

#: The memo of steps learnt per whole multiset is dropped when it reaches this size.
_MEMO_LIMIT = 1 << 18
#: Decoded multisets kept for the views.
_DECODED_LIMIT = 1 << 12
#: States expanded together.
_BATCH = 2048

_SEND = _STIMULI.index(Stimulus.send)
_AIMED = [
    _STIMULI.index(s)
    for s in (Stimulus.done, Stimulus.rest_ok, Stimulus.rest_error, Stimulus.rest_lost_response)
]
_CONNECTION_STIMULI = [k for k in range(len(_STIMULI)) if k != _SEND and k not in _AIMED]
_UNKNOWN = -2
_NOT_LOCAL = -1


class _Aimed(NamedTuple):
    """Steps aimed at one message each, out of a batch of states, as parallel arrays."""

    #: The source's position in the batch.
    at: NDArray[Any]
    #: The step's place among its source's steps (see :meth:`_Layer.edges`).
    rank: NDArray[Any]
    #: The message it is aimed at.
    i: NDArray[Any]
    #: A send outcome (0-3), or 4 + which of done and the REST outcomes.
    kind: NDArray[Any]
    #: Its label id.
    lid: NDArray[Any]
    #: The global code after it.
    to: NDArray[Any]

    def take(self, which: NDArray[Any]) -> _Aimed:
        return _Aimed(*(column[which] for column in self))


class _Layer:
    """The steps out of one breadth-first layer, built one kind of step at a time."""

    def __init__(self) -> None:
        self.parts: list[tuple[NDArray[Any], ...]] = []

    def add(
        self,
        at: NDArray[Any],
        rank: NDArray[Any] | int,
        lid: NDArray[Any],
        mkey: NDArray[np.int64],
        pid: NDArray[Any],
        mask: NDArray[Any],
        g2: NDArray[Any],
    ) -> None:
        size = len(at)
        if size:
            self.parts.append(
                tuple(
                    np.broadcast_to(np.asarray(x), (size,))
                    for x in (at, rank, lid, mkey, pid, mask, g2)
                )
            )

    def edges(self, ranks: int) -> tuple[NDArray[Any], ...]:
        """The steps in breadth-first order: by source, then as System.successors lists them."""
        columns = [np.concatenate([p[k] for p in self.parts]) for k in range(7)]
        order = np.argsort(columns[0].astype(np.int64) * ranks + columns[1], kind="stable")
        return tuple(c[order] for c in columns)


def _grow(size: int, *columns: NDArray[Any]) -> None:
    """Make room for ``size`` entries in each column, growing it in place by a quarter."""
    for column in columns:
        if size > len(column):
            column.resize(max(size, len(column) * 5 // 4 + 1024), refcheck=False)


class _Search:
    """One breadth-first search, a layer at a time, with the memo tables it learns.

    A step is computed on whole layers of states with numpy. What a kind of
    step does is learnt from :meth:`System.successors` the first time it is
    needed and memoised on exactly what it depends on: the global part of a
    step on the stimulus and the global part only (no message row or
    per-message effect moves the socket, checked once per design); a step
    aimed at one message that touches only that message (and at most every
    message's pending-retry flag) on that message's code and the connection
    state and socket; in designs whose message rows touch only their own
    message, a connection step one message at a time and an aimed step one
    pair of messages at a time; anything else on the whole multiset.
    """

    def __init__(self, system: System, symmetry: bool) -> None:
        self.system = system
        self.symmetry = symmetry
        self.n = n = system.n
        self.codec = _Codec(n, symmetry)
        behaviour = system.behaviour
        effects = behaviour.effects
        per_message = [
            a
            for h in (Hook.accept, Hook.rest_succeeded, Hook.rest_attempt_fails)
            for a in effects.actions(h)
        ] + [a for row in behaviour.message for a in row.actions]
        #: Whether a message step may move the socket (then every step is learnt
        #: on the whole multiset and the whole global part).
        self.loose = any(a.meaning.socket is not None for a in per_message)
        self.ack_socket_only = set(effects.actions(Hook.connection_acknowledged)) <= SOCKET_ACTIONS
        #: Whether a connection step acts on each message on its own.
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
        # Otherwise a step may still act on each message on its own but for every
        # held flag, which one value replaces at once: when the rows it fires
        # touch only their message (or every held flag), checked step by step.
        values = {
            a.meaning.hold_all
            for a in (
                *(a for row in (*behaviour.message, *behaviour.connection) for a in row.actions),
                *(a for h in Hook for a in effects.actions(h)),
            )
            if a.meaning.hold_all is not None
        }
        self.spread = not self.loose and not self.separable and len(values) <= 1
        self.held_value = values.pop() if len(values) == 1 else False
        self.rules: dict[int, list[tuple[ForbiddenRule, int]]] = {}
        bits = {rule.id: 1 << k for k, rule in enumerate(FORBIDDEN)}
        for name, table in (("connection", system.connection), ("message", system.message)):
            for row in table:
                self.rules[id(row)] = [
                    (r, bits[r.id]) for r in FORBIDDEN if r.machine == name and r.matches_row(row)
                ]
        self.no = len(_OUTCOMES) + 1
        self.labels = len(_STIMULI) * (n + 1) * self.no
        # Per global code, learnt on first use: the global code after each send
        # outcome and each connection stimulus (-1: not enabled), how a connection
        # step treats the messages, its rule mask; which aimed steps it allows.
        self.known = np.zeros(_GLOBALS, np.bool_)
        self.send_to = np.full((_GLOBALS, len(_OUTCOMES)), -1, np.int16)
        self.step_to = np.full((_GLOBALS, len(_STIMULI)), -1, np.int16)
        self.step_how = np.zeros((_GLOBALS, len(_STIMULI)), np.int8)
        self.step_mask = np.zeros((_GLOBALS, len(_STIMULI)), np.int8)
        self.aims = np.zeros((_GLOBALS, 4, 4), np.bool_)
        for g, (_c, socket, fg, net) in enumerate(_GLOBAL):
            for kind in range(4):
                done, rest = kind & 2, kind & 1
                self.aims[g, kind] = [
                    bool(done and socket is Socket.open),
                    bool(rest and fg and net),
                    bool(rest and fg),
                    bool(rest and fg and net),
                ]
        # (send outcome or aimed stimulus, connection/socket part, code's number)
        #   -> code after * 3 + every held + 1, shifted left 8, | rule mask
        self.local = np.full((8, _GLOBALS >> 2, 1 << self.codec.bits), _UNKNOWN, np.int32)
        # (connection stimulus, connection/socket part, code's number)
        #   -> code after << 12 | whether it spreads << 8 | mask
        # (allocated on first use: only separable designs learn steps this way)
        self.each: NDArray[np.int32] | None = None
        # (label without message, connection/socket part, aimed code, other code)
        #   -> aimed code after, other code after, mask, whether it spreads
        self.pairs = _Memo(np.int16, np.int16, np.int8, np.int8)
        # (multiset, label, global or its connection/socket part)
        #   -> multiset key, permutation, mask, global code after
        self.whole = _Memo(np.int64, np.int32, np.int8, np.int16)
        self.is_user = np.array(
            [_label(lid, n)[0] in USER_STIMULI for lid in range(self.labels)], np.bool_
        )
        self.over_rest = np.zeros(_CODES >> 8, np.bool_)
        for order in _OVER_REST_ORDERS:
            self.over_rest[order] = True

    def mask(self, t: Transition) -> int:
        mask = 0
        for f in t.fired:
            for rule, bit in self.rules[id(f.row)]:
                if rule.matches_step(f.row, f.connection):
                    mask |= bit
        return mask

    # -- learning one kind of step from System.successors -----------------------------
    def learn_global(self, g: int) -> None:
        """The sends and connection steps global code ``g`` allows, from two probe worlds."""
        c, s, fg, net = _GLOBAL[g]
        for t in self.system.successors(World(c, s, fg, net, (Message(),))):
            if t.stimulus is Stimulus.send:
                assert t.outcome is not None
                self.send_to[g, _OUTCOMES.index(t.outcome)] = _global_code(t.target)
        probe = Message(MessageState.sent_ws, False, 1, 0, True)
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
            k = _STIMULI.index(t.stimulus)
            self.step_to[g, k] = _global_code(t.target)
            self.step_how[g, k] = how
            self.step_mask[g, k] = self.mask(t) if how in (1, 2) else 0
        self.known[g] = True

    def step_of(self, key: int, lid: int) -> Transition:
        """The step with label ``lid`` out of the state with key ``key``."""
        return self.system.step(self.codec.world(key), _label(lid, self.n))

    def learn_local(self, key: int, lid: int) -> int:
        """Whether the step ``lid`` out of state ``key`` touches only its message;
        the local memo entry for it."""
        t = self.step_of(key, lid)
        i = t.message
        assert i is not None
        before, after = self.effects_around(t)
        run = [*before, *(a for f in t.fired for a in f.row.actions), *after]
        if not (set(run) <= _NEARLY_LOCAL and all(f.message == i for f in t.fired)):
            return _NOT_LOCAL
        held = [a.meaning.hold_all for a in run if a.meaning.hold_all is not None]
        v = int(held[-1]) if held else -1
        code = self.codec.encode(t.target.messages[i])
        if self.symmetry:
            code = self.codec.canon(code)
        return (code * 3 + v + 1) << 8 | self.mask(t)

    def learn_whole(self, wanted: list[tuple[int, int]]) -> list[NDArray[Any]]:
        """For steps given as (state key, label): the multiset key, permutation,
        rule mask and global code each leads to."""
        codec = self.codec
        rows = []
        masks = []
        globals_ = []
        for key, lid in wanted:
            t = self.system.step(codec.world(key), _label(lid, self.n))
            rows.append([codec.encode(m) for m in t.target.messages])
            masks.append(self.mask(t))
            globals_.append(_global_code(t.target))
        mkeys, pids = codec.arrange(np.array(rows, np.int16))
        return [mkeys, pids, np.array(masks, np.int8), np.array(globals_, np.int16)]

    def effects_around(self, t: Transition) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
        """The effects step ``t`` runs before its rows (accept) and after them
        (rest succeeded, connection acknowledged)."""
        effects = self.system.behaviour.effects
        if t.stimulus is Stimulus.send:
            return self.system.on_accept, ()
        if t.stimulus is Stimulus.rest_ok:
            return (), effects.actions(Hook.rest_succeeded)
        if t.stimulus is Stimulus.handshake_ack:
            return (), effects.actions(Hook.connection_acknowledged)
        return (), ()

    def spreads(self, t: Transition) -> int:
        """Whether step ``t`` acts on each message on its own but for every held
        flag (bit 0), and whether it sets every held flag (bit 1).

        Then every message ends as it would in a world of its own with the
        message the step is aimed at, except that every held flag takes the
        design's one value if any action set them all. So it is when:

        * the accept effect and every message row touch only their message,
          and only the first row (the aimed message's, before any other
          message's row can run) sets its own held flag;
        * every connection row only opens or closes the socket, or runs a row
          on each held message (the pending list's retry);
        * the effects after the rows (refetch) may run a row on each message;
        * any action may set every held flag to the design's one value, but no
          row a loop over the held messages ran may (it would change which
          messages the loop still finds held).
        """
        before, after = self.effects_around(t)
        # Every action the step ran, with whether its parts other than setting
        # every held flag may run.
        ran = [(a, _touches_only_its_message(a.meaning)) for a in before]
        rows_setting_every_flag = False
        for k, f in enumerate(t.fired):
            for a in f.row.actions:
                m = a.meaning
                if f.machine == "connection":
                    ran.append((a, _touches_only_the_socket(m) or _runs_on_each_held(m)))
                else:
                    ran.append((a, _touches_only_its_message(m) and not (k and m.hold is not None)))
                    rows_setting_every_flag |= bool(k) and m.hold_all is not None
        ran += [(a, a.meaning.hold is None and a.meaning.socket is None) for a in after]
        if rows_setting_every_flag and any(a.meaning.each_held is not None for a, _ in ran):
            return 0
        held = False
        for a, allowed in ran:
            if not allowed:
                return 0
            if a.meaning.hold_all is not None:
                if a.meaning.hold_all != self.held_value:
                    return 0
                held = True
        return 1 | held << 1

    def learn_each(self, k: int, g: int, c: int) -> int:
        """What connection stimulus ``k`` out of global code ``g`` does to a message
        with code ``c`` in a separable design: code after << 12 | whether it
        spreads << 8 | rule mask."""
        stimulus = _STIMULI[k]
        probe = World(*_GLOBAL[g], (self.codec.decode(c),))
        (t,) = (
            t for t in self.system.successors(probe) if t.stimulus is stimulus and t.message is None
        )
        return self.codec.encode(t.target.messages[0]) << 12 | self.spreads(t) << 8 | self.mask(t)

    def learn_pair(self, kind: int, ci: int, c: int, g: int) -> tuple[int, int, int, int]:
        """What the aimed step ``kind`` (label without message) does to message 0
        (code ``ci``) and another message (code ``c``), the rule mask, and
        whether it spreads."""
        stimulus, _i, outcome = _label(kind + self.no, self.n)
        decode = self.codec.decode
        probe = World(*_GLOBAL[g], (decode(ci), decode(c)))
        (t,) = (
            t
            for t in self.system.successors(probe)
            if t.stimulus is stimulus and t.outcome is outcome and t.message == 0
        )
        encode = self.codec.encode
        return (
            encode(t.target.messages[0]),
            encode(t.target.messages[1]),
            self.mask(t),
            self.spreads(t),
        )

    # -- the search -------------------------------------------------------------------
    def run(self, max_states: int | None, start: World | None) -> Exploration:
        system, codec = self.system, self.codec
        first_world = system.initial() if start is None else start
        row = np.array([[codec.encode(m) for m in first_world.messages]], np.int16)
        mkey0, _pid = codec.arrange(row)
        mid0 = int(codec.intern(mkey0)[0])
        g0 = _global_code(first_world)
        # The global codes a state can have, each given a slot: every multiset has
        # a row of slots in ``index`` holding the state id of (multiset, global).
        if self.loose:
            reachable = list(range(_GLOBALS))
        else:
            reachable = [g0]
            for g in reachable:
                self.learn_global(g)
                for g2 in [*self.send_to[g].tolist(), *self.step_to[g].tolist()]:
                    if g2 >= 0 and g2 not in reachable:
                        reachable.append(g2)
        slot_of = np.full(_GLOBALS, -1, np.int64)
        slot_of[reachable] = np.arange(len(reachable))
        width = len(reachable)
        index = np.full(64 * width, -1, np.int32)
        index[mid0 * width + slot_of[g0]] = 0
        # Per state, grown in place: its key, its parent and the label of the step
        # from it; per step: its target, permutation and whether the user takes it.
        keys = np.array([mid0 * _GLOBALS + g0], np.int64)
        parents = np.zeros(1, np.int32)
        labels = np.zeros(1, np.int16 if self.labels < 1 << 15 else np.int32)
        offsets = np.zeros(2, np.int64)
        targets = np.zeros(0, np.int32)
        perms = np.zeros(0, np.int16)
        user = np.zeros(0, np.bool_)
        total = 1
        steps = 0
        rule_hits: dict[str, tuple[int, Transition]] = {}
        hit_mask = 0
        progress = _Progress()
        done = 0
        while done < total:
            # States are expanded in id order, a batch at a time; a batch may span
            # two layers, and new states are numbered as a one-by-one search would.
            batch = keys[done : min(total, done + _BATCH)].copy()  # keys may move when grown
            at, _rank, lid, mkey, pid, mask, g2 = self.layer(batch)
            mids = codec.intern(mkey).astype(np.int64)
            if len(index) < codec.multisets * width:
                old = len(index)
                index.resize(max(codec.multisets, 2 * old // width) * width, refcheck=False)
                index[old:] = -1
            cell = mids * width + slot_of[g2]
            fresh = np.flatnonzero(index[cell] < 0)
            if len(fresh):
                unique, first = np.unique(cell[fresh], return_index=True)
                count = len(unique)
                if max_states is not None and total + count > max_states:
                    progress.done(max_states)
                    raise StateLimitExceeded(max_states)
                born = fresh[np.sort(first)]
                size = total + count
                index[cell[born]] = np.arange(total, size, dtype=np.int32)
                _grow(size, keys, parents, labels)
                keys[total:size] = mids[born] * _GLOBALS + g2[born]
                parents[total:size] = done + at[born]
                labels[total:size] = lid[born]
                total = size
            size = steps + len(at)
            _grow(size, targets, perms, user)
            targets[steps:size] = index[cell]
            perms[steps:size] = pid
            user[steps:size] = self.is_user[lid]
            _grow(done + len(batch) + 1, offsets)
            np.cumsum(
                np.bincount(at, minlength=len(batch)), out=offsets[done + 1 : done + len(batch) + 1]
            )
            offsets[done + 1 : done + len(batch) + 1] += steps
            steps = size
            wide = mask.astype(np.int64)
            while (wide & ~hit_mask).any():
                e = int(np.flatnonzero(wide & ~hit_mask)[0])
                t = self.step_of(int(batch[at[e]]), int(lid[e]))
                for f in t.fired:
                    for rule, bit in self.rules[id(f.row)]:
                        if rule.id not in rule_hits and rule.matches_step(f.row, f.connection):
                            rule_hits[rule.id] = (done + int(at[e]), t)
                            hit_mask |= bit
            done += len(batch)
            if progress.live:
                progress.tick(total)
        progress.done(total)
        del index
        codec.trim()
        for column in (keys, parents, labels):
            column.resize(total, refcheck=False)
        for edge_column in (targets, perms, user):
            edge_column.resize(steps, refcheck=False)
        offsets.resize(total + 1, refcheck=False)
        return Exploration(
            system,
            codec,
            keys,
            parents,
            labels,
            offsets.astype(np.int32) if steps < 1 << 31 else offsets,
            targets,
            perms,
            user,
            rule_hits,
        )

    def layer(self, frontier: NDArray[np.int64]) -> tuple[NDArray[Any], ...]:
        """Every step out of the states with keys ``frontier``, in breadth-first order:
        (position in the layer, rank, label, multiset key, permutation, mask, global)."""
        codec, n, no = self.codec, self.n, self.no
        mids = frontier // _GLOBALS
        g = (frontier % _GLOBALS).astype(np.intp)
        for unknown in np.unique(g[~self.known[g]]).tolist():
            self.learn_global(unknown)
        rows = codec.rows[mids]
        layer = _Layer()

        # Steps aimed at one message: sends (at the first unsent message, one per
        # outcome), then done and the REST outcomes (per message, one per group of
        # twins with the symmetry reduction).
        parts: list[tuple[NDArray[Any], NDArray[Any], int, int]] = []  # (at, i, kind, rank)
        unsent = rows == _UNSENT
        has_unsent: NDArray[np.bool_] = np.any(unsent, axis=1)
        first_unsent = unsent.argmax(1)
        for o in range(len(_OUTCOMES)):
            ok = np.flatnonzero(has_unsent & (self.send_to[g, o] >= 0))
            parts.append((ok, first_unsent[ok], o, o))
        kinds = (rows & 1).astype(np.intp) << 1 | self.over_rest[rows >> 8]
        if self.symmetry and n > 1:
            kinds[:, 1:][rows[:, 1:] == rows[:, :-1]] = 0
        for i in range(n):
            for b in range(4):
                ok = np.flatnonzero(self.aims[g, kinds[:, i], b])
                parts.append((ok, np.full(len(ok), i), 4 + b, 16 + 4 * i + b))
        at = np.concatenate([p[0] for p in parts])
        i_ = np.concatenate([p[1] for p in parts])
        kind = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
        rank = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
        stimulus = np.where(kind < 4, _SEND, np.array(_AIMED)[np.maximum(kind - 4, 0)])
        outcome = np.where(kind < 4, kind + 1, 0)
        lid = (stimulus * (n + 1) + i_ + 1) * no + outcome
        sends = kind < 4
        to = np.where(sends, self.send_to[g[at], np.minimum(kind, 3)], g[at])
        self.aimed(layer, frontier, rows, _Aimed(at, rank, i_, kind, lid, to), g)

        # Connection steps, in stimulus order.
        has_done: NDArray[np.bool_] = np.any(rows & 1, axis=1)
        for k in _CONNECTION_STIMULI:
            to = self.step_to[g, k]
            ok = np.flatnonzero(to >= 0)
            if not len(ok):
                continue
            how = self.step_how[g[ok], k]
            lid_k = k * (n + 1) * no
            quiet = ok[(how == 1) | ((how == 2) & ~has_done[ok])]
            layer.add(
                quiet,
                4 + k,
                np.full(len(quiet), lid_k),
                codec.mkeys[mids[quiet]],
                np.zeros(len(quiet), np.int32),
                self.step_mask[g[quiet], k],
                to[quiet],
            )
            clear = ok[(how == 2) & has_done[ok]]
            if len(clear):
                mkeys, pids = codec.arrange(rows[clear] & ~1)
                layer.add(
                    clear,
                    4 + k,
                    np.full(len(clear), lid_k),
                    mkeys,
                    pids,
                    self.step_mask[g[clear], k],
                    to[clear],
                )
            each = ok[how == 3]
            if len(each):
                self.each_message(layer, rows, each, k, lid_k, g, to[each])
            whole = ok[how == 0]
            if self.spread and len(whole):
                whole = self.each_message(layer, rows, whole, k, lid_k, g, to[whole])
            if len(whole):
                self.whole_step(
                    layer, frontier, whole, 4 + k, np.full(len(whole), lid_k), g, to[whole]
                )
        return layer.edges(16 + 4 * n)

    def aimed(
        self,
        layer: _Layer,
        frontier: NDArray[np.int64],
        rows: NDArray[np.int16],
        steps: _Aimed,
        g: NDArray[np.intp],
    ) -> None:
        """Steps aimed at one message each."""
        if self.loose:
            self.whole_step(layer, frontier, steps.at, steps.rank, steps.lid, g, steps.to)
            return
        at, rank, i, kind, lid, to = steps
        part = g[at] >> 2
        number = self.codec.number[rows[at, i]]  # every code in a stored row has one
        entry = self.local[kind, part, number]
        unknown = np.flatnonzero(entry == _UNKNOWN)
        if len(unknown):
            combo = (kind[unknown] * (_GLOBALS >> 2) + part[unknown]) * _CODES + number[unknown]
            _u, first = np.unique(combo, return_index=True)
            for e in unknown[first].tolist():
                self.local[kind[e], part[e], number[e]] = self.learn_local(
                    int(frontier[at[e]]), int(lid[e])
                )
            entry = self.local[kind, part, number]
        local = np.flatnonzero(entry >= 0)
        if len(local):
            x = entry[local] >> 8
            held = x % 3 - 1
            new = rows[at[local]].copy()
            hold = held >= 0
            new[hold] = new[hold] & ~0x80 | (held[hold, None] << 7).astype(np.int16)
            new[np.arange(len(local)), i[local]] = x // 3
            mkeys, pids = self.codec.arrange(new)
            layer.add(
                at[local], rank[local], lid[local], mkeys, pids, entry[local] & 0xFF, to[local]
            )
        other = np.flatnonzero(entry == _NOT_LOCAL)
        if not len(other):
            return
        left = steps.take(other)
        if self.separable or self.spread:
            left = self.pairwise(layer, rows, left, g)
        if len(left.at):
            self.whole_step(layer, frontier, left.at, left.rank, left.lid, g, left.to)

    def pairwise(
        self, layer: _Layer, rows: NDArray[np.int16], steps: _Aimed, g: NDArray[np.intp]
    ) -> _Aimed:
        """Aimed steps one pair of messages at a time, in a separable design or
        where the step spreads; gives back the steps that do not spread, to
        learn on the whole multiset."""
        at, rank, i, _kind, lid, to = steps
        n, no = self.n, self.no
        count = len(at)
        source = rows[at]
        ci = source[np.arange(count), i].astype(np.int64)
        others = source.astype(np.int64)
        if n == 1:
            others[:, 0] = _UNSENT
        label = lid - (i + 1) * no  # the label without the message
        part = (g[at] >> 2).astype(np.int64)
        keys = (((label * (_GLOBALS >> 2) + part) * _CODES + ci) * _CODES)[:, None] + others
        flat = keys.reshape(-1)
        found, where = self.pairs.find(flat)
        if not found.all():
            missing = np.flatnonzero(~found)
            unique, first = np.unique(flat[missing], return_index=True)
            learnt = [
                self.learn_pair(
                    int(label[e // n]), int(ci[e // n]), int(others.flat[e]), int(g[at[e // n]])
                )
                for e in missing[first].tolist()
            ]
            self.pairs.add(unique, *(np.array(column) for column in zip(*learnt, strict=True)))
            found, where = self.pairs.find(flat)
        after_i = self.pairs.columns[0][where].reshape(count, n)
        after = self.pairs.columns[1][where].reshape(count, n)
        masks = self.pairs.columns[2][where].reshape(count, n)
        mine = np.arange(n)[None, :] == i[:, None]
        spreads = self.pairs.columns[3][where].reshape(count, n)
        if n > 1:
            masks = np.where(mine, 0, masks)
            spreads = np.where(mine, 1, spreads)
            last = np.where(i == n - 1, n - 2, n - 1)
            new_i = after_i[np.arange(count), last]
        else:
            new_i = after_i[:, 0]
        new = np.where(mine, new_i[:, None], after).astype(np.int16)
        mask = np.bitwise_or.reduce(masks, axis=1)
        if self.separable:
            mkeys, pids = self.codec.arrange(new)
            layer.add(at, rank, lid, mkeys, pids, mask, to)
            return steps.take(np.zeros(0, np.intp))
        ok = np.bitwise_and.reduce(spreads, axis=1) & 1 == 1
        self.spread_add(
            layer, new, np.bitwise_or.reduce(spreads, axis=1), ok, at, rank, lid, mask, to
        )
        return steps.take(np.flatnonzero(~ok))

    def spread_add(
        self,
        layer: _Layer,
        new: NDArray[np.int16],
        spreads: NDArray[Any],
        ok: NDArray[np.bool_],
        at: NDArray[Any],
        rank: NDArray[Any] | int,
        lid: NDArray[Any],
        mask: NDArray[Any],
        to: NDArray[Any],
    ) -> None:
        """Add the steps that spread (``ok``), with every held flag set where one
        of the rows they fired set it."""
        if not ok.any():
            return
        new = new[ok]
        held = (spreads[ok] & 2) != 0
        bit = np.int16(int(self.held_value) << 7)
        new[held] = new[held] & np.int16(~0x80) | bit
        mkeys, pids = self.codec.arrange(new)
        rank = rank if isinstance(rank, int) else rank[ok]
        layer.add(at[ok], rank, lid[ok], mkeys, pids, mask[ok], to[ok])

    def each_message(
        self,
        layer: _Layer,
        rows: NDArray[np.int16],
        at: NDArray[Any],
        k: int,
        lid: int,
        g: NDArray[np.intp],
        to: NDArray[Any],
    ) -> NDArray[Any]:
        """A connection step one message at a time, in a separable design or where
        it spreads; gives back the sources of the steps that do not spread."""
        part = (g[at] >> 2)[:, None]
        source = rows[at]
        number = self.codec.number[source]
        if self.each is None:
            shape = (len(_STIMULI), _GLOBALS >> 2, 1 << self.codec.bits)
            self.each = np.full(shape, _UNKNOWN, np.int32)
        entry = self.each[k, part, number]
        if (entry == _UNKNOWN).any():
            unknown = np.argwhere(entry == _UNKNOWN)
            for s, m in unknown.tolist():
                if self.each[k, part[s, 0], number[s, m]] == _UNKNOWN:
                    self.each[k, part[s, 0], number[s, m]] = self.learn_each(
                        k, int(g[at[s]]), int(source[s, m])
                    )
            entry = self.each[k, part, number]
        new = (entry >> 12).astype(np.int16)
        masks = np.bitwise_or.reduce(entry & 0xFF, axis=1)
        labels = np.full(len(at), lid)
        if self.separable:
            mkeys, pids = self.codec.arrange(new)
            layer.add(at, 4 + k, labels, mkeys, pids, masks, to)
            return at[:0]
        spreads = (entry >> 8) & 3
        ok = np.bitwise_and.reduce(spreads, axis=1) & 1 == 1
        self.spread_add(
            layer, new, np.bitwise_or.reduce(spreads, axis=1), ok, at, 4 + k, labels, masks, to
        )
        rest: NDArray[Any] = at[~ok]
        return rest

    def whole_step(
        self,
        layer: _Layer,
        frontier: NDArray[np.int64],
        at: NDArray[Any],
        rank: NDArray[Any] | int,
        lid: NDArray[Any],
        g: NDArray[np.intp],
        to: NDArray[Any],
    ) -> None:
        """Steps learnt on the whole multiset (and, in loose designs, the whole global part)."""
        if not len(at):
            return
        mids = (frontier[at] // _GLOBALS).astype(np.int64)
        part = g[at] if self.loose else g[at] >> 2
        keys = (mids * self.labels + lid) * _GLOBALS + part
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        found, where = self.whole.find(unique)
        if not found.all():
            if len(self.whole) + int((~found).sum()) > _MEMO_LIMIT:
                self.whole.clear()
                found[:] = False
            missing = np.flatnonzero(~found)
            learnt = self.learn_whole(
                [(int(frontier[at[first[u]]]), int(lid[first[u]])) for u in missing.tolist()]
            )
            self.whole.add(unique[missing], *learnt)
            found, where = self.whole.find(unique)
        where = where[inverse.reshape(-1)]
        mkey, pid, mask, g2 = (c[where] for c in self.whole.columns)
        layer.add(at, rank, lid, mkey, pid, mask, g2 if self.loose else to)
