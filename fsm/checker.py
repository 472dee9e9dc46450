"""Exhaustive breadth-first exploration of the composed system, and its verdicts.

The explorer visits every reachable world of :class:`~fsm.system.System` once,
up to a permutation of the messages (they are interchangeable, so sorting them
is a sound symmetry reduction). States are numbered in breadth-first order, so
the first violating state found is one at the least depth, and the path of
parents to it is a shortest counterexample. Paths are replayed on concrete,
unsorted worlds before they are shown, so a message keeps its name (``m1`` is
the first one the user sent) along the whole trace.

Properties (ids as on the command line):

``no-silent-loss``
    No reachable world has a sent message that is not on the server, not held
    by the client anywhere it will be retried from, and not shown as failed.
``no-duplicate-delivery``
    The server never applies one message twice.
``no-forbidden-transition``
    No step fires a row that matches a rule of :data:`fsm.model.FORBIDDEN`.
``connected-means-acked``
    The connection is ``connected`` only on an acknowledged, open socket.
``eventual-delivery``
    From every reachable world, a world where every sent message is confirmed
    or visibly failed is reachable (AG EF settled).
``recovers-unaided``
    The same, through steps of the client, the server, the network and the OS
    only: no new send and no trip to the background. AG EF is weak (any helpful
    path will do); this is the question a reviewer means by "does it recover by
    itself", and the one that tells a heartbeat from no heartbeat.
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from fsm.design import Design, Environment
from fsm.errors import StateLimitExceeded
from fsm.model import CONNECTION, FORBIDDEN, MESSAGE, ForbiddenRule, MessageState
from fsm.system import Fired, Stimulus, System, Transition, World, initial_world

__all__ = [
    "PROPERTIES",
    "AblationRow",
    "CheckReport",
    "Exploration",
    "FiredView",
    "MessageView",
    "PropertyResult",
    "RuleResult",
    "StepView",
    "ablate",
    "check",
    "explore",
]

#: Property ids, in the order reports list them, with a one-line statement.
PROPERTIES: dict[str, str] = {
    "no-silent-loss": "every sent message can still reach the server or be shown as failed",
    "no-duplicate-delivery": "the server never applies one message twice",
    "no-forbidden-transition": "no step takes a forbidden transition (F-rules)",
    "connected-means-acked": "'connected' only after the server acknowledged the handshake",
    "eventual-delivery": "from every state, all sent messages can still end confirmed or failed",
    "recovers-unaided": "all sent messages can end confirmed or failed without the user's help",
}

Label = tuple[Stimulus, "int | None", str]

#: Steps only the user takes. ``recovers-unaided`` asks whether the client
#: settles every message without them: the user neither sends again (a failed
#: send is what makes the seed's fix retry) nor leaves the app (iOS then resets
#: every socket, which heals a half-open one by accident).
USER_STIMULI = frozenset({Stimulus.send, Stimulus.app_background})


class MessageView(BaseModel):
    """One message in one step of a trace."""

    model_config = ConfigDict(frozen=True)

    id: str
    state: str
    held: bool
    on_server: int


class FiredView(BaseModel):
    """A table row a step fired: ``machine`` is 'connection' or a message id."""

    model_config = ConfigDict(frozen=True)

    machine: str
    source: str
    event: str
    target: str


class StepView(BaseModel):
    """One step of a counterexample: the event and the world after it."""

    model_config = ConfigDict(frozen=True)

    event: str
    message: str | None
    detail: str
    connection: str
    socket: str
    foreground: bool
    network: bool
    messages: list[MessageView]
    fired: list[FiredView]


class PropertyResult(BaseModel):
    id: str
    statement: str
    holds: bool
    rule: str | None = None
    counterexample: list[StepView] | None = None


class RuleResult(BaseModel):
    """A forbidden transition: is it in the design's table, is it reachable."""

    id: str
    machine: str
    reason: str
    evidence: str
    edges: list[str]
    reachable: bool
    counterexample: list[StepView] | None = None


class CheckReport(BaseModel):
    """The verdicts for one design in one environment."""

    design: str
    environment: str
    messages: int
    states: int
    transitions: int
    properties: list[PropertyResult]
    forbidden: list[RuleResult]

    @property
    def holds(self) -> bool:
        return all(p.holds for p in self.properties)

    def property(self, pid: str) -> PropertyResult:
        for p in self.properties:
            if p.id == pid:
                return p
        raise KeyError(f"no property {pid!r}; known: {', '.join(PROPERTIES)}")


