"""Mutants: small, named edits of a design's tables and effects, and the kill matrix.

Each :class:`Mutant` is a list of edits as data (retarget a row, change its
actions, drop it, change or drop an effect, or change design features) applied
to a base design's :class:`~fsm.model.behaviour.Behaviour`. Each is taken from a
failure mode users reported or from the seed bug, and cites it.

A suite *kills* a mutant when replaying it through the ``model`` adapter running
the mutant diverges. A mutant no suite generated from the base design can kill
is *equivalent*: :func:`distinguishing_trace` proves it by exploring the base and
the mutant side by side (every step the base offers, the same step on the
mutant) and finding no reachable pair whose observations differ or where the
mutant refuses the step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel

from fsm.analysis.system import System
from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design, Environment, get_design
from fsm.model.effects import Effects, Selected
from fsm.model.errors import DefinitionError
from fsm.model.tables import Row, Table
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
)
from fsm.testing.adapters import ModelAdapter, choose
from fsm.testing.observation import observe
from fsm.testing.replay import replay_case
from fsm.testing.suite import Step, Suite, suite_design

__all__ = [
    "MUTANTS",
    "DesignEdit",
    "EffectEdit",
    "KillReport",
    "Mutant",
    "MutantResult",
    "RowEdit",
    "distinguishing_trace",
    "get_mutant",
    "kill_matrix",
    "mutants_for",
]

A = Action
C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent

_KEEP: Any = object()


@dataclass(frozen=True)
class RowEdit:
    """Change the row for ``(source, event)`` of one machine: a new target, new
    actions, or drop it (the table then has no row: the event is forbidden there)."""

    machine: Literal["connection", "message"]
    source: Any
    event: Any
    target: Any = None
    actions: tuple[Action, ...] | None = None
    drop: bool = False

    def apply(self, b: Behaviour) -> Behaviour:
        table: Table[Any, Any] = b.connection if self.machine == "connection" else b.message
        key = (self.source, self.event)
        if key not in table.rows:
            raise DefinitionError(
                f"mutant edit: {self.machine} has no row for {self.event} in {self.source}"
            )
        rows = dict(table.rows)
        if self.drop:
            del rows[key]
        else:
            old: Row[Any, Any] = rows[key]
            rows[key] = replace(
                old,
                target=old.target if self.target is None else self.target,
                actions=old.actions if self.actions is None else self.actions,
                note="mutant",
            )
        new = replace(table, rows=rows)
        if self.machine == "connection":
            return replace(b, connection=new)
        return replace(b, message=new)

    def describe(self) -> str:
        where = f"{self.machine} {self.source.value} -{self.event.value}->"
        if self.drop:
            return f"drop row {where}"
        parts = []
        if self.target is not None:
            parts.append(f"target {self.target.value}")
        if self.actions is not None:
            parts.append("actions " + (", ".join(a.value for a in self.actions) or "none"))
        return f"row {where}: " + "; ".join(parts)


@dataclass(frozen=True)
class EffectEdit:
    """Replace the effect at ``hook`` (``actions=None`` drops it), or only its parameter."""

    hook: Hook
    actions: tuple[Action, ...] | None = _KEEP
    param: int | None = None

    def apply(self, b: Behaviour) -> Behaviour:
        by_hook = dict(b.effects.by_hook)
        old = by_hook.get(self.hook)
        if self.actions is None:
            by_hook.pop(self.hook, None)
        else:
            actions = (
                (old.actions if old is not None else ()) if self.actions is _KEEP else self.actions
            )
            param = self.param if self.param is not None else (old.param if old else None)
            by_hook[self.hook] = Selected(self.hook, actions, param, "mutant")
        return replace(b, effects=Effects(by_hook))

    def describe(self) -> str:
        if self.actions is None:
            return f"drop the effect at {self.hook.value}"
        if self.actions is _KEEP:
            return f"effect at {self.hook.value}: parameter {self.param}"
        return f"effect at {self.hook.value}: " + ", ".join(a.value for a in self.actions)


@dataclass(frozen=True)
class DesignEdit:
    """Start from another built-in design (``base``) and/or change features."""

    base: str | None = None
    changes: tuple[tuple[str, Any], ...] = ()

    def apply(self, b: Behaviour) -> Behaviour:
        design = b.design if self.base is None else get_design(self.base)
        if self.changes:
            design = Design.model_validate({**design.model_dump(), **dict(self.changes)})
        return select_behaviour(design)

    def describe(self) -> str:
        parts = [] if self.base is None else [f"the {self.base} design"]
        parts += [f"{k} = {v}" for k, v in self.changes]
        return ", ".join(parts)


Edit = RowEdit | EffectEdit | DesignEdit


@dataclass(frozen=True)
class Mutant:
    """A named edit of a design, with the failure mode it comes from."""

    name: str
    summary: str
    source: str
    edits: tuple[Edit, ...]
    base: str = "hardened"
    tags: tuple[str, ...] = field(default=())

    def behaviour(self, base: Design | None = None) -> Behaviour:
        """The mutant: the base design's behaviour with the edits applied in order."""
        b = select_behaviour(get_design(self.base) if base is None else base)
        for edit in self.edits:
            b = edit.apply(b)
        return b

    def describe(self) -> str:
        return "; ".join(e.describe() for e in self.edits)


