"""Adapters: how a suite drives a system under test.

:class:`SystemUnderTest` is the protocol a test author implements for a real
client (with a fake socket and a fake server around it): reset to the initial
state, apply one step, read back the :class:`~fsm.testing.observation.Observation`.

Three adapters are built in:

``model`` (:class:`ModelAdapter`)
    The composed system itself (:class:`~fsm.analysis.system.System`), or one
    built from an edited :class:`~fsm.model.behaviour.Behaviour` (a mutant).
``transitions`` (:class:`TransitionsAdapter`)
    The design's ``transitions`` machines (:mod:`fsm.model.machines`): one
    connection machine and one machine per message, each row's actions carried
    out by a callback from its :class:`~fsm.model.vocabulary.Meaning`, and its
    own fake socket and server. It shares the tables with the model and nothing
    else, so a suite that replays green through both has been checked by two
    executors.
``reference`` (:class:`fsm.reference.adapter.ReferenceAdapter`, needs the
    ``reference`` extra)
    The real asyncio client, aiohttp server and fault proxy on loopback
    sockets. It is imported only when asked for by name (:data:`LAZY_ADAPTERS`).

How an adapter reads ``outcome``: it is the world's answer, not the client's
choice. ``ws_vanished`` asks a dead socket to swallow a send instead of raising;
every other outcome lets the client pick its transport and the world answer as
it must (an open socket delivers, a dead one raises, REST when not connected).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from types import ModuleType
from typing import Literal, Protocol, runtime_checkable

from typing_extensions import assert_never

from fsm.analysis.system import WRITTEN, Outcome, Stimulus, System, Transition, World
from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design, Environment
from fsm.model.errors import SpecError, StepRefused, UnknownName
from fsm.model.machines import Machine
from fsm.model.stimuli import Aim, Scene, refusal, send_outcomes
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
from fsm.testing.observation import VISIBLE, MessageObservation, Observation, observe

__all__ = [
    "ADAPTERS",
    "LAZY_ADAPTERS",
    "ModelAdapter",
    "StepRefused",
    "SystemUnderTest",
    "TransitionsAdapter",
    "adapter_names",
    "choose",
    "load_adapter",
]


@runtime_checkable
class SystemUnderTest(Protocol):
    """What a suite needs from an implementation (a real client plus fake world).

    ``reset`` starts a fresh client and world: not connected, no message sent.
    ``apply`` makes the world do one step and returns what the client and the
    server then show; ``message`` is an index (0 is ``m1``, the first message the
    user sends). ``apply`` raises :class:`StepRefused` when the step cannot happen;
    any other exception is a failure of the system under test (``fsm replay``
    names the case and step).

    **What an observation reads** (:func:`~fsm.testing.observation.observe`):
    ``connected`` is the client's ``isConnected`` flag, true in the connection
    states ``connected`` and ``suspended_stale`` (a client cannot know its socket
    died), false in ``idle``, ``handshaking`` and ``disconnected``. Each message
    shows ``unsent`` until sent, then ``pending`` (``pending``, or ``buffered``:
    no transport has it yet), ``sent`` (``sent_ws``, ``sending_rest`` or
    ``retrying_rest``: a transport has it and nothing confirmed it),
    ``confirmed`` (``confirmed``) or ``failed`` (``failed``); ``held`` is whether
    it is in the pending-retry list; ``server`` is how many copies the server
    applied, ``2`` meaning two or more.

    **When the fake world may take each step** (as the composed system has it,
    :meth:`~fsm.analysis.system.System.successors`); refuse every other:

    * ``send``: the app is in the foreground and ``message`` is the next unsent
      one, except while the client believes it is connected and its socket is
      still opening (the send awaits the handshake). The world answers it: over
      REST (``rest_direct``) when the client is not connected, delivered
      (``ws_delivered``) into an open socket, raised (``ws_raised``) by a dead
      one; ``ws_vanished`` asks a dead socket to return normally instead, which
      only an environment with ``suspended_sends_vanish`` (suspended socket) or
      ``half_open_sends_vanish`` (half-open socket) allows. A client that is not
      connected does what its design's ``offline_send`` says (``rest_direct``,
      ``buffered``, ``queued`` or ``refused``); one that checks the heartbeat
      deadline at send time buffers the message and closes the connection
      (``deadline_passed``) instead of writing into a suspended socket.
    * ``connect``: the app is in the foreground and the client's table has a
      row for it (it is idle or disconnected).
    * ``handshake_ack``: the socket is opening and the network is up.
    * ``handshake_fail``: the app is in the foreground and the socket is opening,
      or dead (suspended or half-open) while the client is handshaking.
    * ``app_background`` / ``app_foreground``: the app is in the foreground / in
      the background. Going to the background suspends every socket that is not
      closed: an opening, an open and a half-open one alike.
    * ``network_lost`` / ``network_restored``: the network is up / down. The
      client learns of a lost network only through a live socket: its table
      disconnects from ``handshaking`` and ``connected``, and leaves a client
      in ``suspended_stale`` (whose socket is dead) as it was.
    * ``socket_error``: the app is in the foreground, the socket is suspended
      (not half-open), the environment reports suspensions
      (``suspension_reported``) and the client's table has a row (its receive
      loop reports the dead socket).
    * ``connection_dropped``: the environment drops connections silently
      (``silent_drops``), the socket is open and the client's table has a row;
      the socket goes half-open.
    * ``ping_timeout``: the app is in the foreground, the socket is dead
      (suspended or half-open) and the client's table has a row (a heartbeat).
    * ``done`` m: the server owes m's done/toolUse (m reached it over the
      WebSocket) and the socket is open. A socket that dies (closed, suspended,
      half-open) forgets every done it owed.
    * ``rest_ok`` m and ``rest_lost_response`` m: m's REST request is in flight
      (``sending_rest`` or ``retrying_rest``), the app is in the foreground and
      the network is up; both make the server apply a copy. ``rest_error`` m:
      m's request is in flight and the app is in the foreground.
    * ``ack_timeout`` m: the design has an acknowledgement timer, the app is in
      the foreground and the client awaits m's acknowledgement (m is ``sent_ws``
      or ``buffered``).

    A message whose REST request is in flight is not retried: when a failed
    send retries the pending-retry list over REST, a held message in
    ``sending_rest`` or ``retrying_rest`` keeps its one request (no table has a
    ``retry_rest`` row from those states).
    """

    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        """Start over from the initial state; return what the client shows."""
        ...

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        """Make the world do one step; return what the client and server show after it."""
        ...


def choose(
    system: System,
    world: World,
    stimulus: Stimulus,
    message: int | None,
    outcome: Outcome | None,
) -> Transition | None:
    """The step of ``system`` out of ``world`` that ``(stimulus, message, outcome)``
    asks for, or ``None`` if it cannot happen (see the module doc on outcomes)."""
    fallback = None
    for t in system.successors(world):
        if t.stimulus is not stimulus:
            continue
        if message is not None and t.message != message:
            continue
        if t.outcome is outcome:
            return t
        if fallback is None and t.outcome is not Outcome.ws_vanished:
            fallback = t
    return fallback


class ModelAdapter:
    """The composed system as a system under test.

    With ``behaviour``, the system runs those tables and effects instead of the
    design's (how mutants are run); the design still names it.
    """

    name = "model"

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self._behaviour = behaviour
        self._systems: dict[tuple[Design, Environment, int], System] = {}
        self.system: System | None = None
        self.world: World | None = None

    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        key = (design, environment, messages)
        system = self._systems.get(key)
        if system is None:
            system = self._systems[key] = System(
                design, environment, messages, behaviour=self._behaviour
            )
        self.system = system
        self.world = system.initial()
        return observe(self.world)

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        if self.system is None or self.world is None:
            raise StepRefused("apply() before reset()")
        step = choose(self.system, self.world, stimulus, message, outcome)
        if step is None:
            raise StepRefused(_refusal(stimulus, message))
        self.world = step.target
        return observe(self.world)


def _refusal(stimulus: Stimulus, message: int | None) -> str:
    what = stimulus.value if message is None else f"{stimulus.value} m{message + 1}"
    return f"{what} cannot happen here"


class TransitionsAdapter:
    """The design's ``transitions`` machines, with their own fake socket and server.

    Each step is carried out on live :class:`~fsm.model.machines.Machine`
    objects; a row's actions run in the machine's ``after`` callback, effect by
    effect (this class is an :class:`~fsm.model.vocabulary.ActionInterpreter`).
    The world around the client (socket truth, foreground, network, the
    server's copies and owed ``done``s, failed REST attempts) is tracked here,
    independently of :mod:`fsm.analysis.system`; only when a step can happen
    (:data:`fsm.model.stimuli.ENABLED`) and the retry budget rule are shared.
    """

    name = "transitions"

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self._fixed = behaviour
        self.behaviour: Behaviour | None = None

    # -- the protocol -----------------------------------------------------------------
    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        self.behaviour = b = self._fixed if self._fixed is not None else select_behaviour(design)
        self.environment = environment
        self.connection: Machine[ConnectionState, ConnectionEvent] = Machine(
            b.connection, on_fire=self._connection_fired
        )
        self.messages: list[Machine[MessageState, MessageEvent] | None] = [None] * messages
        self.held = [False] * messages
        #: An ordered queue's held messages, oldest first.
        self.queue: list[int] = []
        self.server = [0] * messages
        self.owed = [False] * messages
        self.attempts = [0] * messages
        self.ws_tries = [0] * messages
        self.socket = Socket.closed
        self.foreground = True
        self.network = True
        return self.observation()

    def observation(self) -> Observation:
        return Observation(
            connected=self.connection.state.reports_connected,
            messages=tuple(
                MessageObservation(
                    state=VISIBLE[None if m is None else m.state],
                    held=self.held[i],
                    server=min(self.server[i], 2),
                )
                for i, m in enumerate(self.messages)
            ),
        )

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        b = self.behaviour
        if b is None:
            raise StepRefused("apply() before reset()")
        scene = Scene(self.connection.state, self.socket, self.foreground, self.network)
        if stimulus is Stimulus.send:
            self._on_send(scene, message, outcome)
            self._step_end()
            return self.observation()
        aim = None
        if stimulus.aimed:
            if message is None or not 0 <= message < len(self.messages):
                raise StepRefused(f"{stimulus.value} needs a message")
            machine = self._message(message)
            aim = Aim.of(machine.state, self.owed[message])
        if refusal(stimulus, scene, self.environment, b.rules, aim) is not None:
            raise StepRefused(_refusal(stimulus, message))
        if message is not None and stimulus.aimed:
            self._aimed(stimulus, message)
        else:
            self._world(stimulus)
        self._step_end()
        return self.observation()

    def _step_end(self) -> None:
        assert self.behaviour is not None
        for action in self.behaviour.effects.actions(Hook.step_end):
            interpret(action, self, None)

    def _world(self, stimulus: Stimulus) -> None:
        """A step of the world around the connection (its guard has held)."""
        C = ConnectionEvent
        match stimulus:
            case Stimulus.handshake_ack:
                self.socket = Socket.open
                self.connection.fire(C.handshake_ack)
                assert self.behaviour is not None
                for action in self.behaviour.effects.actions(Hook.connection_acknowledged):
                    interpret(action, self, None)
            case Stimulus.handshake_fail:
                self._kill(Socket.closed)
                self.connection.fire(C.handshake_fail)
            case Stimulus.app_background:
                self.foreground = False
                if self.socket is not Socket.closed:
                    self._kill(Socket.suspended)
                self.connection.fire(C.app_background)
            case Stimulus.app_foreground:
                self.foreground = True
                self.connection.fire(C.app_foreground)
            case Stimulus.network_lost:
                self.network = False
                self.connection.fire(C.network_lost)
            case Stimulus.network_restored:
                self.network = True
                self.connection.fire(C.network_restored)
            case Stimulus.connection_dropped:
                self._kill(Socket.half_open)
                self.connection.fire(C.connection_dropped)
            case Stimulus.connect | Stimulus.socket_error | Stimulus.ping_timeout:
                self.connection.fire(C[stimulus.name])
            case (
                Stimulus.send
                | Stimulus.done
                | Stimulus.rest_ok
                | Stimulus.rest_error
                | Stimulus.rest_lost_response
                | Stimulus.ack_timeout
            ):
                raise StepRefused(f"{stimulus.value} needs a message")
            case _:
                assert_never(stimulus)

    def _aimed(self, stimulus: Stimulus, i: int) -> None:
        """A step aimed at message ``i`` (its guard has held)."""
        machine = self._message(i)
        match stimulus:
            case Stimulus.done:
                self.owed[i] = False
                machine.fire(MessageEvent.done)
            case Stimulus.rest_ok:
                self._deliver(i, over_ws=False)
                machine.fire(MessageEvent.rest_ok)
                assert self.behaviour is not None
                for action in self.behaviour.effects.actions(Hook.rest_succeeded):
                    interpret(action, self, i)
            case Stimulus.rest_lost_response:
                self._deliver(i, over_ws=False)
                self._rest_failed(i)
            case Stimulus.rest_error:
                self._rest_failed(i)
            case Stimulus.ack_timeout:
                self.owed[i] = False  # a late acknowledgement is ignored
                assert self.behaviour is not None
                for action in self.behaviour.effects.actions(Hook.ack_timed_out):
                    interpret(action, self, i)
            case _:
                raise StepRefused(f"{stimulus.value} is not aimed at a message")

    # -- the world's steps ------------------------------------------------------------
    def _kill(self, socket: Socket) -> None:
        self.socket = socket
        self.owed = [False] * len(self.owed)

    def _on_send(self, scene: Scene, message: int | None, outcome: Outcome | None) -> None:
        assert self.behaviour is not None
        unsent = [i for i, m in enumerate(self.messages) if m is None]
        outcomes = send_outcomes(scene, self.environment, self.behaviour.rules)
        if (
            refusal(Stimulus.send, scene, self.environment, self.behaviour.rules)
            or not unsent
            or (message is not None and message != unsent[0])
            or not outcomes  # the send awaits the handshake
        ):
            raise StepRefused(_refusal(Stimulus.send, message))
        i = unsent[0]
        answer = outcome if outcome in outcomes else outcomes[0]

        def fired(row: Row[MessageState, MessageEvent]) -> None:
            self._message_fired(i, row)

        self.messages[i] = Machine(self.behaviour.message, on_fire=fired)
        for action in self.behaviour.effects.actions(Hook.accept):
            interpret(action, self, i)
        machine = self.messages[i]
        assert machine is not None
        if self.behaviour.one_in_flight and self.queue[:1] != [i] and answer in WRITTEN:
            machine.fire(MessageEvent.queue)  # the queue's oldest message goes first
            return
        match answer:
            case Outcome.rest_direct:
                machine.fire(MessageEvent.send_rest)
            case Outcome.ws_delivered:
                self._deliver(i, over_ws=True)
                machine.fire(MessageEvent.ws_send_ok)
            case Outcome.ws_vanished:
                machine.fire(MessageEvent.ws_send_ok)
            case Outcome.ws_raised:
                machine.fire(MessageEvent.ws_send_failed)
                self.connection.fire(ConnectionEvent.send_failed)
            case Outcome.buffered:
                machine.fire(MessageEvent.buffer)
            case Outcome.queued:
                machine.fire(MessageEvent.queue)
            case Outcome.refused:
                machine.fire(MessageEvent.refuse)
            case Outcome.deadline_passed:
                machine.fire(MessageEvent.deadline_buffer)
                self.connection.fire(ConnectionEvent.heartbeat_expired)
            case _:
                assert_never(answer)

    def _message(self, i: int) -> Machine[MessageState, MessageEvent]:
        machine = self.messages[i]
        if machine is None:
            raise StepRefused(f"m{i + 1} was never sent")
        return machine

    def _rest_failed(self, i: int) -> None:
        """The ``rest_attempt_fails`` effect: another attempt below the budget."""
        assert self.behaviour is not None
        self.attempts[i] += 1
        machine = self._message(i)
        machine.fire(self.behaviour.after_rest_failure(machine.state, self.attempts[i]))

    # -- the client's actions, effect by effect (an ActionInterpreter) ----------------
    def _deliver(self, i: int, *, over_ws: bool) -> None:
        assert self.behaviour is not None
        for action in self.behaviour.effects.actions(Hook.server_receives):
            how = action.meaning.server
            if how == "count" or (how == "once" and self.server[i] == 0):
                self.server[i] += 1
        if over_ws and self.behaviour.acknowledges:
            self.owed[i] = True

    def _connection_fired(self, row: Row[ConnectionState, ConnectionEvent]) -> None:
        for action in row.actions:
            interpret(action, self, None)
        # The client's disconnect: it leaves a state that reports connected.
        if row.source.reports_connected and not row.target.reports_connected:
            assert self.behaviour is not None
            for action in self.behaviour.effects.actions(Hook.disconnected):
                interpret(action, self, None)

    def _ws_attempt_failed(self, i: int) -> None:
        """The WebSocket attempt budget rule, on message ``i``."""
        assert self.behaviour is not None
        machine = self._message(i)
        machine.fire(self.behaviour.after_ack_failure(machine.state, self.ws_tries[i]))

    def _message_fired(self, i: int, row: Row[MessageState, MessageEvent]) -> None:
        assert self.behaviour is not None
        self.ws_tries[i] = self.behaviour.ws_tries_after(row.event, self.ws_tries[i])
        for action in row.actions:
            interpret(action, self, i)

    def set_socket(self, action: Action, to: Socket, at: int | None) -> None:
        self._kill(to)

    def set_held(self, action: Action, value: bool, at: int | None) -> None:
        if at is None:
            raise StepRefused(f"{action.value} needs a message")
        self.held[at] = value
        if value and at not in self.queue:
            self.queue.append(at)
        elif not value and at in self.queue:
            self.queue.remove(at)

    def set_every_held(self, action: Action, value: bool, at: int | None) -> None:
        self.held = [value] * len(self.held)
        self.queue = [k for k, m in enumerate(self.messages) if m is not None] if value else []

    def on_each_held(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> None:
        for k, machine in enumerate(self.messages):
            if self.held[k] and machine is not None and machine.may(event):
                if over_ws:
                    self._deliver(k, over_ws=True)
                machine.fire(event)

    def server_rule(self, action: Action, how: Literal["count", "once"], at: int | None) -> None:
        """Read where a copy reaches the server (:meth:`_deliver`)."""

    def count_attempt(self, action: Action, at: int | None) -> None:
        """Read where a REST attempt fails (:meth:`_rest_failed`)."""

    def on_each_on_server(self, action: Action, event: MessageEvent, at: int | None) -> None:
        for k, machine in enumerate(self.messages):
            if self.server[k] >= 1 and machine is not None and machine.may(event):
                machine.fire(event)

    def on_each(self, action: Action, event: MessageEvent, over_ws: bool, at: int | None) -> None:
        for k, machine in enumerate(self.messages):
            if machine is not None and machine.may(event):
                if over_ws:
                    self._deliver(k, over_ws=True)
                machine.fire(event)

    def on_oldest(self, action: Action, event: MessageEvent, over_ws: bool, at: int | None) -> None:
        if not self.queue:
            return
        k = self.queue[0]
        machine = self._message(k)
        if machine.may(event):
            if over_ws:
                self._deliver(k, over_ws=True)
            machine.fire(event)

    def drain_queue(self, action: Action, at: int | None) -> None:
        if self.queue and self._message(self.queue[0]).state is MessageState.pending:
            self._write(self.queue[0])

    def write_now(self, action: Action, at: int | None) -> None:
        """Write message ``at`` over the WebSocket now, if the client reports connected."""
        if at is None:
            raise StepRefused(f"{action.value} needs a message")
        self._write(at)

    def _write(self, at: int) -> None:
        if not self.connection.state.reports_connected or self.socket is Socket.opening:
            return
        machine = self._message(at)
        if self.socket is Socket.open:
            self._deliver(at, over_ws=True)
            machine.fire(MessageEvent.resend_ws)
        elif self.socket is Socket.suspended and self.connection.may(
            ConnectionEvent.heartbeat_expired
        ):
            machine.fire(MessageEvent.deadline_buffer)
            self.connection.fire(ConnectionEvent.heartbeat_expired)
        else:
            machine.fire(MessageEvent.resend_ws)  # into a dead socket: the bytes vanish

    def fail_ws_attempt(self, action: Action, at: int | None) -> None:
        if at is None:
            raise StepRefused(f"{action.value} needs a message")
        self._ws_attempt_failed(at)

    def fail_each_unacked(self, action: Action, at: int | None) -> None:
        for k, machine in enumerate(self.messages):
            if machine is not None and machine.state is MessageState.sent_ws:
                self._ws_attempt_failed(k)


#: The built-in adapters, by the name ``fsm replay --adapter`` takes.
ADAPTERS: dict[str, type[ModelAdapter] | type[TransitionsAdapter]] = {
    "model": ModelAdapter,
    "transitions": TransitionsAdapter,
}

#: Adapters found by name but imported only when asked for, with the extra each needs:
#: ``reference`` is the real client, server and proxy on loopback (aiohttp), which
#: nothing else in :mod:`fsm` imports.
LAZY_ADAPTERS: dict[str, tuple[str, str, str]] = {
    "reference": ("fsm.reference.adapter:ReferenceAdapter", "aiohttp", "reference"),
}


def adapter_names() -> list[str]:
    """Every adapter name ``fsm replay --adapter`` knows."""
    return sorted([*ADAPTERS, *LAZY_ADAPTERS])


def _import_from_here(name: str) -> ModuleType:
    """Import ``name`` with the current folder searched too, after the installed
    packages (``python -m`` searches it; the ``fsm`` script's own folder is not where a
    user's adapter lives)."""
    here = os.getcwd()
    added = here not in sys.path and "" not in sys.path
    if added:
        sys.path.append(here)
    try:
        return importlib.import_module(name)
    finally:
        if added and here in sys.path:
            sys.path.remove(here)


def load_adapter(spec: str) -> SystemUnderTest:
    """A built-in adapter by name, or ``module:Class`` built with no arguments (the
    module found from the current folder too)."""
    if spec in ADAPTERS:
        return ADAPTERS[spec]()
    if spec in LAZY_ADAPTERS:
        target, needs, extra = LAZY_ADAPTERS[spec]
        if importlib.util.find_spec(needs) is None:
            raise SpecError(
                f"adapter {spec!r} needs the {extra!r} extra ({needs}): pip install 'fsm[{extra}]'"
            )
        spec = target
    if ":" not in spec:
        raise UnknownName("adapter", spec, [*adapter_names(), "module:Class"])
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SpecError(f"adapter {spec!r}: give module:Class, both parts non-empty")
    try:
        module = _import_from_here(module_name)
    except ImportError as exc:
        raise SpecError(f"adapter {spec!r}: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the module itself failed while being imported
        raise SpecError(
            f"adapter {spec!r}: importing {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise SpecError(f"adapter {spec!r}: {module_name} has no {attr!r}")
    if not inspect.isclass(cls):
        raise SpecError(
            f"adapter {spec!r}: {attr!r} is a {type(cls).__name__}, not a class "
            "(see SystemUnderTest)"
        )
    try:
        adapter = cls()
    except Exception as exc:
        raise SpecError(
            f"adapter {spec!r}: {attr}() raised {type(exc).__name__}: {exc} "
            "(an adapter is built with no arguments)"
        ) from None
    if not isinstance(adapter, SystemUnderTest):
        raise SpecError(f"adapter {spec!r}: needs reset() and apply() (see SystemUnderTest)")
    return adapter
