"""Suites replayed on the real client, server and proxy (``--adapter reference``).

The same suites the model and the ``transitions`` machines replay, run on real
sockets: the seed scenario on every design, a generated suite per design, a
suite of one design on another design's client, mutants of ``hardened`` run as
real clients, and the runtime monitor fed by the real client.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the reference client needs the 'reference' extra (aiohttp)")

from fsm import get_design, get_environment, replay
from fsm.analysis.scenario import get_scenario
from fsm.analysis.system import Stimulus
from fsm.cli import main
from fsm.model.errors import ForbiddenTransition
from fsm.reference.adapter import ReferenceAdapter
from fsm.testing.adapters import ModelAdapter, StepRefused, SystemUnderTest, load_adapter
from fsm.testing.generators import generate, scenario_suite
from fsm.testing.mutants import MUTANTS, Mutant, distinguishing_trace
from fsm.testing.observation import Observation
from fsm.testing.replay import replay_case
from fsm.testing.suite import Case, Covers, Suite

DESIGNS = ("pre-fix", "fixed", "seed-system", "hardened")
#: Where every feature of hardened is exercised (as ``fsm mutants`` uses).
MUTANTS_ENVIRONMENT = "half-open"


@pytest.fixture(scope="module")
def adapter() -> Iterator[ReferenceAdapter]:
    with ReferenceAdapter() as a:
        yield a


@pytest.fixture(scope="module")
def watched() -> Iterator[ReferenceAdapter]:
    with ReferenceAdapter(monitor=True) as a:
        yield a


def seed_suite(design: str) -> Suite:
    return scenario_suite(
        get_scenario("seed-verification"), get_design(design), get_environment("ios-suspend")
    )


def test_the_adapter_follows_the_protocol_and_is_found_by_name() -> None:
    found = load_adapter("reference")
    assert isinstance(found, ReferenceAdapter)
    assert isinstance(found, SystemUnderTest)
    found.close()  # never started: nothing to stop


# -- the seed scenario ----------------------------------------------------------------
@pytest.mark.parametrize("design", DESIGNS)
def test_the_seed_scenario_replays_green_on_each_real_client(
    adapter: ReferenceAdapter, design: str
) -> None:
    """The model's prediction for each design is what the real client does: on pre-fix
    the second message shows sent and never reaches the server; the fix and hardened
    deliver it once and confirm it."""
    suite = seed_suite(design)
    report = replay(suite, adapter, adapter_name="reference")
    assert report.passed, "\n".join(d.describe() for d in report.failures)
    last = suite.cases[0].steps[-1].expected.messages[1]
    if design == "pre-fix":
        assert (last.state, last.held, last.server) == ("sent", False, 0)
    if design in ("fixed", "hardened"):
        assert (last.state, last.server) == ("confirmed", 1)


def test_the_hardened_seed_suite_fails_on_the_real_pre_fix_client(
    adapter: ReferenceAdapter,
) -> None:
    report = replay(seed_suite("hardened"), adapter, get_design("pre-fix"))
    assert not report.passed
    (first,) = report.failures
    assert first.step == 1  # pre-fix sets isConnected on connect, before the handshake
    assert "isConnected: expected False, observed True" in first.differences


# -- generated suites -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("design", "environment"),
    [(d, "ios-suspend") for d in DESIGNS],
)
def test_a_generated_suite_replays_green_on_its_own_real_client(
    adapter: ReferenceAdapter, design: str, environment: str
) -> None:
    suite = generate(get_design(design), get_environment(environment), 2, "violations")
    report = replay(suite, adapter)
    assert report.passed, "\n".join(d.describe() for d in report.failures)
    assert len(report.results) >= 4


def test_the_hardened_suite_fails_on_the_real_pre_fix_client(adapter: ReferenceAdapter) -> None:
    suite = generate(get_design("hardened"), get_environment("ios-suspend"), 2, "violations")
    report = replay(suite, adapter, get_design("pre-fix"))
    assert report.failures
    model = replay(suite, ModelAdapter(), get_design("pre-fix"))
    # The first divergence of each case is where the model says it is.
    assert [(d.case, d.step) for d in report.failures] == [(d.case, d.step) for d in model.failures]
    assert "diverges at step" in report.failures[0].describe()


# -- refusals and cleanup -------------------------------------------------------------
def test_a_step_the_real_world_cannot_take_is_refused(adapter: ReferenceAdapter) -> None:
    assert adapter.reset(
        get_design("hardened"), get_environment("ios-suspend"), 2
    ) == Observation.initial(2)
    with pytest.raises(StepRefused, match="never sent"):
        adapter.apply(Stimulus.done, 0, None)
    with pytest.raises(StepRefused, match="the app is in front"):
        adapter.apply(Stimulus.app_foreground, None, None)
    with pytest.raises(StepRefused, match="next message is m1"):
        adapter.apply(Stimulus.send, 1, None)
    adapter.apply(Stimulus.connect, None, None)
    adapter.apply(Stimulus.handshake_ack, None, None)
    with pytest.raises(StepRefused, match="the socket is open"):
        adapter.apply(Stimulus.handshake_ack, None, None)
    sent = adapter.apply(Stimulus.send, 0, None)
    assert (sent.connected, sent.messages[0].state, sent.messages[0].server) == (True, "sent", 1)
    with pytest.raises(StepRefused, match="no REST request"):
        adapter.apply(Stimulus.rest_ok, 0, None)
    done = adapter.apply(Stimulus.done, 0, None)
    assert done.messages[0].state == "confirmed"
    with pytest.raises(StepRefused, match="owes no done"):
        adapter.apply(Stimulus.done, 0, None)


def _refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2.0)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_a_failure_mid_case_stops_the_world_and_the_next_reset_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a = ReferenceAdapter()
    design, env = get_design("hardened"), get_environment("ios-suspend")
    try:
        a.reset(design, env, 1)
        a.apply(Stimulus.connect, None, None)
        world = a.driver.world
        assert world is not None
        ports = [world.server.port, world.ws_proxy.port, world.rest_proxy.port]
        thread = a.driver._loop._thread if a.driver._loop else None

        async def broken(*args: object) -> None:
            raise RuntimeError("the world broke")

        monkeypatch.setattr(a.driver, "_apply", broken)
        with pytest.raises(RuntimeError, match="the world broke"):
            a.apply(Stimulus.handshake_ack, None, None)
        assert a.driver.world is None
        assert a.driver._loop is None
        assert thread is not None
        assert not thread.is_alive()
        assert all(_refused(p) for p in ports)
        monkeypatch.undo()
        assert a.reset(design, env, 1) == Observation.initial(1)
        assert a.apply(Stimulus.connect, None, None).connected is False
    finally:
        a.close()
        a.close()  # twice is fine
    assert a.driver.world is None


def test_replay_command_through_the_reference_adapter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "seed.json"
    assert main(["scenario", "seed-verification", "--design", "hardened", "--suite"]) == 0
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    assert main(["replay", str(path), "--adapter", "reference"]) == 0
    assert "through reference: 1 of 1 cases pass" in capsys.readouterr().out
    assert main(["replay", str(path), "--adapter", "reference", "--design", "pre-fix"]) == 1
    out = capsys.readouterr().out
    assert "seed-verification: diverges at step 1 (connect)" in out


# -- mutants on the real client -------------------------------------------------------
def _killable() -> list[Mutant]:
    return [m for m in MUTANTS if m.name not in ("send-error-swallowed", "socket-error-ignored")]


@pytest.mark.parametrize("mutant", _killable(), ids=lambda m: m.name)
def test_the_models_killing_case_fails_on_the_mutants_real_client(
    adapter: ReferenceAdapter, mutant: Mutant
) -> None:
    """Each mutant is an edited Behaviour; the table-driven client runs it. The
    shortest case on which the model tells the mutant from hardened fails on the
    mutant's real client at the same step, and passes on the real hardened client."""
    design, env = get_design("hardened"), get_environment(MUTANTS_ENVIRONMENT)
    b = mutant.behaviour(design)
    witness = distinguishing_trace(design, b, env, 2)
    assert witness is not None
    case = Case(id=f"kill-{mutant.name}", title=mutant.summary, covers=Covers(), steps=witness)
    model = replay_case(ModelAdapter(b), case, design, env, 2)
    assert model is not None
    assert replay_case(adapter, case, design, env, 2) is None
    real = ReferenceAdapter(b)
    try:
        found = replay_case(real, case, design, env, 2)
    finally:
        real.close()
    assert found is not None, f"{mutant.name} survives on the real client"
    assert found.step == model.step
    assert bool(found.refused) == bool(model.refused)
    assert found.differences == model.differences


