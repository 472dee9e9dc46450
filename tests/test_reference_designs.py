"""The design files of real client libraries, run as real clients on real sockets.

For each design in ``designs/`` (socket.io-client 4.7 and 4.8, with and without
retries and de-duplication, reconnecting-websocket) and each built-in
environment, these cases (one message) replay through the reference adapter:

* the cases of a ``rows`` suite that fire a row no built-in design has (the
  offline buffer, queue or refusal, the send-time deadline, fire-and-forget
  messages, the acknowledgement timer and the failures it and a disconnect
  bring, the flush at the handshake), and
* a shortest run to each way the world answers a send in each connection state
  (delivered, raised, vanished, buffered, queued, deadline passed), and to each
  thing an acknowledgement timer does on each kind of socket.

After every step the observation is the model's, and so are the real client's
exact message states (``buffered`` is shown as ``pending``), its pending-retry
list (in an ordered queue, its order), the WebSocket attempts made at each message
(where the budget counts them), the server's copies, and what the guards of a
message's steps read: a done the server owes on the open socket that the client
still waits for (a late one is ignored), and a pending acknowledgement timer. A
run whose steps were replayed already in an earlier environment is the same real
run (the driver does what the steps say; the environment only decides which steps
can happen), so it is not replayed again. A design without REST never makes a
request to the REST endpoint.

Two messages on the retries client, whose queue has one message in flight, oldest
first: a shortest run to each thing the queue's order decides (a send behind the
oldest, for each way the world would answer it; the next message written after
the oldest's acknowledgement or its last failed attempt; a reconnect, a disconnect
or a timer while both are held), and a client restarted on its store with two
queued messages, its attempts counted across the restart. The same client with an
unordered list (every held message written at once): a shortest run to each step
that moves both (a disconnect failing both attempts, or one and sparing a buffered
message; an acknowledgement timer whose retry finds the deadline passed and so
fails the other message's attempt; the flush of one and the resend of both at a
handshake).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the reference client needs the 'reference' extra (aiohttp)")

from fsm.analysis.system import WRITTEN, Outcome, Stimulus, System, Transition, World
from fsm.model.behaviour import select_behaviour
from fsm.model.design import DESIGNS, Design, get_environment, load_design
from fsm.model.vocabulary import Hook, MessageEvent, MessageState, Socket
from fsm.reference.adapter import ReferenceAdapter, observation
from fsm.reference.driver import RealMessage, RealState
from fsm.testing.generators import generate
from fsm.testing.graph import row_id
from fsm.testing.observation import Observation, observe
from fsm.testing.suite import Case, Covers, Step

ROOT = Path(__file__).resolve().parent.parent
DESIGN_FILES = (
    "socketio-4.8",
    "socketio-4.8-retries",
    "socketio-4.8-retries-dedup",
    "socketio-4.7",
    "reconnecting-websocket-4.4",
)
ENVIRONMENTS = ("ios-suspend", "ios-suspend-silent", "half-open")
Edge = tuple[object, object]


def design_file(name: str) -> Design:
    return load_design(ROOT / "designs" / f"{name}.toml")


def built_in_rows() -> set[Edge]:
    """Every row (its edge and actions) some built-in design has."""
    rows: set[Edge] = set()
    for design in DESIGNS.values():
        b = select_behaviour(design)
        rows |= {(r.edge, r.actions) for r in (*b.connection, *b.message)}
    return rows


def run_of(system: System, case: Case) -> list[Transition]:
    """A case's steps as the model takes them."""
    world, steps = system.initial(), []
    for step in case.steps:
        t = system.step(world, (step.stimulus, step.index, step.outcome))
        steps.append(t)
        world = t.target
    return steps


def shortest_cases(
    system: System, targets: Callable[[Transition], list[str]], kind: str
) -> list[Case]:
    """A shortest run to each target some step hits (``targets`` names them), found
    breadth-first over the composed system's worlds up to message symmetry; a run
    that hits several targets first is one case."""
    start = system.initial()
    seen = {System.canonical(start)}
    frontier: list[tuple[World, tuple[Transition, ...]]] = [(start, ())]
    runs: dict[str, tuple[Transition, ...]] = {}
    for _depth in range(64):
        if not frontier:
            break
        later = []
        for world, path in frontier:
            for t in system.successors(world):
                run = (*path, t)
                for target in targets(t):
                    runs.setdefault(target, run)
                key = System.canonical(t.target)
                if key not in seen:
                    seen.add(key)
                    later.append((t.target, run))
        frontier = later
    by_run: dict[tuple[Transition, ...], list[str]] = {}
    for target, run in sorted(runs.items()):
        by_run.setdefault(run, []).append(target)
    return [
        Case(
            id=f"{kind}-{n:03d}",
            title="shortest run to " + ", ".join(hit),
            covers=Covers(rows=hit) if kind == "rows" else Covers(transitions=hit),
            steps=[Step.of(t) for t in run],
        )
        for n, (run, hit) in enumerate(by_run.items(), start=1)
    ]


