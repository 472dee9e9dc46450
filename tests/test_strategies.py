"""The hypothesis strategies a test author imports."""

from __future__ import annotations

from hypothesis import given, settings

from fsm import Design, System, get_design, get_environment
from fsm import strategies as fst
from fsm.analysis.system import Transition
from fsm.model.tables import CONNECTION, MESSAGE


@settings(max_examples=60, deadline=None)
@given(fst.designs())
def test_every_drawn_design_is_valid_and_builds_both_tables(design: Design) -> None:
    assert Design.model_validate(design.model_dump()) == design
    assert len(CONNECTION.table(design)) > 0
    assert len(MESSAGE.table(design)) > 0


@settings(max_examples=60, deadline=None)
@given(fst.walks("hardened", max_steps=25))
def test_a_walk_is_a_path_of_the_composed_system(walk: list[Transition]) -> None:
    system = System(get_design("hardened"), get_environment("ios-suspend"), 2)
    world = system.initial()
    for step in walk:
        assert step in system.successors(world)
        world = step.target
    assert len(walk) <= 25


@settings(max_examples=30, deadline=None)
@given(fst.walks(get_design("pre-fix"), "half-open", messages=1, max_steps=10))
def test_walks_take_a_design_object_and_an_environment(walk: list[Transition]) -> None:
    system = System(get_design("pre-fix"), get_environment("half-open"), 1)
    world = system.initial()
    for step in walk:
        assert step in system.successors(world)
        assert len(step.target.messages) == 1
        world = step.target


@given(fst.connection_states(), fst.connection_events())
def test_connection_strategies_draw_members_of_the_tables_enums(
    state: object, event: object
) -> None:
    assert state in CONNECTION.states.__members__.values()
    assert event in CONNECTION.events.__members__.values()


@given(fst.message_states(), fst.message_events())
def test_message_strategies_draw_members_of_the_tables_enums(state: object, event: object) -> None:
    assert state in MESSAGE.states.__members__.values()
    assert event in MESSAGE.events.__members__.values()
