"""The composed system: which steps exist, what they do, and that the tables drive them."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsm import (
    DESIGNS,
    ENVIRONMENTS,
    ConnectionState,
    Design,
    MessageState,
    SpecError,
    Stimulus,
    System,
    check,
    get_design,
    get_environment,
)
from fsm import strategies as fst
from fsm.analysis.explore import explore
from fsm.analysis.system import Message, Outcome, Transition, World
from fsm.model.tables import CONNECTION, MESSAGE
from fsm.model.vocabulary import Socket

if TYPE_CHECKING:
    from conftest import Graphs

C, M = ConnectionState, MessageState
CASES = list(itertools.product(sorted(DESIGNS), sorted(ENVIRONMENTS)))
CASE_IDS = [f"{d}-{e}" for d, e in CASES]


def system(design: str, environment: str = "ios-suspend", messages: int = 2) -> System:
    return System(get_design(design), get_environment(environment), messages)


def step(
    sys: System, world: World, stimulus: Stimulus, outcome: Outcome | None = None
) -> Transition:
    """The one successor of ``world`` by ``stimulus`` (with ``outcome``, if given)."""
    found = [
        t
        for t in sys.successors(world)
        if t.stimulus is stimulus and (outcome is None or t.outcome is outcome)
    ]
    assert len(found) == 1, (stimulus, outcome, [t.label for t in sys.successors(world)])
    return found[0]


def walk(sys: System, *stimuli: Stimulus) -> World:
    world = sys.initial()
    for stimulus in stimuli:
        world = step(sys, world, stimulus).target
    return world


def stimuli(sys: System, world: World) -> list[Stimulus]:
    return [t.stimulus for t in sys.successors(world)]


S = Stimulus
CONNECTED_THEN_SUSPENDED = (S.connect, S.handshake_ack, S.app_background, S.app_foreground)


# -- the initial world ----------------------------------------------------------------
@pytest.mark.parametrize("messages", [1, 2, 5])
def test_initial_world_is_a_fresh_launch(messages: int) -> None:
    world = system("fixed", messages=messages).initial()
    assert world.connection is C.idle
    assert world.socket is Socket.closed
    assert world.foreground is True
    assert world.network is True
    assert world.messages == (Message(),) * messages
    assert all(m.state is None and m.server == 0 and not m.held for m in world.messages)
    assert System.settled(world)


@pytest.mark.parametrize("messages", [0, -1])
def test_a_system_needs_at_least_one_message(messages: int) -> None:
    with pytest.raises(SpecError, match="at least 1"):
        system("fixed", messages=messages)


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_launch_offers_send_connect_and_the_environment(name: str) -> None:
    sys = system(name)
    assert set(stimuli(sys, sys.initial())) == {
        S.send,
        S.connect,
        S.app_background,
        S.network_lost,
    }


# -- sending --------------------------------------------------------------------------
@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_send_requires_the_foreground_and_an_unsent_message(
    graphs: Graphs, design: str, environment: str
) -> None:
    graph = graphs.get(get_design(design), environment, 2)
    sends = 0
    for world, out in zip(graph.worlds, graph.edges, strict=True):
        offered = [t for t, _ in out if t.stimulus is S.send]
        if not world.foreground or all(m.state is not None for m in world.messages):
            assert offered == [], world
        sends += len(offered)
    assert sends > 0


@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_send_waits_while_the_socket_of_a_believed_connection_is_opening(
    graphs: Graphs, design: str, environment: str
) -> None:
    """Swift's ``try await task.send`` suspends until the handshake completes."""
    graph = graphs.get(get_design(design), environment, 2)
    for world, out in zip(graph.worlds, graph.edges, strict=True):
        if System.believes_connected(world) and world.socket is Socket.opening:
            assert S.send not in [t.stimulus for t, _ in out], world


def test_pre_fix_offers_no_send_between_resume_and_the_handshake() -> None:
    sys = system("pre-fix")
    world = walk(sys, S.connect)
    assert world.connection is C.connected
    assert world.socket is Socket.opening
    assert S.send not in stimuli(sys, world)
    assert S.send in stimuli(sys, step(sys, world, S.handshake_ack).target)


