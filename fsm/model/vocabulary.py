"""The model's vocabulary: states, events, sockets and actions, each with a one-line doc.

Every member of these enums carries a ``doc`` saying what it means on a real
client (``ConnectionState.suspended_stale.doc``). Each :class:`Action` also
carries its :class:`Meaning`: what it does to the composed world, stated once,
here, as data. Every backend carries it out effect by effect (:data:`Effect`)
through :func:`interpret`, implementing :class:`ActionInterpreter`; the
diagrams print it (:meth:`Meaning.describe`). The facts other modules need about
the vocabulary (which states report connected, which have a REST request in
flight, which sockets are dead, what an action reads and writes) are properties
here, not sets restated elsewhere.

Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import TYPE_CHECKING, Generic, Literal, NoReturn, Protocol, TypeVar

from fsm.model.errors import DefinitionError

if TYPE_CHECKING:
    from typing_extensions import Never

__all__ = [
    "Action",
    "ActionInterpreter",
    "ConnectionEvent",
    "ConnectionState",
    "CountAttempt",
    "Documented",
    "DrainQueue",
    "Effect",
    "FailEachUnacked",
    "FailWsAttempt",
    "Footprint",
    "Hook",
    "Meaning",
    "MessageEvent",
    "MessageState",
    "OnEach",
    "OnEachHeld",
    "OnEachOnServer",
    "OnOldest",
    "Part",
    "ServerRule",
    "SetEveryHeld",
    "SetHeld",
    "SetSocket",
    "Socket",
    "WriteNow",
    "interpret",
    "unhandled",
]


class Documented(Enum):
    """An Enum whose members carry a one-line ``doc``."""

    doc: str

    # Members are singletons, so identity hashing is exact, and it runs in C:
    # the explorer hashes millions of worlds made of these.
    __hash__ = object.__hash__

    def __new__(cls, value: str, doc: str) -> Documented:
        member = object.__new__(cls)
        member._value_ = value
        member.doc = doc
        return member

    def __str__(self) -> str:
        return str(self.value)


class ConnectionState(Documented):
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

    @property
    def reports_connected(self) -> bool:
        """The client's isConnected flag reads true: it sends over the WebSocket.

        ``connected`` and ``suspended_stale`` both do; a client cannot know its
        socket is dead.
        """
        return self in _REPORTS_CONNECTED


class ConnectionEvent(Documented):
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
    heartbeat_expired = (
        "heartbeat_expired",
        "A send found the heartbeat deadline already passed (the app was frozen past it), so "
        "the client closes the connection at once (socket.io-client 4.8.0, _hasPingExpired).",
    )


class MessageState(Documented):
    """Where one message the user sent is, as the client sees it."""

    pending = ("pending", "The user pressed send; no transport has taken the message yet.")
    sent_ws = ("sent_ws", "The WebSocket send returned; the client waits for done/toolUse.")
    sending_rest = (
        "sending_rest",
        "The client was not connected, so it sent the message over REST itself; the request "
        "is in flight.",
    )
    retrying_rest = (
        "retrying_rest",
        "onSendFailed retries it from the pending-retry list: a REST request is in flight.",
    )
    confirmed = ("confirmed", "The server's done/toolUse or the REST response confirmed it.")
    failed = ("failed", "The user sees that the message was not delivered (not a silent loss).")
    buffered = (
        "buffered",
        "The client was not connected (or found the heartbeat deadline passed), so it keeps "
        "the message in its offline buffer, to write when a connection is acknowledged "
        "(socket.io's sendBuffer).",
    )

    @property
    def rest_in_flight(self) -> bool:
        """A REST request carrying the message is in flight (a REST outcome can answer it)."""
        return self in _REST_IN_FLIGHT

    @property
    def settled(self) -> bool:
        """Confirmed or visibly failed: the message is never sent again."""
        return self in _SETTLED

    @property
    def awaits_ack(self) -> bool:
        """The client waits for the message's acknowledgement: it was written over the
        WebSocket, or buffered to be (its acknowledgement timer, if any, runs)."""
        return self in _AWAITS_ACK


class MessageEvent(Documented):
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
    recovered = (
        "recovered",
        "The server's state, fetched after a reconnect or a REST success, shows it applied "
        "the message: its response is recovered (the seed's companion refetch fix).",
    )
    retries_exhausted = (
        "retries_exhausted",
        "The REST request failed and no attempt is left: what follows is the design's "
        "rest_retry_failure (shown, swallowed or requeued).",
    )
    buffer = (
        "buffer",
        "The client is not connected, so it keeps the message in its offline buffer.",
    )
    deadline_buffer = (
        "deadline_buffer",
        "The client reports connected but the send found the heartbeat deadline passed, so "
        "the message goes into the offline buffer instead of the dead socket.",
    )
    queue = (
        "queue",
        "The client is not connected, so the message waits in the pending-retry list for the "
        "next connection (socket.io's retry queue).",
    )
    refuse = (
        "refuse",
        "The client is not connected and refuses the send: the user sees it failed.",
    )
    flush = (
        "flush",
        "A connection was acknowledged: the client writes its buffered messages over the "
        "WebSocket, in order (socket.io's emitBuffered).",
    )
    ack_retry = (
        "ack_retry",
        "The acknowledgement will not come (its timer fired, or the connection closed first) "
        "and a WebSocket attempt is left: the message goes back into the pending-retry list "
        "and is written again at once if the client reports connected.",
    )
    ack_failed = (
        "ack_failed",
        "The acknowledgement will not come and no WebSocket attempt is left: the app is told "
        "the send failed ('operation has timed out').",
    )

    @property
    def starts_rest(self) -> bool:
        """A row for this event that ends with a REST request in flight sends a new one."""
        return self in _STARTS_REST

    @property
    def attempts_ws(self) -> bool:
        """A row for this event is one WebSocket attempt at the message, which a
        WebSocket attempt budget counts: its send, a resend, or a send the heartbeat
        deadline turned into the buffer (socket.io counts the try before it writes).
        Flushing the offline buffer is not one: it writes an attempt already made."""
        return self in _ATTEMPTS_WS


class Socket(Documented):
    """What the socket under the client really is (the client cannot see it)."""

    closed = ("closed", "No socket exists.")
    opening = ("opening", "resume() was called; the handshake has not completed.")
    open = ("open", "The handshake completed and the peer is reachable.")
    suspended = (
        "suspended",
        "iOS suspended it with the app: a send raises, and the receive loop reports the "
        "error once the app runs in the foreground again.",
    )
    half_open = (
        "half_open",
        "The peer is gone but the socket looks fine: nothing is ever reported, and in the "
        "half-open environment a send may return normally while its bytes go nowhere.",
    )

    @property
    def dead(self) -> bool:
        """The socket is dead but nothing has said so yet (suspended or half-open)."""
        return self in _DEAD


_REPORTS_CONNECTED = frozenset({ConnectionState.connected, ConnectionState.suspended_stale})
_REST_IN_FLIGHT = frozenset({MessageState.sending_rest, MessageState.retrying_rest})
_SETTLED = frozenset({MessageState.confirmed, MessageState.failed})
_AWAITS_ACK = frozenset({MessageState.sent_ws, MessageState.buffered})
_STARTS_REST = frozenset(
    {MessageEvent.send_rest, MessageEvent.retry_rest, MessageEvent.rest_failed}
)
_DEAD = frozenset({Socket.suspended, Socket.half_open})
_ATTEMPTS_WS = frozenset(
    {
        MessageEvent.ws_send_ok,
        MessageEvent.ws_send_failed,
        MessageEvent.deadline_buffer,
        MessageEvent.resend_ws,
    }
)


class Part(Documented):
    """A part of the composed world an action may read or write (its :class:`Footprint`)."""

    this_message = (
        "this_message",
        "The message whose row ran the action: its state, pending-retry flag, failed REST "
        "attempts and the server's copies of it.",
    )
    every_message = ("every_message", "The machine of every message: rows fire on them.")
    pending_flags = ("pending_flags", "Every message's membership of the pending-retry list.")
    server_copies = (
        "server_copies",
        "The server's copies of every message, and the done/toolUse it owes on the socket.",
    )
    socket = ("socket", "The socket under the client.")


@dataclass(frozen=True)
class Footprint:
    """What an action reads and writes, derived from its :class:`Meaning`."""

    reads: frozenset[Part]
    writes: frozenset[Part]

    @property
    def touches(self) -> frozenset[Part]:
        return self.reads | self.writes

    @property
    def local(self) -> bool:
        """It touches only the message whose row ran it: a step that runs nothing
        else depends on that message alone."""
        return self.touches <= {Part.this_message}

    @property
    def socket_only(self) -> bool:
        """It touches the socket and nothing else: it is the world's, not the client's."""
        return self.touches == {Part.socket}


# -- what a Meaning does, one typed record per field --------------------------------------
@dataclass(frozen=True)
class SetSocket:
    """The socket becomes ``to``; a done/toolUse owed on the old socket dies with it."""

    to: Socket


@dataclass(frozen=True)
class SetHeld:
    """This message's membership of the pending-retry list becomes ``value``."""

    value: bool


