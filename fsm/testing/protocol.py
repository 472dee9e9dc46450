"""The driver protocol: how ``fsm replay --driver`` talks to a system under test in any language.

A driver is a program that owns a real client and the world around it (a test
server, a fault proxy, a clock). ``fsm`` starts it as a child process and the
two exchange **JSON lines**: one JSON object per line, UTF-8, on the driver's
standard input (requests) and standard output (answers). The driver's standard
error is free for its own logging; ``fsm`` keeps the end of it for the report.

Every request carries an ``id``; the answer to it carries the same ``id`` and
comes before the next request is sent, so a driver answers strictly in order.

==========  ===========================================  ================================
request     fields                                       answer
==========  ===========================================  ================================
``hello``   ``protocol``                                 ``hello``: the protocol version it
                                                         speaks, its name, the stimuli,
                                                         outcomes and observation fields
                                                         it supports
``reset``   ``design`` and ``environment`` (as in a      ``observation`` of the initial
            design file), ``messages``                   state
``apply``   ``stimulus``, ``message`` (``m1`` ...),      ``observation`` once the real
            ``outcome``                                  world is quiet, or ``refused``
                                                         (the real world cannot make this
                                                         step here)
``close``                                                ``closed``, then the driver exits
==========  ===========================================  ================================

Any request may instead be answered ``error`` (the driver itself failed). A
refusal makes the case *not applicable* (neither passed nor failed); an
error, a crash, a line that is not JSON, an answer out of order or an answer
later than the deadline is a failure of the system under test.

``fsm schema driver`` prints the JSON Schema of every message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from fsm.testing.observation import Observation

__all__ = [
    "FIELDS",
    "PROTOCOL",
    "Answer",
    "Apply",
    "Close",
    "Closed",
    "DriverHello",
    "Error",
    "Hello",
    "ObservationAnswer",
    "Refused",
    "Request",
    "Reset",
    "driver_schema",
    "parse_answer",
    "parse_request",
]

#: The protocol version this ``fsm`` speaks.
PROTOCOL = 1

#: The observation fields a driver may report: the client's connected flag, and per
#: message its visible state, whether it is held for a retry, and the server's copies.
FIELDS = ("connected", "state", "held", "server")

_MESSAGE = r"^m[1-9][0-9]{0,2}$"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id: int = Field(ge=0, description="Sequence number; the answer repeats it.")


# -- requests: fsm to the driver ----------------------------------------------------------
class Hello(_Message):
    """The first request: which protocol fsm speaks."""

    type: Literal["hello"] = "hello"
    protocol: int = Field(ge=1, description="The protocol version fsm speaks.")


class Reset(_Message):
    """Start over: a new client and world, for this design, environment and message count."""

    type: Literal["reset"] = "reset"
    design: dict[str, Any] = Field(description="The design, as in a design file.")
    environment: dict[str, Any] = Field(description="The environment, as fsm environments lists.")
    messages: int = Field(ge=1, le=8, description="How many messages the user may send.")


class Apply(_Message):
    """Make the world do one step, then answer once the real world is quiet."""

    type: Literal["apply"] = "apply"
    stimulus: str = Field(description="What happens (fsm.Stimulus), e.g. send, connect, done.")
    message: str | None = Field(default=None, pattern=_MESSAGE, description="m1 is the first.")
    outcome: str | None = Field(
        default=None, description="How the world answers a send (fsm.Outcome), e.g. ws_raised."
    )


class Close(_Message):
    """The last request: stop everything and exit."""

    type: Literal["close"] = "close"


Request = Annotated[Hello | Reset | Apply | Close, Field(discriminator="type")]


# -- answers: the driver to fsm ------------------------------------------------------------
class DriverHello(_Message):
    """What the driver speaks and supports."""

    type: Literal["hello"] = "hello"
    protocol: int = Field(ge=1, description="The protocol version the driver speaks.")
    name: str = Field(min_length=1, max_length=200, description="The driver, for reports.")
    stimuli: list[str] = Field(description="Every stimulus it can make happen.")
    outcomes: list[str] = Field(default=[], description="Every send outcome it can produce.")
    fields: list[str] = Field(
        default=list(FIELDS), description="The observation fields it reports (FIELDS)."
    )


class ObservationAnswer(_Message):
    """What the client and server show now."""

    type: Literal["observation"] = "observation"
    observation: Observation


class Refused(_Message):
    """The real world cannot make this step here: the case is not applicable."""

    type: Literal["refused"] = "refused"
    reason: str = Field(max_length=2000)


class Error(_Message):
    """The driver failed: a failure of the system under test."""

    type: Literal["error"] = "error"
    reason: str = Field(max_length=2000)


class Closed(_Message):
    """Everything is stopped; the driver exits after this line."""

    type: Literal["closed"] = "closed"


Answer = Annotated[
    DriverHello | ObservationAnswer | Refused | Error | Closed, Field(discriminator="type")
]

_REQUESTS: TypeAdapter[Hello | Reset | Apply | Close] = TypeAdapter(Request)
_ANSWERS: TypeAdapter[DriverHello | ObservationAnswer | Refused | Error | Closed] = TypeAdapter(
    Answer
)


def parse_request(line: str | bytes) -> Hello | Reset | Apply | Close:
    """One request line; raises pydantic's ``ValidationError`` if it is not one."""
    return _REQUESTS.validate_json(line)


def parse_answer(line: str | bytes) -> DriverHello | ObservationAnswer | Refused | Error | Closed:
    """One answer line; raises pydantic's ``ValidationError`` if it is not one.

    Observations are read in JSON mode, where pydantic's strict mode still takes
    JSON arrays for tuples: what a driver in any language writes.
    """
    return _ANSWERS.validate_json(line)


def driver_schema() -> dict[str, Any]:
    """The JSON Schema of every message of the protocol (``fsm schema driver``)."""
    requests: list[type[BaseModel]] = [Hello, Reset, Apply, Close]
    answers: list[type[BaseModel]] = [DriverHello, ObservationAnswer, Refused, Error, Closed]
    refs, top = models_json_schema([(m, "validation") for m in [*requests, *answers]])
    defs = dict(top["$defs"])

    def one_of(models: list[type[BaseModel]]) -> dict[str, Any]:
        return {"oneOf": [refs[(m, "validation")] for m in models]}

    defs["Request"] = {"description": "A line fsm writes to the driver.", **one_of(requests)}
    defs["Answer"] = {"description": "A line the driver writes back.", **one_of(answers)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"fsm driver protocol {PROTOCOL}",
        "description": "JSON lines between fsm (requests) and a driver (answers).",
        "oneOf": [{"$ref": "#/$defs/Request"}, {"$ref": "#/$defs/Answer"}],
        "$defs": dict(sorted(defs.items())),
    }
