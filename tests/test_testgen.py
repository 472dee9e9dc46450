"""Model-based test generation: observations, suites, generators, adapters, replay."""

from __future__ import annotations

import heapq
import itertools
import json
from pathlib import Path

import jsonschema
import pytest
from conftest import ConcreteGraph, Graphs
from hypothesis import given, settings
from hypothesis import strategies as st

from fsm import Observation, Suite, SystemUnderTest, generate, get_design, get_environment, replay
from fsm.analysis.checker import check
from fsm.analysis.system import Message, Outcome, Stimulus, System, World
from fsm.cli import main
from fsm.model.design import load_design
from fsm.model.vocabulary import ConnectionState, MessageState, Socket
from fsm.testing.adapters import ModelAdapter, StepRefused, TransitionsAdapter, load_adapter
from fsm.testing.generators import CRITERIA, optimal_tour
from fsm.testing.graph import StateGraph
from fsm.testing.observation import observe
from fsm.testing.pytest_writer import pytest_module
from fsm.testing.suite import Criterion, load_suite

DESIGNS = ("pre-fix", "fixed", "seed-system", "hardened")
ENVIRONMENTS = ("ios-suspend", "ios-suspend-silent", "half-open")


def _suite(
    design: str, criterion: Criterion, environment: str = "ios-suspend", n: int = 1
) -> Suite:
    return generate(
        get_design(design), get_environment(environment), n, criterion, seed=1, max_steps=3000
    )


# -- observations ------------------------------------------------------------------------
def test_an_observation_hides_the_socket_and_the_owed_done() -> None:
    live = World(
        ConnectionState.connected,
        Socket.open,
        True,
        True,
        (Message(MessageState.sent_ws, True, 1, 0, True),),
    )
    stale = live._replace(
        connection=ConnectionState.suspended_stale,
        socket=Socket.suspended,
        messages=(Message(MessageState.sent_ws, True, 1, 0, False),),
    )
    assert observe(live) == observe(stale)
    assert observe(stale).connected is True
    assert observe(stale).messages[0].state == "sent"


def test_differences_name_each_field_that_differs() -> None:
    a = Observation.of(True, ("sent", True, 1))
    b = Observation.of(False, ("sent", False, 2))
    assert a.differences(b) == [
        "isConnected: expected True, observed False",
        "m1.held: expected True, observed False",
        "m1.server: expected 1, observed 2",
    ]
    assert a.differences(a) == []


@pytest.mark.parametrize(("design", "environment"), list(itertools.product(DESIGNS, ENVIRONMENTS)))
def test_a_steps_label_determines_its_outcome(design: str, environment: str) -> None:
    """Every environment branch is a typed outcome or a stimulus of its own: no two
    steps out of one state share (stimulus, message, outcome)."""
    system = System(get_design(design), get_environment(environment), 2)
    graph = StateGraph(system)
    for world in graph.ex.worlds:
        labels = [t.label for t in system.successors(world)]
        assert len(labels) == len(set(labels)), world


# -- the suite format ----------------------------------------------------------------------
def test_generated_suites_validate_against_the_printed_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "suite"]) == 0
    schema = json.loads(capsys.readouterr().out)
    for criterion in CRITERIA:
        suite = _suite("seed-system", criterion)
        jsonschema.validate(json.loads(suite.model_dump_json()), schema)
        assert Suite.model_validate_json(suite.model_dump_json()) == suite


def test_a_malformed_suite_file_is_a_spec_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"format": "fsm-suite/1", "design": "x"}', encoding="utf-8")
    with pytest.raises(Exception, match=r"bad\.json"):
        load_suite(path)


# -- generators and replay -----------------------------------------------------------------
@pytest.mark.parametrize(("design", "criterion"), list(itertools.product(DESIGNS, CRITERIA)))
def test_every_suite_replays_green_through_both_adapters(design: str, criterion: Criterion) -> None:
    suite = _suite(design, criterion)
    assert suite.cases
    for adapter in (ModelAdapter(), TransitionsAdapter()):
        report = replay(suite, adapter)
        assert report.passed, report.failures[0].describe()


