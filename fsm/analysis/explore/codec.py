"""The explorer's integer encoding: messages, multisets, global parts, labels, ranks.

Every fact about how a state is laid out in integers is stated here, once, and
the search (:mod:`fsm.analysis.explore.search`) and the graph
(:mod:`fsm.analysis.explore.graph`) read it from here.

Layout::

    message code (15 bits)      state | held | server | attempts | done owed | ws tries | ahead
                                14-12 |  11  |  10-9  |   8-6    |     5     |   4-2    |  1-0
        Codes sort like the symmetry reduction's key (state, held, server,
        attempts, done owed, ws tries, ahead), so sorting a row of codes sorts
        the messages. A code fits an int16.

    global code (below 100)     ((connection * sockets + socket) * 2 + foreground) * 2 + network
        The two low bits are the app's lifecycle and the network; the rest,
        ``global >> PART_SHIFT``, is the connection/socket part.

    multiset key                the row's codes renumbered densely in order of first
                                appearance, ``bits`` bits each: as many as fit in
                                KEY_BITS - GLOBAL_BITS, at most NUMBER_BITS, at least 5
    state key                   multiset id * GLOBALS + global code

    label id                    (stimulus * (n + 1) + message + 1) * (outcomes + 1) + outcome + 1
        message + 1 is 0 for steps aimed at no message, outcome + 1 is 0 for
        every stimulus but ``send``.

    step rank                   where a step stands among its source's steps, as
                                System.successors lists them:
        send outcome o                      o
        connection stimulus k               OUTCOMES + k
        aimed stimulus b on message i       OUTCOMES + STIMULI + AIMED * i + b

    sorting key (arrange)       canonical code << POSITION_BITS | position in the row
    permutation                 where message j went, POSITION_BITS bits each
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from fsm.analysis.system import STATE_ORDER, Message, Outcome, Stimulus, World, canonical_message
from fsm.model.errors import SpecError
from fsm.model.stimuli import MESSAGE_STIMULI
from fsm.model.vocabulary import ConnectionState, MessageState, Socket

Label = tuple[Stimulus, "int | None", "Outcome | None"]

# -- the vocabulary, in the order codes and ranks use -------------------------------------
CONNECTIONS = list(ConnectionState)
SOCKETS = list(Socket)
STIMULI = list(Stimulus)
OUTCOMES = list(Outcome)
#: The stimuli aimed at one message each, in the order System.successors lists them.
AIMED = list(MESSAGE_STIMULI)
SEND = STIMULI.index(Stimulus.send)
AIMED_INDEX = [STIMULI.index(s) for s in AIMED]
#: Connection stimuli by index: every stimulus that is neither a send nor aimed.
CONNECTION_STIMULI = [k for k in range(len(STIMULI)) if k != SEND and k not in AIMED_INDEX]

# -- step ranks ---------------------------------------------------------------------------
#: Aimed kinds: a send with each outcome, then each aimed stimulus.
AIMED_KINDS = len(OUTCOMES) + len(AIMED)
#: The kind of a send with outcome ``o`` is ``o``; of aimed stimulus ``b`` this plus ``b``.
FIRST_AIMED_KIND = len(OUTCOMES)
#: The rank of connection stimulus ``k`` is this plus ``k``.
FIRST_CONNECTION_RANK = len(OUTCOMES)
#: The rank of aimed stimulus ``b`` on message ``i`` is this plus ``len(AIMED) * i + b``.
FIRST_AIMED_RANK = len(OUTCOMES) + len(STIMULI)


def ranks(n: int) -> int:
    """How many ranks the steps of a state with ``n`` messages can have."""
    return FIRST_AIMED_RANK + len(AIMED) * n


def aimed_rank(i: int, b: int) -> int:
    """The rank of aimed stimulus ``b`` on message ``i``."""
    return FIRST_AIMED_RANK + len(AIMED) * i + b


# -- message codes ------------------------------------------------------------------------
AHEAD_SHIFT, AHEAD_MASK = 0, 0x3
WS_TRIES_SHIFT, WS_TRIES_MASK = 2, 0x7
DONE_OWED = 1 << 5
ATTEMPTS_SHIFT, ATTEMPTS_MASK = 6, 0x7
SERVER_SHIFT, SERVER_MASK = 9, 0x3
HELD_SHIFT = 11
HELD = 1 << HELD_SHIFT
STATE_SHIFT = 12
CODE_BITS = 15
CODES = 1 << CODE_BITS
#: A multiset key numbers the kinds of message a search meets (a few hundred at
#: most), each in at most this many bits.
NUMBER_BITS = 11
#: How many state orders the bits above ``STATE_SHIFT`` can hold.
STATE_ORDERS = CODES >> STATE_SHIFT
assert max(STATE_ORDER.values()) < STATE_ORDERS


def message_code(m: Message) -> int:
    """``m`` as an integer that sorts like the symmetry reduction's key."""
    if (
        not 0 <= m.attempts <= ATTEMPTS_MASK
        or not 0 <= m.server <= SERVER_MASK
        or not 0 <= m.ws_tries <= WS_TRIES_MASK
        or not 0 <= m.ahead <= AHEAD_MASK
    ):
        raise SpecError(f"message out of the explorer's encoding: {m}")
    return (
        STATE_ORDER[m.state] << STATE_SHIFT
        | m.held << HELD_SHIFT
        | m.server << SERVER_SHIFT
        | m.attempts << ATTEMPTS_SHIFT
        | m.done_owed * DONE_OWED
        | m.ws_tries << WS_TRIES_SHIFT
        | m.ahead << AHEAD_SHIFT
    )


