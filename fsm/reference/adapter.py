"""The reference client, server and proxy as a system under test: ``--adapter reference``.

:class:`ReferenceAdapter` implements :class:`~fsm.testing.adapters.SystemUnderTest`
over :class:`~fsm.reference.driver.LockstepDriver`: ``reset`` starts a fresh world
on loopback (server, two fault proxies, a SQLite store, a client of the design,
or of a mutant's :class:`~fsm.model.behaviour.Behaviour`), ``apply`` makes the real
world take one step, and both return the :class:`~fsm.testing.observation.Observation`
read from the real client (its isConnected flag, each message's state and
pending-list entry) and the real server's store (copies applied).

Whether a step can happen is decided from the real world, not from the model:

=======================  ==============================================================
step                     refused unless
=======================  ==============================================================
``send`` m               the app is in front, m is the next message, and the client is
                         not waiting for a handshake (a send then awaits it)
``connect``              the app is in front and the client's table has a row for it
``handshake_ack``        the client's socket is opening, the network is up, and the
                         server holds its hello
``handshake_fail``       the app is in front, the handshake timer is pending, and the
                         socket is opening (or defunct while handshaking)
``app_background``/...   the app is in front / not (the network: up / down)
``socket_error``         the app is in front, the socket is suspended, the environment
                         reports suspensions, and the client's table has a row
``connection_dropped``   the environment drops silently, the socket is open, and the
                         client's table has a row
``ping_timeout``         the app is in front, the socket is defunct, and a row
``done`` m               the server owes m's done on the client's open socket
``rest_*`` m             the app is in front, the server holds m's REST request (and for
                         ``rest_ok``/``rest_lost_response`` the network is up)
=======================  ==============================================================

The socket's truth comes from the proxy (forwarding, held, black-holed by a
suspension or by a silent drop) and the client's own socket object.

With ``monitor=True`` each run also feeds what the client observes
(:class:`~fsm.reference.client.ClientEvent`) to a fresh
:class:`~fsm.testing.monitor.Monitor` of the behaviour it runs
(:attr:`ReferenceAdapter.monitor`), which records every forbidden transition.

The adapter owns a thread with an event loop; :meth:`ReferenceAdapter.close`
(or ``with``) stops the world and the loop, and a step that fails with anything
but :class:`~fsm.testing.adapters.StepRefused` stops them too (the next
``reset`` starts over).
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Literal, TypeVar

from fsm.analysis.report import message_name
from fsm.analysis.system import Outcome, Stimulus
from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design, Environment
from fsm.model.vocabulary import ConnectionEvent, ConnectionState
from fsm.reference.client import ClientEvent, ReferenceClient
from fsm.reference.driver import LockstepDriver, RealState
from fsm.reference.world import ReferenceWorld
from fsm.testing.adapters import StepRefused
from fsm.testing.monitor import Monitor, MonitorError
from fsm.testing.observation import VISIBLE, MessageObservation, Observation

__all__ = ["MonitorFeed", "ReferenceAdapter", "observation"]

SocketTruth = Literal["closed", "opening", "open", "suspended", "half_open"]
_DEFUNCT = frozenset({"suspended", "half_open"})
_REST = frozenset({Stimulus.rest_ok, Stimulus.rest_error, Stimulus.rest_lost_response})
_MESSAGE_STEPS = _REST | {Stimulus.done}
T = TypeVar("T")

#: Rows the client fires that a monitor infers from another event it is told.
_IMPLIED = frozenset(
    {ConnectionEvent.send_failed.value, "retry_rest", "resend_ws"},
)


def observation(state: RealState) -> Observation:
    """What the driver read from the real client and server, as an :class:`Observation`."""
    return Observation(
        connected=state.connected,
        messages=tuple(
            MessageObservation(state=VISIBLE[m.state], held=m.held, server=m.server)
            for m in state.messages
        ),
    )


class MonitorFeed:
    """Turns the reference client's :class:`ClientEvent` stream into a monitor's events.

    Every row the client fires is reported by its event name, the message named
    ``m1``, ``m2``, ... in the order the user sent them, ``send`` reported before a
    message's first row. Rows the monitor infers are left out: the connection's
    ``send_failed`` (it follows ``ws_send_failed``), and ``retry_rest`` and
    ``resend_ws`` (they follow from the rows' actions). ``connection_dropped``,
    which the client fires when its transport reports a dead socket while it is
    ``connected``, is reported as it is. A :class:`MonitorError` (an event the
    monitor cannot take) is kept in :attr:`errors` instead of raised into the client.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.errors: list[str] = []
        self._sent: set[int] = set()

    def __call__(self, event: ClientEvent) -> None:
        if event.kind == "send" and event.message is not None:
            self._send(event.message)
        elif event.kind == "fired" and event.event is not None:
            if event.event in _IMPLIED:
                return
            if event.machine == "message" and event.message is not None:
                self._send(event.message)
                self._observe(event.event, message_name(event.message))
            elif event.machine == "connection":
                self._observe(event.event, None)

    def _send(self, index: int) -> None:
        if index not in self._sent:
            self._sent.add(index)
            self._observe("send", message_name(index))

    def _observe(self, event: str, message: str | None) -> None:
        try:
            self.monitor.observe(event, message)
        except MonitorError as exc:
            self.errors.append(str(exc))


class ReferenceAdapter:
    """The real client (of the design, or of ``behaviour``), server and proxy.

    ``reset`` may also be given a ``behaviour`` for that run. With ``monitor``,
    each run feeds a fresh :class:`Monitor` (:attr:`monitor`, :attr:`feed`).
    """

    name = "reference"

    def __init__(self, behaviour: Behaviour | None = None, *, monitor: bool = False) -> None:
        self._behaviour = behaviour
        self._watch = monitor
        self.driver = LockstepDriver(on_event=self._on_event)
        self.monitor: Monitor | None = None
        self.feed: MonitorFeed | None = None
        self.environment: Environment | None = None
        self.foreground = True
        self.network = True
        self.steps = 0

    # -- the protocol -------------------------------------------------------------------
    def reset(
        self,
        design: Design,
        environment: Environment,
        messages: int,
        behaviour_: Behaviour | None = None,
    ) -> Observation:
        b = behaviour_ or self._behaviour
        self.environment = environment
        self.foreground = True
        self.network = True
        self.steps = 0
        self.feed = None
        self.monitor = None
        if self._watch:
            self.monitor = Monitor(b or select_behaviour(design), raise_on_violation=False)
            self.feed = MonitorFeed(self.monitor)
        return observation(self._guard(lambda: self.driver.reset(design, environment, messages, b)))

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        if self.driver.world is None or self.environment is None:
            raise StepRefused("apply() before reset()")
        given = self._guard(lambda: self._check(stimulus, message, outcome))
        state = observation(self._guard(lambda: self.driver.apply(stimulus, message, given)))
        self.steps += 1
        if stimulus is Stimulus.app_background:
            self.foreground = False
        elif stimulus is Stimulus.app_foreground:
            self.foreground = True
        elif stimulus is Stimulus.network_lost:
            self.network = False
        elif stimulus is Stimulus.network_restored:
            self.network = True
        return state

    def close(self) -> None:
        """Stop the world (sockets, server, proxies, store) and the event loop."""
        self.driver.close()

    def __enter__(self) -> ReferenceAdapter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------
    def _on_event(self, event: ClientEvent) -> None:
        if self.feed is not None:
            self.feed(event)

    def _guard(self, run: Callable[[], T]) -> T:
        """Run one call into the world; on any failure but a refusal, stop everything
        (the next ``reset`` starts a new loop and world)."""
        try:
            return run()
        except StepRefused:
            raise
        except BaseException:
            self.close()
            raise

    def _check(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Outcome | None:
        """Refuse a step the real world cannot take (see the module doc); the outcome
        the world will give a ``send``. Read in the loop, between two steps."""

        async def read() -> Outcome | None:
            return self._precondition(stimulus, message, outcome)

        return self.driver._run_loop().run(read(), timeout=10.0)

    def _precondition(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Outcome | None:
        world = self.driver.world
        env = self.environment
        assert world is not None
        assert env is not None
        client = self.driver.client
        S = Stimulus
        socket = _socket(world, client)
        what = stimulus.value if message is None else f"{stimulus.value} {message_name(message)}"

        def refuse(why: str) -> StepRefused:
            return StepRefused(f"{what} cannot happen here: {why}")

        def needs_row(event: ConnectionEvent) -> None:
            # A client that still believes a silently dropped socket is live fires
            # connection_dropped first when its transport reports the socket dead.
            table, conn = client.b.connection, client.conn
            dropped = ConnectionEvent.connection_dropped
            if (
                socket in _DEFUNCT
                and conn is ConnectionState.connected
                and table.allows(conn, dropped)
            ):
                conn = table.step(conn, dropped).target
            if not table.allows(conn, event):
                raise refuse(f"the client has no row for {event.value} in {conn.value}")

        def in_front() -> None:
            if not self.foreground:
                raise refuse("the app is in the background")

        if stimulus is S.send:
            in_front()
            sent = len(client.messages)
            if sent >= self.driver.n:
                raise refuse(f"all {self.driver.n} messages were sent")
            if message is not None and message != sent:
                raise refuse(f"the next message is {message_name(sent)}")
            if not client.is_connected:
                return Outcome.rest_direct
            if socket == "opening":
                raise refuse("the send would wait for the handshake")
            if socket in _DEFUNCT:
                vanishes = (socket == "half_open" and env.half_open_sends_vanish) or (
                    socket == "suspended" and env.suspended_sends_vanish
                )
                if outcome is Outcome.ws_vanished and vanishes:
                    return Outcome.ws_vanished
                return Outcome.ws_raised
            return outcome
        if stimulus is S.connect:
            in_front()
            needs_row(ConnectionEvent.connect)
        elif stimulus is S.handshake_ack:
            if socket != "opening" or not self.network:
                raise refuse(f"the socket is {socket}" + ("" if self.network else ", no network"))
            if not world.server.waiting_hello():
                raise refuse("the server holds no handshake")
        elif stimulus is S.handshake_fail:
            in_front()
            defunct_handshake = socket in _DEFUNCT and client.conn is ConnectionState.handshaking
            if not (socket == "opening" or defunct_handshake):
                raise refuse(f"the socket is {socket}")
            if not world.clock.pending("handshake"):
                raise refuse("no handshake timer is pending")
        elif stimulus is S.app_background:
            in_front()
        elif stimulus is S.app_foreground:
            if self.foreground:
                raise refuse("the app is in front")
        elif stimulus is S.network_lost:
            if not self.network:
                raise refuse("the network is already gone")
        elif stimulus is S.network_restored:
            if self.network:
                raise refuse("the network is up")
        elif stimulus is S.socket_error:
            in_front()
            if socket != "suspended" or not env.suspension_reported:
                raise refuse(f"the socket is {socket}; nothing to report")
            needs_row(ConnectionEvent.socket_error)
        elif stimulus is S.connection_dropped:
            if not env.silent_drops or socket != "open":
                raise refuse(f"the socket is {socket}; {env.name} drops no connection")
            needs_row(ConnectionEvent.connection_dropped)
        elif stimulus is S.ping_timeout:
            in_front()
            if socket not in _DEFUNCT:
                raise refuse(f"the socket is {socket}")
            needs_row(ConnectionEvent.ping_timeout)
        elif stimulus in _MESSAGE_STEPS:
            if message is None or not 0 <= message < len(client.messages):
                raise refuse("that message was never sent")
            m = client.messages[message]
            if stimulus is S.done:
                ref = m.key if client.policy.sends_ids else m.body
                if socket != "open" or not world.server.owes(ref):
                    raise refuse("the server owes no done for it on an open socket")
            else:
                in_front()
                if stimulus is not S.rest_error and not self.network:
                    raise refuse("no network")
                if not world.server.held_for(m.body):
                    raise refuse("the server holds no REST request for it")
        return outcome


def _socket(world: ReferenceWorld, client: ReferenceClient) -> SocketTruth:
    """The client's socket as the model names it, from the proxy and the client."""
    sock = client.sock
    live = world.ws_proxy.live()
    if sock is None or sock.closed or not live:
        return "closed"
    conn = max(live, key=lambda c: c.id)
    if conn.mode == "blackhole":
        return "suspended" if conn.suspended else "half_open"
    if sock.dead:
        return "closed"
    if not sock.ready.done():
        return "opening"
    return "open" if sock.ready.result() else "closed"