@dataclass(frozen=True)
class SetEveryHeld:
    """Every message's membership of the pending-retry list becomes ``value``."""

    value: bool


@dataclass(frozen=True)
class OnEachHeld:
    """``event`` fires on every held message whose state has a row for it; with
    ``over_ws`` each copy reaches the server over the WebSocket first."""

    event: MessageEvent
    over_ws: bool


@dataclass(frozen=True)
class ServerRule:
    """How the server applies a copy it receives: every copy, or once per client id."""

    how: Literal["count", "once"]


@dataclass(frozen=True)
class CountAttempt:
    """A failed REST attempt counts against the budget (see ``Behaviour.after_rest_failure``)."""


@dataclass(frozen=True)
class OnEachOnServer:
    """``event`` fires on every message the server applied whose state has a row for it."""

    event: MessageEvent


@dataclass(frozen=True)
class OnEach:
    """``event`` fires on every message whose state has a row for it; with ``over_ws``
    each copy reaches the server over the WebSocket first (the socket is open)."""

    event: MessageEvent
    over_ws: bool


@dataclass(frozen=True)
class WriteNow:
    """If the client reports connected, this message is written over the WebSocket at
    once (``resend_ws``): it reaches the server through an open socket and vanishes
    into a dead one; where a send checks the heartbeat deadline, a suspended socket
    buffers it (``deadline_buffer``) and closes the connection (``heartbeat_expired``). A
    socket still opening takes it when the handshake completes, so nothing happens
    now; nor does anything while the client is not connected."""