@pytest.mark.parametrize("criterion", ["rows", "transitions"])
def test_a_design_file_with_acknowledgement_timeouts_gets_a_suite_that_replays(
    criterion: Criterion,
) -> None:
    """socketio-4.8-retries: ack_timeout is a step aimed at a message, and every step
    of the state graph is found on the concrete worlds of a walk."""
    spec = load_design(
        Path(__file__).resolve().parents[1] / "designs" / "socketio-4.8-retries.toml"
    )
    suite = generate(spec, get_environment("half-open"), 1, criterion)
    assert any(step.stimulus is Stimulus.ack_timeout for c in suite.cases for step in c.steps)
    assert Suite.model_validate_json(suite.model_dump_json()) == suite
    report = replay(suite, ModelAdapter())
    assert report.passed, report.failures[0].describe()


@pytest.mark.parametrize("design", DESIGNS)
def test_half_open_suites_replay_green_through_transitions(design: str) -> None:
    suite = _suite(design, "transitions", "half-open")
    assert replay(suite, TransitionsAdapter()).passed


@pytest.mark.parametrize("design", DESIGNS)
def test_the_transition_suite_meets_the_optimum_and_covers_every_transition(design: str) -> None:
    suite = _suite(design, "transitions", "half-open")
    stats = suite.stats
    assert stats.criterion_steps == stats.optimum
    assert stats.covered == stats.targets
    assert stats.optimum is not None
    assert stats.optimum >= stats.targets


def _brute_force(states: int, arcs: list[tuple[int, int]]) -> int:
    """The fewest steps of walks from node 0 (restarts free) taking every arc: Dijkstra
    over (node, arcs taken)."""
    full = (1 << len(arcs)) - 1
    best = {(0, 0): 0}
    queue = [(0, 0, 0)]
    while queue:
        cost, node, mask = heapq.heappop(queue)
        if mask == full:
            return cost
        if best.get((node, mask), cost) < cost:
            continue
        moves = [(0, mask, 0)] + [
            (dst, mask | 1 << n, 1) for n, (src, dst) in enumerate(arcs) if src == node
        ]
        for nxt, nmask, step in moves:
            if best.get((nxt, nmask), 1 << 30) > cost + step:
                best[(nxt, nmask)] = cost + step
                heapq.heappush(queue, (cost + step, nxt, nmask))
    raise AssertionError("unreachable arcs")


@settings(max_examples=40, deadline=None, database=None)
@given(st.data())
def test_the_tour_is_optimal_on_small_graphs(data: st.DataObject) -> None:
    states = data.draw(st.integers(1, 4))
    # A spanning chain from 0 keeps every node reachable; then random extra arcs.
    arcs = [(data.draw(st.integers(0, k - 1)), k) for k in range(1, states)]
    arcs += data.draw(
        st.lists(st.tuples(st.integers(0, states - 1), st.integers(0, states - 1)), max_size=5)
    )
    flow = optimal_tour(states, arcs)
    taken = [a for walk in flow.walks for a in walk]
    assert sorted(set(taken)) == list(range(len(arcs)))
    for walk in flow.walks:
        node = 0
        for a in walk:
            assert arcs[a][0] == node
            node = arcs[a][1]
    assert len(taken) == flow.optimum == _brute_force(states, arcs)


def test_fixed_has_six_dead_rows_in_ios_suspend() -> None:
    suite = _suite("fixed", "rows", n=2)
    assert len(suite.stats.dead_rows) == 6
    assert "connection: suspended_stale -ping_timeout-> disconnected" not in suite.stats.dead_rows


