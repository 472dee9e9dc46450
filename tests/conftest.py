"""Shared fixtures.

The most important one is an *independent* exploration of the composed system:
a plain breadth-first search over :meth:`System.successors` with no symmetry
reduction, no caching and no shared code with :mod:`fsm.analysis.checker`. Tests compare
the checker's verdicts and counterexample lengths against it.
"""

from __future__ import annotations

import fcntl
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fsm import (
    DESIGNS,
    FORBIDDEN,
    Design,
    Environment,
    MessageState,
    get_design,
    get_environment,
    load_design,
)
from fsm.analysis.ablation import AblationRow, ablate
from fsm.analysis.system import System, Transition, World
from fsm.analysis.trace import Trace

#: The yes/no features of a design, read off the model.
BOOLEAN_FEATURES = [name for name, f in Design.model_fields.items() if f.annotation is bool]

#: The example designs of real client libraries (``designs/*.toml``), by name.
EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "designs"
EXAMPLES = sorted(p.stem for p in EXAMPLE_DIR.glob("*.toml"))

#: Values of each feature of the client libraries, for tests that try their combinations.
LIBRARY_CHOICES: dict[str, list[object]] = {
    "rest_endpoint": [False, True],
    "offline_send": ["rest", "buffer", "queue", "refuse"],
    "send_deadline_check": [False, True],
    "acknowledged": [False, True],
    "ack_timer": [False, True],
    "ack_fails_on_disconnect": [False, True],
    "ws_attempts": [1, 2, 5],
    "send_failure_shown": [False, True],
    "ordered_queue": [False, True],
}


def no_dot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphviz's ``dot`` is missing for the rest of the test: diagram sources only."""
    real = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "dot" else real(name)
    )


def design_named(name: str) -> Design:
    """A built-in design, or an example design of ``designs/`` by its name."""
    return get_design(name) if name in DESIGNS else load_design(EXAMPLE_DIR / f"{name}.toml")


def fires_forbidden_row(t: Transition) -> list[str]:
    """The ids of the forbidden rules that step ``t`` matches."""
    return sorted(
        {
            rule.id
            for f in t.fired
            for rule in FORBIDDEN
            if rule.machine == f.machine and rule.matches_step(f.row, f.connection)
        }
    )


@dataclass
class ConcreteGraph:
    """Every reachable world of a system, in breadth-first order, without symmetry."""

    system: System
    worlds: list[World]
    depth: list[int]
    edges: list[list[tuple[Transition, int]]]

    @classmethod
    def build(cls, system: System) -> ConcreteGraph:
        start = system.initial()
        index = {start: 0}
        worlds = [start]
        depth = [0]
        edges: list[list[tuple[Transition, int]]] = []
        sid = 0
        while sid < len(worlds):
            out: list[tuple[Transition, int]] = []
            for t in system.successors(worlds[sid]):
                tid = index.get(t.target)
                if tid is None:
                    tid = len(worlds)
                    index[t.target] = tid
                    worlds.append(t.target)
                    depth.append(depth[sid] + 1)
                out.append((t, tid))
            edges.append(out)
            sid += 1
        return cls(system, worlds, depth, edges)

    def min_depth(self, predicate: Callable[[World], bool]) -> int | None:
        """The fewest steps after which a world satisfying ``predicate`` is reached."""
        return next((d for w, d in zip(self.worlds, self.depth, strict=True) if predicate(w)), None)

    def min_forbidden_steps(self) -> int | None:
        """The fewest steps of a path whose last step fires a forbidden row."""
        return min(
            (
                self.depth[src] + 1
                for src, out in enumerate(self.edges)
                for t, _ in out
                if fires_forbidden_row(t)
            ),
            default=None,
        )

    def can_reach(self, goal: Callable[[World], bool]) -> list[bool]:
        """For each world: whether some world satisfying ``goal`` is reachable from it."""
        back: list[list[int]] = [[] for _ in self.worlds]
        for src, out in enumerate(self.edges):
            for _, dst in out:
                back[dst].append(src)
        good = [goal(w) for w in self.worlds]
        queue = deque(i for i, ok in enumerate(good) if ok)
        while queue:
            for src in back[queue.popleft()]:
                if not good[src]:
                    good[src] = True
                    queue.append(src)
        return good

    def lost(self) -> list[set[int]]:
        """For each world: the sent messages that are not on the server, not shown as
        failed, and stay so on every path from it (per message, no symmetry)."""
        result: list[set[int]] = [set() for _ in self.worlds]
        for i in range(self.system.n):

            def rescued(world: World, i: int = i) -> bool:
                m = world.messages[i]
                return m.server >= 1 or m.state is MessageState.failed

            for n, ok in enumerate(self.can_reach(rescued)):
                if self.worlds[n].messages[i].state is not None and not ok:
                    result[n].add(i)
        return result


