"""The checker's verdicts, counterexamples and reports.

Every finding here comes out of the search; the independent breadth-first
search of ``conftest.py`` (no symmetry reduction) cross-checks the verdicts and
the length of every counterexample.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from conftest import EXAMPLES, design_named

from fsm import (
    DESIGNS,
    ENVIRONMENTS,
    PROPERTIES,
    Design,
    MessageState,
    StateLimitExceeded,
    Stimulus,
    System,
    Verdict,
    check,
    get_design,
    get_environment,
    load_design,
)
from fsm.analysis.ablation import ablate
from fsm.analysis.explore import explore
from fsm.analysis.questions import Dependence, send_dependence
from fsm.analysis.report import CheckReport, PropertyResult, StepView
from fsm.analysis.system import Outcome, World
from fsm.analysis.trace import Trace

if TYPE_CHECKING:
    from conftest import ConcreteGraph, Graphs, Replayer, RuleMatcher, SpecWriter

CASES = list(itertools.product(sorted(DESIGNS), sorted(ENVIRONMENTS)))
CASE_IDS = [f"{d}-{e}" for d, e in CASES]
#: The built-in designs and the example designs of real client libraries.
EVERY = list(itertools.product([*sorted(DESIGNS), *EXAMPLES], sorted(ENVIRONMENTS)))
EVERY_IDS = [f"{d}-{e}" for d, e in EVERY]


def report(design: str, environment: str = "ios-suspend", messages: int = 2) -> CheckReport:
    return check(get_design(design), get_environment(environment), messages).report()


def _variant(base: str, **changes: object) -> Design:
    return Design.model_validate({**get_design(base).model_dump(), "name": "variant", **changes})


def events(trace: list[StepView]) -> list[str]:
    return [step.event for step in trace]


def in_order(sequence: list[str], *wanted: str) -> bool:
    """Whether ``wanted`` occurs in ``sequence`` as a (not necessarily contiguous) subsequence."""
    it = iter(sequence)
    return all(any(item == w for item in it) for w in wanted)


def typed_trace(result: Verdict) -> Trace:
    assert not result.holds
    assert result.trace is not None
    assert result.trace.steps
    return result.trace


def counterexample(result: PropertyResult) -> list[StepView]:
    assert not result.holds
    assert result.counterexample is not None
    assert result.counterexample
    return result.counterexample


# -- the seed bug -----------------------------------------------------------------------
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_pre_fix_violates_no_silent_loss_and_takes_a_forbidden_transition(
    environment: str,
) -> None:
    r = report("pre-fix", environment)
    assert not r.holds
    assert not r.property("no-silent-loss").holds
    assert not r.property("no-forbidden-transition").holds


def test_pre_fix_loss_is_the_seed_sequence() -> None:
    """Background, foreground, send: the message goes into the suspended socket and is lost."""
    r = report("pre-fix", "ios-suspend")
    f1 = next(rule for rule in r.forbidden if rule.id == "F1")
    assert f1.reachable
    assert f1.counterexample is not None
    for trace in (counterexample(r.property("no-silent-loss")), f1.counterexample):
        assert in_order(events(trace), "app_background", "app_foreground", "send")
        last = trace[-1]
        assert last.event == "send"
        assert last.connection == "suspended_stale"
        lost = next(m for m in last.messages if m.id == last.message)
        assert (lost.state, lost.on_server, lost.held) == ("sent_ws", 0, False)


def test_pre_fix_also_loses_a_send_into_a_half_open_socket() -> None:
    trace = counterexample(report("pre-fix", "half-open").property("no-silent-loss"))
    last = trace[-1]
    assert last.event == "send"
    assert last.connection == "suspended_stale"
    lost = next(m for m in last.messages if m.id == last.message)
    assert (lost.state, lost.on_server) == ("sent_ws", 0)


def test_pre_fix_f1_is_in_the_table_and_reached() -> None:
    f1 = next(rule for rule in report("pre-fix").forbidden if rule.id == "F1")
    assert f1.edges == ["pending -ws_send_failed-> sent_ws"]
    assert f1.counterexample is not None
    assert any(
        (f.source, f.event, f.target) == ("pending", "ws_send_failed", "sent_ws")
        for f in f1.counterexample[-1].fired
    )


@pytest.mark.parametrize(
    ("design", "reached"), [("pre-fix", True), ("fixed", True), ("hardened", False)]
)
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_f2_connected_before_the_ack_is_reached_unless_hardened(
    design: str, reached: bool, environment: str
) -> None:
    r = report(design, environment)
    f2 = next(rule for rule in r.forbidden if rule.id == "F2")
    assert f2.reachable is reached
    assert bool(f2.edges) is reached
    assert r.property("connected-means-acked").holds is not reached
    if reached:
        assert f2.counterexample is not None
        assert events(f2.counterexample) == ["connect"]


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_f3_is_absent_from_every_builtin(design: str) -> None:
    f3 = next(rule for rule in report(design).forbidden if rule.id == "F3")
    assert f3.edges == []
    assert not f3.reachable
    assert f3.counterexample is None


def test_f3_is_found_in_a_design_that_clears_the_list_on_send(write_spec: SpecWriter) -> None:
    path = write_spec(
        "early-clear.toml",
        'based_on = "fixed"\nname = "early-clear"\npending_cleared_on = "ws_send"\n',
    )
    r = check(load_design(path), get_environment("ios-suspend"), 2).report()
    assert r.design == "early-clear"
    f3 = next(rule for rule in r.forbidden if rule.id == "F3")
    assert f3.edges == ["pending -ws_send_ok-> sent_ws"]
    assert f3.reachable
    assert f3.counterexample is not None
    last = f3.counterexample[-1]
    assert last.event == "send"
    assert ("pending", "ws_send_ok", "sent_ws") in [
        (f.source, f.event, f.target) for f in last.fired
    ]
    sent = next(m for m in last.messages if m.id == last.message)
    assert (sent.state, sent.held) == ("sent_ws", False)


# -- the seed's fix -----------------------------------------------------------------------
@pytest.mark.parametrize("messages", [1, 2, 3])
def test_fixed_loses_a_message_whose_rest_retry_fails_silently(messages: int) -> None:
    """The fix's own ``try?`` drops the REST retry's error: the seed's fix loses a message
    in five steps, and F4 (not F1) is the transition that loses it."""
    r = report("fixed", "ios-suspend", messages)
    trace = counterexample(r.property("no-silent-loss"))
    assert [(s.event, s.message) for s in trace] == [
        ("connect", None),
        ("app_background", None),
        ("app_foreground", None),
        ("send", "m1"),
        ("rest_error", "m1"),
    ]
    assert "raised" in trace[3].detail
    m1 = trace[-1].messages[0]
    assert (m1.state, m1.on_server, m1.held) == ("sent_ws", 0, False)
    assert any(f.rules == ["F4"] for f in trace[-1].fired)
    rules = {rule.id: rule for rule in r.forbidden}
    assert not rules["F1"].reachable
    assert rules["F4"].reachable
    assert rules["F4"].edges == ["retrying_rest -retries_exhausted-> sent_ws"]


@pytest.mark.parametrize("messages", [1, 2, 3])
def test_fixed_with_the_retry_failure_shown_holds_no_silent_loss_when_ios_suspends(
    messages: int,
) -> None:
    """Only the swallowed retry loses: show its failure and the fix keeps every message."""
    design = _variant("fixed", rest_retry_failure="shown")
    r = check(design, get_environment("ios-suspend"), messages).report()
    assert r.property("no-silent-loss").holds
    assert not next(rule for rule in r.forbidden if rule.id == "F1").reachable


def test_fixed_delivers_twice_when_the_rest_retry_repeats_a_delivered_message() -> None:
    """onSendFailed retries the whole list, including a message already on the server."""
    trace = counterexample(report("fixed", "ios-suspend").property("no-duplicate-delivery"))
    last = trace[-1]
    assert last.event in ("rest_ok", "rest_lost_response")
    assert last.message is not None
    copies = [next(m for m in step.messages if m.id == last.message).on_server for step in trace]
    assert copies[-1] == 2
    assert 1 in copies[:-1]
    assert "retrying_rest" in [
        next(m for m in step.messages if m.id == last.message).state for step in trace
    ]


def test_fixed_loses_a_message_on_a_half_open_socket() -> None:
    """The bytes vanish into a half-open socket; only a later failed send would retry
    the pending list, and no send is left to fail."""
    r = report("fixed", "half-open")
    trace = counterexample(r.property("no-silent-loss"))
    assert "connection_dropped" in events(trace)
    assert "vanished" in trace[-1].detail
    assert trace[-1].outcome == "ws_vanished"
    assert trace[-1].event == "send"
    sent = next(m for m in trace[-1].messages if m.id == trace[-1].message)
    assert (sent.state, sent.on_server) == ("sent_ws", 0)


@pytest.mark.parametrize("messages", [1, 2, 3])
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_hardened_holds_every_property(environment: str, messages: int) -> None:
    r = report("hardened", environment, messages)
    assert [p.id for p in r.properties if not p.holds] == []
    assert r.holds
    assert all(p.counterexample is None for p in r.properties)
    assert not any(rule.reachable or rule.edges for rule in r.forbidden)


def test_without_a_heartbeat_a_half_open_socket_recovers_only_with_the_users_help() -> None:
    """eventual-delivery holds (the user may background the app); recovers-unaided does not."""
    design = _variant("hardened", heartbeat=False)
    r = check(design, get_environment("half-open"), 1).report()
    assert r.property("eventual-delivery").holds
    trace = counterexample(r.property("recovers-unaided"))
    assert trace[-1].event == "connection_dropped"
    assert trace[-1].connection == "suspended_stale"
    assert check(design, get_environment("ios-suspend"), 1).holds
    assert check(get_design("hardened"), get_environment("half-open"), 1).holds


# -- agreement with an independent search --------------------------------------------------
def _state_predicates(system: System) -> dict[str, Callable[[World], bool]]:
    return {
        "no-duplicate-delivery": lambda w: bool(System.duplicated(w)),
        "connected-means-acked": System.connected_unacked,
    }


def _unsettleable(graph: ConcreteGraph, unaided: bool) -> list[bool]:
    """For each world: whether no settled world is reachable from it."""
    if not unaided:
        return [not ok for ok in graph.can_reach(System.settled)]
    user = {Stimulus.send, Stimulus.app_background}
    pruned = [[(t, dst) for t, dst in out if t.stimulus not in user] for out in graph.edges]
    restricted = type(graph)(graph.system, graph.worlds, graph.depth, pruned)
    return [not ok for ok in restricted.can_reach(System.settled)]


def _depth_of_first(graph: ConcreteGraph, flags: list[bool]) -> int | None:
    return min((d for d, bad in zip(graph.depth, flags, strict=True) if bad), default=None)


#: The independent oracle: for each property id, the length of the shortest
#: violating path in the brute-force graph (``None`` when the property holds),
#: computed without any of the checker's code.
ORACLES: dict[str, Callable[[ConcreteGraph], int | None]] = {
    "no-silent-loss": lambda g: _depth_of_first(g, [bool(lost) for lost in g.lost()]),
    "no-duplicate-delivery": lambda g: g.min_depth(lambda w: bool(System.duplicated(w))),
    "no-forbidden-transition": lambda g: g.min_forbidden_steps(),
    "connected-means-acked": lambda g: g.min_depth(System.connected_unacked),
    "eventual-delivery": lambda g: _depth_of_first(g, _unsettleable(g, unaided=False)),
    "recovers-unaided": lambda g: _depth_of_first(g, _unsettleable(g, unaided=True)),
}


def test_the_oracle_covers_exactly_the_registered_properties() -> None:
    """A new property cannot be judged without an independent check of it."""
    assert list(ORACLES) == [p.id for p in PROPERTIES]


@pytest.mark.parametrize("messages", [1, 2])
@pytest.mark.parametrize(("design", "environment"), EVERY, ids=EVERY_IDS)
def test_verdicts_and_counterexample_lengths_match_a_brute_force_search(
    graphs: Graphs, design: str, environment: str, messages: int
) -> None:
    """Each violation is real, and no path shorter than its counterexample violates."""
    graph = graphs.get(design_named(design), environment, messages)
    r = check(design_named(design), get_environment(environment), messages).report()
    assert [p.id for p in r.properties] == [p.id for p in PROPERTIES]
    for prop in PROPERTIES:
        shortest = ORACLES[prop.id](graph)
        result = r.property(prop.id)
        if result.holds is None:
            # Not applicable: the property would be violated, vacuously, by any send.
            assert prop.why_inapplicable(graph.system.behaviour) is not None, prop.id
            assert shortest is not None, prop.id
            continue
        assert result.holds is (shortest is None), prop.id
        if shortest is not None:
            assert len(counterexample(result)) == shortest, prop.id


@pytest.mark.parametrize("messages", [1, 2])
@pytest.mark.parametrize(("design", "environment"), EVERY, ids=EVERY_IDS)
def test_forbidden_rules_are_reached_exactly_when_a_brute_force_search_reaches_them(
    graphs: Graphs, forbidden_hits: RuleMatcher, design: str, environment: str, messages: int
) -> None:
    graph = graphs.get(design_named(design), environment, messages)
    reached = {rule for out in graph.edges for t, _ in out for rule in forbidden_hits(t)}
    r = check(design_named(design), get_environment(environment), messages).report()
    assert {rule.id for rule in r.forbidden if rule.reachable} == reached


@pytest.mark.parametrize(("design", "environment"), EVERY, ids=EVERY_IDS)
def test_every_counterexample_is_a_path_of_the_system_violating_only_at_its_end(
    graphs: Graphs,
    replay_trace: Replayer,
    forbidden_hits: RuleMatcher,
    design: str,
    environment: str,
) -> None:
    """No strictly shorter prefix of a counterexample already violates its property."""
    r = check(design_named(design), get_environment(environment))
    system = System(design_named(design), get_environment(environment), r.messages)
    predicates = _state_predicates(system)
    for pid, bad in predicates.items():
        result = r.verdict(pid)
        if not result.violated:
            continue
        worlds = [t.target for t in replay_trace(system, typed_trace(result))]
        assert bad(worlds[-1]), pid
        assert not any(bad(w) for w in [system.initial(), *worlds[:-1]]), pid
    result = r.verdict("no-silent-loss")
    if not result.holds:
        graph = graphs.get(design_named(design), environment, r.messages)
        where = {w: n for n, w in enumerate(graph.worlds)}
        lost = graph.lost()
        worlds = [t.target for t in replay_trace(system, typed_trace(result))]
        assert lost[where[worlds[-1]]]
        assert not any(lost[where[w]] for w in [system.initial(), *worlds[:-1]])
        assert {reason.message for reason in result.explanation} == lost[where[worlds[-1]]]
    result = r.verdict("no-forbidden-transition")
    if not result.holds:
        steps = replay_trace(system, typed_trace(result))
        assert result.rule in forbidden_hits(steps[-1])
        assert not any(forbidden_hits(t) for t in steps[:-1])
    for rule in r.rules:
        if rule.trace is not None:
            steps = replay_trace(system, rule.trace)
            assert rule.rule.id in forbidden_hits(steps[-1])
            assert not any(rule.rule.id in forbidden_hits(t) for t in steps[:-1])
    for pid in ("eventual-delivery", "recovers-unaided"):
        result = r.verdict(pid)
        if result.violated:
            replay_trace(system, typed_trace(result))
            assert result.explanation


@pytest.mark.parametrize(("design", "environment"), EVERY, ids=EVERY_IDS)
def test_symmetry_reduction_visits_one_world_per_class_of_concrete_worlds(
    graphs: Graphs, design: str, environment: str
) -> None:
    """The explored worlds are exactly the canonical forms of the concrete reachable ones."""
    graph = graphs.get(design_named(design), environment, 2)
    ex = explore(graph.system)
    assert len(set(ex.worlds)) == len(ex.worlds)
    assert set(ex.worlds) == {System.canonical(w) for w in graph.worlds}
    assert len(ex.worlds) <= len(graph.worlds)


# -- limits, determinism, reports ------------------------------------------------------------
def test_max_states_stops_the_search() -> None:
    with pytest.raises(StateLimitExceeded) as info:
        check(get_design("hardened"), get_environment("half-open"), 2, max_states=10)
    assert info.value.limit == 10
    assert "more than the 10 states allowed" in str(info.value)
    assert "--" not in str(info.value), "the library's words, not the command line's"


def test_max_states_is_a_bound_on_the_states_kept() -> None:
    system = System(get_design("fixed"), get_environment("ios-suspend"), 2)
    states = len(explore(system).worlds)
    assert len(explore(system, max_states=states).worlds) == states
    with pytest.raises(StateLimitExceeded):
        explore(system, max_states=states - 1)


@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_two_runs_give_identical_reports(design: str, environment: str) -> None:
    first, second = report(design, environment), report(design, environment)
    assert first.states == second.states > 0
    assert first.transitions == second.transitions >= first.states - 1
    assert first.model_dump_json() == second.model_dump_json()


def test_state_counts_grow_with_messages() -> None:
    counts = [report("fixed", "ios-suspend", n).states for n in (1, 2, 3)]
    assert counts == sorted(counts)
    assert len(set(counts)) == 3


@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_report_round_trips_through_json(design: str, environment: str) -> None:
    r = report(design, environment)
    again = CheckReport.model_validate_json(r.model_dump_json())
    assert again == r
    assert again.holds is r.holds


def test_report_names_its_inputs() -> None:
    r = report("fixed", "half-open", 3)
    assert (r.design, r.environment, r.messages) == ("fixed", "half-open", 3)
    assert [p.statement for p in r.properties] == [p.statement for p in PROPERTIES]
    assert [rule.id for rule in r.forbidden] == ["F1", "F2", "F3", "F4"]


# -- what no-silent-loss means ------------------------------------------------------------------
@pytest.mark.parametrize(("design", "environment"), EVERY, ids=EVERY_IDS)
def test_lost_messages_are_exactly_those_no_path_delivers_or_fails(
    graphs: Graphs, design: str, environment: str
) -> None:
    """The checker's per-state losses, worked out on sorted worlds, match a per-message
    search on concrete worlds: same messages, in every reachable world."""
    graph = graphs.get(design_named(design), environment, 2)
    ex = explore(graph.system)
    index = {w: n for n, w in enumerate(ex.worlds)}
    found = ex.lost_messages()
    for world, lost in zip(graph.worlds, graph.lost(), strict=True):
        canonical, positions = System.canonical_with_positions(world)
        assert sorted(positions[i] for i in lost) == found[index[canonical]], world


def test_fixed_with_one_message_loses_the_send_that_vanished_into_a_half_open_socket() -> None:
    """connect, ack, drop, send: the bytes vanish; only a later failed send would retry
    the pending list, and with one message there is none."""
    r = report("fixed", "half-open", 1)
    trace = counterexample(r.property("no-silent-loss"))
    assert events(trace) == ["connect", "handshake_ack", "connection_dropped", "send"]
    assert trace[-1].messages[0].held
    assert not r.property("eventual-delivery").holds


def test_a_pending_list_that_nothing_reads_does_not_save_a_message() -> None:
    """The seed's own loss (F1), with a pending list but no disconnect to trigger its retry."""
    design = _variant("pre-fix", write_ahead=True, rest_fallback=True)
    r = check(design, get_environment("ios-suspend"), 1).report()
    assert next(rule for rule in r.forbidden if rule.id == "F1").reachable
    trace = counterexample(r.property("no-silent-loss"))
    assert trace[-1].messages[0].held
    assert trace[-1].messages[0].state == "sent_ws"