@pytest.mark.parametrize("design", DESIGNS)
def test_each_row_is_covered_by_a_shortest_run(design: str, graphs: Graphs) -> None:
    suite = _suite(design, "rows")
    graph: ConcreteGraph = graphs.get(get_design(design), "ios-suspend", 1)
    from fsm.testing.graph import row_id

    shortest: dict[str, int] = {}
    for src, out in enumerate(graph.edges):
        for t, _ in out:
            for f in t.fired:
                name = row_id(f.machine, f.row)
                shortest[name] = min(shortest.get(name, 1 << 30), graph.depth[src] + 1)
    covered = {r for c in suite.cases for r in c.covers.rows}
    assert covered == set(shortest)
    system = System(get_design(design), get_environment("ios-suspend"), 1)
    for case in suite.cases:
        world = system.initial()
        first: dict[str, int] = {}
        for n, step in enumerate(case.steps, start=1):
            t = next(
                t
                for t in system.successors(world)
                if (t.stimulus, t.message, t.outcome) == (step.stimulus, step.index, step.outcome)
            )
            for f in t.fired:
                first.setdefault(row_id(f.machine, f.row), n)
            world = t.target
        for row in case.covers.rows:
            assert first[row] == shortest[row], (case.id, row)


def test_violations_are_the_checkers_shortest_traces() -> None:
    suite = _suite("pre-fix", "violations", n=2)
    result = check(get_design("pre-fix"), get_environment("ios-suspend"), 2)
    lost = result.verdict("no-silent-loss").trace
    assert lost is not None
    case = next(c for c in suite.cases if "no-silent-loss" in c.covers.properties)
    assert [(s.stimulus, s.index, s.outcome) for s in case.steps] == [t.label for t in lost]
    violated = {v.id for v in result.verdicts if not v.holds}
    assert {p for c in suite.cases for p in c.covers.properties} == violated
    assert {r for c in suite.cases for r in c.covers.rules} == {"F1", "F2"}


@pytest.mark.parametrize("criterion", CRITERIA)
def test_every_suite_carries_the_stale_socket_case(criterion: Criterion) -> None:
    suite = _suite("pre-fix", criterion, n=2)
    stale = [
        [s.label() for s in c.steps]
        for c in suite.cases
        if [s.stimulus for s in c.steps]
        == [Stimulus.connect, Stimulus.app_background, Stimulus.app_foreground, Stimulus.send]
    ]
    assert ["connect", "app_background", "app_foreground", "send m1 (ws_raised)"] in stale


def test_a_design_that_holds_gets_the_others_violations_as_regressions() -> None:
    suite = _suite("hardened", "violations", n=2)
    sources = {c.covers.regression.split(":")[0] for c in suite.cases if c.covers.regression}
    assert {"pre-fix", "fixed"} <= sources  # seed-system's traces are duplicates of these
    assert not any(c.covers.properties for c in suite.cases)


def test_the_hardened_suite_fails_on_pre_fix_and_fixed_fails_at_the_stale_socket_step() -> None:
    hardened = _suite("hardened", "transitions", n=2)
    report = replay(hardened, ModelAdapter(), get_design("pre-fix"))
    assert not any(r.passed for r in report.results)
    stale = next(r for r in report.results if r.case == "stale-socket")
    assert stale.divergence is not None
    # pre-fix reports connected on resume() (F2), before the stale socket is reached.
    assert (stale.divergence.step, stale.divergence.stimulus) == (1, "connect")
    fixed = _suite("fixed", "rows", n=2)
    report = replay(fixed, ModelAdapter(), get_design("pre-fix"))
    stale = next(r for r in report.results if r.case == "stale-socket")
    assert stale.divergence is not None
    assert (stale.divergence.step, stale.divergence.stimulus) == (4, "send")
    # fixed treats the failed send as a disconnect; pre-fix still believes it is connected.
    assert stale.divergence.differences == ["isConnected: expected False, observed True"]


def test_a_refused_step_is_a_divergence() -> None:
    adapter = TransitionsAdapter()
    adapter.reset(get_design("hardened"), get_environment("ios-suspend"), 1)
    adapter.apply(Stimulus.send, 0, Outcome.rest_direct)
    with pytest.raises(StepRefused, match="done m1"):
        adapter.apply(Stimulus.done, 0, None)


