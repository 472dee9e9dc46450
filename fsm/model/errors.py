"""Every exception ``fsm`` raises on purpose, in one place.

The module sits in the lowest layer, so that every layer (model, analysis,
testing, render, the command line, the reference client) raises its errors from
here and a caller catches any of them as :class:`FsmError`::

    FsmError
    ├── UsageError            a command line that does not parse
    ├── SpecError             a design, environment, suite or event file that does not validate,
    │                         or a bound that makes no sense
    ├── UnknownName           a design, environment, property, rule, scenario, mutant, adapter,
    │                         criterion or case asked for by a name nobody defined
    ├── DefinitionError       a transition table that cannot be a machine
    ├── ForbiddenTransition   an event with no entry in a machine's table, or one a rule forbids
    ├── StateLimitExceeded    the exploration found more states than it was allowed to keep
    ├── MonitorError          an event the runtime monitor cannot place
    ├── StepRefused           a system under test cannot take the step a suite asks for
    ├── DriverFailure         a driver (a system under test in another process) crashed,
    │                         hung, broke the protocol or reported an error
    ├── SettleTimeout         the reference world did not go quiet in time
    ├── BadRequest            a frame or body the reference server's wire format does not allow
    ├── EngineError           the SPIN engine failed
    │   ├── EngineUnavailable     SPIN or a C compiler is missing
    │   └── EngineDisagreement    a SPIN trail the composed system cannot take
    ├── RenderError           Graphviz's dot refused a generated diagram
    ├── OutputError           an output folder, file or standard output cannot be written
    └── InvalidArgument       a function of the API called with a wrong type or value
                              (also a ValueError and a TypeError)

Messages are in the library's own words ("more than the 5000 states allowed");
the command line (:mod:`fsm.cli`) puts them in terms of its flags.
"""

from __future__ import annotations

import difflib
from enum import Enum

__all__ = [
    "BadRequest",
    "DefinitionError",
    "DriverFailure",
    "EngineDisagreement",
    "EngineError",
    "EngineUnavailable",
    "ForbiddenTransition",
    "FsmError",
    "InvalidArgument",
    "MonitorError",
    "OutputError",
    "RenderError",
    "SettleTimeout",
    "SpecError",
    "StateLimitExceeded",
    "StepRefused",
    "UnknownName",
    "UsageError",
    "did_you_mean",
    "require_instance",
    "require_int",
]


def did_you_mean(name: str, known: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class FsmError(Exception):
    """Base class of every error this library raises on purpose."""


class UsageError(FsmError):
    """A command line that does not parse: one line, exit code 2."""


class SpecError(FsmError):
    """A design or environment description, a suite or an event log is malformed,
    or a bound is out of range."""


class UnknownName(FsmError):
    """Something was asked for by a name nobody defined.

    ``kind`` says what (``"design"``, ``"environment"``, ``"property"``,
    ``"forbidden rule"``...), ``known`` lists the names there are; the message
    suggests the closest one.
    """

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        hint = did_you_mean(name, known)
        super().__init__(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")


class DefinitionError(FsmError):
    """A transition table is inconsistent; the message says how to fix it."""


class ForbiddenTransition(FsmError):
    """An event arrived in a state whose table has no entry for it, or (from the
    runtime monitor) took a row that a forbidden rule names.

    The machine that refused it is left in ``state``; nothing changed. ``rule``
    is the forbidden rule's id when a rule was broken (the row exists in a bad
    design's table), ``None`` when the table has no row; ``trace`` is what the
    monitor saw up to and including the offending event (its last events, at
    most the monitor's window), ``event_number`` that event's number (1 for
    the first event the monitor saw), or ``None`` when not known.
    """

    def __init__(
        self,
        machine: str,
        state: Enum,
        event: Enum,
        *,
        rule: str | None = None,
        reason: str = "",
        trace: tuple[object, ...] = (),
        event_number: int | None = None,
    ) -> None:
        self.machine = machine
        self.state = state
        self.event = event
        self.rule = rule
        self.trace = trace
        self.event_number = event_number
        if rule is None:
            text = f"{machine} machine: event {event.value!r} is forbidden in state {state.value!r}"
        else:
            text = (
                f"{machine} machine: event {event.value!r} in state {state.value!r} "
                f"breaks {rule}: {reason}"
            )
        super().__init__(text)


class StateLimitExceeded(FsmError):
    """Exploration found more states than it was allowed to keep (``limit``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"the state space has more than the {limit} states allowed; "
            "allow more states or check fewer messages"
        )


class MonitorError(FsmError):
    """An event the monitor does not know, or a message id it never saw sent.

    The monitor's state is left as it was.
    """


class StepRefused(FsmError):
    """The system under test cannot take a step the suite asks for (a ``done`` for a
    message the server never received, a REST answer with no request in flight).

    A :class:`~fsm.testing.adapters.SystemUnderTest` raises it from ``apply``.
    """


class DriverFailure(FsmError):
    """The driver crashed, hung, broke the protocol or reported an error.

    A failure of the system under test, reported at the case and step where it
    happened: ``stderr`` holds the end of what the driver wrote to its standard error.
    """

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.stderr = stderr


class BadRequest(FsmError):
    """A WebSocket frame or REST body the reference server's wire format does not
    allow; the text says why (the server answers it with a close code or a 400)."""


class SettleTimeout(FsmError):
    """The reference client, server and proxies did not go quiet within the bound."""


class EngineError(FsmError):
    """The SPIN engine failed: a tool exited with an error, took too long, or
    stopped early."""


class EngineUnavailable(EngineError):
    """``spin`` or a C compiler is missing."""


class EngineDisagreement(EngineError):
    """A SPIN trail that the composed system cannot take, or that violates nothing."""


class RenderError(FsmError):
    """Graphviz's dot refused a generated diagram."""


class OutputError(FsmError):
    """An output folder or file, or standard output, cannot be written."""


class InvalidArgument(FsmError, ValueError, TypeError):
    """A function of the API was called with an argument of the wrong type or an
    impossible value (a negative bound, a walk of length 0); the message names it."""


def require_int(name: str, value: object, *, minimum: int | None = None) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) of at least ``minimum``;
    otherwise :class:`InvalidArgument` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} must be an int, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidArgument(f"{name} must be at least {minimum}, got {value}")
    return value


def require_instance(name: str, value: object, kind: type | tuple[type, ...], hint: str) -> None:
    """:class:`InvalidArgument` unless ``value`` is a ``kind``; ``hint`` says how to get one."""
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        article = "an" if names[0] in "AEIOU" else "a"
        raise InvalidArgument(
            f"{name} must be {article} {names}, not {type(value).__name__} ({hint})"
        )