@dataclass(frozen=True)
class FailWsAttempt:
    """This message's WebSocket attempt failed: ``Behaviour.after_ack_failure`` says,
    from the attempts it has had, which row fires (``ack_retry`` below the budget,
    else ``ack_failed``)."""


@dataclass(frozen=True)
class OnOldest:
    """``event`` fires on the oldest message of the pending-retry queue (the one no
    held message is ahead of) if its state has a row for it; with ``over_ws`` its
    copy reaches the server over the WebSocket first (the socket is open)."""

    event: MessageEvent
    over_ws: bool


@dataclass(frozen=True)
class DrainQueue:
    """If the client reports connected over a socket that is not still opening and
    the oldest message of the pending-retry queue waits (``pending``: nothing of the
    queue is in flight), it is written at once, as :class:`WriteNow` writes."""


@dataclass(frozen=True)
class FailEachUnacked:
    """Every message written over the WebSocket and still awaiting its acknowledgement
    (``sent_ws``) fails its attempt, as :class:`FailWsAttempt`; a buffered one does not."""


#: Everything an action can do, one record per :class:`Meaning` field. A new field
#: needs a record here, a case in :func:`interpret` and a method of
#: :class:`ActionInterpreter`; ``mypy --strict`` then flags every backend without it.
Effect = (
    SetSocket
    | SetHeld
    | SetEveryHeld
    | OnEachHeld
    | ServerRule
    | CountAttempt
    | OnEachOnServer
    | OnEach
    | WriteNow
    | FailWsAttempt
    | FailEachUnacked
    | OnOldest
    | DrainQueue
)