def test_bounded_rest_retries_end_in_a_visible_failure() -> None:
    """The app's own REST request that keeps failing is sent again until the attempts run
    out; then the user sees the failure, so nothing is lost even without a pending list."""
    design = _variant("hardened", write_ahead=False, rest_fallback=False, resend_on_reconnect=False)
    system = System(design, get_environment("ios-suspend"), 1)
    world = system.initial()
    states = []
    for stimulus in (Stimulus.send, Stimulus.rest_error, Stimulus.rest_error):
        world = next(t for t in system.successors(world) if t.stimulus is stimulus).target
        states.append(world.messages[0].state)
    assert states == [MessageState.sending_rest, MessageState.sending_rest, MessageState.failed]
    assert (
        check(design, get_environment("ios-suspend"), 1).report().property("no-silent-loss").holds
    )


# -- ablation -------------------------------------------------------------------------------
def test_ablation_reports_only_properties_the_design_held() -> None:
    """fixed already violates no-silent-loss (its try?), F2 and eventual-delivery, so
    taking away any part of the fix newly breaks nothing the row could report."""
    rows = {r.feature: r for r in ablate(get_design("fixed"), get_design("pre-fix"), ENVS)}
    assert rows["send_failure_disconnects"].breaks["ios-suspend"] == []
    assert rows["write_ahead"].invalid is not None
    assert rows["write_ahead"].breaks == {}
    assert set(rows) == {
        "send_failure_disconnects",
        "write_ahead",
        "rest_fallback",
        "rest_retry_failure",
    }
    shown = _variant("fixed", rest_retry_failure="shown")
    rows = {r.feature: r for r in ablate(shown, get_design("pre-fix"), ENVS)}
    assert rows["send_failure_disconnects"].breaks["ios-suspend"] == ["no-silent-loss"]


