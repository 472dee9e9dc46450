"""Hypothesis strategies over the model, for property tests of code built on it.

Needs ``hypothesis`` (the ``test`` extra)::

    from hypothesis import given
    from fsm import get_design, get_environment
    from fsm import strategies as fst

    @given(fst.walks("hardened", max_steps=30))
    def test_my_client_follows_the_model(walk):
        adapter = MyClientAdapter()              # your SystemUnderTest
        adapter.reset(get_design("hardened"), get_environment("ios-suspend"), 2)
        for step in walk:
            observed = adapter.apply(step.stimulus, step.message, step.outcome)
            assert observed == fst.observation(step)

Compare observations (what a client and a server can show: ``isConnected``,
each message's visible state and pending-retry membership, the server's
copies), never the model's connection state: ``suspended_stale`` means the
client *believes* it is connected on a dead socket, which no client can see
about itself. :class:`ConformanceMachine` does the above statefully.

Every strategy reads the same tables as the checker; nothing here restates them.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from hypothesis import strategies as st
from pydantic import ValidationError

from fsm.analysis.properties import get_property
from fsm.analysis.system import System, Transition
from fsm.model.design import DEFAULT_ENVIRONMENT, Design, get_design, get_environment
from fsm.model.tables import CONNECTION, MESSAGE
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageEvent, MessageState
from fsm.testing.graph import StateGraph
from fsm.testing.observation import Observation, observe
from fsm.testing.stateful import ConformanceMachine

__all__ = [
    "ConformanceMachine",
    "connection_events",
    "connection_states",
    "designs",
    "message_events",
    "message_states",
    "observation",
    "walks",
]


def connection_states() -> st.SearchStrategy[ConnectionState]:
    return st.sampled_from(list(CONNECTION.states))


def connection_events() -> st.SearchStrategy[ConnectionEvent]:
    return st.sampled_from(list(CONNECTION.events))


def message_states() -> st.SearchStrategy[MessageState]:
    return st.sampled_from(list(MESSAGE.states))


def message_events() -> st.SearchStrategy[MessageEvent]:
    return st.sampled_from(list(MESSAGE.events))


def _choices(field: str, base: Design | None) -> list[Any]:
    """Every value the ``Design`` model accepts for ``field``, ``base``'s value first."""
    info = Design.model_fields[field]
    annotation = info.annotation
    values: list[Any]
    if annotation is bool:
        values = [False, True]
    elif get_origin(annotation) is Literal:
        values = list(get_args(annotation))
    elif annotation is int:
        low = next(m.ge for m in info.metadata if getattr(m, "ge", None) is not None)
        high = next(m.le for m in info.metadata if getattr(m, "le", None) is not None)
        values = list(range(low, high + 1))
    else:  # pragma: no cover - a new kind of feature field needs a strategy here
        raise TypeError(f"no strategy for Design.{field}: {annotation!r}")
    if base is not None:
        first = getattr(base, field)
        values = [first, *(v for v in values if v != first)]
    return values


def designs(based_on: Design | str | None = None, **fixed_fields: Any) -> st.SearchStrategy[Design]:
    """Any valid design: every feature combination the ``Design`` model accepts.

    The values each feature may take are read off the model's own field types
    and bounds, and validity is the model's own validation, so nothing here
    restates a coherence rule: a draw the model refuses has its features with a
    default (the seed's behaviour) set back to it one at a time, the last
    declared first, until the model accepts it, or is dropped. ``fixed_fields``
    pin features (for example ``designs(message_ids=True)``); with ``based_on``
    (a design or a built-in name) every other feature shrinks towards that
    design's value.
    """
    base = get_design(based_on) if isinstance(based_on, str) else based_on
    unknown = sorted(set(fixed_fields) - set(Design.model_fields))
    if unknown:
        raise TypeError(f"designs(): {', '.join(unknown)} is not a Design field")
    features = [f for f in Design.model_fields if f not in ("name", "summary")]
    drawn = {f: st.sampled_from(_choices(f, base)) for f in features if f not in fixed_fields}

    # Features with a default (the seed's behaviour), the last declared first: an
    # incoherent draw has them set back one at a time until the model accepts it.
    defaults = [
        f
        for f in reversed(features)
        if not Design.model_fields[f].is_required() and f not in fixed_fields
    ]

    def build(values: dict[str, Any]) -> Design | None:
        data = {
            "name": "generated",
            "summary": "A design drawn by hypothesis.",
            **values,
            **fixed_fields,
        }
        for reset in [None, *defaults]:
            if reset is not None:
                data[reset] = Design.model_fields[reset].default
            try:
                return Design.model_validate(data)
            except ValidationError:
                continue
        return None

    built = st.fixed_dictionaries(drawn).map(build)
    return built.filter(lambda d: d is not None).map(_present)


