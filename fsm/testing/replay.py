"""Replay a suite through an adapter and report, per failing case, the first divergence."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fsm.model.design import Design, Environment, get_design, get_environment
from fsm.model.errors import UnknownName
from fsm.testing.adapters import StepRefused, SystemUnderTest
from fsm.testing.driver import DriverAdapter, DriverFailure, neutral
from fsm.testing.observation import Observation
from fsm.testing.protocol import FIELDS
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
    #: How the system under test failed at this step (a driver crashed, hung or broke
    #: the protocol), if it did.
    error: str | None = None
    #: The end of the driver's standard error, when ``error`` is set.
    stderr: str | None = None
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
            lines.append(f"  failed: {self.error}")
        if self.stderr:
            lines.append("  driver's standard error (last lines):")
            lines.extend(f"    {line}" for line in self.stderr.splitlines())
        lines.extend(f"  {d}" for d in self.differences)
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.observed is not None:
            lines.append(f"  observed: {self.observed}")
        if len(self.trace) > 1:
            lines.append(f"  trace: {' / '.join(self.trace)}")
        return "\n".join(lines)


#: What became of a case: it ``passed``; it ``failed`` (a divergence, or the system
#: under test failed); it was ``not_applicable`` (a driver refused a step the real
#: world cannot make there); or it was ``skipped`` (it needs a stimulus or an outcome
#: the driver does not support).
Status = Literal["passed", "failed", "not_applicable", "skipped"]


class CaseResult(BaseModel):
    case: str
    passed: bool
    steps: int
    divergence: Divergence | None = None
    status: Status = "passed"
    #: Why a case was skipped.
    reason: str | None = None


class ReplayReport(BaseModel):
    """The outcome of replaying a suite through one adapter."""

    suite_design: str
    design: str
    environment: str
    adapter: str
    results: list[CaseResult]

    @property
    def passed(self) -> bool:
        """No case failed, and the run was conclusive (see :attr:`conclusive`)."""
        return self.count("failed") == 0 and self.conclusive

    @property
    def failures(self) -> list[Divergence]:
        return [r.divergence for r in self.results if r.status == "failed" and r.divergence]

    def count(self, status: Status) -> int:
        """How many cases ended with ``status``."""
        return sum(r.status == status for r in self.results)

    @property
    def not_run(self) -> int:
        """Cases that neither passed nor failed: refused steps and unsupported stimuli."""
        return self.count("not_applicable") + self.count("skipped")

    @property
    def conclusive(self) -> bool:
        """Whether the run says anything: at least one case passed, and no fewer
        cases passed than were not run (a driver that supports nothing is no pass)."""
        passed = self.count("passed")
        return passed >= 1 and passed >= self.not_run


def replay_case(
    adapter: SystemUnderTest,
    case: Case,
    design: Design,
    environment: Environment,
    messages: int,
) -> Divergence | None:
    """Run ``case`` on ``adapter``; the first divergence, or ``None`` if it passes."""
    try:
        observed = adapter.reset(design, environment, messages)
    except DriverFailure as exc:
        return Divergence(case=case.id, step=0, error=str(exc), stderr=exc.stderr or None)
    fields = adapter.observes if isinstance(adapter, DriverAdapter) else frozenset(FIELDS)
    initial = neutral(Observation.initial(messages), fields)
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
            "expected": neutral(step.expected, fields),
            "trace": list(trace),
        }
        try:
            observed = adapter.apply(step.stimulus, step.index, step.outcome)
        except StepRefused as exc:
            return Divergence(**common, refused=str(exc))
        except DriverFailure as exc:
            return Divergence(**common, error=str(exc), stderr=exc.stderr or None)
        expected = neutral(step.expected, fields)
        if observed != expected:
            return Divergence(
                **common, observed=observed, differences=expected.differences(observed)
            )
    return None


def _result(
    case: Case, divergence: Divergence | None, status: Status, reason: str | None = None
) -> CaseResult:
    return CaseResult(
        case=case.id,
        passed=status == "passed",
        steps=len(case.steps),
        divergence=divergence,
        status=status,
        reason=reason,
    )


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
    driver = adapter if isinstance(adapter, DriverAdapter) else None
    for case in suite.cases:
        if driver is not None:
            try:
                why = driver.unsupported(case)
            except DriverFailure as exc:
                failure = Divergence(
                    case=case.id, step=0, error=str(exc), stderr=exc.stderr or None
                )
                results.append(_result(case, failure, "failed"))
                continue
            if why is not None:
                results.append(_result(case, None, "skipped", why))
                continue
        divergence = replay_case(adapter, case, design, environment, suite.messages)
        if divergence is None:
            status: Status = "passed"
        elif driver is not None and divergence.refused is not None:
            status = "not_applicable"
        else:
            status = "failed"
        results.append(_result(case, divergence, status))
    return ReplayReport(
        suite_design=suite.design,
        design=design.name,
        environment=environment.name,
        adapter=adapter_name or str(getattr(adapter, "name", type(adapter).__name__)),
        results=results,
    )