def test_ablating_the_heartbeat_breaks_unaided_recovery_on_half_open_sockets_only() -> None:
    rows = {r.feature: r for r in ablate(get_design("hardened"), get_design("fixed"), ENVS)}
    assert rows["heartbeat"].breaks == {
        "ios-suspend": [],
        "ios-suspend-silent": [],
        "half-open": ["recovers-unaided"],
    }
    assert rows["message_ids"].breaks["ios-suspend"] == ["no-duplicate-delivery"]


def test_the_seed_systems_reconnect_and_refetch_carry_its_verdicts() -> None:
    """Reconnecting on foreground is what keeps seed-system's messages when iOS suspends
    the socket; the refetch is what lets every message settle."""
    rows = {r.feature: r for r in ablate(get_design("seed-system"), get_design("fixed"), ENVS)}
    assert set(rows) == {"reconnect_on_foreground", "refetch_after_reconnect"}
    assert "no-silent-loss" in rows["reconnect_on_foreground"].breaks["ios-suspend"]
    assert rows["refetch_after_reconnect"].breaks["ios-suspend"] == [
        "eventual-delivery",
        "recovers-unaided",
    ]


def test_a_design_ablated_against_itself_has_nothing_to_set_back() -> None:
    assert ablate(get_design("fixed"), get_design("fixed"), ENVS) == []


