"""The two machines of a chat client's transport, as data.

Theory of operation
-------------------
Every rule about which event may move which machine where lives in this file,
in two tables: :data:`CONNECTION` (the WebSocket connection) and
:data:`MESSAGE` (one user message). A row is an allowed transition; **anything
not in a design's table is forbidden** and raises
:class:`~fsm.model.errors.ForbiddenTransition`.

Designs differ in their tables. Rather than keep one hand-written table per
design, each row carries a condition on the design's named resilience features
(:class:`~fsm.model.design.Design`); :meth:`MachineSpec.table` selects the rows a
design has. The ``transitions`` machines, the checker, the diagrams and the
monitor all read that selection, so a design's behaviour is stated exactly once.

Rows also carry *actions*: what the client does besides changing state, such as
writing a message into its pending-retry list or retrying that list over REST.
The composed system (:mod:`fsm.analysis.system`) carries them out.

What a design changes outside the machines (the write-ahead, how the server
counts copies, the REST retry budget) is in :mod:`fsm.model.effects`; the
transitions that must never exist are in :mod:`fsm.model.forbidden`.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from fsm.model.errors import DefinitionError, ForbiddenTransition
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    MessageEvent,
    MessageState,
)

if TYPE_CHECKING:
    from fsm.model.design import Design

__all__ = [
    "CONNECTION",
    "ENVIRONMENT_EVENTS",
    "MESSAGE",
    "Cond",
    "MachineSpec",
    "Row",
    "Table",
    "on",
]


#: Connection events the client does not control. Every state of a design's
#: connection table must say what happens on each of them.
ENVIRONMENT_EVENTS: frozenset[ConnectionEvent] = frozenset(
    {
        ConnectionEvent.app_background,
        ConnectionEvent.app_foreground,
        ConnectionEvent.network_lost,
        ConnectionEvent.network_restored,
    }
)

S = TypeVar("S", ConnectionState, MessageState)
E = TypeVar("E", ConnectionEvent, MessageEvent)

Op = Literal["==", "!=", ">"]


@dataclass(frozen=True)
class Cond:
    """A condition on one field of a :class:`~fsm.model.design.Design`."""

    feature: str
    op: Op
    value: bool | int | str

    def holds(self, design: Design) -> bool:
        actual = getattr(design, self.feature)
        if self.op == "==":
            return bool(actual == self.value)
        if self.op == "!=":
            return bool(actual != self.value)
        return bool(actual > self.value)

    def __str__(self) -> str:
        if self.value is True and self.op == "==":
            return self.feature
        if self.value is False and self.op == "==":
            return f"not {self.feature}"
        return f"{self.feature} {self.op} {self.value}"


def on(feature: str, value: bool | int | str = True, op: Op = "==") -> Cond:
    """Shorthand for a :class:`Cond`: ``on("heartbeat")``, ``on("x", False)``."""
    return Cond(feature, op, value)


@dataclass(frozen=True)
class Row(Generic[S, E]):
    """One allowed transition, present in the designs where every condition holds."""

    source: S
    event: E
    target: S
    when: tuple[Cond, ...] = ()
    actions: tuple[Action, ...] = ()
    note: str = ""

    def applies(self, design: Design) -> bool:
        return all(cond.holds(design) for cond in self.when)

    @property
    def edge(self) -> tuple[S, E, S]:
        return (self.source, self.event, self.target)


@dataclass(frozen=True)
class Table(Generic[S, E]):
    """One design's transition table for one machine: ``(state, event) -> row``."""

    machine: str
    initial: S
    states: tuple[S, ...]
    events: tuple[E, ...]
    rows: Mapping[tuple[S, E], Row[S, E]]

    def step(self, state: S, event: E) -> Row[S, E]:
        """The row for ``event`` in ``state``; :class:`ForbiddenTransition` if none."""
        try:
            return self.rows[(state, event)]
        except KeyError:
            raise ForbiddenTransition(self.machine, state, event) from None

    def allows(self, state: S, event: E) -> bool:
        return (state, event) in self.rows

    def __iter__(self) -> Iterator[Row[S, E]]:
        return iter(sorted(self.rows.values(), key=_row_order))

    def __len__(self) -> int:
        return len(self.rows)


