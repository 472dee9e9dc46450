"""The reference client's records: what it reports, its messages, its actor's events.

:class:`ClientEvent` is what the client tells a monitor; :class:`ClientMessage`
is one message it holds; :class:`Event` (of a :class:`Kind`) and
:class:`SendRequest` are what its actor task takes from its queue, one at a time;
:class:`Deferred` is I/O an action asked for, run once the event is handled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from fsm.model.tables import Row
from fsm.model.vocabulary import ConnectionState, MessageEvent, MessageState

if TYPE_CHECKING:
    from fsm.reference.transport import Sock

__all__ = ["ClientEvent", "ClientMessage", "Deferred", "Event", "Kind", "SendRequest"]


@dataclass(frozen=True)
class ClientEvent:
    """Something the client observed or did, for a monitor.

    ``kind`` is one of ``fired`` (a row fired: ``machine``, ``event``, ``source``,
    ``target``, ``connection`` it fired in, ``message``), ``connected`` (the
    isConnected flag changed: ``value``), ``send`` (``message``, ``value`` =
    ``ws_ok``, ``ws_raised``, ``rest``, ``buffered``, ``queued``, ``refused`` or
    ``deadline_passed``), ``done``, ``ack_due`` (the message's acknowledgement
    timer fired), ``rest`` (``value`` = ``ok`` or ``error``), ``lifecycle``
    (``background``/``foreground``), ``network`` (``up``/``down``) and ``socket``
    (``opened``, ``hello``, ``closed``).
    """

    kind: str
    message: int | None = None
    value: str | bool | None = None
    machine: str | None = None
    event: str | None = None
    source: str | None = None
    target: str | None = None
    connection: str | None = None

    @classmethod
    def fired(
        cls,
        machine: str,
        row: Row[Any, Any],
        connection: ConnectionState,
        message: int | None = None,
    ) -> ClientEvent:
        """``row`` of ``machine`` fired while the connection was in ``connection``."""
        return cls(
            "fired",
            message=message,
            machine=machine,
            event=row.event.value,
            source=row.source.value,
            target=row.target.value,
            connection=connection.value,
        )


@dataclass
class ClientMessage:
    key: str
    body: str
    index: int
    state: MessageState
    held: bool
    attempts: int = 0
    rest_attempt: int = 0  # which REST attempt is in flight (stale answers are ignored)
    #: WebSocket attempts made at it (its send, each resend), where the design's
    #: budget counts them (:attr:`~fsm.model.behaviour.Behaviour.counts_ws_attempts`).
    ws_tries: int = 0
    #: The acknowledgement id of its latest emit (written now, or buffered to be).
    ack_id: int = 0
    #: Acknowledgements with a lower id are late: the client stopped waiting for them.
    ack_floor: int = 0


class Kind(Enum):
    """What an actor event is about."""

    #: The client started from its store.
    restart = "restart"
    #: The app went to the background / came back (they overtake queued work).
    background = "background"
    foreground = "foreground"
    #: The OS reported the network path (``ok``: up).
    network = "network"
    #: Open a socket (the reconnect timer fired, or the app asked).
    connect = "connect"
    #: The server's hello arrived on socket ``epoch``.
    hello = "hello"
    #: The handshake timer of socket ``epoch`` killed it.
    handshake_timeout = "handshake_timeout"
    #: Socket ``epoch`` died before the server's hello.
    open_failed = "open_failed"
    #: The receive loop of socket ``epoch`` ended.
    socket_closed = "socket_closed"
    #: The receive loop reports the error, ``report_delay`` after the app is in front.
    report = "report"
    #: A frame arrived on socket ``epoch``.
    frame = "frame"
    #: The heartbeat timer of socket ``epoch`` fired.
    heartbeat_due = "heartbeat"
    #: The ack watchdog of message ``key`` on socket ``epoch`` fired (the heartbeat's:
    #: a message still unacknowledged declares the socket dead).
    ack = "ack"
    #: The acknowledgement timer of message ``key`` fired (``attempt``: the ack id it
    #: was armed for; the design's ``ack_timed_out`` effect).
    ack_due = "ack_due"
    #: REST attempt ``attempt`` for message ``key`` answered (``ok``).
    rest_answer = "rest_answer"


@dataclass
class Event:
    """One event for the client's actor."""

    kind: Kind
    epoch: int = -1
    key: str = ""
    attempt: int = 0
    ok: bool = False
    frame: dict[str, Any] | None = None


@dataclass
class SendRequest:
    """The user sent ``body``; ``accepted`` gets its key once the client took it."""

    body: str
    accepted: asyncio.Future[str]


@dataclass
class Deferred:
    """I/O a row's action asked for, run in order once the event is handled.

    ``each`` / ``held``: write every message (every one / every held one) with a row
    for ``event`` over the socket, then fire ``event`` on it; ``oldest``: the same
    for the oldest message of the pending-retry queue; ``write``: write ``message``
    (whose row fired already) over ``sock``; ``fetch``: ask the server which
    messages with a row for ``event`` it applied, and fire it on those.
    """

    what: Literal["each", "held", "oldest", "write", "fetch"]
    event: MessageEvent | None = None
    message: ClientMessage | None = None
    sock: Sock | None = None