def test_send_while_disconnected_goes_over_rest() -> None:
    sys = system("fixed")
    t = step(sys, sys.initial(), S.send)
    assert t.message == 0
    assert t.outcome is Outcome.rest_direct
    assert t.target.messages[0].state is M.sending_rest
    assert t.target.messages[0].held is True
    assert t.target.messages[0].server == 0


def test_send_on_an_open_socket_reaches_the_server_and_is_owed_a_done() -> None:
    sys = system("fixed")
    world = walk(sys, S.connect, S.handshake_ack)
    t = step(sys, world, S.send)
    m1 = t.target.messages[0]
    assert (m1.state, m1.server, m1.held) == (M.sent_ws, 1, True)
    done = step(sys, t.target, S.done)
    assert done.message == 0
    assert done.target.messages[0].state is M.confirmed
    assert done.target.messages[0].held is False


def test_backgrounding_loses_the_done_owed_on_the_socket() -> None:
    sys = system("pre-fix")
    world = walk(sys, S.connect, S.handshake_ack, S.send, S.app_background, S.app_foreground)
    assert world.messages[0].state is M.sent_ws
    assert world.messages[0].server == 1
    assert S.done not in stimuli(sys, world)


@pytest.mark.parametrize("environment", ["ios-suspend", "half-open"])
def test_send_into_a_suspended_socket_raises(environment: str) -> None:
    """iOS suspension: the only outcome of a send is an error, in both these environments."""
    sys = system("fixed", environment)
    world = walk(sys, *CONNECTED_THEN_SUSPENDED)
    assert world.connection is C.suspended_stale
    sends = [t for t in sys.successors(world) if t.stimulus is S.send]
    assert len(sends) == 1
    assert sends[0].outcome is Outcome.ws_raised


def test_send_into_a_suspended_socket_may_return_normally_when_ios_is_silent() -> None:
    """The seed's root cause, step 5: task.send() "fails silently (no error thrown)"."""
    sys = system("fixed", "ios-suspend-silent")
    world = walk(sys, *CONNECTED_THEN_SUSPENDED)
    sends = {t.outcome: t for t in sys.successors(world) if t.stimulus is S.send}
    assert set(sends) == {Outcome.ws_raised, Outcome.ws_vanished}
    vanished = sends[Outcome.ws_vanished].target
    assert vanished.connection is C.suspended_stale  # catch never runs: no disconnect
    assert (vanished.messages[0].state, vanished.messages[0].server) == (M.sent_ws, 0)


def test_send_into_a_half_open_socket_raises_or_vanishes() -> None:
    sys = system("fixed", "half-open")
    world = walk(sys, S.connect, S.handshake_ack, S.connection_dropped)
    assert world.connection is C.suspended_stale
    sends = [t for t in sys.successors(world) if t.stimulus is S.send]
    assert len(sends) == 2
    assert {t.outcome for t in sends} == {Outcome.ws_raised, Outcome.ws_vanished}
    raised = next(t for t in sends if t.outcome is Outcome.ws_raised)
    vanished = next(t for t in sends if t.outcome is Outcome.ws_vanished)
    assert raised.target.connection is C.disconnected
    assert raised.target.messages[0].state is M.retrying_rest
    assert vanished.target.connection is C.suspended_stale
    assert vanished.target.messages[0].state is M.sent_ws
    assert vanished.target.messages[0].server == 0


def test_ios_suspend_has_no_silent_connection_drop() -> None:
    sys = system("fixed", "ios-suspend")
    world = walk(sys, S.connect, S.handshake_ack)
    assert S.connection_dropped not in stimuli(sys, world)
    assert S.connection_dropped in stimuli(system("fixed", "half-open"), world)


def test_pre_fix_send_into_a_stale_socket_silently_loses_the_message() -> None:
    """The seed bug: the error is swallowed, the flag stays true, nothing retries."""
    sys = system("pre-fix")
    world = walk(sys, *CONNECTED_THEN_SUSPENDED)
    t = step(sys, world, S.send)
    assert t.target.connection is C.suspended_stale
    assert t.target.messages[0].state is M.sent_ws
    assert t.target.messages[0].server == 0
    assert not t.target.messages[0].held
    assert System.undelivered(t.target) == [0]


