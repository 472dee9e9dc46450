"""The reference world's parts on real sockets: the fault proxy, the server, the
SQLite outbox across a killed process, and a small soak."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the reference client needs the 'reference' extra (aiohttp)")

import aiohttp

from fsm import MessageState, get_design
from fsm.reference.clock import ManualClock
from fsm.reference.outbox import Outbox
from fsm.reference.server import Gates
from fsm.reference.world import ReferenceWorld

ROOT = Path(__file__).resolve().parent.parent


def run(body: Callable[[ReferenceWorld], Awaitable[None]], gates: Gates | None = None) -> None:
    """Run ``body`` against a fresh world, bounded in time."""

    async def main() -> None:
        world = ReferenceWorld(gates)
        await world.start()
        try:
            await asyncio.wait_for(body(world), 30)
        finally:
            await world.stop()

    asyncio.run(main())


async def ws(world: ReferenceWorld, session: aiohttp.ClientSession) -> Any:
    sock = await session.ws_connect(
        f"http://127.0.0.1:{world.ws_proxy.port}/ws?epoch=1",
        timeout=aiohttp.ClientWSTimeout(ws_close=0.2),
    )
    hello = await asyncio.wait_for(sock.receive_json(), 5)
    assert hello["type"] == "hello"
    return sock


def test_proxy_reset_makes_the_next_send_raise() -> None:
    async def body(world: ReferenceWorld) -> None:
        async with aiohttp.ClientSession() as session:
            sock = await ws(world, session)
            await sock.send_str(json.dumps({"type": "message", "body": "a"}))
            assert (await asyncio.wait_for(sock.receive_json(), 5))["ref"] == "a"
            world.ws_proxy.reset()
            msg = await asyncio.wait_for(sock.receive(), 5)
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
            with pytest.raises(ConnectionError):
                await sock.send_str(json.dumps({"type": "message", "body": "b"}))
        assert dict(world.server.applied) == {"a": 1}

    run(body)


def test_blackholed_send_returns_and_goes_nowhere() -> None:
    async def body(world: ReferenceWorld) -> None:
        async with aiohttp.ClientSession() as session:
            sock = await ws(world, session)
            world.ws_proxy.blackhole()
            await sock.send_str(json.dumps({"type": "message", "body": "lost"}))  # no error
            await world.settle()
            assert world.server.applied["lost"] == 0
            assert world.ws_proxy.defunct()
            await sock.close()

    run(body)


def test_network_down_refuses_new_connections_and_up_restores() -> None:
    async def body(world: ReferenceWorld) -> None:
        async with aiohttp.ClientSession() as session:
            world.ws_proxy.network_down()
            with pytest.raises((aiohttp.ClientError, ConnectionError)):
                await ws(world, session)
            world.ws_proxy.network_up()
            sock = await ws(world, session)
            await sock.close()

    run(body)


def test_rest_endpoint_fails_applies_or_drops_the_answer() -> None:
    verdicts = iter(["fail", "ok", "ambiguous"])

    async def body(world: ReferenceWorld) -> None:
        url = f"http://127.0.0.1:{world.rest_proxy.port}/messages"
        async with aiohttp.ClientSession() as session:
            async with session.post(url, json={"body": "x"}) as r:
                assert r.status == 503
            assert world.server.applied["x"] == 0
            async with session.post(url, json={"body": "x"}) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with session.post(url, json={"body": "x"}) as r:
                    await r.read()
            # The ambiguous failure applied it: no id, so the server counts both copies.
            assert world.server.applied["x"] == 2
            async with session.get(url, params=[("ref", "x"), ("ref", "y")]) as r:
                assert (await r.json())["applied"] == ["x"]

    run(body, Gates(rest_verdict=lambda: next(verdicts)))  # type: ignore[arg-type]


def test_server_dedupes_by_client_id() -> None:
    async def body(world: ReferenceWorld) -> None:
        url = f"http://127.0.0.1:{world.rest_proxy.port}/messages"
        async with aiohttp.ClientSession() as session:
            for _ in range(2):
                async with session.post(url, json={"body": "x", "id": "k1"}) as r:
                    assert r.status == 200
            sock = await ws(world, session)
            await sock.send_str(json.dumps({"type": "message", "body": "x", "id": "k1"}))
            assert (await asyncio.wait_for(sock.receive_json(), 5))["ref"] == "k1"
            await sock.close()
        assert world.server.applied["x"] == 1

    run(body)


def test_manual_clock_fires_in_deadline_order() -> None:
    clock = ManualClock()
    fired: list[str] = []
    clock.call_later(3, "b", lambda: fired.append("b"))

    def a() -> None:
        clock.call_later(1, "c", lambda: fired.append("c"))

    clock.call_later(1, "a", a)
    assert clock.advance(2.5) == 2
    assert fired == ["c"]
    assert clock.fire("b")
    assert not clock.fire("b")
    assert fired == ["c", "b"]


def test_outbox_write_ahead_is_one_transaction(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.accept("k1", "hello", MessageState.pending, hold=True)
    box.accept("k2", "world", MessageState.pending, hold=False)
    box.set_state("k1", MessageState.sending_rest)
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert [(m.key, m.state, m.held) for m in again.load()] == [
        ("k1", MessageState.sending_rest, True),
        ("k2", MessageState.pending, False),
    ]
    again.close()


def test_outbox_keeps_the_pending_lists_order_and_the_attempts(tmp_path: Path) -> None:
    """The pending-retry list is kept in the order its messages joined it (an ordered
    queue writes its oldest first), and each message's WebSocket attempts with it."""
    box = Outbox(tmp_path / "o.sqlite")
    for key in ("k1", "k2", "k3"):
        box.accept(key, key, MessageState.pending, hold=False)
    for key in ("k2", "k1", "k3", "k2"):  # held again, k2 keeps its place
        box.hold(key, True)
    box.hold("k2", False)
    box.hold("k2", True)  # released and held again: at the end
    box.set_state("k1", MessageState.sent_ws, ws_tries=2)
    box.set_state("k1", MessageState.sent_ws)  # the attempts stay
    box.close()
    again = Outbox(tmp_path / "o.sqlite")
    assert again.held_in_order() == ["k1", "k3", "k2"]
    assert [(m.key, m.state, m.ws_tries) for m in again.load()] == [
        ("k1", MessageState.sent_ws, 2),
        ("k2", MessageState.pending, 0),
        ("k3", MessageState.pending, 0),
    ]
    again.close()