ENVS = [get_environment(name) for name in sorted(ENVIRONMENTS, reverse=True)]


# -- fidelity to the seed ------------------------------------------------------------------
@pytest.mark.parametrize("messages", [1, 2, 3, 4])
@pytest.mark.parametrize("environment", sorted(ENVIRONMENTS))
def test_hardened_holds_every_property_in_every_environment(
    environment: str, messages: int
) -> None:
    result = check(get_design("hardened"), get_environment(environment), messages)
    assert result.holds, [v.id for v in result.verdicts if not v.holds]
    assert not any(r.reachable for r in result.rules)


def test_fixed_depends_on_the_send_raising_and_the_others_do_not() -> None:
    """The seed's two readings of its own root cause give opposite verdicts for its fix."""
    answers = {name: send_dependence(design, 1) for name, design in DESIGNS.items()}
    assert {name: a.verdict for name, a in answers.items()} == {
        "pre-fix": Dependence.loses_either_way,
        "fixed": Dependence.needs_the_raise,
        "seed-system": Dependence.independent,
        "hardened": Dependence.independent,
    }
    silent = answers["fixed"].silent
    assert silent is not None
    assert [s.stimulus.value for s in silent] == [
        "connect",
        "app_background",
        "app_foreground",
        "send",
    ]
    assert silent.steps[-1].outcome is Outcome.ws_vanished


