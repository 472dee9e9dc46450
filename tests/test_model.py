"""The transition tables as data: vocabulary, per-design selection, definition-time checks."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest

from fsm import (
    DESIGNS,
    FORBIDDEN,
    ConnectionEvent,
    ConnectionState,
    DefinitionError,
    Design,
    ForbiddenTransition,
    MessageEvent,
    MessageState,
    Stimulus,
    get_design,
)
from fsm.model.tables import CONNECTION, ENVIRONMENT_EVENTS, MESSAGE, Cond, MachineSpec, Row
from fsm.model.vocabulary import Action

C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent

SPECS: list[MachineSpec[Any, Any]] = [CONNECTION, MESSAGE]
VOCABULARY: list[type[Enum]] = [
    ConnectionState,
    ConnectionEvent,
    MessageState,
    MessageEvent,
    Action,
    Stimulus,
]


# -- vocabulary ---------------------------------------------------------------------
@pytest.mark.parametrize("enum", VOCABULARY, ids=lambda e: e.__name__)
def test_every_member_has_a_one_line_doc(enum: type[Enum]) -> None:
    for member in enum:
        doc = getattr(member, "doc", None)
        assert isinstance(doc, str), member
        assert doc.strip(), member
        assert "\n" not in doc, member


@pytest.mark.parametrize("enum", VOCABULARY, ids=lambda e: e.__name__)
def test_every_member_value_is_its_name(enum: type[Enum]) -> None:
    """Values appear in traces and design files, so they must match the names in code."""
    for member in enum:
        assert member.value == member.name
        assert str(member) == member.name


def test_stimuli_reuse_the_connection_events_docs() -> None:
    """A stimulus named after a connection event is that event, described the same way."""
    shared = [s for s in Stimulus if s.value in ConnectionEvent._value2member_map_]
    assert len(shared) >= 10
    for stimulus in shared:
        assert stimulus.doc == ConnectionEvent[stimulus.name].doc


# -- the specs themselves -----------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_builtin_specs_validate(spec: MachineSpec[Any, Any]) -> None:
    spec.validate()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_condition_names_a_design_field(spec: MachineSpec[Any, Any]) -> None:
    features = {*get_design("fixed").features(), *Design.derived()}
    for row in spec.rows:
        for cond in row.when:
            assert cond.feature in features, row


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_table_rows_are_keyed_by_source_and_event(spec: MachineSpec[Any, Any], name: str) -> None:
    table = spec.table(get_design(name))
    assert len(table) == len(list(table)) > 0
    for (source, event), row in table.rows.items():
        assert (row.source, row.event) == (source, event)
        assert row.applies(get_design(name))
        assert row.target in table.states


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_table_iterates_in_declaration_order(spec: MachineSpec[Any, Any], name: str) -> None:
    """Diagrams and reports read the table in this order, so it must be stable."""
    table = spec.table(get_design(name))
    rows = list(table)
    states, events = list(table.states), list(table.events)
    keys = [(states.index(r.source), events.index(r.event)) for r in rows]
    assert keys == sorted(keys)
    assert rows == list(spec.table(get_design(name)))


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_environment_events_are_handled_in_every_connection_state(name: str) -> None:
    table = CONNECTION.table(get_design(name))
    for state in ConnectionState:
        for event in ENVIRONMENT_EVENTS:
            assert table.allows(state, event), (state, event)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_table_starts_in_the_initial_state(name: str) -> None:
    design = get_design(name)
    assert CONNECTION.table(design).initial is ConnectionState.idle
    assert MESSAGE.table(design).initial is MessageState.pending


def test_table_step_returns_the_row() -> None:
    table = MESSAGE.table(get_design("fixed"))
    row = table.step(M.sent_ws, ME.done)
    assert row.edge == (M.sent_ws, ME.done, M.confirmed)
    assert Action.release_all in row.actions


def test_table_step_refuses_an_event_with_no_row() -> None:
    table = MESSAGE.table(get_design("fixed"))
    assert not table.allows(M.confirmed, ME.done)
    with pytest.raises(ForbiddenTransition) as info:
        table.step(M.confirmed, ME.done)
    assert info.value.machine == "message"
    assert info.value.state is M.confirmed
    assert info.value.event is ME.done
    assert str(info.value) == "message machine: event 'done' is forbidden in state 'confirmed'"


# -- what the designs' tables say -------------------------------------------------------
def test_pre_fix_sets_connected_on_resume() -> None:
    """The seed's Key Insight: isConnected = true when resume() is called."""
    table = CONNECTION.table(get_design("pre-fix"))
    row = table.step(C.idle, CE.connect)
    assert row.target is C.connected
    assert Action.open_socket in row.actions


