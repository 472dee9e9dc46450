"""Replay a suite through an adapter and report, per failing case, the first divergence."""

from __future__ import annotations

from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

from fsm.model.design import Design, Environment, get_environment
from fsm.model.text import shown
from fsm.testing.adapters import StepRefused, SystemUnderTest
from fsm.testing.driver import DriverAdapter, DriverFailure, neutral
from fsm.testing.observation import Observation
from fsm.testing.protocol import FIELDS
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
    #: How the system under test failed at this step, if it did: the exception the
    #: adapter raised (type and message) other than :class:`StepRefused`, or how a
    #: driver crashed, hung or broke the protocol. A failure of the system under
    #: test, not of the suite.
    error: str | None = None
    #: The end of the driver's standard error, when a driver failed.
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
            lines.append(f"  {self.error}")
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
        what = d.error.split(":", 1)[0]
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
    A driver's failure (:class:`~fsm.testing.driver.DriverFailure`) keeps the end
    of its standard error. Only the fields a driver observes are compared.
    """
    try:
        observed: object = adapter.reset(design, environment, messages)
    except StepRefused as exc:
        return Divergence(case=case.id, step=0, refused=_inert(str(exc)))
    except DriverFailure as exc:
        return Divergence(case=case.id, step=0, error=_inert(str(exc)), stderr=exc.stderr or None)
    except (Exception, SystemExit) as exc:
        if raise_errors:
            raise
        return Divergence(case=case.id, step=0, error=_error(exc))
    fields = adapter.observes if isinstance(adapter, DriverAdapter) else frozenset(FIELDS)
    initial = neutral(Observation.initial(messages), fields)
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
            "expected": neutral(step.expected, fields),
            "trace": list(trace),
        }
        try:
            observed = adapter.apply(step.stimulus, step.index, step.outcome)
        except StepRefused as exc:
            return Divergence(**common, refused=_inert(str(exc)))
        except DriverFailure as exc:
            return Divergence(**common, error=_inert(str(exc)), stderr=exc.stderr or None)
        except (Exception, SystemExit) as exc:
            if raise_errors:
                raise
            return Divergence(**common, error=_error(exc))
        if not isinstance(observed, Observation):
            return Divergence(**common, error=_not_an_observation(observed))
        expected = neutral(step.expected, fields)
        if observed != expected:
            return Divergence(
                **common, observed=observed, differences=expected.differences(observed)
            )
    return None


def _inert(text: str, limit: int = 500) -> str:
    """Text from the adapter as one inert line: non-printable characters escaped
    (``\\n``, ``\\x1b``), at most ``limit`` characters."""
    text = shown(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error(exc: BaseException) -> str:
    text = str(exc)
    return _inert("the adapter raised " + type(exc).__name__ + (f": {text}" if text else ""))


def _not_an_observation(value: object) -> str:
    return f"the adapter raised TypeError: returned a {type(value).__name__}, not an Observation"


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
    design the suite records, :func:`~fsm.testing.suite.suite_design`) in
    ``environment`` (default: the suite's)."""
    if design is None:
        design = suite_design(suite)
    if environment is None:
        environment = get_environment(suite.environment)
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
