"""A design's whole behaviour: its two tables and its effects, selected once.

:func:`select_behaviour` is the one place where a :class:`~fsm.model.design.Design`'s
fields are read to decide what the client does. Everything downstream (the
composed system, the checker, the diagrams, the design diffs, the
``transitions`` machines) reads the :class:`Behaviour` it returns, never the
design's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from fsm.model.design import DESIGNS, Design
from fsm.model.effects import EFFECTS, Effects
from fsm.model.errors import DefinitionError
from fsm.model.forbidden import FORBIDDEN
from fsm.model.tables import CONNECTION, MESSAGE, Table
from fsm.model.vocabulary import (
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
)

__all__ = ["Behaviour", "select_behaviour", "validate_tables"]


@dataclass(frozen=True)
class Behaviour:
    """What one design does: its connection table, its message table, its effects."""

    design: Design
    connection: Table[ConnectionState, ConnectionEvent]
    message: Table[MessageState, MessageEvent]
    effects: Effects

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything that decides behaviour, without the design's name: two designs
        with equal fingerprints are indistinguishable to every analysis."""
        return (
            tuple((row.edge, row.actions) for row in self.connection),
            tuple((row.edge, row.actions) for row in self.message),
            tuple((s.hook, s.actions, s.param) for s in self.effects),
        )

    @cached_property
    def retry_budget(self) -> int | None:
        """How many REST attempts a message gets, if failed attempts are counted
        (the ``rest_attempt_fails`` effect); ``None``: a failure is final."""
        counted = any(a.meaning.budget for a in self.effects.actions(Hook.rest_attempt_fails))
        budget = self.effects.param(Hook.rest_attempt_fails)
        return budget if counted else None

    def after_rest_failure(self, state: MessageState, failed: int) -> MessageEvent:
        """The REST retry budget rule: what follows the ``failed``-th failed attempt
        for a message in ``state``. ``rest_failed`` (another attempt) while the
        budget allows one and the table has the row, else ``retries_exhausted``."""
        budget = self.retry_budget
        if (
            budget is not None
            and failed < budget
            and self.message.allows(state, MessageEvent.rest_failed)
        ):
            return MessageEvent.rest_failed
        return MessageEvent.retries_exhausted


@lru_cache(maxsize=256)
def select_behaviour(design: Design) -> Behaviour:
    """Select ``design``'s rows and effects; :class:`DefinitionError` if they do not
    form a machine (two rows for one event, a missing environment event, ...)."""
    return Behaviour(
        design=design,
        connection=CONNECTION.table(design),
        message=MESSAGE.table(design),
        effects=Effects.select(design),
    )


def validate_tables() -> None:
    """Check both tables, the effects, the forbidden rules and every built-in design.

    Raises :class:`DefinitionError` naming the first problem. The test suite
    calls this; nothing runs it at import time, so a mistake in a table shows
    up as one failing test rather than as an import error everywhere.
    """
    for spec in (CONNECTION, MESSAGE):
        spec.validate()
    for effect in EFFECTS:
        for cond in effect.when:
            if cond.feature not in Design.model_fields:
                raise DefinitionError(
                    f"effect at {effect.hook.value!r} depends on {cond.feature!r}, "
                    "which is not a Design field"
                )
        if effect.param is not None and effect.param not in Design.model_fields:
            raise DefinitionError(
                f"effect at {effect.hook.value!r} takes its parameter from "
                f"{effect.param!r}, which is not a Design field"
            )
    ids = [rule.id for rule in FORBIDDEN]
    if len(set(ids)) != len(ids):
        raise DefinitionError(f"forbidden rules have duplicate ids: {ids}")
    for design in DESIGNS.values():
        select_behaviour(design)
