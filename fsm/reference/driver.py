"""Drive the real client, server and proxy one composed-system step at a time.

:class:`LockstepDriver` makes the real world do what a step of
:class:`~fsm.analysis.system.System` says, and reads back what a test can see:
the client's isConnected flag and, for each message, its state, whether it is in
the SQLite pending list, and how many copies the server's store applied.

How each step is realised:

=====================  ===================================================================
step                   real action
=====================  ===================================================================
``send`` m             the user sends m's text; for ``ws_raised`` the proxy first resets
                       the defunct connection (so the send raises), for ``ws_vanished``
                       it stays black-holed (the send returns and the bytes vanish);
                       ``buffered``, ``queued``, ``refused``, ``rest_direct`` and
                       ``deadline_passed`` are the client's own doing (not connected,
                       or its clock past the socket's heartbeat deadline); a message
                       that waits behind an ordered queue's oldest writes nothing, so
                       the proxy is left alone
``connect``            the client's reconnect timer fires (or, with none, ``connect()``)
``handshake_ack``      the server sends ``hello`` on the newest socket
``handshake_fail``     the client's handshake timeout fires
``app_background``     the proxy black-holes every connection; the client is suspended
``app_foreground``     the app was away longer than the heartbeat deadline: the clock
                       moves on firing nothing (timers wait for their steps); the
                       client resumes (and does what its design does on return)
``network_lost``       the proxy resets live connections and holds new ones; the OS tells
                       the client
``network_restored``   the proxy forwards again (held connections too); the OS tells
                       the client
``socket_error``       the proxy resets the defunct connection; the client's report timer
                       fires (the receive loop's error reaches the app)
``connection_dropped`` the proxy black-holes the live connection (half-open)
``ping_timeout``       the client's heartbeat timer fires until the unanswered ping
                       declares the socket dead
``done`` m             the server sends the done it owes for m (the newest copy's)
``rest_ok`` m          the server applies m's held REST request and answers 200
``rest_error`` m       the server answers m's held REST request 503, applying nothing
``rest_lost_response`` the server applies m's held REST request and drops the connection
``ack_timeout`` m      m's acknowledgement timer fires
=====================  ===================================================================

The server holds every handshake, done and REST request until a step releases
it, and the clock moves only when a step fires a timer, so a run is
deterministic. After each step the driver waits (bounded) until the world is
quiet: the client has nothing queued, every REST request it has in flight is
held at the server, and no byte has moved for a few polls of the loop. The
client ends each event it handles with the design's ``step_end`` effect (an
ordered queue writes its oldest message) and its writes while it still counts
as busy, so a quiet world is one where the step has ended.

:meth:`LockstepDriver.restart` is no step of the model: the client is stopped with
no cleanup, as a killed process is, and a new one starts on the same SQLite store
(its messages, their states and attempts, the pending-retry list in its order).

REST requests go through their own proxy, which no step faults: a REST
outcome is the model's step, so a request made while the network is lost
reaches the server and waits there for ``rest_error`` (the model lets only
``rest_error`` happen without a network).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fsm.analysis.system import Outcome, Stimulus
from fsm.model.behaviour import Behaviour
from fsm.model.design import Design, Environment
from fsm.model.vocabulary import MessageState
from fsm.reference.activity import settle
from fsm.reference.client import ClientEvent, ReferenceClient
from fsm.reference.server import Gates, RestVerdict
from fsm.reference.world import LoopThread, ReferenceWorld

__all__ = ["LockstepDriver", "RealMessage", "RealState"]


@dataclass(frozen=True)
class RealMessage:
    #: The client's message-machine state; ``None`` until the user sent it.
    state: MessageState | None
    held: bool
    #: Copies the server applied, capped at 2.
    server: int


@dataclass(frozen=True)
class RealState:
    connected: bool
    messages: tuple[RealMessage, ...]


_REST: dict[Stimulus, RestVerdict] = {
    Stimulus.rest_ok: "ok",
    Stimulus.rest_error: "fail",
    Stimulus.rest_lost_response: "ambiguous",
}


class LockstepDriver:
    """The real world as a step-by-step system (synchronous; an event loop runs in a
    thread). ``behaviour`` runs those tables instead of the design's (a mutant)."""

    def __init__(
        self,
        behaviour_: Behaviour | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
    ) -> None:
        self._behaviour = behaviour_
        self._on_event = on_event
        self._loop: LoopThread | None = None
        self.world: ReferenceWorld | None = None
        self.n = 0

    @property
    def client(self) -> ReferenceClient:
        world = self.world
        if world is None or world.client is None:
            raise RuntimeError("reset() first")
        return world.client

    def _run_loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    # -- the protocol -------------------------------------------------------------------
    def reset(
        self,
        design: Design,
        environment: Environment,
        messages: int,
        behaviour_: Behaviour | None = None,
    ) -> RealState:
        """A fresh world (server, proxies, store, client); ``behaviour_`` runs those
        tables on the client instead of the driver's own (for this run only)."""
        loop = self._run_loop()
        loop.run(self._reset(design, messages, behaviour_ or self._behaviour))
        return self.observe()

    def apply(self, stimulus: Stimulus, message: int | None, outcome: Outcome | None) -> RealState:
        self._run_loop().run(self._apply(stimulus, message, outcome))
        return self.observe()

    def restart(self) -> RealState:
        """Kill the client and start it again on its store (no step of the model);
        the world around it (server, proxies, clock) stays."""
        self._run_loop().run(self._restart())
        return self.observe()

    def close(self) -> None:
        """Stop the world (sockets, server, proxies, store) and the loop's thread; the
        loop stops even if the world does not stop cleanly. Safe to call twice."""
        loop, self._loop = self._loop, None
        world, self.world = self.world, None
        if loop is None:
            return
        try:
            if world is not None:
                loop.run(world.stop(), timeout=15.0)
        finally:
            loop.close()

    def observe(self) -> RealState:
        world = self.world
        assert world is not None
        client = self.client
        shown = client.snapshot()
        out = []
        for i in range(self.n):
            if i < len(shown):
                m = shown[i]
                applied = world.server.applied.get(m.body, 0)
                out.append(RealMessage(m.state, m.held, min(applied, 2)))
            else:
                out.append(RealMessage(None, False, 0))
        return RealState(client.is_connected, tuple(out))

    # -- in the loop --------------------------------------------------------------------
    async def _reset(self, design: Design, messages: int, behaviour_: Behaviour | None) -> None:
        if self.world is not None:
            world, self.world = self.world, None
            await world.stop()
        self.n = messages
        gates = Gates(hold_hello=True, hold_done=True, hold_rest=True)
        self.world = ReferenceWorld(gates, scratch=True)
        await self.world.start()
        await self.world.new_client(design, behaviour_=behaviour_, on_event=self._on_event)
        await self._settle()

    async def _restart(self) -> None:
        world = self.world
        assert world is not None
        old = self.client
        store = old.outbox.path
        design, behaviour_ = old.design, old.b
        await old.close()  # nothing is flushed: what a killed process leaves behind
        await world.new_client(design, store=store, behaviour_=behaviour_, on_event=self._on_event)
        await self._settle()

    async def _settle(self) -> None:
        world = self.world
        assert world is not None
        client = self.client

        def ready() -> bool:
            return client.idle and len(client.rest_in_flight) == world.server.held_count()

        await settle(world.activity, ready=ready, timeout=10.0)

    async def _apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> None:
        world = self.world
        assert world is not None
        client = self.client
        S = Stimulus
        if stimulus is S.send:
            if outcome is Outcome.ws_raised and not client.send_waits:
                world.ws_proxy.reset(only_defunct=True)
                await self._settle()
            index = len(client.messages)
            await client.send(f"m{index + 1}")
        elif stimulus is S.connect:
            if not world.clock.fire("reconnect"):
                client.connect()
        elif stimulus is S.handshake_ack:
            world.server.say_hello()
        elif stimulus is S.handshake_fail:
            world.clock.fire("handshake")
        elif stimulus is S.app_background:
            world.ws_proxy.suspend()
            client.background()
        elif stimulus is S.app_foreground:
            # iOS froze the app past the heartbeat deadline (the model's reading).
            world.clock.skip(client.t.heartbeat_deadline + client.t.heartbeat_interval)
            client.foreground()
        elif stimulus is S.network_lost:
            # The loss reaches the client through its socket: one the client believes
            # live that is already defunct (suspended or half-open) says nothing.
            silent = world.ws_proxy.defunct() and client.is_connected
            world.ws_proxy.network_down(hold=True)
            if not silent:
                client.network_changed(False)
        elif stimulus is S.network_restored:
            world.ws_proxy.network_up()
            if not client.network:
                client.network_changed(True)
        elif stimulus is S.socket_error:
            world.ws_proxy.reset(only_defunct=True)
            await self._settle()
            world.clock.fire("report")
        elif stimulus is S.connection_dropped:
            world.ws_proxy.blackhole()
        elif stimulus is S.ping_timeout:
            before = client.conn
            for _ in range(2):
                if not world.clock.fire("heartbeat"):
                    break
                await self._settle()
                if client.conn is not before:
                    break
        elif stimulus is S.done and message is not None and message < len(client.messages):
            m = client.messages[message]
            ref = m.key if client.policy.sends_ids else m.body
            await world.server.send_done(ref, m.ack_floor)
        elif stimulus is S.ack_timeout and message is not None and message < len(client.messages):
            timer = client.acks.timer(client.messages[message])
            if timer is not None:
                world.clock.fire_timer(timer)
        elif stimulus in _REST and message is not None and message < len(client.messages):
            world.server.answer_rest(client.messages[message].body, _REST[stimulus])
        await self._settle()