# fmt: off
MUTANTS: tuple[Mutant, ...] = (
    Mutant("pre-fix", "the seed's client before its fix",
           "seed (Problem, Root Cause); REFERENCES 4.1",
           (DesignEdit(base="pre-fix"),)),
    Mutant("flag-on-resume", "isConnected set on resume(), before the handshake completes",
           "seed, Key Insight; Ably RTN6",
           (DesignEdit(changes=(("await_handshake", False),)),)),
    Mutant("send-error-swallowed", "a send into a dead socket looks sent (F1)",
           "REFERENCES 4.7 (Starscream NativeEngine drops the send error); seed Root Cause 5",
           (RowEdit("message", M.pending, ME.ws_send_failed, target=M.sent_ws, actions=()),)),
    Mutant("send-error-only-logged", "a failed send is logged, not treated as a disconnect",
           "seed, Root Cause 6 (the REST fallback is never triggered)",
           (RowEdit("connection", C.suspended_stale, CE.send_failed,
                    target=C.suspended_stale, actions=()),)),
    Mutant("cleared-on-ws-send", "the pending-retry entry is removed when the send returns (F3)",
           "REFERENCES 4.3; Ably RTN7",
           (RowEdit("message", M.pending, ME.ws_send_ok, actions=(A.release,)),)),
    Mutant("no-server-dedup", "the server applies every copy (no idempotency key)",
           "REFERENCES 4.4 and 4.5; Ably RSL1k",
           (EffectEdit(Hook.server_receives, (A.count_copy,)),)),
    Mutant("no-write-ahead", "the pending-retry list is written only after the send",
           "seed, Solution (store in pendingRetryMessages before the WS send); REFERENCES 4.2",
           (EffectEdit(Hook.accept, None),)),
    Mutant("heartbeat-paused", "no heartbeat ever declares a dead socket",
           "REFERENCES 4.6 (socketio/socket.io#5135)",
           (RowEdit("connection", C.suspended_stale, CE.ping_timeout, drop=True),)),
    Mutant("no-resend-after-reconnect", "the pending list is not flushed on a new connection",
           "REFERENCES 4.8; Ably RTN19a",
           (RowEdit("connection", C.handshaking, CE.handshake_ack, actions=()),)),
    Mutant("no-foreground-reconnect", "returning to the foreground keeps the stale socket",
           "REFERENCES 4 (Starscream#908); seed, Solution (reconnect in the background)",
           (RowEdit("connection", C.suspended_stale, CE.app_foreground,
                    target=C.suspended_stale, actions=()),)),
    Mutant("retry-failure-swallowed", "a failed REST retry leaves the message looking sent (F4)",
           "seed, setupSendFailedHandler (try? discards the error); REFERENCES 4.11",
           (RowEdit("message", M.retrying_rest, ME.retries_exhausted,
                    target=M.sent_ws, actions=(A.release,)),)),
    Mutant("single-rest-attempt", "one REST attempt before the failure is shown",
           "REFERENCES 3 (Ably RTN7e) and 4.11",
           (EffectEdit(Hook.rest_attempt_fails, param=1),)),
    Mutant("no-refetch", "no refetch of responses computed while the socket was dead",
           "REFERENCES 4.13; seed, companion fix",
           (EffectEdit(Hook.connection_acknowledged, None),)),
    Mutant("release-all-on-done", "any done clears the whole pending-retry list",
           "seed, ChatViewModel changes (pendingRetryMessages cleared after done/toolUse)",
           (RowEdit("message", M.sent_ws, ME.done, actions=(A.release_all,)),)),
    Mutant("socket-error-ignored", "the receive loop's error does not disconnect",
           "REFERENCES 4 (Starscream#908: 'Socket is not connected' after foreground)",
           (RowEdit("connection", C.suspended_stale, CE.socket_error,
                    target=C.suspended_stale, actions=()),)),
    Mutant("network-loss-ignored", "the client stays connected after the OS reports no network",
           "REFERENCES 4 (SignalR#1518/#685); Ably RTN20",
           (RowEdit("connection", C.connected, CE.network_lost,
                    target=C.connected, actions=()),)),
)
# fmt: on


