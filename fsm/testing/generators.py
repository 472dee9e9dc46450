"""Test generation: suites that cover the model by a criterion.

``rows``
    Every table row the design has that a run reaches, each by a shortest path;
    the rows no run reaches are listed as dead rows.
``transitions``
    Every transition of the (symmetry-reduced) composed system, with the fewest
    total steps any suite can have when every case starts from the initial
    state. That minimum is a minimum-cost flow: each edge is taken at least
    once, a restart is an edge from a super-source to the initial state, a case
    may end anywhere; the optimal flow is then cut into cases along an Eulerian
    circuit (networkx solves both).
``pairs``
    Every adjacent pair of fired rows (a step that fires row *a*, the next step
    row *b*), each by a shortest path (fMBT's ``perm:2``).
``violations``
    The shortest trace to every violated property and every forbidden rule the
    design reaches, deduplicated; plus the violating traces of the other
    built-in designs replayed on this one as regression cases.
``random``
    Seeded random walks of a given length until every transition is covered
    (GraphWalker's ``random(edge_coverage(100))``).

Every suite also carries the stale-socket regression case: the pre-fix
client's shortest silent loss (connect, background, foreground, send), replayed
on the design.
"""

from __future__ import annotations

import random as _rand
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fsm.analysis.checker import check
from fsm.analysis.report import message_name
from fsm.analysis.scenario import Scenario
from fsm.analysis.system import Outcome, Stimulus, System, Transition
from fsm.model.behaviour import Behaviour
from fsm.model.design import DESIGNS, Design, Environment
from fsm.model.errors import InvalidArgument, UnknownName, require_int
from fsm.testing.adapters import choose
from fsm.testing.graph import StateGraph
from fsm.testing.suite import Case, Covers, Criterion, Step, Suite, SuiteStats

__all__ = [
    "CRITERIA",
    "Flow",
    "generate",
    "optimal_tour",
    "regression_cases",
    "scenario_suite",
    "stale_socket_case",
]

#: The criteria :func:`generate` takes, in the order reports list them.
CRITERIA: tuple[Criterion, ...] = ("rows", "transitions", "pairs", "violations", "random")

Labels = list[tuple[Stimulus, "int | None", "Outcome | None"]]


def _replay_labels(system: System, labels: Labels) -> list[Transition]:
    """Run ``labels`` on ``system``; steps it cannot take are left out."""
    world = system.initial()
    steps = []
    for stimulus, message, outcome in labels:
        step = choose(system, world, stimulus, message, outcome)
        if step is not None:
            steps.append(step)
            world = step.target
    return steps


def _labels(steps: Iterable[Transition]) -> Labels:
    return [t.label for t in steps]


def _key(steps: Iterable[Transition]) -> tuple[object, ...]:
    return tuple(t.label for t in steps)


# -- regression cases ------------------------------------------------------------------
def stale_socket_case(system: System) -> Case:
    """The pre-fix client's shortest silent loss (the seed bug), replayed on ``system``."""
    prefix = check(DESIGNS["pre-fix"], system.environment, system.n)
    trace = prefix.verdict("no-silent-loss").trace
    assert trace is not None
    steps = _replay_labels(system, _labels(trace))
    return Case(
        id="stale-socket",
        title="the seed bug: send after a return from the background on a stale socket",
        covers=Covers(regression="pre-fix: no-silent-loss"),
        steps=[Step.of(t) for t in steps],
    )


def regression_cases(system: System) -> list[Case]:
    """Every violating trace of the other built-in designs, replayed on ``system``."""
    seen: set[tuple[object, ...]] = set()
    cases: list[Case] = []
    for other in DESIGNS.values():
        if other == system.design:
            continue
        result = check(other, system.environment, system.n)
        findings = [(f"{v.id}", v.trace) for v in result.verdicts if v.trace is not None]
        findings += [(r.rule.id, r.trace) for r in result.rules if r.trace is not None]
        for what, trace in findings:
            assert trace is not None
            steps = _replay_labels(system, _labels(trace))
            key = _key(steps)
            if key in seen or not steps:
                continue
            seen.add(key)
            cases.append(
                Case(
                    id=f"regression-{len(cases) + 1:03d}",
                    title=f"{other.name}'s {what} trace, replayed",
                    covers=Covers(regression=f"{other.name}: {what}"),
                    steps=[Step.of(t) for t in steps],
                )
            )
    return cases


# -- shortest-path criteria: rows and pairs ----------------------------------------------
@dataclass(frozen=True)
class _Target:
    name: str
    #: Steps of its shortest run; a case covers it only at exactly this step.
    depth: int
    walk: tuple[int, ...]


