"""The composed system as a Promela model, generated from the same data, for SPIN.

:func:`promela` writes one Promela process whose every step is one ``d_step``:
one step of :class:`~fsm.analysis.system.System`, guards and all, so SPIN's
reachable states are exactly the concrete worlds of ``explore(symmetry=False)``
and a breadth-first SPIN trail has as many steps as the checker's
counterexample. Nothing here is hand-written per design: the guards come from
the design's table rows (which states have a row for an event), each step's
body fires rows looked up in :func:`~fsm.model.behaviour.select_behaviour`'s tables,
each row's actions are carried out from their
:class:`~fsm.model.vocabulary.Meaning`, the effects from the design's effect
selection, and the environment's flags decide which steps exist.

Every step prints its label (``@step send 0 ws_delivered``) so a trail can be
replayed on :meth:`System.successors <fsm.analysis.system.System.successors>`
(:mod:`fsm.analysis.spin`).

What SPIN checks, one check per run, chosen at run time (the environment
variable ``FSM_CHECK``, read by embedded C, so one compiled verifier serves
every check): the invariants ``no-duplicate-delivery`` and
``connected-means-acked`` and the *stranded message* invariant for
``no-silent-loss`` (see :class:`Stranded`) are assertions on the world after
every step; each forbidden rule is an assertion on the row it forbids, where
the row fires. ``eventual-delivery`` and ``recovers-unaided`` (AG EF) are not
expressed.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from fsm.analysis.system import OVER_REST, WRITTEN, System, World, disconnects
from fsm.model.errors import DefinitionError
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.stimuli import (
    CONNECTION_STIMULI,
    ENABLED,
    OUTCOMES,
    Condition,
    Outcome,
    Stimulus,
    environment_flag,
    sends_vanish,
)
from fsm.model.tables import Row
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
    interpret,
)

__all__ = ["ANY_RULE", "CHECKS", "Check", "PromelaModel", "Stranded", "label_of", "promela"]

CE, ME = ConnectionEvent, MessageEvent


@dataclass(frozen=True)
class Check:
    """One thing a SPIN run checks: its number (``FSM_CHECK``), the property id, the rule."""

    number: int
    property: str
    rule: str | None = None


#: The checks a generated model can run, by number; 0 checks nothing (counts states).
CHECKS: tuple[Check, ...] = (
    Check(1, "no-duplicate-delivery"),
    Check(2, "connected-means-acked"),
    Check(3, "no-silent-loss"),
    *(Check(4 + k, "no-forbidden-transition", rule.id) for k, rule in enumerate(FORBIDDEN)),
)
#: The check number that turns on every forbidden rule at once.
ANY_RULE = 4 + len(FORBIDDEN)

_RULE_CHECK = {c.rule: c.number for c in CHECKS if c.rule is not None}

#: Message states as numbers: 0 is "not sent yet".
_M = {None: 0} | {s: i + 1 for i, s in enumerate(MessageState)}


def _c(state: ConnectionState) -> str:
    return f"C_{state.value}"


def _s(socket: Socket) -> str:
    return f"S_{socket.value}"


def _m(state: MessageState) -> str:
    return f"M_{state.value}"


@dataclass(frozen=True)
class Stranded:
    """When a message is *stranded*: sent, not on the server, not shown as failed,
    and out of reach of every step that could still move it.

    A message's machine moves only through a step aimed at it (``done`` needs
    the server to have it; REST outcomes need a REST request in flight), a
    fresh send (it is sent already), the server's state refetched (it is not
    on the server) or a row action that fires on every message of the
    pending-retry list. So a message that is not on the server, has no REST
    request in flight, and is either out of the list (and no action can put
    it back) or in it but in a state no list action has a row for, never
    moves again: it is lost. The list action behind a failed send
    (``send_failed``) needs a new send, so it counts only while a message is
    unsent.

    A message in a state some action moves on every message that has a row
    for it (the offline buffer's flush) is never stranded, nor is one whose
    acknowledgement can still fail (an acknowledgement timer, or a disconnect
    that fails every attempt awaiting one): the failure moves it.

    The converse does not hold in general: a message in the list may still be
    lost because every path to the action that would retry it clears the list
    first. So this is a sound under-approximation of the checker's
    ``no-silent-loss`` (every stranded message is lost); the tests check that
    for the built-in designs and the example designs it finds the first loss at
    the same depth.
    """

    #: States with a REST request in flight.
    over_rest: frozenset[MessageState]
    #: States a list action can move at any time (a reconnect's resend).
    rescued_held: frozenset[MessageState]
    #: States a list action can move only after a new send (a failed send's retry).
    rescued_held_by_send: frozenset[MessageState]
    #: Some action puts every message back in the list.
    may_rehold: bool
    #: States an action moves on every message with a row for it, held or not.
    rescued_any: frozenset[MessageState] = frozenset()

    @classmethod
    def of(cls, system: System) -> Stranded:
        free: set[MessageEvent] = set()
        by_send: set[MessageEvent] = set()
        actions: list[Action] = [a for s in system.behaviour.effects for a in s.actions]
        for row in system.message:
            actions.extend(row.actions)
        everyone: set[MessageEvent] = set()
        for action in actions:
            if action.meaning.each_held is not None:
                free.add(action.meaning.each_held)
        for crow in system.connection:
            actions.extend(crow.actions)
            for action in crow.actions:
                if action.meaning.each_held is not None:
                    after_send = crow.event is CE.send_failed
                    (by_send if after_send else free).add(action.meaning.each_held)
        for action in actions:
            if action.meaning.each is not None:
                everyone.add(action.meaning.each)
            # An ordered queue writes its oldest held message, now or at a connection.
            if action.meaning.oldest is not None:
                free.add(action.meaning.oldest)
            if action.meaning.drain:
                free.add(ME.resend_ws)
        effects = system.behaviour.effects
        if effects.actions(Hook.ack_timed_out) or effects.actions(Hook.disconnected):
            # An acknowledgement that will not come moves the message either way.
            everyone |= {ME.ack_retry, ME.ack_failed}

        def sources(events: Iterable[MessageEvent]) -> frozenset[MessageState]:
            return frozenset(r.source for r in system.message if r.event in set(events))

        return cls(
            over_rest=OVER_REST,
            rescued_held=sources(free),
            rescued_held_by_send=sources(by_send),
            may_rehold=any(a.meaning.hold_all is True for a in actions),
            rescued_any=sources(everyone),
        )

    def messages(self, world: World) -> list[int]:
        """The stranded messages of ``world``."""
        unsent = any(m.state is None for m in world.messages)
        out = []
        for i, m in enumerate(world.messages):
            if m.state is None or m.state is MessageState.failed or m.server or m.done_owed:
                continue
            if m.state in self.over_rest or m.state in self.rescued_any:
                continue
            if (m.held or self.may_rehold) and (
                m.state in self.rescued_held or (unsent and m.state in self.rescued_held_by_send)
            ):
                continue
            out.append(i)
        return out

    def promela(self, i: int, n: int) -> str:
        """Message ``i`` is stranded, as a Promela expression."""
        excluded = {MessageState.failed, *self.over_rest, *self.rescued_any}
        parts = [f"st[{i}] != 0", f"srv[{i}] == 0", f"!owed[{i}]"]
        parts += [f"st[{i}] != {_m(s)}" for s in MessageState if s in excluded]
        held = "1" if self.may_rehold else f"held[{i}]"
        rescue = [f"st[{i}] == {_m(s)}" for s in MessageState if s in self.rescued_held]
        if self.rescued_held_by_send:
            unsent = " || ".join(f"st[{k}] == 0" for k in range(n))
            by_send = " || ".join(
                f"st[{i}] == {_m(s)}" for s in MessageState if s in self.rescued_held_by_send
            )
            rescue.append(f"(({unsent}) && ({by_send}))")
        if rescue:
            parts.append(f"!({held} && ({' || '.join(rescue)}))")
        return "(" + " && ".join(parts) + ")"


@dataclass(frozen=True)
class PromelaModel:
    """A generated model: its text and what it was generated from."""

    text: str
    design: str
    environment: str
    messages: int


class _Gen:
    """Emits Promela statements for one system, mirroring ``_Step`` field by field."""

    def __init__(self, system: System) -> None:
        self.sys = system
        self.n = system.n
        self.depth = 0
        #: Above 0 while the disconnect's effect is written: the client reports
        #: connected nowhere in it, so writing a message again does nothing.
        self.offline = 0
        self.rules: dict[int, list[ForbiddenRule]] = {}
        for name, table in (("connection", system.connection), ("message", system.message)):
            for row in table:
                self.rules[id(row)] = [
                    r for r in FORBIDDEN if r.machine == name and r.matches_row(row)
                ]

    # -- rows -------------------------------------------------------------------------
    def _rule_asserts(self, row: Row[Any, Any]) -> list[str]:
        out = []
        for rule in self.rules[id(row)]:
            if rule.while_connection is None:
                broken = "true"
            else:
                broken = " || ".join(
                    f"conn == {_c(s)}" for s in ConnectionState if s in rule.while_connection
                )
            out.append(
                f"if :: c_expr{{ fsm_check == {_RULE_CHECK[rule.id]} || fsm_check == {ANY_RULE} }}"
                f" -> assert(!({broken})) /* {rule.id} */ :: else -> skip fi;"
            )
        return out

    def conn_sources(self, event: ConnectionEvent) -> list[ConnectionState]:
        return [s for s in ConnectionState if self.sys.connection.allows(s, event)]

    def msg_sources(self, event: MessageEvent) -> list[MessageState]:
        return [s for s in MessageState if self.sys.message.allows(s, event)]

    def fire_connection(self, event: ConnectionEvent) -> list[str]:
        lines = ["if"]
        for state in self.conn_sources(event):
            row = self.sys.connection.step(state, event)
            body = [*self._rule_asserts(row), f"conn = {_c(row.target)};"]
            for action in row.actions:
                body += self.run(action, None)
            if disconnects(row):
                self.offline += 1
                body += self.hook(Hook.disconnected)
                self.offline -= 1
            lines.append(f":: conn == {_c(state)} ->")
            lines += ["   " + b for b in body]
        lines += [f':: else -> printf("@error no row for {event.value}\\n"); assert(false)', "fi;"]
        return lines

    def fire_message(self, i: int, event: MessageEvent) -> list[str]:
        self.depth += 1
        if self.depth > 4:
            raise DefinitionError(
                f"design {self.sys.design.name!r}: message rows fire each other without end"
            )
        lines = ["if"]
        for state in self.msg_sources(event):
            row = self.sys.message.step(state, event)
            body = [*self._rule_asserts(row), f"st[{i}] = {_m(row.target)};"]
            if self.sys.behaviour.counts_attempt(event):
                budget = self.sys.behaviour.ws_budget
                body.append(f"if :: wsf[{i}] < {budget} -> wsf[{i}]++ :: else -> skip fi;")
            for action in row.actions:
                body += self.run(action, i)
            lines.append(f":: st[{i}] == {_m(state)} ->")
            lines += ["   " + b for b in body]
        lines += [
            f':: else -> printf("@error no row for {event.value}\\n"); assert(false)',
            "fi;",
        ]
        self.depth -= 1
        return lines

    # -- actions ----------------------------------------------------------------------
    def kill_socket(self, to: Socket) -> list[str]:
        return [f"sock = {_s(to)};", *(f"owed[{k}] = 0;" for k in range(self.n))]

    def deliver(self, i: int, *, over_ws: bool) -> list[str]:
        lines = []
        for how in self.sys.server_receives:
            if how == "count":
                lines.append(f"if :: srv[{i}] < 2 -> srv[{i}]++ :: else -> skip fi;")
            else:
                lines.append(f"if :: srv[{i}] == 0 -> srv[{i}] = 1 :: else -> skip fi;")
        if over_ws and self.sys.acknowledges:
            lines.append(f"owed[{i}] = 1;")
        return lines

    def run(self, action: Action, i: int | None) -> list[str]:
        lines: list[str] = [f"/* {action.value} */"]
        for part in interpret(action, self, i):
            lines += part
        return lines

    # -- the effects (fsm.model.vocabulary.ActionInterpreter), as Promela ------------
    def set_socket(self, action: Action, to: Socket, at: int | None) -> list[str]:
        return self.kill_socket(to)

    def set_held(self, action: Action, value: bool, at: int | None) -> list[str]:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        if not self.sys.ordered:
            return [f"held[{at}] = {int(value)};"]
        others = [k for k in range(self.n) if k != at]
        if value:  # it joins the queue at its end
            count = " + ".join(f"held[{k}]" for k in others) or "0"
            return [f"if :: !held[{at}] -> ahd[{at}] = {count}; held[{at}] = 1 :: else -> skip fi;"]
        lines = [f"if :: held[{at}] ->"]
        for k in others:
            lines.append(
                f"   if :: held[{k}] && ahd[{k}] > ahd[{at}] -> ahd[{k}]-- :: else -> skip fi;"
            )
        lines += [f"   held[{at}] = 0; ahd[{at}] = 0;", ":: else -> skip fi;"]
        return lines

    def set_every_held(self, action: Action, value: bool, at: int | None) -> list[str]:
        if self.sys.ordered:
            raise DefinitionError(f"action {action.value!r}: an ordered queue holds one by one")
        return [f"held[{k}] = {int(value)};" for k in range(self.n)]

    def on_each_held(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> list[str]:
        return self._each(event, over_ws, held_only=True)

    def server_rule(
        self, action: Action, how: Literal["count", "once"], at: int | None
    ) -> list[str]:
        return []  # read where a copy reaches the server (deliver)

    def count_attempt(self, action: Action, at: int | None) -> list[str]:
        return []  # read where a REST attempt fails (after_rest_failure)

    def on_each(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> list[str]:
        return self._each(event, over_ws, held_only=False)

    def _each(self, event: MessageEvent, over_ws: bool, *, held_only: bool) -> list[str]:
        """``event`` on every message it applies to (only the held ones if ``held_only``),
        each first written over the WebSocket if ``over_ws``."""
        lines: list[str] = []
        for k in range(self.n):
            allowed = " || ".join(f"st[{k}] == {_m(s)}" for s in self.msg_sources(event))
            if not allowed:
                continue
            body = self.deliver(k, over_ws=True) if over_ws else []
            body += self.fire_message(k, event)
            guard = f"held[{k}] && ({allowed})" if held_only else allowed
            lines.append(f"if :: {guard} ->")
            lines += ["   " + b for b in body]
            lines.append(":: else -> skip fi;")
        return lines

    def on_oldest(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> list[str]:
        lines: list[str] = []
        for k in range(self.n):
            allowed = " || ".join(f"st[{k}] == {_m(s)}" for s in self.msg_sources(event))
            if not allowed:
                continue
            body = self.deliver(k, over_ws=True) if over_ws else []
            body += self.fire_message(k, event)
            lines.append(f"if :: held[{k}] && ahd[{k}] == 0 && ({allowed}) ->")
            lines += ["   " + b for b in body]
            lines.append(":: else -> skip fi;")
        return lines

    def drain_queue(self, action: Action, at: int | None) -> list[str]:
        lines: list[str] = []
        for k in range(self.n):
            pending = f"st[{k}] == {_m(MessageState.pending)}"
            lines.append(f"if :: held[{k}] && ahd[{k}] == 0 && {pending} ->")
            lines += ["   " + b for b in self.write_now(action, k)]
            lines.append(":: else -> skip fi;")
        return lines

    def write_now(self, action: Action, at: int | None) -> list[str]:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        if self.offline:
            return []
        connected = _in("conn", [_c(s) for s in ConnectionState if s.reports_connected])
        lines = [f"if :: ({connected}) && sock == {_s(Socket.open)} ->"]
        lines += ["   " + b for b in self.deliver(at, over_ws=True)]
        lines += ["   " + b for b in self.fire_message(at, ME.resend_ws)]
        deadline = self.conn_sources(CE.heartbeat_expired)
        if deadline:
            lines.append(
                f":: {_in('conn', [_c(s) for s in deadline])} && sock == {_s(Socket.suspended)} ->"
            )
            lines += ["   " + b for b in self.fire_message(at, ME.deadline_buffer)]
            lines += ["   " + b for b in self.fire_connection(CE.heartbeat_expired)]
        lines.append(
            f":: ({connected}) && sock != {_s(Socket.open)} && sock != {_s(Socket.opening)}"
            + (
                "".join(
                    f" && !(conn == {_c(s)} && sock == {_s(Socket.suspended)})" for s in deadline
                )
            )
            + " ->"
        )
        lines += ["   " + b for b in self.fire_message(at, ME.resend_ws)]
        lines.append(":: else -> skip fi;")
        return lines

    def fail_ws_attempt(self, action: Action, at: int | None) -> list[str]:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        return self.after_ack_failure(at)

    def fail_each_unacked(self, action: Action, at: int | None) -> list[str]:
        lines: list[str] = []
        for k in range(self.n):
            lines.append(f"if :: st[{k}] == {_m(MessageState.sent_ws)} ->")
            lines += ["   " + b for b in self.after_ack_failure(k)]
            lines.append(":: else -> skip fi;")
        return lines

    def after_ack_failure(self, i: int) -> list[str]:
        """The WebSocket attempt budget rule (:meth:`Behaviour.after_ack_failure
        <fsm.model.behaviour.Behaviour.after_ack_failure>`)."""
        budget = self.sys.behaviour.ws_budget
        lines: list[str] = []
        retry_states = self.msg_sources(ME.ack_retry)
        if retry_states:
            allowed = " || ".join(f"st[{i}] == {_m(s)}" for s in retry_states)
            lines.append(f"if :: wsf[{i}] < {budget} && ({allowed}) ->")
            lines += ["   " + b for b in self.fire_message(i, ME.ack_retry)]
            lines.append(":: else ->")
            lines += ["   " + b for b in self.fire_message(i, ME.ack_failed)]
            lines.append("fi;")
        else:
            lines += self.fire_message(i, ME.ack_failed)
        return lines

    def on_each_on_server(self, action: Action, event: MessageEvent, at: int | None) -> list[str]:
        lines: list[str] = []
        for k in range(self.n):
            allowed = " || ".join(f"st[{k}] == {_m(s)}" for s in self.msg_sources(event))
            if not allowed:
                continue
            lines.append(f"if :: srv[{k}] >= 1 && ({allowed}) ->")
            lines += ["   " + b for b in self.fire_message(k, event)]
            lines.append(":: else -> skip fi;")
        return lines

    # -- guards, from fsm.model.stimuli ---------------------------------------------
    def condition(self, c: Condition, i: int | None) -> str | None:
        """``c`` as a Promela expression; ``None`` when it never holds for this
        design and environment (the step is then left out)."""
        env = self.sys.environment
        if c.environment is not None and not environment_flag(env, c.environment):
            return None
        parts = []
        if c.foreground is not None:
            parts.append("fg" if c.foreground else "!fg")
        if c.network is not None:
            parts.append("net" if c.network else "!net")
        sockets = c.sockets
        if c.vanishing:
            sockets = frozenset(s for s in (sockets or Socket) if sends_vanish(env, s))
        if sockets is not None:
            if not sockets:
                return None
            parts.append(_in("sock", [_s(s) for s in Socket if s in sockets]))
        if c.connection is not None:
            parts.append(_in("conn", [_c(s) for s in ConnectionState if s in c.connection]))
        if c.reports_connected is not None:
            wanted = c.reports_connected
            parts.append(
                _in("conn", [_c(s) for s in ConnectionState if s.reports_connected == wanted])
            )
        if c.row is not None:
            sources = self.conn_sources(c.row)
            if not sources:
                return None
            parts.append(_in("conn", [_c(s) for s in sources]))
        if c.lacks_row is not None:
            parts += [f"conn != {_c(s)}" for s in self.conn_sources(c.lacks_row)]
        if c.accepts is not None and not self.sys.message.allows(MessageState.pending, c.accepts):
            return None
        if c.hook is not None and c.hook not in self.sys.rules.hooks:
            return None
        if c.aim is not None:
            if i is None:
                raise DefinitionError("a guard on a message needs a message")
            if c.aim == "done_owed":
                parts.append(f"owed[{i}]")
            elif c.aim == "awaiting_ack":
                parts.append(_in(f"st[{i}]", [_m(s) for s in MessageState if s.awaits_ack]))
            else:
                parts.append(_in(f"st[{i}]", [_m(s) for s in MessageState if s.rest_in_flight]))
        return " && ".join(parts) or "true"

    def guard(self, stimulus: Stimulus, i: int | None = None) -> str | None:
        """When ``stimulus`` is enabled (:data:`~fsm.model.stimuli.ENABLED`), as Promela."""
        return self.any_of(ENABLED[stimulus], i)

    def any_of(self, conditions: Iterable[Condition], i: int | None = None) -> str | None:
        """Any one of ``conditions``, as Promela; ``None`` when none can hold."""
        alternatives = [self.condition(c, i) for c in conditions]
        held = [a for a in alternatives if a is not None]
        if not held:
            return None
        return held[0] if len(held) == 1 else " || ".join(f"({a})" for a in held)

    def hook(self, hook: Hook, i: int | None = None) -> list[str]:
        lines: list[str] = []
        for action in self.sys.behaviour.effects.actions(hook):
            lines += self.run(action, i)
        return lines

    def accept(self, i: int) -> list[str]:
        lines = [
            f"st[{i}] = {_m(MessageState.pending)};",
            f"held[{i}] = 0; srv[{i}] = 0; att[{i}] = 0; owed[{i}] = 0; wsf[{i}] = 0;",
            f"ahd[{i}] = 0;",
        ]
        for action in self.sys.on_accept:
            lines += self.run(action, i)
        return lines

    def after_rest_failure(self, i: int) -> list[str]:
        """The REST retry budget rule (:meth:`Behaviour.after_rest_failure
        <fsm.model.behaviour.Behaviour.after_rest_failure>`)."""
        budget = self.sys.behaviour.retry_budget
        lines = [f"att[{i}]++;"]
        retry_states = self.msg_sources(ME.rest_failed)
        if budget is not None and retry_states:
            allowed = " || ".join(f"st[{i}] == {_m(s)}" for s in retry_states)
            lines.append(f"if :: att[{i}] < {budget} && ({allowed}) ->")
            lines += ["   " + b for b in self.fire_message(i, ME.rest_failed)]
            lines.append(":: else ->")
            lines += ["   " + b for b in self.fire_message(i, ME.retries_exhausted)]
            lines.append("fi;")
        else:
            lines += self.fire_message(i, ME.retries_exhausted)
        return lines


def _in(var: str, values: Iterable[str]) -> str:
    values = list(values)
    return "(" + " || ".join(f"{var} == {v}" for v in values) + ")" if values else "false"


def promela(system: System) -> PromelaModel:
    """The Promela model of ``system``: one ``d_step`` per step of the composed system."""
    g = _Gen(system)
    n = system.n
    env = system.environment
    stranded = Stranded.of(system)
    steps: list[tuple[str, str, list[str]]] = []  # (guard, label, body)

    end = g.hook(Hook.step_end)

    def step(guard: str, label: str, body: list[str]) -> None:
        steps.append((guard, label, [*body, *end]))

    def queued_behind(i: int, body: list[str]) -> list[str]:
        """In an ordered queue a message with one ahead of it waits instead."""
        if not system.ordered:
            return body
        lines = [f"if :: ahd[{i}] > 0 ->"]
        lines += ["   " + b for b in g.fire_message(i, ME.queue)]
        lines.append(":: else ->")
        lines += ["   " + b for b in body]
        lines.append("fi;")
        return lines

    send_bodies = {
        Outcome.rest_direct: lambda i: g.accept(i) + g.fire_message(i, ME.send_rest),
        Outcome.ws_delivered: lambda i: (
            g.accept(i) + g.deliver(i, over_ws=True) + g.fire_message(i, ME.ws_send_ok)
        ),
        Outcome.ws_raised: lambda i: (
            g.accept(i) + g.fire_message(i, ME.ws_send_failed) + g.fire_connection(CE.send_failed)
        ),
        Outcome.ws_vanished: lambda i: g.accept(i) + g.fire_message(i, ME.ws_send_ok),
        Outcome.buffered: lambda i: g.accept(i) + g.fire_message(i, ME.buffer),
        Outcome.queued: lambda i: g.accept(i) + g.fire_message(i, ME.queue),
        Outcome.refused: lambda i: g.accept(i) + g.fire_message(i, ME.refuse),
        Outcome.deadline_passed: lambda i: (
            g.accept(i)
            + g.fire_message(i, ME.deadline_buffer)
            + g.fire_connection(CE.heartbeat_expired)
        ),
    }
    for i in range(n):
        earlier = "".join(f" && st[{k}] != 0" for k in range(i))
        first = f"st[{i}] == 0{earlier}"
        enabled = g.guard(Stimulus.send)
        for outcome, conditions in OUTCOMES.items():
            answer = g.any_of(conditions)
            if enabled is None or answer is None:
                continue
            body = send_bodies[outcome](i)
            if outcome in WRITTEN:
                accepted = len(g.accept(i))
                body = body[:accepted] + queued_behind(i, body[accepted:])
            step(f"{first} && ({enabled}) && ({answer})", f"send {i} {outcome.value}", body)

    kill = g.kill_socket
    bodies: dict[Stimulus, list[str]] = {
        Stimulus.connect: g.fire_connection(CE.connect),
        Stimulus.handshake_ack: [
            f"sock = {_s(Socket.open)};",
            *g.fire_connection(CE.handshake_ack),
            *g.hook(Hook.connection_acknowledged),
        ],
        Stimulus.handshake_fail: kill(Socket.closed) + g.fire_connection(CE.handshake_fail),
        Stimulus.app_background: ["fg = 0;", f"if :: sock != {_s(Socket.closed)} ->"]
        + ["   " + x for x in kill(Socket.suspended)]
        + [":: else -> skip fi;"]
        + g.fire_connection(CE.app_background),
        Stimulus.app_foreground: ["fg = 1;", *g.fire_connection(CE.app_foreground)],
        Stimulus.network_lost: ["net = 0;", *g.fire_connection(CE.network_lost)],
        Stimulus.network_restored: ["net = 1;", *g.fire_connection(CE.network_restored)],
    }
    for stimulus in CONNECTION_STIMULI:
        guard = g.guard(stimulus)
        if guard is None:
            continue
        event = CE[stimulus.name]
        if stimulus not in bodies:
            # Steps that only fire their row, or besides kill the socket.
            bodies[stimulus] = (
                kill(Socket.half_open) if stimulus is Stimulus.connection_dropped else []
            ) + g.fire_connection(event)
        step(guard, stimulus.value, bodies[stimulus])
    for i in range(n):
        aimed: dict[Stimulus, list[str]] = {
            Stimulus.done: [f"owed[{i}] = 0;", *g.fire_message(i, ME.done)],
            Stimulus.rest_ok: g.deliver(i, over_ws=False)
            + g.fire_message(i, ME.rest_ok)
            + g.hook(Hook.rest_succeeded, i),
            Stimulus.rest_error: g.after_rest_failure(i),
            Stimulus.rest_lost_response: g.deliver(i, over_ws=False) + g.after_rest_failure(i),
            Stimulus.ack_timeout: [f"owed[{i}] = 0;", *g.hook(Hook.ack_timed_out, i)],
        }
        for stimulus, body in aimed.items():
            guard = g.guard(stimulus, i)
            if guard is not None:
                step(guard, f"{stimulus.value} {i}", body)

    duplicated = " || ".join(f"srv[{k}] >= 2" for k in range(n))
    unacked = f"conn == {_c(ConnectionState.connected)} && sock != {_s(Socket.open)}"
    lost = " || ".join(stranded.promela(k, n) for k in range(n))
    invariants = [
        f"if :: c_expr{{ fsm_check == 1 }} -> assert(!({duplicated})) :: else -> skip fi;",
        f"if :: c_expr{{ fsm_check == 2 }} -> assert(!({unacked})) :: else -> skip fi;",
        f"if :: c_expr{{ fsm_check == 3 }} -> assert(!({lost})) :: else -> skip fi;",
    ]

    out: list[str] = []
    w = out.append
    w(f"/* Generated by fsm: design {system.design.name}, environment {env.name}, ")
    w(f"   {n} message(s). One d_step per step of the composed system. */")
    w("")
    w("c_code {")
    w("  int fsm_check;")
    w("  __attribute__((constructor)) static void fsm_read_check(void) {")
    w('    char *s = getenv("FSM_CHECK"); fsm_check = s ? atoi(s) : 0;')
    w("  }")
    w("}")
    w("")
    for k, cs in enumerate(ConnectionState):
        w(f"#define {_c(cs)} {k}")
    for k, sk in enumerate(Socket):
        w(f"#define {_s(sk)} {k}")
    for ms in MessageState:
        w(f"#define {_m(ms)} {_M[ms]}")
    w("")
    w(f"byte conn = {_c(ConnectionState.idle)};")
    w(f"byte sock = {_s(Socket.closed)};")
    w("bool fg = 1;")
    w("bool net = 1;")
    w(f"byte st[{n}];")
    w(f"bool held[{n}];")
    w(f"byte srv[{n}];")
    w(f"byte att[{n}];")
    w(f"bool owed[{n}];")
    w(f"byte wsf[{n}];")
    w(f"byte ahd[{n}];")
    w("")
    w("active proctype client() {")
    w("  do")
    for guard, label, body in steps:
        w(f"  :: d_step {{ {guard} ->")
        w(f'       printf("@step {label}\\n");')
        for line in [*body, *invariants]:
            w("       " + line)
        w("     }")
    w("  od")
    w("}")
    return PromelaModel("\n".join(out) + "\n", system.design.name, env.name, n)


def label_of(text: str) -> tuple[str, int | None, str | None]:
    """``send 0 ws_delivered`` -> (stimulus, message, outcome)."""
    parts = text.split()
    stimulus = parts[0]
    message = int(parts[1]) if len(parts) > 1 else None
    outcome = parts[2] if len(parts) > 2 else None
    return stimulus, message, outcome
