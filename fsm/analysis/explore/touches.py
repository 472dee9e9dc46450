"""What an action touches: the predicates the search's memo rules rest on.

The search (:mod:`fsm.analysis.explore.search`) learns a kind of step once and
reuses it on every state that agrees on what the step reads. Which memo table
a step may go to depends only on what the actions it runs touch: its own
message, the socket, every message's held flag, the held messages, the messages
the server has. Every such question is answered here, from each action's
:class:`~fsm.model.vocabulary.Meaning`, and nowhere else in the explorer.
"""

from __future__ import annotations

from typing import NamedTuple

from fsm.analysis.system import (
    LOCAL_ACTIONS,
    SOCKET_ACTIONS,
    Stimulus,
    System,
    Transition,
    disconnects,
)
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    Hook,
    Meaning,
    MessageEvent,
    OnEachHeld,
    OnEachOnServer,
    Part,
    SetHeld,
    SetSocket,
    WriteNow,
)

__all__ = [
    "NEARLY_LOCAL",
    "SETS_EVERY_HELD",
    "SPREADS",
    "Traits",
    "effects_around",
    "nearly_local_hold",
    "socket_only",
    "spreads",
    "traits",
]


def touches_only_its_message(m: Meaning) -> bool:
    """Apart from setting every held flag (its footprint)."""
    return m.footprint.touches - {Part.pending_flags} <= {Part.this_message}


def touches_only_the_socket(m: Meaning) -> bool:
    """Apart from setting every held flag (its footprint)."""
    return m.footprint.touches - {Part.pending_flags} <= {Part.socket}


def runs_on_each_held(m: Meaning) -> bool:
    """Runs a row on each held message, and does not move the socket, hold its own
    message or act on the messages the server has (its effects)."""
    kinds = {type(e) for e in m.effects}
    return OnEachHeld in kinds and not kinds & {SetSocket, SetHeld, OnEachOnServer}


#: Actions that touch only the message whose row fired them, or besides set
#: every message's membership of the pending-retry list.
NEARLY_LOCAL = frozenset(a for a in Action if touches_only_its_message(a.meaning))

_ACK_RETRY = MessageEvent.ack_retry

#: Bits of :func:`spreads`: the step acts on each message on its own but for
#: every held flag; it sets every held flag.
SPREADS = 1
SETS_EVERY_HELD = 2


class Traits(NamedTuple):
    """What a design's rows and effects touch, which decides the memo tables."""

    #: Whether a message step may move the socket (then every step is learnt on
    #: the whole multiset and the whole global part).
    loose: bool
    #: Whether the effect on an acknowledged handshake touches only the socket.
    ack_socket_only: bool
    #: Whether a connection step acts on each message on its own.
    separable: bool
    #: Whether a step may act on each message on its own but for every held
    #: flag, which the design's one value (``held_value``) replaces at once.
    spread: bool
    held_value: bool


def _writes_and_may_close(system: System, m: Meaning) -> bool:
    """Whether an action writes its message again where the write may find the
    heartbeat deadline passed and close the connection."""
    deadline = any(r.event is ConnectionEvent.heartbeat_expired for r in system.connection)
    return deadline and any(isinstance(e, WriteNow) for e in m.effects)


def moving_stimuli(system: System) -> frozenset[Stimulus]:
    """The aimed stimuli whose step may move the socket and the connection though no
    row of the design moves them directly: an acknowledgement timer whose failed
    attempt writes the message again into a socket that may be past its heartbeat
    deadline. Those steps are learnt on the whole global part; the others as usual."""
    b = system.behaviour
    if any(
        _writes_and_may_close(system, a.meaning)
        for row in b.message
        for a in row.actions
        if row.event is MessageEvent.ack_retry
    ):
        return frozenset({Stimulus.ack_timeout})
    return frozenset()


