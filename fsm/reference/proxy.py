"""A TCP proxy on loopback that injects the faults a phone's network produces.

Each accepted connection is piped to the upstream server, one pump per
direction. A connection can be

* **forwarding** (the normal case);
* **black-holed** (:meth:`FaultProxy.blackhole`, and :meth:`FaultProxy.suspend`,
  which is how an iOS suspension is realised at the wire): TCP stays open and
  the proxy reads and drops every byte in both directions. A send at the client
  succeeds locally and goes nowhere (a half-open connection); the server sees
  nothing either;
* **reset** (:meth:`FaultProxy.reset`): both sides get a TCP RST (``SO_LINGER``
  0). The client's next send raises and its receive loop ends with an error.

New connections are accepted normally, refused (:meth:`FaultProxy.network_down`
with ``hold=False``: accepted and reset at once, a "connection refused" as the
client sees it), or held (``hold=True``: accepted and left unanswered, as a
connect into a dead network hangs, until :meth:`FaultProxy.network_up` forwards
them or they are reset). Everything binds to 127.0.0.1 on a port chosen at run
time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
from dataclasses import dataclass, field
from typing import Literal

from fsm.reference.activity import Activity

__all__ = ["FaultProxy", "ProxyConn"]

Mode = Literal["forward", "blackhole", "held"]

_BUF = 65536


def _rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class ProxyConn:
    """One client connection through the proxy."""

    id: int
    client_reader: asyncio.StreamReader
    client_writer: asyncio.StreamWriter
    mode: Mode = "forward"
    upstream_writer: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False
    suspended: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class FaultProxy:
    """The proxy in front of one upstream port."""

    def __init__(self, upstream_port: int, activity: Activity | None = None) -> None:
        self.upstream_port = upstream_port
        self.activity = activity or Activity()
        self.port = 0
        self.conns: dict[int, ProxyConn] = {}
        self._ids = itertools.count(1)
        self._server: asyncio.base_events.Server | None = None
        self.accepting: Literal["up", "refuse", "hold"] = "up"

    async def start(self) -> int:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        for conn in list(self.conns.values()):
            self._close(conn, rst=True)
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        tasks = [t for c in self.conns.values() for t in c.tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    # -- faults -------------------------------------------------------------------------
    def live(self) -> list[ProxyConn]:
        return [c for c in self.conns.values() if not c.closed]

    def defunct(self) -> bool:
        """Whether a connection is open at the client and black-holed here."""
        return any(c.mode == "blackhole" for c in self.live())

    def suspend(self) -> int:
        """iOS suspended the app: every open connection becomes defunct (black-holed)."""
        n = 0
        for conn in self.live():
            conn.mode = "blackhole"
            conn.suspended = True
            n += 1
        self.activity.bump()
        return n

    def blackhole(self) -> int:
        """Every forwarding connection goes half-open: bytes vanish, nothing is reported."""
        n = 0
        for conn in self.live():
            if conn.mode == "forward":
                conn.mode = "blackhole"
                n += 1
        self.activity.bump()
        return n

    def reset(self, *, only_defunct: bool = False) -> int:
        """Reset connections (every one, or only the black-holed ones) with a TCP RST."""
        n = 0
        for conn in self.live():
            if only_defunct and conn.mode != "blackhole":
                continue
            self._close(conn, rst=True)
            n += 1
        self.activity.bump()
        return n

    def network_down(self, *, hold: bool = False) -> None:
        """The network is gone: forwarding connections are reset; new ones are refused
        (or, with ``hold``, left hanging). Defunct connections stay as they are."""
        self.accepting = "hold" if hold else "refuse"
        for conn in self.live():
            if conn.mode == "forward":
                self._close(conn, rst=True)
        self.activity.bump()

    def network_up(self) -> None:
        """The network is back: new connections are forwarded, held ones are connected."""
        self.accepting = "up"
        for conn in self.live():
            if conn.mode == "held":
                conn.mode = "forward"
                conn.tasks.append(asyncio.ensure_future(self._connect_upstream(conn)))
        self.activity.bump()

    # -- plumbing -----------------------------------------------------------------------
    def _close(self, conn: ProxyConn, *, rst: bool) -> None:
        if conn.closed:
            return
        conn.closed = True
        for writer in (conn.client_writer, conn.upstream_writer):
            if writer is None:
                continue
            if rst:
                _rst(writer)
            else:
                writer.close()
        self.activity.bump()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = ProxyConn(next(self._ids), reader, writer)
        self.conns[conn.id] = conn
        self.activity.bump()
        if self.accepting == "refuse":
            self._close(conn, rst=True)
            return
        conn.tasks.append(asyncio.ensure_future(self._client_side(conn)))
        if self.accepting == "hold":
            conn.mode = "held"
            return
        await self._connect_upstream(conn)

    async def _connect_upstream(self, conn: ProxyConn) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 5.0
            )
        except (OSError, asyncio.TimeoutError):
            self._close(conn, rst=True)
            return
        if conn.closed:
            _rst(up_writer)
            return
        conn.upstream_writer = up_writer
        if conn.buffer and conn.mode == "forward":
            up_writer.write(bytes(conn.buffer))
        conn.buffer.clear()
        conn.tasks.append(asyncio.ensure_future(self._server_side(conn, up_reader)))

    async def _client_side(self, conn: ProxyConn) -> None:
        """Read what the client sends: forward it, keep it (held), or drop it (black-holed).
        The client hanging up ends the connection whatever its mode."""
        try:
            while not conn.closed:
                data = await conn.client_reader.read(_BUF)
                self.activity.bump()
                if not data:
                    self._close(conn, rst=False)
                    return
                if conn.mode == "forward" and conn.upstream_writer is not None:
                    conn.upstream_writer.write(data)
                    await conn.upstream_writer.drain()
                elif conn.mode in ("held", "forward"):
                    conn.buffer.extend(data)
        except (ConnectionError, OSError):
            self._close(conn, rst=True)

    async def _server_side(self, conn: ProxyConn, reader: asyncio.StreamReader) -> None:
        """Forward what the server sends; a black-holed connection drops it, and the
        server hanging up never reaches the client."""
        try:
            while not conn.closed:
                data = await reader.read(_BUF)
                self.activity.bump()
                if not data:
                    if conn.mode == "forward":
                        self._close(conn, rst=False)
                    return
                if conn.mode != "forward" or conn.closed:
                    continue
                conn.client_writer.write(data)
                await conn.client_writer.drain()
        except (ConnectionError, OSError):
            if conn.mode == "forward":
                self._close(conn, rst=True)
