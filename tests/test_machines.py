"""The live ``transitions`` machines against the tables they are built from."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsm import (
    DESIGNS,
    ConnectionEvent,
    ConnectionState,
    DefinitionError,
    ForbiddenTransition,
    Machine,
    MessageEvent,
    MessageState,
    get_design,
)
from fsm.model.machines import build_machine, connection_machine, message_machine
from fsm.model.tables import CONNECTION, MESSAGE, MachineSpec, Row, Table

SPECS: list[MachineSpec[Any, Any]] = [CONNECTION, MESSAGE]
CASES = [(spec, name) for name in sorted(DESIGNS) for spec in SPECS]
CASE_IDS = [f"{name}-{spec.name}" for spec, name in CASES]


def _rows() -> list[tuple[MachineSpec[Any, Any], str, Row[Any, Any]]]:
    return [(spec, name, row) for spec, name in CASES for row in spec.table(get_design(name))]


ROWS = _rows()
ROW_IDS = [
    f"{name}-{spec.name}-{row.source.value}-{row.event.value}-{row.target.value}"
    for spec, name, row in ROWS
]


@pytest.mark.parametrize(("spec", "name", "row"), ROWS, ids=ROW_IDS)
def test_every_allowed_transition_lands_in_its_target(
    spec: MachineSpec[Any, Any], name: str, row: Row[Any, Any]
) -> None:
    machine = build_machine(spec, get_design(name), initial=row.source)
    assert machine.state is row.source
    assert machine.may(row.event)
    assert machine.fire(row.event) is row.target
    assert machine.state is row.target


@pytest.mark.parametrize(("spec", "name"), CASES, ids=CASE_IDS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_every_state_and_event_either_follows_the_table_or_is_refused(
    spec: MachineSpec[Any, Any], name: str, data: st.DataObject
) -> None:
    """h2-style: any (state, event) pair follows the table, or raises and changes nothing."""
    table = spec.table(get_design(name))
    state = data.draw(st.sampled_from(table.states), label="state")
    event = data.draw(st.sampled_from(table.events), label="event")
    machine = Machine(table, initial=state)
    if table.allows(state, event):
        assert machine.fire(event) is table.rows[(state, event)].target
    else:
        with pytest.raises(ForbiddenTransition) as info:
            machine.fire(event)
        error = info.value
        assert error.machine == spec.name
        assert error.state is state
        assert error.event is event
        message = str(error)
        assert spec.name in message
        assert repr(state.value) in message
        assert repr(event.value) in message
        assert machine.state is state
        assert not machine.may(event)


@pytest.mark.parametrize(("spec", "name"), CASES, ids=CASE_IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_machine_and_table_agree_step_by_step(
    spec: MachineSpec[Any, Any], name: str, data: st.DataObject
) -> None:
    """On any event sequence, the ``transitions`` machine and the table refuse or move together."""
    table = spec.table(get_design(name))
    start = data.draw(st.sampled_from(table.states), label="start")
    events = data.draw(st.lists(st.sampled_from(table.events), max_size=40), label="events")
    machine = Machine(table, initial=start)
    state = start
    for event in events:
        try:
            expected = table.step(state, event).target
        except ForbiddenTransition:
            expected = None
        if expected is None:
            with pytest.raises(ForbiddenTransition):
                machine.fire(event)
        else:
            assert machine.fire(event) is expected
            state = expected
        assert machine.state is state


@pytest.mark.parametrize(("spec", "name"), CASES, ids=CASE_IDS)
def test_auto_transitions_are_off(spec: MachineSpec[Any, Any], name: str) -> None:
    """``transitions`` would otherwise add a ``to_<state>()`` edge from every state."""
    machine = build_machine(spec, get_design(name))
    events = set(machine.machine.events)
    assert events <= {e.value for e in spec.events}
    assert not any(event.startswith("to_") for event in events)
    for state in spec.states:
        assert not hasattr(machine, f"to_{state.value}")
        for model in machine.machine.models:
            assert not hasattr(model, f"to_{state.value}")


def test_there_is_no_way_to_jump_to_connected() -> None:
    machine = connection_machine(get_design("hardened"))
    assert not hasattr(machine, "to_connected")
    assert "to_connected" not in machine.machine.events
    assert all(not hasattr(m, "to_connected") for m in machine.machine.models)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_machines_start_in_the_initial_state(name: str) -> None:
    assert connection_machine(get_design(name)).state is ConnectionState.idle
    assert message_machine(get_design(name)).state is MessageState.pending


def test_event_missing_from_the_whole_table_is_forbidden() -> None:
    """ping_timeout has no row at all without a heartbeat; it is refused like any other."""
    machine = connection_machine(get_design("fixed"), ConnectionState.suspended_stale)
    assert "ping_timeout" not in machine.machine.events
    with pytest.raises(ForbiddenTransition) as info:
        machine.fire(ConnectionEvent.ping_timeout)
    assert info.value.state is ConnectionState.suspended_stale
    assert machine.state is ConnectionState.suspended_stale


def test_send_on_stale_socket_is_swallowed_before_the_fix_and_disconnects_after() -> None:
    stale = ConnectionState.suspended_stale
    before = connection_machine(get_design("pre-fix"), stale)
    assert before.fire(ConnectionEvent.send_failed) is stale
    after = connection_machine(get_design("fixed"), stale)
    assert after.fire(ConnectionEvent.send_failed) is ConnectionState.disconnected


def test_confirmed_message_cannot_be_confirmed_again() -> None:
    machine = message_machine(get_design("hardened"), MessageState.confirmed)
    with pytest.raises(ForbiddenTransition, match="forbidden in state 'confirmed'"):
        machine.fire(MessageEvent.rest_ok)
    assert machine.state is MessageState.confirmed


def test_a_message_walks_from_pending_to_confirmed() -> None:
    machine = message_machine(get_design("fixed"))
    assert machine.fire(MessageEvent.ws_send_ok) is MessageState.sent_ws
    assert machine.fire(MessageEvent.retry_rest) is MessageState.retrying_rest
    assert machine.fire(MessageEvent.rest_ok) is MessageState.confirmed


def test_repr_names_machine_and_state() -> None:
    machine = connection_machine(get_design("fixed"))
    assert repr(machine) == "<connection machine in 'idle'>"


def test_table_naming_an_unknown_state_cannot_become_a_machine() -> None:
    """Destinations are resolved when the machine is built, not when a row first fires."""
    row: Row[MessageState, MessageEvent] = Row(
        MessageState.pending, MessageEvent.ws_send_ok, MessageState.confirmed
    )
    table: Table[MessageState, MessageEvent] = Table(
        machine="toy",
        initial=MessageState.pending,
        states=(MessageState.pending, MessageState.sent_ws),
        events=tuple(MessageEvent),
        rows={(row.source, row.event): row},
    )
    with pytest.raises(DefinitionError) as info:
        Machine(table)
    assert "toy machine" in str(info.value)
    assert "confirmed" in str(info.value)