def test_hardened_waits_for_the_handshake_ack() -> None:
    table = CONNECTION.table(get_design("hardened"))
    assert table.step(C.idle, CE.connect).target is C.handshaking
    assert table.step(C.handshaking, CE.handshake_ack).target is C.connected


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_background_suspends_a_connected_socket_silently(name: str) -> None:
    table = CONNECTION.table(get_design(name))
    row = table.step(C.connected, CE.app_background)
    assert row.target is C.suspended_stale
    assert row.actions == ()


def test_pre_fix_swallows_a_send_error_on_a_stale_socket() -> None:
    design = get_design("pre-fix")
    assert CONNECTION.table(design).step(C.suspended_stale, CE.send_failed).target is (
        C.suspended_stale
    )
    assert MESSAGE.table(design).step(M.pending, ME.ws_send_failed).target is M.sent_ws


def test_fixed_turns_a_send_error_into_a_disconnect_and_a_rest_retry() -> None:
    design = get_design("fixed")
    row = CONNECTION.table(design).step(C.suspended_stale, CE.send_failed)
    assert row.target is C.disconnected
    assert row.actions == (Action.close_socket, Action.retry_pending_rest, Action.release_all)
    assert MESSAGE.table(design).step(M.pending, ME.ws_send_failed).target is M.pending


def test_hardened_keeps_other_messages_pending_after_a_send_failure() -> None:
    """With own_confirmation, onSendFailed does not clear the whole list."""
    row = CONNECTION.table(get_design("hardened")).step(C.suspended_stale, CE.send_failed)
    assert Action.retry_pending_rest in row.actions
    assert Action.release_all not in row.actions


@pytest.mark.parametrize("name", ["pre-fix", "fixed"])
def test_stale_socket_is_never_detected_without_a_heartbeat(name: str) -> None:
    assert not CONNECTION.table(get_design(name)).allows(C.suspended_stale, CE.ping_timeout)


def test_heartbeat_detects_the_stale_socket() -> None:
    table = CONNECTION.table(get_design("hardened"))
    assert table.step(C.suspended_stale, CE.ping_timeout).target is C.disconnected


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_handshake_ack_without_a_handshake_is_forbidden(name: str) -> None:
    table = CONNECTION.table(get_design(name))
    for state in (C.idle, C.disconnected, C.suspended_stale):
        assert not table.allows(state, CE.handshake_ack)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_final_message_states_take_no_event(name: str) -> None:
    """Confirmed and failed are final; a design that refetches may still receive the late
    done of a message the refetch confirmed, and ignores it (a self-loop, no action)."""
    design = get_design(name)
    table = MESSAGE.table(design)
    assert [e for e in MessageEvent if table.allows(M.failed, e)] == []
    late = [e for e in MessageEvent if table.allows(M.confirmed, e)]
    if design.refetch_after_reconnect:
        assert late == [ME.done]
        row = table.step(M.confirmed, ME.done)
        assert (row.target, row.actions) == (M.confirmed, ())
    else:
        assert late == []


def test_rest_failure_is_retried_only_with_attempts_left() -> None:
    assert not MESSAGE.table(get_design("fixed")).allows(M.retrying_rest, ME.rest_failed)
    hardened = MESSAGE.table(get_design("hardened"))
    assert hardened.step(M.retrying_rest, ME.rest_failed).target is M.retrying_rest


# -- forbidden rules --------------------------------------------------------------------
def test_forbidden_rules_have_unique_ids_and_reasons() -> None:
    ids = [rule.id for rule in FORBIDDEN]
    assert ids == ["F1", "F2", "F3", "F4"]
    for rule in FORBIDDEN:
        assert rule.reason
        assert rule.evidence
        assert rule.machine in ("connection", "message")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pre-fix", {"F1", "F2"}),
        ("fixed", {"F2", "F4"}),
        ("seed-system", {"F2", "F4"}),
        ("hardened", set()),
    ],
)
def test_forbidden_rules_match_the_rows_the_design_has(name: str, expected: set[str]) -> None:
    design = get_design(name)
    found = set()
    for rule in FORBIDDEN:
        spec: MachineSpec[Any, Any] = CONNECTION if rule.machine == "connection" else MESSAGE
        if any(rule.matches_row(row) for row in spec.table(design)):
            found.add(rule.id)
    assert found == expected