@pytest.mark.parametrize(("design", "delivered"), [("hardened", 1), ("pre-fix", 0)])
def test_killed_client_process_loses_nothing_it_accepted(
    tmp_path: Path, design: str, delivered: int
) -> None:
    """A client process accepts three messages while REST requests hang (the network
    is gone), is killed with SIGKILL, and is started again on its SQLite store once
    the network is back: with the write-ahead outbox every message reaches the server
    exactly once; pre-fix, which keeps no outbox, loses them."""
    texts = ["one", "two", "three"]
    store = tmp_path / "client.sqlite"

    async def body(world: ReferenceWorld) -> None:
        world.ws_proxy.network_down()
        world.rest_proxy.network_down(hold=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fsm.reference",
            "--design",
            design,
            "--ws",
            f"http://127.0.0.1:{world.ws_proxy.port}/ws",
            "--rest",
            f"http://127.0.0.1:{world.rest_proxy.port}",
            "--store",
            str(store),
            *texts,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        try:
            for _ in texts:
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
                assert line.startswith(b"accepted ")
            await asyncio.sleep(0.2)  # let its REST requests reach the held proxy
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
        assert world.server.applied == {}
        world.rest_proxy.network_up()
        world.ws_proxy.network_up()
        client = await world.new_client(get_design(design), store=store)
        for _ in range(20):
            world.clock.advance(0.5)
            await world.settle()
        shown = {m.body: m for m in client.snapshot()}
        assert sorted(shown) == sorted(texts)  # the local history survived the kill
        for text in texts:
            assert world.server.applied[text] == delivered
            if delivered:
                assert shown[text].state is MessageState.confirmed

    run(body)


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_small_soak_hardened_loses_and_duplicates_nothing() -> None:
    soak = load_soak()
    out = io.StringIO()
    with redirect_stdout(out):
        assert soak.main(["--messages", "50", "--seed", "1", "--json"]) == 0
    rows = {r["design"]: r for r in json.loads(out.getvalue())}
    assert set(rows) == {"pre-fix", "fixed", "seed-system", "hardened"}
    for r in rows.values():
        assert set(r) == {
            "design",
            "sent",
            "confirmed",
            "failed",
            "lost",
            "duplicated",
            "msgs_per_s",
        }
        assert r["sent"] == 50
    assert rows["hardened"]["lost"] == 0
    assert rows["hardened"]["duplicated"] == 0
    assert rows["pre-fix"]["lost"] > 0  # the fault mix exercises the bug
