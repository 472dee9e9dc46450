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
from fsm.model.stimuli import (
    ENABLED,
    OUTCOMES,
    REST_STIMULI,
    Outcome,
    Rules,
    Stimulus,
)
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

    @cached_property
    def rules(self) -> Rules:
        """What the guards of :mod:`fsm.model.stimuli` read of this design."""
        return Rules(self.connection, self.message, frozenset(self.effects.by_hook))

    @cached_property
    def ws_budget(self) -> int:
        """How many WebSocket attempts a message gets when an attempt fails (the
        parameter of the ``ack_timer`` and ``disconnected`` effects; 1 without them)."""
        params = [self.effects.param(h) for h in (Hook.ack_timed_out, Hook.disconnected)]
        return max((p for p in params if p is not None), default=1)

    @cached_property
    def acts_on_disconnect(self) -> bool:
        """The design has an effect at the client's disconnect (it acts on the
        messages when a row leaves a state that reports connected)."""
        return bool(self.effects.actions(Hook.disconnected))

    @cached_property
    def one_in_flight(self) -> bool:
        """The pending-retry list is a queue with one message in flight, oldest first
        (the ``step_end`` effect drains it): each held message knows how many held
        messages are ahead of it."""
        return any(a.meaning.drain for a in self.effects.actions(Hook.step_end))

    @cached_property
    def counts_ws_attempts(self) -> bool:
        """Whether a message's WebSocket attempts are counted: a budget of more than one
        weighs them (:attr:`MessageEvent.attempts_ws` says which rows are one)."""
        return self.ws_budget > 1

    def counts_attempt(self, event: MessageEvent) -> bool:
        """Whether a message row on ``event`` is a WebSocket attempt this design counts."""
        return event.attempts_ws and self.counts_ws_attempts

    def ws_tries_after(self, event: MessageEvent, tries: int) -> int:
        """A message's counted WebSocket attempts after a row on ``event``: one more if
        it is an attempt (:meth:`counts_attempt`), up to the budget; past it every
        failed attempt is the last all the same."""
        return min(tries + 1, self.ws_budget) if self.counts_attempt(event) else tries

    def after_ack_failure(self, state: MessageState, attempts: int) -> MessageEvent:
        """The WebSocket attempt budget rule: what follows a failed WebSocket attempt of
        a message in ``state`` that has had ``attempts`` attempts (socket.io's
        ``tryCount``). ``ack_retry`` (back into the pending-retry list) while they are
        below the budget and the table has the row, else ``ack_failed``."""
        if attempts < self.ws_budget and self.message.allows(state, MessageEvent.ack_retry):
            return MessageEvent.ack_retry
        return MessageEvent.ack_failed

    @cached_property
    def acknowledges(self) -> bool:
        """The server acknowledges a message written over the WebSocket: it then owes
        its done/toolUse on the socket (the table has a ``done`` row for ``sent_ws``)."""
        return self.message.allows(MessageState.sent_ws, MessageEvent.done)

    @cached_property
    def settles_written(self) -> bool:
        """A message written over the WebSocket (``sent_ws``) can still end confirmed
        or failed through the design's message rows. Without acknowledgements it
        cannot: the client never hears about it again."""
        seen = {MessageState.sent_ws}
        frontier = [MessageState.sent_ws]
        while frontier:
            state = frontier.pop()
            if state.settled:
                return True
            for row in self.message:
                if row.source is state and row.target not in seen:
                    seen.add(row.target)
                    frontier.append(row.target)
        return False

    @cached_property
    def stimuli(self) -> tuple[Stimulus, ...]:
        """The stimuli that exist in this design's system, in :class:`Stimulus` order:
        REST outcomes only with a row that sends over REST, the acknowledgement
        timer only with an effect at its hook, the rest always."""
        rest = any(row.target.rest_in_flight for row in self.message)

        def exists(stimulus: Stimulus) -> bool:
            if stimulus in REST_STIMULI:
                return rest
            return any(c.hook is None or c.hook in self.rules.hooks for c in ENABLED[stimulus])

        return tuple(s for s in Stimulus if exists(s))

    @cached_property
    def outcomes(self) -> tuple[Outcome, ...]:
        """The answers to a send that exist in this design's system: an offline one only
        with its row, the deadline only with its connection row."""

        def exists(outcome: Outcome) -> bool:
            return any(
                (c.accepts is None or self.message.allows(MessageState.pending, c.accepts))
                and (c.row is None or any(r.event is c.row for r in self.connection))
                for c in OUTCOMES[outcome]
            )

        return tuple(o for o in Outcome if exists(o))


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
            if cond.feature not in (*Design.model_fields, *Design.derived()):
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
