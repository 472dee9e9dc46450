"""The reference chat server: a WebSocket endpoint and a REST endpoint over aiohttp.

Wire format (JSON text frames and bodies):

* ``GET /ws?epoch=N``: the WebSocket. The server greets with ``{"type": "hello"}``
  (the handshake acknowledgement, Ably's CONNECTED); the client sends
  ``{"type": "message", "body": ..., "id": ...?}`` and ``{"type": "ping", "n": ...}``;
  the server answers ``{"type": "done", "ref": ...}`` for every message copy it
  received on that socket (also for a duplicate it did not apply, as Socket.IO's
  tutorial does) and ``{"type": "pong", "n": ...}``.
* ``POST /messages`` with ``{"body": ..., "id": ...?}``: 200 ``{"ok": true}``, or
  503 (the server failed and applied nothing), or the connection is dropped after
  the message was applied (an ambiguous failure: the response is lost).
* ``GET /messages?ref=...&ref=...``: which of these refs (client ids, or bodies
  for clients without ids) the server has applied: the refetch of the companion fix.

The store (:attr:`ReferenceServer.applied`) is the ground truth: how many copies
of each message (by its text, which every driver keeps unique) were applied. A
copy carrying a client id is applied only if no copy with that id was.

Each answer can be automatic or held for a driver (:class:`Gates`): the replay
adapter holds the handshake, every ``done`` and every REST request until the
model's step says what happens, so the server answers exactly as the model does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from fsm.reference.activity import Activity

__all__ = ["Gates", "HeldRequest", "ReferenceServer", "RestVerdict"]

RestVerdict = Literal["ok", "fail", "ambiguous"]


@dataclass
class Gates:
    """Which answers wait for a driver; the rest are automatic."""

    hold_hello: bool = False
    hold_done: bool = False
    hold_rest: bool = False
    #: With ``hold_rest`` off: what each REST request gets (faults in the soak).
    rest_verdict: Callable[[], RestVerdict] = lambda: "ok"


@dataclass
class HeldRequest:
    body: str
    ident: str | None
    verdict: asyncio.Future[RestVerdict]


@dataclass
class _Conn:
    epoch: int
    ws: web.WebSocketResponse
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    owed: list[str] = field(default_factory=list)  # refs of dones owed on this socket
    said_hello: bool = False


class ReferenceServer:
    """The server, started with :meth:`start` on 127.0.0.1 and a port chosen at run time."""

    def __init__(self, activity: Activity | None = None, gates: Gates | None = None) -> None:
        self.activity = activity or Activity()
        self.gates = gates or Gates()
        self.applied: Counter[str] = Counter()
        self._ids: dict[str, str] = {}
        self._conns: dict[int, _Conn] = {}
        self.held: dict[str, list[HeldRequest]] = defaultdict(list)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.ws_frames = 0
        self.rest_requests = 0

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/messages", self._post)
        app.router.add_get("/messages", self._refetch)
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        for conn in list(self._conns.values()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(), 1.0)
        for held in self.held.values():
            for h in held:
                if not h.verdict.done():
                    h.verdict.set_result("fail")
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), 5.0)

    def reset_store(self) -> None:
        self.applied.clear()
        self._ids.clear()
        self.held.clear()

    # -- the store --------------------------------------------------------------------
    def apply(self, body: str, ident: str | None) -> None:
        """A copy of ``body`` arrived: apply it unless its id was applied already."""
        self.activity.bump()
        if ident is not None:
            if ident in self._ids:
                return
            self._ids[ident] = body
        self.applied[body] += 1

    def has(self, ref: str) -> bool:
        return ref in self._ids or self.applied.get(ref, 0) > 0

    # -- what a driver can do -----------------------------------------------------------
    def waiting_hello(self) -> list[int]:
        """Epochs of open sockets still waiting for their hello."""
        return [e for e, c in self._conns.items() if not c.said_hello and not c.ws.closed]

    def say_hello(self) -> bool:
        """Acknowledge the newest socket's handshake; ``False`` if none waits."""
        waiting = self.waiting_hello()
        if not waiting:
            return False
        self._conns[max(waiting)].hello.set()
        return True

    def owes(self, ref: str) -> bool:
        return any(ref in c.owed for c in self._conns.values() if not c.ws.closed)

    async def send_done(self, ref: str) -> bool:
        """Send the done owed for ``ref`` on a live socket; ``False`` if none is owed."""
        for conn in sorted(self._conns.values(), key=lambda c: -c.epoch):
            if ref in conn.owed and not conn.ws.closed:
                conn.owed.remove(ref)
                await self._send(conn, {"type": "done", "ref": ref})
                return True
        return False

    def held_for(self, body: str) -> list[HeldRequest]:
        return [h for h in self.held.get(body, []) if not h.verdict.done()]

    def held_count(self) -> int:
        return sum(len(self.held_for(body)) for body in list(self.held))

    def answer_rest(self, body: str, verdict: RestVerdict) -> bool:
        """Answer the oldest held REST request for ``body``; ``False`` if none is held."""
        waiting = self.held_for(body)
        if not waiting:
            return False
        waiting[0].verdict.set_result(verdict)
        self.activity.bump()
        return True

    # -- handlers -----------------------------------------------------------------------
    async def _send(self, conn: _Conn, payload: dict[str, Any]) -> None:
        self.activity.bump()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(json.dumps(payload))

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, heartbeat=None)
        try:
            await ws.prepare(request)
        except ConnectionError:
            return web.Response(status=499)  # the proxy reset it during the upgrade
        epoch = int(request.query.get("epoch", "0"))
        conn = self._conns[epoch] = _Conn(epoch, ws)
        self.activity.bump()
        hello = asyncio.ensure_future(self._hello(conn))
        try:
            async for msg in ws:
                self.activity.bump()
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                if frame.get("type") == "ping":
                    await self._send(conn, {"type": "pong", "n": frame.get("n")})
                elif frame.get("type") == "message":
                    self.ws_frames += 1
                    body, ident = str(frame["body"]), frame.get("id")
                    self.apply(body, ident)
                    ref = ident if ident is not None else body
                    if self.gates.hold_done:
                        conn.owed.append(ref)
                    else:
                        await self._send(conn, {"type": "done", "ref": ref})
        finally:
            hello.cancel()
            conn.owed.clear()
            self.activity.bump()
        return ws

    async def _hello(self, conn: _Conn) -> None:
        if self.gates.hold_hello:
            await conn.hello.wait()
        if conn.said_hello or conn.ws.closed:
            return
        conn.said_hello = True
        await self._send(conn, {"type": "hello", "epoch": conn.epoch})

    async def _post(self, request: web.Request) -> web.StreamResponse:
        data = await request.json()
        body, ident = str(data["body"]), data.get("id")
        self.rest_requests += 1
        self.activity.bump()
        if self.gates.hold_rest:
            held = HeldRequest(body, ident, asyncio.get_running_loop().create_future())
            self.held[body].append(held)
            verdict = await held.verdict
        else:
            verdict = self.gates.rest_verdict()
        self.activity.bump()
        if verdict == "fail":
            return web.json_response({"ok": False}, status=503)
        self.apply(body, ident)
        if verdict == "ambiguous":
            # Applied, but the response is lost: drop the connection unanswered.
            transport = request.transport
            if transport is not None:
                transport.abort()
        return web.json_response({"ok": True})

    async def _refetch(self, request: web.Request) -> web.Response:
        refs = request.query.getall("ref", [])
        self.activity.bump()
        return web.json_response({"applied": [r for r in refs if self.has(r)]})
