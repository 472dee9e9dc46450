"""Live ``transitions`` machines built from a design's tables.

``transitions`` is convenient for driving a real object through the model, but
two of its defaults are wrong for a model whose point is what must *not* happen:

* ``auto_transitions=True`` adds ``to_<state>()`` from every state, i.e. every
  forbidden edge. It is switched off here.
* destinations are checked only when a transition fires. Here every row's
  source and target is resolved against the machine when it is built.

An event with no row in the current state raises
:class:`~fsm.model.errors.ForbiddenTransition` and leaves the state unchanged, whether
the event exists elsewhere in the table or not.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, Generic, TypeVar

import transitions

from fsm.model.design import Design
from fsm.model.errors import DefinitionError, ForbiddenTransition
from fsm.model.tables import CONNECTION, MESSAGE, MachineSpec, Row, Table
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageEvent, MessageState

__all__ = ["Machine", "build_machine", "connection_machine", "message_machine"]

S = TypeVar("S", ConnectionState, MessageState)
E = TypeVar("E", ConnectionEvent, MessageEvent)


class _Model:
    """The object ``transitions`` decorates with ``state`` and trigger methods."""

    state: Any
    trigger: Any


class Machine(Generic[S, E]):
    """One machine instance, driven by events of its table."""

    def __init__(
        self,
        table: Table[S, E],
        initial: S | None = None,
        on_fire: Callable[[Row[S, E]], None] | None = None,
    ) -> None:
        """``on_fire``, if given, is called with each row after it fired (the state
        is already the row's target): the place to carry out the row's actions."""
        self.table: Table[S, E] = table
        self._model = _Model()
        start = table.initial if initial is None else initial
        self.machine = transitions.Machine(
            model=self._model,
            states=list(table.states),
            initial=start,
            auto_transitions=False,
            ignore_invalid_triggers=False,
            send_event=False,
        )
        for row in table:
            for state in (row.source, row.target):
                try:
                    self.machine.get_state(state)
                except ValueError:
                    raise DefinitionError(
                        f"{table.machine} machine: row {row.source}-{row.event}->{row.target} "
                        f"names {state!r}, which is not one of its states"
                    ) from None
            after: list[Callable[..., None]] = [] if on_fire is None else [_callback(on_fire, row)]
            self.machine.add_transition(row.event.value, row.source, row.target, after=list(after))

    @property
    def state(self) -> S:
        state: S = self._model.state
        return state

    def _event(self, event: E | str) -> E:
        """``event`` as a member of this machine's event enum.

        A name of this machine's events is looked up; an event of the other
        machine (or any other type) is a :class:`TypeError`, not a forbidden
        transition: it is a mistake in the caller, not a behaviour of the model.
        """
        events: type[E] = type(self.table.events[0])
        if isinstance(event, events):
            return event
        if isinstance(event, str) and not isinstance(event, Enum):
            for member in events:
                if member.value == event:
                    return member
            known = ", ".join(e.value for e in events)
            raise TypeError(
                f"{self.table.machine} machine: no event named {event!r}; known: {known}"
            )
        raise TypeError(
            f"{self.table.machine} machine takes {events.__name__} events, got {event!r}"
        )

    def may(self, event: E | str) -> bool:
        """Whether ``event`` is allowed in the current state."""
        return self.table.allows(self.state, self._event(event))

    def fire(self, event: E | str) -> S:
        """Take ``event`` (a member or its name); return the new state.

        Raises :class:`ForbiddenTransition` when the current state has no row for
        it (the state is left unchanged), :class:`TypeError` for an event that is
        not one of this machine's.
        """
        event = self._event(event)
        before = self.state
        if event.value not in self.machine.events:
            raise ForbiddenTransition(self.table.machine, before, event)
        try:
            self._model.trigger(event.value)
        except transitions.MachineError:
            raise ForbiddenTransition(self.table.machine, before, event) from None
        return self.state

    def __repr__(self) -> str:
        return f"<{self.table.machine} machine in {self.state.value!r}>"


def _callback(on_fire: Callable[[Row[S, E]], None], row: Row[S, E]) -> Callable[[], None]:
    def fired() -> None:
        on_fire(row)

    return fired


def build_machine(
    spec: MachineSpec[S, E], design: Design, initial: S | None = None
) -> Machine[S, E]:
    """A live machine for ``design``'s selection of ``spec``'s rows."""
    return Machine(spec.table(design), initial)


def connection_machine(
    design: Design, initial: ConnectionState | None = None
) -> Machine[ConnectionState, ConnectionEvent]:
    """A live connection machine for ``design``, in ``initial`` (default ``idle``).

    >>> from fsm.model.design import get_design
    >>> machine = connection_machine(get_design("hardened"))
    >>> machine.fire("connect")
    <ConnectionState.handshaking: 'handshaking'>
    """
    return build_machine(CONNECTION, design, initial)


def message_machine(
    design: Design, initial: MessageState | None = None
) -> Machine[MessageState, MessageEvent]:
    """A live machine for one message of ``design``, in ``initial`` (default ``pending``)."""
    return build_machine(MESSAGE, design, initial)
