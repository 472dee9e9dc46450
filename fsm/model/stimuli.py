"""What can happen in the composed world, and when: stimuli, send outcomes, their guards.

A :class:`Stimulus` is one thing that happens in a step of the composed system
(the user sends, the socket dies, a REST request answers). Whether it can
happen is stated once, here, as data (:data:`ENABLED`): a few alternatives,
each a conjunction of conditions on what every executor can see, the
:class:`Scene` (the client's connection state, the socket's truth, the app's
lifecycle, the network) and, for a step aimed at a message, its :class:`Aim`.
The composed system, the ``transitions`` adapter and the reference adapter
evaluate it with :func:`refusal`; the Promela generator writes its guards from
the same data. How the world answers a ``send`` (:class:`Outcome`) is stated the
same way (:data:`OUTCOMES`). What a guard reads of the design is in
:class:`Rules`: its two tables and the hooks where it has effects.

Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from fsm.model.design import Environment
from fsm.model.tables import Table
from fsm.model.vocabulary import (
    ConnectionEvent,
    ConnectionState,
    Documented,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
)

__all__ = [
    "CONNECTION_STIMULI",
    "DECIDED_BY_CLIENT",
    "ENABLED",
    "MESSAGE_STIMULI",
    "OUTCOMES",
    "REST_STIMULI",
    "WRITTEN",
    "Aim",
    "Condition",
    "EnvironmentFlag",
    "Outcome",
    "Rules",
    "Scene",
    "Stimulus",
    "environment_flag",
    "refusal",
    "send_outcomes",
    "sends_vanish",
]

CE = ConnectionEvent


class Stimulus(Documented):
    """One thing that happens in a step of the composed system."""

    send = ("send", "The user sends a new message.")
    connect = CE.connect.value, CE.connect.doc
    handshake_ack = CE.handshake_ack.value, CE.handshake_ack.doc
    handshake_fail = CE.handshake_fail.value, CE.handshake_fail.doc
    app_background = CE.app_background.value, CE.app_background.doc
    app_foreground = CE.app_foreground.value, CE.app_foreground.doc
    network_lost = CE.network_lost.value, CE.network_lost.doc
    network_restored = CE.network_restored.value, CE.network_restored.doc
    socket_error = CE.socket_error.value, CE.socket_error.doc
    connection_dropped = CE.connection_dropped.value, CE.connection_dropped.doc
    ping_timeout = CE.ping_timeout.value, CE.ping_timeout.doc
    done = ("done", "The server's done/toolUse for a message arrives over the WebSocket.")
    rest_ok = ("rest_ok", "A REST request for a message succeeds.")
    rest_error = ("rest_error", "A REST request fails before the server applied it.")
    rest_lost_response = (
        "rest_lost_response",
        "The server applied a REST request but its response was lost.",
    )
    ack_timeout = (
        "ack_timeout",
        "A message's acknowledgement timer fires before its acknowledgement arrived "
        "(socket.io ackTimeout); a late acknowledgement is then ignored.",
    )

    @property
    def aimed(self) -> bool:
        """The step concerns one message that was sent already (done, a REST outcome)."""
        return self in MESSAGE_STIMULI


class Outcome(Documented):
    """How the world answered a ``send``, where it can answer in more than one way.

    A test adapter makes the implementation's world do the same thing (an open
    socket, a dead one that raises, a half-open one that swallows the bytes).
    REST outcomes need no member here: they are stimuli of their own.
    """

    rest_direct = ("rest_direct", "The client was not connected, so it sent over REST.")
    ws_delivered = ("ws_delivered", "The WebSocket send reached the server.")
    ws_raised = ("ws_raised", "The WebSocket send into a dead socket raised an error.")
    ws_vanished = (
        "ws_vanished",
        "The WebSocket send into a dead socket returned normally; the bytes vanished.",
    )
    buffered = (
        "buffered",
        "The client was not connected, so it kept the message in its offline buffer.",
    )
    queued = (
        "queued",
        "The client was not connected, so the message waits in its pending-retry list.",
    )
    refused = (
        "refused",
        "The client was not connected and refused the send: the user sees it failed.",
    )
    deadline_passed = (
        "deadline_passed",
        "The client reports connected but found the heartbeat deadline passed: it "
        "buffered the message and closed the connection (socket.io-client 4.8).",
    )


#: Answers to a send that write the message (or would): an ordered queue holds a
#: message behind its oldest one instead.
WRITTEN = frozenset(
    {Outcome.ws_delivered, Outcome.ws_raised, Outcome.ws_vanished, Outcome.deadline_passed}
)
#: Answers the client gives by itself, the world having no say: it is not connected,
#: or it found the heartbeat deadline passed.
DECIDED_BY_CLIENT = frozenset(
    {
        Outcome.rest_direct,
        Outcome.buffered,
        Outcome.queued,
        Outcome.refused,
        Outcome.deadline_passed,
    }
)

#: Steps aimed at one message, in the order the composed system lists them.
MESSAGE_STIMULI: tuple[Stimulus, ...] = (
    Stimulus.done,
    Stimulus.rest_ok,
    Stimulus.rest_error,
    Stimulus.rest_lost_response,
    Stimulus.ack_timeout,
)
#: The stimuli that answer a REST request: they exist only in designs with REST.
REST_STIMULI: tuple[Stimulus, ...] = (
    Stimulus.rest_ok,
    Stimulus.rest_error,
    Stimulus.rest_lost_response,
)
#: Steps of the connection and the world around it, in the order they are listed.
CONNECTION_STIMULI: tuple[Stimulus, ...] = tuple(
    s for s in Stimulus if s is not Stimulus.send and s not in MESSAGE_STIMULI
)


class Scene(NamedTuple):
    """What a guard reads of the world: the client's connection state, the socket's
    truth, whether the app is in front, whether the network is up."""

    connection: ConnectionState
    socket: Socket
    foreground: bool
    network: bool


class Aim(NamedTuple):
    """What a guard reads of the message a step is aimed at."""

    #: The server owes its done/toolUse on the current socket.
    done_owed: bool
    #: A REST request carrying it is in flight.
    rest_in_flight: bool
    #: The client waits for its acknowledgement (:attr:`MessageState.awaits_ack`).
    awaiting_ack: bool = False

    @classmethod
    def of(cls, state: MessageState, done_owed: bool) -> Aim:
        """What a guard reads of a message in ``state``."""
        return cls(done_owed, state.rest_in_flight, state.awaits_ack)


class Rules(NamedTuple):
    """What a guard reads of the design: its two tables, and the hooks where it has
    effects (``Behaviour.rules`` makes one)."""

    connection: Table[ConnectionState, ConnectionEvent]
    message: Table[MessageState, MessageEvent]
    hooks: frozenset[Hook]


#: An environment's yes/no fact a guard may need.
EnvironmentFlag = Literal["suspension_reported", "silent_drops"]


def environment_flag(env: Environment, flag: EnvironmentFlag) -> bool:
    match flag:
        case "suspension_reported":
            return env.suspension_reported
        case "silent_drops":
            return env.silent_drops


def sends_vanish(env: Environment, socket: Socket) -> bool:
    """A WebSocket send into ``socket`` may return normally while its bytes vanish."""
    return (socket is Socket.half_open and env.half_open_sends_vanish) or (
        socket is Socket.suspended and env.suspended_sends_vanish
    )


_DEAD = frozenset(s for s in Socket if s.dead)


@dataclass(frozen=True)
class Condition:
    """One alternative of a guard: every field that is set must hold."""

    #: The app is in front (``True``) or in the background (``False``).
    foreground: bool | None = None
    #: The network is up (``True``) or gone (``False``).
    network: bool | None = None
    #: The socket is one of these.
    sockets: frozenset[Socket] | None = None
    #: The client's connection state is one of these.
    connection: frozenset[ConnectionState] | None = None
    #: The client's isConnected flag reads this (:attr:`ConnectionState.reports_connected`).
    reports_connected: bool | None = None
    #: The client's connection table has a row for this event in its state.
    row: ConnectionEvent | None = None
    #: The environment has this flag.
    environment: EnvironmentFlag | None = None
    #: The environment swallows sends into the socket (:func:`sends_vanish`).
    vanishing: bool = False
    #: The message aimed at has this.
    aim: Literal["done_owed", "rest_in_flight", "awaiting_ack"] | None = None
    #: The client's connection table has no row for this event in its state.
    lacks_row: ConnectionEvent | None = None
    #: The message table has a row for this event from ``pending`` (how a message the
    #: user just sent may go).
    accepts: MessageEvent | None = None
    #: The design has an effect at this hook.
    hook: Hook | None = None

    def refusal(
        self,
        scene: Scene,
        env: Environment,
        rules: Rules,
        aim: Aim | None = None,
    ) -> str | None:
        """Why the condition does not hold, in words; ``None`` when it does."""
        table = rules.connection
        if self.foreground is not None and scene.foreground != self.foreground:
            return "the app is in the background" if self.foreground else "the app is in front"
        if self.network is not None and scene.network != self.network:
            return "no network" if self.network else "the network is up"
        if self.sockets is not None and scene.socket not in self.sockets:
            return f"the socket is {scene.socket.value}"
        if self.connection is not None and scene.connection not in self.connection:
            return f"the connection is {scene.connection.value}"
        if (
            self.reports_connected is not None
            and scene.connection.reports_connected != self.reports_connected
        ):
            return "the client is " + ("not " if self.reports_connected else "") + "connected"
        if self.row is not None and not table.allows(scene.connection, self.row):
            return f"the client has no row for {self.row.value} in {scene.connection.value}"
        if self.lacks_row is not None and table.allows(scene.connection, self.lacks_row):
            return f"the client has a row for {self.lacks_row.value} in {scene.connection.value}"
        if self.accepts is not None and not rules.message.allows(
            MessageState.pending, self.accepts
        ):
            return f"the design does not {self.accepts.value} a message"
        if self.hook is not None and self.hook not in rules.hooks:
            return f"the design has no effect at {self.hook.value}"
        if self.environment is not None and not environment_flag(env, self.environment):
            return f"{env.name} has no {self.environment}"
        if self.vanishing and not sends_vanish(env, scene.socket):
            return f"a send into a {scene.socket.value} socket does not vanish in {env.name}"
        if self.aim is not None:
            if aim is None:
                return "it needs a message"
            if self.aim == "done_owed" and not aim.done_owed:
                return "the server owes no done for it on this socket"
            if self.aim == "rest_in_flight" and not aim.rest_in_flight:
                return "no REST request for it is in flight"
            if self.aim == "awaiting_ack" and not aim.awaiting_ack:
                return "the client awaits no acknowledgement for it"
        return None


def _when(*alternatives: Condition) -> tuple[Condition, ...]:
    return alternatives


#: When each stimulus can happen: any one alternative holding is enough. A
#: ``send`` needs besides an unsent message and an outcome (:data:`OUTCOMES`).
ENABLED: dict[Stimulus, tuple[Condition, ...]] = {
    Stimulus.send: _when(Condition(foreground=True)),
    Stimulus.connect: _when(Condition(foreground=True, row=CE.connect)),
    Stimulus.handshake_ack: _when(Condition(sockets=frozenset({Socket.opening}), network=True)),
    # The handshake times out: the socket is still opening, or it died (iOS
    # suspended it, or it went half-open) before the server acknowledged it.
    Stimulus.handshake_fail: _when(
        Condition(foreground=True, sockets=frozenset({Socket.opening})),
        Condition(
            foreground=True,
            sockets=_DEAD,
            connection=frozenset({ConnectionState.handshaking}),
        ),
    ),
    Stimulus.app_background: _when(Condition(foreground=True)),
    Stimulus.app_foreground: _when(Condition(foreground=False)),
    Stimulus.network_lost: _when(Condition(network=True)),
    Stimulus.network_restored: _when(Condition(network=False)),
    Stimulus.socket_error: _when(
        Condition(
            foreground=True,
            sockets=frozenset({Socket.suspended}),
            environment="suspension_reported",
            row=CE.socket_error,
        )
    ),
    Stimulus.connection_dropped: _when(
        Condition(
            environment="silent_drops",
            sockets=frozenset({Socket.open}),
            row=CE.connection_dropped,
        )
    ),
    Stimulus.ping_timeout: _when(Condition(foreground=True, sockets=_DEAD, row=CE.ping_timeout)),
    Stimulus.done: _when(Condition(aim="done_owed", sockets=frozenset({Socket.open}))),
    Stimulus.rest_ok: _when(Condition(aim="rest_in_flight", foreground=True, network=True)),
    Stimulus.rest_error: _when(Condition(aim="rest_in_flight", foreground=True)),
    Stimulus.rest_lost_response: _when(
        Condition(aim="rest_in_flight", foreground=True, network=True)
    ),
    # Timers run only while the app runs (iOS freezes a suspended app's process).
    Stimulus.ack_timeout: _when(
        Condition(aim="awaiting_ack", foreground=True, hook=Hook.ack_timed_out)
    ),
}

_SUSPENDED = frozenset({Socket.suspended})
#: Dead sockets a send reaches even where it checks the heartbeat deadline first.
_DEAD_NOT_SUSPENDED = _DEAD - _SUSPENDED
_DEADLINE = CE.heartbeat_expired

#: How the world may answer a ``send`` (on top of ``ENABLED[send]``), any one
#: alternative holding. A client that is not connected does what its
#: ``offline_send`` row says. A client that reports connected while its socket is
#: still opening awaits the handshake: no outcome holds, so the send waits. Where
#: a send checks the heartbeat deadline first (the connection table has a
#: ``heartbeat_expired`` row), a socket iOS suspended is never written to: the
#: app was away past the deadline (a reading, see the model's documentation).
OUTCOMES: dict[Outcome, tuple[Condition, ...]] = {
    Outcome.rest_direct: _when(Condition(reports_connected=False, accepts=MessageEvent.send_rest)),
    Outcome.ws_delivered: _when(
        Condition(reports_connected=True, sockets=frozenset({Socket.open}))
    ),
    Outcome.ws_raised: _when(
        Condition(reports_connected=True, sockets=frozenset({Socket.closed}) | _DEAD_NOT_SUSPENDED),
        Condition(reports_connected=True, sockets=_SUSPENDED, lacks_row=_DEADLINE),
    ),
    Outcome.ws_vanished: _when(
        Condition(reports_connected=True, sockets=_DEAD_NOT_SUSPENDED, vanishing=True),
        Condition(reports_connected=True, sockets=_SUSPENDED, vanishing=True, lacks_row=_DEADLINE),
    ),
    Outcome.buffered: _when(Condition(reports_connected=False, accepts=MessageEvent.buffer)),
    Outcome.queued: _when(Condition(reports_connected=False, accepts=MessageEvent.queue)),
    Outcome.refused: _when(Condition(reports_connected=False, accepts=MessageEvent.refuse)),
    Outcome.deadline_passed: _when(
        Condition(reports_connected=True, sockets=_SUSPENDED, row=_DEADLINE)
    ),
}


def _first_refusal(
    alternatives: tuple[Condition, ...],
    scene: Scene,
    env: Environment,
    rules: Rules,
    aim: Aim | None = None,
) -> str | None:
    first = None
    for condition in alternatives:
        why = condition.refusal(scene, env, rules, aim)
        if why is None:
            return None
        first = first or why
    return first


def refusal(
    stimulus: Stimulus,
    scene: Scene,
    env: Environment,
    rules: Rules,
    aim: Aim | None = None,
) -> str | None:
    """Why ``stimulus`` cannot happen in ``scene`` (the first alternative's reason);
    ``None`` when it can."""
    return _first_refusal(ENABLED[stimulus], scene, env, rules, aim)


def send_outcomes(scene: Scene, env: Environment, rules: Rules) -> tuple[Outcome, ...]:
    """How the world may answer a send in ``scene``, in order (the first is what it
    does unless asked to swallow the send); empty while the send awaits a handshake."""
    return tuple(o for o, c in OUTCOMES.items() if _first_refusal(c, scene, env, rules) is None)