def _covered_at(
    graph: StateGraph, walk: tuple[int, ...], hits: Callable[[int, int | None], list[str]]
) -> dict[str, int]:
    """For a walk, each target name it covers -> the first step (1-based) covering it."""
    found: dict[str, int] = {}
    previous: int | None = None
    for n, eid in enumerate(walk, start=1):
        for name in hits(eid, previous):
            found.setdefault(name, n)
        previous = eid
    return found


def _shortest_cases(
    graph: StateGraph,
    targets: list[_Target],
    hits: Callable[[int, int | None], list[str]],
    prefix: str,
    make_covers: Callable[[list[str]], Covers],
) -> list[Case]:
    """One case per target by a shortest run, dropping runs whose targets a longer
    kept run covers at the same depth (so each target stays covered by a shortest run)."""
    depth = {t.name: t.depth for t in targets}
    remaining = set(depth)
    kept: list[tuple[tuple[int, ...], list[str]]] = []
    for target in sorted(targets, key=lambda t: (-t.depth, t.name)):
        if target.name not in remaining:
            continue
        found = _covered_at(graph, target.walk, hits)
        covers = sorted(n for n, at in found.items() if n in remaining and at == depth[n])
        remaining.difference_update(covers)
        kept.append((target.walk, covers))
    kept.sort(key=lambda k: (len(k[0]), k[1]))
    cases = []
    for n, (walk, covers) in enumerate(kept, start=1):
        steps = graph.concretize(list(walk))
        title = covers[0] if len(covers) == 1 else f"{covers[0]} and {len(covers) - 1} more"
        cases.append(
            Case(
                id=f"{prefix}-{n:03d}",
                title=title,
                covers=make_covers(covers),
                steps=[Step.of(t) for t in steps],
            )
        )
    return cases


def _rows(graph: StateGraph) -> tuple[list[Case], int, list[str]]:
    best: dict[str, int] = {}
    for edge in graph.edges:
        for row in edge.rows:
            old = best.get(row)
            if old is None or graph.depth[edge.src] < graph.depth[graph.edges[old].src]:
                best[row] = edge.id
    targets = [
        _Target(
            row, graph.depth[graph.edges[eid].src] + 1, (*graph.path_to(graph.edges[eid].src), eid)
        )
        for row, eid in best.items()
    ]

    def hits(eid: int, previous: int | None) -> list[str]:
        return list(graph.edges[eid].rows)

    cases = _shortest_cases(graph, targets, hits, "rows", lambda c: Covers(rows=c))
    behaviour = graph.system.behaviour
    table_rows = _table_rows(behaviour)
    dead = [r for r in table_rows if r not in best]
    return cases, len(best), dead


def _table_rows(behaviour: Behaviour) -> list[str]:
    from fsm.testing.graph import row_id

    return [row_id("connection", r) for r in behaviour.connection] + [
        row_id("message", r) for r in behaviour.message
    ]


def _pair(a: str, b: str) -> str:
    return f"{a} ; then {b}"


def _pairs(graph: StateGraph) -> tuple[list[Case], int]:
    best: dict[str, tuple[int, int, int]] = {}
    for first in graph.edges:
        depth = graph.depth[first.src] + 2
        for eid in graph.out[first.dst]:
            second = graph.edges[eid]
            for a in first.rows:
                for b in second.rows:
                    name = _pair(a, b)
                    old = best.get(name)
                    if old is None or depth < old[0]:
                        best[name] = (depth, first.id, second.id)
    targets = [
        _Target(name, depth, (*graph.path_to(graph.edges[e1].src), e1, e2))
        for name, (depth, e1, e2) in best.items()
    ]

    def hits(eid: int, previous: int | None) -> list[str]:
        if previous is None:
            return []
        return [_pair(a, b) for a in graph.edges[previous].rows for b in graph.edges[eid].rows]

    return _shortest_cases(graph, targets, hits, "pairs", lambda c: Covers(pairs=c)), len(best)


# -- transitions: the optimal tour -------------------------------------------------------
@dataclass(frozen=True)
class Flow:
    """An optimal covering of every arc of a graph by walks from one start node."""

    #: The walks, as arc indices, each from the start node.
    walks: list[list[int]]
    #: The optimum: the fewest total steps of any covering (the flow's cost).
    optimum: int