def test_fixed_loses_the_vanished_send_in_four_steps_with_one_message() -> None:
    r = report("fixed", "ios-suspend-silent", 1)
    trace = counterexample(r.property("no-silent-loss"))
    assert [s.event for s in trace] == ["connect", "app_background", "app_foreground", "send"]
    assert trace[-1].outcome == "ws_vanished"
    assert trace[-1].connection == "suspended_stale"  # catch never ran: no disconnect


def test_the_seed_system_still_loses_the_swallowed_retry_when_sockets_go_half_open() -> None:
    """The refetch recovers what the server has; the swallowed retry never reached it."""
    design, env = get_design("seed-system"), get_environment("half-open")
    f4 = check(design, env).rule("F4")
    assert f4.trace is not None
    assert [(s.stimulus.value, s.message) for s in f4.trace] == [
        ("connect", None),
        ("handshake_ack", None),
        ("connection_dropped", None),
        ("send", 0),
        ("rest_error", 0),
    ]
    ex = explore(System(design, env, 2))
    sid, positions = ex.state_of(f4.trace.final)
    assert positions[0] in ex.lost_by_state[sid]
    assert not check(design, env).verdict("no-silent-loss").holds
    assert check(design, get_environment("ios-suspend")).verdict("no-silent-loss").holds