@dataclass(frozen=True)
class Meaning:
    """What an :class:`Action` does to the composed world, as data.

    Every field left at its default means "leaves that part alone". Backends read
    the fields through :attr:`effects` (and :attr:`footprint`), so an action's
    behaviour is stated exactly once, beside the action.
    """

    #: The socket under the client becomes this; a done/toolUse the server owed on
    #: the old socket dies with it.
    socket: Socket | None = None
    #: This message's membership of the pending-retry list becomes this.
    hold: bool | None = None
    #: Every message's membership of the pending-retry list becomes this.
    hold_all: bool | None = None
    #: This message event fires on every message of the pending-retry list whose
    #: state has a row for it.
    each_held: MessageEvent | None = None
    #: The copies ``each_held`` sends reach the server over the WebSocket at once.
    over_ws: bool = False
    #: How the server applies a copy it receives: every copy, or once per client id.
    server: Literal["count", "once"] | None = None
    #: A failed REST attempt is counted; while the count is below the effect's
    #: parameter the message's ``rest_failed`` row fires, else ``retries_exhausted``.
    budget: bool = False
    #: This message event fires on every message the server has applied and whose
    #: state has a row for it: the client fetched the server's state.
    each_on_server: MessageEvent | None = None
    #: This message event fires on every message whose state has a row for it (with
    #: ``over_ws``, its copy reaches the server over the WebSocket first).
    each: MessageEvent | None = None
    #: The message is written over the WebSocket at once if the client reports
    #: connected (see :class:`WriteNow`).
    write_now: bool = False
    #: The message's WebSocket attempt failed: its attempts are weighed against the
    #: budget of the effect's parameter (see :class:`FailWsAttempt`).
    ws_budget: bool = False
    #: Every message awaiting its acknowledgement on the socket fails its attempt.
    each_unacked: bool = False
    #: This message event fires on the oldest message of the pending-retry queue.
    oldest: MessageEvent | None = None
    #: The queue writes its oldest message if it waits (see :class:`DrainQueue`).
    drain: bool = False

    @cached_property
    def effects(self) -> tuple[Effect, ...]:
        """The fields that are set, as typed records, in the order every backend runs them."""
        out: list[Effect] = []
        if self.socket is not None:
            out.append(SetSocket(self.socket))
        if self.hold is not None:
            out.append(SetHeld(self.hold))
        if self.hold_all is not None:
            out.append(SetEveryHeld(self.hold_all))
        if self.each_held is not None:
            out.append(OnEachHeld(self.each_held, self.over_ws))
        if self.server is not None:
            out.append(ServerRule(self.server))
        if self.budget:
            out.append(CountAttempt())
        if self.each_on_server is not None:
            out.append(OnEachOnServer(self.each_on_server))
        if self.each is not None:
            out.append(OnEach(self.each, self.over_ws))
        if self.write_now:
            out.append(WriteNow())
        if self.ws_budget:
            out.append(FailWsAttempt())
        if self.each_unacked:
            out.append(FailEachUnacked())
        if self.oldest is not None:
            out.append(OnOldest(self.oldest, self.over_ws))
        if self.drain:
            out.append(DrainQueue())
        return tuple(out)

    @cached_property
    def footprint(self) -> Footprint:
        """What the action reads and writes."""
        reads: set[Part] = set()
        writes: set[Part] = set()
        for effect in self.effects:
            match effect:
                case SetSocket():
                    writes.add(Part.socket)
                case SetHeld() | ServerRule():
                    writes.add(Part.this_message)
                case SetEveryHeld():
                    writes.add(Part.pending_flags)
                case OnEachHeld(over_ws=over_ws):
                    reads |= {Part.pending_flags, Part.every_message}
                    writes.add(Part.every_message)
                    if over_ws:
                        writes.add(Part.server_copies)
                case CountAttempt():
                    reads.add(Part.this_message)
                case OnEachOnServer():
                    reads |= {Part.server_copies, Part.every_message}
                    writes.add(Part.every_message)
                case OnEach(over_ws=over_ws):
                    reads.add(Part.every_message)
                    writes.add(Part.every_message)
                    if over_ws:
                        writes.add(Part.server_copies)
                case WriteNow():
                    # Closing the connection runs the disconnect's effects on the others.
                    reads |= {Part.this_message, Part.socket}
                    writes |= {Part.this_message, Part.socket, Part.every_message}
                case FailWsAttempt():
                    reads.add(Part.this_message)
                    writes.add(Part.this_message)
                case FailEachUnacked():
                    reads.add(Part.every_message)
                    writes.add(Part.every_message)
                case OnOldest(over_ws=over_ws):
                    reads |= {Part.pending_flags, Part.every_message}
                    writes.add(Part.every_message)
                    if over_ws:
                        writes.add(Part.server_copies)
                case DrainQueue():
                    reads |= {Part.pending_flags, Part.every_message, Part.socket}
                    writes |= {Part.every_message, Part.server_copies, Part.socket}
                case _:
                    unhandled(effect)
        return Footprint(frozenset(reads), frozenset(writes))

    def describe(self) -> str:
        """The meaning in a few words, for diagrams and listings."""
        parts = []
        if self.socket is not None:
            parts.append(f"socket := {self.socket.value}")
        if self.hold is not None:
            parts.append("held := " + ("yes" if self.hold else "no"))
        if self.hold_all is not None:
            parts.append("every held := " + ("yes" if self.hold_all else "no"))
        if self.each_held is not None:
            via = " (over the WebSocket)" if self.over_ws else ""
            parts.append(f"{self.each_held.value} on every held message{via}")
        if self.server == "count":
            parts.append("server applies every copy")
        elif self.server == "once":
            parts.append("server applies one copy per message id")
        if self.budget:
            parts.append("count the attempt against the budget")
        if self.each_on_server is not None:
            parts.append(f"{self.each_on_server.value} on every message the server has")
        if self.each is not None:
            via = " (over the WebSocket)" if self.over_ws else ""
            parts.append(f"{self.each.value} on every message with a row for it{via}")
        if self.write_now:
            parts.append("write it over the WebSocket now if connected")
        if self.ws_budget:
            parts.append("weigh the WebSocket attempts against the budget")
        if self.each_unacked:
            parts.append("every message awaiting its acknowledgement fails its attempt")
        if self.oldest is not None:
            via = " (over the WebSocket)" if self.over_ws else ""
            parts.append(f"{self.oldest.value} on the oldest held message{via}")
        if self.drain:
            parts.append("the queue writes its oldest message if it waits")
        return "; ".join(parts)