def test_fixed_retries_a_failed_send_over_rest() -> None:
    """The seed's fix: disconnect, then retry the pending list over REST."""
    sys = system("fixed")
    world = walk(sys, *CONNECTED_THEN_SUSPENDED)
    t = step(sys, world, S.send)
    assert t.target.connection is C.disconnected
    assert t.target.socket is Socket.closed
    assert t.target.messages[0].state is M.retrying_rest
    ok = step(sys, t.target, S.rest_ok)
    assert ok.target.messages[0].state is M.confirmed
    assert ok.target.messages[0].server == 1


def test_hardened_reconnects_when_the_app_returns() -> None:
    sys = system("hardened")
    world = walk(sys, S.connect, S.handshake_ack, S.app_background, S.app_foreground)
    assert world.connection is C.handshaking
    assert world.socket is Socket.opening


def test_hardened_resends_the_pending_list_on_reconnect() -> None:
    design = Design.model_validate(
        {**get_design("hardened").model_dump(), "refetch_after_reconnect": False}
    )
    sys = System(design, get_environment("ios-suspend"), 2)
    world = walk(sys, S.connect, S.handshake_ack, S.send, S.app_background, S.app_foreground)
    assert world.messages[0].state is M.sent_ws
    assert world.messages[0].held is True
    ack = step(sys, world, S.handshake_ack)
    assert ack.target.messages[0].done_owed is True
    assert ack.target.messages[0].server == 1  # message ids: the server keeps one copy
    assert [f.row.event.value for f in ack.fired] == ["handshake_ack", "resend_ws"]


def test_the_refetch_recovers_a_done_that_died_with_the_socket() -> None:
    """The seed's companion fix: after the reconnect, the server's state confirms m1."""
    sys = system("seed-system")
    world = walk(sys, S.connect, S.handshake_ack, S.send, S.app_background, S.app_foreground)
    m1 = world.messages[0]
    assert (m1.state, m1.server, m1.done_owed) == (M.sent_ws, 1, False)
    ack = step(sys, world, S.handshake_ack)
    assert ack.target.messages[0].state is M.confirmed
    assert [f.row.event.value for f in ack.fired] == ["handshake_ack", "recovered"]
    assert step(system("fixed"), world, S.handshake_ack).target.messages[0].state is M.sent_ws


def test_the_refetch_does_not_recover_what_the_server_never_received() -> None:
    sys = system("seed-system", "half-open")
    world = walk(sys, S.connect, S.handshake_ack, S.connection_dropped)
    vanished = step(sys, world, S.send, Outcome.ws_vanished).target
    assert vanished.messages[0].server == 0
    back = step(sys, step(sys, vanished, S.app_background).target, S.app_foreground).target
    ack = step(sys, back, S.handshake_ack)
    assert [f.row.event.value for f in ack.fired] == ["handshake_ack"]
    assert (ack.target.messages[0].state, ack.target.messages[0].server) == (M.sent_ws, 0)


