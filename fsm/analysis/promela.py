"""The composed system as a Promela model, generated from the same data, for SPIN.

:func:`promela` writes one Promela process whose every step is one ``d_step``:
one step of :class:`~fsm.analysis.system.System`, guards and all, so SPIN's
reachable states are exactly the concrete worlds of ``explore(symmetry=False)``
and a breadth-first SPIN trail has as many steps as the checker's
counterexample. Nothing here is hand-written per design: the guards come from
the design's table rows (which states have a row for an event), each step's
body fires rows looked up in :func:`~fsm.model.behaviour.behaviour`'s tables,
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
from typing import Any

from fsm.analysis.system import OVER_REST, System, World
from fsm.model.errors import DefinitionError
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.tables import Row
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
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

    The converse does not hold in general: a message in the list may still be
    lost because every path to the action that would retry it clears the list
    first. So this is a sound under-approximation of the checker's
    ``no-silent-loss`` (every stranded message is lost); the tests check that
    for the built-in designs it finds the first loss at the same depth.
    """

    #: States with a REST request in flight.
    over_rest: frozenset[MessageState]
    #: States a list action can move at any time (a reconnect's resend).
    rescued_held: frozenset[MessageState]
    #: States a list action can move only after a new send (a failed send's retry).
    rescued_held_by_send: frozenset[MessageState]
    #: Some action puts every message back in the list.
    may_rehold: bool

    @classmethod
    def of(cls, system: System) -> Stranded:
        free: set[MessageEvent] = set()
        by_send: set[MessageEvent] = set()
        actions: list[Action] = [a for s in system.behaviour.effects for a in s.actions]
        for row in system.message:
            actions.extend(row.actions)
        for action in actions:
            if action.meaning.each_held is not None:
                free.add(action.meaning.each_held)
        for crow in system.connection:
            actions.extend(crow.actions)
            for action in crow.actions:
                if action.meaning.each_held is not None:
                    after_send = crow.event is CE.send_failed
                    (by_send if after_send else free).add(action.meaning.each_held)

        def sources(events: Iterable[MessageEvent]) -> frozenset[MessageState]:
            return frozenset(r.source for r in system.message if r.event in set(events))

        return cls(
            over_rest=OVER_REST,
            rescued_held=sources(free),
            rescued_held_by_send=sources(by_send),
            may_rehold=any(a.meaning.hold_all is True for a in actions),
        )

    def messages(self, world: World) -> list[int]:
        """The stranded messages of ``world``."""
        unsent = any(m.state is None for m in world.messages)
        out = []
        for i, m in enumerate(world.messages):
            if m.state is None or m.state is MessageState.failed or m.server or m.done_owed:
                continue
            if m.state in self.over_rest:
                continue
            if (m.held or self.may_rehold) and (
                m.state in self.rescued_held or (unsent and m.state in self.rescued_held_by_send)
            ):
                continue
            out.append(i)
        return out

    def promela(self, i: int, n: int) -> str:
        """Message ``i`` is stranded, as a Promela expression."""
        excluded = {MessageState.failed, *self.over_rest}
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
        if over_ws:
            lines.append(f"owed[{i}] = 1;")
        return lines

    def run(self, action: Action, i: int | None) -> list[str]:
        meaning = action.meaning
        lines: list[str] = [f"/* {action.value} */"]
        if meaning.socket is not None:
            lines += self.kill_socket(meaning.socket)
        if meaning.hold is not None:
            if i is None:
                raise DefinitionError(f"action {action.value!r} needs a message")
            lines.append(f"held[{i}] = {int(meaning.hold)};")
        if meaning.hold_all is not None:
            lines += [f"held[{k}] = {int(meaning.hold_all)};" for k in range(self.n)]
        if meaning.each_held is not None:
            event = meaning.each_held
            for k in range(self.n):
                allowed = " || ".join(f"st[{k}] == {_m(s)}" for s in self.msg_sources(event))
                if not allowed:
                    continue
                body = self.deliver(k, over_ws=True) if meaning.over_ws else []
                body += self.fire_message(k, event)
                lines.append(f"if :: held[{k}] && ({allowed}) ->")
                lines += ["   " + b for b in body]
                lines.append(":: else -> skip fi;")
        if meaning.each_on_server is not None:
            event = meaning.each_on_server
            for k in range(self.n):
                allowed = " || ".join(f"st[{k}] == {_m(s)}" for s in self.msg_sources(event))
                if not allowed:
                    continue
                lines.append(f"if :: srv[{k}] >= 1 && ({allowed}) ->")
                lines += ["   " + b for b in self.fire_message(k, event)]
                lines.append(":: else -> skip fi;")
        return lines

    def hook(self, hook: Hook, i: int | None = None) -> list[str]:
        lines: list[str] = []
        for action in self.sys.behaviour.effects.actions(hook):
            lines += self.run(action, i)
        return lines

    def accept(self, i: int) -> list[str]:
        lines = [
            f"st[{i}] = {_m(MessageState.pending)};",
            f"held[{i}] = 0; srv[{i}] = 0; att[{i}] = 0; owed[{i}] = 0;",
        ]
        for action in self.sys.on_accept:
            lines += self.run(action, i)
        return lines

    def after_rest_failure(self, i: int) -> list[str]:
        effects = self.sys.behaviour.effects
        budget = effects.param(Hook.rest_attempt_fails)
        counted = any(a.meaning.budget for a in effects.actions(Hook.rest_attempt_fails))
        lines = [f"att[{i}]++;"]
        retry_states = self.msg_sources(ME.rest_failed)
        if counted and budget is not None and retry_states:
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

    def step(guard: str, label: str, body: list[str]) -> None:
        steps.append((guard, label, body))

    believes = _in("conn", [_c(ConnectionState.connected), _c(ConnectionState.suspended_stale)])
    dead = _in("sock", [_s(Socket.suspended), _s(Socket.half_open)])
    for i in range(n):
        earlier = "".join(f" && st[{k}] != 0" for k in range(i))
        first = f"fg && st[{i}] == 0{earlier}"
        step(
            f"{first} && !{believes}",
            f"send {i} rest_direct",
            g.accept(i) + g.fire_message(i, ME.send_rest),
        )
        step(
            f"{first} && {believes} && sock == {_s(Socket.open)}",
            f"send {i} ws_delivered",
            g.accept(i) + g.deliver(i, over_ws=True) + g.fire_message(i, ME.ws_send_ok),
        )
        step(
            f"{first} && {believes} && sock != {_s(Socket.open)} && sock != {_s(Socket.opening)}",
            f"send {i} ws_raised",
            g.accept(i) + g.fire_message(i, ME.ws_send_failed) + g.fire_connection(CE.send_failed),
        )
        vanish = []
        if env.half_open_sends_vanish:
            vanish.append(_s(Socket.half_open))
        if env.suspended_sends_vanish:
            vanish.append(_s(Socket.suspended))
        if vanish:
            step(
                f"{first} && {believes} && {_in('sock', vanish)}",
                f"send {i} ws_vanished",
                g.accept(i) + g.fire_message(i, ME.ws_send_ok),
            )

    def conn_guard(event: ConnectionEvent) -> str:
        return _in("conn", [_c(s) for s in g.conn_sources(event)])

    step(f"fg && {conn_guard(CE.connect)}", "connect", g.fire_connection(CE.connect))
    step(
        f"sock == {_s(Socket.opening)} && net",
        "handshake_ack",
        [
            f"sock = {_s(Socket.open)};",
            *g.fire_connection(CE.handshake_ack),
            *g.hook(Hook.connection_acknowledged),
        ],
    )
    step(
        f"fg && (sock == {_s(Socket.opening)} || ({dead} && "
        f"conn == {_c(ConnectionState.handshaking)}))",
        "handshake_fail",
        g.kill_socket(Socket.closed) + g.fire_connection(CE.handshake_fail),
    )
    step(
        "fg",
        "app_background",
        ["fg = 0;", f"if :: sock != {_s(Socket.closed)} ->"]
        + ["   " + x for x in g.kill_socket(Socket.suspended)]
        + [":: else -> skip fi;"]
        + g.fire_connection(CE.app_background),
    )
    step("!fg", "app_foreground", ["fg = 1;", *g.fire_connection(CE.app_foreground)])
    step("net", "network_lost", ["net = 0;", *g.fire_connection(CE.network_lost)])
    step("!net", "network_restored", ["net = 1;", *g.fire_connection(CE.network_restored)])
    if g.conn_sources(CE.socket_error):
        step(
            f"fg && sock == {_s(Socket.suspended)} && {conn_guard(CE.socket_error)}",
            "socket_error",
            g.fire_connection(CE.socket_error),
        )
    if env.silent_drops and g.conn_sources(CE.connection_dropped):
        step(
            f"sock == {_s(Socket.open)} && {conn_guard(CE.connection_dropped)}",
            "connection_dropped",
            g.kill_socket(Socket.half_open) + g.fire_connection(CE.connection_dropped),
        )
    if g.conn_sources(CE.ping_timeout):
        step(
            f"fg && {dead} && {conn_guard(CE.ping_timeout)}",
            "ping_timeout",
            g.fire_connection(CE.ping_timeout),
        )
    over_rest = _in("st[{i}]", [_m(s) for s in MessageState if s in OVER_REST])
    for i in range(n):
        step(
            f"owed[{i}] && sock == {_s(Socket.open)}",
            f"done {i}",
            [f"owed[{i}] = 0;", *g.fire_message(i, ME.done)],
        )
        rest = over_rest.replace("{i}", str(i))
        step(
            f"{rest} && fg && net",
            f"rest_ok {i}",
            g.deliver(i, over_ws=False)
            + g.fire_message(i, ME.rest_ok)
            + g.hook(Hook.rest_succeeded, i),
        )
        step(f"{rest} && fg", f"rest_error {i}", g.after_rest_failure(i))
        step(
            f"{rest} && fg && net",
            f"rest_lost_response {i}",
            g.deliver(i, over_ws=False) + g.after_rest_failure(i),
        )

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
