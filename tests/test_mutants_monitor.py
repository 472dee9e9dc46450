"""Mutants and their kill matrix; the runtime monitor; the hypothesis helpers for users."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from conftest import EXAMPLES, design_named
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from fsm import ForbiddenTransition, Monitor, UnknownName, get_design, get_environment
from fsm import strategies as fst
from fsm.analysis.checker import check
from fsm.analysis.explore import explore
from fsm.analysis.system import System, Transition
from fsm.analysis.trace import broken_rules
from fsm.cli import main
from fsm.model.vocabulary import ConnectionState, MessageState
from fsm.testing.adapters import ModelAdapter, TransitionsAdapter
from fsm.testing.generators import generate
from fsm.testing.monitor import MonitorError, events_of
from fsm.testing.mutants import MUTANTS, distinguishing_trace, get_mutant, kill_matrix
from fsm.testing.replay import replay

HALF_OPEN = get_environment("half-open")


# -- mutants ---------------------------------------------------------------------------------
def test_there_are_at_least_twelve_named_cited_mutants() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) >= 12
    assert len(set(names)) == len(names)
    assert "pre-fix" in names
    assert all(m.source and m.edits for m in MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutant_is_a_small_edit_that_runs(mutant: object) -> None:
    from fsm.testing.mutants import Mutant

    assert isinstance(mutant, Mutant)
    b = mutant.behaviour()
    base = get_design(mutant.base)
    system = System(base, HALF_OPEN, 1, behaviour=b)
    assert len(explore(system).worlds) > 1
    assert b.fingerprint() != System(base, HALF_OPEN, 1).behaviour.fingerprint()


def test_a_system_built_from_the_designs_own_behaviour_is_the_same_system() -> None:
    design = get_design("fixed")
    plain = System(design, HALF_OPEN, 2)
    given = System(design, HALF_OPEN, 2, behaviour=plain.behaviour)
    assert list(explore(plain).worlds) == list(explore(given).worlds)


def test_the_transitions_suite_kills_every_mutant_that_is_not_equivalent() -> None:
    suite = generate(get_design("hardened"), HALF_OPEN, 1, "transitions")
    report = kill_matrix(suite, HALF_OPEN)
    assert report.killed == report.killable >= 12
    equivalent = {m.name for m in report.mutants if m.equivalent}
    # The swallowed send error is masked by onSendFailed's retry of every held
    # message; hardened never sees a suspended socket in the foreground; with one
    # message there is no other entry for release_all to clear.
    assert equivalent == {"send-error-swallowed", "socket-error-ignored", "release-all-on-done"}
    for m in report.mutants:
        assert m.killed != m.equivalent
        assert m.equivalent == (not m.witness)


def test_an_equivalent_mutant_has_no_distinguishing_run_and_others_have_a_short_one() -> None:
    hardened = get_design("hardened")
    swallowed = get_mutant("send-error-swallowed").behaviour()
    assert distinguishing_trace(hardened, swallowed, HALF_OPEN, 2) is None
    witness = distinguishing_trace(
        hardened, get_mutant("release-all-on-done").behaviour(), HALF_OPEN, 2
    )
    assert witness is not None
    assert [s.label() for s in witness][-1] == "done m2"


def test_the_mutant_suite_replays_as_a_divergence_at_the_predicted_step() -> None:
    suite = generate(get_design("hardened"), HALF_OPEN, 1, "rows")
    adapter = ModelAdapter(get_mutant("pre-fix").behaviour())
    report = replay(suite, adapter)
    assert not report.passed
    assert report.failures[0].step == 1


def test_a_mutant_runs_on_the_transitions_adapter_too() -> None:
    suite = generate(get_design("hardened"), HALF_OPEN, 1, "rows")
    mutant = get_mutant("single-rest-attempt").behaviour()
    assert not replay(suite, TransitionsAdapter(mutant)).passed
    assert not replay(suite, ModelAdapter(mutant)).passed


def test_mutants_command_ends_with_the_score(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mutants", "--messages", "1", "--criterion", "rows"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("mutation score ")
    killed, total = lines[-1].split()[-1].split("/")
    assert int(total) >= 12
    assert int(killed) <= int(total)


# -- the runtime monitor ------------------------------------------------------------------------
SEED = [
    ("connect", None),
    ("handshake_ack", None),
    ("send", "a"),
    ("ws_send_ok", "a"),
    ("done", "a"),
    ("app_background", None),
    ("app_foreground", None),
    ("send", "b"),
    ("ws_send_failed", "b"),
]


def test_the_monitor_flags_f1_on_the_seed_verification_trace_of_pre_fix() -> None:
    monitor = Monitor(get_design("pre-fix"), raise_on_violation=False)
    for event, message in SEED:
        monitor.observe(event, message)
    assert [v.rule for v in monitor.violations] == ["F2", "F1"]
    f1 = monitor.violations[1]
    assert f1.trace == tuple(SEED)
    assert monitor.messages == {"a": MessageState.confirmed, "b": MessageState.sent_ws}


def test_raising_leaves_the_state_as_it_was() -> None:
    monitor = Monitor(get_design("pre-fix"))
    with pytest.raises(ForbiddenTransition, match="F2") as info:
        monitor.observe("connect")
    assert info.value.rule == "F2"
    assert monitor.connection is ConnectionState.idle
    assert monitor.trace == []


def test_an_event_with_no_row_is_forbidden_and_changes_nothing() -> None:
    monitor = Monitor(get_design("hardened"))
    monitor.observe("send", "a")
    monitor.observe("send_rest", "a")
    with pytest.raises(ForbiddenTransition, match="'done' is forbidden in state 'sending_rest'"):
        monitor.observe("done", "a")
    assert monitor.messages["a"] is MessageState.sending_rest
    assert monitor.held == {"a"}


@pytest.mark.parametrize(
    ("event", "message", "text", "error"),
    [
        ("jump", None, "unknown event 'jump'", UnknownName),
        ("done", "zzz", "unknown message id 'zzz'", MonitorError),
        ("done", None, "needs a message id", MonitorError),
        ("connect", "a", "takes no message id", MonitorError),
        ("send", "a", "already sent", MonitorError),
    ],
)
def test_unknown_events_and_ids_are_clear_errors(
    event: str, message: str | None, text: str, error: type[Exception]
) -> None:
    monitor = Monitor(get_design("hardened"))
    monitor.observe("send", "a")
    before = (monitor.connection, dict(monitor.messages), set(monitor.held), list(monitor.trace))
    with pytest.raises(error, match=text):
        monitor.observe(event, message)
    assert (monitor.connection, monitor.messages, monitor.held, monitor.trace) == before


@pytest.mark.parametrize("design", ["pre-fix", "fixed", "seed-system", "hardened", *EXAMPLES])
@pytest.mark.parametrize("environment", ["ios-suspend", "half-open"])
def test_the_monitor_agrees_with_the_model_on_random_runs(design: str, environment: str) -> None:
    """Same rules broken at the same steps, same connection state and message states
    (until a silent half-open drop, which no client can see)."""
    system = System(design_named(design), get_environment(environment), 2)
    rng = random.Random(7)
    for _ in range(60):
        monitor = Monitor(design_named(design), raise_on_violation=False)
        world = system.initial()
        steps: list[Transition] = []
        for _ in range(20):
            options = system.successors(world)
            step = options[rng.randrange(len(options))]
            steps.append(step)
            world = step.target
            for seen in events_of([step]):
                monitor.observe(seen.event, seen.message)
            want = [r.id for t in steps for f in t.fired for r in broken_rules(f)]
            assert [v.rule for v in monitor.violations] == want
            if any(t.stimulus.value == "connection_dropped" for t in steps):
                break
            assert monitor.connection is world.connection
            sent = {f"m{i + 1}": m.state for i, m in enumerate(world.messages) if m.state}
            assert monitor.messages == sent


def test_monitor_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "client.jsonl"
    log.write_text(
        "\n".join(json.dumps({"event": e, "message": m}) for e, m in SEED) + "\n", encoding="utf-8"
    )
    assert main(["monitor", "--design", "pre-fix", str(log)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{log}:1: ")
    assert "F2" in out
    assert f"{log}:9: " not in out
    assert main(["monitor", "--design", "pre-fix", "--all", str(log)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{log}:1: ")
    assert f"{log}:9: " in out
    assert "F1" in out
    clean = tmp_path / "clean.jsonl"
    clean.write_text('{"event": "connect"}\n{"event": "handshake_ack"}\n', encoding="utf-8")
    assert main(["monitor", "--design", "hardened", str(clean)]) == 0
    clean.write_text('{"event": "teleport"}\n', encoding="utf-8")
    assert main(["monitor", "--design", "hardened", str(clean)]) == 2


# -- hypothesis helpers ---------------------------------------------------------------
def test_walks_aimed_at_a_row_end_by_firing_it() -> None:
    row = "message: pending -ws_send_failed-> sent_ws"
    from hypothesis import given

    @settings(max_examples=15, deadline=None, database=None)
    @given(fst.walks("pre-fix", max_steps=6, towards=row))
    def aimed(walk: list[Transition]) -> None:
        last = walk[-1]
        assert any(f.row.edge[1].value == "ws_send_failed" for f in last.fired)
        assert any(broken_rules(f) for f in last.fired)

    aimed()


def test_walks_aimed_at_a_property_reach_a_violation() -> None:
    from hypothesis import given

    design = get_design("pre-fix")
    assert (
        not check(design, get_environment("ios-suspend"), 1).verdict("connected-means-acked").holds
    )

    @settings(max_examples=10, deadline=None, database=None)
    @given(fst.walks(design, messages=1, max_steps=5, towards="connected-means-acked"))
    def aimed(walk: list[Transition]) -> None:
        assert System.connected_unacked(walk[-1].target)

    aimed()


class _TransitionsConformance(fst.ConformanceMachine):
    design = "hardened"
    environment = "half-open"
    messages = 1

    def make_adapter(self) -> TransitionsAdapter:
        return TransitionsAdapter()


class _MutantConformance(_TransitionsConformance):
    def make_adapter(self) -> TransitionsAdapter:
        return TransitionsAdapter(get_mutant("no-write-ahead").behaviour())


STATEFUL = settings(
    max_examples=15,
    stateful_step_count=15,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_the_conformance_machine_passes_a_conforming_adapter() -> None:
    run_state_machine_as_test(_TransitionsConformance, settings=STATEFUL)


def test_the_conformance_machine_catches_a_mutant() -> None:
    with pytest.raises(AssertionError, match=r"m1\.held"):
        run_state_machine_as_test(_MutantConformance, settings=STATEFUL)
