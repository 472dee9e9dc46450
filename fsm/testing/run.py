"""Running steps written by hand or by :mod:`fsm.testing.pytest_writer` on an adapter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from fsm.analysis.system import Outcome, Stimulus
from fsm.model.design import get_design, get_environment
from fsm.testing.adapters import SystemUnderTest
from fsm.testing.observation import Observation
from fsm.testing.replay import replay_case
from fsm.testing.suite import Case, Covers, Step, Suite, suite_design, suite_from_json

__all__ = ["Context", "run_case", "run_steps", "suite_from_json"]


_STIMULI = {s.value: s for s in Stimulus}
_OUTCOMES = {o.value: o for o in Outcome}


class Context(NamedTuple):
    """The built-in design and environment a case runs in, and how many messages."""

    design: str
    environment: str
    messages: int


def run_case(adapter: SystemUnderTest, suite: Suite, case_id: str) -> None:
    """Reset ``adapter`` for the design ``suite`` records, run its case ``case_id`` and
    fail with the first divergence, if any (an ``AssertionError`` a test runner shows;
    an exception the adapter raises propagates with its traceback)."""
    divergence = replay_case(
        adapter,
        suite.case(case_id),
        suite_design(suite),
        get_environment(suite.environment),
        suite.messages,
        raise_errors=True,
    )
    assert divergence is None, divergence.describe()


def run_steps(
    adapter: SystemUnderTest,
    context: Context,
    steps: Sequence[tuple[str, str | None, str | None, Observation]],
) -> None:
    """Reset ``adapter``, run ``steps`` (stimulus, message, outcome, expected) and fail
    with the first divergence, if any (an ``AssertionError`` a test runner shows)."""
    case = Case(
        id="case",
        title="",
        covers=Covers(),
        steps=[
            Step(
                stimulus=_STIMULI[stimulus],
                message=message,
                outcome=None if outcome is None else _OUTCOMES[outcome],
                expected=expected,
            )
            for stimulus, message, outcome, expected in steps
        ],
    )
    divergence = replay_case(
        adapter,
        case,
        get_design(context.design),
        get_environment(context.environment),
        context.messages,
        raise_errors=True,
    )
    assert divergence is None, divergence.describe()