def _present(design: Design | None) -> Design:
    assert design is not None
    return design


def observation(step: Transition) -> Observation:
    """What a test should read from the client and server after ``step``."""
    return observe(step.target)


def walks(
    design: Design | str,
    environment: str = DEFAULT_ENVIRONMENT,
    *,
    messages: int = 2,
    max_steps: int = 20,
    towards: str | None = None,
) -> st.SearchStrategy[list[Transition]]:
    """Random runs of the composed system from its initial state.

    Each element is a :class:`~fsm.analysis.system.Transition`: the stimulus, the
    message it concerns, the outcome, and the world after it. Shrinking shortens
    the run and prefers earlier choices among the steps offered at each point.

    ``towards`` aims every walk at a table row (as suites name it,
    ``"message: pending -ws_send_failed-> sent_ws"``) or a property id
    (``"no-silent-loss"``): the random part only takes steps after which the
    target is still reachable, and the walk ends with a shortest way to it (a
    step firing the row, or into a state violating the property), so it may
    be longer than ``max_steps`` by that much.
    """
    resolved = get_design(design) if isinstance(design, str) else design
    system = System(resolved, get_environment(environment), messages)
    if towards is not None:
        return _aimed(system, towards, max_steps)

    @st.composite
    def walk(draw: st.DrawFn) -> list[Transition]:
        world = system.initial()
        steps: list[Transition] = []
        length = draw(st.integers(0, max_steps))
        for _ in range(length):
            options = system.successors(world)
            if not options:  # pragma: no cover - every world can at least background
                break
            step = options[draw(st.integers(0, len(options) - 1))]
            steps.append(step)
            world = step.target
        return steps

    return walk()


def _goal(graph: StateGraph, towards: str) -> set[int]:
    if towards in graph.rows() or ":" in towards:
        goal = {e.id for e in graph.edges if towards in e.rows}
    else:
        prop = get_property(towards)
        if prop.bad_states is None:  # a step rule: any step breaking a forbidden rule
            goal = {e.id for e in graph.edges if e.rules}
        else:
            bad = prop.bad_states(graph.ex)
            goal = {e.id for e in graph.edges if bad[e.dst] and not bad[e.src]}
            if bad[0]:  # pragma: no cover - no built-in design violates at the start
                raise ValueError(f"{towards} is violated in the initial state")
    if not goal:
        raise ValueError(f"{towards!r} is never reached by {graph.system.design.name}")
    return goal


def _aimed(system: System, towards: str, max_steps: int) -> st.SearchStrategy[list[Transition]]:
    graph = StateGraph(system)
    goal = _goal(graph, towards)
    alive = graph.can_reach(goal)

    @st.composite
    def walk(draw: st.DrawFn) -> list[Transition]:
        world = system.initial()
        steps: list[Transition] = []
        for _ in range(draw(st.integers(0, max_steps))):
            options = [t for t in system.successors(world) if alive[graph.state_of(t.target)]]
            step = options[draw(st.integers(0, len(options) - 1))]
            steps.append(step)
            world = step.target
        rest = graph.shortest_to(graph.state_of(world), goal)
        return steps + graph.concretize(rest, start=world)

    return walk()
