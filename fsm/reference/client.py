"""The reference chat client: asyncio, a real WebSocket, a REST fallback, a SQLite outbox.

The client is **table-driven**. Its connection and each message carry a state
of the design's machines, and everything that moves them is the design's row
for that event (:func:`fsm.model.behaviour.select_behaviour`); a row's actions are
carried out with real I/O, effect by effect (:class:`~fsm.reference.effects.RowRunner`,
whose table says what each effect does).

What the client observes decides which event it is: a send that raised is
``ws_send_failed`` (and ``send_failed``), an unanswered ping ``ping_timeout``,
the receive loop's error ``socket_error``, a message's acknowledgement timer
(:mod:`fsm.reference.acks`) the ``ack_timed_out`` effect. A real client cannot tell a
socket iOS suspended from a half-open one: when its transport reports a dead
socket while the connection is ``connected``, it fires ``connection_dropped``
first (``connected -> suspended_stale``, a row every design has), then the event.

A send does what the design's rows say: while the client is not connected, the
row the message table has from ``pending`` for ``send_rest``, ``buffer``,
``queue`` or ``refuse`` (the design's ``offline_send``); while it is connected,
``queue`` where the pending-retry list is an ordered queue and another held
message is ahead of it (it waits behind: one message in flight, oldest first),
``deadline_buffer`` and ``heartbeat_expired`` where the table has that row and
the client's clock is past the socket's heartbeat deadline (socket.io 4.8's
``_hasPingExpired``: the app was frozen past it), else a WebSocket write.

Lifecycle: while the app is in the background (:meth:`ReferenceClient.background`)
the client processes nothing: every event (a frame, a REST answer, a timer) is
deferred until :meth:`ReferenceClient.foreground`, as iOS suspends the process.
A dead socket is reported by the receive loop ``report_delay`` after the app is
back in the foreground, as iOS does (Starscream#908).

All work runs in one actor task that takes events from a queue
(:class:`~fsm.reference.records.Event`), so the client's state changes one event
at a time; the end of handling an event is the end of a step of the design
(:meth:`~fsm.reference.effects.RowRunner._step_end`: an ordered queue writes its
oldest message there if nothing of it is in flight). It reports what it observes
through ``on_event`` (:class:`ClientEvent`), for a runtime monitor. The I/O is
:mod:`fsm.reference.transport`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typing_extensions import assert_never

from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design
from fsm.model.errors import DefinitionError
from fsm.model.stimuli import Outcome
from fsm.model.vocabulary import (
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    interpret,
)
from fsm.reference.acks import AckTimers
from fsm.reference.activity import Activity
from fsm.reference.clock import Clock, Timer
from fsm.reference.effects import RowRunner
from fsm.reference.outbox import Outbox
from fsm.reference.policy import Policy, Timings
from fsm.reference.records import (
    ClientEvent,
    ClientMessage,
    Deferred,
    Event,
    Kind,
    SendRequest,
)
from fsm.reference.server import CLIENT_HEADER
from fsm.reference.transport import Sock, Transport

__all__ = ["ClientEvent", "ClientMessage", "ReferenceClient"]

C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent

#: What a send does while the client is not connected: the first of these events
#: the message table has from ``pending``, and what the client reports it did.
_OFFLINE: tuple[tuple[MessageEvent, str], ...] = (
    (ME.send_rest, "rest"),
    (ME.buffer, Outcome.buffered.value),
    (ME.queue, Outcome.queued.value),
    (ME.refuse, Outcome.refused.value),
)


class ReferenceClient(RowRunner):
    """One chat client. Start it with :meth:`start`; stop it with :meth:`close`."""

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
        self.b = behaviour_ if behaviour_ is not None else select_behaviour(design)
        self.policy = Policy.of(self.b)
        self.clock = clock
        self.t = timings or Timings()
        self.on_event = on_event
        self.activity = activity or Activity()
        self.outbox = Outbox(store)
        #: Names this client to the server (:data:`CLIENT_HEADER`), by default the
        #: store's identity, so a restarted client is the same client.
        self.client_id = client_id or self.outbox.identity
        headers = {CLIENT_HEADER: self.client_id}
        self.io = Transport(ws_url, rest_url, self.t.io_timeout, self.activity, self._post, headers)
        self.conn = C.idle
        self.messages: list[ClientMessage] = []
        self.queue: list[ClientMessage] = []
        self._by_ref: dict[str, ClientMessage] = {}
        self.sock: Sock | None = None
        self._epochs = itertools.count(1)
        self.suspended = False
        self.network = True
        self._inbox: asyncio.Queue[SendRequest | Event] = asyncio.Queue()
        self._deferred: list[SendRequest | Event] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._actor: asyncio.Task[None] | None = None
        self._reconnect: Timer | None = None
        self._backoff = self.t.backoff_first
        self.busy = False
        self.forbidden: list[str] = []
        self.rest_in_flight: dict[str, int] = {}
        self.acks = AckTimers(
            self.clock, self.t.ack_delay, self._post, enabled=self.policy.ack_timers
        )
        self._io: list[Deferred] = []

    # -- the app's API ------------------------------------------------------------------
    async def start(self, *, connect: bool = True) -> None:
        """Load the store, start working, and (``connect``) schedule the first connect."""
        self.io.start()
        for i, stored in enumerate(self.outbox.load()):
            m = ClientMessage(stored.key, stored.body, i, stored.state, stored.held)
            m.ws_tries = stored.ws_tries
            self.messages.append(m)
            self._by_ref[stored.key] = m
            self._by_ref[stored.body] = m
        # The pending-retry list in the order its messages joined it.
        self.queue = [self._by_ref[key] for key in self.outbox.held_in_order()]
        self._actor = asyncio.ensure_future(self._run())
        self._post(Event(Kind.restart))
        if connect:
            self._schedule_reconnect(0.0)

    async def send(self, body: str) -> str:
        """The user sends ``body``; returns its key once the client has accepted (and,
        with the write-ahead, persisted) it. The transport works on after that."""
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[str] = loop.create_future()
        self._post(SendRequest(body, accepted))
        return await asyncio.wait_for(accepted, self.t.io_timeout)

    def background(self) -> None:
        self._post(Event(Kind.background), front=True)

    def foreground(self) -> None:
        self._post(Event(Kind.foreground), front=True)

    def network_changed(self, up: bool) -> None:
        """The OS reports the network path going away or coming back (Ably RTN20)."""
        self._post(Event(Kind.network, ok=up))

    def connect(self) -> None:
        """Open a socket now (what the backoff timer does when it fires)."""
        self._post(Event(Kind.connect))

    @property
    def send_waits(self) -> bool:
        """Whether a message sent now would wait behind the ordered queue's oldest
        message instead of being written: accepting holds it, and another is held."""
        return self.b.one_in_flight and self.policy.holds_first and bool(self.queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being processed."""
        return self._inbox.empty() and not self.busy

    async def close(self) -> None:
        """Stop: cancel every task, abort the socket, close the store.

        Nothing is flushed on the way out: every change was committed when it
        happened, so this is also what a killed process leaves behind (whatever
        the SQLite store committed is all that survives), and a restart test
        needs nothing else.
        """
        if self._actor is not None:
            self._actor.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self.sock is not None:
            self.io.kill(self.sock)
        self._cancel_reconnect()
        self.acks.close()
        pending = [t for t in (self._actor, *self._tasks) if t is not None and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        await self.io.close()
        self.outbox.close()

    # -- the actor ----------------------------------------------------------------------
    def _post(self, ev: SendRequest | Event, *, front: bool = False) -> None:
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

    async def _handle(self, ev: SendRequest | Event) -> None:
        """Handle one event, then end the step (:meth:`_step_end`); while the app is
        suspended, an event waits for the foreground instead."""
        if isinstance(ev, SendRequest):
            if self.suspended:
                self._deferred.append(ev)
                return
            await self._on_send(ev)
        elif self.suspended and ev.kind is not Kind.foreground:
            if ev.kind is not Kind.background:
                self._deferred.append(ev)
            return
        else:
            await self._dispatch(ev)
        await self._step_end()

    async def _dispatch(self, ev: Event) -> None:
        match ev.kind:
            case Kind.restart:
                await self._on_restart()
            case Kind.background:
                await self._on_background()
            case Kind.foreground:
                await self._on_foreground()
            case Kind.network:
                await self._on_network(ev)
            case Kind.connect:
                await self._on_connect()
            case Kind.hello:
                await self._on_hello(ev)
            case Kind.handshake_timeout:
                await self._on_handshake_timeout(ev)
            case Kind.open_failed:
                await self._on_open_failed(ev)
            case Kind.socket_closed:
                await self._on_socket_closed(ev)
            case Kind.report:
                await self._on_report(ev)
            case Kind.frame:
                await self._on_frame(ev)
            case Kind.heartbeat_due:
                await self._on_heartbeat(ev)
            case Kind.ack:
                await self._on_ack(ev)
            case Kind.ack_due:
                await self._on_ack_timer(ev)
            case Kind.rest_answer:
                await self._on_rest(ev)
            case _:
                assert_never(ev.kind)

    # -- what the effects need of the client --------------------------------------------
    def _after_conn_change(self) -> None:
        if self.conn is C.disconnected and not self.suspended and self._reconnect is None:
            self._schedule_reconnect(self._backoff)
            self._backoff = min(self._backoff * 2, self.t.backoff_max)

    # -- sockets ------------------------------------------------------------------------
    def _open_socket(self) -> None:
        if self.sock is not None:
            self.io.kill(self.sock)
        loop = asyncio.get_running_loop()
        sock = Sock(next(self._epochs), loop.create_future())
        sock.deadline = self.clock.now() + self.t.heartbeat_deadline
        self.sock = sock
        sock.task = self._spawn(self.io.run(sock))
        sock.timers.append(
            self.clock.call_later(
                self.t.handshake_timeout, "handshake", lambda: self._handshake_timeout(sock)
            )
        )
        self._emit(ClientEvent("socket", value="opened"))

    def _handshake_timeout(self, sock: Sock) -> None:
        if sock.ready.done() or sock.closed:
            return
        self.io.kill(sock)
        self._post(Event(Kind.handshake_timeout, sock.epoch))

    def _current(self, epoch: int) -> Sock | None:
        sock = self.sock
        if sock is None or sock.epoch != epoch or sock.closed:
            return None
        return sock

    def _declare_dead(self, event: ConnectionEvent) -> None:
        """The transport says the socket is dead: ``connection_dropped`` first if the
        client still thinks it is live, then ``event`` if the design has a row."""
        self._found_dropped()
        if self._can_conn(event):
            self._fire_conn(event)

    # -- event handlers -----------------------------------------------------------------
    async def _on_restart(self) -> None:
        """After a restart: a request in flight when the process died is gone, so every
        held message that was on its way over REST, or not sent yet, goes again."""
        for m in self.messages:
            self.acks.follow(m)
            if not m.held:
                continue
            if m.state.rest_in_flight:
                self._start_rest(m)
            elif m.state is M.pending and self._can_msg(m, ME.send_rest):
                self._fire_msg(m, ME.send_rest)

    async def _on_send(self, ev: SendRequest) -> None:
        key = uuid.uuid4().hex
        m = ClientMessage(key, ev.body, len(self.messages), M.pending, False)
        hold = self.policy.holds_first
        self.outbox.accept(key, ev.body, M.pending, hold=hold)  # the write-ahead
        m.held = hold
        if hold:
            self.queue.append(m)  # at the end of the pending-retry list
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
            await self._await_handshake(self.sock)
        if not self.is_connected:
            self._send_offline(m)
        elif self.b.one_in_flight and m.held and self.queue[0] is not m:
            # One message in flight, oldest first: this one waits behind the oldest.
            self._emit(ClientEvent("send", m.index, Outcome.queued.value))
            self._fire_msg(m, ME.queue)
        elif self._deadline_passed():
            # What the client found comes before its answer to the send.
            self._found_dropped()
            self._emit(ClientEvent("send", m.index, Outcome.deadline_passed.value))
            self._buffer_at_deadline(m)
        else:
            await self._send_ws(m, frozen)
        await self._flush_io()

    async def _await_handshake(self, opening: Sock) -> None:
        """A send on a socket still opening waits for the handshake."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(opening.ready), self.t.io_timeout)
        if opening.ready.done() and opening.ready.result():
            await self._on_hello(Event(Kind.hello, opening.epoch))
        elif opening.closed:
            await self._on_handshake_timeout(Event(Kind.handshake_timeout, opening.epoch))
        else:
            await self._on_open_failed(Event(Kind.open_failed, opening.epoch))

    def _send_offline(self, m: ClientMessage) -> None:
        """Not connected: the row the design has for it (``offline_send``)."""
        for event, outcome in _OFFLINE:
            if self._can_msg(m, event):
                self._emit(ClientEvent("send", m.index, outcome))
                if event is ME.buffer:
                    self.acks.emit(m)  # the acknowledgement is registered at emit
                self._fire_msg(m, event)
                return
        raise DefinitionError(f"design {self.design.name!r}: no row for a send while not connected")

    async def _send_ws(self, m: ClientMessage, frozen: bool) -> None:
        """Connected: write the message over the socket."""
        sock = self.sock
        if frozen and sock is not None and not sock.dead:
            # URLSessionWebSocketTask queues a send on a task iOS froze during its
            # handshake and reports no error: the bytes never leave.
            ok = True
        else:
            ok = sock is not None and await self._ws_send(sock, m)
        if not ok:
            # What the client found comes before its answer to the send.
            self._found_dropped()
        self._emit(ClientEvent("send", m.index, "ws_ok" if ok else "ws_raised"))
        if ok:
            self._fire_msg(m, ME.ws_send_ok)
            if self.policy.pings and self.policy.acks and sock is not None:
                self._arm_ack(sock, m)
        else:
            self._fire_msg(m, ME.ws_send_failed)
            if self._can_conn(CE.send_failed):
                self._fire_conn(CE.send_failed)

    async def _on_background(self) -> None:
        self._emit(ClientEvent("lifecycle", value="background"))
        self._fire_conn(CE.app_background)
        self.suspended = True
        if self.sock is not None:
            self.sock.backgrounded = True
            if not self.sock.ready.done():
                self.sock.frozen = True
        await self._flush_io()

    async def _on_foreground(self) -> None:
        if not self.suspended:
            return
        self.suspended = False
        deferred, self._deferred = self._deferred, []
        # The OS's network notifications come first, in order, as they happened
        # while the app was suspended; then the return to the foreground.
        for item in deferred:
            if isinstance(item, Event) and item.kind is Kind.network:
                await self._on_network(item)
        self._emit(ClientEvent("lifecycle", value="foreground"))
        self._fire_conn(CE.app_foreground)
        for item in deferred:
            if not (isinstance(item, Event) and item.kind is Kind.network):
                self._inbox.put_nowait(item)
        if self.conn in (C.disconnected, C.idle) and self._reconnect is None:
            self._schedule_reconnect(0.0)
        await self._flush_io()

    async def _on_network(self, ev: Event) -> None:
        self.network = ev.ok
        self._emit(ClientEvent("network", value="up" if ev.ok else "down"))
        self._fire_conn(CE.network_restored if ev.ok else CE.network_lost)
        if ev.ok and self.conn is C.disconnected:
            self._cancel_reconnect()
            self._schedule_reconnect(0.0)
        await self._flush_io()

    async def _on_connect(self) -> None:
        if self._can_conn(CE.connect):
            self._fire_conn(CE.connect)
        await self._flush_io()

    async def _on_hello(self, ev: Event) -> None:
        sock = self._current(ev.epoch)
        if sock is None or sock.hello_handled:
            return
        sock.hello_handled = True
        sock.deadline = self.clock.now() + self.t.heartbeat_deadline
        self._emit(ClientEvent("socket", value="hello"))
        self._backoff = self.t.backoff_first
        if self._can_conn(CE.handshake_ack):
            self._fire_conn(CE.handshake_ack)
            for action in self._hook(Hook.connection_acknowledged):
                interpret(action, self, None)
        if self.policy.pings:
            self._arm_heartbeat(sock)
        await self._flush_io()

    async def _on_handshake_timeout(self, ev: Event) -> None:
        """The handshake took too long: the socket was killed; the handshake failed."""
        sock = self.sock
        if sock is None or sock.epoch != ev.epoch or sock.failure_handled:
            return
        sock.failure_handled = True
        if self._can_conn(CE.handshake_fail):
            self._fire_conn(CE.handshake_fail)
        await self._flush_io()

    async def _on_open_failed(self, ev: Event) -> None:
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
        self.io.kill(sock)
        if self._can_conn(CE.handshake_fail):
            self._fire_conn(CE.handshake_fail)
        else:
            self._declare_dead(CE.socket_error)
        await self._flush_io()

    async def _on_socket_closed(self, ev: Event) -> None:
        sock = self._current(ev.epoch)
        if sock is None:
            return
        # The receive loop reports the error some time after the app is in front.
        self._later(sock, self.t.report_delay, Event(Kind.report, sock.epoch))

    async def _on_report(self, ev: Event) -> None:
        if self._current(ev.epoch) is None:
            return
        self._declare_dead(CE.socket_error)
        await self._flush_io()

    async def _on_frame(self, ev: Event) -> None:
        sock = self._current(ev.epoch)
        frame = ev.frame or {}
        if frame.get("type") == "pong":
            if sock is not None:
                sock.awaiting_pong = False
                sock.deadline = self.clock.now() + self.t.heartbeat_deadline
            return
        if frame.get("type") != "done":
            return
        m = self._by_ref.get(str(frame.get("ref")))
        if m is None or not self.acks.current(m, frame.get("ack")):
            return  # a late acknowledgement: the client stopped waiting for it
        self._emit(ClientEvent("done", m.index))
        if self._can_msg(m, ME.done):
            self._fire_msg(m, ME.done)
        await self._flush_io()

    # -- heartbeat, ack watchdog and acknowledgement timers ------------------------------
    def _later(self, sock: Sock, delay: float, event: Event) -> None:
        """Post ``event`` after ``delay`` unless ``sock`` is killed first (a timer
        named after the event's kind)."""
        post = self._post
        sock.timers.append(self.clock.call_later(delay, event.kind.value, lambda: post(event)))

    def _arm_heartbeat(self, sock: Sock) -> None:
        self._later(sock, self.t.heartbeat_interval, Event(Kind.heartbeat_due, sock.epoch))

    def _arm_ack(self, sock: Sock, m: ClientMessage) -> None:
        self._later(sock, self.t.ack_watchdog, Event(Kind.ack, sock.epoch, key=m.key))

    async def _on_heartbeat(self, ev: Event) -> None:
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
            if await self.io.write(sock, {"type": "ping", "n": sock.pings}):
                self._arm_heartbeat(sock)
            else:
                self._declare_dead(CE.ping_timeout)
        await self._flush_io()

    async def _on_ack(self, ev: Event) -> None:
        sock = self._current(ev.epoch)
        m = self._by_ref.get(ev.key)
        if sock is None or m is None or m.state is not M.sent_ws:
            return
        self._declare_dead(CE.ping_timeout)
        await self._flush_io()

    async def _on_ack_timer(self, ev: Event) -> None:
        """A message's acknowledgement timer fired before its acknowledgement: the
        client stops waiting for it and runs the design's ``ack_timed_out`` effect."""
        m = self._by_ref.get(ev.key)
        if m is None or not m.state.awaits_ack or m.ack_id != ev.attempt:
            return
        self._emit(ClientEvent("ack_timer", m.index))
        self.acks.expire(m)
        for action in self._hook(Hook.ack_timed_out):
            interpret(action, self, m)
        await self._flush_io()

    # -- REST ---------------------------------------------------------------------------
    def _start_rest(self, m: ClientMessage) -> None:
        m.rest_attempt += 1
        self.rest_in_flight[m.key] = m.rest_attempt
        self._spawn(self._rest_task(m, m.rest_attempt))

    async def _rest_task(self, m: ClientMessage, attempt: int) -> None:
        payload: dict[str, Any] = {"body": m.body}
        if self.policy.sends_ids:
            payload["id"] = m.key
        ok = await self.io.post_message(payload)
        self._post(Event(Kind.rest_answer, key=m.key, attempt=attempt, ok=ok))

    async def _on_rest(self, ev: Event) -> None:
        m = self._by_ref.get(ev.key)
        if m is None or m.rest_attempt != ev.attempt or not m.state.rest_in_flight:
            return
        self.rest_in_flight.pop(m.key, None)
        self._emit(ClientEvent("rest", m.index, "ok" if ev.ok else "error"))
        if ev.ok:
            self._fire_msg(m, ME.rest_ok)
            for action in self._hook(Hook.rest_succeeded):
                interpret(action, self, m)
        else:
            m.attempts += 1
            self._fire_msg(m, self.b.after_rest_failure(m.state, m.attempts))
        await self._flush_io()

    # -- reconnect ----------------------------------------------------------------------
    def _schedule_reconnect(self, delay: float) -> None:
        if self._reconnect is not None and self._reconnect.pending:
            return
        self._reconnect = self.clock.call_later(delay, "reconnect", self._reconnect_due)

    def _reconnect_due(self) -> None:
        self._reconnect = None
        self._post(Event(Kind.connect))

    def _cancel_reconnect(self) -> None:
        if self._reconnect is not None:
            self._reconnect.cancel()
            self._reconnect = None

    # -- what a test reads --------------------------------------------------------------
    def snapshot(self) -> list[ClientMessage]:
        return list(self.messages)
