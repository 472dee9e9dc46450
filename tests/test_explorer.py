"""The explorer's compact encoding, its memo tables and its progress line.

The checker's verdicts are cross-checked against an independent search in
``test_checker.py``; here the encoding is checked on its own: message codes
sort like the symmetry reduction, every way the explorer learns a step gives
the same graph, and long explorations on a terminal say how far they got.
"""

from __future__ import annotations

import dataclasses
import io
import itertools

import pytest
from conftest import EXAMPLES, design_named
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm import (
    DESIGNS,
    ENVIRONMENTS,
    FORBIDDEN,
    MessageState,
    SpecError,
    StateLimitExceeded,
    System,
)
from fsm.analysis.explore import Exploration, Scope, explore, touches
from fsm.analysis.explore import codec as codec_module
from fsm.analysis.explore import learn as learn_module
from fsm.analysis.explore import search as search_module
from fsm.analysis.properties import PROPERTIES
from fsm.analysis.system import Message, canonical_message
from fsm.model.design import Design, Environment
from fsm.model.forbidden import get_rule
from fsm.strategies import designs
from fsm.testing.mutants import MUTANTS, Mutant


def _graph(ex: Exploration) -> tuple[object, ...]:
    return (
        list(ex.worlds),
        list(ex.parent),
        list(ex.via),
        list(ex.successors),
        list(ex.positions),
        list(ex.unaided),
        ex.transitions,
        {rule: (sid, step.label, step.target) for rule, (sid, step) in ex.rule_hits.items()},
    )


def test_message_codes_sort_like_the_symmetry_reduction() -> None:
    messages = [
        Message(state, held, server, attempts, done, ws_tries)
        for state in [None, *MessageState]
        for held, done in itertools.product((False, True), repeat=2)
        for server in range(3)
        for attempts in range(4)
        for ws_tries in (0, 1, 2, 5)
    ]
    canonical = [canonical_message(m)[1] for m in messages]
    by_key = sorted(canonical, key=lambda m: canonical_message(m)[0])
    by_code = sorted(canonical, key=codec_module.message_code)
    assert by_key == by_code
    assert all(codec_module.decode_message(codec_module.message_code(m)) == m for m in messages)


def test_the_canonical_code_of_every_code_is_the_canonical_messages() -> None:
    codes = codec_module.CANONICAL_CODES.tolist()
    for c in range(codec_module.CODES):
        m = codec_module.decode_message(c)
        if m.server > 2:  # never a message's: the server counts up to a duplicate
            continue
        assert codes[c] == codec_module.message_code(canonical_message(m)[1]), m


def _narrowed(system: System, symmetry: bool, *, loose: bool) -> Exploration:
    """The exploration with the memo tables narrowed: no step learnt one message or
    one pair of messages at a time, and with ``loose`` every step learnt from the
    whole multiset and the whole global part."""
    search = search_module._Search(system, symmetry)
    search.loose = loose
    search.separable = False
    search.spread = False
    return search.run(None, None)


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("symmetry", [True, False])
@pytest.mark.parametrize("loose", [True, False])
def test_every_way_of_learning_a_step_gives_the_same_graph(
    design: str, symmetry: bool, loose: bool
) -> None:
    """With the memo tables narrowed the graph is the one the default explorer finds."""
    system = System(DESIGNS[design], ENVIRONMENTS["half-open"], 3)
    assert _graph(_narrowed(system, symmetry, loose=loose)) == _graph(
        explore(system, symmetry=symmetry)
    )


@pytest.mark.parametrize("design", EXAMPLES)
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_every_way_of_learning_a_step_gives_the_same_graph_for_the_example_designs(
    design: str, environment: str
) -> None:
    """The buffer's flush, the disconnect's failed attempts and the message written again
    decide which steps may be learnt one message at a time; a write that may close the
    connection makes every step learnt on the whole global part."""
    system = System(design_named(design), ENVIRONMENTS[environment], 3)
    default = _graph(explore(system))
    assert _graph(_narrowed(system, True, loose=True)) == default
    if not touches.traits(system).loose:
        assert _graph(_narrowed(system, True, loose=False)) == default


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_every_way_of_learning_a_step_gives_the_same_graph_for_every_mutant(
    mutant: Mutant,
) -> None:
    """Mutants edit rows and effects (a release in a later row, no refetch, ...),
    which decides which steps may be learnt one message at a time."""
    system = System(
        DESIGNS[mutant.base], ENVIRONMENTS["half-open"], 2, behaviour=mutant.behaviour()
    )
    assert _graph(_narrowed(system, True, loose=True)) == _graph(explore(system))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(design=designs(), environment=st.sampled_from(list(ENVIRONMENTS.values())))
def test_every_way_of_learning_a_step_gives_the_same_graph_for_drawn_designs(
    design: Design, environment: Environment
) -> None:
    system = System(design, environment, 2)
    assert _graph(_narrowed(system, True, loose=True)) == _graph(explore(system))