def test_random_walks_are_seeded_and_stop_at_full_coverage() -> None:
    def walks(seed: int) -> Suite:
        return generate(
            get_design("seed-system"), get_environment("ios-suspend"), 1, "random", seed=seed
        )

    a = walks(1)
    assert a == walks(1)
    assert a.stats.covered == a.stats.targets
    assert a.stats.criterion_steps < 200_000
    assert walks(2) != a
    capped = _suite("hardened", "random")
    assert capped.stats.criterion_steps == 3000
    assert capped.stats.covered < capped.stats.targets


def test_pairs_cover_every_adjacent_pair_of_rows() -> None:
    suite = _suite("hardened", "pairs")
    assert (
        suite.stats.covered
        == suite.stats.targets
        == len({p for c in suite.cases for p in c.covers.pairs})
    )


# -- adapters and the command line -----------------------------------------------------------
def test_built_in_adapters_follow_the_protocol() -> None:
    assert isinstance(ModelAdapter(), SystemUnderTest)
    assert isinstance(load_adapter("transitions"), SystemUnderTest)
    assert isinstance(load_adapter("fsm.testing.adapters:ModelAdapter"), ModelAdapter)


def test_testgen_and_replay_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "suite.json"
    argv = ["testgen", "--design", "hardened", "--criterion", "transitions", "--messages", "1"]
    assert main([*argv, "--out", str(out)]) == 0
    assert "optimum" in capsys.readouterr().out
    assert main(["replay", str(out), "--adapter", "transitions"]) == 0
    assert main(["replay", str(out), "--design", "pre-fix"]) == 1
    text = capsys.readouterr().out
    assert "cases diverge at connect: isConnected: expected False, observed True" in text
    assert main(["replay", str(out), "--design", "pre-fix", "--verbose"]) == 1
    text = capsys.readouterr().out
    assert "stale-socket: diverges at step 1 (connect)" in text
    assert main(["replay", str(out), "--adapter", "nope"]) == 2
    assert main(["replay", str(tmp_path / "missing.json")]) == 2


def test_the_reference_adapter_is_found_by_name_and_needs_its_extra(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--adapter reference`` is imported only when asked for; without aiohttp it is
    one line and exit 2, and nothing in fsm.cli or fsm.testing imports aiohttp."""
    import importlib.util
    import subprocess
    import sys

    from fsm.model.errors import SpecError

    code = "import sys, fsm, fsm.cli, fsm.testing.adapters; print('aiohttp' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
    path = tmp_path / "seed.json"
    assert main(["scenario", "seed-verification", "--design", "hardened", "--suite"]) == 0
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    real = importlib.util.find_spec

    def without_aiohttp(name: str, *args: object) -> object:
        return None if name == "aiohttp" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", without_aiohttp)
    with pytest.raises(SpecError, match="needs the 'reference' extra"):
        load_adapter("reference")
    assert main(["replay", str(path), "--adapter", "reference"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "fsm[reference]" in err


def test_scenario_accepts_a_suite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenario", "seed-verification", "--design", "pre-fix", "--suite"]) == 0
    path = tmp_path / "seed.json"
    path.write_text(capsys.readouterr().out, encoding="utf-8")
    assert load_suite(path).criterion == "scenario"
    assert main(["scenario", str(path)]) == 0
    assert main(["scenario", str(path), "--design", "hardened"]) == 1


def test_the_pytest_module_runs_and_catches_a_mutant() -> None:
    from fsm.testing.mutants import get_mutant

    suite = _suite("hardened", "rows")
    namespace: dict[str, object] = {}
    exec(compile(pytest_module(suite), "generated.py", "exec"), namespace)
    tests = {k: v for k, v in namespace.items() if k.startswith("test_") and callable(v)}
    assert len(tests) == len(suite.cases)
    for test in tests.values():
        test(TransitionsAdapter())
    mutant = ModelAdapter(get_mutant("no-write-ahead").behaviour())
    failures = 0
    for test in tests.values():
        try:
            test(mutant)
        except AssertionError:
            failures += 1
    assert failures > 0