ORDERED_STATES: list[MessageState | None] = sorted(STATE_ORDER, key=STATE_ORDER.__getitem__)


def decode_message(c: int) -> Message:
    return Message(
        ORDERED_STATES[c >> STATE_SHIFT],
        bool(c & HELD),
        c >> SERVER_SHIFT & SERVER_MASK,
        c >> ATTEMPTS_SHIFT & ATTEMPTS_MASK,
        bool(c & DONE_OWED),
        c >> WS_TRIES_SHIFT & WS_TRIES_MASK,
        c >> AHEAD_SHIFT & AHEAD_MASK,
    )


#: The server's copies of a message are counted up to this (a duplicate).
MOST_COPIES = 2


UNSENT = message_code(Message())


def _canonical_codes() -> NDArray[np.int16]:
    """For every code, the code of the message the symmetry reduction stores.

    :func:`~fsm.analysis.system.canonical_message` only resets fields that can no
    longer matter, and which it resets depends on the message's state alone: so
    it is probed once per state with every bit of every field set, and the bits
    it reset are cleared from every code of that state."""
    codes = np.arange(CODES, dtype=np.int64)
    cleared = np.zeros(STATE_ORDERS, np.int64)
    for state, order in STATE_ORDER.items():
        probe = Message(state, True, SERVER_MASK, ATTEMPTS_MASK, True, WS_TRIES_MASK, AHEAD_MASK)
        kept = message_code(canonical_message(probe)[1])
        cleared[order] = message_code(probe) & ~kept
    out: NDArray[np.int16] = (codes & ~cleared[codes >> STATE_SHIFT]).astype(np.int16)
    return out


#: :func:`_canonical_codes`, computed once.
CANONICAL_CODES = _canonical_codes()

# -- global codes -------------------------------------------------------------------------
#: Foreground x network: the low bits of a global code.
PART_SHIFT = 2
#: Number of global codes: connection state x socket x foreground x network.
GLOBALS = len(CONNECTIONS) * len(SOCKETS) << PART_SHIFT
#: Number of connection/socket parts.
PARTS = GLOBALS >> PART_SHIFT
GLOBAL: list[tuple[ConnectionState, Socket, bool, bool]] = [
    (c, s, fg, net)
    for c in CONNECTIONS
    for s in SOCKETS
    for fg in (False, True)
    for net in (False, True)
]
assert len(GLOBAL) == GLOBALS
_GLOBAL_CODE = {g: i for i, g in enumerate(GLOBAL)}
#: Bits of a global code in a state's search key.
GLOBAL_BITS = (GLOBALS - 1).bit_length()


def global_code(w: World) -> int:
    return _GLOBAL_CODE[(w.connection, w.socket, w.foreground, w.network)]


# -- rows, keys and permutations ----------------------------------------------------------
#: Bits of a message's position in a row, in sorting keys and permutations.
POSITION_BITS = 4
POSITION_MASK = (1 << POSITION_BITS) - 1
#: Permutation ids are stored in int16.
PERM_LIMIT = int(np.iinfo(np.int16).max)
#: Bits of a state's key.
KEY_BITS = 63
#: A multiset key numbers each kind of message in its row with at least this
#: many bits (so 2**5 kinds), and with more where the key has room.
MIN_NUMBER_BITS = 5

# -- sizes --------------------------------------------------------------------------------
#: States expanded together, and flags read together.
BATCH = 2048
#: Decoded multisets kept for the views.
DECODED_LIMIT = 1 << 12


# -- labels -------------------------------------------------------------------------------
#: Label ids of one stimulus aimed at message ``i`` and at ``i + 1`` differ by this.
MESSAGE_STRIDE = len(OUTCOMES) + 1


def label_count(n: int) -> int:
    """How many label ids a system with ``n`` messages has."""
    return len(STIMULI) * (n + 1) * MESSAGE_STRIDE


def label_of(lid: int, n: int) -> Label:
    outcome = lid % MESSAGE_STRIDE
    rest = lid // MESSAGE_STRIDE
    stimulus, message = divmod(rest, n + 1)
    return (
        STIMULI[stimulus],
        message - 1 if message else None,
        OUTCOMES[outcome - 1] if outcome else None,
    )


def label_id(label: Label, n: int) -> int:
    stimulus, message, outcome = label
    m = 0 if message is None else message + 1
    o = 0 if outcome is None else OUTCOMES.index(outcome) + 1
    lid: int = label_ids(STIMULI.index(stimulus), m, o, n)
    return lid


