"""The real client, server and proxy against the model, one step at a time.

Every test walks the composed system and makes the real world take the same
steps (:class:`fsm.reference.driver.LockstepDriver`); after each step the real
client's flag, each message's state and pending-list entry, and the server
store's copy count must equal the model's.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

pytest.importorskip("aiohttp", reason="the reference client needs the 'reference' extra (aiohttp)")

from fsm import FORBIDDEN, MessageState, check, get_design, get_environment
from fsm.analysis.scenario import get_scenario
from fsm.analysis.system import Outcome, Stimulus, System, Transition, World
from fsm.model.behaviour import select_behaviour
from fsm.model.vocabulary import ConnectionState, MessageEvent
from fsm.reference.client import ClientEvent
from fsm.reference.driver import LockstepDriver, RealMessage, RealState

DESIGNS = ("pre-fix", "fixed", "seed-system", "hardened")
ENVIRONMENTS = ("ios-suspend", "ios-suspend-silent", "half-open")
_STATES = {s.value: s for s in MessageState}
_EVENTS = {e.value: e for e in MessageEvent}
_CONNECTION = {c.value: c for c in ConnectionState}


def expected(world: World) -> RealState:
    """What a test can read from the real world, projected from the model's state."""
    return RealState(
        world.connection.reports_connected,
        tuple(RealMessage(m.state, m.held, min(m.server, 2)) for m in world.messages),
    )


@pytest.fixture(scope="module")
def events() -> list[ClientEvent]:
    return []


@pytest.fixture(scope="module")
def driver(events: list[ClientEvent]) -> Iterator[LockstepDriver]:
    d = LockstepDriver(on_event=events.append)
    yield d
    d.close()


def replay(
    driver: LockstepDriver, system: System, steps: list[Transition]
) -> list[tuple[str, RealState, RealState]]:
    """Replay ``steps`` on the real world; every step's (label, model, real)."""
    seen = []
    got = driver.reset(system.design, system.environment, system.n)
    assert got == expected(system.initial())
    for t in steps:
        got = driver.apply(t.stimulus, t.message, t.outcome)
        seen.append((label(t), expected(t.target), got))
    return seen


def label(t: Transition) -> str:
    text = str(t.stimulus)
    if t.message is not None:
        text += f" m{t.message + 1}"
    if t.outcome is not None:
        text += f" ({t.outcome})"
    return text


def assert_conforms(seen: list[tuple[str, RealState, RealState]]) -> None:
    for n, (_what, model, real) in enumerate(seen, start=1):
        trace = " · ".join(s[0] for s in seen[:n])
        assert real == model, f"after {trace}:\n  model {model}\n  real  {real}"


def scenario_steps(system: System, name: str) -> list[Transition]:
    """The named scenario's steps as the model takes them (skipping impossible ones)."""
    world = system.initial()
    steps = []
    for script in get_scenario(name).steps:
        target = None if script.message is None else script.message - 1
        choice = next(
            (
                t
                for t in system.successors(world)
                if t.stimulus is script.stimulus and (target is None or t.message == target)
            ),
            None,
        )
        if choice is not None:
            steps.append(choice)
            world = choice.target
    return steps


def f1_fired(events: list[ClientEvent], design: str) -> bool:
    """Whether the real client fired a row that breaks F1 (as a runtime monitor sees it)."""
    rule = next(r for r in FORBIDDEN if r.id == "F1")
    for e in events:
        if e.kind != "fired" or e.machine != "message":
            continue
        assert e.source is not None
        assert e.event is not None
        assert e.connection is not None
        row = select_behaviour(get_design(design)).message.rows.get(
            (_STATES[e.source], _EVENTS[e.event])
        )
        if row is not None and rule.matches_step(row, _CONNECTION[e.connection]):
            return True
    return False


@pytest.mark.parametrize("name", DESIGNS)
def test_seed_verification_on_real_sockets(
    driver: LockstepDriver, events: list[ClientEvent], name: str
) -> None:
    """The seed's own test case: the second message is lost on pre-fix (the real
    client fires F1), delivered once on the fix and on hardened. (On seed-system the
    second send waits for the reconnect's handshake, so the scenario skips it.)"""
    system = System(get_design(name), get_environment("ios-suspend"), 2)
    events.clear()
    seen = replay(driver, system, scenario_steps(system, "seed-verification"))
    assert_conforms(seen)
    m2 = seen[-1][2].messages[1]
    server = driver.world.server if driver.world else None
    assert server is not None
    if name == "pre-fix":
        assert m2 == RealMessage(MessageState.sent_ws, False, 0)  # shown sent, never arrived
        assert f1_fired(events, name)
    else:
        assert not f1_fired(events, name)
    if name in ("fixed", "hardened"):
        assert m2.state is MessageState.confirmed
        assert m2.server == 1


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("name", DESIGNS)
def test_counterexamples_reproduce_on_real_sockets(
    driver: LockstepDriver, name: str, environment: str
) -> None:
    """Every counterexample the checker finds happens on the real client too: the
    same flag, states, pending list and server copies at every step."""
    design, env = get_design(name), get_environment(environment)
    system = System(design, env, 2)
    result = check(design, env, messages=2)
    found = [v.trace for v in result.verdicts] + [r.trace for r in result.rules]
    traces = {tuple(label(t) for t in tr.steps): tr.steps for tr in found if tr is not None}
    for steps in traces.values():
        assert_conforms(replay(driver, system, list(steps)))


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("name", DESIGNS)
def test_random_walks_conform(driver: LockstepDriver, name: str, environment: str) -> None:
    """Seeded random walks of the model, replayed on the real world, agree step by step."""
    design, env = get_design(name), get_environment(environment)
    system = System(design, env, 2)
    rng = random.Random(f"{name}/{environment}")
    for _ in range(2):
        world = system.initial()
        steps = []
        for _ in range(14):
            t = rng.choice(system.successors(world))
            steps.append(t)
            world = t.target
        assert_conforms(replay(driver, system, steps))


def test_silent_send_is_lost_by_the_fix_on_real_sockets(driver: LockstepDriver) -> None:
    """The fix depends on the send raising: a send into the suspended socket that
    returns normally (the proxy black-holes it) loses the message on the real client."""
    system = System(get_design("fixed"), get_environment("ios-suspend-silent"), 1)
    world = system.initial()
    steps = []
    for stimulus, outcome in (
        (Stimulus.connect, None),
        (Stimulus.app_background, None),
        (Stimulus.app_foreground, None),
        (Stimulus.send, Outcome.ws_vanished),
    ):
        t = next(
            t for t in system.successors(world) if t.stimulus is stimulus and t.outcome is outcome
        )
        steps.append(t)
        world = t.target
    seen = replay(driver, system, steps)
    assert_conforms(seen)
    assert seen[-1][2].messages[0] == RealMessage(MessageState.sent_ws, True, 0)