def fired_rows(t: Transition) -> list[str]:
    return [row_id(f.machine, f.row) for f in t.fired]


def send_outcomes(t: Transition) -> list[str]:
    """``send (ws_vanished) in suspended_stale``: how the world answered a send, where."""
    if t.outcome is None:
        return []
    return [f"send ({t.outcome.value}) in {t.fired[0].connection.value}"]


def ack_timeouts(t: Transition) -> list[str]:
    """``ack_timeout on open: ack_retry resend_ws``: what a timer did, on which socket."""
    if t.stimulus is not Stimulus.ack_timeout:
        return []
    fired = " ".join(f.row.event.value for f in t.fired)
    return [f"ack_timeout on {t.target.socket.value}: {fired}"]


#: Steps that move two messages, one stimulus of each kind (a disconnect by
#: ``ping_timeout`` or ``socket_error`` does what one by ``network_lost`` does).
_BOTH = frozenset(
    {Stimulus.network_lost, Stimulus.ack_timeout, Stimulus.handshake_ack, Stimulus.send}
)


def both_messages(t: Transition) -> list[str]:
    """``network_lost: ack_retry ack_failed``: a step that moves two messages."""
    moved = [f for f in t.fired if f.message is not None]
    if t.stimulus not in _BOTH or len({f.message for f in moved}) < 2:
        return []
    return [f"{t.stimulus.value}: " + " ".join(f.row.event.value for f in moved)]


def queue_order(t: Transition) -> list[str]:
    """What an ordered queue's order decides at a step: ``send (ws_delivered) behind
    the oldest``, ``done: done resend_ws`` (a step that moves both messages), or
    ``network_lost with two held: ack_retry`` (a step that moves one of two held)."""
    moved = [f for f in t.fired if f.message is not None]
    events = " ".join(f.row.event.value for f in moved)
    if t.stimulus is Stimulus.send:
        waits = t.outcome in WRITTEN and moved[-1].row.event is MessageEvent.queue
        return [f"send ({t.outcome.value}) behind the oldest"] if waits and t.outcome else []
    if len({f.message for f in moved}) >= 2:
        return [f"{t.stimulus.value}: {events}"]
    if moved and all(m.held for m in t.target.messages):
        return [f"{t.stimulus.value} with two held: {events}"]
    return []


def design_cases(name: str, environment: str) -> tuple[System, list[Case]]:
    """The design's ``rows`` cases (one message) that fire a row no built-in design
    has, and a shortest run to each send outcome in each connection state."""
    design, env = design_file(name), get_environment(environment)
    system = System(design, env, 1)
    suite = generate(design, env, 1, "rows")
    rows = [c for c in suite.cases if c.covers.rows]
    old = built_in_rows()
    new = [
        c
        for c in rows
        if any((f.row.edge, f.row.actions) not in old for t in run_of(system, c) for f in t.fired)
    ]
    timers = shortest_cases(system, ack_timeouts, "timers")
    return system, new + shortest_cases(system, send_outcomes, "sends") + timers


def expected(world: World) -> RealState:
    return RealState(
        world.connection.reports_connected,
        tuple(RealMessage(m.state, m.held, min(m.server, 2)) for m in world.messages),
    )


def guard_facts(adapter: ReferenceAdapter) -> tuple[tuple[bool, bool], ...]:
    """What the guards of a message's steps read of the real world: whether the
    server owes a done the client still waits for on the open socket, and whether
    the message's acknowledgement timer is pending."""
    client = adapter.driver.client
    world = adapter.driver.world
    assert world is not None
    out = []
    for m in client.messages:
        ref = m.key if client.policy.sends_ids else m.body
        owed = world.server.owes(ref, m.ack_floor)
        out.append((owed, client.acks.timer(m) is not None))
    return tuple(out)