def optimal_tour(states: int, arcs: list[tuple[int, int]], start: int = 0) -> Flow:
    """Cover every arc ``(src, dst)`` with walks from ``start``, in the fewest total steps.

    Every node must be reachable from ``start``. Any set of walks from ``start``
    taking every arc at least once is a flow that takes arc ``e`` ``x_e >= 1``
    times, enters ``start`` once per walk from a super-source and leaves each
    walk's last node to a super-sink, and its steps are ``sum(x_e)``. The
    minimum-cost such flow (the lower bounds of 1 become node demands; networkx's
    network simplex solves it, and its optimum is integral) is therefore a lower
    bound for every covering, and an Eulerian circuit of the flow's multigraph
    (each arc ``x_e`` times, plus the restart and end arcs through one hub),
    cut at the hub, is a covering that meets it. Among optimal coverings the
    one with the fewest walks is chosen: a restart costs one unit, a step more
    than all restarts together.
    """
    import networkx as nx  # here, not at the top: a tenth of a second of every command

    if not arcs:
        return Flow(walks=[], optimum=0)
    big = len(arcs) + 1
    g = nx.DiGraph()
    source, sink = "restart", "end"
    demand = [0] * states
    for src, dst in arcs:
        demand[src] += 1  # the mandatory traversal leaves src ...
        demand[dst] -= 1  # ... and enters dst
    # At least one walk: the first restart is mandatory too (else a graph that is
    # already balanced would get a circulation no walk from ``start`` enters).
    demand[start] -= 1
    for sid in range(states):
        g.add_node(sid, demand=demand[sid])
    g.add_node(source, demand=1)
    # Extra traversals beyond the mandatory one. Parallel arcs (same ends) share
    # one flow arc: an extra traversal may take whichever. Self-loops never help.
    for src, dst in arcs:
        if src != dst and not g.has_edge(src, dst):
            g.add_edge(src, dst, weight=big)
    g.add_edge(source, start, weight=1)
    for sid in range(states):
        g.add_edge(sid, sink, weight=0)
    g.add_edge(sink, source, weight=0)
    flow = nx.min_cost_flow(g)
    hub = "hub"
    multi = nx.MultiDiGraph()
    extra_total = 0
    first_of: dict[tuple[int, int], int] = {}
    for n, (src, dst) in enumerate(arcs):
        multi.add_edge(src, dst, key=n)
        first_of.setdefault((src, dst), n)
    for (src, dst), n in first_of.items():
        if src == dst:
            continue
        extra = flow[src].get(dst, 0)
        extra_total += extra
        for k in range(extra):
            multi.add_edge(src, dst, key=(n, k))
    for k in range(1 + flow[source][start]):
        multi.add_edge(hub, start, key=("start", k))
    for sid in range(states):
        for k in range(flow[sid].get(sink, 0)):
            multi.add_edge(sid, hub, key=("stop", sid, k))
    walks: list[list[int]] = []
    current: list[int] = []
    for _u, _v, key in nx.eulerian_circuit(multi, source=hub, keys=True):
        if isinstance(key, int):
            current.append(key)
        elif key[0] == "start":
            current = []
        elif key[0] == "stop":
            walks.append(current)
        else:
            current.append(key[0])
    return Flow(walks=walks, optimum=len(arcs) + extra_total)


def _transitions(graph: StateGraph) -> tuple[list[Case], int]:
    tour = optimal_tour(graph.states, [(e.src, e.dst) for e in graph.edges])
    seen: set[int] = set()
    cases = []
    for n, walk in enumerate(tour.walks, start=1):
        new = []
        for e in walk:
            if e not in seen:
                seen.add(e)
                new.append(graph.edges[e].name)
        steps = graph.concretize(walk)
        cases.append(
            Case(
                id=f"transitions-{n:03d}",
                title=f"{len(new)} transitions first taken here",
                covers=Covers(transitions=new),
                steps=[Step.of(t) for t in steps],
            )
        )
    return cases, tour.optimum


# -- random walks ------------------------------------------------------------------------
def _random(graph: StateGraph, seed: int, length: int, max_steps: int) -> tuple[list[Case], int]:
    rng = _rand.Random(seed)
    system = graph.system
    covered: set[int] = set()
    cases: list[Case] = []
    total = 0
    while len(covered) < len(graph.edges) and total < max_steps:
        world = system.initial()
        steps: list[Transition] = []
        new: list[str] = []
        for _ in range(min(length, max_steps - total)):
            options = system.successors(world)
            step = options[rng.randrange(len(options))]
            eid = graph.edge_of(world, step)
            if eid not in covered:
                covered.add(eid)
                new.append(graph.edges[eid].name)
            steps.append(step)
            world = step.target
            total += 1
            if len(covered) == len(graph.edges):
                break
        cases.append(
            Case(
                id=f"random-{len(cases) + 1:04d}",
                title=f"random walk {len(cases) + 1}: {len(new)} new transitions",
                covers=Covers(transitions=new),
                steps=[Step.of(t) for t in steps],
            )
        )
    return cases, len(covered)