class Action(Documented):
    """What the client (or the server) does besides moving a machine.

    Each member's :attr:`meaning` says what it does to the composed world.
    """

    meaning: Meaning

    def __new__(cls, value: str, doc: str, meaning: Meaning = Meaning()) -> Action:
        member = object.__new__(cls)
        member._value_ = value
        member.doc = doc
        member.meaning = meaning
        return member

    open_socket = (
        "open_socket",
        "Open a new WebSocket (resume()).",
        Meaning(socket=Socket.opening),
    )
    close_socket = (
        "close_socket",
        "Close the socket (handleDisconnect()).",
        Meaning(socket=Socket.closed),
    )
    retry_pending_rest = (
        "retry_pending_rest",
        "onSendFailed: send every message of the pending-retry list over REST.",
        Meaning(each_held=MessageEvent.retry_rest),
    )
    resend_pending_ws = (
        "resend_pending_ws",
        "Resend every message of the pending-retry list over the new WebSocket.",
        Meaning(each_held=MessageEvent.resend_ws, over_ws=True),
    )
    release = (
        "release",
        "Remove this message from the pending-retry list.",
        Meaning(hold=False),
    )
    release_all = (
        "release_all",
        "Clear the whole pending-retry list (pendingRetryMessages = nil).",
        Meaning(hold_all=False),
    )
    hold = (
        "hold",
        "Write the message into the pending-retry list before any send (write-ahead).",
        Meaning(hold=True),
    )
    count_copy = (
        "count_copy",
        "The server applies every copy of a message it receives.",
        Meaning(server="count"),
    )
    dedupe_copy = (
        "dedupe_copy",
        "The server applies a copy only if it has none with the same client message id.",
        Meaning(server="once"),
    )
    refetch = (
        "refetch",
        "Ask the server for the messages not seen confirmed; those it applied are recovered.",
        Meaning(each_on_server=MessageEvent.recovered),
    )
    attempt_budget = (
        "attempt_budget",
        "Count the failed REST attempt: send again below the budget, else show the failure.",
        Meaning(budget=True),
    )
    flush_buffer = (
        "flush_buffer",
        "Write every buffered message over the new connection, in order (socket.io emitBuffered).",
        Meaning(each=MessageEvent.flush, over_ws=True),
    )
    write_now = (
        "write_now",
        "Write the message over the WebSocket at once if the client reports connected "
        "(socket.io _drainQueue).",
        Meaning(write_now=True),
    )
    fail_attempt = (
        "fail_attempt",
        "The message's WebSocket attempt failed: ack_retry while its attempts are below "
        "the budget, else ack_failed.",
        Meaning(ws_budget=True),
    )
    resend_oldest = (
        "resend_oldest",
        "Resend the oldest message of the pending-retry queue over the new WebSocket "
        "(socket.io's _drainQueue(true) at connect).",
        Meaning(oldest=MessageEvent.resend_ws, over_ws=True),
    )
    drain_queue = (
        "drain_queue",
        "The queue writes its oldest message if it waits and the client reports connected "
        "(socket.io's _drainQueue).",
        Meaning(drain=True),
    )
    fail_unacked = (
        "fail_unacked",
        "Fail the WebSocket attempt of every message still awaiting its acknowledgement "
        "(socket.io _clearAcks).",
        Meaning(each_unacked=True),
    )


_At = TypeVar("_At", contravariant=True)
_R = TypeVar("_R", covariant=True)


