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
list, the server's copies, and what the guards of a message's steps read: a done
the server owes on the open socket that the client still waits for (a late one is
ignored), and a pending acknowledgement timer. A run whose steps were replayed already in an
earlier environment is the same real run (the driver does what the steps say; the
environment only decides which steps can happen), so it is not replayed again.
A design without REST never makes a request to the REST endpoint.

Two messages on the retries client: a shortest run to each step that moves both
(a disconnect failing both attempts, or one and sparing a buffered message; an
acknowledgement timer whose retry finds the deadline passed and so fails the other
message's attempt; the flush of one and the resend of both at a handshake).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the reference client needs the 'reference' extra (aiohttp)")

from fsm.analysis.system import Stimulus, System, Transition, World
from fsm.model.behaviour import select_behaviour
from fsm.model.design import DESIGNS, Design, get_environment, load_design
from fsm.model.vocabulary import Hook, Socket
from fsm.reference.adapter import ReferenceAdapter
from fsm.reference.driver import RealMessage, RealState
from fsm.testing.generators import generate
from fsm.testing.graph import row_id
from fsm.testing.observation import Observation
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


def conforms(adapter: ReferenceAdapter, system: System, steps: list[Transition]) -> str | None:
    """Replay ``steps`` through the adapter; the first difference from the model."""
    observed = adapter.reset(system.design, system.environment, system.n)
    assert observed == Observation.initial(system.n)
    done: list[str] = []
    for t in steps:
        step = Step.of(t)
        done.append(step.label())
        observed = adapter.apply(t.stimulus, t.message, t.outcome)
        real = adapter.driver.observe()
        facts, model = guard_facts(adapter), model_facts(system, t.target)
        if t.target.socket is not Socket.open:
            # A done owed on a dead socket can never arrive: the model forgets it.
            facts = tuple((False, timer) for _, timer in facts)
            model = tuple((False, timer) for _, timer in model)
        if observed != step.expected or real != expected(t.target) or facts != model:
            return (
                f"after {' / '.join(done)}:\n  observed {observed}\n  expected {step.expected}"
                f"\n  real  {real} {facts}\n  model {expected(t.target)} {model}"
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


def test_two_messages_on_the_retries_client(adapter: ReferenceAdapter) -> None:
    system = System(design_file("socketio-4.8-retries"), get_environment("half-open"), 2)
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