@dataclass
class Exploration:
    """The reachable graph of one system, states numbered in BFS order."""

    system: System
    worlds: list[World] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    via: list[Label | None] = field(default_factory=list)
    successors: list[list[int]] = field(default_factory=list)
    #: Parallel to ``successors``: message ``i`` of the source is message
    #: ``positions[i]`` of the target (the explorer sorts messages).
    positions: list[list[tuple[int, ...]]] = field(default_factory=list)
    #: The successors through steps the user does not take (see :data:`USER_STIMULI`).
    unaided: list[list[int]] = field(default_factory=list)
    transitions: int = 0
    #: For each rule id: (source state, step) of the first step that took it.
    rule_hits: dict[str, tuple[int, Transition]] = field(default_factory=dict)

    def path(self, sid: int) -> list[tuple[Label, World]]:
        """The shortest path from the initial state to ``sid``."""
        steps: list[tuple[Label, World]] = []
        while sid != 0:
            label = self.via[sid]
            assert label is not None
            steps.append((label, self.worlds[sid]))
            sid = self.parent[sid]
        steps.reverse()
        return steps

    def first(self, predicate: Callable[[World], bool]) -> int | None:
        return next((i for i, w in enumerate(self.worlds) if predicate(w)), None)

    def lost(self) -> tuple[int, list[int]] | None:
        """The first state with a lost message, and which messages are lost there."""
        for sid, lost in enumerate(self.lost_messages()):
            if lost:
                return sid, lost
        return None

    def lost_messages(self) -> list[list[int]]:
        """For every state, the messages lost in it.

        A message is lost when it is :meth:`~fsm.system.System.undelivered`
        and no path from the state delivers it or shows it as failed: nothing
        holds it anywhere it will be retried from. This is worked out backwards
        over (state, message) pairs, following each message through the
        explorer's sorting; identical messages in one state share their fate
        (the explorer steps only one of them).
        """
        n = self.system.n
        good = [bytearray(n) for _ in self.worlds]
        back: list[list[tuple[int, tuple[int, ...]]]] = [[] for _ in self.worlds]
        inverses: dict[tuple[int, ...], tuple[int, ...]] = {}
        for src, (targets, moves) in enumerate(zip(self.successors, self.positions, strict=True)):
            for dst, moved in zip(targets, moves, strict=True):
                inverse = inverses.get(moved)
                if inverse is None:
                    flipped = [0] * n
                    for old, new in enumerate(moved):
                        flipped[new] = old
                    inverse = inverses[moved] = tuple(flipped)
                back[dst].append((src, inverse))
        queue: deque[tuple[int, int]] = deque()

        def mark(sid: int, p: int) -> None:
            messages = self.worlds[sid].messages
            for twin in range(n):
                if not good[sid][twin] and messages[twin] == messages[p]:
                    good[sid][twin] = 1
                    queue.append((sid, twin))

        # Seeds: delivered or visibly failed messages. A message not sent yet is
        # good too, but it was unsent in every predecessor as well, so it need
        # not spread anything.
        for sid, world in enumerate(self.worlds):
            row = good[sid]
            for p, m in enumerate(world.messages):
                if m.state is None:
                    row[p] = 1
                elif m.server >= 1 or m.state is MessageState.failed:
                    row[p] = 1
                    queue.append((sid, p))
        while queue:
            dst, q = queue.popleft()
            for src, origin in back[dst]:
                p = origin[q]
                if not good[src][p]:
                    mark(src, p)
        return [[p for p in range(n) if not row[p]] for row in good]

    def cannot_settle(self, *, unaided: bool = False) -> int | None:
        """The first state from which no settled state is reachable, if any.

        With ``unaided``, only steps the user does not take count.
        """
        return next((i for i, ok in enumerate(self.can_settle(unaided=unaided)) if not ok), None)

    def can_settle(self, *, unaided: bool = False) -> list[bool]:
        """For every state, whether a settled state is reachable from it."""
        n = len(self.worlds)
        back: list[list[int]] = [[] for _ in range(n)]
        for src, targets in enumerate(self.unaided if unaided else self.successors):
            for dst in targets:
                back[dst].append(src)
        good = [False] * n
        queue = deque(i for i, w in enumerate(self.worlds) if System.settled(w))
        for i in queue:
            good[i] = True
        while queue:
            for src in back[queue.popleft()]:
                if not good[src]:
                    good[src] = True
                    queue.append(src)
        return good


