"""Replay a suite through an adapter and report, per failing case, the first divergence."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fsm.model.design import Design, Environment, get_design, get_environment
from fsm.model.errors import UnknownName
from fsm.testing.adapters import StepRefused, SystemUnderTest
from fsm.testing.observation import Observation
from fsm.testing.suite import Case, Suite

__all__ = ["CaseResult", "Divergence", "ReplayReport", "replay", "replay_case"]


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
    differences: list[str] = Field(default=[])
    #: The steps taken before, as labels (``send m1 (ws_delivered)``).
    trace: list[str] = Field(default=[])

    def describe(self) -> str:
        """A few lines for a terminal."""
        what = "reset" if self.step == 0 else f"step {self.step} ({self.trace[-1]})"
        lines = [f"{self.case}: diverges at {what}"]
        if self.refused is not None:
            lines.append(f"  refused: {self.refused}")
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


def replay_case(
    adapter: SystemUnderTest,
    case: Case,
    design: Design,
    environment: Environment,
    messages: int,
) -> Divergence | None:
    """Run ``case`` on ``adapter``; the first divergence, or ``None`` if it passes."""
    observed = adapter.reset(design, environment, messages)
    initial = Observation.initial(messages)
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
            return Divergence(**common, refused=str(exc))
        if observed != step.expected:
            return Divergence(
                **common, observed=observed, differences=step.expected.differences(observed)
            )
    return None


def replay(
    suite: Suite,
    adapter: SystemUnderTest,
    design: Design | None = None,
    environment: Environment | None = None,
    *,
    adapter_name: str | None = None,
) -> ReplayReport:
    """Replay every case of ``suite`` on ``adapter``, reset for ``design`` (default: the
    suite's own, which must then be a built-in) in ``environment`` (the suite's)."""
    if design is None:
        design = get_design(suite.design)
    if environment is None:
        try:
            environment = get_environment(suite.environment)
        except UnknownName:
            raise
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