def test_a_warm_cache_never_changes_a_step() -> None:
    """The memoised steps are pure: a fresh system offers exactly the same successors."""
    for name in DESIGNS:
        for env in ENVIRONMENTS:
            warm = system(name, env)
            graph = explore(warm)
            for world in graph.worlds[:: max(1, len(graph.worlds) // 150)]:
                cold = system(name, env)
                assert cold.successors(world) == warm.successors(world), (name, env, world)


# -- REST -----------------------------------------------------------------------------
@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_rest_outcomes_need_the_foreground_and_the_network_except_an_error(
    graphs: Graphs, design: str, environment: str
) -> None:
    graph = graphs.get(get_design(design), environment, 2)
    rest = {S.rest_ok, S.rest_error, S.rest_lost_response}
    for world, out in zip(graph.worlds, graph.edges, strict=True):
        for i, m in enumerate(world.messages):
            offered = {t.stimulus for t, _ in out if t.message == i and t.stimulus in rest}
            if m.state not in (M.sending_rest, M.retrying_rest) or not world.foreground:
                assert offered == set()
            elif world.network:
                assert offered == rest
            else:
                assert offered == {S.rest_error}


def test_a_lost_rest_response_still_reaches_the_server() -> None:
    sys = system("hardened")
    t = step(sys, step(sys, sys.initial(), S.send).target, S.rest_lost_response)
    m1 = t.target.messages[0]
    assert m1.server == 1
    assert m1.state is M.sending_rest  # hardened tries twice
    assert m1.held is True
    again = step(sys, t.target, S.rest_ok).target.messages[0]
    assert (again.state, again.server) == (M.confirmed, 1)  # the server deduplicates


def test_rest_gives_up_after_max_attempts() -> None:
    sys = system("fixed")
    t = step(sys, step(sys, sys.initial(), S.send).target, S.rest_error)
    assert t.target.messages[0].state is M.failed
    assert t.target.messages[0].held is False


# -- predicates ------------------------------------------------------------------------
def _world(
    *messages: Message,
    connection: ConnectionState = ConnectionState.disconnected,
    socket: Socket = Socket.closed,
) -> World:
    return World(connection, socket, True, True, messages)


def test_a_sent_message_the_server_lacks_is_undelivered_held_or_not() -> None:
    """Whether it is *lost* depends on what can still happen: the checker decides that."""
    world = _world(
        Message(M.sent_ws), Message(M.confirmed, server=1), Message(M.sent_ws, held=True)
    )
    assert System.undelivered(world) == [0, 2]


@pytest.mark.parametrize(
    "message",
    [
        Message(),
        Message(M.sent_ws, server=1),
        Message(M.failed),
        Message(M.confirmed, server=1),
    ],
)
def test_unsent_delivered_or_failed_messages_are_not_undelivered(message: Message) -> None:
    assert System.undelivered(_world(message)) == []


def test_two_copies_on_the_server_are_a_duplicate() -> None:
    world = _world(Message(M.confirmed, server=1), Message(M.confirmed, server=2))
    assert System.duplicated(world) == [1]


def test_connected_on_a_socket_that_is_not_open_is_unacked() -> None:
    assert System.connected_unacked(_world(connection=C.connected, socket=Socket.opening))
    assert not System.connected_unacked(_world(connection=C.connected, socket=Socket.open))
    assert not System.connected_unacked(_world(connection=C.handshaking, socket=Socket.opening))


def test_settled_means_every_sent_message_is_final() -> None:
    assert System.settled(_world(Message(), Message(M.failed), Message(M.confirmed, server=1)))
    assert not System.settled(_world(Message(M.confirmed, server=1), Message(M.sent_ws)))


# -- symmetry -------------------------------------------------------------------------
def _permute(world: World, order: list[int]) -> World:
    return world._replace(messages=tuple(world.messages[i] for i in order))


def _outcomes(sys: System, world: World) -> Counter[tuple[Stimulus, Outcome | None, World]]:
    return Counter(
        (t.stimulus, t.outcome, System.canonical(t.target)) for t in sys.successors(world)
    )


@st.composite
def reachable(draw: st.DrawFn, messages: int = 3) -> tuple[System, World]:
    """A system and a world reached by a random walk from its initial world."""
    design = draw(st.sampled_from(sorted(DESIGNS)))
    environment = draw(st.sampled_from(sorted(ENVIRONMENTS)))
    sys = system(design, environment, messages)
    world = sys.initial()
    for choice in draw(st.lists(st.integers(0, 50), max_size=30)):
        options = sys.successors(world)
        world = options[choice % len(options)].target
    return sys, world


@settings(max_examples=200, deadline=None)
@given(case=reachable(), order=st.permutations(range(3)))
def test_canonical_is_idempotent_and_ignores_message_order(
    case: tuple[System, World], order: list[int]
) -> None:
    _, world = case
    canonical = System.canonical(world)
    assert System.canonical(canonical) == canonical
    assert System.canonical(_permute(world, order)) == canonical
    assert canonical[:4] == world[:4]
    assert len(canonical.messages) == len(world.messages)


@settings(max_examples=200, deadline=None)
@given(case=reachable(), order=st.permutations(range(3)))
def test_symmetric_worlds_have_symmetric_successors(
    case: tuple[System, World], order: list[int]
) -> None:
    """Exploring a canonical or permuted world reaches the same canonical worlds."""
    sys, world = case
    expected = _outcomes(sys, world)
    assert _outcomes(sys, _permute(world, order)) == expected
    assert _outcomes(sys, System.canonical(world)) == expected


@settings(max_examples=200, deadline=None)
@given(case=reachable(), order=st.permutations(range(3)))
def test_predicates_do_not_depend_on_message_order(
    case: tuple[System, World], order: list[int]
) -> None:
    _, world = case
    for other in (_permute(world, order), System.canonical(world)):
        assert len(System.undelivered(other)) == len(System.undelivered(world))
        assert bool(System.duplicated(other)) == bool(System.duplicated(world))
        assert System.connected_unacked(other) == System.connected_unacked(world)
        assert System.settled(other) == System.settled(world)


# -- the tables are the single source of truth -------------------------------------------
@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_every_fired_row_is_a_row_of_the_designs_tables(
    graphs: Graphs, design: str, environment: str
) -> None:
    d = get_design(design)
    tables: dict[str, Any] = {"connection": CONNECTION.table(d), "message": MESSAGE.table(d)}
    graph = graphs.get(d, environment, 2)
    fired = 0
    for out in graph.edges:
        for t, _ in out:
            for f in t.fired:
                assert f.machine in tables
                assert (f.message is None) == (f.machine == "connection")
                assert tables[f.machine].rows[(f.row.source, f.row.event)] == f.row
                fired += 1
    assert fired > 0


@pytest.mark.parametrize(("design", "environment"), CASES, ids=CASE_IDS)
def test_every_state_change_is_explained_by_fired_rows(
    graphs: Graphs, design: str, environment: str
) -> None:
    """A machine changes state only along the rows a step reports, chained in order."""
    graph = graphs.get(get_design(design), environment, 2)
    for src, out in enumerate(graph.edges):
        before = graph.worlds[src]
        for t, _ in out:
            after = t.target
            chains: dict[int | None, list[Any]] = {}
            for f in t.fired:
                chains.setdefault(f.message, []).append(f.row)
            starts: dict[int | None, object] = {None: before.connection}
            ends: dict[int | None, object] = {None: after.connection}
            for i, (old, new) in enumerate(zip(before.messages, after.messages, strict=True)):
                starts[i] = MessageState.pending if old.state is None else old.state
                ends[i] = new.state
            for key in starts:
                rows = chains.get(key, [])
                if not rows:
                    if key is None:
                        assert after.connection is before.connection, t.label
                    else:
                        assert after.messages[key].state is before.messages[key].state, t.label
                    continue
                assert rows[0].source is starts[key], t.label
                assert rows[-1].target is ends[key], t.label
                for a, b in itertools.pairwise(rows):
                    assert a.target is b.source, t.label


# -- every design a file can describe ------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(design=fst.designs(), environment=st.sampled_from(sorted(ENVIRONMENTS)))
def test_any_valid_design_explores_without_a_forbidden_lookup(
    design: Design, environment: str
) -> None:
    """The system never asks a table for a row the design lacks (that would raise)."""
    ex = explore(System(design, get_environment(environment), 1))
    assert len(ex.worlds) > 1


def test_an_unreported_suspension_never_offers_the_socket_error() -> None:
    """The seed's reading: handleDisconnect() was never called. Nothing reports the socket."""
    reported = system("fixed")
    env = get_environment("ios-suspend").model_copy(
        update={"name": "unreported", "suspension_reported": False}
    )
    unreported = System(get_design("fixed"), env, 2)
    world = walk(reported, *CONNECTED_THEN_SUSPENDED)
    assert S.socket_error in stimuli(reported, world)
    assert S.socket_error not in stimuli(unreported, world)


def test_the_reported_suspension_is_a_reading_that_changes_no_builtin_verdict() -> None:
    env = get_environment("ios-suspend")
    unreported = env.model_copy(update={"name": "unreported", "suspension_reported": False})
    for design in DESIGNS.values():
        a = [v.holds for v in check(design, env, 2).verdicts]
        b = [v.holds for v in check(design, unreported, 2).verdicts]
        assert a == b, design.name