def test_state_of_a_world_outside_the_graph_is_a_key_error() -> None:
    system = System(DESIGNS["fixed"], ENVIRONMENTS["ios-suspend"], 1)
    ex = explore(system, max_states=None)
    world = system.initial()._replace(messages=(Message(MessageState.confirmed, server=2),))
    with pytest.raises(KeyError):
        ex.state_of(world)
    assert ex.state_of(system.initial()) == (0, (0,))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def slow_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that advances one second every time it is read."""
    ticks = itertools.count()
    monkeypatch.setattr(search_module, "_clock", lambda: float(next(ticks)))


@pytest.mark.usefixtures("slow_clock")
def test_a_long_exploration_on_a_terminal_shows_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    system = System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 4)
    states = len(explore(system).worlds)
    text = err.getvalue()
    lines = text.split("\r")
    assert len(lines) > 2
    assert lines[-1].startswith(f"exploring: {states:,} states, ")
    assert "states/s, " in lines[-1]
    assert lines[-1].endswith(" s\x1b[K\n")
    assert text.count("\n") == 1


@pytest.mark.usefixtures("slow_clock")
def test_no_progress_line_off_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    explore(System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 4))
    assert err.getvalue() == ""


def test_no_progress_line_for_a_quick_exploration(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(search_module, "_clock", lambda: 0.0)
    explore(System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 4))
    assert err.getvalue() == ""


@pytest.mark.usefixtures("slow_clock")
def test_max_states_stops_cleanly_under_a_progress_line(monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    with pytest.raises(StateLimitExceeded):
        explore(System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 4), max_states=20_000)
    assert err.getvalue().endswith("\n")
    assert "exploring: 20,000 states" in err.getvalue()


@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
def test_the_fast_scans_of_a_scope_agree_with_a_scan_of_every_world(
    design: str, environment: str
) -> None:
    """An invariant read off each kind of message, or off the global part alone,
    finds the first state and flags the states a scan of every world does."""
    ex = explore(System(DESIGNS[design], ENVIRONMENTS[environment], 3))
    scopes = []
    for prop in PROPERTIES:
        if prop.violated is None:
            continue
        scopes.append(prop.scope)
        on_world = prop.scope.on_world(prop.violated)
        full = [on_world(w) for w in ex.worlds]
        assert ex.first(prop.violated, prop.scope) == ex.first(on_world, Scope.world)
        assert ex.first(on_world) == (full.index(True) if True in full else None)
        assert list(ex.states_where(prop.violated, prop.scope)) == full
        assert prop.bad_states is not None
        assert list(prop.bad_states(ex)) == full
    assert sorted(s.name for s in scopes) == ["globals", "message"]


def test_per_state_flags_read_like_lists() -> None:
    ex = explore(System(DESIGNS["pre-fix"], ENVIRONMENTS["ios-suspend"], 3))
    lost = [bool(messages) for messages in ex.lost_by_state]
    flags = ex.lost_states()
    assert list(flags) == lost
    assert flags[3:9] == lost[3:9]
    assert [flags[-1], flags[0]] == [lost[-1], lost[0]]
    assert True in lost
    assert flags.index(True) == lost.index(True)
    first = lost.index(True)
    assert flags.index(True, first + 1) == lost.index(True, first + 1)
    assert flags.index(lost[-3], -5) == lost.index(lost[-3], -5)
    with pytest.raises(ValueError, match="not in"):
        flags.index(True, 0, first)
    settle = ex.can_settle()
    stuck = ex.cannot_settle_states()
    assert [not s for s in settle] == list(stuck)
    assert len(settle) == len(ex.worlds)


@pytest.mark.parametrize("rules", [8, 9, 17, 33, 64])
def test_many_forbidden_rules_are_all_tracked(monkeypatch: pytest.MonkeyPatch, rules: int) -> None:
    """Copies of F2 appended to the rules, past every width of the hit masks:
    each copy is first broken exactly where F2 is."""
    f2 = get_rule("F2")
    copies = tuple(dataclasses.replace(f2, id=f"F2-copy{k}") for k in range(rules - len(FORBIDDEN)))
    monkeypatch.setattr(learn_module, "FORBIDDEN", FORBIDDEN + copies)
    system = System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 2)
    hits = explore(system).rule_hits
    assert "F2" in hits
    sid, step = hits["F2"]
    assert sorted(hits) == sorted(["F2", "F4", *(c.id for c in copies)])
    for copy in copies:
        assert hits[copy.id][0] == sid
        assert hits[copy.id][1] == step


def test_more_forbidden_rules_than_the_masks_hold_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f2 = get_rule("F2")
    copies = tuple(dataclasses.replace(f2, id=f"F2-copy{k}") for k in range(65 - len(FORBIDDEN)))
    monkeypatch.setattr(learn_module, "FORBIDDEN", FORBIDDEN + copies)
    system = System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 2)
    with pytest.raises(
        SpecError, match=r"^the explorer tracks at most 64 forbidden rules, got 65$"
    ):
        explore(system)


@pytest.mark.parametrize("design", list(DESIGNS))
def test_every_step_keeps_the_label_system_successors_gives_it(design: str) -> None:
    """Each step's label names the transition System.successors lists at its
    place, and that transition leads to the step's target."""
    system = System(DESIGNS[design], ENVIRONMENTS["half-open"], 2)
    ex = explore(system)
    labels = set()
    for sid, world in enumerate(ex.worlds):
        steps = ex.steps(sid)
        expected = system.successors(world, up_to_symmetry=True)
        assert [s.label for s in steps] == [t.label for t in expected]
        assert [s.target for s in steps] == ex.successors[sid]
        assert [s.positions for s in steps] == ex.positions[sid]
        assert [s.target for s in steps if not s.user] == ex.unaided[sid]
        for step, t in zip(steps, expected, strict=True):
            assert ex.worlds[step.target] == System.canonical(t.target)
            assert system.step(world, step.label) == t
            labels.add(step.label[0])
    assert len(labels) > 8
