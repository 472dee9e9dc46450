"""The reference server with several clients and with hostile input, on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

pytest.importorskip("aiohttp", reason="the reference server needs the 'reference' extra (aiohttp)")

import aiohttp

from fsm.reference.server import CLIENT_HEADER, ReferenceServer

Body = Callable[[ReferenceServer, str, Callable[[str], aiohttp.ClientSession]], Awaitable[None]]


def run(body: Body) -> None:
    async def main() -> None:
        server = ReferenceServer()
        port = await server.start()
        sessions: list[aiohttp.ClientSession] = []

        def session(client: str) -> aiohttp.ClientSession:
            s = aiohttp.ClientSession(headers={CLIENT_HEADER: client} if client else {})
            sessions.append(s)
            return s

        try:
            await asyncio.wait_for(body(server, f"127.0.0.1:{port}", session), 30)
        finally:
            for s in sessions:
                await s.close()
            await server.stop()

    asyncio.run(main())


async def _open(s: aiohttp.ClientSession, base: str, epoch: int = 1) -> Any:
    sock = await s.ws_connect(f"http://{base}/ws?epoch={epoch}")
    hello = await asyncio.wait_for(sock.receive_json(), 5)
    assert hello["type"] == "hello"
    return sock


# -- several clients ---------------------------------------------------------------------
def test_an_id_another_client_used_does_not_swallow_a_rest_post() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        mallory, alice = session("mallory"), session("alice")
        r = await mallory.post(f"http://{base}/messages", json={"body": "spam", "id": "alice-id-1"})
        assert r.status == 200
        r = await alice.post(f"http://{base}/messages", json={"body": "hello", "id": "alice-id-1"})
        assert r.status == 200
        assert server.applied["hello"] == 1

    run(body)


def test_an_id_another_client_used_does_not_swallow_a_websocket_send() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        await session("mallory").post(
            f"http://{base}/messages", json={"body": "spam", "id": "alice-id-1"}
        )
        sock = await _open(session("alice"), base)
        await sock.send_json({"type": "message", "body": "hello", "id": "alice-id-1"})
        assert await asyncio.wait_for(sock.receive_json(), 5) == {
            "type": "done",
            "ref": "alice-id-1",
        }
        assert server.applied["hello"] == 1

    run(body)


def test_a_refetch_sees_only_the_clients_own_messages() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        mallory, alice = session("mallory"), session("alice")
        await mallory.post(f"http://{base}/messages", json={"body": "same text"})
        await mallory.post(f"http://{base}/messages", json={"body": "x", "id": "probe-id"})
        r = await alice.get(
            f"http://{base}/messages", params=[("ref", "same text"), ("ref", "probe-id")]
        )
        assert (await r.json()) == {"applied": []}
        await alice.post(f"http://{base}/messages", json={"body": "same text"})
        r = await alice.get(f"http://{base}/messages", params=[("ref", "same text")])
        assert (await r.json()) == {"applied": ["same text"]}
        assert server.applied["same text"] == 2

    run(body)


def test_two_clients_may_use_the_same_epoch_and_one_cannot_replace_the_other() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        a = await _open(session("alice"), base, epoch=1)
        await _open(session("bob"), base, epoch=1)
        again = await session("alice").ws_connect(f"http://{base}/ws?epoch=1")
        closing = await asyncio.wait_for(again.receive(), 5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == aiohttp.WSCloseCode.POLICY_VIOLATION
        await a.send_json({"type": "message", "body": "still here"})
        assert (await asyncio.wait_for(a.receive_json(), 5))["type"] == "done"

    run(body)


def test_an_ack_id_is_echoed_a_fire_and_forget_copy_gets_no_done_a_fetch_is_answered() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        sock = await _open(session("alice"), base)
        await sock.send_json({"type": "message", "body": "quiet", "ack": False})
        await sock.send_json({"type": "message", "body": "loud", "ack": 7})
        assert await asyncio.wait_for(sock.receive_json(), 5) == {
            "type": "done",
            "ref": "loud",
            "ack": 7,
        }
        await sock.send_json({"type": "fetch", "n": 1, "refs": ["quiet", "loud", "never"]})
        assert await asyncio.wait_for(sock.receive_json(), 5) == {
            "type": "applied",
            "n": 1,
            "applied": ["quiet", "loud"],
        }
        assert server.applied == {"quiet": 1, "loud": 1}

    run(body)


# -- hostile input -----------------------------------------------------------------------
BAD_FRAMES = [
    "not json",
    "[]",
    "1",
    "null",
    '"message"',
    "{}",
    '{"type": "message"}',
    '{"type": "message", "body": null}',
    '{"type": "message", "body": 1}',
    '{"type": "message", "body": ["x"]}',
    '{"type": "message", "body": "x", "id": 5}',
    '{"type": "message", "body": "x", "id": {}}',
    '{"type": "message", "body": "x", "ack": "1"}',
    '{"type": "message", "body": "x", "ack": true}',
    '{"type": "message", "body": "x", "ack": -1}',
    '{"type": "message", "body": "x", "ack": 1.5}',
    '{"type": "fetch", "refs": "x"}',
    '{"type": "fetch", "refs": [1]}',
    '{"type": "bogus"}',
    '{"type": null}',
    "[" * 5000 + "]" * 5000,
    '{"type": "message", "body": "x", "n": ' + "9" * 5000 + "}",
]


@pytest.mark.parametrize("frame", BAD_FRAMES, ids=range(len(BAD_FRAMES)))
def test_a_malformed_frame_closes_the_socket_with_a_reason(frame: str) -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        sock = await _open(session("alice"), base)
        await sock.send_str(frame)
        closing = await asyncio.wait_for(sock.receive(), 5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == aiohttp.WSCloseCode.INVALID_TEXT
        assert closing.extra
        assert sum(server.applied.values()) == 0
        # The server still serves.
        ok = await _open(session("alice"), base, epoch=2)
        await ok.send_json({"type": "message", "body": "fine"})
        assert (await asyncio.wait_for(ok.receive_json(), 5))["type"] == "done"

    run(body)


def test_a_binary_or_oversized_frame_closes_the_socket() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        sock = await _open(session("alice"), base)
        await sock.send_bytes(b"\x00\x01")
        closing = await asyncio.wait_for(sock.receive(), 5)
        assert closing.data == aiohttp.WSCloseCode.UNSUPPORTED_DATA
        big = await _open(session("alice"), base, epoch=2)
        await big.send_str('{"type": "message", "body": "' + "x" * 100_000 + '"}')
        closing = await asyncio.wait_for(big.receive(), 5)
        assert closing.data == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        assert sum(server.applied.values()) == 0

    run(body)


BAD_BODIES = [
    b"not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    b"{}",
    b'{"body": null}',
    b'{"body": 1}',
    b'{"body": "x", "id": 7}',
    b"[" * 5000 + b"]" * 5000,
]


@pytest.mark.parametrize("data", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_a_malformed_rest_body_is_400_with_a_reason(data: bytes) -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        r = await session("alice").post(
            f"http://{base}/messages", data=data, headers={"Content-Type": "application/json"}
        )
        assert r.status == 400
        answer = await r.json()
        assert answer["ok"] is False
        assert answer["error"]
        assert sum(server.applied.values()) == 0
        assert "None" not in server.applied

    run(body)


def test_an_oversized_rest_body_is_413() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        r = await session("alice").post(f"http://{base}/messages", json={"body": "x" * 100_000})
        assert r.status == 413
        assert sum(server.applied.values()) == 0

    run(body)


def test_closed_sockets_are_forgotten() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        s = session("alice")
        for epoch in range(1, 61):
            sock = await _open(s, base, epoch)
            await sock.close()
        for _ in range(100):
            if not server._conns:
                break
            await asyncio.sleep(0.02)
        assert server._conns == {}

    run(body)


def test_a_silent_socket_is_closed_after_the_idle_timeout() -> None:
    async def body(server: ReferenceServer, base: str, session: Callable[..., Any]) -> None:
        server.idle_timeout = 0.3
        sock = await _open(session("alice"), base)
        closing = await asyncio.wait_for(sock.receive(), 5)
        assert closing.type is aiohttp.WSMsgType.CLOSE
        assert closing.data == aiohttp.WSCloseCode.GOING_AWAY

    run(body)