def _row_order(row: Row[S, E]) -> tuple[int, int, int]:
    states = list(type(row.source))
    events = list(type(row.event))
    return (states.index(row.source), events.index(row.event), states.index(row.target))


@dataclass(frozen=True)
class MachineSpec(Generic[S, E]):
    """Every row a machine can have in any design."""

    name: str
    states: type[S]
    events: type[E]
    initial: S
    rows: tuple[Row[S, E], ...]
    total_for: frozenset[E] = field(default_factory=frozenset)

    def table(self, design: Design) -> Table[S, E]:
        """Select the rows ``design`` has, and check that they form a machine."""
        rows: dict[tuple[S, E], Row[S, E]] = {}
        for row in self.rows:
            if not row.applies(design):
                continue
            key = (row.source, row.event)
            if key in rows:
                raise DefinitionError(
                    f"{self.name} machine, design {design.name!r}: two rows for event "
                    f"{row.event.value!r} in state {row.source.value!r} "
                    f"(to {rows[key].target.value!r} and to {row.target.value!r}); "
                    "make their conditions exclusive"
                )
            rows[key] = row
        for state in self.states:
            for event in sorted(self.total_for, key=lambda e: e.value):
                if (state, event) not in rows:
                    raise DefinitionError(
                        f"{self.name} machine, design {design.name!r}: no row for the "
                        f"environment event {event.value!r} in state {state.value!r}; "
                        "add one (a self-loop if nothing changes)"
                    )
        return Table(
            machine=self.name,
            initial=self.initial,
            states=tuple(self.states),
            events=tuple(self.events),
            rows=rows,
        )

    def validate(self) -> None:
        """Check the rows themselves: types, and features that exist on Design."""
        from fsm.model.design import Design

        for row in self.rows:
            if not isinstance(row.source, self.states) or not isinstance(row.target, self.states):
                raise DefinitionError(
                    f"{self.name} machine: row {row.source}-{row.event}->{row.target} "
                    f"names a state that is not a {self.states.__name__}"
                )
            if not isinstance(row.event, self.events):
                raise DefinitionError(
                    f"{self.name} machine: row event {row.event!r} is not a {self.events.__name__}"
                )
            for cond in row.when:
                if cond.feature not in (*Design.model_fields, *Design.derived()):
                    raise DefinitionError(
                        f"{self.name} machine: row {row.source}-{row.event}->{row.target} "
                        f"depends on {cond.feature!r}, which is not a Design field"
                    )


C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent
A = Action


def _acknowledged(
    source: ConnectionState, *when: Cond, note: str = ""
) -> tuple[Row[ConnectionState, ConnectionEvent], ...]:
    """``source -handshake_ack-> connected``, once for each combination of what it
    writes: the offline buffer first (socket.io's emitBuffered), then the
    pending-retry list, all of it or its oldest message (socket.io's
    _drainQueue(true) runs after)."""
    rows = []
    resends = {"none": (), "all": (A.resend_pending_ws,), "oldest": (A.resend_oldest,)}
    for flush in (False, True):
        for resend, written in resends.items():
            actions = (A.flush_buffer,) * flush + written
            buffer = on("offline_buffer", flush)
            rows.append(
                Row(
                    source,
                    CE.handshake_ack,
                    C.connected,
                    (*when, on("reconnect_resend", resend), buffer),
                    actions,
                    note=note,
                )
            )
    return tuple(rows)


