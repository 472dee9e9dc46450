"""The reference chat client: asyncio, a real WebSocket, a REST fallback, a SQLite outbox.

The client is **table-driven**. Its connection and each message carry a state
of the design's machines, and everything that moves them is the design's row
for that event (:func:`fsm.model.behaviour.behaviour`); a row's actions are
carried out with real I/O:

=======================  ===============================================================
action                   what the client does
=======================  ===============================================================
``open_socket``          open a WebSocket through the proxy (``ws_connect``); the
                         server's ``hello`` is the handshake acknowledgement
``close_socket``         abort the socket
``hold`` / ``release``   write / delete the message's row of the SQLite pending list
``release_all``          empty the pending list (``pendingRetryMessages = nil``)
``retry_pending_rest``   POST every held message to the REST endpoint
``resend_pending_ws``    send every held message again on the new socket
``refetch``              ``GET /messages?ref=...`` and confirm what the server has
``attempt_budget``       count a failed REST attempt: retry below the budget
=======================  ===============================================================

What the client observes decides which event it is: a send that raised is
``ws_send_failed`` (and ``send_failed``), an unanswered ping ``ping_timeout``,
the receive loop's error ``socket_error``. A real client cannot tell a socket
iOS suspended from a half-open one: when its transport reports a dead socket
while the connection is ``connected``, it fires ``connection_dropped`` first
(``connected -> suspended_stale``, a row every design has), then the event.

Lifecycle: while the app is in the background (:meth:`ReferenceClient.background`)
the client processes nothing: every event (a frame, a REST answer, a timer) is
deferred until :meth:`ReferenceClient.foreground`, as iOS suspends the process.
A dead socket is reported by the receive loop ``report_delay`` after the app is
back in the foreground, as iOS does (Starscream#908).

All work runs in one actor task that takes events from a queue, so the client's
state changes one event at a time. It reports what it observes through
``on_event`` (:class:`ClientEvent`), for a runtime monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fsm.model.behaviour import Behaviour, behaviour
from fsm.model.design import Design
from fsm.model.tables import Row
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
)
from fsm.reference.activity import Activity
from fsm.reference.clock import Clock, Timer
from fsm.reference.outbox import Outbox
from fsm.reference.policy import Policy, Timings
from fsm.reference.server import CLIENT_HEADER

__all__ = ["ClientEvent", "ClientMessage", "ReferenceClient"]

C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent

_BELIEVES_CONNECTED = frozenset({C.connected, C.suspended_stale})
_OVER_REST = frozenset({M.sending_rest, M.retrying_rest})
_STARTS_REST = frozenset({ME.send_rest, ME.retry_rest, ME.rest_failed})


@dataclass(frozen=True)
class ClientEvent:
    """Something the client observed or did, for a monitor.

    ``kind`` is one of ``fired`` (a row fired: ``machine``, ``event``, ``source``,
    ``target``, ``connection`` it fired in, ``message``), ``connected`` (the
    isConnected flag changed: ``value``), ``send`` (``message``, ``value`` =
    ``ws_ok``, ``ws_raised`` or ``rest``), ``done``, ``rest`` (``value`` = ``ok`` or
    ``error``), ``lifecycle`` (``background``/``foreground``), ``network``
    (``up``/``down``) and ``socket`` (``opened``, ``hello``, ``closed``).
    """

    kind: str
    message: int | None = None
    value: str | bool | None = None
    machine: str | None = None
    event: str | None = None
    source: str | None = None
    target: str | None = None
    connection: str | None = None


@dataclass
class ClientMessage:
    key: str
    body: str
    index: int
    state: MessageState
    held: bool
    attempts: int = 0
    rest_attempt: int = 0  # which REST attempt is in flight (stale answers are ignored)


@dataclass
class _Socket:
    epoch: int
    ready: asyncio.Future[bool]
    ws: aiohttp.ClientWebSocketResponse[bool] | None = None
    task: asyncio.Task[None] | None = None
    #: The transport knows the socket is dead (a send would raise).
    dead: bool = False
    closed: bool = False
    #: The app was suspended while this socket was still opening: it is frozen.
    frozen: bool = False
    hello_handled: bool = False
    failure_handled: bool = False
    awaiting_pong: bool = False
    pings: int = 0
    timers: list[Timer] = field(default_factory=list)


# The actor's events.
@dataclass
class _Send:
    body: str
    accepted: asyncio.Future[str]


@dataclass
class _Ev:
    kind: str
    epoch: int = -1
    key: str = ""
    attempt: int = 0
    ok: bool = False
    frame: dict[str, Any] | None = None


class ReferenceClient:
    """One chat client. Start it with :meth:`start`; stop with :meth:`close` or :meth:`crash`."""

    def __init__(
        self,
        design: Design,
        *,
        ws_url: str,
        rest_url: str,
        store: str | Path,
        clock: Clock,
        timings: Timings | None = None,
        behaviour_: Behaviour | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        activity: Activity | None = None,
        client_id: str | None = None,
    ) -> None:
        self.design = design
        #: Names this client to the server (:data:`CLIENT_HEADER`); by default one
        #: derived from the store, so a restarted client is the same client.
        self.client_id = (
            client_id or hashlib.sha256(str(Path(store).resolve()).encode()).hexdigest()[:16]
        )
        self.b = behaviour_ if behaviour_ is not None else behaviour(design)
        self.policy = Policy.of(self.b)
        self.ws_url = ws_url
        self.rest_url = rest_url
        self.clock = clock
        self.t = timings or Timings()
        self.on_event = on_event
        self.activity = activity or Activity()
        self.outbox = Outbox(store)
        self.conn = C.idle
        self.messages: list[ClientMessage] = []
        self._by_ref: dict[str, ClientMessage] = {}
        self.sock: _Socket | None = None
        self._epochs = itertools.count(1)
        self.suspended = False
        self.network = True
        self._inbox: asyncio.Queue[_Send | _Ev] = asyncio.Queue()
        self._deferred: list[_Send | _Ev] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._actor: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._reconnect: Timer | None = None
        self._backoff = self.t.backoff_first
        self.busy = False
        self.forbidden: list[str] = []
        self.rest_in_flight: dict[str, int] = {}

    # -- the app's API ------------------------------------------------------------------
    async def start(self, *, connect: bool = True) -> None:
        """Load the store, start working, and (``connect``) schedule the first connect."""
        self._session = aiohttp.ClientSession(
            headers={CLIENT_HEADER: self.client_id},
            timeout=aiohttp.ClientTimeout(total=self.t.io_timeout),
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
        )
        # aiohttp silently retries an idempotent request (the WebSocket upgrade is a
        # GET) once when the connection drops; a client must see that failure.
        self._session._retry_connection = False
        for i, stored in enumerate(self.outbox.load()):
            m = ClientMessage(stored.key, stored.body, i, stored.state, stored.held)
            self.messages.append(m)
            self._by_ref[stored.key] = m
            self._by_ref[stored.body] = m
        self._actor = asyncio.ensure_future(self._run())
        self._post(_Ev("restart"))
        if connect:
            self._schedule_reconnect(0.0)

    async def send(self, body: str) -> str:
        """The user sends ``body``; returns its key once the client has accepted (and,
        with the write-ahead, persisted) it. The transport works on after that."""
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[str] = loop.create_future()
        self._post(_Send(body, accepted))
        return await asyncio.wait_for(accepted, self.t.io_timeout)

    def background(self) -> None:
        self._post(_Ev("background"), front=True)

    def foreground(self) -> None:
        self._post(_Ev("foreground"), front=True)

    def network_changed(self, up: bool) -> None:
        """The OS reports the network path going away or coming back (Ably RTN20)."""
        self._post(_Ev("network", ok=up))

    def connect(self) -> None:
        """Open a socket now (what the backoff timer does when it fires)."""
        self._post(_Ev("connect"))

    @property
    def is_connected(self) -> bool:
        """The isConnected flag."""
        return self.conn in _BELIEVES_CONNECTED

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being processed."""
        return self._inbox.empty() and not self.busy

    async def close(self) -> None:
        """Stop cleanly."""
        await self._shutdown()

    async def crash(self) -> None:
        """Die as a killed process does: no cleanup beyond what the OS does (sockets
        are torn down); whatever the SQLite store committed is all that survives."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._actor is not None:
            self._actor.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self.sock is not None:
            self._kill_socket(self.sock)
        self._cancel_reconnect()
        pending = [t for t in (self._actor, *self._tasks) if t is not None and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        if self._session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._session.close(), 2.0)
        self.outbox.close()

    # -- the actor ----------------------------------------------------------------------
    def _post(self, ev: _Send | _Ev, *, front: bool = False) -> None:
        self.activity.bump()
        if front:
            # Lifecycle changes overtake queued work, as the OS suspends a process at once.
            rest = []
            while not self._inbox.empty():
                rest.append(self._inbox.get_nowait())
            self._inbox.put_nowait(ev)
            for item in rest:
                self._inbox.put_nowait(item)
        else:
            self._inbox.put_nowait(ev)

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self) -> None:
        while True:
            ev = await self._inbox.get()
            self.busy = True
            try:
                await self._handle(ev)
            finally:
                self.busy = False
                self.activity.bump()

    async def _handle(self, ev: _Send | _Ev) -> None:
        if self.suspended and not (isinstance(ev, _Ev) and ev.kind == "foreground"):
            if isinstance(ev, _Ev) and ev.kind == "background":
                return
            self._deferred.append(ev)
            return
        if isinstance(ev, _Send):
            await self._on_send(ev)
            return
        handler = getattr(self, f"_on_{ev.kind}")
        await handler(ev)

    # -- firing rows --------------------------------------------------------------------
    def _emit(self, event: ClientEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _fire_conn(self, event: ConnectionEvent) -> Row[ConnectionState, ConnectionEvent]:
        before = self.is_connected
        row = self.b.connection.step(self.conn, event)
        self._emit(
            ClientEvent(
                "fired",
                machine="connection",
                event=event.value,
                source=row.source.value,
                target=row.target.value,
                connection=self.conn.value,
            )
        )
        self.conn = row.target
        if self.is_connected != before:
            self._emit(ClientEvent("connected", value=self.is_connected))
        self._after_conn_change()
        for action in row.actions:
            self._run_action(action, None)
        return row

    def _can_conn(self, event: ConnectionEvent) -> bool:
        return self.b.connection.allows(self.conn, event)

    def _fire_msg(self, m: ClientMessage, event: MessageEvent) -> None:
        row = self.b.message.step(m.state, event)
        self._emit(
            ClientEvent(
                "fired",
                message=m.index,
                machine="message",
                event=event.value,
                source=row.source.value,
                target=row.target.value,
                connection=self.conn.value,
            )
        )
        m.state = row.target
        self.outbox.set_state(m.key, m.state)
        for action in row.actions:
            self._run_action(action, m)
        if row.target in _OVER_REST and event in _STARTS_REST:
            self._start_rest(m)

    def _can_msg(self, m: ClientMessage, event: MessageEvent) -> bool:
        return self.b.message.allows(m.state, event)

    def _hook(self, hook: Hook) -> list[Action]:
        return list(self.b.effects.actions(hook))

    def _set_held(self, m: ClientMessage, held: bool) -> None:
        m.held = held
        self.outbox.hold(m.key, held)

    def _run_action(self, action: Action, m: ClientMessage | None) -> None:
        """Carry out one action with real I/O (the table in the module doc)."""
        if action is Action.open_socket:
            self._open_socket()
        elif action is Action.close_socket:
            if self.sock is not None:
                self._kill_socket(self.sock)
                self._emit(ClientEvent("socket", value="closed"))
        elif action is Action.hold and m is not None:
            self._set_held(m, True)
        elif action is Action.release and m is not None:
            self._set_held(m, False)
        elif action is Action.release_all:
            for other in self.messages:
                other.held = False
            self.outbox.release_all()
        elif action is Action.retry_pending_rest:
            for other in self._held(ME.retry_rest):
                self._fire_msg(other, ME.retry_rest)
        elif action is Action.resend_pending_ws:
            self._spawn_inline_resend()
        elif action is Action.refetch:
            self._refetch_needed = True
        # count_copy / dedupe_copy are the server's; attempt_budget is read where a
        # REST attempt fails.

    def _held(self, event: MessageEvent) -> list[ClientMessage]:
        return [m for m in self.messages if m.held and self._can_msg(m, event)]

    _refetch_needed = False
    _resend_needed = False

    def _spawn_inline_resend(self) -> None:
        self._resend_needed = True

    async def _flush_io(self) -> None:
        """Run the I/O that actions asked for: the resend and the refetch."""
        if self._resend_needed:
            self._resend_needed = False
            sock = self.sock
            for m in self._held(ME.resend_ws):
                if sock is None or not await self._ws_send(sock, m):
                    break
                self._fire_msg(m, ME.resend_ws)
        if self._refetch_needed:
            self._refetch_needed = False
            await self._refetch()

    def _after_conn_change(self) -> None:
        if self.conn is C.disconnected and not self.suspended and self._reconnect is None:
            self._schedule_reconnect(self._backoff)
            self._backoff = min(self._backoff * 2, self.t.backoff_max)

    # -- sockets ------------------------------------------------------------------------
    def _open_socket(self) -> None:
        if self.sock is not None:
            self._kill_socket(self.sock)
        loop = asyncio.get_running_loop()
        sock = _Socket(next(self._epochs), loop.create_future())
        self.sock = sock
        sock.task = self._spawn(self._socket_task(sock))
        sock.timers.append(
            self.clock.call_later(
                self.t.handshake_timeout, "handshake", lambda: self._handshake_timeout(sock)
            )
        )
        self._emit(ClientEvent("socket", value="opened"))

    def _kill_socket(self, sock: _Socket) -> None:
        sock.closed = True
        sock.dead = True
        for timer in sock.timers:
            timer.cancel()
        if not sock.ready.done():
            sock.ready.set_result(False)
        if sock.ws is not None:
            # What aiohttp itself does to drop a WebSocket without a closing handshake.
            sock.ws._response.close()
        if sock.task is not None and not sock.task.done():
            sock.task.cancel()
        self.activity.bump()

    def _handshake_timeout(self, sock: _Socket) -> None:
        if sock.ready.done() or sock.closed:
            return
        self._kill_socket(sock)
        self._post(_Ev("handshake_timeout", sock.epoch))

    async def _socket_task(self, sock: _Socket) -> None:
        assert self._session is not None
        url = f"{self.ws_url}?epoch={sock.epoch}"
        try:
            ws = await self._session.ws_connect(
                url,
                autoping=False,
                heartbeat=None,
                autoclose=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            sock.dead = True
            if not sock.ready.done():
                sock.ready.set_result(False)
                self._post(_Ev("open_failed", sock.epoch))
            return
        if sock.closed:
            with contextlib.suppress(Exception):
                ws._response.close()
            return
        sock.ws = ws
        self.activity.bump()
        try:
            while True:
                msg = await ws.receive()
                self.activity.bump()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                if frame.get("type") == "hello":
                    if not sock.ready.done():
                        sock.ready.set_result(True)
                    self._post(_Ev("hello", sock.epoch))
                else:
                    self._post(_Ev("frame", sock.epoch, frame=frame))
        except (aiohttp.ClientError, OSError, RuntimeError):
            pass
        sock.dead = True
        self.activity.bump()
        if not sock.ready.done():
            sock.ready.set_result(False)
            self._post(_Ev("open_failed", sock.epoch))
        elif not sock.closed:
            self._post(_Ev("socket_closed", sock.epoch))

    async def _ws_send(self, sock: _Socket, m: ClientMessage) -> bool:
        """Send a message frame; ``False`` when the send raised."""
        payload: dict[str, Any] = {"type": "message", "body": m.body}
        if self.policy.sends_ids:
            payload["id"] = m.key
        return await self._ws_write(sock, payload)

    async def _ws_write(self, sock: _Socket, payload: dict[str, Any]) -> bool:
        if sock.dead or sock.ws is None or sock.closed:
            return False
        try:
            await asyncio.wait_for(sock.ws.send_str(json.dumps(payload)), self.t.io_timeout)
        except (ConnectionError, RuntimeError, OSError, asyncio.TimeoutError):
            sock.dead = True
            return False
        self.activity.bump()
        return True

    def _current(self, epoch: int) -> _Socket | None:
        sock = self.sock
        if sock is None or sock.epoch != epoch or sock.closed:
            return None
        return sock

    def _declare_dead(self, event: ConnectionEvent) -> None:
        """The transport says the socket is dead: ``connection_dropped`` first if the
        client still thinks it is live, then ``event`` if the design has a row."""
        if self.conn is C.connected and self._can_conn(CE.connection_dropped):
            self._fire_conn(CE.connection_dropped)
        if self._can_conn(event):
            self._fire_conn(event)

    # -- event handlers -----------------------------------------------------------------
    async def _on_restart(self, ev: _Ev) -> None:
        """After a restart: a request in flight when the process died is gone, so every
        held message that was on its way over REST, or not sent yet, goes again."""
        for m in self.messages:
            if not m.held:
                continue
            if m.state in _OVER_REST:
                self._start_rest(m)
            elif m.state is M.pending and self._can_msg(m, ME.send_rest):
                self._fire_msg(m, ME.send_rest)

    async def _on_send(self, ev: _Send) -> None:
        key = uuid.uuid4().hex
        m = ClientMessage(key, ev.body, len(self.messages), M.pending, False)
        hold = self.policy.holds_first
        self.outbox.accept(key, ev.body, M.pending, hold=hold)  # the write-ahead
        m.held = hold
        self.messages.append(m)
        self._by_ref[key] = m
        self._by_ref[ev.body] = m
        if not ev.accepted.done():
            ev.accepted.set_result(key)
        frozen = self.sock is not None and self.sock.frozen and not self.sock.ready.done()
        if (
            self.is_connected
            and self.sock is not None
            and not self.sock.ready.done()
            and not self.sock.dead
            and not frozen
        ):
            # A send on a socket still opening waits for the handshake.
            opening = self.sock
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(opening.ready), self.t.io_timeout)
            if opening.ready.done() and opening.ready.result():
                await self._on_hello(_Ev("hello", opening.epoch))
            elif opening.closed:
                await self._on_handshake_timeout(_Ev("handshake_timeout", opening.epoch))
            else:
                await self._on_open_failed(_Ev("open_failed", opening.epoch))
        if self.is_connected:
            sock = self.sock
            if frozen and sock is not None and not sock.dead:
                # URLSessionWebSocketTask queues a send on a task iOS froze during its
                # handshake and reports no error: the bytes never leave.
                ok = True
            else:
                ok = sock is not None and await self._ws_send(sock, m)
            self._emit(ClientEvent("send", m.index, "ws_ok" if ok else "ws_raised"))
            if ok:
                self._fire_msg(m, ME.ws_send_ok)
                if self.policy.pings and sock is not None:
                    self._arm_ack(sock, m)
            else:
                if self.conn is C.connected and self._can_conn(CE.connection_dropped):
                    self._fire_conn(CE.connection_dropped)
                self._fire_msg(m, ME.ws_send_failed)
                if self._can_conn(CE.send_failed):
                    self._fire_conn(CE.send_failed)
        else:
            self._emit(ClientEvent("send", m.index, "rest"))
            self._fire_msg(m, ME.send_rest)
        await self._flush_io()

    async def _on_background(self, ev: _Ev) -> None:
        self._emit(ClientEvent("lifecycle", value="background"))
        self._fire_conn(CE.app_background)
        self.suspended = True
        if self.sock is not None and not self.sock.ready.done():
            self.sock.frozen = True
        await self._flush_io()

    async def _on_foreground(self, ev: _Ev) -> None:
        if not self.suspended:
            return
        self.suspended = False
        deferred, self._deferred = self._deferred, []
        # The OS's network notifications come first, in order, as they happened
        # while the app was suspended; then the return to the foreground.
        for item in deferred:
            if isinstance(item, _Ev) and item.kind == "network":
                await self._on_network(item)
        self._emit(ClientEvent("lifecycle", value="foreground"))
        self._fire_conn(CE.app_foreground)
        for item in deferred:
            if not (isinstance(item, _Ev) and item.kind == "network"):
                self._inbox.put_nowait(item)
        if self.conn in (C.disconnected, C.idle) and self._reconnect is None:
            self._schedule_reconnect(0.0)
        await self._flush_io()

    async def _on_network(self, ev: _Ev) -> None:
        self.network = ev.ok
        self._emit(ClientEvent("network", value="up" if ev.ok else "down"))
        self._fire_conn(CE.network_restored if ev.ok else CE.network_lost)
        if ev.ok and self.conn is C.disconnected:
            self._cancel_reconnect()
            self._schedule_reconnect(0.0)
        await self._flush_io()

    async def _on_connect(self, ev: _Ev) -> None:
        if self._can_conn(CE.connect):
            self._fire_conn(CE.connect)
        await self._flush_io()

    async def _on_hello(self, ev: _Ev) -> None:
        sock = self._current(ev.epoch)
        if sock is None or sock.hello_handled:
            return
        sock.hello_handled = True
        self._emit(ClientEvent("socket", value="hello"))
        self._backoff = self.t.backoff_first
        if self._can_conn(CE.handshake_ack):
            self._fire_conn(CE.handshake_ack)
            for action in self._hook(Hook.connection_acknowledged):
                self._run_action(action, None)
        if self.policy.pings:
            self._arm_heartbeat(sock)
        await self._flush_io()

    async def _on_handshake_timeout(self, ev: _Ev) -> None:
        """The handshake took too long: the socket was killed; the handshake failed."""
        sock = self.sock
        if sock is None or sock.epoch != ev.epoch or sock.failure_handled:
            return
        sock.failure_handled = True
        if self._can_conn(CE.handshake_fail):
            self._fire_conn(CE.handshake_fail)
        await self._flush_io()

    async def _on_open_failed(self, ev: _Ev) -> None:
        """The socket died before the server's hello. While the client still believes a
        socket it was suspended with is fine, that is a dead socket the receive loop
        reports later; otherwise the handshake failed."""
        sock = self._current(ev.epoch)
        if sock is None or sock.failure_handled:
            return
        if self.conn is C.suspended_stale:
            await self._on_socket_closed(ev)
            return
        sock.failure_handled = True
        self._kill_socket(sock)
        if self._can_conn(CE.handshake_fail):
            self._fire_conn(CE.handshake_fail)
        else:
            self._declare_dead(CE.socket_error)
        await self._flush_io()

    async def _on_socket_closed(self, ev: _Ev) -> None:
        sock = self._current(ev.epoch)
        if sock is None:
            return
        # The receive loop reports the error some time after the app is in front.
        sock.timers.append(
            self.clock.call_later(
                self.t.report_delay,
                "report",
                lambda: self._post(_Ev("report", sock.epoch)),
            )
        )

    async def _on_report(self, ev: _Ev) -> None:
        if self._current(ev.epoch) is None:
            return
        self._declare_dead(CE.socket_error)
        await self._flush_io()

    async def _on_frame(self, ev: _Ev) -> None:
        sock = self._current(ev.epoch)
        frame = ev.frame or {}
        if frame.get("type") == "pong":
            if sock is not None:
                sock.awaiting_pong = False
            return
        if frame.get("type") != "done":
            return
        m = self._by_ref.get(str(frame.get("ref")))
        if m is None:
            return
        self._emit(ClientEvent("done", m.index))
        if self._can_msg(m, ME.done):
            self._fire_msg(m, ME.done)
        await self._flush_io()

    # -- heartbeat and ack timeout ------------------------------------------------------
    def _arm_heartbeat(self, sock: _Socket) -> None:
        sock.timers.append(
            self.clock.call_later(
                self.t.heartbeat_interval,
                "heartbeat",
                lambda: self._post(_Ev("heartbeat", sock.epoch)),
            )
        )

    def _arm_ack(self, sock: _Socket, m: ClientMessage) -> None:
        sock.timers.append(
            self.clock.call_later(
                self.t.ack_timeout, "ack", lambda: self._post(_Ev("ack", sock.epoch, key=m.key))
            )
        )

    async def _on_heartbeat(self, ev: _Ev) -> None:
        """Phoenix's rule: if the previous ping is still unanswered, the socket is
        dead; otherwise send another."""
        sock = self._current(ev.epoch)
        if sock is None:
            return
        if sock.awaiting_pong:
            self._declare_dead(CE.ping_timeout)
        else:
            sock.pings += 1
            sock.awaiting_pong = True
            if await self._ws_write(sock, {"type": "ping", "n": sock.pings}):
                self._arm_heartbeat(sock)
            else:
                self._declare_dead(CE.ping_timeout)
        await self._flush_io()

    async def _on_ack(self, ev: _Ev) -> None:
        sock = self._current(ev.epoch)
        m = self._by_ref.get(ev.key)
        if sock is None or m is None or m.state is not M.sent_ws:
            return
        self._declare_dead(CE.ping_timeout)
        await self._flush_io()

    # -- REST ---------------------------------------------------------------------------
    def _start_rest(self, m: ClientMessage) -> None:
        m.rest_attempt += 1
        self.rest_in_flight[m.key] = m.rest_attempt
        self._spawn(self._rest_task(m, m.rest_attempt))

    async def _rest_task(self, m: ClientMessage, attempt: int) -> None:
        assert self._session is not None
        payload: dict[str, Any] = {"body": m.body}
        if self.policy.sends_ids:
            payload["id"] = m.key
        ok = False
        try:
            async with self._session.post(self.rest_url + "/messages", json=payload) as resp:
                ok = resp.status == 200
                await resp.read()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            ok = False
        self._post(_Ev("rest", key=m.key, attempt=attempt, ok=ok))

    async def _on_rest(self, ev: _Ev) -> None:
        m = self._by_ref.get(ev.key)
        if m is None or m.rest_attempt != ev.attempt or m.state not in _OVER_REST:
            return
        self.rest_in_flight.pop(m.key, None)
        self._emit(ClientEvent("rest", m.index, "ok" if ev.ok else "error"))
        if ev.ok:
            self._fire_msg(m, ME.rest_ok)
            for action in self._hook(Hook.rest_succeeded):
                self._run_action(action, m)
        else:
            m.attempts += 1
            self._fire_msg(m, self._after_rest_failure(m))
        await self._flush_io()

    def _after_rest_failure(self, m: ClientMessage) -> MessageEvent:
        effects = self.b.effects
        budget = effects.param(Hook.rest_attempt_fails)
        for action in effects.actions(Hook.rest_attempt_fails):
            if (
                action.meaning.budget
                and budget is not None
                and m.attempts < budget
                and self._can_msg(m, ME.rest_failed)
            ):
                return ME.rest_failed
        return ME.retries_exhausted

    async def _refetch(self) -> None:
        """The companion fix: ask the server which unconfirmed messages it applied."""
        candidates = [m for m in self.messages if self._can_msg(m, ME.recovered)]
        if not candidates or self._session is None:
            return
        refs = [m.key if self.policy.sends_ids else m.body for m in candidates]
        try:
            async with self._session.get(
                self.rest_url + "/messages", params=[("ref", r) for r in refs]
            ) as resp:
                data = await resp.json() if resp.status == 200 else {"applied": []}
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            return
        applied = set(data.get("applied", []))
        for m, ref in zip(candidates, refs, strict=True):
            if ref in applied and self._can_msg(m, ME.recovered):
                self._fire_msg(m, ME.recovered)

    # -- reconnect ----------------------------------------------------------------------
    def _schedule_reconnect(self, delay: float) -> None:
        if self._reconnect is not None and self._reconnect.pending:
            return
        self._reconnect = self.clock.call_later(delay, "reconnect", self._reconnect_due)

    def _reconnect_due(self) -> None:
        self._reconnect = None
        self._post(_Ev("connect"))

    def _cancel_reconnect(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
            self._reconnect = None

    # -- what a test reads --------------------------------------------------------------
    def snapshot(self) -> list[ClientMessage]:
        return list(self.messages)