def model_facts(system: System, world: World) -> tuple[tuple[bool, bool], ...]:
    timer = Hook.ack_timed_out in system.rules.hooks
    return tuple(
        (m.done_owed, timer and m.state.awaits_ack) for m in world.messages if m.state is not None
    )


def queue_facts(adapter: ReferenceAdapter, system: System) -> tuple[tuple[int, ...], ...]:
    """The WebSocket attempts made at each message, and (in an ordered queue) the
    held messages oldest first, as the real client has them."""
    client = adapter.driver.client
    order = tuple(m.index for m in client.queue) if system.ordered else ()
    return tuple(m.ws_tries for m in client.messages), order


def model_queue(system: System, world: World) -> tuple[tuple[int, ...], ...]:
    sent = [(i, m) for i, m in enumerate(world.messages) if m.state is not None]
    held = sorted((m.ahead, i) for i, m in sent if m.held)
    order = tuple(i for _, i in held) if system.ordered else ()
    return tuple(m.ws_tries for _, m in sent), order


def conforms(
    adapter: ReferenceAdapter,
    system: System,
    steps: list[Transition],
    restarts: frozenset[int] = frozenset(),
) -> str | None:
    """Replay ``steps`` through the adapter, the client killed and restarted on its
    store before each step numbered in ``restarts``; the first difference from the
    model (a restart is no step of it: the model's world stays)."""
    observed = adapter.reset(system.design, system.environment, system.n)
    assert observed == Observation.initial(system.n)
    done: list[str] = []
    world = system.initial()
    for n, t in enumerate(steps):
        if n in restarts:
            done.append("restart")
            problem = differs(adapter, system, world, observation(adapter.driver.restart()), done)
            if problem is not None:
                return problem
        done.append(Step.of(t).label())
        observed = adapter.apply(t.stimulus, t.message, t.outcome)
        world = t.target
        problem = differs(adapter, system, world, observed, done)
        if problem is not None:
            return problem
    return None


def differs(
    adapter: ReferenceAdapter, system: System, world: World, observed: Observation, done: list[str]
) -> str | None:
    """How the real world, and the adapter's observation of it, differ from the
    model's ``world`` after the steps ``done``, if they do."""
    real = adapter.driver.observe()
    facts, model = guard_facts(adapter), model_facts(system, world)
    if world.socket is not Socket.open:
        # A done owed on a dead socket can never arrive: the model forgets it.
        facts = tuple((False, timer) for _, timer in facts)
        model = tuple((False, timer) for _, timer in model)
    queue, model_order = queue_facts(adapter, system), model_queue(system, world)
    wanted = observe(world)
    if observed != wanted or real != expected(world) or (facts, queue) != (model, model_order):
        return (
            f"after {' / '.join(done)}:\n  observed {observed}\n  expected {wanted}"
            f"\n  real  {real} {facts} {queue}\n  model {expected(world)} {model} {model_order}"
        )
    return None


@pytest.fixture(scope="module")
def adapter() -> Iterator[ReferenceAdapter]:
    with ReferenceAdapter() as a:
        yield a


@pytest.mark.parametrize("name", DESIGN_FILES)
def test_a_design_files_cases_replay_on_its_real_client(
    adapter: ReferenceAdapter, name: str
) -> None:
    replayed: set[tuple[str, ...]] = set()
    for environment in ENVIRONMENTS:
        system, cases = design_cases(name, environment)
        assert any(c.id.startswith("rows") for c in cases), environment
        for case in cases:
            labels = tuple(step.label() for step in case.steps)
            if labels in replayed:
                continue
            replayed.add(labels)
            problem = conforms(adapter, system, run_of(system, case))
            assert problem is None, f"{name} in {environment}, {case.id}: {problem}"
            world = adapter.driver.world
            assert world is not None
            if not system.design.rest_endpoint:
                assert (world.server.rest_requests, len(world.rest_proxy.conns)) == (0, 0)