class Graphs:
    """Builds :class:`ConcreteGraph` objects once per (design, environment, messages)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Design, str, int], ConcreteGraph] = {}

    def get(self, design: Design, environment: str, messages: int) -> ConcreteGraph:
        key = (design, environment, messages)
        if key not in self._cache:
            system = System(design, get_environment(environment), messages)
            self._cache[key] = ConcreteGraph.build(system)
        return self._cache[key]


def replay(system: System, trace: Trace) -> list[Transition]:
    """The steps of ``trace``, each checked to be a step the system offers.

    Each step must be one of :meth:`System.successors` of the world before it,
    starting from the initial world; otherwise the trace is not a path of the
    system and the assertion fails.
    """
    world = system.initial()
    assert trace.start == world, "the trace does not start from the initial world"
    for n, step in enumerate(trace.steps, start=1):
        offered = system.successors(world)
        assert step in offered, f"step {n} ({step.stimulus.value}) is not a step of the system"
        world = step.target
    return list(trace.steps)


_GRAPHS = Graphs()


@pytest.fixture
def graphs() -> Graphs:
    """Independent explorations, built once and shared by every test of the run."""
    return _GRAPHS


Replayer = Callable[[System, Trace], list[Transition]]
RuleMatcher = Callable[[Transition], list[str]]


@pytest.fixture
def forbidden_hits() -> RuleMatcher:
    """:func:`fires_forbidden_row`, for tests that look for forbidden steps."""
    return fires_forbidden_row


@pytest.fixture
def replay_trace() -> Replayer:
    """:func:`replay`, for tests that check a printed trace against the system."""
    return replay


SpecWriter = Callable[[str, str | bytes], Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> SpecWriter:
    """A function that writes a design file under ``tmp_path`` and returns its path."""

    def write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return write


# -- one rendered review for the whole run ----------------------------------------------------
def _run_root(request: pytest.FixtureRequest, factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run that every xdist worker shares (and nobody else: pytest
    makes its temporary folders private to the user, and a new one for each run)."""
    base = factory.getbasetemp()
    return base.parent if hasattr(request.config, "workerinput") else base


@pytest.fixture(scope="session")
def shared_review(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output of one ``fsm review`` (with Graphviz when it is installed), written
    by the first test of the run that asks for it and read by every other, in every
    xdist worker: the others wait on a file lock until it is complete.

    Read it, never change it: a test that needs to change an output copies it first
    (:func:`review_copy`)."""
    from fsm.cli import main

    root = _run_root(request, tmp_path_factory)
    out = root / "shared-review" / "diagrams"
    done = root / "shared-review.done"
    with open(root / "shared-review.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not done.exists():
                shutil.rmtree(out.parent, ignore_errors=True)
                assert main(["review", "--out", str(out)]) == 0
                done.write_text("complete\n", encoding="utf-8")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return out


@pytest.fixture
def review_copy(shared_review: Path, tmp_path: Path) -> Path:
    """A copy of :func:`shared_review` at ``tmp_path / "out"``, to change: a later
    ``fsm review --out`` there takes it for its own, as if it had written it."""
    out = tmp_path / "out"
    shutil.copytree(shared_review, out, symlinks=True)
    return out


_ABLATIONS: dict[tuple[str, ...], list[AblationRow]] = {}


@pytest.fixture
def ablate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The review's ablation of the built-in designs computed once per process.

    :func:`~fsm.analysis.ablation.ablate` is a pure function of the designs, the
    environments and the bounds; tests of how ``fsm review`` writes its files (not of
    what the ablation finds, which others check against ``ablate`` itself) reuse its
    answer instead of recomputing the same checks in every run."""
    from fsm.render.review import data

    def once(
        design: Design,
        baseline: Design,
        environments: list[Environment],
        messages: int = 2,
        max_states: int | None = None,
    ) -> list[AblationRow]:
        key = (
            design.model_dump_json(),
            baseline.model_dump_json(),
            *(e.model_dump_json() for e in environments),
            str(messages),
            str(max_states),
        )
        if key not in _ABLATIONS:
            _ABLATIONS[key] = ablate(design, baseline, environments, messages, max_states)
        return list(_ABLATIONS[key])

    monkeypatch.setattr(data, "ablate", once)