class ActionInterpreter(Protocol, Generic[_At, _R]):
    """A backend that carries out actions: one method per :class:`Effect`.

    ``at`` is whatever the backend names the message whose row ran the action by
    (an index, a message id, a message object), ``None`` for a connection row.
    Every backend hands itself to :func:`interpret`, so a backend that lacks a
    method fails ``mypy --strict`` there.
    """

    def set_socket(self, action: Action, to: Socket, at: _At) -> _R: ...

    def set_held(self, action: Action, value: bool, at: _At) -> _R: ...

    def set_every_held(self, action: Action, value: bool, at: _At) -> _R: ...

    def on_each_held(self, action: Action, event: MessageEvent, over_ws: bool, at: _At) -> _R: ...

    def server_rule(self, action: Action, how: Literal["count", "once"], at: _At) -> _R: ...

    def count_attempt(self, action: Action, at: _At) -> _R: ...

    def on_each_on_server(self, action: Action, event: MessageEvent, at: _At) -> _R: ...

    def on_each(self, action: Action, event: MessageEvent, over_ws: bool, at: _At) -> _R: ...

    def write_now(self, action: Action, at: _At) -> _R: ...

    def fail_ws_attempt(self, action: Action, at: _At) -> _R: ...

    def fail_each_unacked(self, action: Action, at: _At) -> _R: ...

    def on_oldest(self, action: Action, event: MessageEvent, over_ws: bool, at: _At) -> _R: ...

    def drain_queue(self, action: Action, at: _At) -> _R: ...


_At2 = TypeVar("_At2")
_R2 = TypeVar("_R2")


def interpret(action: Action, backend: ActionInterpreter[_At2, _R2], at: _At2) -> list[_R2]:
    """Carry out ``action`` on ``backend``, effect by effect; what each returned."""
    out: list[_R2] = []
    for effect in action.meaning.effects:
        match effect:
            case SetSocket(to):
                out.append(backend.set_socket(action, to, at))
            case SetHeld(value):
                out.append(backend.set_held(action, value, at))
            case SetEveryHeld(value):
                out.append(backend.set_every_held(action, value, at))
            case OnEachHeld(event, over_ws):
                out.append(backend.on_each_held(action, event, over_ws, at))
            case ServerRule(how):
                out.append(backend.server_rule(action, how, at))
            case CountAttempt():
                out.append(backend.count_attempt(action, at))
            case OnEachOnServer(event):
                out.append(backend.on_each_on_server(action, event, at))
            case OnEach(event, over_ws):
                out.append(backend.on_each(action, event, over_ws, at))
            case WriteNow():
                out.append(backend.write_now(action, at))
            case FailWsAttempt():
                out.append(backend.fail_ws_attempt(action, at))
            case FailEachUnacked():
                out.append(backend.fail_each_unacked(action, at))
            case OnOldest(event, over_ws):
                out.append(backend.on_oldest(action, event, over_ws, at))
            case DrainQueue():
                out.append(backend.drain_queue(action, at))
            case _:
                unhandled(effect)
    return out


def unhandled(effect: Never) -> NoReturn:
    """Refuse an effect no backend knows. Statically, reaching this call with
    anything but ``Never`` is a type error (a missing case); at run time it
    raises one clear :class:`DefinitionError`."""
    raise DefinitionError(f"no backend knows the effect {effect!r}")


class Hook(Documented):
    """A point of the composed system where design-dependent effects run.

    Rows say what the client's machines do with an event; a few things a
    design changes happen outside any machine (the write-ahead before a send,
    how the server counts copies, the REST retry budget). They are rows of
    :data:`fsm.model.effects.EFFECTS`, selected per design like table rows.
    """

    accept = (
        "accept",
        "The user pressed send: the client takes the message before any transport does.",
    )
    server_receives = (
        "server_receives",
        "A copy of a message reaches the server, over the WebSocket or over REST.",
    )
    rest_attempt_fails = (
        "rest_attempt_fails",
        "A REST request failed, or the server applied it and its response was lost.",
    )
    connection_acknowledged = (
        "connection_acknowledged",
        "The server acknowledged a (new) connection's handshake.",
    )
    rest_succeeded = ("rest_succeeded", "A REST request for a message returned success.")
    ack_timed_out = (
        "ack_timed_out",
        "A message's acknowledgement timer fired before its acknowledgement arrived.",
    )
    disconnected = (
        "disconnected",
        "The client's connection left a state that reports connected (its disconnect event).",
    )
    step_end = (
        "step_end",
        "The end of every step: where the pending-retry list is an ordered queue, the point "
        "where it writes its oldest message if nothing of it is in flight.",
    )
