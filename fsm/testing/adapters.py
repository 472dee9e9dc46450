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
from typing import Protocol, runtime_checkable

from fsm.analysis.system import Outcome, Stimulus, System, Transition, World
from fsm.model.behaviour import Behaviour, behaviour
from fsm.model.design import Design, Environment
from fsm.model.errors import FsmError, SpecError, UnknownName
from fsm.model.machines import Machine
from fsm.model.tables import Row
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
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


class StepRefused(FsmError):
    """The system under test cannot take a step the suite asks for (a ``done`` for a
    message the server never received, a REST answer with no request in flight)."""


@runtime_checkable
class SystemUnderTest(Protocol):
    """What a suite needs from an implementation (a real client plus fake world).

    ``message`` is an index: 0 is the first message the user sent (``m1``).
    ``apply`` raises :class:`StepRefused` when the step cannot happen.
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


_DEAD = frozenset({Socket.suspended, Socket.half_open})
_OVER_REST = frozenset({MessageState.sending_rest, MessageState.retrying_rest})


class TransitionsAdapter:
    """The design's ``transitions`` machines, with their own fake socket and server.

    Each step is carried out on live :class:`~fsm.model.machines.Machine`
    objects; a row's actions run in the machine's ``after`` callback, from each
    action's :class:`~fsm.model.vocabulary.Meaning`. The world around the
    client (socket truth, foreground, network, the server's copies and owed
    ``done``s, failed REST attempts) is tracked here, independently of
    :mod:`fsm.analysis.system`.
    """

    name = "transitions"

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self._fixed = behaviour
        self.behaviour: Behaviour | None = None

    # -- the protocol -----------------------------------------------------------------
    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        self.behaviour = b = self._fixed if self._fixed is not None else behaviour(design)
        self.environment = environment
        self.connection: Machine[ConnectionState, ConnectionEvent] = Machine(
            b.connection, on_fire=self._connection_fired
        )
        self.messages: list[Machine[MessageState, MessageEvent] | None] = [None] * messages
        self.held = [False] * messages
        self.server = [0] * messages
        self.owed = [False] * messages
        self.attempts = [0] * messages
        self.socket = Socket.closed
        self.foreground = True
        self.network = True
        return self.observation()

    def observation(self) -> Observation:
        connected = self.connection.state in (
            ConnectionState.connected,
            ConnectionState.suspended_stale,
        )
        return Observation(
            connected=connected,
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
        if self.behaviour is None:
            raise StepRefused("apply() before reset()")
        handler = getattr(self, f"_on_{stimulus.value}")
        if stimulus in _MESSAGE_STIMULI:
            if message is None or not 0 <= message < len(self.messages):
                raise StepRefused(f"{stimulus.value} needs a message")
            handler(message)
        elif stimulus is Stimulus.send:
            self._on_send(message, outcome)
        else:
            handler()
        return self.observation()

    # -- the world's steps ------------------------------------------------------------
    def _refuse(self, stimulus: Stimulus, message: int | None = None) -> StepRefused:
        return StepRefused(_refusal(stimulus, message))

    def _allows(self, event: ConnectionEvent) -> bool:
        return self.connection.may(event)

    def _kill(self, socket: Socket) -> None:
        self.socket = socket
        self.owed = [False] * len(self.owed)

    def _on_send(self, message: int | None, outcome: Outcome | None) -> None:
        unsent = [i for i, m in enumerate(self.messages) if m is None]
        if not self.foreground or not unsent or (message is not None and message != unsent[0]):
            raise self._refuse(Stimulus.send, message)
        i = unsent[0]
        believes = self.connection.state in (
            ConnectionState.connected,
            ConnectionState.suspended_stale,
        )
        if believes and self.socket is Socket.opening:
            raise self._refuse(Stimulus.send, message)  # the send awaits the handshake
        assert self.behaviour is not None

        def fired(row: Row[MessageState, MessageEvent]) -> None:
            self._message_fired(i, row)

        self.messages[i] = Machine(self.behaviour.message, on_fire=fired)
        for action in self.behaviour.effects.actions(Hook.accept):
            self._run(action, i)
        machine = self.messages[i]
        assert machine is not None
        if not believes:
            machine.fire(MessageEvent.send_rest)
        elif self.socket is Socket.open:
            self._deliver(i, over_ws=True)
            machine.fire(MessageEvent.ws_send_ok)
        elif outcome is Outcome.ws_vanished and self._may_vanish():
            machine.fire(MessageEvent.ws_send_ok)
        else:
            machine.fire(MessageEvent.ws_send_failed)
            self.connection.fire(ConnectionEvent.send_failed)

    def _may_vanish(self) -> bool:
        env = self.environment
        return (self.socket is Socket.half_open and env.half_open_sends_vanish) or (
            self.socket is Socket.suspended and env.suspended_sends_vanish
        )

    def _on_connect(self) -> None:
        if not self.foreground or not self._allows(ConnectionEvent.connect):
            raise self._refuse(Stimulus.connect)
        self.connection.fire(ConnectionEvent.connect)

    def _on_handshake_ack(self) -> None:
        if self.socket is not Socket.opening or not self.network:
            raise self._refuse(Stimulus.handshake_ack)
        self.socket = Socket.open
        self.connection.fire(ConnectionEvent.handshake_ack)
        assert self.behaviour is not None
        for action in self.behaviour.effects.actions(Hook.connection_acknowledged):
            self._run(action, None)

    def _on_handshake_fail(self) -> None:
        dead_handshake = (
            self.socket in _DEAD and self.connection.state is ConnectionState.handshaking
        )
        if not self.foreground or not (self.socket is Socket.opening or dead_handshake):
            raise self._refuse(Stimulus.handshake_fail)
        self._kill(Socket.closed)
        self.connection.fire(ConnectionEvent.handshake_fail)

    def _on_app_background(self) -> None:
        if not self.foreground:
            raise self._refuse(Stimulus.app_background)
        self.foreground = False
        if self.socket is not Socket.closed:
            self._kill(Socket.suspended)
        self.connection.fire(ConnectionEvent.app_background)

    def _on_app_foreground(self) -> None:
        if self.foreground:
            raise self._refuse(Stimulus.app_foreground)
        self.foreground = True
        self.connection.fire(ConnectionEvent.app_foreground)

    def _on_network_lost(self) -> None:
        if not self.network:
            raise self._refuse(Stimulus.network_lost)
        self.network = False
        self.connection.fire(ConnectionEvent.network_lost)

    def _on_network_restored(self) -> None:
        if self.network:
            raise self._refuse(Stimulus.network_restored)
        self.network = True
        self.connection.fire(ConnectionEvent.network_restored)

    def _on_socket_error(self) -> None:
        if (
            not self.foreground
            or self.socket is not Socket.suspended
            or not self._allows(ConnectionEvent.socket_error)
        ):
            raise self._refuse(Stimulus.socket_error)
        self.connection.fire(ConnectionEvent.socket_error)

    def _on_connection_dropped(self) -> None:
        if (
            not self.environment.silent_drops
            or self.socket is not Socket.open
            or not self._allows(ConnectionEvent.connection_dropped)
        ):
            raise self._refuse(Stimulus.connection_dropped)
        self._kill(Socket.half_open)
        self.connection.fire(ConnectionEvent.connection_dropped)

    def _on_ping_timeout(self) -> None:
        if (
            not self.foreground
            or self.socket not in _DEAD
            or not self._allows(ConnectionEvent.ping_timeout)
        ):
            raise self._refuse(Stimulus.ping_timeout)
        self.connection.fire(ConnectionEvent.ping_timeout)

    def _message(self, i: int) -> Machine[MessageState, MessageEvent]:
        machine = self.messages[i]
        if machine is None:
            raise StepRefused(f"m{i + 1} was never sent")
        return machine

    def _on_done(self, i: int) -> None:
        machine = self._message(i)
        if not self.owed[i] or self.socket is not Socket.open:
            raise self._refuse(Stimulus.done, i)
        self.owed[i] = False
        machine.fire(MessageEvent.done)

    def _rest_in_flight(self, i: int, stimulus: Stimulus, needs_network: bool) -> None:
        machine = self._message(i)
        if (
            machine.state not in _OVER_REST
            or not self.foreground
            or (needs_network and not self.network)
        ):
            raise self._refuse(stimulus, i)

    def _on_rest_ok(self, i: int) -> None:
        self._rest_in_flight(i, Stimulus.rest_ok, needs_network=True)
        self._deliver(i, over_ws=False)
        self._message(i).fire(MessageEvent.rest_ok)
        assert self.behaviour is not None
        for action in self.behaviour.effects.actions(Hook.rest_succeeded):
            self._run(action, i)

    def _on_rest_error(self, i: int) -> None:
        self._rest_in_flight(i, Stimulus.rest_error, needs_network=False)
        self._rest_failed(i)

    def _on_rest_lost_response(self, i: int) -> None:
        self._rest_in_flight(i, Stimulus.rest_lost_response, needs_network=True)
        self._deliver(i, over_ws=False)
        self._rest_failed(i)

    def _rest_failed(self, i: int) -> None:
        """The ``rest_attempt_fails`` effect: another attempt below the budget."""
        assert self.behaviour is not None
        effects = self.behaviour.effects
        self.attempts[i] += 1
        machine = self._message(i)
        event = MessageEvent.retries_exhausted
        budget = effects.param(Hook.rest_attempt_fails)
        for action in effects.actions(Hook.rest_attempt_fails):
            if (
                action.meaning.budget
                and budget is not None
                and self.attempts[i] < budget
                and machine.may(MessageEvent.rest_failed)
            ):
                event = MessageEvent.rest_failed
        machine.fire(event)

    # -- the client's actions, from their Meaning -------------------------------------
    def _deliver(self, i: int, *, over_ws: bool) -> None:
        assert self.behaviour is not None
        for action in self.behaviour.effects.actions(Hook.server_receives):
            how = action.meaning.server
            if how == "count" or (how == "once" and self.server[i] == 0):
                self.server[i] += 1
        if over_ws:
            self.owed[i] = True

    def _connection_fired(self, row: Row[ConnectionState, ConnectionEvent]) -> None:
        for action in row.actions:
            self._run(action, None)

    def _message_fired(self, i: int, row: Row[MessageState, MessageEvent]) -> None:
        for action in row.actions:
            self._run(action, i)

    def _run(self, action: Action, i: int | None) -> None:
        meaning = action.meaning
        if meaning.socket is not None:
            self._kill(meaning.socket)
        if meaning.hold is not None:
            assert i is not None, f"{action.value} needs a message"
            self.held[i] = meaning.hold
        if meaning.hold_all is not None:
            self.held = [meaning.hold_all] * len(self.held)
        if meaning.each_held is not None:
            for k, machine in enumerate(self.messages):
                if self.held[k] and machine is not None and machine.may(meaning.each_held):
                    if meaning.over_ws:
                        self._deliver(k, over_ws=True)
                    machine.fire(meaning.each_held)
        if meaning.each_on_server is not None:
            for k, machine in enumerate(self.messages):
                if (
                    self.server[k] >= 1
                    and machine is not None
                    and machine.may(meaning.each_on_server)
                ):
                    machine.fire(meaning.each_on_server)


_MESSAGE_STIMULI = frozenset(
    {Stimulus.done, Stimulus.rest_ok, Stimulus.rest_error, Stimulus.rest_lost_response}
)

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


def load_adapter(spec: str) -> SystemUnderTest:
    """A built-in adapter by name, or ``module:Class`` built with no arguments."""
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
        module = importlib.import_module(module_name)
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
