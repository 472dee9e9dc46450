"""The two machines of a chat client's transport, as data.

Theory of operation
-------------------
Every rule about which event may move which machine where lives in this file,
in two tables: :data:`CONNECTION` (the WebSocket connection) and
:data:`MESSAGE` (one user message). A row is an allowed transition; **anything
not in a design's table is forbidden** and raises
:class:`~fsm.errors.ForbiddenTransition`.

Designs differ in their tables. Rather than keep one hand-written table per
design, each row carries a condition on the design's named resilience features
(:class:`~fsm.design.Design`); :meth:`MachineSpec.table` selects the rows a
design has. The ``transitions`` machines, the checker, the diagrams and the
monitor all read that selection, so a design's behaviour is stated exactly once.

Rows also carry *actions*: what the client does besides changing state, such as
writing a message into its pending-retry list or retrying that list over REST.
The composed system (:mod:`fsm.system`) carries them out.

:data:`FORBIDDEN` lists the transitions that must never exist, each with the
evidence it comes from. The checker looks for them in a design's table
(statically) and in its reachable behaviour (dynamically).

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from fsm.errors import DefinitionError, ForbiddenTransition

if TYPE_CHECKING:
    from fsm.design import Design

__all__ = [
    "CONNECTION",
    "ENVIRONMENT_EVENTS",
    "FORBIDDEN",
    "MESSAGE",
    "Action",
    "Cond",
    "ConnectionEvent",
    "ConnectionState",
    "ForbiddenRule",
    "MachineSpec",
    "MessageEvent",
    "MessageState",
    "Row",
    "Table",
]


class _Documented(Enum):
    """An Enum whose members carry a one-line ``doc``."""

    doc: str

    # Members are singletons, so identity hashing is exact, and it runs in C:
    # the explorer hashes millions of worlds made of these.
    __hash__ = object.__hash__

    def __new__(cls, value: str, doc: str) -> _Documented:
        member = object.__new__(cls)
        member._value_ = value
        member.doc = doc
        return member

    def __str__(self) -> str:
        return str(self.value)


class ConnectionState(_Documented):
    """Where the client's WebSocket connection is.

    ``suspended_stale`` is the state the seed bug lives in: the client still
    reports ``isConnected == true`` but the socket under it is dead.
    """

    idle = ("idle", "No socket has been opened yet (the app has just launched).")
    handshaking = (
        "handshaking",
        "resume() was called; the client waits for the server to acknowledge the handshake.",
    )
    connected = (
        "connected",
        "The client reports isConnected == true and sends over the WebSocket.",
    )
    suspended_stale = (
        "suspended_stale",
        "isConnected is still true but the socket is dead (suspended by iOS, or half-open).",
    )
    disconnected = (
        "disconnected",
        "The client knows the socket is gone; sends go over REST until it reconnects.",
    )


class ConnectionEvent(_Documented):
    """What can happen to the connection."""

    connect = ("connect", "The client opens a WebSocket: URLSessionWebSocketTask.resume().")
    handshake_ack = (
        "handshake_ack",
        "The server acknowledged the handshake (didOpenWithProtocol; Ably's CONNECTED).",
    )
    handshake_fail = (
        "handshake_fail",
        "The handshake failed or timed out and URLSession reported the error.",
    )
    app_background = (
        "app_background",
        "The app went to the background; iOS suspends its sockets without raising an error.",
    )
    app_foreground = ("app_foreground", "The app returned to the foreground.")
    network_lost = (
        "network_lost",
        "The network path went away and the socket reported the loss (Ably RTN20).",
    )
    network_restored = ("network_restored", "The network path is available again.")
    socket_error = (
        "socket_error",
        "The receive loop finally reported the dead socket ('Socket is not connected').",
    )
    connection_dropped = (
        "connection_dropped",
        "The connection went half-open (NAT timeout, server killed); nothing is reported.",
    )
    send_failed = ("send_failed", "A WebSocket send raised an error.")
    ping_timeout = (
        "ping_timeout",
        "A heartbeat went unanswered, so the socket is declared dead (Phoenix, sendPing).",
    )


class MessageState(_Documented):
    """Where one message the user sent is, as the client sees it."""

    pending = ("pending", "The user pressed send; no transport has taken the message yet.")
    sent_ws = ("sent_ws", "The WebSocket send returned; the client waits for done/toolUse.")
    retrying_rest = ("retrying_rest", "A REST request carrying the message is in flight.")
    confirmed = ("confirmed", "The server's done/toolUse or the REST response confirmed it.")
    failed = ("failed", "The user sees that the message was not delivered (not a silent loss).")


class MessageEvent(_Documented):
    """What can happen to one message."""

    ws_send_ok = ("ws_send_ok", "task.send() returned without an error.")
    ws_send_failed = ("ws_send_failed", "task.send() raised an error.")
    send_rest = ("send_rest", "The client is not connected, so it sends over REST directly.")
    retry_rest = ("retry_rest", "A failed WebSocket send makes the client retry it over REST.")
    resend_ws = (
        "resend_ws",
        "A new connection was acknowledged; the client resends it over the WebSocket.",
    )
    done = ("done", "The server's done/toolUse for this message arrived over the WebSocket.")
    rest_ok = ("rest_ok", "The REST request returned success.")
    rest_failed = ("rest_failed", "The REST request failed and the client sends it again.")
    retries_exhausted = (
        "retries_exhausted",
        "The REST request failed and no attempt is left; the failure is shown.",
    )


class Action(_Documented):
    """What the client does besides moving a machine."""

    open_socket = ("open_socket", "Open a new WebSocket (resume()).")
    close_socket = ("close_socket", "Close the socket (handleDisconnect()).")
    retry_pending_rest = (
        "retry_pending_rest",
        "onSendFailed: send every message of the pending-retry list over REST.",
    )
    resend_pending_ws = (
        "resend_pending_ws",
        "Resend every message of the pending-retry list over the new WebSocket.",
    )
    release = ("release", "Remove this message from the pending-retry list.")
    release_all = (
        "release_all",
        "Clear the whole pending-retry list (pendingRetryMessages = nil).",
    )


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
    """A condition on one field of a :class:`~fsm.design.Design`."""

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
        from fsm.design import Design

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
                if cond.feature not in Design.model_fields:
                    raise DefinitionError(
                        f"{self.name} machine: row {row.source}-{row.event}->{row.target} "
                        f"depends on {cond.feature!r}, which is not a Design field"
                    )


C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent
A = Action

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
    # The handshake's outcome.
    Row(C.handshaking, CE.handshake_ack, C.connected,
        (on("await_handshake"), on("resend_on_reconnect", False))),
    Row(C.handshaking, CE.handshake_ack, C.connected,
        (on("await_handshake"), on("resend_on_reconnect")), (A.resend_pending_ws,)),
    Row(C.connected, CE.handshake_ack, C.connected,
        (on("await_handshake", False), on("resend_on_reconnect", False)),
        note="the flag was already true"),
    Row(C.connected, CE.handshake_ack, C.connected,
        (on("await_handshake", False), on("resend_on_reconnect")), (A.resend_pending_ws,),
        note="the flag was already true"),
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

_MESSAGE_ROWS: tuple[Row[MessageState, MessageEvent], ...] = (
    # The first attempt, over the WebSocket or, when not connected, over REST.
    Row(M.pending, ME.ws_send_ok, M.sent_ws, (on("pending_cleared_on", "ws_send", "!="),)),
    Row(M.pending, ME.ws_send_ok, M.sent_ws, (on("pending_cleared_on", "ws_send"),),
        (A.release,), note="cleared on send success"),
    Row(M.pending, ME.ws_send_failed, M.sent_ws, (on("send_failure_disconnects", False),),
        note="error swallowed"),
    Row(M.pending, ME.ws_send_failed, M.failed,
        (on("send_failure_disconnects"), on("rest_fallback", False)), (A.release,)),
    Row(M.pending, ME.ws_send_failed, M.pending,
        (on("send_failure_disconnects"), on("rest_fallback")), note="await REST retry"),
    Row(M.pending, ME.send_rest, M.retrying_rest),
    # Retries from the pending-retry list.
    Row(M.pending, ME.retry_rest, M.retrying_rest, (on("rest_fallback"),)),
    Row(M.sent_ws, ME.retry_rest, M.retrying_rest, (on("rest_fallback"),),
        note="the whole list is retried"),
    Row(M.pending, ME.resend_ws, M.sent_ws, (on("resend_on_reconnect"),)),
    Row(M.sent_ws, ME.resend_ws, M.sent_ws, (on("resend_on_reconnect"),)),
    # Confirmation, and what it clears.
    Row(M.sent_ws, ME.done, M.confirmed, (on("pending_cleared_on", "ws_send"),)),
    Row(M.sent_ws, ME.done, M.confirmed, (on("pending_cleared_on", "any_done"),),
        (A.release_all,)),
    Row(M.sent_ws, ME.done, M.confirmed, (on("pending_cleared_on", "own_confirmation"),),
        (A.release,)),
    Row(M.retrying_rest, ME.rest_ok, M.confirmed, (on("pending_cleared_on", "ws_send"),)),
    Row(M.retrying_rest, ME.rest_ok, M.confirmed, (on("pending_cleared_on", "any_done"),),
        (A.release_all,)),
    Row(M.retrying_rest, ME.rest_ok, M.confirmed,
        (on("pending_cleared_on", "own_confirmation"),), (A.release,)),
    # Bounded REST retries end in a failure the user sees (Ably RTN7e).
    Row(M.retrying_rest, ME.rest_failed, M.retrying_rest, (on("max_rest_attempts", 1, ">"),),
        note="another attempt"),
    Row(M.retrying_rest, ME.retries_exhausted, M.failed, actions=(A.release,)),
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


# Forbidden transitions --------------------------------------------------------------
@dataclass(frozen=True)
class ForbiddenRule:
    """A transition no design may take.

    It matches a row of ``machine`` by sources, event and targets (``None``
    matches any), optionally only when the row carries ``action`` and, for
    a message row, only while the connection is in one of ``while_connection``.
    """

    id: str
    machine: Literal["connection", "message"]
    reason: str
    evidence: str
    sources: frozenset[Enum] | None
    event: Enum | None
    targets: frozenset[Enum] | None = None
    action: Action | None = None
    while_connection: frozenset[ConnectionState] | None = None

    def matches_row(self, row: Row[Any, Any]) -> bool:
        return (
            (self.sources is None or row.source in self.sources)
            and (self.event is None or row.event is self.event)
            and (self.targets is None or row.target in self.targets)
            and (self.action is None or self.action in row.actions)
        )

    @property
    def scope(self) -> str:
        """The connection states the rule is limited to, or '' when it always applies."""
        if self.while_connection is None:
            return ""
        return ", ".join(sorted(s.value for s in self.while_connection))

    def matches_step(self, row: Row[Any, Any], connection: ConnectionState) -> bool:
        return self.matches_row(row) and (
            self.while_connection is None or connection in self.while_connection
        )


FORBIDDEN: tuple[ForbiddenRule, ...] = (
    ForbiddenRule(
        id="F1",
        machine="message",
        reason="a send into a stale socket whose error is swallowed leaves the message "
        "sent_ws with no path to confirmation",
        evidence="seed, Root Cause 4-7; Starscream NativeEngine drops the send error",
        sources=frozenset({M.pending}),
        event=ME.ws_send_failed,
        targets=frozenset({M.sent_ws}),
        while_connection=frozenset({C.suspended_stale}),
    ),
    ForbiddenRule(
        id="F2",
        machine="connection",
        reason="the client reports connected before the server acknowledged the handshake",
        evidence="seed, Key Insight (isConnected = true on resume()); Ably RTN6",
        sources=None,
        event=None,
        targets=frozenset({C.connected}),
        action=A.open_socket,
    ),
    ForbiddenRule(
        id="F3",
        machine="message",
        reason="the pending-retry entry is cleared when the WebSocket send returns, "
        "not when the server's done/toolUse arrives",
        evidence="seed, ChatViewModel changes (cleared only after done/toolUse); Ably RTN7",
        sources=frozenset({M.pending}),
        event=ME.ws_send_ok,
        action=A.release,
    ),
)


def _validate() -> None:
    for spec in (CONNECTION, MESSAGE):
        spec.validate()
    ids = [rule.id for rule in FORBIDDEN]
    if len(set(ids)) != len(ids):
        raise DefinitionError(f"forbidden rules have duplicate ids: {ids}")
