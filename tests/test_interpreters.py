"""Every backend interprets actions through one exhaustive dispatch, and reads the
vocabulary's facts rather than restating them.

An effect no backend knows is refused by each backend with one clear
:class:`DefinitionError`, never silently ignored; a backend or a dispatch that
misses a case fails ``mypy --strict`` (checked here on generated snippets).
"""

from __future__ import annotations

import dataclasses
import os
import re
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from fsm.analysis.promela import promela
from fsm.analysis.system import LOCAL_ACTIONS, OVER_REST, SOCKET_ACTIONS, Stimulus, System
from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import get_design, get_environment
from fsm.model.errors import DefinitionError
from fsm.model.stimuli import ENABLED, Scene, refusal
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Meaning,
    MessageEvent,
    MessageState,
    Part,
    Socket,
)
from fsm.testing.adapters import TransitionsAdapter
from fsm.testing.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Teleport:
    """An effect outside :data:`fsm.model.vocabulary.Effect`."""


def _fake_action() -> Action:
    """An action whose meaning carries an effect no backend knows."""
    meaning = Meaning()
    meaning.__dict__["effects"] = (Teleport(),)  # what the cached property would hold
    meaning.__dict__["footprint"] = Meaning().footprint
    fake = SimpleNamespace(value="teleport", doc="Move the socket elsewhere.", meaning=meaning)
    return cast(Action, fake)


def _with_fake_on_connect() -> Behaviour:
    """The fixed design, with the fake action first on its ``idle -connect->`` row."""
    b = select_behaviour(get_design("fixed"))
    key = (ConnectionState.idle, ConnectionEvent.connect)
    rows = dict(b.connection.rows)
    rows[key] = replace(rows[key], actions=(_fake_action(), *rows[key].actions))
    return replace(b, connection=replace(b.connection, rows=rows))


REFUSED = "no backend knows the effect Teleport()"


def test_every_meaning_field_is_an_effect() -> None:
    """A field of Meaning that no Effect record carries would be ignored by every backend."""
    samples: dict[str, Any] = {
        "socket": Socket.open,
        "hold": True,
        "hold_all": True,
        "each_held": MessageEvent.retry_rest,
        "over_ws": True,
        "server": "count",
        "budget": True,
        "each_on_server": MessageEvent.recovered,
        "each": MessageEvent.flush,
        "write_now": True,
        "ws_budget": True,
        "each_unacked": True,
        "oldest": MessageEvent.resend_ws,
        "drain": True,
    }
    fields = {f.name for f in dataclasses.fields(Meaning)}
    assert fields == set(samples), "a new Meaning field needs a sample here and an Effect"
    for name, value in samples.items():
        if name == "over_ws":  # a modifier of each_held and each
            resend = MessageEvent.resend_ws
            assert Meaning(each_held=resend, over_ws=True).effects != (
                Meaning(each_held=resend).effects
            )
            assert Meaning(each=resend, over_ws=True).effects != Meaning(each=resend).effects
            continue
        assert Meaning(**{name: value}).effects, name


def test_the_system_refuses_an_unknown_effect() -> None:
    system = System(
        get_design("fixed"), get_environment("ios-suspend"), 1, behaviour=_with_fake_on_connect()
    )
    with pytest.raises(DefinitionError, match=re.escape(REFUSED)):
        system.successors(system.initial())


def test_promela_refuses_an_unknown_effect() -> None:
    system = System(
        get_design("fixed"), get_environment("ios-suspend"), 1, behaviour=_with_fake_on_connect()
    )
    with pytest.raises(DefinitionError, match=re.escape(REFUSED)):
        promela(system)


def test_the_transitions_adapter_refuses_an_unknown_effect() -> None:
    adapter = TransitionsAdapter(_with_fake_on_connect())
    adapter.reset(get_design("fixed"), get_environment("ios-suspend"), 1)
    with pytest.raises(DefinitionError, match=re.escape(REFUSED)):
        adapter.apply(Stimulus.connect, None, None)


def test_the_monitor_refuses_an_unknown_effect() -> None:
    b = _with_fake_on_connect()
    with pytest.raises(DefinitionError, match=re.escape(REFUSED)):
        Monitor(b, raise_on_violation=False).observe("connect")