def test_two_messages_in_the_retries_clients_queue(adapter: ReferenceAdapter) -> None:
    """One message in flight, oldest first, on the real client."""
    system = System(design_file("socketio-4.8-retries"), get_environment("half-open"), 2)
    cases = shortest_cases(system, queue_order, "queue")
    hit = {target for c in cases for target in c.covers.transitions}
    # A message sent while the oldest awaits its acknowledgement waits behind it,
    # whatever the world would do to its write.
    assert {f"send ({o.value}) behind the oldest" for o in WRITTEN} <= hit
    # The queue writes the next one after the oldest's acknowledgement, or after its
    # last failed attempt (past the deadline: buffered, and the connection closed).
    assert {"done: done resend_ws", "ack_timeout: ack_failed resend_ws"} <= hit
    assert "ack_timeout: ack_failed deadline_buffer" in hit
    # A reconnect writes the oldest only (a buffered oldest twice: flushed, resent).
    assert "handshake_ack with two held: resend_ws" in hit
    assert "handshake_ack with two held: flush resend_ws" in hit
    assert "network_lost with two held: ack_retry" in hit
    for case in cases:
        problem = conforms(adapter, system, run_of(system, case))
        assert problem is None, f"{case.id} ({case.title}): {problem}"


def labelled_run(
    system: System, labels: list[tuple[Stimulus, int | None, Outcome | None]]
) -> list[Transition]:
    """The model's steps with these labels, each one a step the model can take."""
    world, run = system.initial(), []
    for label in labels:
        assert label in {t.label for t in system.successors(world)}, label
        t = system.step(world, label)
        run.append(t)
        world = t.target
    return run


def test_a_restarted_client_keeps_its_queue_and_its_attempts(adapter: ReferenceAdapter) -> None:
    """The client killed and started again on its store, twice with two queued
    messages (before any connection, and after the oldest's first attempt died with
    the connection), goes on as the model does without the restarts: the oldest is
    written first, its attempts so far count against the budget, and its last failed
    attempt lets the next one go."""
    S, Q = Stimulus, Outcome.queued
    system = System(design_file("socketio-4.8-retries"), get_environment("ios-suspend"), 2)
    run = labelled_run(
        system,
        [
            (S.send, 0, Q),
            (S.send, 1, Q),
            (S.connect, None, None),  # restarted before it
            (S.handshake_ack, None, None),
            (S.network_lost, None, None),
            (S.network_restored, None, None),
            (S.connect, None, None),  # restarted before it
            (S.handshake_ack, None, None),
            (S.ack_timeout, 0, None),
            (S.ack_timeout, 0, None),
            (S.ack_timeout, 0, None),
            (S.done, 1, None),
        ],
    )
    last = run[-2].target.messages
    assert [(m.state, m.ws_tries) for m in last] == [
        (MessageState.failed, 4),
        (MessageState.sent_ws, 1),
    ]
    problem = conforms(adapter, system, run, restarts=frozenset({2, 6}))
    assert problem is None, problem


def test_two_messages_on_the_retries_client_without_an_ordered_queue(
    adapter: ReferenceAdapter,
) -> None:
    """socketio-4.8-retries with every held message written at once."""
    base = design_file("socketio-4.8-retries")
    design = Design.model_validate(
        {**base.model_dump(), "name": "socketio-4.8-retries-unordered", "ordered_queue": False}
    )
    system = System(design, get_environment("half-open"), 2)
    cases = shortest_cases(system, both_messages, "both")
    hit = {target for c in cases for target in c.covers.transitions}
    # A disconnect fails both attempts, or one while the other is retried; a retry
    # past the deadline buffers one message and fails the other's attempt.
    assert {"network_lost: ack_retry ack_retry", "network_lost: ack_failed ack_retry"} <= hit
    assert "ack_timeout: ack_retry deadline_buffer ack_failed" in hit
    assert "handshake_ack: flush resend_ws resend_ws" in hit
    for case in cases:
        problem = conforms(adapter, system, run_of(system, case))
        assert problem is None, f"{case.id} ({case.title}): {problem}"


def test_a_refetch_without_rest_goes_over_the_socket(adapter: ReferenceAdapter) -> None:
    """socketio-4.8 with the companion fix: the refetch after a reconnect asks over
    the new socket, and no request reaches the REST endpoint."""
    base = design_file("socketio-4.8")
    design = Design.model_validate(
        {**base.model_dump(), "name": "socketio-4.8-refetch", "refetch_after_reconnect": True}
    )
    system = System(design, get_environment("ios-suspend"), 1)

    def recovered(t: Transition) -> list[str]:
        return [row_id(f.machine, f.row) for f in t.fired if f.row.event.value == "recovered"]

    cases = shortest_cases(system, recovered, "refetch")
    assert cases
    for case in cases:
        problem = conforms(adapter, system, run_of(system, case))
        assert problem is None, f"{case.id} ({case.title}): {problem}"
        world = adapter.driver.world
        assert world is not None
        assert (world.server.rest_requests, len(world.rest_proxy.conns)) == (0, 0)