def explore(
    system: System,
    max_states: int | None = None,
    *,
    symmetry: bool = True,
    start: World | None = None,
) -> Exploration:
    """Visit every reachable world of ``system``, breadth first.

    With ``symmetry`` (the default) worlds that differ only in which message is
    which are visited once. Without it every concrete world is visited; that is
    slower and exists to measure and cross-check the reduction. ``start``
    replaces the system's initial world.
    """
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small tuples, none of them in a cycle
    try:
        return _explore(system, max_states, symmetry, start)
    finally:
        if was_enabled:
            gc.enable()


def _explore(
    system: System, max_states: int | None, symmetry: bool, start: World | None
) -> Exploration:
    canonical: Callable[[World], tuple[World, tuple[int, ...]]] = (
        System.canonical_with_positions if symmetry else _identity
    )
    ex = Exploration(system)
    first = canonical(system.initial() if start is None else start)[0]
    index: dict[World, int] = {first: 0}
    ex.worlds.append(first)
    ex.parent.append(0)
    ex.via.append(None)
    # Which rules each row could match, worked out once per row.
    row_rules: dict[int, list[ForbiddenRule]] = {}
    for spec, table in ((CONNECTION, system.connection), (MESSAGE, system.message)):
        for row in table:
            row_rules[id(row)] = [
                r for r in FORBIDDEN if r.machine == spec.name and r.matches_row(row)
            ]
    sid = 0
    while sid < len(ex.worlds):
        world = ex.worlds[sid]
        targets: list[int] = []
        positions: list[tuple[int, ...]] = []
        unaided: list[int] = []
        for t in system.successors(world, up_to_symmetry=symmetry):
            ex.transitions += 1
            for f in t.fired:
                for rule in row_rules[id(f.row)]:
                    if rule.id not in ex.rule_hits and rule.matches_step(f.row, f.connection):
                        ex.rule_hits[rule.id] = (sid, t)
            target, moved = canonical(t.target)
            tid = index.get(target)
            if tid is None:
                tid = len(ex.worlds)
                if max_states is not None and tid >= max_states:
                    raise StateLimitExceeded(max_states)
                index[target] = tid
                ex.worlds.append(target)
                ex.parent.append(sid)
                ex.via.append(t.label)
            targets.append(tid)
            positions.append(moved)
            if t.stimulus not in USER_STIMULI:
                unaided.append(tid)
        ex.successors.append(targets)
        ex.positions.append(positions)
        ex.unaided.append(unaided)
        sid += 1
    return ex


def _identity(world: World) -> tuple[World, tuple[int, ...]]:
    return world, tuple(range(len(world.messages)))


def replay(system: System, path: list[tuple[Label, World]]) -> list[StepView]:
    """Turn a path of (label, canonical world) pairs into a trace of concrete worlds.

    At each step any concrete successor with the same label whose canonical
    form is the next world on the path will do: they differ only in which
    interchangeable message is which.
    """
    world = system.initial()
    views: list[StepView] = []
    for (stimulus, _message, detail), on_path in path:
        canonical = System.canonical(on_path)
        chosen = next(
            t
            for t in system.successors(world)
            if t.stimulus is stimulus
            and t.detail == detail
            and System.canonical(t.target) == canonical
        )
        views.append(_view(chosen))
        world = chosen.target
    return views


def start_view(messages: int) -> StepView:
    """The row before a trace's first step: the initial world."""
    return _world_view(initial_world(messages), "(start)", None, "", ())


def _view(t: Transition) -> StepView:
    message = None if t.message is None else f"m{t.message + 1}"
    return _world_view(t.target, t.stimulus.value, message, t.detail, t.fired)


def _world_view(
    w: World, event: str, message: str | None, detail: str, fired: tuple[Fired, ...]
) -> StepView:
    return StepView(
        event=event,
        message=message,
        detail=detail,
        connection=w.connection.value,
        socket=w.socket.value,
        foreground=w.foreground,
        network=w.network,
        messages=[
            MessageView(
                id=f"m{i + 1}",
                state="-" if m.state is None else m.state.value,
                held=m.held,
                on_server=m.server,
            )
            for i, m in enumerate(w.messages)
        ],
        fired=[
            FiredView(
                machine="connection" if f.message is None else f"m{f.message + 1}",
                source=f.row.source.value,
                event=f.row.event.value,
                target=f.row.target.value,
            )
            for f in fired
        ],
    )


def static_edges(design: Design, rule: ForbiddenRule) -> list[str]:
    """The rows of the design's table that match ``rule``, as ``source -event-> target``."""
    spec = CONNECTION if rule.machine == "connection" else MESSAGE
    table = spec.table(design)
    return [
        f"{row.source.value} -{row.event.value}-> {row.target.value}"
        for row in table
        if rule.matches_row(row)
    ]


