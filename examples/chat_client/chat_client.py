"""A small chat client with its fake world, to test with ``fsm``: an example.

The client is two classes modelled on the seed's iOS code:

* :class:`WebSocketManager` owns the socket and the ``is_connected`` flag. As in
  the seed's fix, a send that raises is a full disconnect
  (``handle_disconnect()``) and then calls ``on_send_failed``.
* :class:`ChatViewModel` keeps ``pending_retry`` (``pendingRetryMessages``): a
  message is written into it before the WebSocket send, and when a send fails
  every entry whose REST request is not already in flight is retried over REST
  (with ``try?``: a failed retry is swallowed), then the list is cleared. Any
  ``done`` or REST success clears the whole list.

THE DELIBERATE BUG: ``ChatViewModel(clear_on_ws_send=True)`` (the default, as
shipped) removes a message's pending-retry entry as soon as the WebSocket send
returns, before the server confirmed anything. A send that "returns" into a
socket iOS suspended has reached nobody, so the entry that would have let the
client retry it is already gone. ``ChatViewModel(clear_on_ws_send=False)`` is
the fixed client: the entry stays until a ``done`` or a REST success.

The fake world (:class:`FakeServer`, :class:`FakeSocket`, the app's foreground
flag and the network in :class:`World`) is what a unit test of the client would
use anyway; ``adapter.py`` drives it from an ``fsm`` suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

SocketState = Literal["opening", "open", "suspended", "closed"]
Visible = Literal["unsent", "pending", "sent", "confirmed", "failed"]


class SocketDead(Exception):
    """A send into a socket that is not open: URLSessionWebSocketTask's error."""


@dataclass
class FakeServer:
    """Counts the copies of each message it applied and the ``done`` it owes on the
    WebSocket (the response to a message that came over it)."""

    copies: dict[str, int] = field(default_factory=dict)
    owes_done: set[str] = field(default_factory=set)
    #: REST requests received and not answered yet: message id -> request.
    rest_requests: dict[str, Callable[[bool], None]] = field(default_factory=dict)

    def apply(self, message_id: str) -> None:
        self.copies[message_id] = self.copies.get(message_id, 0) + 1


@dataclass
class FakeSocket:
    """The socket under the client: its true state, which the client cannot see."""

    server: FakeServer
    state: SocketState = "opening"

    def send(self, message_id: str) -> None:
        if self.state != "open":
            raise SocketDead(f"send on a {self.state} socket")
        self.server.apply(message_id)
        self.server.owes_done.add(message_id)

    def die(self, state: SocketState) -> None:
        """The socket stops carrying anything; a done it owed never arrives."""
        self.state = state
        self.server.owes_done.clear()


@dataclass
class World:
    """What the client runs in: the server, the current socket, app and network."""

    server: FakeServer = field(default_factory=FakeServer)
    socket: FakeSocket | None = None
    foreground: bool = True
    network: bool = True

    def open_socket(self) -> FakeSocket:
        self.socket = FakeSocket(self.server)
        return self.socket


class WebSocketManager:
    """``isConnected`` set on ``resume()`` (the seed's client: the flag means "handshake
    started"), the send-failure handling of the seed's fix."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.is_connected = False
        self.task: FakeSocket | None = None
        self.on_send_failed: Callable[[], None] | None = None
        self.on_done: Callable[[str], None] | None = None

    def connect(self) -> None:
        if self.is_connected:
            return
        self.task = self.world.open_socket()  # resume()
        self.is_connected = True

    def handle_disconnect(self) -> None:
        if self.task is not None and self.task.state != "closed":
            self.task.die("closed")
        self.task = None
        self.is_connected = False

    def send_message(self, message_id: str) -> None:
        if not self.is_connected or self.task is None:
            raise SocketDead("not connected")
        try:
            self.task.send(message_id)
        except SocketDead:
            # Send failed on a dead socket: treat it as a disconnect.
            self.handle_disconnect()
            if self.on_send_failed is not None:
                self.on_send_failed()
            raise

    def received_done(self, message_id: str) -> None:
        if self.on_done is not None:
            self.on_done(message_id)


@dataclass
class ChatMessage:
    id: str
    state: Visible = "unsent"
    #: Whether a REST request for it is in flight (the server has not answered).
    over_rest: bool = False


class ChatViewModel:
    """The messages the user sent, the pending-retry list and the REST fallback."""

    def __init__(self, ws: WebSocketManager, *, clear_on_ws_send: bool = True) -> None:
        self.ws = ws
        self.clear_on_ws_send = clear_on_ws_send
        self.messages: list[ChatMessage] = []
        self.pending_retry: list[str] = []
        ws.on_send_failed = self._send_failed
        ws.on_done = self._done

    def message(self, message_id: str) -> ChatMessage:
        return next(m for m in self.messages if m.id == message_id)

    def send(self, message_id: str) -> None:
        message = ChatMessage(message_id, state="pending")
        self.messages.append(message)
        self.pending_retry.append(message.id)  # stored before the WebSocket send
        if not self.ws.is_connected:
            self._send_via_rest(message, retry=False)
            return
        try:
            self.ws.send_message(message.id)
        except SocketDead:
            return  # _send_failed has retried the pending list over REST
        message.state = "sent"
        if self.clear_on_ws_send:  # THE BUG: the send returning confirms nothing
            self.pending_retry.remove(message.id)

    def _send_failed(self) -> None:
        """``onSendFailed``: retry the pending list over REST, then clear it."""
        for message_id in self.pending_retry:
            message = self.message(message_id)
            if not message.over_rest:  # one whose REST request is in flight waits for it
                self._send_via_rest(message, retry=True)
        self.pending_retry.clear()

    def _send_via_rest(self, message: ChatMessage, *, retry: bool) -> None:
        message.state = "sent"
        message.over_rest = True

        def answered(ok: bool) -> None:
            message.over_rest = False
            if ok:
                message.state = "confirmed"
                self.pending_retry.clear()
                return
            # A first send over REST shows its failure; a retry's `try?` swallows it.
            message.state = "sent" if retry else "failed"
            if message.id in self.pending_retry:
                self.pending_retry.remove(message.id)

        self.ws.world.server.rest_requests[message.id] = answered

    def _done(self, message_id: str) -> None:
        """done/toolUse: the message is confirmed, and the whole list is cleared."""
        self.message(message_id).state = "confirmed"
        self.pending_retry.clear()