# The tables. One row per line: source, event, target, the design features the
# row needs, the actions it takes, a note for diagrams. Kept out of the
# formatter so they read as tables.
# fmt: off
_CONNECTION_ROWS: tuple[Row[ConnectionState, ConnectionEvent], ...] = (
    # Opening a socket. The pre-fix client sets isConnected on resume() (F2).
    Row(C.idle, CE.connect, C.handshaking, (on("await_handshake"),), (A.open_socket,)),
    Row(C.idle, CE.connect, C.connected, (on("await_handshake", False),), (A.open_socket,),
        note="isConnected = true on resume()"),
    Row(C.disconnected, CE.connect, C.handshaking, (on("await_handshake"),), (A.open_socket,)),
    Row(C.disconnected, CE.connect, C.connected, (on("await_handshake", False),),
        (A.open_socket,), note="isConnected = true on resume()"),
    # The handshake's outcome: the buffer is flushed, then the pending list resent.
    *_acknowledged(C.handshaking, on("await_handshake")),
    *_acknowledged(C.connected, on("await_handshake", False), note="the flag was already true"),
    Row(C.handshaking, CE.handshake_fail, C.disconnected, (on("await_handshake"),)),
    Row(C.connected, CE.handshake_fail, C.disconnected, (on("await_handshake", False),)),
    # The app's lifecycle. iOS suspends the socket and says nothing.
    Row(C.idle, CE.app_background, C.idle),
    Row(C.handshaking, CE.app_background, C.handshaking, note="the handshake is frozen"),
    Row(C.connected, CE.app_background, C.suspended_stale, note="socket suspended silently"),
    Row(C.suspended_stale, CE.app_background, C.suspended_stale),
    Row(C.disconnected, CE.app_background, C.disconnected),
    Row(C.idle, CE.app_foreground, C.idle),
    Row(C.handshaking, CE.app_foreground, C.handshaking),
    Row(C.connected, CE.app_foreground, C.connected),
    Row(C.suspended_stale, CE.app_foreground, C.suspended_stale,
        (on("reconnect_on_foreground", False),), note="nothing checks the socket"),
    Row(C.suspended_stale, CE.app_foreground, C.handshaking,
        (on("reconnect_on_foreground"), on("await_handshake")),
        (A.close_socket, A.open_socket), note="reconnect on foreground"),
    Row(C.suspended_stale, CE.app_foreground, C.connected,
        (on("reconnect_on_foreground"), on("await_handshake", False)),
        (A.close_socket, A.open_socket), note="reconnect on foreground"),
    Row(C.disconnected, CE.app_foreground, C.disconnected),
    # The OS reports network changes on a live socket (URLSession: connection lost).
    Row(C.idle, CE.network_lost, C.idle),
    Row(C.handshaking, CE.network_lost, C.disconnected, actions=(A.close_socket,)),
    Row(C.connected, CE.network_lost, C.disconnected, actions=(A.close_socket,)),
    Row(C.suspended_stale, CE.network_lost, C.suspended_stale, note="already dead, unreported"),
    Row(C.disconnected, CE.network_lost, C.disconnected),
    Row(C.idle, CE.network_restored, C.idle),
    Row(C.handshaking, CE.network_restored, C.handshaking),
    Row(C.connected, CE.network_restored, C.connected),
    Row(C.suspended_stale, CE.network_restored, C.suspended_stale),
    Row(C.disconnected, CE.network_restored, C.disconnected),
    # A suspended socket is eventually reported; a half-open one never is.
    Row(C.suspended_stale, CE.socket_error, C.disconnected, actions=(A.close_socket,),
        note="handleDisconnect()"),
    Row(C.connected, CE.connection_dropped, C.suspended_stale, note="half-open, unreported"),
    Row(C.suspended_stale, CE.ping_timeout, C.disconnected, (on("heartbeat"),),
        (A.close_socket,)),
    Row(C.suspended_stale, CE.heartbeat_expired, C.disconnected, (on("send_deadline_check"),),
        (A.close_socket,), note="the send saw the deadline passed"),
    # A send that raised. The seed's fix turns it into a full disconnect.
    Row(C.suspended_stale, CE.send_failed, C.suspended_stale,
        (on("send_failure_disconnects", False),), note="error only logged"),
    Row(C.suspended_stale, CE.send_failed, C.disconnected,
        (on("send_failure_disconnects"), on("rest_fallback", False)), (A.close_socket,)),
    Row(C.suspended_stale, CE.send_failed, C.disconnected,
        (on("send_failure_disconnects"), on("rest_fallback"),
         on("pending_cleared_on", "own_confirmation", "!=")),
        (A.close_socket, A.retry_pending_rest, A.release_all), note="onSendFailed"),
    Row(C.suspended_stale, CE.send_failed, C.disconnected,
        (on("send_failure_disconnects"), on("rest_fallback"),
         on("pending_cleared_on", "own_confirmation")),
        (A.close_socket, A.retry_pending_rest), note="onSendFailed"),
)

