"""The composed system: one connection, N messages, a server and the world around them.

The machines in :mod:`fsm.model` say what the *client* does with an event. This
module says which events can happen at all, and what they do to the parts the
client cannot see: the socket (is it really open?), the app's lifecycle, the
network, and the server (how many copies of each message has it applied; does
it still owe a done/toolUse on the current socket?).

Each step is one :class:`Stimulus`. Its effect on the client is always a row of
the design's tables, looked up, never restated here; a row's actions (retry the
pending list over REST, resend it over the WebSocket, ...) may fire rows of the
message machine in turn. Every fired row is reported with the step, so the
checker can see forbidden transitions and a test generator can measure row
coverage.

Modelling choices, each one a statement about real clients:

* A WebSocket send on an open socket reaches the server at once; the server
  then owes a done/toolUse on that socket, which is lost if the socket dies.
* A send on a socket that is still opening waits for the handshake (Swift's
  ``try await task.send`` suspends), so the model lets the handshake finish first.
* iOS suspends every socket when the app goes to the background: an open or
  opening socket becomes ``suspended``. A send into it raises; the receive loop
  reports the error some time after the app is in the foreground again.
* In the half-open environment a live connection may silently become
  ``half_open`` (NAT timeout, server killed). Nothing ever reports it; only a
  heartbeat, a failed send or a reconnect finds out. A send into it may raise
  or may return normally while the bytes go nowhere.
* A REST request may succeed, fail before reaching the server, or be applied by
  the server while its response is lost (Ably RSL1k's test case). The client
  handles the outcome only while the app runs in the foreground.
* A message's acknowledgement timer runs only while the app runs in the
  foreground; when it fires, a late acknowledgement is ignored.
* A write the client makes on its own (a buffer flushed or a list resent when a
  connection is acknowledged, a message written again after a failed attempt)
  never raises: it reaches the server through an open socket and vanishes into
  a dead one.

When one step runs several effects, they run in this order: the stimulus's
effect on the world (the socket, the app, the network, an owed done/toolUse);
the ``accept`` effect of a send; the rows the step fires, each row's actions in
the order the row lists them and each action's effects in
:attr:`~fsm.model.vocabulary.Meaning.effects` order, a row fired by an action
running its own actions before the action goes on to the next message; after a
connection row that leaves a state reporting connected, the ``disconnected``
effect; then the effect at the step's own hook (``connection_acknowledged``
after ``handshake_ack``, ``rest_succeeded`` after ``rest_ok``, ``ack_timed_out``
after ``ack_timeout``); and last the ``step_end`` effect (an ordered queue writes
its oldest message if it waits). So at ``handshake_ack`` the buffer is flushed,
then the pending-retry list resent, then the server's state refetched.

An ordered queue (socket.io's retries) has one message in flight, oldest first:
each held message records how many held messages are ahead of it, so the order
is part of the state and the symmetry reduction stays sound.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal, NamedTuple

from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design, Environment
from fsm.model.errors import DefinitionError, SpecError, require_instance, require_int
from fsm.model.stimuli import (
    CONNECTION_STIMULI,
    MESSAGE_STIMULI,
    WRITTEN,
    Aim,
    Outcome,
    Scene,
    Stimulus,
    refusal,
    send_outcomes,
)
from fsm.model.tables import Row, Table
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

__all__ = [
    "LOCAL_ACTIONS",
    "MOST_QUEUED",
    "OVER_REST",
    "SOCKET_ACTIONS",
    "STATE_ORDER",
    "WRITTEN",
    "Fired",
    "Message",
    "Outcome",
    "Stimulus",
    "System",
    "Transition",
    "World",
    "canonical_message",
    "disconnects",
    "initial_world",
]


class Message(NamedTuple):
    """One message slot: the client's view and the server's."""

    #: The message machine's state; ``None`` until the user sends it.
    state: MessageState | None = None
    #: Whether the message is in the client's pending-retry list.
    held: bool = False
    #: How many times the server applied it (capped at 2: a duplicate).
    server: int = 0
    #: REST attempts that failed.
    attempts: int = 0
    #: The server owes a done/toolUse for it on the current socket.
    done_owed: bool = False
    #: WebSocket attempts made at it, where a budget counts them (its send, each
    #: resend; see :attr:`~fsm.model.vocabulary.MessageEvent.attempts_ws`), up to
    #: the budget: past it every failed attempt is the last all the same.
    ws_tries: int = 0
    #: In an ordered queue, how many held messages are ahead of it (0: the oldest).
    ahead: int = 0


class World(NamedTuple):
    """A state of the composed system."""

    connection: ConnectionState
    socket: Socket
    foreground: bool
    network: bool
    messages: tuple[Message, ...]


class Fired(NamedTuple):
    """A table row that a step fired, with the connection state it fired in.

    ``message`` is the index of the message whose machine fired it, ``None``
    for the connection machine.
    """

    machine: str
    row: Row[ConnectionState, ConnectionEvent] | Row[MessageState, MessageEvent]
    connection: ConnectionState
    message: int | None


class Transition(NamedTuple):
    """One step: what happened, to which message, how the world answered, the world after."""

    stimulus: Stimulus
    #: The index of the message the step concerns (0 is the first one sent), if any.
    message: int | None
    #: How the world answered a ``send``; ``None`` for every other stimulus.
    outcome: Outcome | None
    target: World
    fired: tuple[Fired, ...]

    @property
    def label(self) -> tuple[Stimulus, int | None, Outcome | None]:
        return (self.stimulus, self.message, self.outcome)


_STATE_ORDER: dict[MessageState | None, int] = {None: 0} | {
    s: i + 1 for i, s in enumerate(MessageState)
}
_FINAL = frozenset(s for s in MessageState if s.settled)
#: A REST request carrying the message is in flight (:attr:`MessageState.rest_in_flight`).
OVER_REST = frozenset(s for s in MessageState if s.rest_in_flight)

#: Actions whose meaning touches only the message whose row fired them (and so
#: let a message step be memoised per message), and actions that touch only the
#: socket (which let a connection step be memoised while no done is owed): read
#: off each action's :attr:`~fsm.model.vocabulary.Meaning.footprint`.
_LOCAL_ACTIONS = frozenset(a for a in Action if a.meaning.footprint.local)
_SOCKET_ACTIONS = frozenset(a for a in Action if a.meaning.footprint.socket_only)


_MessageKey = tuple[int, bool, int, int, bool, int, int]
_CANON: dict[Message, tuple[_MessageKey, Message]] = {}
_SORTED: dict[tuple[Message, ...], tuple[tuple[Message, ...], tuple[int, ...]]] = {}
#: Both caches hold pure functions of their keys; they are dropped when they
#: reach this size so a long-lived process does not grow without bound.
_CACHE_LIMIT = 1 << 20


def canonical_message(m: Message) -> tuple[_MessageKey, Message]:
    """A sort key for ``m``, and ``m`` with the fields that can no longer matter reset.

    A confirmed or failed message is never sent again, so the number of REST or
    WebSocket attempts it took cannot influence anything that follows.
    """
    hit = _CANON.get(m)
    if hit is None:
        n = m
        if m.state in _FINAL and (m.attempts or m.ws_tries):
            n = m._replace(attempts=0, ws_tries=0)
        key = (_STATE_ORDER[n.state], n.held, n.server, n.attempts, n.done_owed, n.ws_tries)
        hit = ((*key, n.ahead), n)
        _CANON[m] = hit
    return hit


_canonical_message = canonical_message
#: Public names of the tables above, for the explorer's integer encoding.
STATE_ORDER = _STATE_ORDER
LOCAL_ACTIONS = _LOCAL_ACTIONS
SOCKET_ACTIONS = _SOCKET_ACTIONS


class _Step:
    """A mutable scratch copy of a world while one step's effects are applied."""

    __slots__ = ("connection", "fired", "foreground", "messages", "network", "socket", "sys")

    def __init__(self, sys: System, world: World) -> None:
        self.sys = sys
        self.connection = world.connection
        self.socket = world.socket
        self.foreground = world.foreground
        self.network = world.network
        self.messages = list(world.messages)
        self.fired: list[Fired] = []

    def world(self) -> World:
        return World(
            self.connection, self.socket, self.foreground, self.network, tuple(self.messages)
        )

    def kill_socket(self, to: Socket) -> None:
        self.socket = to
        for i, m in enumerate(self.messages):
            if m.done_owed:
                self.messages[i] = m._replace(done_owed=False)

    def deliver(self, i: int, *, over_ws: bool) -> None:
        """A copy of message ``i`` reaches the server: the ``server_receives`` effect;
        over the WebSocket, the server then owes its acknowledgement, if the design
        has acknowledgements."""
        m = self.messages[i]
        server = m.server
        for how in self.sys.server_receives:
            if how == "count" or (how == "once" and server == 0):
                server = min(server + 1, 2)
        owed = m.done_owed or (over_ws and self.sys.acknowledges)
        self.messages[i] = m._replace(server=server, done_owed=owed)

    def accept(self, i: int) -> None:
        """The user sends message ``i``: it becomes pending and the ``accept`` effect runs."""
        self.messages[i] = Message(MessageState.pending)
        for action in self.sys.on_accept:
            self.run(action, i)

    def fire_connection(self, event: ConnectionEvent) -> None:
        row = self.sys.connection.step(self.connection, event)
        self.fired.append(Fired("connection", row, self.connection, None))
        self.connection = row.target
        for action in row.actions:
            self.run(action, None)
        if disconnects(row):
            self.hook(Hook.disconnected)

    def fire_message(self, i: int, event: MessageEvent) -> None:
        m = self.messages[i]
        assert m.state is not None
        row = self.sys.message.step(m.state, event)
        self.fired.append(Fired("message", row, self.connection, i))
        tries = self.sys.behaviour.ws_tries_after(event, m.ws_tries)
        self.messages[i] = m._replace(state=row.target, ws_tries=tries)
        for action in row.actions:
            self.run(action, i)

    def run(self, action: Action, i: int | None) -> None:
        """Carry out ``action``'s :class:`~fsm.model.vocabulary.Meaning`, effect by effect."""
        interpret(action, self, i)

    # -- the effects (fsm.model.vocabulary.ActionInterpreter) ---------------------------
    def set_socket(self, action: Action, to: Socket, at: int | None) -> None:
        self.kill_socket(to)

    def set_held(self, action: Action, value: bool, at: int | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        m = self.messages[at]
        if m.held == value or not self.sys.ordered:
            self.messages[at] = m._replace(held=value)
            return
        # An ordered queue: a message joins at its end, and those behind one that
        # leaves move up.
        if value:
            ahead = sum(other.held for other in self.messages)
            self.messages[at] = m._replace(held=True, ahead=ahead)
            return
        self.messages[at] = m._replace(held=False, ahead=0)
        self.messages = [
            o._replace(ahead=o.ahead - 1) if o.held and o.ahead > m.ahead else o
            for o in self.messages
        ]

    def set_every_held(self, action: Action, value: bool, at: int | None) -> None:
        if self.sys.ordered:
            raise DefinitionError(f"action {action.value!r}: an ordered queue holds one by one")
        self.messages = [m._replace(held=value) if m.held != value else m for m in self.messages]

    def on_each_held(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> None:
        table = self.sys.message
        for k, m in enumerate(self.messages):
            if m.held and m.state is not None and table.allows(m.state, event):
                if over_ws:
                    self.deliver(k, over_ws=True)
                self.fire_message(k, event)

    def server_rule(self, action: Action, how: Literal["count", "once"], at: int | None) -> None:
        """Read where a copy reaches the server (:meth:`deliver`), not run."""

    def count_attempt(self, action: Action, at: int | None) -> None:
        """Read where a REST attempt fails (:meth:`System._after_rest_failure`), not run."""

    def on_each_on_server(self, action: Action, event: MessageEvent, at: int | None) -> None:
        table = self.sys.message
        for k, m in enumerate(self.messages):
            if m.server >= 1 and m.state is not None and table.allows(m.state, event):
                self.fire_message(k, event)

    def on_each(self, action: Action, event: MessageEvent, over_ws: bool, at: int | None) -> None:
        table = self.sys.message
        for k, m in enumerate(self.messages):
            if m.state is not None and table.allows(m.state, event):
                if over_ws:
                    self.deliver(k, over_ws=True)
                self.fire_message(k, event)

    def write_now(self, action: Action, at: int | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        self.write(at)

    def oldest(self) -> int | None:
        """The oldest message of an ordered queue: the held one nothing is ahead of."""
        return next((k for k, m in enumerate(self.messages) if m.held and not m.ahead), None)

    def on_oldest(self, action: Action, event: MessageEvent, over_ws: bool, at: int | None) -> None:
        k = self.oldest()
        if k is None:
            return
        state = self.messages[k].state
        if state is not None and self.sys.message.allows(state, event):
            if over_ws:
                self.deliver(k, over_ws=True)
            self.fire_message(k, event)

    def drain_queue(self, action: Action, at: int | None) -> None:
        k = self.oldest()
        if k is not None and self.messages[k].state is MessageState.pending:
            self.write(k)

    def write(self, i: int) -> None:
        """Write message ``i`` over the WebSocket at once, if the client reports
        connected (see :class:`~fsm.model.vocabulary.WriteNow`)."""
        at = i
        if not self.connection.reports_connected or self.socket is Socket.opening:
            return
        if self.socket is Socket.open:
            self.deliver(at, over_ws=True)
            self.fire_message(at, MessageEvent.resend_ws)
        elif self.socket is Socket.suspended and self.sys.connection.allows(
            self.connection, ConnectionEvent.heartbeat_expired
        ):
            self.fire_message(at, MessageEvent.deadline_buffer)
            self.fire_connection(ConnectionEvent.heartbeat_expired)
        else:
            self.fire_message(at, MessageEvent.resend_ws)

    def fail_ws_attempt(self, action: Action, at: int | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        self.ws_attempt_failed(at)

    def fail_each_unacked(self, action: Action, at: int | None) -> None:
        for k, m in enumerate(self.messages):
            if m.state is MessageState.sent_ws:
                self.ws_attempt_failed(k)

    def ws_attempt_failed(self, i: int) -> None:
        """Message ``i``'s WebSocket attempt failed: fire what the budget rule
        (:meth:`~fsm.model.behaviour.Behaviour.after_ack_failure`) says."""
        m = self.messages[i]
        assert m.state is not None
        self.fire_message(i, self.sys.behaviour.after_ack_failure(m.state, m.ws_tries))

    def hook(self, hook: Hook, i: int | None = None) -> None:
        """Run the design's effect at ``hook`` (if it has one)."""
        for action in self.sys.behaviour.effects.actions(hook):
            self.run(action, i)


#: The most messages an ordered queue is explored with: how far behind the oldest a
#: message can be is part of its code (two bits).
MOST_QUEUED = 4


def disconnects(row: Row[Any, Any]) -> bool:
    """Whether a row is the client's disconnect: a connection row that leaves a state
    that reports connected for one that does not (the ``disconnected`` effect runs)."""
    source, target = row.source, row.target
    return (
        isinstance(source, ConnectionState)
        and isinstance(target, ConnectionState)
        and source.reports_connected
        and not target.reports_connected
    )


def initial_world(messages: int) -> World:
    """The world every run starts from, whatever the design."""
    return World(ConnectionState.idle, Socket.closed, True, True, (Message(),) * messages)


class System:
    """The composed state space of one design in one environment.

    >>> from fsm.model.design import get_design, get_environment
    >>> system = System(get_design("fixed"), get_environment("ios-suspend"), messages=2)
    >>> [t.stimulus.value for t in system.successors(system.initial())]
    ['send', 'connect', 'app_background', 'network_lost']
    """

    def __init__(
        self,
        design: Design,
        environment: Environment,
        messages: int,
        *,
        behaviour: Behaviour | None = None,
    ) -> None:
        """``behaviour`` replaces the one ``design`` selects (a mutant's edited tables,
        say); ``design`` still names the system."""
        require_instance("design", design, Design, "get_design('fixed') gives one")
        require_instance("environment", environment, Environment, "get_environment('half-open')")
        require_int("messages", messages)
        if messages < 1:
            raise SpecError(f"messages must be at least 1, got {messages}")
        self.design = design
        self.environment = environment
        self.n = messages
        self._local: dict[
            tuple[Stimulus, int, Message, ConnectionState], tuple[Message, tuple[Fired, ...]]
        ] = {}
        self._scenes: dict[Scene, tuple[Stimulus, ...]] = {}
        self._aims: dict[tuple[Scene, Aim], tuple[Stimulus, ...]] = {}
        self._outcomes: dict[Scene, tuple[Outcome, ...]] = {}
        self._global: dict[
            tuple[Stimulus, ConnectionState, Socket, bool, bool],
            tuple[ConnectionState, Socket, bool, bool, tuple[Fired, ...]],
        ] = {}
        if behaviour is None:
            try:
                behaviour = select_behaviour(design)
            except DefinitionError as exc:
                raise SpecError(f"design {design.name!r}: {exc}") from None
        self.behaviour: Behaviour = behaviour
        self.connection: Table[ConnectionState, ConnectionEvent] = self.behaviour.connection
        self.message: Table[MessageState, MessageEvent] = self.behaviour.message
        effects = self.behaviour.effects
        #: The ``accept`` effect's actions, and how the server applies a copy
        #: (the ``server_receives`` effect), looked up once.
        self.on_accept = effects.actions(Hook.accept)
        self.server_receives = tuple(
            a.meaning.server
            for a in effects.actions(Hook.server_receives)
            if a.meaning.server is not None
        )
        #: Whether the server owes an acknowledgement for a copy written over the
        #: WebSocket, and what the guards read of the design, looked up once.
        self.acknowledges = self.behaviour.acknowledges
        self.rules = self.behaviour.rules
        #: An ordered queue, and what runs at the end of every step.
        self.ordered = self.behaviour.one_in_flight
        self.at_step_end = self.behaviour.effects.actions(Hook.step_end)
        if self.ordered and messages > MOST_QUEUED:
            raise SpecError(
                f"design {design.name!r}: an ordered queue is explored with at most "
                f"{MOST_QUEUED} messages, got {messages}"
            )

    def initial(self) -> World:
        """The app has just launched: no socket, foreground, network up, nothing sent."""
        return initial_world(self.n)

    @staticmethod
    def canonical(world: World) -> World:
        """The representative of ``world`` under permutations of the messages.

        Messages are interchangeable (the user may send any of them first), so
        sorting them is a sound symmetry reduction; fields that can no longer
        matter are reset too (see :func:`canonical_message`).
        """
        return System.canonical_with_positions(world)[0]

    @staticmethod
    def canonical_with_positions(world: World) -> tuple[World, tuple[int, ...]]:
        """:meth:`canonical`, and where each message went: message ``i`` of
        ``world`` is message ``positions[i]`` of the result."""
        hit = _SORTED.get(world.messages)
        if hit is None:
            if len(_SORTED) >= _CACHE_LIMIT:
                _SORTED.clear()
                _CANON.clear()
            keyed = sorted((*_canonical_message(m), i) for i, m in enumerate(world.messages))
            positions = [0] * len(keyed)
            for new, (_key, _message, old) in enumerate(keyed):
                positions[old] = new
            hit = _SORTED[world.messages] = (
                tuple([entry[1] for entry in keyed]),
                tuple(positions),
            )
        messages, positions_ = hit
        world = World(world.connection, world.socket, world.foreground, world.network, messages)
        return world, positions_

    # -- facts about a single world ----------------------------------------------------
    @staticmethod
    def undelivered(world: World) -> list[int]:
        """Sent messages the server does not have and the user was not told failed.

        Such a message is *lost* when, besides, no continuation of the run
        delivers it or shows it as failed; that needs the reachable graph
        (:meth:`fsm.analysis.explore.Exploration.lost_messages`).
        """
        return [
            i
            for i, m in enumerate(world.messages)
            if m.state is not None and m.server == 0 and m.state is not MessageState.failed
        ]

    @staticmethod
    def duplicated(world: World) -> list[int]:
        return [i for i, m in enumerate(world.messages) if m.server >= 2]

    @staticmethod
    def connected_unacked(world: World) -> bool:
        return world.connection is ConnectionState.connected and world.socket is not Socket.open

    @staticmethod
    def settled(world: World) -> bool:
        """Every message the user sent is confirmed or visibly failed."""
        return all(m.state is None or m.state in _FINAL for m in world.messages)

    @staticmethod
    def unsettled(world: World) -> list[int]:
        """Sent messages that are neither confirmed nor visibly failed."""
        return [i for i, m in enumerate(world.messages) if m.state not in _FINAL and m.state]

    @staticmethod
    def believes_connected(world: World) -> bool:
        return world.connection.reports_connected

    # -- steps ------------------------------------------------------------------------
    def successors(self, world: World, *, up_to_symmetry: bool = False) -> list[Transition]:
        """Every step ``world`` can take.

        With ``up_to_symmetry``, a step aimed at a message is generated once for
        each group of identical messages: aiming it at another member of the
        group reaches the same world with two messages swapped.
        """
        return list(self._successors(world, up_to_symmetry))

    def _successors(self, w: World, up_to_symmetry: bool) -> Iterator[Transition]:
        scene = Scene(w.connection, w.socket, w.foreground, w.network)
        if w.foreground and None in (m.state for m in w.messages):
            yield from self._send(w, scene)
        for stimulus in self._enabled(scene):
            yield self._conn_step(w, stimulus)
        done_before: set[Message] = set()
        for i, m in enumerate(w.messages):
            if up_to_symmetry:
                if m in done_before:
                    continue
                done_before.add(m)
            if m.state is None:
                continue
            for stimulus in self._aimed(scene, Aim.of(m.state, m.done_owed)):
                yield self._message_step(w, i, stimulus)

    def _enabled(self, scene: Scene) -> tuple[Stimulus, ...]:
        """The connection stimuli :data:`~fsm.model.stimuli.ENABLED` allows in ``scene``."""
        hit = self._scenes.get(scene)
        if hit is None:
            env, rules = self.environment, self.rules
            hit = self._scenes[scene] = tuple(
                s for s in CONNECTION_STIMULI if refusal(s, scene, env, rules) is None
            )
        return hit

    def _aimed(self, scene: Scene, aim: Aim) -> tuple[Stimulus, ...]:
        """The stimuli aimed at a message with ``aim`` that ``scene`` allows."""
        key = (scene, aim)
        hit = self._aims.get(key)
        if hit is None:
            env, rules = self.environment, self.rules
            hit = self._aims[key] = tuple(
                s for s in MESSAGE_STIMULI if refusal(s, scene, env, rules, aim) is None
            )
        return hit

    def step(self, world: World, label: tuple[Stimulus, int | None, Outcome | None]) -> Transition:
        """The one step of ``world`` with ``label`` (stimulus, message, outcome), which
        must be among :meth:`successors`; cheaper than listing them all."""
        stimulus, i, outcome = label
        if stimulus is Stimulus.send:
            assert i is not None
            assert outcome is not None
            return self._send_step(world, i, outcome)
        if i is not None:
            return self._message_step(world, i, stimulus)
        return self._conn_step(world, stimulus)

    def _conn_step(self, w: World, stimulus: Stimulus) -> Transition:
        """A step of the connection machine, with what the stimulus does to the
        socket, the app's lifecycle and the network."""
        event = ConnectionEvent[stimulus.name]
        socket: Socket | None = None
        foreground: bool | None = None
        network: bool | None = None
        if stimulus is Stimulus.handshake_ack:
            socket = Socket.open
        elif stimulus is Stimulus.handshake_fail:
            socket = Socket.closed
        elif stimulus is Stimulus.app_background:
            foreground = False
            socket = None if w.socket is Socket.closed else Socket.suspended
        elif stimulus is Stimulus.app_foreground:
            foreground = True
        elif stimulus is Stimulus.network_lost:
            network = False
        elif stimulus is Stimulus.network_restored:
            network = True
        elif stimulus is Stimulus.connection_dropped:
            socket = Socket.half_open
        # While the server owes no done/toolUse, a step whose rows only open or
        # close the socket leaves every message alone: compute it once.
        quiet = not any(m.done_owed for m in w.messages)
        key = (stimulus, w.connection, w.socket, w.foreground, w.network)
        if quiet:
            hit = self._global.get(key)
            if hit is not None:
                c, sock, fg, net, fired = hit
                return Transition(stimulus, None, None, World(c, sock, fg, net, w.messages), fired)
        s = _Step(self, w)
        if foreground is not None:
            s.foreground = foreground
        if network is not None:
            s.network = network
        if socket is not None:
            if socket is Socket.open:
                s.socket = socket
            else:
                s.kill_socket(socket)
        s.fire_connection(event)
        hooked: tuple[Action, ...] = ()
        if event is ConnectionEvent.handshake_ack:
            hooked = self.behaviour.effects.actions(Hook.connection_acknowledged)
            s.hook(Hook.connection_acknowledged)
        s.hook(Hook.step_end)
        hooked += self.at_step_end
        target = s.world()
        fired = tuple(s.fired)
        if any(disconnects(f.row) for f in fired):
            hooked += self.behaviour.effects.actions(Hook.disconnected)
        if (
            quiet
            and set(hooked) <= _SOCKET_ACTIONS
            and all(f.message is None and set(f.row.actions) <= _SOCKET_ACTIONS for f in fired)
        ):
            self._global[key] = (s.connection, s.socket, s.foreground, s.network, fired)
        return Transition(stimulus, None, None, target, fired)

    def _send(self, w: World, scene: Scene) -> Iterator[Transition]:
        i = next(k for k, m in enumerate(w.messages) if m.state is None)
        outcomes = self._outcomes.get(scene)
        if outcomes is None:
            outcomes = self._outcomes[scene] = send_outcomes(scene, self.environment, self.rules)
        for outcome in outcomes:
            yield self._send_step(w, i, outcome)

    def _send_step(self, w: World, i: int, outcome: Outcome) -> Transition:
        s = _Step(self, w)
        s.accept(i)
        if self.ordered and s.messages[i].ahead and outcome in WRITTEN:
            # An ordered queue writes its oldest message first: this one waits.
            s.fire_message(i, MessageEvent.queue)
        else:
            self._answer(s, i, outcome)
        s.hook(Hook.step_end)
        return Transition(Stimulus.send, i, outcome, s.world(), tuple(s.fired))

    @staticmethod
    def _answer(s: _Step, i: int, outcome: Outcome) -> None:
        """What the client does with message ``i`` given the world's answer ``outcome``."""
        if outcome is Outcome.rest_direct:
            s.fire_message(i, MessageEvent.send_rest)
        elif outcome is Outcome.ws_delivered:
            s.deliver(i, over_ws=True)
            s.fire_message(i, MessageEvent.ws_send_ok)
        elif outcome is Outcome.ws_raised:
            s.fire_message(i, MessageEvent.ws_send_failed)
            s.fire_connection(ConnectionEvent.send_failed)
        elif outcome is Outcome.ws_vanished:
            s.fire_message(i, MessageEvent.ws_send_ok)
        elif outcome is Outcome.buffered:
            s.fire_message(i, MessageEvent.buffer)
        elif outcome is Outcome.queued:
            s.fire_message(i, MessageEvent.queue)
        elif outcome is Outcome.refused:
            s.fire_message(i, MessageEvent.refuse)
        else:  # deadline_passed: buffered, and the connection closed
            s.fire_message(i, MessageEvent.deadline_buffer)
            s.fire_connection(ConnectionEvent.heartbeat_expired)

    def _message_step(self, w: World, i: int, stimulus: Stimulus) -> Transition:
        """A step aimed at message ``i`` (done, or a REST outcome).

        When the rows it fires touch no other message, its effect depends only
        on the message and the connection state, so it is computed once and
        reused: most steps of a large exploration are these.
        """
        key = (stimulus, i, w.messages[i], w.connection)
        hit = self._local.get(key)
        if hit is not None:
            message, fired = hit
            messages = (*w.messages[:i], message, *w.messages[i + 1 :])
            return Transition(stimulus, i, None, w._replace(messages=messages), fired)
        s = _Step(self, w)
        hooked: tuple[Action, ...] = ()
        if stimulus is Stimulus.done:
            s.messages[i] = s.messages[i]._replace(done_owed=False)
            s.fire_message(i, MessageEvent.done)
        elif stimulus is Stimulus.rest_ok:
            s.deliver(i, over_ws=False)
            s.fire_message(i, MessageEvent.rest_ok)
            s.hook(Hook.rest_succeeded, i)
            hooked = self.behaviour.effects.actions(Hook.rest_succeeded)
        elif stimulus is Stimulus.ack_timeout:
            # The client stops waiting: a late acknowledgement is ignored.
            s.messages[i] = s.messages[i]._replace(done_owed=False)
            s.hook(Hook.ack_timed_out, i)
            hooked = self.behaviour.effects.actions(Hook.ack_timed_out)
        else:
            if stimulus is Stimulus.rest_lost_response:
                s.deliver(i, over_ws=False)
            s.fire_message(i, self._after_rest_failure(s, i))
        s.hook(Hook.step_end)
        hooked += self.at_step_end
        fired = tuple(s.fired)
        if set(hooked) <= _LOCAL_ACTIONS and all(
            f.message == i and set(f.row.actions) <= _LOCAL_ACTIONS for f in fired
        ):
            self._local[key] = (s.messages[i], fired)
        return Transition(stimulus, i, None, s.world(), fired)

    def _after_rest_failure(self, s: _Step, i: int) -> MessageEvent:
        """Count the failed attempt (the ``rest_attempt_fails`` effect); the message
        event that follows, by :meth:`~fsm.model.behaviour.Behaviour.after_rest_failure`."""
        m = s.messages[i]
        s.messages[i] = m._replace(attempts=m.attempts + 1)
        assert m.state is not None
        return self.behaviour.after_rest_failure(m.state, m.attempts + 1)
