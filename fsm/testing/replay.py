"""Replay a suite through an adapter and report, per failing case, the first divergence."""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel, Field

from fsm.model.design import Design, Environment, get_environment
from fsm.testing.adapters import StepRefused, SystemUnderTest
from fsm.testing.observation import Observation
from fsm.testing.suite import Case, Suite, suite_design

__all__ = [
    "CaseResult",
    "Divergence",
    "FailureGroup",
    "ReplayReport",
    "group_failures",
    "replay",
    "replay_case",
]


class Divergence(BaseModel):
    """Where a case first went differently on the system under test."""

    case: str
    #: 1-based step number; 0 means the state right after reset.
    step: int
    stimulus: str | None = None
    message: str | None = None
    outcome: str | None = None
    expected: Observation | None = None
    observed: Observation | None = None
    #: Why the system under test could not take the step, if it refused it.
    refused: str | None = None
    #: The exception the adapter raised (type and message), if it raised one other
    #: than :class:`StepRefused`: a failure of the system under test, not of the suite.
    error: str | None = None
    differences: list[str] = Field(default=[])
    #: The steps taken before, as labels (``send m1 (ws_delivered)``).
    trace: list[str] = Field(default=[])

    def describe(self) -> str:
        """A few lines for a terminal."""
        what = "reset" if self.step == 0 else f"step {self.step} ({self.trace[-1]})"
        lines = [f"{self.case}: diverges at {what}"]
        if self.refused is not None:
            lines.append(f"  refused: {self.refused}")
        if self.error is not None:
            lines.append(f"  the adapter raised {self.error}")
        lines.extend(f"  {d}" for d in self.differences)
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.observed is not None:
            lines.append(f"  observed: {self.observed}")
        if len(self.trace) > 1:
            lines.append(f"  trace: {' / '.join(self.trace)}")
        return "\n".join(lines)


class CaseResult(BaseModel):
    case: str
    passed: bool
    steps: int
    divergence: Divergence | None = None


class ReplayReport(BaseModel):
    """The outcome of replaying a suite through one adapter."""

    suite_design: str
    design: str
    environment: str
    adapter: str
    results: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[Divergence]:
        return [r.divergence for r in self.results if r.divergence is not None]

    def groups(self) -> list[FailureGroup]:
        """The failures grouped by their first divergence (:func:`group_failures`)."""
        return group_failures(self.failures)


class FailureKey(NamedTuple):
    """What two failures share when they are one bug seen from several cases: the step
    kind (stimulus and outcome) and the first difference (field, expected, observed),
    or the refusal or error."""

    step: str
    what: str


class FailureGroup(NamedTuple):
    key: FailureKey
    failures: list[Divergence]


def _key(d: Divergence) -> FailureKey:
    if d.step == 0:
        step = "reset"
    else:
        step = str(d.stimulus) + ("" if d.outcome is None else f" ({d.outcome})")
    if d.error is not None:
        what = f"raised {d.error.split(':', 1)[0]}"
    elif d.refused is not None:
        what = "refused"
    else:
        what = d.differences[0] if d.differences else "differs"
    return FailureKey(step, what)


def group_failures(failures: list[Divergence]) -> list[FailureGroup]:
    """``failures`` grouped by :class:`FailureKey`, the largest group first (then in the
    order their first case came); each group keeps its failures in suite order."""
    groups: dict[FailureKey, list[Divergence]] = {}
    for d in failures:
        groups.setdefault(_key(d), []).append(d)
    order = {k: n for n, k in enumerate(groups)}
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), order[kv[0]]))
    return [FailureGroup(k, v) for k, v in ranked]


def replay_case(
    adapter: SystemUnderTest,
    case: Case,
    design: Design,
    environment: Environment,
    messages: int,
    *,
    raise_errors: bool = False,
) -> Divergence | None:
    """Run ``case`` on ``adapter``; the first divergence, or ``None`` if it passes.

    An exception from the adapter (any but ``KeyboardInterrupt``, ``SystemExit``
    included) is a divergence naming the case and step, with ``raise_errors`` False;
    with it True (how the pytest module runs), it propagates with its traceback.
    """
    try:
        observed: object = adapter.reset(design, environment, messages)
    except StepRefused as exc:
        return Divergence(case=case.id, step=0, refused=_inert(str(exc)))
    except (Exception, SystemExit) as exc:
        if raise_errors:
            raise
        return Divergence(case=case.id, step=0, error=_error(exc))
    initial = Observation.initial(messages)
    if not isinstance(observed, Observation):
        return Divergence(case=case.id, step=0, error=_not_an_observation(observed))
    if observed != initial:
        return Divergence(
            case=case.id,
            step=0,
            expected=initial,
            observed=observed,
            differences=initial.differences(observed),
        )
    trace: list[str] = []
    for n, step in enumerate(case.steps, start=1):
        trace.append(step.label())
        common = {
            "case": case.id,
            "step": n,
            "stimulus": step.stimulus.value,
            "message": step.message,
            "outcome": None if step.outcome is None else step.outcome.value,
            "expected": step.expected,
            "trace": list(trace),
        }
        try:
            observed = adapter.apply(step.stimulus, step.index, step.outcome)
        except StepRefused as exc:
            return Divergence(**common, refused=_inert(str(exc)))
        except (Exception, SystemExit) as exc:
            if raise_errors:
                raise
            return Divergence(**common, error=_error(exc))
        if not isinstance(observed, Observation):
            return Divergence(**common, error=_not_an_observation(observed))
        if observed != step.expected:
            return Divergence(
                **common, observed=observed, differences=step.expected.differences(observed)
            )
    return None


def _inert(text: str, limit: int = 500) -> str:
    """Text from the adapter as one inert line: non-printable characters escaped
    (``\\n``, ``\\x1b``), at most ``limit`` characters."""
    if not text.isprintable():
        text = "".join(
            ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode()
            for ch in text
        )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(exc: BaseException) -> str:
    text = str(exc)
    return _inert(type(exc).__name__ + (f": {text}" if text else ""))


def _not_an_observation(value: object) -> str:
    return f"TypeError: returned a {type(value).__name__}, not an Observation"


def replay(
    suite: Suite,
    adapter: SystemUnderTest,
    design: Design | None = None,
    environment: Environment | None = None,
    *,
    adapter_name: str | None = None,
) -> ReplayReport:
    """Replay every case of ``suite`` on ``adapter``, reset for ``design`` (default: the
    design the suite records, :func:`~fsm.testing.suite.suite_design`) in
    ``environment`` (default: the suite's)."""
    if design is None:
        design = suite_design(suite)
    if environment is None:
        environment = get_environment(suite.environment)
    results = []
    for case in suite.cases:
        divergence = replay_case(adapter, case, design, environment, suite.messages)
        results.append(
            CaseResult(
                case=case.id,
                passed=divergence is None,
                steps=len(case.steps),
                divergence=divergence,
            )
        )
    return ReplayReport(
        suite_design=suite.design,
        design=design.name,
        environment=environment.name,
        adapter=adapter_name or str(getattr(adapter, "name", type(adapter).__name__)),
        results=results,
    )