def _confirmations(
    source: MessageState, event: MessageEvent, *when: Cond
) -> tuple[Row[MessageState, MessageEvent], ...]:
    """``source -event-> confirmed``, once per pending-list clearing policy: nothing
    to clear (cleared on send), the whole list (the seed's fix), or its own entry."""
    return (
        Row(source, event, M.confirmed, (*when, on("pending_cleared_on", "ws_send"))),
        Row(source, event, M.confirmed, (*when, on("pending_cleared_on", "any_done")),
            (A.release_all,)),
        Row(source, event, M.confirmed, (*when, on("pending_cleared_on", "own_confirmation")),
            (A.release,)),
    )


_MESSAGE_ROWS: tuple[Row[MessageState, MessageEvent], ...] = (
    # The first attempt, over the WebSocket or, when not connected, as offline_send says.
    Row(M.pending, ME.ws_send_ok, M.sent_ws, (on("pending_cleared_on", "ws_send", "!="),)),
    Row(M.pending, ME.ws_send_ok, M.sent_ws, (on("pending_cleared_on", "ws_send"),
        on("write_ahead")), (A.release,), note="cleared on send success"),
    # Without a pending-retry list there is nothing to clear (F3 needs a held message).
    Row(M.pending, ME.ws_send_ok, M.sent_ws, (on("pending_cleared_on", "ws_send"),
        on("write_ahead", False))),
    Row(M.pending, ME.ws_send_failed, M.sent_ws, (on("send_failure_disconnects", False),),
        note="error swallowed"),
    Row(M.pending, ME.ws_send_failed, M.failed,
        (on("send_failure_disconnects"), on("rest_fallback", False), on("send_failure_shown")),
        (A.release,)),
    Row(M.pending, ME.ws_send_failed, M.sent_ws,
        (on("send_failure_disconnects"), on("send_failure_shown", False)),
        note="the transport closes; the app is not told"),
    Row(M.pending, ME.ws_send_failed, M.pending,
        (on("send_failure_disconnects"), on("rest_fallback")), note="await REST retry"),
    Row(M.pending, ME.send_rest, M.sending_rest, (on("offline_send", "rest"),),
        note="not connected"),
    Row(M.pending, ME.buffer, M.buffered, (on("offline_send", "buffer"),), note="offline buffer"),
    Row(M.pending, ME.deadline_buffer, M.buffered, (on("send_deadline_check"),),
        note="not into the dead socket"),
    Row(M.pending, ME.queue, M.pending, (on("offline_send", "queue"),),
        note="waits for a connection"),
    Row(M.pending, ME.refuse, M.failed, (on("offline_send", "refuse"),), (A.release,),
        note="refused: not connected"),
    Row(M.buffered, ME.flush, M.sent_ws, (on("offline_buffer"),)),
    # Retries from the pending-retry list.
    Row(M.pending, ME.retry_rest, M.retrying_rest, (on("rest_fallback"),)),
    Row(M.sent_ws, ME.retry_rest, M.retrying_rest, (on("rest_fallback"),),
        note="the whole list is retried"),
    Row(M.pending, ME.resend_ws, M.sent_ws, (on("resend_on_reconnect"),)),
    Row(M.sent_ws, ME.resend_ws, M.sent_ws, (on("resend_on_reconnect"),)),
    # Confirmation, and what it clears: the server's done/toolUse, a REST success,
    # or the state refetched after a reconnect (the companion fix).
    *_confirmations(M.sent_ws, ME.done, on("acknowledged")),
    *_confirmations(M.sending_rest, ME.rest_ok, on("rest_endpoint")),
    *_confirmations(M.retrying_rest, ME.rest_ok, on("rest_endpoint")),
    *_confirmations(M.sent_ws, ME.recovered, on("refetch_after_reconnect")),
    Row(M.confirmed, ME.done, M.confirmed, (on("refetch_after_reconnect"), on("acknowledged")),
        note="a late done after the refetch: ignored"),
    # Bounded REST attempts (Ably RTN7e). The app's own REST send shows its failure;
    # what a failed retry from the pending-retry list does is the design's choice.
    Row(M.sending_rest, ME.rest_failed, M.sending_rest,
        (on("rest_endpoint"), on("max_rest_attempts", 1, ">")), note="another attempt"),
    Row(M.retrying_rest, ME.rest_failed, M.retrying_rest,
        (on("rest_endpoint"), on("max_rest_attempts", 1, ">")), note="another attempt"),
    Row(M.sending_rest, ME.retries_exhausted, M.failed, (on("rest_endpoint"),), (A.release,)),
    Row(M.retrying_rest, ME.retries_exhausted, M.failed,
        (on("rest_endpoint"), on("rest_retry_failure", "shown")), (A.release,),
        note="failure shown"),
    Row(M.retrying_rest, ME.retries_exhausted, M.sent_ws,
        (on("rest_endpoint"), on("rest_retry_failure", "swallowed")), (A.release,),
        note="try? swallows the error"),
    Row(M.retrying_rest, ME.retries_exhausted, M.pending,
        (on("rest_endpoint"), on("rest_retry_failure", "requeued")), (A.hold,),
        note="back in the list"),
    # The acknowledgement that will not come (socket.io ackTimeout, _clearAcks): written
    # again while WebSocket attempts are left, then shown as failed. A buffered message's
    # timer runs too (socket.io registers it at emit); a disconnect spares it.
    Row(M.sent_ws, ME.ack_retry, M.pending,
        (on("notices_ack_failure"), on("ws_attempts", 1, ">")), (A.hold, A.write_now),
        note="back in the retry queue"),
    Row(M.sent_ws, ME.ack_failed, M.failed, (on("notices_ack_failure"),), (A.release,),
        note="the app is told it failed"),
    Row(M.buffered, ME.ack_retry, M.pending,
        (on("ack_timer"), on("offline_buffer"), on("ws_attempts", 1, ">")),
        (A.hold, A.write_now), note="back in the retry queue"),
    Row(M.buffered, ME.ack_failed, M.failed, (on("ack_timer"), on("offline_buffer")),
        (A.release,), note="timed out in the buffer"),
)
# fmt: on

CONNECTION: MachineSpec[ConnectionState, ConnectionEvent] = MachineSpec(
    name="connection",
    states=ConnectionState,
    events=ConnectionEvent,
    initial=ConnectionState.idle,
    rows=_CONNECTION_ROWS,
    total_for=ENVIRONMENT_EVENTS,
)

MESSAGE: MachineSpec[MessageState, MessageEvent] = MachineSpec(
    name="message",
    states=MessageState,
    events=MessageEvent,
    initial=MessageState.pending,
    rows=_MESSAGE_ROWS,
)
