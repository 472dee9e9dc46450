"""The suite format: cases of steps, each with the observation a test expects.

A :class:`Suite` is plain data (pydantic, JSON on the wire; ``fsm schema
suite`` prints its JSON Schema) so a harness in any language can replay it:
for each case, reset the client and a test server, then for each step make
the world do ``stimulus`` (aimed at ``message``, answered as ``outcome``) and
compare what the client and server show with ``expected``.

Every generator (:mod:`fsm.testing.generators`), the regression cases and the
named scenarios produce this one format.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fsm.analysis.report import message_name
from fsm.analysis.system import Outcome, Stimulus, Transition
from fsm.analysis.trace import Trace
from fsm.model.design import ENVIRONMENTS, Design, get_design, read_regular_file
from fsm.model.errors import SpecError, UnknownName
from fsm.model.stimuli import MESSAGE_STIMULI as AIMED_STIMULI
from fsm.testing.observation import Observation, observe

__all__ = [
    "FORMAT",
    "MAX_SUITE_BYTES",
    "MESSAGE_STIMULI",
    "Case",
    "Covers",
    "Criterion",
    "Step",
    "Suite",
    "SuiteStats",
    "case_from_steps",
    "load_suite",
    "message_index",
    "suite_design",
    "suite_from_json",
]

#: The format tag every suite file carries.
FORMAT = "fsm-suite/1"

Criterion = Literal["rows", "transitions", "pairs", "violations", "random", "scenario"]

#: The largest suite file :func:`load_suite` reads (a generated suite of 8 messages
#: by the transitions criterion is a few MiB).
MAX_SUITE_BYTES = 64 * 1024 * 1024

_MESSAGE = r"^m[1-9][0-9]*$"
_NAME = r"^[a-z0-9][a-z0-9_.-]*$"

#: The stimuli that concern one message already sent: a step of these names one
#: (:data:`fsm.model.stimuli.MESSAGE_STIMULI`: done, the REST outcomes, ack_timeout).
MESSAGE_STIMULI = frozenset(AIMED_STIMULI)


def message_index(name: str | None) -> int | None:
    """``0`` for ``"m1"``: the inverse of :func:`~fsm.analysis.report.message_name`."""
    return None if name is None else int(name[1:]) - 1


class Step(BaseModel):
    """One step: what the world does, and what the test then expects to read."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    stimulus: Stimulus = Field(description="What happens (see `fsm.Stimulus`).")
    message: str | None = Field(
        default=None,
        pattern=_MESSAGE,
        description="The message the step concerns: m1 is the first one the user sends.",
    )
    outcome: Outcome | None = Field(
        default=None,
        description="How the world answers a send: over REST because not connected, "
        "delivered over an open WebSocket, raised by a dead socket, or swallowed by one.",
    )
    expected: Observation = Field(description="What the client and server show afterwards.")

    @classmethod
    def of(cls, transition: Transition) -> Step:
        """The step a composed-system transition makes, with its observation."""
        return cls(
            stimulus=transition.stimulus,
            message=None if transition.message is None else message_name(transition.message),
            outcome=transition.outcome,
            expected=observe(transition.target),
        )

    @property
    def index(self) -> int | None:
        """The message as an index (0 for m1), as :class:`SystemUnderTest` takes it."""
        return message_index(self.message)

    def label(self) -> str:
        """``send m2 (ws_raised)``."""
        text = str(self.stimulus.value)
        if self.message is not None:
            text += f" {self.message}"
        if self.outcome is not None:
            text += f" ({self.outcome.value})"
        return text


class Covers(BaseModel):
    """What a case is there for."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    rows: list[str] = Field(default=[], description="Table rows it fires (rows criterion).")
    transitions: list[str] = Field(
        default=[], description="Composed-system transitions it takes for the first time."
    )
    pairs: list[str] = Field(default=[], description="Adjacent pairs of fired rows.")
    properties: list[str] = Field(default=[], description="Properties whose violation it shows.")
    rules: list[str] = Field(default=[], description="Forbidden rules it breaks.")
    regression: str | None = Field(
        default=None,
        description="For a regression case: the design and finding its steps come from.",
    )


class Case(BaseModel):
    """One test: starts from the initial state, runs its steps in order."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    title: str = Field(description="What the case covers, in a few words.")
    covers: Covers
    steps: list[Step]