def test_f4_is_the_seeds_try_on_the_rest_retry() -> None:
    """F1 one layer down: the REST retry's error is dropped and the message looks sent."""
    rule = next(r for r in FORBIDDEN if r.id == "F4")
    assert "try?" in rule.evidence
    row = MESSAGE.table(get_design("fixed")).step(M.retrying_rest, ME.retries_exhausted)
    assert row.target is M.sent_ws
    assert rule.matches_row(row)
    shown = MESSAGE.table(get_design("hardened")).step(M.retrying_rest, ME.retries_exhausted)
    assert shown.target is M.failed
    assert not rule.matches_row(shown)


def test_f1_applies_only_while_the_socket_is_stale() -> None:
    rule = next(r for r in FORBIDDEN if r.id == "F1")
    row = MESSAGE.table(get_design("pre-fix")).step(M.pending, ME.ws_send_failed)
    assert rule.matches_step(row, C.suspended_stale)
    assert not rule.matches_step(row, C.connected)


# -- definition-time validation ---------------------------------------------------------
def _toy(*rows: Row[MessageState, MessageEvent]) -> MachineSpec[MessageState, MessageEvent]:
    return MachineSpec(
        name="toy",
        states=MessageState,
        events=MessageEvent,
        initial=M.pending,
        rows=rows,
    )


def test_two_rows_for_one_state_and_event_are_rejected() -> None:
    spec = _toy(Row(M.sent_ws, ME.done, M.confirmed), Row(M.sent_ws, ME.done, M.failed))
    with pytest.raises(DefinitionError) as info:
        spec.table(get_design("fixed"))
    message = str(info.value)
    assert "toy machine" in message
    assert "'fixed'" in message
    assert "'done'" in message
    assert "'sent_ws'" in message
    assert "'confirmed'" in message
    assert "'failed'" in message
    assert "exclusive" in message


def test_rows_with_exclusive_conditions_are_one_row_per_design() -> None:
    spec = _toy(
        Row(M.sent_ws, ME.done, M.confirmed, (Cond("heartbeat", "==", True),)),
        Row(M.sent_ws, ME.done, M.failed, (Cond("heartbeat", "==", False),)),
    )
    assert spec.table(get_design("hardened")).step(M.sent_ws, ME.done).target is M.confirmed
    assert spec.table(get_design("fixed")).step(M.sent_ws, ME.done).target is M.failed


def test_a_condition_on_a_number_selects_by_threshold() -> None:
    spec = _toy(
        Row(M.retrying_rest, ME.rest_failed, M.pending, (Cond("max_rest_attempts", ">", 1),))
    )
    assert spec.table(get_design("hardened")).allows(M.retrying_rest, ME.rest_failed)
    assert not spec.table(get_design("fixed")).allows(M.retrying_rest, ME.rest_failed)


def test_missing_environment_event_row_is_rejected() -> None:
    rows = tuple(
        Row(state, CE.app_background, state) for state in ConnectionState if state is not C.idle
    )
    spec: MachineSpec[ConnectionState, ConnectionEvent] = MachineSpec(
        name="toy",
        states=ConnectionState,
        events=ConnectionEvent,
        initial=C.idle,
        rows=rows,
        total_for=frozenset({CE.app_background}),
    )
    with pytest.raises(DefinitionError) as info:
        spec.table(get_design("fixed"))
    message = str(info.value)
    assert "'app_background'" in message
    assert "'idle'" in message
    assert "self-loop" in message


def test_row_conditioned_on_an_unknown_field_fails_validation() -> None:
    spec = _toy(Row(M.sent_ws, ME.done, M.confirmed, (Cond("telepathy", "==", True),)))
    with pytest.raises(DefinitionError) as info:
        spec.validate()
    assert "'telepathy'" in str(info.value)
    assert "not a Design field" in str(info.value)


def test_row_naming_a_state_of_another_machine_fails_validation() -> None:
    wrong: Any = C.connected
    spec = _toy(Row(M.sent_ws, ME.done, wrong))
    with pytest.raises(DefinitionError) as info:
        spec.validate()
    assert "MessageState" in str(info.value)


def test_row_with_an_event_of_another_machine_fails_validation() -> None:
    wrong: Any = CE.connect
    spec = _toy(Row(M.sent_ws, wrong, M.confirmed))
    with pytest.raises(DefinitionError) as info:
        spec.validate()
    assert "MessageEvent" in str(info.value)


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (Cond("heartbeat", "==", True), "heartbeat"),
        (Cond("heartbeat", "==", False), "not heartbeat"),
        (Cond("max_rest_attempts", ">", 1), "max_rest_attempts > 1"),
        (Cond("pending_cleared_on", "!=", "ws_send"), "pending_cleared_on != ws_send"),
    ],
)
def test_conditions_read_as_text(cond: Cond, expected: str) -> None:
    assert str(cond) == expected