def test_equivalent_mutants_run_on_the_real_client_and_pass() -> None:
    """No test generated from hardened can tell these two from it (the model proves
    it: see the kill matrix); their real clients pass hardened's regression cases."""
    design, env = get_design("hardened"), get_environment(MUTANTS_ENVIRONMENT)
    suite = generate(design, env, 2, "violations")
    cases = [c for c in suite.cases if c.covers.regression is not None]
    assert cases
    for name in ("send-error-swallowed", "socket-error-ignored"):
        mutant = next(m for m in MUTANTS if m.name == name)
        with ReferenceAdapter(mutant.behaviour(design)) as real:
            for case in cases:
                assert replay_case(real, case, design, env, 2) is None, (name, case.id)


# -- the runtime monitor on the real client -------------------------------------------
def test_the_monitor_flags_f1_on_the_real_pre_fix_client(watched: ReferenceAdapter) -> None:
    report = replay(seed_suite("pre-fix"), watched)
    assert report.passed
    monitor, feed = watched.monitor, watched.feed
    assert monitor is not None
    assert feed is not None
    assert feed.errors == []
    f1 = [v for v in monitor.violations if v.rule == "F1"]
    assert len(f1) == 1
    assert isinstance(f1[0], ForbiddenTransition)
    assert "m2" in str(f1[0])  # the second message, sent into the stale socket


def test_the_monitor_flags_nothing_on_the_real_hardened_client(watched: ReferenceAdapter) -> None:
    """The seed scenario and hardened's violation suites (its regression cases), in
    ios-suspend and with silent drops: nothing forbidden, every event understood."""
    design = get_design("hardened")
    cases = [(seed_suite("hardened").cases[0], get_environment("ios-suspend"))]
    half_open = get_environment("half-open")
    cases += [(c, half_open) for c in generate(design, half_open, 2, "violations").cases]
    for case, env in cases:
        assert replay_case(watched, case, design, env, 2) is None, case.id
        assert watched.monitor is not None
        assert watched.feed is not None
        assert watched.monitor.violations == [], case.id
        assert watched.feed.errors == [], case.id
