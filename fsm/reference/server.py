"""The reference chat server: a WebSocket endpoint and a REST endpoint over aiohttp.

Wire format (JSON text frames and bodies):

* ``GET /ws?epoch=N``: the WebSocket. The server greets with ``{"type": "hello"}``
  (the handshake acknowledgement, Ably's CONNECTED); the client sends
  ``{"type": "message", "body": ..., "id": ...?, "ack": ...?}`` and
  ``{"type": "ping", "n": ...}``; the server answers ``{"type": "done", "ref": ...}``
  for every message copy it received on that socket (also for a duplicate it did
  not apply, as Socket.IO's tutorial does) and ``{"type": "pong", "n": ...}``. A
  message's ``ack`` is a whole number (an acknowledgement id, echoed in its
  ``done`` as ``"ack"``) or ``false`` (fire-and-forget: no ``done`` for it).
  ``{"type": "fetch", "n": ..., "refs": [...]}`` is the refetch over the socket
  (for a client without REST): the server answers at once
  ``{"type": "applied", "n": ..., "applied": [...]}``, as ``GET /messages`` does.
* ``POST /messages`` with ``{"body": ..., "id": ...?}``: 200 ``{"ok": true}``, or
  503 (the server failed and applied nothing), or the connection is dropped after
  the message was applied (an ambiguous failure: the response is lost).
* ``GET /messages?ref=...&ref=...``: which of these refs (client ids, or bodies
  for clients without ids) the server has applied: the refetch of the companion fix.

Every request names its client in the :data:`CLIENT_HEADER` header (the
WebSocket upgrade and each REST request; a request without it belongs to the
anonymous client ``""``). Message ids, refetches and sockets are scoped per
client: an id another client used does not stop this client's message, a
refetch sees only what this client sent, and two clients may use the same
epoch. The header is an identity, not an authentication: this server is a test
fixture on the loopback interface (see docs/security.md).

Bad input gets an answer, never an exception in a handler: a malformed REST
body is ``400`` with ``{"ok": false, "error": ...}``; a malformed WebSocket
frame closes the socket with code 1007 (1003 for a binary frame, 1009 for one
over :data:`MAX_FRAME`) and a reason. Reads time out (:data:`READ_TIMEOUT`
for a REST body, :attr:`ReferenceServer.idle_timeout` for a silent socket),
and a closed socket is forgotten.

The store (:attr:`ReferenceServer.applied`) is the ground truth: how many copies
of each message (by its text, which every driver keeps unique) were applied. A
copy carrying a client id is applied only if no copy with that id was, from
the same client.

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

from aiohttp import WSCloseCode, WSMsgType, web

from fsm.model.errors import BadRequest
from fsm.reference.activity import Activity

__all__ = [
    "CLIENT_HEADER",
    "MAX_FRAME",
    "READ_TIMEOUT",
    "Gates",
    "HeldRequest",
    "ReferenceServer",
    "RestVerdict",
]

RestVerdict = Literal["ok", "fail", "ambiguous"]

#: The request header that names the client (an identity, not a credential).
CLIENT_HEADER = "X-Fsm-Client"
#: The largest WebSocket frame and REST body the server reads, in bytes.
MAX_FRAME = 64 * 1024
#: Seconds the server waits for a REST request's body.
READ_TIMEOUT = 10.0


def _message_fields(data: object) -> tuple[str, str | None]:
    """The body and id of a message frame or REST body; :class:`BadRequest` if malformed."""
    if not isinstance(data, dict):
        raise BadRequest("expected a JSON object")
    body, ident = data.get("body"), data.get("id")
    if not isinstance(body, str):
        raise BadRequest("body must be a string")
    if ident is not None and not isinstance(ident, str):
        raise BadRequest("id must be a string or absent")
    return body, ident


def _ack_field(frame: dict[str, Any]) -> int | Literal[False] | None:
    """A message frame's ``ack``: an id to echo, ``None`` (absent: a done without
    one) or ``False`` (no done); :class:`BadRequest` if malformed."""
    ack = frame.get("ack")
    if ack is None or ack is False:
        return ack
    if isinstance(ack, bool) or not isinstance(ack, int) or not 0 <= ack < 1 << 53:
        raise BadRequest("ack must be a whole number, false or absent")
    return ack


def _json(text: str | bytes) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # JSON, UTF-8 and digit limits
        raise BadRequest("not JSON") from None


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
    client: str = ""


@dataclass
class _Conn:
    epoch: int
    ws: web.WebSocketResponse
    client: str = ""
    hello: asyncio.Event = field(default_factory=asyncio.Event)
    #: The dones owed on this socket: the ref and the ack id to echo (if any).
    owed: list[tuple[str, int | None]] = field(default_factory=list)
    said_hello: bool = False


class ReferenceServer:
    """The server, started with :meth:`start` on 127.0.0.1 and a port chosen at run time."""

    def __init__(self, activity: Activity | None = None, gates: Gates | None = None) -> None:
        self.activity = activity or Activity()
        self.gates = gates or Gates()
        self.applied: Counter[str] = Counter()
        #: Per client: the ids applied (to their body) and the bodies applied.
        self._ids: dict[str, dict[str, str]] = defaultdict(dict)
        self._bodies: dict[str, Counter[str]] = defaultdict(Counter)
        self._conns: dict[tuple[str, int], _Conn] = {}
        #: Seconds a socket may stay silent before the server closes it.
        self.idle_timeout = 300.0
        self.held: dict[str, list[HeldRequest]] = defaultdict(list)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.ws_frames = 0
        self.rest_requests = 0

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> int:
        app = web.Application(client_max_size=MAX_FRAME)
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
        self._bodies.clear()
        self.held.clear()

    # -- the store --------------------------------------------------------------------
    def apply(self, body: str, ident: str | None, client: str = "") -> None:
        """A copy of ``body`` arrived from ``client``: apply it unless its id was
        applied already for that client."""
        self.activity.bump()
        if ident is not None:
            ids = self._ids[client]
            if ident in ids:
                return
            ids[ident] = body
        self.applied[body] += 1
        self._bodies[client][body] += 1

    def has(self, ref: str, client: str = "") -> bool:
        """Whether ``client`` had a message applied with this id or body."""
        return ref in self._ids.get(client, {}) or self._bodies.get(client, Counter())[ref] > 0

    # -- what a driver can do -----------------------------------------------------------
    def _waiting(self) -> list[_Conn]:
        return [c for c in self._conns.values() if not c.said_hello and not c.ws.closed]

    def waiting_hello(self) -> list[int]:
        """Epochs of open sockets still waiting for their hello."""
        return [c.epoch for c in self._waiting()]

    def say_hello(self) -> bool:
        """Acknowledge the newest socket's handshake; ``False`` if none waits."""
        waiting = self._waiting()
        if not waiting:
            return False
        max(waiting, key=lambda c: c.epoch).hello.set()
        return True

    @staticmethod
    def _owed(conn: _Conn, ref: str, floor: int) -> tuple[str, int | None] | None:
        """The newest done ``conn`` owes for ``ref`` with no ack id or one from ``floor``."""
        for entry in reversed(conn.owed):
            if entry[0] == ref and (entry[1] is None or entry[1] >= floor):
                return entry
        return None

    def owes(self, ref: str, floor: int = 0) -> bool:
        """Whether a live socket owes a done for ``ref`` (with no ack id below ``floor``:
        the client stopped waiting for those)."""
        return any(
            self._owed(c, ref, floor) is not None for c in self._conns.values() if not c.ws.closed
        )

    async def send_done(self, ref: str, floor: int = 0) -> bool:
        """Send the newest done owed for ``ref`` (as :meth:`owes` counts them) on the
        newest live socket that owes one; ``False`` if none is owed."""
        for conn in sorted(self._conns.values(), key=lambda c: -c.epoch):
            entry = self._owed(conn, ref, floor)
            if entry is not None and not conn.ws.closed:
                conn.owed.remove(entry)
                done: dict[str, Any] = {"type": "done", "ref": ref}
                if entry[1] is not None:
                    done["ack"] = entry[1]
                await self._send(conn, done)
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
        ws = web.WebSocketResponse(
            autoping=False, heartbeat=None, max_msg_size=MAX_FRAME, receive_timeout=None
        )
        try:
            epoch = int(request.query.get("epoch", "0"))
        except ValueError:
            return web.json_response({"ok": False, "error": "epoch must be an integer"}, status=400)
        try:
            await ws.prepare(request)
        except ConnectionError:
            return web.Response(status=499)  # the proxy reset it during the upgrade
        client = request.headers.get(CLIENT_HEADER, "")
        key = (client, epoch)
        old = self._conns.get(key)
        if old is not None and not old.ws.closed:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"epoch already open")
            return ws
        conn = self._conns[key] = _Conn(epoch, ws, client)
        self.activity.bump()
        hello = asyncio.ensure_future(self._hello(conn))
        try:
            while not ws.closed:
                try:
                    msg = await asyncio.wait_for(ws.receive(), self.idle_timeout)
                except asyncio.TimeoutError:
                    await ws.close(code=WSCloseCode.GOING_AWAY, message=b"idle too long")
                    break
                self.activity.bump()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                    break
                if msg.type is WSMsgType.ERROR:
                    # aiohttp closes an over-large frame with 1009 itself.
                    break
                if msg.type is not WSMsgType.TEXT:
                    await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"text frames only")
                    break
                try:
                    await self._frame(conn, msg.data)
                except BadRequest as exc:
                    await ws.close(code=WSCloseCode.INVALID_TEXT, message=str(exc).encode())
                    break
        finally:
            hello.cancel()
            conn.owed.clear()
            if self._conns.get(key) is conn:
                del self._conns[key]
            self.activity.bump()
        return ws

    async def _frame(self, conn: _Conn, text: str) -> None:
        frame = _json(text)
        if not isinstance(frame, dict):
            raise BadRequest("expected a JSON object")
        kind = frame.get("type")
        if kind == "ping":
            await self._send(conn, {"type": "pong", "n": frame.get("n")})
        elif kind == "fetch":
            refs = frame.get("refs")
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                raise BadRequest("refs must be a list of strings")
            applied = [r for r in refs if self.has(r, conn.client)]
            await self._send(conn, {"type": "applied", "n": frame.get("n"), "applied": applied})
        elif kind == "message":
            body, ident = _message_fields(frame)
            ack = _ack_field(frame)
            self.ws_frames += 1
            self.apply(body, ident, conn.client)
            ref = ident if ident is not None else body
            if ack is False:
                return  # fire-and-forget: nobody waits for a done
            if self.gates.hold_done:
                conn.owed.append((ref, ack))
            else:
                done: dict[str, Any] = {"type": "done", "ref": ref}
                if ack is not None:
                    done["ack"] = ack
                await self._send(conn, done)
        else:
            raise BadRequest("type must be 'message', 'ping' or 'fetch'")

    async def _hello(self, conn: _Conn) -> None:
        if self.gates.hold_hello:
            await conn.hello.wait()
        if conn.said_hello or conn.ws.closed:
            return
        conn.said_hello = True
        await self._send(conn, {"type": "hello", "epoch": conn.epoch})

    async def _post(self, request: web.Request) -> web.StreamResponse:
        client = request.headers.get(CLIENT_HEADER, "")
        try:
            raw = await asyncio.wait_for(request.read(), READ_TIMEOUT)
            body, ident = _message_fields(_json(raw))
        except BadRequest as exc:
            return web.json_response({"ok": False, "error": str(exc)}, status=400)
        except asyncio.TimeoutError:
            return web.json_response({"ok": False, "error": "body too slow"}, status=408)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response(
                {"ok": False, "error": f"body over {MAX_FRAME} bytes"}, status=413
            )
        self.rest_requests += 1
        self.activity.bump()
        if self.gates.hold_rest:
            held = HeldRequest(body, ident, asyncio.get_running_loop().create_future(), client)
            self.held[body].append(held)
            verdict = await held.verdict
        else:
            verdict = self.gates.rest_verdict()
        self.activity.bump()
        if verdict == "fail":
            return web.json_response({"ok": False}, status=503)
        self.apply(body, ident, client)
        if verdict == "ambiguous":
            # Applied, but the response is lost: drop the connection unanswered.
            transport = request.transport
            if transport is not None:
                transport.abort()
        return web.json_response({"ok": True})

    async def _refetch(self, request: web.Request) -> web.Response:
        client = request.headers.get(CLIENT_HEADER, "")
        refs = request.query.getall("ref", [])
        self.activity.bump()
        return web.json_response({"applied": [r for r in refs if self.has(r, client)]})
