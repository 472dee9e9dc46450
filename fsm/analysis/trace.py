"""Traces as data: the steps of a run of the composed system, typed.

A :class:`Trace` is the initial world and a tuple of
:class:`~fsm.analysis.system.Transition` steps: each has its stimulus, the
index of the message it concerns, the outcome the world chose, every table row
it fired (with the connection state each fired in) and the world after it.
Counterexamples, scenarios and generated tests are traces; renderers turn them
into text, JSON or diagrams, and nothing parses a rendered trace back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from fsm.analysis.system import Fired, Transition, World
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule

__all__ = ["Reason", "Trace", "broken_rules"]


class Reason(NamedTuple):
    """One sentence of an explanation, about one message (by index) or about the world."""

    message: int | None
    text: str


def broken_rules(fired: Fired) -> tuple[ForbiddenRule, ...]:
    """The forbidden rules that a fired row breaks, given the state it fired in."""
    return tuple(
        rule
        for rule in FORBIDDEN
        if rule.machine == fired.machine and rule.matches_step(fired.row, fired.connection)
    )


@dataclass(frozen=True)
class Trace:
    """A run: the world it starts from and its steps, in order."""

    start: World
    steps: tuple[Transition, ...]

    def __len__(self) -> int:
        return len(self.steps)

    def __iter__(self) -> Iterator[Transition]:
        return iter(self.steps)

    @property
    def final(self) -> World:
        """The world after the last step (the start for an empty trace)."""
        return self.steps[-1].target if self.steps else self.start

    def before(self, n: int) -> World:
        """The world step ``n`` (0-based) started from."""
        return self.steps[n - 1].target if n else self.start

    def worlds(self) -> list[World]:
        """The start, then the world after each step."""
        return [self.start, *(t.target for t in self.steps)]

    def rules_broken(self) -> list[tuple[int, Fired, ForbiddenRule]]:
        """``(step index, fired row, rule)`` for every forbidden rule a step broke."""
        return [
            (n, fired, rule)
            for n, step in enumerate(self.steps)
            for fired in step.fired
            for rule in broken_rules(fired)
        ]
