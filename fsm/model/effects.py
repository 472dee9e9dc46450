"""What a design changes outside its machines, as a second small table.

The connection and message tables (:mod:`fsm.model.tables`) say what the
client's machines do with an event. A few things a design changes happen at points
of the composed system that no machine row covers:

* whether a message is written into the pending-retry list before any send
  (``write_ahead``),
* how the server counts the copies it receives (``message_ids``: dedup by
  client id),
* how many REST attempts a message gets before its failure is shown
  (``max_rest_attempts``).

* whether the client refetches the server's state of unconfirmed messages
  after a reconnect or a REST success (``refetch_after_reconnect``, the seed's
  companion fix),
* what a message's acknowledgement timer does when it fires, and what the
  connection's close does to the messages still awaiting theirs (``ack_timer``,
  ``ack_fails_on_disconnect``), with the WebSocket attempt budget
  (``ws_attempts``).

Each is an :class:`Effect`: at a :class:`~fsm.model.vocabulary.Hook`, these
actions run, in the designs where every condition holds. Effects are selected
per design exactly like rows, and the diagrams and design diffs draw them, so
two designs that behave differently always differ in a row or an effect.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fsm.model.errors import DefinitionError
from fsm.model.tables import Cond, on
from fsm.model.vocabulary import Action, Hook

if TYPE_CHECKING:
    from fsm.model.design import Design

__all__ = ["EFFECTS", "Effect", "Effects", "Selected"]

A = Action


@dataclass(frozen=True)
class Effect:
    """At ``hook``, run ``actions``, in the designs where every condition holds.

    ``param`` names a :class:`~fsm.model.design.Design` field whose value
    parametrises the actions (the REST attempt budget).
    """

    hook: Hook
    actions: tuple[Action, ...]
    when: tuple[Cond, ...] = ()
    param: str | None = None
    note: str = ""

    def applies(self, design: Design) -> bool:
        return all(cond.holds(design) for cond in self.when)


@dataclass(frozen=True)
class Selected:
    """One design's effect at one hook: its actions and, if any, the parameter's value."""

    hook: Hook
    actions: tuple[Action, ...]
    param: int | None = None
    note: str = ""

    def describe(self) -> str:
        """``accept / hold``, ``rest_attempt_fails / attempt_budget(2)``."""
        arg = f"({self.param})" if self.param is not None else ""
        actions = ", ".join(a.value for a in self.actions) or "nothing"
        return f"{self.hook.value} / {actions}{arg}"


@dataclass(frozen=True)
class Effects:
    """One design's selection of :data:`EFFECTS`: at most one effect per hook."""

    by_hook: Mapping[Hook, Selected]

    def actions(self, hook: Hook) -> tuple[Action, ...]:
        selected = self.by_hook.get(hook)
        return () if selected is None else selected.actions

    def param(self, hook: Hook) -> int | None:
        selected = self.by_hook.get(hook)
        return None if selected is None else selected.param

    def __iter__(self) -> Iterator[Selected]:
        return iter(self.by_hook[hook] for hook in Hook if hook in self.by_hook)

    @classmethod
    def select(cls, design: Design) -> Effects:
        """The effects ``design`` has; :class:`DefinitionError` if two apply at one hook."""
        by_hook: dict[Hook, Selected] = {}
        for effect in EFFECTS:
            if not effect.applies(design):
                continue
            if effect.hook in by_hook:
                raise DefinitionError(
                    f"effects, design {design.name!r}: two effects at hook "
                    f"{effect.hook.value!r}; make their conditions exclusive"
                )
            param = None
            if effect.param is not None:
                value = getattr(design, effect.param)
                if not isinstance(value, int) or isinstance(value, bool):
                    raise DefinitionError(
                        f"effects: the parameter {effect.param!r} is not a whole-number field"
                    )
                param = value
            by_hook[effect.hook] = Selected(effect.hook, effect.actions, param, effect.note)
        return cls(by_hook)


# fmt: off
EFFECTS: tuple[Effect, ...] = (
    Effect(Hook.accept, (A.hold,), (on("write_ahead"),),
           note="pendingRetryMessages written before the send"),
    Effect(Hook.server_receives, (A.count_copy,), (on("message_ids", False),),
           note="no client id: every copy counts"),
    Effect(Hook.server_receives, (A.dedupe_copy,), (on("message_ids"),),
           note="dedup by client message id (Ably RSL1k)"),
    Effect(Hook.rest_attempt_fails, (A.attempt_budget,), (on("rest_endpoint"),),
           param="max_rest_attempts",
           note="REST attempts before rest_retry_failure applies (Ably RTN7e)"),
    Effect(Hook.connection_acknowledged, (A.refetch,), (on("refetch_after_reconnect"),),
           note="companion fix: recover responses the server computed"),
    Effect(Hook.rest_succeeded, (A.refetch,), (on("refetch_after_reconnect"), on("rest_endpoint")),
           note="companion fix: recover responses the server computed"),
    Effect(Hook.ack_timed_out, (A.fail_attempt,), (on("ack_timer"),), param="ws_attempts",
           note="the attempt failed (socket.io ackTimeout)"),
    Effect(Hook.disconnected, (A.fail_unacked,), (on("ack_fails_on_disconnect"),),
           param="ws_attempts", note="acknowledgements die with the connection (_clearAcks)"),
    Effect(Hook.step_end, (A.drain_queue,), (on("ordered_queue"),),
           note="one message in flight, oldest first (_drainQueue)"),
)
# fmt: on