def label_ids(stimulus: Any, message: Any, outcome: Any, n: int) -> Any:
    """Label ids from stimulus indices, message indices + 1 (0: none) and outcome
    indices + 1 (0: none), as integers or arrays of them."""
    return (stimulus * (n + 1) + message) * MESSAGE_STRIDE + outcome


class Memo:
    """Values for int64 keys in sorted arrays, looked up and added a batch at a time."""

    def __init__(self, *dtypes: type[np.generic] | np.dtype[Any]) -> None:
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


class Codec:
    """Codes for messages, multisets of them and permutations, for one system.

    A multiset is stored as a row of message codes (sorted when the symmetry
    reduction is on) and known by a *multiset key*: the row's codes renumbered
    densely in order of first appearance, ``bits`` bits each, packed into one
    integer. Its *multiset id* numbers the multisets in order of first
    appearance; a state key is ``multiset id * GLOBALS + global code``.
    """

    def __init__(self, n: int, symmetry: bool) -> None:
        self.n = n
        self.symmetry = symmetry
        # As many bits per message as the key has room for, up to NUMBER_BITS.
        self.bits = min(NUMBER_BITS, (KEY_BITS - GLOBAL_BITS) // max(n, 1))
        if self.bits < MIN_NUMBER_BITS:
            most = (KEY_BITS - GLOBAL_BITS) // MIN_NUMBER_BITS
            raise SpecError(f"the explorer encodes at most {most} messages, got {n}")
        self.message: dict[int, Message] = {}
        self.code: dict[Message, int] = {}
        self.canonical: dict[int, int] = {}
        #: For every code a message can have, the code the symmetry reduction stores.
        self.canonical_codes = CANONICAL_CODES
        #: Dense numbers of the codes seen so far, and the codes by number.
        self.number = np.full(CODES, -1, np.int64)
        self.numbered = np.zeros(1 << self.bits, np.int16)
        self.count = 0
        self.shifts = np.arange(n, dtype=np.int64) * self.bits
        #: Rows of codes by multiset id, and each multiset's key.
        self.rows: NDArray[np.int16] = np.zeros((64, n), np.int16)
        self.mkeys: NDArray[np.int64] = np.zeros(64, np.int64)
        self.multisets = 0
        self.index = Memo(np.int32)
        self.perms: list[tuple[int, ...]] = []
        self.perm_id: dict[int, int] = {}
        self.perm(tuple(range(n)))  # the identity is permutation 0
        self.decoded: dict[int, tuple[Message, ...]] = {}

    # -- single messages -------------------------------------------------------------
    def encode(self, m: Message) -> int:
        c = self.code.get(m)
        if c is None:
            c = self.code[m] = message_code(m)
            self.message[c] = m
        return c

    def decode(self, c: int) -> Message:
        m = self.message.get(c)
        if m is None:
            m = self.message[c] = decode_message(c)
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
        keyed = self.canonical_codes[rows].astype(np.int32) << POSITION_BITS
        keyed |= np.arange(n, dtype=np.int32)
        keyed.sort(axis=1)
        old = keyed & POSITION_MASK
        positions = np.empty_like(old)
        np.put_along_axis(
            positions, old, np.broadcast_to(np.arange(n, dtype=np.int32), old.shape), 1
        )
        shifts = np.arange(n, dtype=np.int64) * POSITION_BITS
        packed = (positions.astype(np.int64) << shifts).sum(1)
        unique, inverse = np.unique(packed, return_inverse=True)
        ids = np.empty(len(unique), np.int32)
        for k, p in enumerate(unique.tolist()):
            pid = self.perm_id.get(p)
            if pid is None:
                pid = self.perm(tuple((p >> (POSITION_BITS * j)) & POSITION_MASK for j in range(n)))
            ids[k] = pid
        return self.pack((keyed >> POSITION_BITS).astype(np.int16)), ids[inverse.reshape(-1)]

    def perm(self, positions: tuple[int, ...]) -> int:
        """The id of the permutation that takes message ``i`` to ``positions[i]``."""
        packed = sum(p << (POSITION_BITS * j) for j, p in enumerate(positions))
        pid = self.perm_id.get(packed)
        if pid is None:
            pid = self.perm_id[packed] = len(self.perms)
            if pid > PERM_LIMIT:
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

    def codes_where(self, good: Callable[[Message], bool]) -> NDArray[np.bool_]:
        """For every code a message can have, whether ``good`` holds of it
        (judged once for each code seen)."""
        flags = np.zeros(CODES, np.bool_)
        for c in self.numbered[: self.count].tolist():
            flags[c] = good(self.decode(c))
        return flags

    # -- worlds ----------------------------------------------------------------------
    def messages(self, mid: int) -> tuple[Message, ...]:
        hit = self.decoded.get(mid)
        if hit is None:
            if len(self.decoded) >= DECODED_LIMIT:
                self.decoded.clear()
            hit = self.decoded[mid] = tuple(self.decode(c) for c in self.rows[mid].tolist())
        return hit

    def world(self, key: int) -> World:
        mid, g = divmod(key, GLOBALS)
        c, s, fg, net = GLOBAL[g]
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
        return mid * GLOBALS + global_code(world), self.perms[int(pids[0])]
