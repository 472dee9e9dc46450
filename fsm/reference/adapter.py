"""The reference client, server and proxy as a system under test: ``--adapter reference``.

:class:`ReferenceAdapter` implements :class:`~fsm.testing.adapters.SystemUnderTest`
over :class:`~fsm.reference.driver.LockstepDriver`: ``reset`` starts a fresh world
on loopback (server, two fault proxies, a SQLite store, a client of the design,
or of a mutant's :class:`~fsm.model.behaviour.Behaviour`), ``apply`` makes the real
world take one step, and both return the :class:`~fsm.testing.observation.Observation`
read from the real client (its isConnected flag, each message's state and
pending-list entry) and the real server's store (copies applied).

Whether a step can happen is the model's guard (:data:`fsm.model.stimuli.ENABLED`)
read on the real world, not on the model's state: the client's connection state
and isConnected flag, the socket's truth, the app's lifecycle and the network; for
a step aimed at a message, its state in the real client and whether the real
server owes a done the client still waits for (``done``). More facts only the
real world has: a ``handshake_ack`` needs the server to hold the hello, a
``handshake_fail`` a pending handshake timer, a REST outcome the server to hold
the message's request, an ``ack_timeout`` the message's pending acknowledgement
timer. A ``send`` also needs m to be the next message, and is refused while it
would wait for a handshake; where the client decides how a send goes (not
connected, or past the heartbeat deadline) the outcome is the client's. A message
sent while an ordered queue holds another ahead of it waits behind it (the
``queue`` row), whatever the world would have done to its write, as in the model.

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
from typing import TypeVar

from fsm.analysis.report import message_name
from fsm.analysis.system import Outcome, Stimulus
from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design, Environment
from fsm.model.stimuli import (
    DECIDED_BY_CLIENT,
    REST_STIMULI,
    Aim,
    Scene,
    refusal,
    send_outcomes,
)
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageEvent, Socket
from fsm.reference.client import ClientEvent, ReferenceClient
from fsm.reference.driver import LockstepDriver, RealState
from fsm.reference.world import ReferenceWorld
from fsm.testing.adapters import StepRefused
from fsm.testing.monitor import Monitor, MonitorError
from fsm.testing.observation import VISIBLE, MessageObservation, Observation

__all__ = ["MonitorFeed", "ReferenceAdapter", "observation"]

T = TypeVar("T")

#: Rows the client fires that a monitor infers from another event it is told.
_IMPLIED = frozenset(
    {
        ConnectionEvent.send_failed.value,
        ConnectionEvent.heartbeat_expired.value,
        "retry_rest",
        "resend_ws",
        "flush",
    },
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
    ``send_failed`` and ``heartbeat_expired`` (they follow ``ws_send_failed`` and
    ``deadline_buffer``), ``retry_rest``, ``resend_ws`` and ``flush`` (they follow
    from the rows' actions), and a ``deadline_buffer`` that is not a send's own
    (it follows from writing a message again after ``ack_retry``). ``connection_dropped``,
    which the client fires when its transport reports a dead socket while it is
    ``connected``, is reported as it is. A :class:`MonitorError` (an event the
    monitor cannot take) is kept in :attr:`errors` instead of raised into the client.
    """

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.errors: list[str] = []
        self._sent: set[int] = set()
        #: The message whose send the client just reported, until the next row.
        self._sending: int | None = None

    def __call__(self, event: ClientEvent) -> None:
        if event.kind == "send" and event.message is not None:
            self._send(event.message)
            self._sending = event.message
        elif event.kind == "fired" and event.event is not None:
            own = False
            if event.machine == "message":
                # The send's own first row; a connection row may come before it.
                own, self._sending = self._sending == event.message, None
            if event.event in _IMPLIED:
                return
            if event.event == MessageEvent.deadline_buffer.value and not own:
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
        socket = _socket(world, client)
        what = stimulus.value if message is None else f"{stimulus.value} {message_name(message)}"

        def refuse(why: str) -> StepRefused:
            return StepRefused(f"{what} cannot happen here: {why}")

        # A client that still believes a silently dropped socket is live fires
        # connection_dropped first when its transport reports the socket dead.
        rules, conn = client.b.rules, client.conn
        table, dropped = rules.connection, ConnectionEvent.connection_dropped
        if socket.dead and conn is ConnectionState.connected and table.allows(conn, dropped):
            conn = table.step(conn, dropped).target
        scene = Scene(conn, socket, self.foreground, self.network)

        if stimulus is Stimulus.send:
            why = refusal(stimulus, scene, env, rules)
            if why is not None:
                raise refuse(why)
            sent = len(client.messages)
            if sent >= self.driver.n:
                raise refuse(f"all {self.driver.n} messages were sent")
            if message is not None and message != sent:
                raise refuse(f"the next message is {message_name(sent)}")
            outcomes = send_outcomes(scene, env, rules)
            if not outcomes:
                raise refuse("the send would wait for the handshake")
            if outcomes[0] in DECIDED_BY_CLIENT:
                # Not connected, or past the heartbeat deadline: the client decides.
                return outcomes[0]
            if socket.dead:
                # A send into a dead socket raises, or the world swallows it.
                vanish = outcome is Outcome.ws_vanished and outcome in outcomes
                return Outcome.ws_vanished if vanish else Outcome.ws_raised
            return outcome
        aim = None
        m = None
        if stimulus.aimed:
            if message is None or not 0 <= message < len(client.messages):
                raise refuse("that message was never sent")
            m = client.messages[message]
            ref = m.key if client.policy.sends_ids else m.body
            # The real server shows whether it owes a done the client still waits for.
            aim = Aim.of(m.state, world.server.owes(ref, m.ack_floor))
        why = refusal(stimulus, scene, env, rules, aim)
        if why is not None:
            raise refuse(why)
        if stimulus is Stimulus.handshake_ack and not world.server.waiting_hello():
            raise refuse("the server holds no handshake")
        if stimulus is Stimulus.handshake_fail and not world.clock.pending("handshake"):
            raise refuse("no handshake timer is pending")
        if stimulus in REST_STIMULI and m is not None and not world.server.held_for(m.body):
            raise refuse("the server holds no REST request for it")
        if stimulus is Stimulus.ack_timeout and m is not None and client.acks.timer(m) is None:
            raise refuse("no acknowledgement timer is pending for it")
        return outcome


def _socket(world: ReferenceWorld, client: ReferenceClient) -> Socket:
    """The client's socket as the model names it, from the proxy and the client.

    A black-holed connection is dead and unreported: suspended with the app, or
    half-open. It stays so when the proxy resets it to make a send raise, until
    the client closes the socket (the receive loop's report comes later).
    """
    sock = client.sock
    conns = world.ws_proxy.conns
    if sock is None or sock.closed or not conns:
        return Socket.closed
    conn = conns[max(conns)]
    if conn.mode == "blackhole":
        return Socket.suspended if conn.suspended or sock.backgrounded else Socket.half_open
    if conn.closed or sock.dead:
        return Socket.closed
    if not sock.ready.done():
        return Socket.opening
    return Socket.open if sock.ready.result() else Socket.closed