def mutants_for(design: Design, mutants: tuple[Mutant, ...] = MUTANTS) -> tuple[Mutant, ...]:
    """The mutants whose edits apply to ``design`` (a row edit needs the row it edits:
    a design without a heartbeat has no ``ping_timeout`` row to drop)."""
    applicable = []
    for mutant in mutants:
        try:
            mutant.behaviour(design)
        except DefinitionError:
            continue
        applicable.append(mutant)
    return tuple(applicable)


def get_mutant(name: str) -> Mutant:
    for mutant in MUTANTS:
        if mutant.name == name:
            return mutant
    from fsm.model.errors import UnknownName

    raise UnknownName("mutant", name, [m.name for m in MUTANTS])


def distinguishing_trace(
    design: Design, mutant: Behaviour, environment: Environment, messages: int
) -> list[Step] | None:
    """The shortest run of ``design`` on which ``mutant`` shows a different observation
    or cannot take a step; ``None`` if there is none (the mutant is equivalent for
    every test generated from ``design``)."""
    base = System(design, environment, messages)
    other = System(design, environment, messages, behaviour=mutant)
    start = (base.initial(), other.initial())
    parent: dict[tuple[Any, Any], tuple[tuple[Any, Any], Step] | None] = {start: None}
    queue = deque([start])

    def path(pair: tuple[Any, Any], last: Step) -> list[Step]:
        steps = [last]
        hop = parent[pair]
        while hop is not None:
            pair, step = hop
            steps.append(step)
            hop = parent[pair]
        steps.reverse()
        return steps

    while queue:
        pair = queue.popleft()
        w, v = pair
        for t in base.successors(w):
            u = choose(other, v, t.stimulus, t.message, t.outcome)
            step = Step.of(t)
            if u is None or observe(u.target) != step.expected:
                return path(pair, step)
            nxt = (t.target, u.target)
            if nxt not in parent:
                parent[nxt] = (pair, step)
                queue.append(nxt)
    return None


class MutantResult(BaseModel):
    name: str
    summary: str
    source: str
    edit: str
    equivalent: bool
    #: The shortest observable difference, as step labels (for a non-equivalent mutant).
    witness: list[str] = []
    #: case id -> the step at which it first diverged on this mutant.
    killed_by: dict[str, int] = {}

    @property
    def killed(self) -> bool:
        return bool(self.killed_by)


class KillReport(BaseModel):
    design: str
    environment: str
    messages: int
    criterion: str
    cases: int
    steps: int
    mutants: list[MutantResult]

    @property
    def killable(self) -> int:
        return sum(not m.equivalent for m in self.mutants)

    @property
    def killed(self) -> int:
        return sum(m.killed for m in self.mutants)

    @property
    def score(self) -> str:
        return f"{self.killed}/{self.killable}"


def kill_matrix(
    suite: Suite,
    environment: Environment,
    mutants: tuple[Mutant, ...] = MUTANTS,
) -> KillReport:
    """Replay ``suite`` through the ``model`` adapter on every mutant of its design (of
    ``mutants``, those that apply to it: :func:`mutants_for`)."""
    design = suite_design(suite)
    results = []
    for mutant in mutants_for(design, mutants):
        b = mutant.behaviour(design)
        witness = distinguishing_trace(design, b, environment, suite.messages)
        adapter = ModelAdapter(b)
        killed_by = {}
        for case in suite.cases:
            divergence = replay_case(adapter, case, design, environment, suite.messages)
            if divergence is not None:
                killed_by[case.id] = divergence.step
        results.append(
            MutantResult(
                name=mutant.name,
                summary=mutant.summary,
                source=mutant.source,
                edit=mutant.describe(),
                equivalent=witness is None,
                witness=[] if witness is None else [s.label() for s in witness],
                killed_by=killed_by,
            )
        )
    return KillReport(
        design=suite.design,
        environment=environment.name,
        messages=suite.messages,
        criterion=suite.criterion,
        cases=len(suite.cases),
        steps=suite.steps,
        mutants=results,
    )
