"""The second engine: SPIN on the generated Promela model agrees with the explorer.

Skipped, with the reason, only where ``spin`` or a C compiler is missing
(``make test`` installs spin). Verifiers are built without optimisation (faster
to compile) and cached (in the user's cache folder), so a second run of the
suite compiles nothing.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import pytest
from conftest import EXAMPLES, design_named
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm.analysis.checker import CheckResult, check
from fsm.analysis.explore import Exploration, explore
from fsm.analysis.promela import Stranded, promela
from fsm.analysis.spin import JUDGED, EngineUnavailable, SpinCheck, spin_check, tools
from fsm.analysis.system import System
from fsm.cli import main
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design, get_design, get_environment
from fsm.strategies import designs

try:
    tools()
    MISSING = ""
except EngineUnavailable as exc:  # pragma: no cover - depends on the machine
    MISSING = str(exc)

pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "spin is installed")

ALL = [(d, e, n) for e in ENVIRONMENTS for d in DESIGNS for n in (1, 2, 3)]
#: The example designs of real client libraries: the buffer, the queue, the deadline
#: check, acknowledgement timers and failures, fire-and-forget messages; two messages,
#: so that one can overtake, wait behind or be resent with the other.
ALL += [(d, e, 2) for e in ENVIRONMENTS for d in EXAMPLES]


def _spin(design: Design, environment: str, n: int, **kw: int) -> SpinCheck:
    return spin_check(design, get_environment(environment), n, optimize=False, hash_bits=18, **kw)


@lru_cache(maxsize=64)
def _concrete(design: str, environment: str, n: int) -> Exploration:
    return explore(System(design_named(design), get_environment(environment), n), symmetry=False)


def _length(result: CheckResult, pid: str) -> int | None:
    trace = result.verdict(pid).trace
    return None if trace is None else len(trace)


def _agree(spin: CheckResult, py: CheckResult, *, exact_loss: bool = True) -> None:
    for pid in JUDGED:
        if pid == "no-silent-loss" and not exact_loss:
            # Stranded is a sound under-approximation: a SPIN loss is a real one,
            # never shorter than the explorer's shortest.
            if not spin.verdict(pid).holds:
                assert not py.verdict(pid).holds
                spin_len, py_len = _length(spin, pid), _length(py, pid)
                assert spin_len is not None
                assert py_len is not None
                assert py_len <= spin_len
            continue
        assert spin.verdict(pid).holds == py.verdict(pid).holds, pid
        assert _length(spin, pid) == _length(py, pid), pid
    for rule in spin.rules:
        theirs = py.rule(rule.rule.id).trace
        assert (None if rule.trace is None else len(rule.trace)) == (
            None if theirs is None else len(theirs)
        ), rule.rule.id


@pytest.mark.parametrize(("design", "environment", "n"), ALL)
def test_both_engines_agree_on_every_builtin(design: str, environment: str, n: int) -> None:
    spin = _spin(design_named(design), environment, n).result
    py = check(design_named(design), get_environment(environment), n)
    assert spin.states == len(_concrete(design, environment, n).worlds)
    _agree(spin, py)


@pytest.mark.parametrize(("design", "environment", "n"), ALL)
def test_stranded_messages_are_lost_and_the_first_loss_is_as_deep(
    design: str, environment: str, n: int
) -> None:
    ex = _concrete(design, environment, n)
    stranded = Stranded.of(ex.system)
    first_lost = first_stranded = None
    for sid, world in enumerate(ex.worlds):
        flagged = stranded.messages(world)
        assert set(flagged) <= set(ex.lost_by_state[sid]), world
        if first_lost is None and ex.lost_by_state[sid]:
            first_lost = len(ex.path(sid))
        if first_stranded is None and flagged:
            first_stranded = len(ex.path(sid))
    assert first_lost == first_stranded


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(designs(), st.sampled_from(sorted(ENVIRONMENTS)))
def test_both_engines_agree_on_drawn_designs(design: Design, environment: str) -> None:
    spin = _spin(design, environment, 2).result
    py = check(design, get_environment(environment), 2)
    system = System(design, get_environment(environment), 2)
    assert spin.states == len(explore(system, symmetry=False).worlds)
    _agree(spin, py, exact_loss=False)


def test_spin_finds_the_seed_loss_in_four_steps_from_the_command_line() -> None:
    out = io.StringIO()
    assert main(["check", "--engine", "spin", "--design", "pre-fix"], out) == 1
    assert "counterexample: no-silent-loss (4 steps)" in out.getvalue()


def test_spin_report_has_the_explorers_trace_shape() -> None:
    spin = _spin(get_design("pre-fix"), "ios-suspend", 2).result.verdict("no-silent-loss")
    assert spin.trace is not None
    assert [s.stimulus.value for s in spin.trace] == [
        "connect",
        "app_background",
        "app_foreground",
        "send",
    ]


def test_multi_core_and_swarm_give_the_same_verdicts() -> None:
    """On ``pre-fix`` in ``half-open``, where some properties hold and some do not (each
    multi-core run of SPIN's verifier waits a second before it ends: one design)."""
    design = "pre-fix"
    exhaustive = _spin(get_design(design), "half-open", 2).result
    cores = _spin(get_design(design), "half-open", 2, cores=2).result
    swarm = _spin(get_design(design), "half-open", 2, swarm=2)
    assert cores.states == exhaustive.states
    assert not swarm.exhaustive
    assert {exhaustive.verdict(pid).holds for pid in JUDGED} == {True, False}
    for pid in JUDGED:
        assert cores.verdict(pid).holds == exhaustive.verdict(pid).holds
        # A swarm violation is real; on a model this small it finds them all.
        assert swarm.result.verdict(pid).holds == exhaustive.verdict(pid).holds


def test_export_writes_the_model(tmp_path: Path) -> None:
    target = tmp_path / "fixed.pml"
    argv = ["export", "promela", "--design", "fixed", "--messages", "2", "--out", str(target)]
    assert main(argv, io.StringIO()) == 0
    system = System(get_design("fixed"), get_environment("ios-suspend"), 2)
    assert target.read_text() == promela(system).text


def test_export_needs_one_design() -> None:
    assert main(["export", "promela"], io.StringIO()) == 2


def test_a_missing_spin_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    assert main(["check", "--engine", "spin", "--design", "fixed"], io.StringIO()) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "apt-get install spin" in err
