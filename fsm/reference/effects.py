"""How the reference client fires the design's rows and carries out their actions.

:class:`RowRunner` is the part of :class:`~fsm.reference.client.ReferenceClient`
that moves its machines: it fires the design's row for an event (never a move of
its own), and carries out each of the row's actions with real I/O, effect by
effect (it is an :class:`~fsm.model.vocabulary.ActionInterpreter`):

=========================  ==========================================================
effect (action)            what the client does
=========================  ==========================================================
socket := opening          open a WebSocket through the proxy (``ws_connect``); the
(``open_socket``)          server's ``hello`` is the handshake acknowledgement
socket := closed           abort the socket
held := yes / no           write / delete the message's row of the SQLite pending list
                           (a message joins it at its end: ``queue`` keeps the order)
every held := no           empty the pending list (``pendingRetryMessages = nil``)
event on every held        fire it on each held message (``retry_rest`` POSTs it);
message                    over the WebSocket (``resend_ws``) send each again first
event on every message     over the WebSocket (``flush``): write each message with a
(``flush_buffer``)         row for it (the offline buffer, in order), then fire it
event on the oldest        over the WebSocket (``resend_ws``): write the queue's oldest
(``resend_oldest``)        message if it has a row for it, then fire it
event on every message     ``GET /messages?ref=...`` (without REST, a ``fetch`` frame
the server has             over the socket); fire it (``recovered``) on those the
                           server applied
write now (``write_now``)  while the client reports connected: a socket still opening
                           takes it at the handshake (nothing now); past the heartbeat
                           deadline, ``deadline_buffer`` and ``heartbeat_expired``;
                           else ``resend_ws``, and the frame is written (it reaches
                           the server, or vanishes into a dead socket)
drain (``drain_queue``)    if the queue's oldest message is ``pending`` (nothing of
                           the queue is in flight), write it as ``write_now`` does
failed WebSocket attempt   ``ack_retry`` or ``ack_failed`` by the budget rule
(``fail_attempt``)         (``Behaviour.after_ack_failure``) on the attempts made
every unacked one fails    the same for every message in ``sent_ws`` (a buffered one
(``fail_unacked``)         is spared)
server rule, budget        the server's, and read where a REST attempt fails
=========================  ==========================================================

A row's actions run in order, and a row an action fires runs its own actions
first; a connection row that leaves a state reporting connected for one that
does not then runs the design's effect at the ``disconnected`` hook, as the
composed system does (:func:`fsm.analysis.system.disconnects`). Writes that an
action asks for are queued (:class:`~fsm.reference.records.Deferred`) and made,
in order, once the event is handled (:meth:`RowRunner._flush_io`); so at a
handshake's acknowledgement the buffer is flushed, then the pending-retry list
(or its oldest message) resent, then the server's state refetched.

The end of handling each event (:meth:`RowRunner._step_end`) is the end of a step:
once those writes are made, the design's effect at the ``step_end`` hook runs
(an ordered queue writes its oldest message if nothing of it is in flight, as
socket.io's ``_drainQueue`` does after each emit and each acknowledgement), and
the writes it asks for are made before the client takes its next event.

In an ordered queue (socket.io's retries queue; ``Behaviour.one_in_flight``) the
held messages are in :attr:`RowRunner.queue`, oldest first: a message joins it at
its end when it is held and leaves it when it is released, and the SQLite
pending list keeps that order across a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fsm.model.behaviour import Behaviour
from fsm.model.errors import DefinitionError
from fsm.model.tables import Row
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
    interpret,
)
from fsm.reference.acks import AckTimers
from fsm.reference.clock import Clock
from fsm.reference.outbox import Outbox
from fsm.reference.policy import Policy
from fsm.reference.records import ClientEvent, ClientMessage, Deferred
from fsm.reference.transport import Sock, Transport

__all__ = ["RowRunner"]

C, CE = ConnectionState, ConnectionEvent
ME = MessageEvent

#: Rounds of deferred I/O one event may run (an action run by a deferred write may
#: queue more); far more than any row asks for.
_MAX_IO_ROUNDS = 16


class RowRunner:
    """The client's machines: its rows fired, their effects carried out with real I/O.

    :class:`~fsm.reference.client.ReferenceClient` sets the attributes below and
    provides the methods that raise :class:`NotImplementedError` here.
    """

    b: Behaviour
    policy: Policy
    clock: Clock
    conn: ConnectionState
    messages: list[ClientMessage]
    #: The held messages in the order they joined the pending-retry list, oldest
    #: first (what an ordered queue writes from).
    queue: list[ClientMessage]
    sock: Sock | None
    io: Transport
    outbox: Outbox
    acks: AckTimers
    on_event: Callable[[ClientEvent], None] | None
    #: I/O the actions asked for, made once the event is handled.
    _io: list[Deferred]

    # -- provided by the client ---------------------------------------------------------
    def _open_socket(self) -> None:
        raise NotImplementedError

    def _after_conn_change(self) -> None:
        raise NotImplementedError

    def _start_rest(self, m: ClientMessage) -> None:
        raise NotImplementedError

    # -- firing rows --------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        """The isConnected flag."""
        return self.conn.reports_connected

    def _emit(self, event: ClientEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def _fire_conn(self, event: ConnectionEvent) -> Row[ConnectionState, ConnectionEvent]:
        before = self.is_connected
        row = self.b.connection.step(self.conn, event)
        self._emit(ClientEvent.fired("connection", row, self.conn))
        self.conn = row.target
        if self.is_connected != before:
            self._emit(ClientEvent("connected", value=self.is_connected))
        self._after_conn_change()
        for action in row.actions:
            interpret(action, self, None)
        if before and not self.is_connected:
            # The client's disconnect (socket.io's onclose): the design's effect.
            for action in self._hook(Hook.disconnected):
                interpret(action, self, None)
        return row

    def _can_conn(self, event: ConnectionEvent) -> bool:
        return self.b.connection.allows(self.conn, event)

    def _fire_msg(self, m: ClientMessage, event: MessageEvent) -> None:
        row = self.b.message.step(m.state, event)
        self._emit(ClientEvent.fired("message", row, self.conn, m.index))
        m.state = row.target
        m.ws_tries = self.b.ws_tries_after(event, m.ws_tries)
        self.outbox.set_state(m.key, m.state, ws_tries=m.ws_tries)
        self.acks.follow(m)
        for action in row.actions:
            interpret(action, self, m)
        if row.target.rest_in_flight and event.starts_rest:
            self._start_rest(m)

    def _can_msg(self, m: ClientMessage, event: MessageEvent) -> bool:
        return self.b.message.allows(m.state, event)

    def _hook(self, hook: Hook) -> list[Action]:
        return list(self.b.effects.actions(hook))

    def _set_held(self, m: ClientMessage, held: bool) -> None:
        """Hold ``m`` at the end of the queue (where it is held, it keeps its place),
        or release it."""
        if held and not m.held:
            self.queue.append(m)
        elif not held and m.held:
            self.queue.remove(m)
        m.held = held
        self.outbox.hold(m.key, held)

    async def _step_end(self) -> None:
        """The end of handling one event: the writes its rows asked for, then the
        design's effect at the ``step_end`` hook, then the writes the effect asked for."""
        await self._flush_io()
        for action in self._hook(Hook.step_end):
            interpret(action, self, None)
        await self._flush_io()

    # -- the heartbeat deadline and failed attempts -------------------------------------
    def _deadline_passed(self) -> bool:
        """A write now would find the heartbeat deadline passed (socket.io 4.8's
        ``_hasPingExpired``), where the design checks it: the client reports
        connected, its clock is past the socket's deadline, and the table has a
        ``heartbeat_expired`` row (after the ``connection_dropped`` the client fires
        itself when it finds its socket dead while ``connected``)."""
        sock = self.sock
        if not self.is_connected or sock is None or self.clock.now() <= sock.deadline:
            return False
        conn, table = self.conn, self.b.connection
        if conn is C.connected and table.allows(conn, CE.connection_dropped):
            conn = table.step(conn, CE.connection_dropped).target
        return table.allows(conn, CE.heartbeat_expired)

    def _found_dropped(self) -> None:
        """The client found its socket dead while it believed it ``connected``: the
        connection was dropped first (``connection_dropped``, a row every design has)."""
        if self.conn is C.connected and self._can_conn(CE.connection_dropped):
            self._fire_conn(CE.connection_dropped)

    def _buffer_at_deadline(self, m: ClientMessage) -> None:
        """The deadline passed: ``m`` goes into the offline buffer (a new emit) and
        the connection closes (``heartbeat_expired``)."""
        self._found_dropped()
        self.acks.emit(m)
        self._fire_msg(m, ME.deadline_buffer)
        self._fire_conn(CE.heartbeat_expired)

    def _attempt_failed(self, m: ClientMessage) -> None:
        """``m``'s WebSocket attempt failed: stop waiting for its acknowledgement and fire
        what the budget rule says of the attempts it had."""
        self.acks.expire(m)
        self._fire_msg(m, self.b.after_ack_failure(m.state, m.ws_tries))

    # -- the effects, with real I/O (fsm.model.vocabulary.ActionInterpreter) ------------
    def set_socket(self, action: Action, to: Socket, at: ClientMessage | None) -> None:
        if to is Socket.opening:
            self._open_socket()
        elif to is Socket.closed:
            if self.sock is not None:
                self.io.kill(self.sock)
                self._emit(ClientEvent("socket", value="closed"))
        else:
            raise DefinitionError(f"action {action.value!r}: a client cannot make a socket {to}")

    def set_held(self, action: Action, value: bool, at: ClientMessage | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        self._set_held(at, value)

    def set_every_held(self, action: Action, value: bool, at: ClientMessage | None) -> None:
        if value:
            for other in self.messages:
                self._set_held(other, True)
        else:
            for other in self.messages:
                other.held = False
            self.queue.clear()
            self.outbox.release_all()

    def on_each_held(
        self, action: Action, event: MessageEvent, over_ws: bool, at: ClientMessage | None
    ) -> None:
        self._each(event, over_ws, "held")

    def on_each(
        self, action: Action, event: MessageEvent, over_ws: bool, at: ClientMessage | None
    ) -> None:
        self._each(event, over_ws, "each")

    def _each(self, event: MessageEvent, over_ws: bool, which: Literal["held", "each"]) -> None:
        if over_ws:
            # Sent over the socket once the row that asked for it has finished.
            self._io.append(Deferred(which, event))
        else:
            for other in self._with_row(event, which):
                self._fire_msg(other, event)

    def server_rule(
        self, action: Action, how: Literal["count", "once"], at: ClientMessage | None
    ) -> None:
        """How the server counts copies is the server's (and :attr:`Policy.sends_ids`)."""

    def count_attempt(self, action: Action, at: ClientMessage | None) -> None:
        """Read where a REST attempt fails (the client's ``_on_rest``)."""

    def on_each_on_server(
        self, action: Action, event: MessageEvent, at: ClientMessage | None
    ) -> None:
        self._io.append(Deferred("fetch", event))

    def on_oldest(
        self, action: Action, event: MessageEvent, over_ws: bool, at: ClientMessage | None
    ) -> None:
        if over_ws:
            self._io.append(Deferred("oldest", event))
        elif self.queue and self._can_msg(self.queue[0], event):
            self._fire_msg(self.queue[0], event)

    def drain_queue(self, action: Action, at: ClientMessage | None) -> None:
        if self.queue and self.queue[0].state is MessageState.pending:
            self._write(self.queue[0])

    def write_now(self, action: Action, at: ClientMessage | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        self._write(at)

    def _write(self, at: ClientMessage) -> None:
        """Write ``at`` over the WebSocket now, if the client reports connected (see
        :class:`~fsm.model.vocabulary.WriteNow`)."""
        sock = self.sock
        if not self.is_connected:
            return
        if sock is not None and not (sock.ready.done() or sock.dead or sock.frozen):
            return  # still opening: the resend at the handshake's acknowledgement sends it
        if self._deadline_passed():
            self._buffer_at_deadline(at)
            return
        # A write the client makes on its own never raises: the frame reaches the
        # server through an open socket or vanishes into a dead one.
        self.acks.emit(at)
        if sock is not None:
            self._io.append(Deferred("write", message=at, sock=sock))
        self._fire_msg(at, ME.resend_ws)

    def fail_ws_attempt(self, action: Action, at: ClientMessage | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        self._attempt_failed(at)

    def fail_each_unacked(self, action: Action, at: ClientMessage | None) -> None:
        for m in list(self.messages):
            if m.state is MessageState.sent_ws:
                self._attempt_failed(m)

    # -- deferred I/O -------------------------------------------------------------------
    def _with_row(
        self, event: MessageEvent, what: Literal["each", "held", "oldest"]
    ) -> list[ClientMessage]:
        """The messages with a row for ``event``: every one or every held one, in send
        order, or the queue's oldest."""
        if what == "oldest":
            return self.queue[:1] if self.queue and self._can_msg(self.queue[0], event) else []
        held = what == "held"
        return [m for m in self.messages if (m.held or not held) and self._can_msg(m, event)]

    async def _flush_io(self) -> None:
        """Make the writes and requests that actions asked for, in order: a message
        list written over the socket (a write that raises ends that list), a single
        message written, the refetch."""
        rounds = 0
        while self._io:
            rounds += 1
            if rounds > _MAX_IO_ROUNDS:
                raise DefinitionError(f"actions kept asking for I/O for {_MAX_IO_ROUNDS} rounds")
            queued, self._io = self._io, []
            done: set[tuple[str, MessageEvent | None]] = set()
            for item in queued:
                if item.what == "write":
                    assert item.message is not None
                    assert item.sock is not None
                    await self._ws_send(item.sock, item.message, fresh=False)
                    continue
                if (item.what, item.event) in done:
                    continue
                done.add((item.what, item.event))
                assert item.event is not None
                if item.what == "fetch":
                    await self._fetch(item.event)
                    continue
                sock = self.sock
                # A flushed message keeps the id it was buffered with; a resend is an emit.
                fresh = item.what != "each"
                for m in self._with_row(item.event, item.what):
                    if sock is None or not await self._ws_send(sock, m, fresh=fresh):
                        break
                    self._fire_msg(m, item.event)

    async def _ws_send(self, sock: Sock, m: ClientMessage, *, fresh: bool = True) -> bool:
        """Send a message frame; ``False`` when the send raised. ``fresh``: a new emit,
        with a new acknowledgement id (kept if the frame left), else its latest id."""
        ack = self.acks.new_id() if fresh else m.ack_id
        payload: dict[str, Any] = {"type": "message", "body": m.body}
        if self.policy.sends_ids:
            payload["id"] = m.key
        payload["ack"] = ack if self.policy.acks else False
        ok = await self.io.write(sock, payload)
        if ok:
            m.ack_id = ack
        return ok

    async def _fetch(self, event: MessageEvent) -> None:
        """The companion fix: ask the server which messages with a row for ``event``
        (``recovered``) it applied, and fire it on them."""
        candidates = [m for m in self.messages if self._can_msg(m, event)]
        if not candidates:
            return
        refs = [m.key if self.policy.sends_ids else m.body for m in candidates]
        if self.policy.has_rest:
            applied = await self.io.applied(refs)
        else:  # no REST endpoint: ask over the socket
            applied = None if self.sock is None else await self.io.applied_ws(self.sock, refs)
        if applied is None:
            return
        for m, ref in zip(candidates, refs, strict=True):
            if ref in applied and self._can_msg(m, event):
                self._fire_msg(m, event)