class SuiteStats(BaseModel):
    """Figures about how the suite was made."""

    model_config = ConfigDict(extra="forbid", strict=True)

    steps: int = Field(ge=0, description="Total steps of every case.")
    criterion_steps: int = Field(
        default=0,
        ge=0,
        description="Steps of the cases made for the criterion (without the stale-socket "
        "regression case every suite carries).",
    )
    optimum: int | None = Field(
        default=None,
        ge=0,
        description="transitions: the fewest total steps any suite covering every "
        "transition can have (each case starting from the initial state).",
    )
    targets: int = Field(default=0, ge=0, description="How many items the criterion asks to cover.")
    covered: int = Field(default=0, ge=0, description="How many of them the suite covers.")
    dead_rows: list[str] = Field(
        default=[], description="rows: rows the design has that no run reaches."
    )


class Suite(BaseModel):
    """A generated test suite for one design in one environment."""

    model_config = ConfigDict(extra="forbid", strict=True)

    format: Literal["fsm-suite/1"] = "fsm-suite/1"
    design: str = Field(pattern=_NAME, max_length=64, description="The design's name.")
    spec: Design | None = Field(
        default=None,
        description="The design the suite was generated from, every feature of it, so a "
        "suite of a design file replays without that file (absent in older suites: "
        "`design` must then name a built-in design).",
    )
    environment: str = Field(description="A built-in environment's name.")
    messages: int = Field(ge=1, le=8)
    criterion: Criterion
    seed: int | None = None
    stats: SuiteStats
    cases: list[Case]

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        if self.spec is not None and self.spec.name != self.design:
            raise ValueError(f"design {self.design!r} is not the name of spec {self.spec.name!r}")
        if self.environment not in ENVIRONMENTS:
            raise ValueError(
                f"environment: unknown {self.environment!r}; known: {', '.join(ENVIRONMENTS)}"
            )
        seen: set[str] = set()
        for c in self.cases:
            if c.id in seen:
                raise ValueError(f"cases: two cases have the id {c.id!r}")
            seen.add(c.id)
            for n, step in enumerate(c.steps, start=1):
                problem = _step_problem(step, self.messages)
                if problem is not None:
                    raise ValueError(f"case {c.id!r}, step {n}: {problem}")
        return self

    @property
    def design_spec(self) -> Design:
        """The design to reset an adapter for: :attr:`spec`, else the built-in one named."""
        return suite_design(self)

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise UnknownName("case", case_id, [c.id for c in self.cases])

    @property
    def steps(self) -> int:
        return sum(len(c.steps) for c in self.cases)


def _step_problem(step: Step, messages: int) -> str | None:
    """What makes ``step`` impossible in a suite of ``messages`` messages, if anything."""
    if len(step.expected.messages) != messages:
        return f"expected shows {len(step.expected.messages)} messages; the suite has {messages}"
    index = step.index
    if index is not None and index >= messages:
        return f"message {step.message} in a suite of {messages} messages"
    if step.stimulus in MESSAGE_STIMULI and index is None:
        return f"{step.stimulus.value} needs a message"
    concerns_one = step.stimulus in MESSAGE_STIMULI or step.stimulus is Stimulus.send
    if not concerns_one and index is not None:
        return f"{step.stimulus.value} concerns no message, got {step.message}"
    if step.outcome is not None and step.stimulus is not Stimulus.send:
        return f"an outcome ({step.outcome.value}) on a {step.stimulus.value} step"
    return None


def suite_design(suite: Suite) -> Design:
    """The design ``suite`` was generated from: its recorded :attr:`Suite.spec`, or for a
    suite without one the built-in design it names (:class:`UnknownName` otherwise)."""
    if suite.spec is not None:
        return suite.spec
    return get_design(suite.design)


def case_from_steps(
    case_id: str, title: str, covers: Covers, transitions: Iterable[Transition]
) -> Case:
    """A case whose steps are ``transitions`` (a concrete run from the initial world)."""
    return Case(id=case_id, title=title, covers=covers, steps=[Step.of(t) for t in transitions])


def case_from_trace(case_id: str, title: str, covers: Covers, trace: Trace) -> Case:
    return case_from_steps(case_id, title, covers, trace.steps)


def load_suite(path: str | Path) -> Suite:
    """Read a suite file; :class:`SpecError` naming the file and the first problem."""
    path = Path(path)
    text = read_regular_file(path, MAX_SUITE_BYTES, "a suite file")
    return suite_from_json(text, str(path))


def suite_from_json(text: str, source: str = "suite") -> Suite:
    """Validate a suite's JSON text strictly: :class:`SpecError` (``source`` and the first
    problem, one line) on a wrong type, a missing or unknown field, an observation
    with the wrong number of messages, a step for a message the suite does not have,
    an outcome on a step that is not a send, or two cases with one id."""
    try:
        return Suite.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise SpecError(f"{source}: {where + ': ' if where else ''}{msg}") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply") from None
