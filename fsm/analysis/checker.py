"""The checker: explore a design exhaustively and judge every property.

:func:`check` returns a typed :class:`CheckResult`: one :class:`Verdict` per
property of :data:`~fsm.analysis.properties.PROPERTIES` (with its shortest
counterexample as a :class:`~fsm.analysis.trace.Trace` and the explanation of
its last state), and one :class:`RuleVerdict` per forbidden rule (the rows of
the design's table that match it, and the shortest trace that fires one).
:meth:`CheckResult.report` renders it to the JSON wire format.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from fsm.analysis.explore import Exploration, explore
from fsm.analysis.properties import PROPERTIES, Property, get_property
from fsm.analysis.report import (
    CheckReport,
    PropertyResult,
    RuleResult,
    reason_text,
    step_views,
    verdict_word,
)
from fsm.analysis.system import System
from fsm.analysis.trace import Reason, Trace
from fsm.model.behaviour import Behaviour
from fsm.model.design import Design, Environment
from fsm.model.errors import UnknownName
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.tables import Row

__all__ = ["CheckResult", "RuleVerdict", "Verdict", "check", "judge", "static_rows"]


@dataclass(frozen=True)
class Verdict:
    """One property's verdict on one exploration: ``holds`` is ``None`` when the
    property says nothing about the design (its ``explanation`` says why)."""

    property: Property
    holds: bool | None
    trace: Trace | None = None
    #: For ``no-forbidden-transition``: the rule the counterexample breaks.
    rule: str | None = None
    #: Why the trace's last state (or step) violates the property.
    explanation: tuple[Reason, ...] = ()

    @builtins.property
    def id(self) -> str:
        return self.property.id

    @builtins.property
    def violated(self) -> bool:
        """The property applies and does not hold."""
        return self.holds is False

    @builtins.property
    def word(self) -> str:
        """``yes``, ``NO`` or ``n/a``, as reports print it."""
        return verdict_word(self.holds)


@dataclass(frozen=True)
class RuleVerdict:
    """A forbidden rule: the design's rows that match it, and how it is reached."""

    rule: ForbiddenRule
    rows: tuple[Row[Any, Any], ...]
    trace: Trace | None

    @property
    def reachable(self) -> bool:
        return self.trace is not None

    @property
    def edges(self) -> list[str]:
        return [f"{r.source} -{r.event}-> {r.target}" for r in self.rows]


@dataclass(frozen=True)
class CheckResult:
    """Every verdict for one design in one environment, typed."""

    design: Design
    environment: Environment
    messages: int
    states: int
    transitions: int
    verdicts: tuple[Verdict, ...]
    rules: tuple[RuleVerdict, ...]

    @property
    def holds(self) -> bool:
        """No property that applies is violated."""
        return not any(v.violated for v in self.verdicts)

    def verdict(self, pid: str) -> Verdict:
        """The verdict on property ``pid``; :class:`~fsm.model.errors.UnknownName` if
        no such property exists."""
        prop = get_property(pid)
        return next(v for v in self.verdicts if v.property is prop)

    def rule(self, rule_id: str) -> RuleVerdict:
        for r in self.rules:
            if r.rule.id == rule_id:
                return r
        raise UnknownName("forbidden rule", rule_id, [r.rule.id for r in self.rules])

    def report(self) -> CheckReport:
        """The wire format (``fsm check --json``)."""
        return CheckReport(
            design=self.design.name,
            environment=self.environment.name,
            messages=self.messages,
            states=self.states,
            transitions=self.transitions,
            properties=[
                PropertyResult(
                    id=v.property.id,
                    statement=v.property.statement,
                    kind=v.property.kind.name,
                    holds=v.holds,
                    rule=v.rule,
                    counterexample=None if v.trace is None else step_views(v.trace),
                    explanation=[reason_text(r) for r in v.explanation],
                )
                for v in self.verdicts
            ],
            forbidden=[
                RuleResult(
                    id=r.rule.id,
                    machine=r.rule.machine,
                    reason=r.rule.reason,
                    evidence=r.rule.evidence,
                    edges=r.edges,
                    reachable=r.reachable,
                    counterexample=None if r.trace is None else step_views(r.trace),
                )
                for r in self.rules
            ],
        )


def static_rows(behaviour: Behaviour, rule: ForbiddenRule) -> tuple[Row[Any, Any], ...]:
    """The rows of the design's table that match ``rule``."""
    table = behaviour.connection if rule.machine == "connection" else behaviour.message
    return tuple(row for row in table if rule.matches_row(row))


def judge(prop: Property, ex: Exploration) -> Verdict:
    """``prop``'s verdict on ``ex``, with a shortest counterexample and its explanation;
    "not applicable" (``holds`` ``None``) with the reason where it says nothing."""
    why = prop.why_inapplicable(ex.system.behaviour)
    if why is not None:
        return Verdict(prop, None, explanation=(Reason(None, why),))
    finding = prop.find(ex)
    if finding is None:
        return Verdict(prop, True)
    trace = prop.trace(ex, finding)
    return Verdict(prop, False, trace, finding.rule, prop.explain(ex, trace))


def check(
    design: Design, environment: Environment, messages: int = 2, max_states: int | None = None
) -> CheckResult:
    """Explore ``design`` in ``environment`` exhaustively and judge every property.

    >>> from fsm.model.design import get_design, get_environment
    >>> result = check(get_design("pre-fix"), get_environment("ios-suspend"))
    >>> lost = result.verdict("no-silent-loss")
    >>> [step.stimulus.value for step in lost.trace]
    ['connect', 'app_background', 'app_foreground', 'send']
    """
    system = System(design, environment, messages)
    ex = explore(system, max_states)
    verdicts = tuple(judge(prop, ex) for prop in PROPERTIES)
    rules = []
    for rule in FORBIDDEN:
        hit = ex.rule_hits.get(rule.id)
        rules.append(
            RuleVerdict(
                rule,
                static_rows(system.behaviour, rule),
                None if hit is None else ex.trace_through(*hit),
            )
        )
    return CheckResult(
        design=design,
        environment=environment,
        messages=messages,
        states=len(ex.worlds),
        transitions=ex.transitions,
        verdicts=verdicts,
        rules=tuple(rules),
    )
