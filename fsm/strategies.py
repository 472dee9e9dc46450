"""Hypothesis strategies over the model, for property tests of code built on it.

Needs ``hypothesis`` (the ``test`` extra)::

    from hypothesis import given
    from fsm import strategies as fst

    @given(fst.walks("hardened", max_steps=30))
    def test_my_client_follows_the_model(walk):
        for step in walk:
            my_client.apply(step.stimulus.value, step.message)
            assert my_client.connection_state == step.target.connection.value

Every strategy reads the same tables as the checker; nothing here restates them.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from hypothesis import strategies as st
from pydantic import ValidationError

from fsm.analysis.system import System, Transition
from fsm.model.design import DEFAULT_ENVIRONMENT, Design, get_design, get_environment
from fsm.model.tables import CONNECTION, MESSAGE
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageEvent, MessageState

__all__ = [
    "connection_events",
    "connection_states",
    "designs",
    "message_events",
    "message_states",
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
    restates a coherence rule. ``fixed_fields`` pin features (for example
    ``designs(message_ids=True)``); with ``based_on`` (a design or a built-in
    name) every other feature shrinks towards that design's value.
    """
    base = get_design(based_on) if isinstance(based_on, str) else based_on
    unknown = sorted(set(fixed_fields) - set(Design.model_fields))
    if unknown:
        raise TypeError(f"designs(): {', '.join(unknown)} is not a Design field")
    features = [f for f in Design.model_fields if f not in ("name", "summary")]
    drawn = {f: st.sampled_from(_choices(f, base)) for f in features if f not in fixed_fields}

    def build(values: dict[str, Any]) -> Design | None:
        data = {
            "name": "generated",
            "summary": "A design drawn by hypothesis.",
            **values,
            **fixed_fields,
        }
        try:
            return Design.model_validate(data)
        except ValidationError:
            return None

    built = st.fixed_dictionaries(drawn).map(build)
    return built.filter(lambda d: d is not None).map(_present)


def _present(design: Design | None) -> Design:
    assert design is not None
    return design


def walks(
    design: Design | str,
    environment: str = DEFAULT_ENVIRONMENT,
    *,
    messages: int = 2,
    max_steps: int = 20,
) -> st.SearchStrategy[list[Transition]]:
    """Random runs of the composed system from its initial state.

    Each element is a :class:`~fsm.analysis.system.Transition`: the stimulus, the message
    it concerns, and the world after it. Shrinking shortens the run and prefers
    earlier choices among the steps offered at each point.
    """
    resolved = get_design(design) if isinstance(design, str) else design
    system = System(resolved, get_environment(environment), messages)

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
