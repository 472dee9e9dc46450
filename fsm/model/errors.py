"""The exceptions ``fsm`` raises.

::

    FsmError
    ├── ForbiddenTransition   an event with no entry in a machine's table
    ├── DefinitionError       a transition table that cannot be a machine
    ├── SpecError             a design or environment file that does not validate
    ├── UnknownName           a design, environment or scenario name that does not exist
    ├── StateLimitExceeded    the exploration passed ``--max-states``
    └── InvalidArgument       a function of the API called with a wrong type or value
                              (also a ValueError and a TypeError)
"""

from __future__ import annotations

import difflib
from enum import Enum

__all__ = [
    "DefinitionError",
    "ForbiddenTransition",
    "FsmError",
    "InvalidArgument",
    "SpecError",
    "StateLimitExceeded",
    "UnknownName",
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


class DefinitionError(FsmError):
    """A transition table is inconsistent; the message says how to fix it."""


class SpecError(FsmError):
    """A design or environment description is malformed or out of bounds."""


class UnknownName(FsmError):
    """A design, environment or scenario was asked for by a name nobody defined."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        hint = did_you_mean(name, known)
        super().__init__(f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}")


class StateLimitExceeded(FsmError):
    """Breadth-first exploration found more states than it was allowed to keep."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"state space exceeds --max-states {limit}; raise the limit or lower --messages"
        )


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
