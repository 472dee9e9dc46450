"""The real socket.io-client, driven one step at a time through the driver protocol.

``drivers/socketio/driver.js`` runs socket.io-client 4.7.5 or 4.8.x on a fake
clock against a real socket.io server behind a loopback fault proxy; these tests
speak to it through :class:`~fsm.testing.driver.DriverAdapter`, exactly as
``fsm replay --driver`` does, and pin what the real library does in the cases
the seed's bug note is about.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fsm.analysis.system import Outcome, Stimulus
from fsm.model.design import get_design, get_environment
from fsm.testing.adapters import StepRefused
from fsm.testing.driver import DriverAdapter
from fsm.testing.observation import Observation

DRIVER = Path(__file__).resolve().parents[1] / "drivers" / "socketio"

if shutil.which("node") is None or not (DRIVER / "node_modules").is_dir():
    if os.environ.get("CI"):
        pytest.fail("the socket.io driver needs node and `npm ci` in drivers/socketio (make test)")
    pytest.skip(
        "the socket.io driver needs node and `npm ci` in drivers/socketio (make test does both)",
        allow_module_level=True,
    )

Step = tuple[Stimulus, int | None, Outcome | None]

CONNECT: list[Step] = [(Stimulus.connect, None, None), (Stimulus.handshake_ack, None, None)]
SUSPEND: list[Step] = [(Stimulus.app_background, None, None), (Stimulus.app_foreground, None, None)]


def _run(args: list[str], steps: list[Step], messages: int = 1) -> list[Observation]:
    command = ["node", str(DRIVER / "driver.js"), *args]
    with DriverAdapter(command, deadline=20) as driver:
        seen = [driver.reset(get_design("hardened"), get_environment("half-open"), messages)]
        seen.extend(driver.apply(*step) for step in steps)
        return seen


def test_the_driver_names_the_real_library() -> None:
    with DriverAdapter(["node", str(DRIVER / "driver.js"), "--client", "4.7"]) as driver:
        assert driver.start().name == "socket.io-client 4.7.5"
    with DriverAdapter(["node", str(DRIVER / "driver.js"), "--client", "4.8"]) as driver:
        hello = driver.start()
        assert hello.name.startswith("socket.io-client 4.8.")
        assert "rest_ok" not in hello.stimuli  # socket.io has no REST fallback


def test_4_7_writes_into_the_dead_socket_after_a_suspension() -> None:
    """The seed's bug in socket.io 4.7.5: connected still reads true after the app was
    frozen, the send goes into the dead socket, and nothing ever delivers it."""
    seen = _run(["--client", "4.7"], [*CONNECT, *SUSPEND, (Stimulus.send, 0, Outcome.ws_vanished)])
    after_send = seen[-1]
    assert after_send == Observation.of(True, ("sent", False, 0))
    with pytest.raises(StepRefused, match="not waiting to connect"):
        _run(
            ["--client", "4.7"],
            [*CONNECT, *SUSPEND, (Stimulus.send, 0, Outcome.ws_vanished), *CONNECT],
        )


def test_4_8_sees_the_expired_heartbeat_at_send_time_and_delivers_after_reconnecting() -> None:
    seen = _run(
        ["--client", "4.8"],
        [
            *CONNECT,
            *SUSPEND,
            (Stimulus.send, 0, Outcome.ws_vanished),
            *CONNECT,
            (Stimulus.done, 0, None),
        ],
    )
    assert seen[5] == Observation.of(False, ("pending", False, 0))  # buffered, closing
    assert seen[7] == Observation.of(True, ("sent", False, 1))  # flushed on the new connection
    assert seen[8] == Observation.of(True, ("confirmed", False, 1))


HALF_OPEN: list[Step] = [
    *CONNECT,
    (Stimulus.send, 0, Outcome.ws_delivered),
    (Stimulus.connection_dropped, None, None),
    (Stimulus.ping_timeout, None, None),
    *CONNECT,
]


def test_defaults_lose_the_acknowledgement_that_died_with_the_connection() -> None:
    seen = _run(["--client", "4.8"], HALF_OPEN)
    assert seen[-1] == Observation.of(True, ("sent", False, 1))  # applied, never confirmed


def test_retries_resend_on_the_next_connection_and_the_server_applies_it_twice() -> None:
    seen = _run(["--client", "4.8", "--retries", "3", "--ack-timeout", "500"], HALF_OPEN)
    assert seen[3] == Observation.of(True, ("sent", True, 1))
    assert seen[5] == Observation.of(False, ("pending", True, 1))  # back in the retry queue
    assert seen[-1] == Observation.of(True, ("sent", True, 2))


def test_server_deduplication_applies_the_resent_copy_once() -> None:
    seen = _run(
        ["--client", "4.8", "--retries", "3", "--ack-timeout", "500", "--dedup"],
        [*HALF_OPEN, (Stimulus.done, 0, None)],
    )
    assert seen[-2] == Observation.of(True, ("sent", True, 1))
    assert seen[-1] == Observation.of(True, ("confirmed", False, 1))
