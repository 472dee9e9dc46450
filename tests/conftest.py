"""Shared fixtures.

The most important one is an *independent* exploration of the composed system:
a plain breadth-first search over :meth:`System.successors` with no symmetry
reduction, no caching and no shared code with :mod:`fsm.analysis.checker`. Tests compare
the checker's verdicts and counterexample lengths against it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fsm import FORBIDDEN, Design, MessageState, get_environment
from fsm.analysis.system import System, Transition, World
from fsm.analysis.trace import Trace

#: The yes/no features of a design, read off the model.
BOOLEAN_FEATURES = [name for name, f in Design.model_fields.items() if f.annotation is bool]


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