def traits(system: System) -> Traits:
    """What the rows and effects of ``system``'s design touch."""
    behaviour = system.behaviour
    effects = behaviour.effects
    per_message = [
        a
        for h in (Hook.accept, Hook.rest_succeeded, Hook.rest_attempt_fails, Hook.ack_timed_out)
        for a in effects.actions(h)
    ] + [a for row in behaviour.message for a in row.actions if row.event is not _ACK_RETRY]
    # A message row or per-message effect that moves the socket makes every step loose;
    # the acknowledgement's retry is learnt whole by its stimulus (moving_stimuli). So
    # does an ordered queue, where a message's hold or release moves the others and
    # the end of every step may write into the socket.
    loose = (
        behaviour.one_in_flight
        or any(
            a.meaning.socket is not None or _writes_and_may_close(system, a.meaning)
            for a in per_message
        )
        or any(
            a.meaning.socket is not None
            for row in behaviour.message
            if row.event is _ACK_RETRY
            for a in row.actions
        )
    )
    separable = (
        not loose
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
    # held flag, which one value replaces at once: when the rows it fires touch
    # only their message (or every held flag), checked step by step.
    values = {
        a.meaning.hold_all
        for a in (
            *(a for row in (*behaviour.message, *behaviour.connection) for a in row.actions),
            *(a for h in Hook for a in effects.actions(h)),
        )
        if a.meaning.hold_all is not None
    }
    return Traits(
        loose=loose,
        ack_socket_only=set(effects.actions(Hook.connection_acknowledged)) <= SOCKET_ACTIONS,
        separable=separable,
        spread=not loose and not separable and len(values) <= 1,
        held_value=values.pop() if len(values) == 1 else False,
    )


def socket_only(
    t: Transition, *, loose: bool, ack_socket_only: bool, on_disconnect: bool = False
) -> bool:
    """Whether connection step ``t`` touches only the socket (then it leaves every
    message alone, or only kills the done/toolUse the server owes). ``on_disconnect``:
    the design has an effect at the client's disconnect, which acts on the messages."""
    return (
        all(
            f.message is None
            and set(f.row.actions) <= SOCKET_ACTIONS
            and not (on_disconnect and disconnects(f.row))
            for f in t.fired
        )
        and (t.stimulus is not Stimulus.handshake_ack or ack_socket_only)
        and not loose
    )


def effects_around(system: System, t: Transition) -> tuple[tuple[Action, ...], tuple[Action, ...]]:
    """The effects step ``t`` runs before its rows (accept) and after them
    (rest succeeded, connection acknowledged)."""
    effects = system.behaviour.effects
    if t.stimulus is Stimulus.send:
        return system.on_accept, ()
    if t.stimulus is Stimulus.rest_ok:
        return (), effects.actions(Hook.rest_succeeded)
    if t.stimulus is Stimulus.handshake_ack:
        return (), effects.actions(Hook.connection_acknowledged)
    if t.stimulus is Stimulus.ack_timeout:
        return (), effects.actions(Hook.ack_timed_out)
    return (), ()


def nearly_local_hold(system: System, t: Transition) -> int | None:
    """For a step aimed at one message that touches only that message (and at
    most sets every held flag): the value every held flag ends with (-1: left
    alone, 0: cleared, 1: set); ``None`` for any other step."""
    i = t.message
    before, after = effects_around(system, t)
    run = [*before, *(a for f in t.fired for a in f.row.actions), *after]
    if not (set(run) <= NEARLY_LOCAL and all(f.message == i for f in t.fired)):
        return None
    held = [a.meaning.hold_all for a in run if a.meaning.hold_all is not None]
    return int(held[-1]) if held else -1


def spreads(system: System, t: Transition, held_value: bool) -> int:
    """Whether step ``t`` acts on each message on its own but for every held
    flag (:data:`SPREADS`), and whether it sets every held flag
    (:data:`SETS_EVERY_HELD`).

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
    before, after = effects_around(system, t)
    # Every action the step ran, with whether its parts other than setting
    # every held flag may run. The disconnect's effect acts on every message on
    # its own, but what it fires may hold a message again: never spread over it.
    if system.behaviour.acts_on_disconnect and any(disconnects(f.row) for f in t.fired):
        return 0
    ran = [(a, touches_only_its_message(a.meaning)) for a in before]
    rows_setting_every_flag = False
    for k, f in enumerate(t.fired):
        for a in f.row.actions:
            m = a.meaning
            if f.machine == "connection":
                ran.append((a, touches_only_the_socket(m) or runs_on_each_held(m)))
            else:
                ran.append((a, touches_only_its_message(m) and not (k and m.hold is not None)))
                rows_setting_every_flag |= bool(k) and m.hold_all is not None
    ran += [(a, a.meaning.hold is None and a.meaning.socket is None) for a in after]
    if rows_setting_every_flag and any(a.meaning.each_held is not None for a, _ in ran):
        return 0
    held = False
    for a, allowed in ran:
        if not allowed:
            return 0
        if a.meaning.hold_all is not None:
            if a.meaning.hold_all != held_value:
                return 0
            held = True
    return SPREADS | (SETS_EVERY_HELD if held else 0)
