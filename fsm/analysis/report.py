"""The wire format: :class:`CheckReport` and its parts, rendered from typed results.

This is what ``fsm check --json`` prints and ``fsm schema report`` describes.
It is made from the typed :class:`~fsm.analysis.trace.Trace` steps and
:class:`~fsm.analysis.checker.CheckResult` by the functions here, the only
place where a message index becomes a name (``m1`` is message 0) and an
unsent message becomes ``-``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from typing_extensions import assert_never

from fsm.analysis.properties import Kind, property_ids
from fsm.analysis.system import Fired, Outcome, Transition, World
from fsm.analysis.trace import Reason, Trace, broken_rules
from fsm.model.errors import UnknownName
from fsm.model.vocabulary import Socket

__all__ = [
    "UNSENT",
    "CheckReport",
    "CheckReports",
    "FiredView",
    "MessageView",
    "PropertyResult",
    "RuleResult",
    "StepView",
    "detail",
    "message_name",
    "reason_text",
    "report_schema",
    "start_view",
    "step_view",
    "step_views",
    "verdict_word",
    "world_view",
]

#: How a message the user has not sent yet is shown.
UNSENT = "-"


def message_name(index: int) -> str:
    """``m1`` for message 0: messages are named in the order the user sends them."""
    return f"m{index + 1}"


def verdict_word(holds: bool | None) -> str:
    """How a verdict is printed: ``yes``, ``NO``, or ``n/a`` for a property that says
    nothing about the design."""
    return "n/a" if holds is None else "yes" if holds else "NO"


def reason_text(reason: Reason) -> str:
    """``m2: the server never received it, ...`` or, for the world, just the text."""
    if reason.message is None:
        return reason.text
    return f"{message_name(reason.message)}: {reason.text}"


def detail(before: World, step: Transition) -> str:
    """What the world did in ``step``, in words (empty for most steps)."""
    outcome = step.outcome
    kind = "half-open" if before.socket is Socket.half_open else "suspended"
    match outcome:
        case None:
            return ""
        case Outcome.rest_direct:
            return "not connected: sent over REST"
        case Outcome.ws_delivered:
            return "sent over the WebSocket"
        case Outcome.ws_raised:
            return f"WebSocket send into a {kind} socket raised"
        case Outcome.ws_vanished:
            return f"WebSocket send into a {kind} socket returned; the bytes vanished"
        case Outcome.buffered:
            return "not connected: kept in the offline buffer"
        case Outcome.queued:
            return "not connected: waits in the pending-retry list"
        case Outcome.refused:
            return "not connected: refused, shown as failed"
        case Outcome.deadline_passed:
            return "heartbeat deadline passed: buffered, the connection closed"
        case _:
            assert_never(outcome)


class MessageView(BaseModel):
    """One message in one step of a trace."""

    model_config = ConfigDict(frozen=True)

    id: str
    state: str
    held: bool
    on_server: int


class FiredView(BaseModel):
    """A table row a step fired: ``machine`` is 'connection' or a message id."""

    model_config = ConfigDict(frozen=True)

    machine: str
    source: str
    event: str
    target: str
    rules: list[str] = []


class StepView(BaseModel):
    """One step of a counterexample: the event and the world after it."""

    model_config = ConfigDict(frozen=True)

    event: str
    message: str | None
    outcome: str | None = None
    detail: str
    connection: str
    socket: str
    foreground: bool
    network: bool
    messages: list[MessageView]
    fired: list[FiredView]


_PROPERTY_IDS: list[JsonValue] = list(property_ids())
_KINDS: list[JsonValue] = [k.name for k in Kind]


class PropertyResult(BaseModel):
    """One property's verdict, with its shortest counterexample and why it violates."""

    id: str = Field(json_schema_extra={"enum": _PROPERTY_IDS})
    statement: str
    kind: str = Field(json_schema_extra={"enum": _KINDS})
    #: ``null`` when the property says nothing about the design (not applicable);
    #: the explanation says why.
    holds: bool | None
    rule: str | None = None
    counterexample: list[StepView] | None = None
    #: Why the counterexample's last state (or step) violates the property.
    explanation: list[str] = []


class RuleResult(BaseModel):
    """A forbidden transition: is it in the design's table, is it reachable."""

    id: str
    machine: str
    reason: str
    evidence: str
    edges: list[str]
    reachable: bool
    counterexample: list[StepView] | None = None


class CheckReport(BaseModel):
    """The verdicts for one design in one environment."""

    design: str
    environment: str
    messages: int
    states: int
    transitions: int
    properties: list[PropertyResult]
    forbidden: list[RuleResult]

    @property
    def holds(self) -> bool:
        """No property that applies is violated."""
        return not any(p.holds is False for p in self.properties)

    def property(self, pid: str) -> PropertyResult:
        for p in self.properties:
            if p.id == pid:
                return p
        raise UnknownName("property", pid, [p.id for p in self.properties])


class CheckReports(BaseModel):
    """The verdicts for several designs (``fsm check --json`` without ``--design``)."""

    reports: list[CheckReport]

    @property
    def holds(self) -> bool:
        return all(r.holds for r in self.reports)


def report_schema() -> dict[str, Any]:
    """The JSON Schema of what ``fsm check --json`` prints: one :class:`CheckReport`
    for one design, a :class:`CheckReports` for several (exactly one of them matches)."""
    one = CheckReport.model_json_schema(ref_template="#/$defs/{model}")
    many = CheckReports.model_json_schema(ref_template="#/$defs/{model}")
    defs = {**one.pop("$defs", {}), **many.pop("$defs", {})}
    defs["CheckReport"] = one
    defs["CheckReports"] = many
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "fsm check --json",
        "description": "A CheckReport when one design is checked (--design or --spec), "
        "a CheckReports object listing one CheckReport per design otherwise.",
        "oneOf": [{"$ref": "#/$defs/CheckReport"}, {"$ref": "#/$defs/CheckReports"}],
        "$defs": dict(sorted(defs.items())),
    }


def _fired_view(f: Fired) -> FiredView:
    return FiredView(
        machine="connection" if f.message is None else message_name(f.message),
        source=f.row.source.value,
        event=f.row.event.value,
        target=f.row.target.value,
        rules=[rule.id for rule in broken_rules(f)],
    )


def world_view(
    w: World,
    event: str,
    message: int | None = None,
    outcome: str | None = None,
    text: str = "",
    fired: tuple[Fired, ...] = (),
) -> StepView:
    """One row of a trace: ``event`` and the world ``w`` after it."""
    return StepView(
        event=event,
        message=None if message is None else message_name(message),
        outcome=outcome,
        detail=text,
        connection=w.connection.value,
        socket=w.socket.value,
        foreground=w.foreground,
        network=w.network,
        messages=[
            MessageView(
                id=message_name(i),
                state=UNSENT if m.state is None else m.state.value,
                held=m.held,
                on_server=m.server,
            )
            for i, m in enumerate(w.messages)
        ],
        fired=[_fired_view(f) for f in fired],
    )


def step_view(before: World, step: Transition) -> StepView:
    return world_view(
        step.target,
        step.stimulus.value,
        step.message,
        None if step.outcome is None else step.outcome.value,
        detail(before, step),
        step.fired,
    )


def step_views(trace: Trace) -> list[StepView]:
    """Every step of ``trace`` as a :class:`StepView` (without the start)."""
    return [step_view(trace.before(n), step) for n, step in enumerate(trace.steps)]


def start_view(world: World) -> StepView:
    """The row before a trace's first step: the world it starts from."""
    return world_view(world, "(start)")
