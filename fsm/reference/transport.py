"""The reference client's I/O: an aiohttp session, its WebSockets, its REST requests.

:class:`Transport` does the I/O and reports what it saw as actor events
(:class:`~fsm.reference.records.Event`) through the ``post`` callback it is
given; it decides nothing. Which event a report becomes, and what the client
does about it, is :mod:`fsm.reference.client`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from fsm.reference.activity import Activity
from fsm.reference.clock import Timer
from fsm.reference.records import Event, Kind

__all__ = ["Sock", "Transport"]


@dataclass
class Sock:
    """One WebSocket the client opened (``epoch`` numbers them)."""

    epoch: int
    ready: asyncio.Future[bool]
    ws: aiohttp.ClientWebSocketResponse[bool] | None = None
    task: asyncio.Task[None] | None = None
    #: The transport knows the socket is dead (a send would raise).
    dead: bool = False
    closed: bool = False
    #: The app was suspended while this socket was still opening: it is frozen.
    frozen: bool = False
    #: The app went to the background while this socket existed.
    backgrounded: bool = False
    hello_handled: bool = False
    failure_handled: bool = False
    awaiting_pong: bool = False
    pings: int = 0
    #: Refetches over this socket awaiting their answer, by number.
    fetches: dict[int, asyncio.Future[set[str] | None]] = field(default_factory=dict)
    #: The heartbeat deadline, on the client's clock: past it, the socket counts as
    #: dead (set when it opens, moved on by the server's hello and each pong).
    deadline: float = 0.0
    timers: list[Timer] = field(default_factory=list)


class Transport:
    """The session, the sockets' receive loops and sends, and the REST calls."""

    def __init__(
        self,
        ws_url: str,
        rest_url: str,
        io_timeout: float,
        activity: Activity,
        post: Callable[[Event], None],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.ws_url = ws_url
        #: Sent with every request and the WebSocket upgrade (the client's identity).
        self.headers = dict(headers or {})
        self.rest_url = rest_url
        self.io_timeout = io_timeout
        self.activity = activity
        self.post = post
        self.session: aiohttp.ClientSession | None = None
        self._fetches = itertools.count(1)

    def start(self) -> None:
        self.session = aiohttp.ClientSession(
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=self.io_timeout),
            connector=aiohttp.TCPConnector(force_close=True, limit=0),
        )
        # aiohttp silently retries an idempotent request (the WebSocket upgrade is a
        # GET) once when the connection drops; a client must see that failure.
        self.session._retry_connection = False

    async def close(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.session.close(), 2.0)

    # -- sockets ------------------------------------------------------------------------
    def kill(self, sock: Sock) -> None:
        """Abort ``sock`` and every timer it armed."""
        sock.closed = True
        sock.dead = True
        for timer in sock.timers:
            timer.cancel()
        if not sock.ready.done():
            sock.ready.set_result(False)
        _drop_fetches(sock)
        if sock.ws is not None:
            # What aiohttp itself does to drop a WebSocket without a closing handshake.
            sock.ws._response.close()
        if sock.task is not None and not sock.task.done():
            sock.task.cancel()
        self.activity.bump()

    async def run(self, sock: Sock) -> None:
        """Open ``sock`` and run its receive loop until it dies."""
        assert self.session is not None
        url = f"{self.ws_url}?epoch={sock.epoch}"
        try:
            ws = await self.session.ws_connect(
                url,
                autoping=False,
                heartbeat=None,
                autoclose=False,
                timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            sock.dead = True
            if not sock.ready.done():
                sock.ready.set_result(False)
                self.post(Event(Kind.open_failed, sock.epoch))
            return
        if sock.closed:
            with contextlib.suppress(Exception):
                ws._response.close()
            return
        sock.ws = ws
        self.activity.bump()
        try:
            while True:
                msg = await ws.receive()
                self.activity.bump()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                if frame.get("type") == "hello":
                    if not sock.ready.done():
                        sock.ready.set_result(True)
                    self.post(Event(Kind.hello, sock.epoch))
                elif frame.get("type") == "applied":
                    _answer_fetch(sock, frame)
                else:
                    self.post(Event(Kind.frame, sock.epoch, frame=frame))
        except (aiohttp.ClientError, OSError, RuntimeError):
            pass
        sock.dead = True
        _drop_fetches(sock)
        self.activity.bump()
        if not sock.ready.done():
            sock.ready.set_result(False)
            self.post(Event(Kind.open_failed, sock.epoch))
        elif not sock.closed:
            self.post(Event(Kind.socket_closed, sock.epoch))

    async def write(self, sock: Sock, payload: dict[str, Any]) -> bool:
        """Send one frame; ``False`` when the send raised (the socket is then dead)."""
        if sock.dead or sock.ws is None or sock.closed:
            return False
        try:
            await asyncio.wait_for(sock.ws.send_str(json.dumps(payload)), self.io_timeout)
        except (ConnectionError, RuntimeError, OSError, asyncio.TimeoutError):
            sock.dead = True
            return False
        self.activity.bump()
        return True

    async def applied_ws(self, sock: Sock, refs: list[str]) -> set[str] | None:
        """The refetch over ``sock`` (a client without REST): which of ``refs`` the
        server applied; ``None`` when the socket died first."""
        n = next(self._fetches)
        answer: asyncio.Future[set[str] | None] = asyncio.get_running_loop().create_future()
        sock.fetches[n] = answer
        try:
            if not await self.write(sock, {"type": "fetch", "n": n, "refs": refs}):
                return None
            return await asyncio.wait_for(asyncio.shield(answer), self.io_timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            sock.fetches.pop(n, None)

    # -- REST ---------------------------------------------------------------------------
    async def post_message(self, payload: dict[str, Any]) -> bool:
        """``POST /messages``; whether the server answered 200."""
        assert self.session is not None
        try:
            async with self.session.post(self.rest_url + "/messages", json=payload) as resp:
                ok = resp.status == 200
                await resp.read()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            return False
        return ok

    async def applied(self, refs: list[str]) -> set[str] | None:
        """``GET /messages?ref=...``: which of ``refs`` the server applied; ``None``
        when the request failed."""
        if self.session is None:
            return None
        try:
            async with self.session.get(
                self.rest_url + "/messages", params=[("ref", r) for r in refs]
            ) as resp:
                data = await resp.json() if resp.status == 200 else {"applied": []}
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            return None
        applied: set[str] = set(data.get("applied", []))
        return applied


def _answer_fetch(sock: Sock, frame: dict[str, Any]) -> None:
    answer = sock.fetches.get(frame.get("n", -1))
    applied = frame.get("applied")
    if answer is not None and not answer.done() and isinstance(applied, list):
        answer.set_result({r for r in applied if isinstance(r, str)})


def _drop_fetches(sock: Sock) -> None:
    """The socket died: no refetch over it is answered."""
    for answer in sock.fetches.values():
        if not answer.done():
            answer.set_result(None)