def check(
    design: Design, environment: Environment, messages: int = 2, max_states: int | None = None
) -> CheckReport:
    """Explore the design exhaustively and judge every property."""
    system = System(design, environment, messages)
    ex = explore(system, max_states)

    def trace_to(sid: int) -> list[StepView]:
        return replay(system, ex.path(sid))

    def trace_through(src: int, t: Transition) -> list[StepView]:
        return replay(system, [*ex.path(src), (t.label, System.canonical(t.target))])

    results: list[PropertyResult] = []
    state_predicates: dict[str, Callable[[World], bool]] = {
        "no-duplicate-delivery": lambda w: bool(System.duplicated(w)),
        "connected-means-acked": System.connected_unacked,
    }
    for pid, statement in PROPERTIES.items():
        if pid in state_predicates:
            bad = ex.first(state_predicates[pid])
            cex = None if bad is None else trace_to(bad)
            results.append(
                PropertyResult(id=pid, statement=statement, holds=bad is None, counterexample=cex)
            )
        elif pid == "no-silent-loss":
            found = ex.lost()
            cex = None if found is None else trace_to(found[0])
            results.append(
                PropertyResult(id=pid, statement=statement, holds=found is None, counterexample=cex)
            )
        elif pid in ("eventual-delivery", "recovers-unaided"):
            bad = ex.cannot_settle(unaided=pid == "recovers-unaided")
            cex = None if bad is None else trace_to(bad)
            results.append(
                PropertyResult(id=pid, statement=statement, holds=bad is None, counterexample=cex)
            )
        else:
            hit = _shortest_hit(ex)
            if hit is None:
                results.append(PropertyResult(id=pid, statement=statement, holds=True))
            else:
                rule_id, (src, t) = hit
                results.append(
                    PropertyResult(
                        id=pid,
                        statement=statement,
                        holds=False,
                        rule=rule_id,
                        counterexample=trace_through(src, t),
                    )
                )
    forbidden = []
    for rule in FORBIDDEN:
        hit_at = ex.rule_hits.get(rule.id)
        forbidden.append(
            RuleResult(
                id=rule.id,
                machine=rule.machine,
                reason=rule.reason,
                evidence=rule.evidence,
                edges=static_edges(design, rule),
                reachable=hit_at is not None,
                counterexample=None if hit_at is None else trace_through(*hit_at),
            )
        )
    return CheckReport(
        design=design.name,
        environment=environment.name,
        messages=messages,
        states=len(ex.worlds),
        transitions=ex.transitions,
        properties=results,
        forbidden=forbidden,
    )


def _shortest_hit(ex: Exploration) -> tuple[str, tuple[int, Transition]] | None:
    if not ex.rule_hits:
        return None
    return min(ex.rule_hits.items(), key=lambda item: (len(ex.path(item[1][0])), item[0]))


class AblationRow(BaseModel):
    """One feature of a design set back to a baseline's value, and what then breaks."""

    feature: str
    value: bool | int | str
    baseline: bool | int | str
    #: Why the variant could not be built (a feature another one needs), if so.
    invalid: str | None = None
    #: For each environment, the properties the design holds and the variant violates.
    breaks: dict[str, list[str]] = {}


def ablate(
    design: Design,
    baseline: Design,
    environments: list[Environment],
    messages: int = 2,
) -> list[AblationRow]:
    """Set each feature where ``design`` differs from ``baseline`` back, one at a time.

    A feature whose removal breaks nothing carries no property in this model
    (it may still buy latency or comfort); one whose removal breaks a property
    is load-bearing for it.
    """
    from pydantic import ValidationError

    rows: list[AblationRow] = []
    ours, theirs = design.features(), baseline.features()
    held = {
        env.name: {p.id for p in check(design, env, messages).properties if p.holds}
        for env in environments
    }
    for feature in ours:
        if ours[feature] == theirs[feature]:
            continue
        row = AblationRow(feature=feature, value=ours[feature], baseline=theirs[feature])
        try:
            variant = design.model_copy(update={feature: theirs[feature]})
            Design.model_validate(variant.model_dump())
        except ValidationError as exc:
            row.invalid = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            rows.append(row)
            continue
        for env in environments:
            report = check(variant, env, messages)
            row.breaks[env.name] = [
                p.id for p in report.properties if not p.holds and p.id in held[env.name]
            ]
        rows.append(row)
    return rows