def test_the_reference_client_refuses_an_unknown_effect(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    from fsm.reference.client import ReferenceClient
    from fsm.reference.clock import ManualClock

    client = ReferenceClient(
        get_design("fixed"),
        ws_url="ws://127.0.0.1:9/ws",
        rest_url="http://127.0.0.1:9",
        store=tmp_path / "store.sqlite",
        clock=ManualClock(),
        behaviour_=_with_fake_on_connect(),
    )
    try:
        with pytest.raises(DefinitionError, match=re.escape(REFUSED)):
            client._fire_conn(ConnectionEvent.connect)
    finally:
        client.outbox.close()


# -- the vocabulary's facts ------------------------------------------------------------
def test_state_facts() -> None:
    assert {s for s in ConnectionState if s.reports_connected} == {
        ConnectionState.connected,
        ConnectionState.suspended_stale,
    }
    assert {MessageState.sending_rest, MessageState.retrying_rest} == OVER_REST
    assert {s for s in MessageState if s.settled} == {MessageState.confirmed, MessageState.failed}
    assert {s for s in Socket if s.dead} == {Socket.suspended, Socket.half_open}


def test_footprints_classify_the_actions() -> None:
    assert {Action.open_socket, Action.close_socket} == SOCKET_ACTIONS
    assert {
        Action.hold,
        Action.release,
        Action.count_copy,
        Action.dedupe_copy,
        Action.attempt_budget,
        Action.fail_attempt,
    } == LOCAL_ACTIONS
    resend = Action.resend_pending_ws.meaning.footprint
    assert Part.server_copies in resend.writes
    assert Part.server_copies not in Action.retry_pending_rest.meaning.footprint.writes
    assert Action.refetch.meaning.footprint.reads == {Part.server_copies, Part.every_message}
    assert Part.server_copies in Action.flush_buffer.meaning.footprint.writes
    # Writing a message again may close the connection, which fails the others' attempts.
    assert {Part.socket, Part.every_message} <= Action.write_now.meaning.footprint.writes
    assert Action.fail_unacked.meaning.footprint.touches == {Part.every_message}


def test_retry_budget_rule() -> None:
    fixed = select_behaviour(get_design("fixed"))
    hardened = select_behaviour(get_design("hardened"))
    assert fixed.retry_budget == 1
    assert fixed.after_rest_failure(MessageState.sending_rest, 1) is MessageEvent.retries_exhausted
    assert hardened.retry_budget == 2
    rest = MessageState.sending_rest
    assert hardened.after_rest_failure(rest, 1) is MessageEvent.rest_failed
    assert hardened.after_rest_failure(rest, 2) is MessageEvent.retries_exhausted


def test_every_stimulus_has_a_guard_and_refusals_name_the_reason() -> None:
    assert set(ENABLED) == set(Stimulus)
    env = get_environment("ios-suspend")
    rules = select_behaviour(get_design("fixed")).rules
    behind = Scene(ConnectionState.idle, Socket.closed, False, True)
    assert refusal(Stimulus.connect, behind, env, rules) == "the app is in the background"
    front = behind._replace(foreground=True)
    assert refusal(Stimulus.connect, front, env, rules) is None
    live = Scene(ConnectionState.connected, Socket.open, True, True)
    assert refusal(Stimulus.connection_dropped, live, get_environment("half-open"), rules) is None
    why = refusal(Stimulus.connection_dropped, live, env, rules)
    assert why == "ios-suspend has no silent_drops"


# -- a missing case fails type checking ------------------------------------------------
COMPLETE = """
from typing import Literal
from fsm.model.vocabulary import Action, ActionInterpreter, MessageEvent, Socket, interpret

class Backend:
    def set_socket(self, action: Action, to: Socket, at: int | None) -> None: ...
    def set_held(self, action: Action, value: bool, at: int | None) -> None: ...
    def set_every_held(self, action: Action, value: bool, at: int | None) -> None: ...
    def on_each_held(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> None: ...
    def server_rule(
        self, action: Action, how: Literal["count", "once"], at: int | None
    ) -> None: ...
    def count_attempt(self, action: Action, at: int | None) -> None: ...
    def on_each_on_server(self, action: Action, event: MessageEvent, at: int | None) -> None: ...
    def on_each(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> None: ...
    def write_now(self, action: Action, at: int | None) -> None: ...
    def fail_ws_attempt(self, action: Action, at: int | None) -> None: ...
    def fail_each_unacked(self, action: Action, at: int | None) -> None: ...
    def on_oldest(
        self, action: Action, event: MessageEvent, over_ws: bool, at: int | None
    ) -> None: ...
    def drain_queue(self, action: Action, at: int | None) -> None: ...

backend: ActionInterpreter[int | None, None] = Backend()
interpret(Action.hold, backend, 0)
"""

MISSING_METHOD = COMPLETE.replace(
    "    def count_attempt(self, action: Action, at: int | None) -> None: ...\n", ""
)

MISSING_CASE = """
from fsm.model.vocabulary import Effect, SetHeld, SetSocket, unhandled

def describe(effect: Effect) -> str:
    match effect:
        case SetSocket(to):
            return str(to)
        case SetHeld(value):
            return str(value)
        case _:
            unhandled(effect)
"""


def test_a_missing_case_fails_mypy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    api = pytest.importorskip("mypy.api")
    files = {
        "complete.py": COMPLETE,
        "missing_method.py": MISSING_METHOD,
        "missing_case.py": MISSING_CASE,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    # The tree under test, not an installed copy, answers `import fsm`.
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    out, err, _status = api.run(
        [
            "--strict",
            "--python-version=3.10",
            "--no-incremental",
            "--cache-dir=" + os.devnull,
            "--config-file=",
            *(str(tmp_path / name) for name in files),
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert not [e for e in errors if "complete.py" in e], out + err
    missing = [e for e in errors if "missing_method.py" in e]
    assert missing, out
    assert any("count_attempt" in line for line in out.splitlines()), out
    cases = [e for e in errors if "missing_case.py" in e]
    assert cases, out
    assert "unhandled" in cases[0], out
