"""What each kind of step does, learnt from :class:`System` and memoised.

The search (:mod:`fsm.analysis.explore.search`) asks these tables what a kind
of step does to a batch of states; an entry is learnt from
:meth:`System.successors` (or :meth:`System.step`) the first time it is needed
and memoised on exactly what it depends on. Which table a step may use is
decided by what its actions touch (:mod:`fsm.analysis.explore.touches`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fsm.analysis.explore import touches
from fsm.analysis.explore.codec import (
    AIMED,
    AIMED_INDEX,
    AIMED_KINDS,
    FIRST_AIMED_KIND,
    GLOBAL,
    GLOBALS,
    MESSAGE_STRIDE,
    OUTCOMES,
    PARTS,
    STATE_ORDERS,
    STIMULI,
    Codec,
    Memo,
    global_code,
    label_count,
    label_of,
)
from fsm.analysis.explore.graph import USER_STIMULI
from fsm.analysis.system import OVER_REST, STATE_ORDER, Message, Stimulus, System, Transition, World
from fsm.model.errors import SpecError
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.vocabulary import MessageState

__all__ = ["Learner"]

#: The memo of steps learnt per whole multiset is dropped when it reaches this size.
MEMO_LIMIT = 1 << 18

#: Memo entries not learnt yet, and steps that are not local.
UNKNOWN = -2
NOT_LOCAL = -1
#: A local memo entry is ``code after * HELD_VALUES + every held flag + 1``, the
#: flag -1 (left alone), 0 (cleared) or 1 (set).
HELD_VALUES = 3
#: An each-message memo entry is ``code after << SPREAD_BITS | spreads``.
SPREAD_BITS = 2
SPREAD_MASK = (1 << SPREAD_BITS) - 1
assert touches.SPREADS | touches.SETS_EVERY_HELD <= SPREAD_MASK

#: The kind of a message for the aimed steps it allows: whether the server owes
#: its done/toolUse, whether a REST request carrying it is in flight, whether the
#: client awaits its acknowledgement (the :class:`~fsm.model.stimuli.Aim` of its
#: state, :data:`AIM_OF_STATE`); or a twin of the message before it, which the
#: symmetry reduction never aims at.
OVER_REST_KIND = 1
OWES_DONE = 2
AWAITS_ACK_KIND = 4
TWIN = 8
MESSAGE_KINDS = 9

#: How a connection step treats the messages (``step_how``): learnt on the whole
#: multiset; messages unchanged; every owed done/toolUse dies; learnt one
#: message at a time.
WHOLE, UNCHANGED, DONE_DIES, EACH = 0, 1, 2, 3

#: Forbidden-rule hits are bit sets, one bit per rule, in the narrowest of these.
MASK_TYPES: tuple[type[np.unsignedinteger[Any]], ...] = (
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
)


def _mask_type(rules: int) -> type[np.unsignedinteger[Any]]:
    for dtype in MASK_TYPES:
        if rules <= np.iinfo(dtype).bits:
            return dtype
    most = np.iinfo(MASK_TYPES[-1]).bits
    raise SpecError(f"the explorer tracks at most {most} forbidden rules, got {rules}")


class Learner:
    """The memo tables of one search, and how each entry is learnt.

    What a kind of step does is learnt from :meth:`System.successors` the first
    time it is needed and memoised on exactly what it depends on: the global
    part of a step on the stimulus and the global part only (no message row or
    per-message effect moves the socket, checked once per design); which aimed
    steps a message allows on the global part, whether the server owes its
    done/toolUse and whether it is over REST; a step aimed at one message that
    touches only that message (and at most every message's pending-retry flag)
    on that message's code and the connection state and socket; in designs
    whose message rows touch only their own message, a connection step one
    message at a time and an aimed step one pair of messages at a time;
    anything else on the whole multiset.
    """

    def __init__(self, system: System, symmetry: bool) -> None:
        self.system = system
        self.symmetry = symmetry
        self.n = n = system.n
        self.codec = Codec(n, symmetry)
        traits = touches.traits(system)
        self.loose = traits.loose
        self.ack_socket_only = traits.ack_socket_only
        self.separable = traits.separable
        self.spread = traits.spread
        self.held_value = traits.held_value
        self.on_disconnect = system.behaviour.acts_on_disconnect
        #: Aimed kinds (FIRST_AIMED_KIND + which aimed stimulus) whose steps may move the
        #: global part: learnt on the whole multiset and the whole global part.
        self.moving_kinds = np.array(
            [
                FIRST_AIMED_KIND + AIMED.index(s)
                for s in touches.moving_stimuli(system)
                if s in AIMED and not self.loose
            ],
            np.int64,
        )
        # Forbidden-rule hits: one bit per rule.
        self.mask_type = _mask_type(len(FORBIDDEN))
        self.all_rules = (1 << len(FORBIDDEN)) - 1
        self.rules: dict[int, list[tuple[ForbiddenRule, int]]] = {}
        for name, table in (("connection", system.connection), ("message", system.message)):
            for row in table:
                self.rules[id(row)] = [
                    (r, 1 << k)
                    for k, r in enumerate(FORBIDDEN)
                    if r.machine == name and r.matches_row(row)
                ]
        self.labels = label_count(n)
        # Per global code, learnt on first use: the global code after each send
        # outcome and each connection stimulus (-1: not enabled), how a connection
        # step treats the messages, its rule mask.
        self.known = np.zeros(GLOBALS, np.bool_)
        self.send_to = np.full((GLOBALS, len(OUTCOMES)), -1, np.int16)
        self.step_to = np.full((GLOBALS, len(STIMULI)), -1, np.int16)
        self.step_how = np.zeros((GLOBALS, len(STIMULI)), np.int8)
        self.step_mask = np.zeros((GLOBALS, len(STIMULI)), self.mask_type)
        # Per global code and kind of message, learnt on first use: which aimed
        # stimuli the message allows.
        self.aims_known = np.zeros((GLOBALS, MESSAGE_KINDS), np.bool_)
        self.aims_known[:, TWIN] = True
        self.aims = np.zeros((GLOBALS, MESSAGE_KINDS, len(AIMED)), np.bool_)
        self.aimed_stimulus = np.array(AIMED_INDEX)
        # (send outcome or aimed stimulus, connection/socket part, code's number)
        #   -> local entry (code after, every held flag), and the rule mask
        shape = (AIMED_KINDS, PARTS, 1 << self.codec.bits)
        self.local = np.full(shape, UNKNOWN, np.int32)
        self.local_mask = np.zeros(shape, self.mask_type)
        # (connection stimulus, connection/socket part, code's number)
        #   -> code after << SPREAD_BITS | whether it spreads, and the rule mask
        # (allocated on first use: only separable designs learn steps this way)
        self.each: NDArray[np.int32] | None = None
        self.each_mask: NDArray[Any] = np.zeros(0, self.mask_type)
        # (label without message, connection/socket part, aimed code, other code)
        #   -> aimed code after, other code after, mask, whether it spreads
        self.pairs = Memo(np.int16, np.int16, self.mask_type, np.int8)
        # (multiset, label, global or its connection/socket part)
        #   -> multiset key, permutation, mask, global code after
        self.whole = Memo(np.int64, np.int32, self.mask_type, np.int16)
        # The same for the moving aimed steps of a design that is not loose: always
        # keyed on the whole global part.
        self.whole_global = Memo(np.int64, np.int32, self.mask_type, np.int16)
        self.is_user = np.array(
            [label_of(lid, n)[0] in USER_STIMULI for lid in range(self.labels)], np.bool_
        )
        #: Per state order, the kind bits its state gives a message (OWES_DONE aside).
        self.aim_of_state = np.zeros(STATE_ORDERS, np.intp)
        for state in OVER_REST:
            self.aim_of_state[STATE_ORDER[state]] |= OVER_REST_KIND
        for state in MessageState:
            if state.awaits_ack:
                self.aim_of_state[STATE_ORDER[state]] |= AWAITS_ACK_KIND

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
        c, s, fg, net = GLOBAL[g]
        for t in self.system.successors(World(c, s, fg, net, (Message(),))):
            if t.stimulus is Stimulus.send:
                assert t.outcome is not None
                self.send_to[g, OUTCOMES.index(t.outcome)] = global_code(t.target)
        # A message the server has and, where the design has acknowledgements, owes one for.
        probe = Message(MessageState.sent_ws, False, 1, 0, self.system.acknowledges)
        for t in self.system.successors(World(c, s, fg, net, (probe,))):
            if t.stimulus is Stimulus.send or t.message is not None:
                continue
            if touches.socket_only(
                t,
                loose=self.loose,
                ack_socket_only=self.ack_socket_only,
                on_disconnect=self.on_disconnect,
            ):
                how = DONE_DIES if not t.target.messages[0].done_owed else UNCHANGED
            else:
                how = EACH if self.separable else WHOLE
            k = STIMULI.index(t.stimulus)
            self.step_to[g, k] = global_code(t.target)
            self.step_how[g, k] = how
            self.step_mask[g, k] = self.mask(t) if how in (UNCHANGED, DONE_DIES) else 0
        self.known[g] = True

    def learn_aims(self, key: int, i: int, kind: int) -> None:
        """Which aimed stimuli message ``i`` of the state with key ``key`` allows,
        for every message of its kind under the state's global code."""
        g = key % GLOBALS
        for t in self.system.successors(self.codec.world(key)):
            if t.message == i and t.stimulus in AIMED:
                self.aims[g, kind, AIMED.index(t.stimulus)] = True
        self.aims_known[g, kind] = True

    def step_of(self, key: int, lid: int) -> Transition:
        """The step with label ``lid`` out of the state with key ``key``."""
        return self.system.step(self.codec.world(key), label_of(lid, self.n))

    def learn_local(self, key: int, lid: int) -> tuple[int, int]:
        """Whether the step ``lid`` out of state ``key`` touches only its message;
        the local memo entry for it and its rule mask."""
        t = self.step_of(key, lid)
        i = t.message
        assert i is not None
        held = touches.nearly_local_hold(self.system, t)
        if held is None:
            return NOT_LOCAL, 0
        code = self.codec.encode(t.target.messages[i])
        if self.symmetry:
            code = self.codec.canon(code)
        return code * HELD_VALUES + held + 1, self.mask(t)

    def learn_whole(self, wanted: list[tuple[int, int]]) -> list[NDArray[Any]]:
        """For steps given as (state key, label): the multiset key, permutation,
        rule mask and global code each leads to."""
        codec = self.codec
        rows = []
        masks = []
        globals_ = []
        for key, lid in wanted:
            t = self.system.step(codec.world(key), label_of(lid, self.n))
            rows.append([codec.encode(m) for m in t.target.messages])
            masks.append(self.mask(t))
            globals_.append(global_code(t.target))
        mkeys, pids = codec.arrange(np.array(rows, np.int16))
        return [mkeys, pids, np.array(masks, self.mask_type), np.array(globals_, np.int16)]

    def learn_each(self, k: int, g: int, c: int) -> tuple[int, int]:
        """What connection stimulus ``k`` out of global code ``g`` does to a message
        with code ``c`` in a separable design: code after << SPREAD_BITS | whether
        it spreads; and the rule mask."""
        stimulus = STIMULI[k]
        probe = World(*GLOBAL[g], (self.codec.decode(c),))
        (t,) = (
            t for t in self.system.successors(probe) if t.stimulus is stimulus and t.message is None
        )
        spreads = touches.spreads(self.system, t, self.held_value)
        return self.codec.encode(t.target.messages[0]) << SPREAD_BITS | spreads, self.mask(t)

    def learn_pair(self, kind: int, ci: int, c: int, g: int) -> tuple[int, int, int, int]:
        """What the aimed step ``kind`` (label without message) does to message 0
        (code ``ci``) and another message (code ``c``), the rule mask, and
        whether it spreads."""
        stimulus, _i, outcome = label_of(kind + MESSAGE_STRIDE, self.n)
        decode = self.codec.decode
        probe = World(*GLOBAL[g], (decode(ci), decode(c)))
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
            touches.spreads(self.system, t, self.held_value),
        )