# -- violations --------------------------------------------------------------------------
def _violations(system: System) -> list[Case]:
    result = check(system.design, system.environment, system.n)
    findings: list[tuple[str | None, str | None, list[Transition]]] = []
    for v in result.verdicts:
        if v.trace is not None:
            findings.append((v.id, v.rule, list(v.trace.steps)))
    for r in result.rules:
        if r.trace is not None:
            findings.append((None, r.rule.id, list(r.trace.steps)))
    merged: dict[tuple[object, ...], tuple[list[str], list[str], list[Transition]]] = {}
    for prop, rule, steps in findings:
        props, rules, _ = merged.setdefault(_key(steps), ([], [], steps))
        if prop is not None and prop not in props:
            props.append(prop)
        if rule is not None and rule not in rules:
            rules.append(rule)
    cases = []
    for n, (props, rules, steps) in enumerate(merged.values(), start=1):
        what = ", ".join(props + [r for r in rules if not props])
        cases.append(
            Case(
                id=f"violation-{n:03d}",
                title=f"shortest violation: {what}",
                covers=Covers(properties=props, rules=rules),
                steps=[Step.of(t) for t in steps],
            )
        )
    return cases


# -- the entry point ---------------------------------------------------------------------
def generate(
    design: Design,
    environment: Environment,
    messages: int = 2,
    criterion: Criterion = "transitions",
    *,
    seed: int = 0,
    length: int = 40,
    max_steps: int = 1_000_000,
    behaviour: Behaviour | None = None,
) -> Suite:
    """A suite for ``design`` in ``environment`` that meets ``criterion``.

    >>> from fsm.model.design import get_design, get_environment
    >>> suite = generate(get_design("hardened"), get_environment("ios-suspend"), 1, "transitions")
    >>> suite.stats.criterion_steps == suite.stats.optimum
    True
    """
    require_int("seed", seed)
    require_int("length", length, minimum=1)
    require_int("max_steps", max_steps, minimum=1)
    if not isinstance(criterion, str):
        raise InvalidArgument(f"criterion must be a str, not {type(criterion).__name__}")
    system = System(design, environment, messages, behaviour=behaviour)
    graph = StateGraph(system)
    stats = SuiteStats(steps=0)
    cases: list[Case]
    if criterion == "rows":
        cases, reached, dead = _rows(graph)
        stats = SuiteStats(steps=0, targets=reached, covered=reached, dead_rows=dead)
    elif criterion == "transitions":
        cases, optimum = _transitions(graph)
        stats = SuiteStats(steps=0, optimum=optimum, targets=len(graph.edges))
    elif criterion == "pairs":
        cases, reached = _pairs(graph)
        stats = SuiteStats(steps=0, targets=reached, covered=reached)
    elif criterion == "violations":
        cases = _violations(system) + regression_cases(system)
    elif criterion == "random":
        cases, covered = _random(graph, seed, length, max_steps)
        stats = SuiteStats(steps=0, targets=len(graph.edges), covered=covered)
    else:
        raise UnknownName("criterion", criterion, list(CRITERIA))
    if criterion == "transitions":
        stats.covered = len({e for c in cases for e in graph.edges_of(_steps_of(graph, c))})
    stats.criterion_steps = sum(len(c.steps) for c in cases)
    stale = stale_socket_case(system)
    if not any(_same_steps(stale, c) for c in cases):
        cases.append(stale)
    stats.steps = sum(len(c.steps) for c in cases)
    return Suite(
        design=design.name,
        spec=design,
        environment=environment.name,
        messages=messages,
        criterion=criterion,
        seed=seed if criterion == "random" else None,
        stats=stats,
        cases=cases,
    )


def _same_steps(a: Case, b: Case) -> bool:
    return [(s.stimulus, s.message, s.outcome) for s in a.steps] == [
        (s.stimulus, s.message, s.outcome) for s in b.steps
    ]


def _steps_of(graph: StateGraph, case: Case) -> list[Transition]:
    """Re-run a case's labels on the graph's system (to measure what it covers)."""
    system = graph.system
    world = system.initial()
    steps = []
    for s in case.steps:
        t = choose(system, world, s.stimulus, s.index, s.outcome)
        assert t is not None, f"{case.id}: {s.label()} is not a step of the system"
        steps.append(t)
        world = t.target
    return steps


def scenario_suite(scenario: Scenario, design: Design, environment: Environment) -> Suite:
    """A named scenario as a one-case suite: its steps run on ``design``, the steps the
    design makes impossible left out, each with the observation that follows."""
    system = System(design, environment, scenario.messages)
    labels: Labels = [
        (s.stimulus, None if s.message is None else s.message - 1, None) for s in scenario.steps
    ]
    steps = _replay_labels(system, labels)
    case = Case(
        id=scenario.name,
        title=scenario.summary,
        covers=Covers(regression=f"scenario {scenario.name}"),
        steps=[Step.of(t) for t in steps],
    )
    return Suite(
        design=design.name,
        spec=design,
        environment=environment.name,
        messages=scenario.messages,
        criterion="scenario",
        stats=SuiteStats(steps=len(case.steps)),
        cases=[case],
    )


# ``message_name`` is re-exported for writers that name a step's message.
_ = message_name
