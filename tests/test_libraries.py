"""The design space of real client libraries: each mechanism's rows and effects, the
verdicts on the example designs of ``designs/``, and the seed's designs unchanged.

The example designs describe socket.io-client 4.7.5 and 4.8.4 (defaults; retries with
an acknowledgement timeout; with a server that de-duplicates) and reconnecting-websocket
4.4.0. What the real libraries do in the same cases is pinned in
``tests/test_socketio_driver.py``.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from fsm.analysis.checker import CheckResult, check
from fsm.analysis.questions import Dependence, send_dependence
from fsm.analysis.system import Message, Outcome, Stimulus, System, World
from fsm.cli import main
from fsm.model.behaviour import select_behaviour
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design, get_design, get_environment, load_design
from fsm.model.errors import SpecError
from fsm.model.stimuli import REST_STIMULI
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
)
from fsm.render.diff import edge_changes, effect_changes, feature_changes
from fsm.render.machine import SPECS

ROOT = Path(__file__).resolve().parent.parent
DESIGN_FILES = sorted((ROOT / "designs").glob("*.toml"))
C, CE = ConnectionState, ConnectionEvent
M, ME = MessageState, MessageEvent


def example(name: str) -> Design:
    return load_design(ROOT / "designs" / f"{name}.toml")


def _with(base: Design | str, **changes: Any) -> Design:
    design = get_design(base) if isinstance(base, str) else base
    return Design.model_validate({**design.model_dump(), "name": "variant", **changes})


def _verdicts(result: CheckResult) -> dict[str, bool | None]:
    return {v.id: v.holds for v in result.verdicts}


# -- the seed's designs keep every report ----------------------------------------------------
GOLDEN = json.loads((ROOT / "tests" / "data" / "seed-design-reports.json").read_text())


@pytest.mark.parametrize("key", sorted(GOLDEN))
def test_the_seed_designs_reports_are_byte_identical(key: str) -> None:
    """``fsm check --json`` for the four built-in designs, in the three environments,
    with 1 to 4 messages: the same bytes and exit code as before the client libraries'
    features existed (the sums were taken from the last version without them)."""
    design, rest = next((d, key[len(d) + 1 :]) for d in DESIGNS if key.startswith(d + "-"))
    environment, messages = rest.rsplit("-", 1)
    out = io.StringIO()
    argv = ["check", "--json", "--design", design, "--environment", environment]
    code = main([*argv, "--messages", messages], out)
    digest = hashlib.sha256((out.getvalue() + f"{code}\n").encode()).hexdigest()
    assert digest == GOLDEN[key]


def test_the_golden_reports_cover_every_seed_design_environment_and_bound() -> None:
    assert sorted(GOLDEN) == sorted(
        f"{d}-{e}-{n}" for d in DESIGNS for e in ENVIRONMENTS for n in (1, 2, 3, 4)
    )


# -- what a send does while not connected ----------------------------------------------------
@pytest.mark.parametrize(
    ("offline_send", "event", "target", "outcome"),
    [
        ("rest", ME.send_rest, M.sending_rest, Outcome.rest_direct),
        ("buffer", ME.buffer, M.buffered, Outcome.buffered),
        ("queue", ME.queue, M.pending, Outcome.queued),
        ("refuse", ME.refuse, M.failed, Outcome.refused),
    ],
)
def test_an_offline_send_does_what_its_row_says(
    offline_send: str, event: MessageEvent, target: MessageState, outcome: Outcome
) -> None:
    no_rest = {"rest_fallback": False, "max_rest_attempts": 1, "rest_retry_failure": "shown"}
    base = _with("hardened", **no_rest) if offline_send != "rest" else "hardened"
    design = _with(base, offline_send=offline_send, rest_endpoint=offline_send == "rest")
    b = select_behaviour(design)
    offline = [r for r in b.message if r.source is M.pending and r.event in _OFFLINE]
    assert [(r.event, r.target) for r in offline] == [(event, target)]
    system = System(design, get_environment("ios-suspend"), 1)
    (send,) = [t for t in system.successors(system.initial()) if t.stimulus is Stimulus.send]
    assert send.outcome is outcome
    assert send.target.messages[0].state is target
    assert outcome in b.outcomes
    assert not set(_OFFLINE_OUTCOMES) - {outcome} & set(b.outcomes)


_OFFLINE = {ME.send_rest, ME.buffer, ME.queue, ME.refuse}
_OFFLINE_OUTCOMES = (Outcome.rest_direct, Outcome.buffered, Outcome.queued, Outcome.refused)


def test_the_buffer_is_flushed_when_a_connection_is_acknowledged_then_the_list_resent() -> None:
    design = example("socketio-4.8")
    rows = select_behaviour(design).connection.rows
    assert rows[(C.handshaking, CE.handshake_ack)].actions == (Action.flush_buffer,)
    system = System(design, get_environment("ios-suspend"), 2)
    world = World(C.handshaking, Socket.opening, True, True, (Message(M.buffered),) * 2)
    (ack,) = [t for t in system.successors(world) if t.stimulus is Stimulus.handshake_ack]
    assert [m.state for m in ack.target.messages] == [M.sent_ws, M.sent_ws]
    assert [(m.server, m.done_owed) for m in ack.target.messages] == [(1, True), (1, True)]
    # With the retry queue too, the flush runs first: a buffered message that is also
    # queued is written twice, as socket.io's onconnect() does (emitBuffered, then
    # _drainQueue(true)).
    retries = select_behaviour(example("socketio-4.8-retries")).connection.rows
    assert retries[(C.handshaking, CE.handshake_ack)].actions == (
        Action.flush_buffer,
        Action.resend_oldest,
    )


def test_a_message_flushed_onto_a_connection_that_dies_is_forgotten() -> None:
    """It left the buffer, nothing holds it, its acknowledgement dies with the socket."""
    result = check(example("socketio-4.8"), get_environment("ios-suspend"), 1)
    verdict = result.verdict("eventual-delivery")
    assert verdict.holds is False
    assert verdict.trace is not None
    steps = [(s.stimulus, s.outcome) for s in verdict.trace]
    assert steps[0] == (Stimulus.send, Outcome.buffered)
    last = verdict.trace.final.messages[0]
    assert (last.state, last.held, last.server, last.done_owed) == (M.sent_ws, False, 1, False)


# -- no REST at all --------------------------------------------------------------------------
def test_a_design_without_rest_has_no_rest_row_stimulus_or_outcome() -> None:
    for name in ("socketio-4.7", "socketio-4.8", "socketio-4.8-retries"):
        b = select_behaviour(example(name))
        assert not [r for r in b.message if r.target.rest_in_flight or r.source.rest_in_flight]
        assert not set(REST_STIMULI) & set(b.stimuli)
        assert Outcome.rest_direct not in b.outcomes
        assert b.retry_budget is None
    seed = select_behaviour(get_design("hardened"))
    assert set(REST_STIMULI) <= set(seed.stimuli)
    assert Stimulus.ack_timeout not in seed.stimuli


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"rest_endpoint": False}, "offline_send = 'rest' needs rest_endpoint"),
        (
            {
                "rest_endpoint": False,
                "offline_send": "buffer",
                "rest_fallback": True,
                "write_ahead": True,
            },
            "rest_fallback needs rest_endpoint",
        ),
        (
            {"rest_endpoint": False, "offline_send": "buffer", "max_rest_attempts": 2},
            "without rest_endpoint leave them at 1 and 'shown'",
        ),
        ({"offline_send": "queue"}, "offline_send = 'queue' needs resend_on_reconnect"),
        ({"send_deadline_check": True}, "send_deadline_check needs heartbeat"),
        ({"acknowledged": False, "ack_timer": True}, "need acknowledged"),
        ({"ws_attempts": 3}, "ws_attempts above 1 needs ack_timer or ack_fails_on_disconnect"),
        ({"ws_attempts": 3, "ack_timer": True}, "ws_attempts above 1 needs resend_on_reconnect"),
    ],
)
def test_a_design_file_naming_features_that_need_others_is_one_line(
    changes: dict[str, Any], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "mine.toml"
    lines = ['based_on = "pre-fix"', 'name = "mine"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in changes.items()]
    spec.write_text("\n".join(lines) + "\n")
    with pytest.raises(SpecError, match=says):
        load_design(spec)
    assert main(["check", "--spec", str(spec)], io.StringIO()) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert says in err


# -- acknowledgements that will not come ------------------------------------------------------
def _awaiting(
    design: Design, socket: Socket, connection: ConnectionState = C.connected, **m: Any
) -> World:
    message = Message(M.sent_ws, held=True, **m)
    return World(connection, socket, True, True, (message,))


def test_the_ack_timer_fails_the_attempt_and_writes_the_message_again_at_once() -> None:
    design = example("socketio-4.8-retries")
    system = System(design, get_environment("half-open"), 1)
    open_ = _awaiting(design, Socket.open, server=1, done_owed=True, ws_tries=1)
    (timeout,) = [t for t in system.successors(open_) if t.stimulus is Stimulus.ack_timeout]
    fired = [(f.row.event, f.row.target) for f in timeout.fired]
    assert fired == [(ME.ack_retry, M.pending), (ME.resend_ws, M.sent_ws)]
    m = timeout.target.messages[0]
    # The resend is its second attempt (socket.io's tryCount counts what it writes).
    assert (m.state, m.held, m.server, m.ws_tries, m.done_owed) == (M.sent_ws, True, 2, 2, True)
    # Into a half-open socket the copy vanishes; the attempt counts all the same.
    dead = _awaiting(design, Socket.half_open, C.suspended_stale, ws_tries=1)
    (timeout,) = [t for t in system.successors(dead) if t.stimulus is Stimulus.ack_timeout]
    m = timeout.target.messages[0]
    assert (m.state, m.server, m.ws_tries) == (M.sent_ws, 0, 2)


def test_the_last_attempt_shows_the_failure_even_where_the_server_has_it() -> None:
    design = example("socketio-4.8-retries")
    system = System(design, get_environment("half-open"), 1)
    last = _awaiting(design, Socket.open, server=1, done_owed=True, ws_tries=4)
    (timeout,) = [t for t in system.successors(last) if t.stimulus is Stimulus.ack_timeout]
    assert [f.row.event for f in timeout.fired] == [ME.ack_failed]
    m = timeout.target.messages[0]
    # The app is told "operation has timed out" for a message the server has.
    assert (m.state, m.held, m.server) == (M.failed, False, 1)
    assert select_behaviour(design).ws_budget == 4


def test_a_timer_runs_only_in_the_foreground_and_only_where_the_design_has_one() -> None:
    retries = System(example("socketio-4.8-retries"), get_environment("half-open"), 1)
    behind = _awaiting(retries.design, Socket.suspended, C.suspended_stale)._replace(
        foreground=False
    )
    assert Stimulus.ack_timeout not in {t.stimulus for t in retries.successors(behind)}
    defaults = System(example("socketio-4.8"), get_environment("half-open"), 1)
    awaiting = _awaiting(defaults.design, Socket.open, server=1, done_owed=True)
    assert Stimulus.ack_timeout not in {t.stimulus for t in defaults.successors(awaiting)}


def test_a_disconnect_fails_every_attempt_awaiting_an_ack_but_spares_the_buffer() -> None:
    design = example("socketio-4.8-retries")
    system = System(design, get_environment("half-open"), 2)
    world = World(
        C.suspended_stale,
        Socket.half_open,
        True,
        True,
        (Message(M.sent_ws, True, 1, ws_tries=1), Message(M.buffered, True, ws_tries=1)),
    )
    (ping,) = [t for t in system.successors(world) if t.stimulus is Stimulus.ping_timeout]
    assert [(f.machine, f.message, f.row.event) for f in ping.fired] == [
        ("connection", None, CE.ping_timeout),
        ("message", 0, ME.ack_retry),
    ]
    first, second = ping.target.messages
    assert (first.state, first.held, first.ws_tries) == (M.pending, True, 1)
    assert second == Message(M.buffered, True, ws_tries=1)
    # Without the feature the same disconnect leaves the message waiting for ever.
    plain = System(example("socketio-4.8"), get_environment("half-open"), 2)
    world = world._replace(messages=(Message(M.sent_ws, False, 1), Message(M.buffered)))
    (ping,) = [t for t in plain.successors(world) if t.stimulus is Stimulus.ping_timeout]
    assert ping.target.messages[0].state is M.sent_ws


# -- the send-time deadline check ----------------------------------------------------------------
def test_the_deadline_check_buffers_and_closes_instead_of_writing_into_a_suspended_socket() -> None:
    for env in ENVIRONMENTS.values():
        system = System(example("socketio-4.8"), env, 1)
        world = World(C.suspended_stale, Socket.suspended, True, True, (Message(),))
        sends = [t for t in system.successors(world) if t.stimulus is Stimulus.send]
        assert [t.outcome for t in sends] == [Outcome.deadline_passed]
        (send,) = sends
        assert [(f.row.event, f.row.target) for f in send.fired] == [
            (ME.deadline_buffer, M.buffered),
            (CE.heartbeat_expired, C.disconnected),
        ]
        assert (send.target.connection, send.target.socket) == (C.disconnected, Socket.closed)
        # A half-open socket is not caught at send time: the heartbeat has not expired.
        half = world._replace(socket=Socket.half_open)
        outcomes = {t.outcome for t in system.successors(half) if t.stimulus is Stimulus.send}
        assert Outcome.deadline_passed not in outcomes
        assert Outcome.ws_raised in outcomes


def test_the_diff_from_4_7_to_4_8_is_exactly_the_send_time_check() -> None:
    old, new = example("socketio-4.7"), example("socketio-4.8")
    assert feature_changes(old, new) == ["+send_deadline_check"]
    changes = {
        spec.name: [
            (c, f"{r.source} -{r.event}-> {r.target}") for c, r, _ in edge_changes(spec, old, new)
        ]
        for spec in SPECS
    }
    assert changes == {
        "connection": [("added", "suspended_stale -heartbeat_expired-> disconnected")],
        "message": [("added", "pending -deadline_buffer-> buffered")],
    }
    assert all(c.change == "same" for c in effect_changes(old, new))


# -- messages without acknowledgement ------------------------------------------------------------
def test_fire_and_forget_messages_get_meaningful_verdicts() -> None:
    design = example("reconnecting-websocket-4.4")
    b = select_behaviour(design)
    assert not b.acknowledges
    assert not b.settles_written
    for env in ENVIRONMENTS.values():
        result = check(design, env, 2)
        verdicts = _verdicts(result)
        assert verdicts["eventual-delivery"] is None
        assert verdicts["recovers-unaided"] is None
        why = result.verdict("eventual-delivery").explanation[0].text
        assert "nothing in this design ever confirms or fails a message" in why
        # The other properties still judge the design: it loses messages.
        assert verdicts["no-silent-loss"] is False
        assert verdicts["no-duplicate-delivery"] is True
    # The server owes nothing for a copy written over the WebSocket.
    system = System(design, get_environment("ios-suspend"), 1)
    world = World(C.connected, Socket.open, True, True, (Message(),))
    (send,) = [t for t in system.successors(world) if t.outcome is Outcome.ws_delivered]
    assert send.target.messages[0] == Message(M.sent_ws, False, 1)


def test_not_applicable_is_n_a_in_the_report_and_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = str(ROOT / "designs" / "reconnecting-websocket-4.4.toml")
    out = io.StringIO()
    assert main(["check", "--spec", spec, "--json"], out) == 1  # it loses messages
    report = json.loads(out.getvalue())
    holds = {p["id"]: p["holds"] for p in report["properties"]}
    assert holds["eventual-delivery"] is None
    out = io.StringIO()
    main(["check", "--spec", spec], out)
    assert "eventual-delivery        n/a" in out.getvalue()


# -- F3 needs a held message -------------------------------------------------------------------
def test_f3_is_not_broken_by_a_design_without_a_pending_retry_list() -> None:
    listless = _with("pre-fix", pending_cleared_on="ws_send")
    assert check(listless, get_environment("ios-suspend"), 1).rule("F3").rows == ()
    held = _with("fixed", pending_cleared_on="ws_send")
    assert check(held, get_environment("ios-suspend"), 1).rule("F3").reachable


# -- the example designs' verdicts ---------------------------------------------------------------
NO, YES = False, True
#: (design, environment) -> the verdicts with two messages: no-silent-loss,
#: no-duplicate-delivery, connected-means-acked, eventual-delivery.
EXPECTED: dict[tuple[str, str], tuple[bool | None, ...]] = {
    ("socketio-4.7", "ios-suspend"): (NO, YES, YES, NO),
    ("socketio-4.7", "ios-suspend-silent"): (NO, YES, YES, NO),
    ("socketio-4.7", "half-open"): (NO, YES, YES, NO),
    ("socketio-4.8", "ios-suspend"): (YES, YES, YES, NO),
    ("socketio-4.8", "ios-suspend-silent"): (YES, YES, YES, NO),
    ("socketio-4.8", "half-open"): (NO, YES, YES, NO),
    ("socketio-4.8-retries", "ios-suspend"): (YES, NO, YES, YES),
    ("socketio-4.8-retries", "ios-suspend-silent"): (YES, NO, YES, YES),
    ("socketio-4.8-retries", "half-open"): (YES, NO, YES, YES),
    ("socketio-4.8-retries-dedup", "ios-suspend"): (YES, YES, YES, YES),
    ("socketio-4.8-retries-dedup", "ios-suspend-silent"): (YES, YES, YES, YES),
    ("socketio-4.8-retries-dedup", "half-open"): (YES, YES, YES, YES),
    ("reconnecting-websocket-4.4", "ios-suspend"): (NO, YES, YES, None),
    ("reconnecting-websocket-4.4", "ios-suspend-silent"): (NO, YES, YES, None),
    ("reconnecting-websocket-4.4", "half-open"): (NO, YES, YES, None),
}
JUDGED = ("no-silent-loss", "no-duplicate-delivery", "connected-means-acked", "eventual-delivery")


@pytest.mark.parametrize(("design", "environment"), sorted(EXPECTED))
def test_the_example_designs_verdicts(design: str, environment: str) -> None:
    result = check(example(design), get_environment(environment), 2)
    verdicts = _verdicts(result)
    assert tuple(verdicts[p] for p in JUDGED) == EXPECTED[(design, environment)]


def test_every_example_design_is_in_the_expected_table() -> None:
    assert {p.stem for p in DESIGN_FILES} == {d for d, _ in EXPECTED}


def test_4_7_loses_a_message_sent_into_a_suspended_socket_whichever_way_the_send_fails() -> None:
    """socket.io#5135: after a suspension 4.7.5 still reads connected and writes into the
    dead socket; 4.8 checks the heartbeat deadline first and never does."""
    old = send_dependence(example("socketio-4.7"), 1)
    assert old.verdict is Dependence.loses_either_way
    assert old.silent is not None
    assert [s.stimulus for s in old.silent.steps] == [
        Stimulus.connect,
        Stimulus.handshake_ack,
        Stimulus.app_background,
        Stimulus.app_foreground,
        Stimulus.send,
    ]
    assert old.silent.steps[-1].outcome is Outcome.ws_vanished
    assert send_dependence(example("socketio-4.8"), 1).verdict is Dependence.independent


def test_both_socket_io_versions_lose_in_half_open_before_the_heartbeat_notices() -> None:
    for name in ("socketio-4.7", "socketio-4.8"):
        verdict = check(example(name), get_environment("half-open"), 1).verdict("no-silent-loss")
        assert verdict.trace is not None
        assert [s.stimulus for s in verdict.trace] == [
            Stimulus.connect,
            Stimulus.handshake_ack,
            Stimulus.connection_dropped,
            Stimulus.send,
        ]
        assert Stimulus.ping_timeout not in [s.stimulus for s in verdict.trace]


def test_retries_keep_every_message_and_deliver_some_twice_in_half_open() -> None:
    result = check(example("socketio-4.8-retries"), get_environment("half-open"), 1)
    assert result.verdict("no-silent-loss").holds
    duplicate = result.verdict("no-duplicate-delivery")
    assert duplicate.trace is not None
    # The acknowledgement is late, the timer fires, the copy is written again.
    assert [(s.stimulus, s.outcome) for s in duplicate.trace] == [
        (Stimulus.send, Outcome.queued),
        (Stimulus.connect, None),
        (Stimulus.handshake_ack, None),
        (Stimulus.ack_timeout, None),
    ]


@pytest.mark.parametrize("path", DESIGN_FILES, ids=lambda p: p.stem)
def test_each_example_design_cites_its_library_and_source_lines(path: Path) -> None:
    text = path.read_text()
    assert "Source lines" in text
    assert any(version in text for version in ("4.7.5", "4.8.4", "4.4.0"))
    assert load_design(path).name == path.stem


@pytest.mark.parametrize("command", ["check", "testgen", "ablate", "diagrams"])
def test_every_command_takes_an_example_design_as_a_spec(command: str, tmp_path: Path) -> None:
    spec = str(ROOT / "designs" / "socketio-4.8.toml")
    argv = {
        "check": ["check", "--spec", spec, "--messages", "1"],
        "testgen": ["testgen", "--spec", spec, "--criterion", "rows", "--messages", "1"],
        "ablate": ["ablate", "--spec", spec, "--against", "pre-fix", "--messages", "1"],
        "diagrams": ["diagrams", "--spec", spec, "--out", str(tmp_path / "d")],
    }[command]
    out = io.StringIO()
    assert main(argv, out) in (0, 1)
    assert out.getvalue()


def test_hooks_of_the_libraries_effects_exist_only_where_the_design_has_them() -> None:
    seed = {s.hook for s in select_behaviour(get_design("hardened")).effects}
    assert Hook.ack_timed_out not in seed
    assert Hook.disconnected not in seed
    retries = {s.hook for s in select_behaviour(example("socketio-4.8-retries")).effects}
    assert {Hook.ack_timed_out, Hook.disconnected} <= retries


def test_a_message_the_deadline_buffered_while_the_queue_holds_it_is_written_twice() -> None:
    """socket.io 4.8 with retries: the queue's write finds the deadline passed, so the
    packet goes into sendBuffer and the connection closes; on the next connection
    onconnect() runs emitBuffered() and then _drainQueue(true), two copies."""
    system = System(example("socketio-4.8-retries"), get_environment("ios-suspend"), 1)
    world = World(C.suspended_stale, Socket.suspended, True, True, (Message(),))
    trace = [(Stimulus.send, 0, Outcome.deadline_passed), (Stimulus.connect, None, None)]
    trace.append((Stimulus.handshake_ack, None, None))
    for label in trace:
        world = system.step(world, label).target
    m = world.messages[0]
    assert (m.state, m.held, m.server) == (M.sent_ws, True, 2)


# -- an ordered queue: one message in flight, oldest first --------------------------------------
def _queue_system(environment: str = "ios-suspend", messages: int = 2) -> System:
    return System(example("socketio-4.8-retries"), get_environment(environment), messages)


def test_a_message_sent_while_the_oldest_awaits_its_ack_waits_behind_it() -> None:
    system = _queue_system()
    world = system.initial()
    for label in [
        (Stimulus.connect, None, None),
        (Stimulus.handshake_ack, None, None),
        (Stimulus.send, 0, Outcome.ws_delivered),
        (Stimulus.send, 1, Outcome.ws_delivered),
    ]:
        world = system.step(world, label).target
    first, second = world.messages
    assert (first.state, first.server, first.ahead) == (M.sent_ws, 1, 0)
    assert (second.state, second.held, second.server, second.ahead) == (M.pending, True, 0, 1)
    # Its acknowledgement releases the oldest, and the queue writes the next at once.
    done = system.step(world, (Stimulus.done, 0, None))
    assert [(f.message, f.row.event) for f in done.fired] == [(0, ME.done), (1, ME.resend_ws)]
    first, second = done.target.messages
    assert (first.state, first.held) == (M.confirmed, False)
    assert (second.state, second.server, second.ahead, second.ws_tries) == (M.sent_ws, 1, 0, 1)


def test_a_new_connection_writes_the_oldest_queued_message_only() -> None:
    system = _queue_system()
    world = system.initial()
    for label in [
        (Stimulus.send, 0, Outcome.queued),
        (Stimulus.send, 1, Outcome.queued),
        (Stimulus.connect, None, None),
        (Stimulus.handshake_ack, None, None),
    ]:
        world = system.step(world, label).target
    first, second = world.messages
    assert (first.state, first.server) == (M.sent_ws, 1)
    assert (second.state, second.server, second.ahead) == (M.pending, 0, 1)


def test_an_ordered_queue_is_explored_with_at_most_four_messages() -> None:
    with pytest.raises(SpecError, match="at most 4 messages"):
        _queue_system(messages=5)
    assert (
        main(
            [
                "check",
                "--spec",
                str(ROOT / "designs" / "socketio-4.8-retries.toml"),
                "--messages",
                "5",
            ],
            io.StringIO(),
        )
        == 2
    )


@pytest.mark.parametrize("offline_send", ["buffer", "refuse"])
def test_an_ordered_queue_holds_what_is_sent_while_not_connected(offline_send: str) -> None:
    """A message sent behind the queue's oldest waits in the queue (its ``queue`` row);
    so does one sent while not connected: any other offline send is refused in one line."""
    base = load_design(ROOT / "designs" / "socketio-4.8-retries.toml").model_dump()
    with pytest.raises(ValidationError, match="offline_send = 'queue'") as caught:
        Design.model_validate({**base, "offline_send": offline_send})
    assert "ordered_queue needs" in str(caught.value)
