"""The whole real world on loopback: a server, a fault proxy per path, a client, a clock.

``ReferenceWorld`` starts the server and two :class:`~fsm.reference.proxy.FaultProxy`
instances (one in front of the WebSocket path, one in front of REST), and
makes clients that talk through them with their SQLite store in a directory of
the world's (with ``scratch``, on a RAM-backed file system where the machine has
one: for drivers that kill no process, so a commit need not reach a disk).
Everything binds to 127.0.0.1 on ports chosen at run time.

:class:`LoopThread` runs an event loop in a thread for synchronous drivers
(the replay adapter's ``apply`` is synchronous); every call into it is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from fsm.model.behaviour import Behaviour
from fsm.model.design import Design
from fsm.reference.activity import Activity, settle
from fsm.reference.client import ClientEvent, ReferenceClient
from fsm.reference.clock import ManualClock
from fsm.reference.policy import Timings
from fsm.reference.proxy import FaultProxy
from fsm.reference.server import Gates, ReferenceServer

__all__ = ["LoopThread", "ReferenceWorld"]

T = TypeVar("T")

#: A RAM-backed file system (Linux), for scratch stores.
_RAM = "/dev/shm"


class ReferenceWorld:
    """Server, proxies, clock and (at most) one client at a time."""

    def __init__(
        self,
        gates: Gates | None = None,
        directory: str | Path | None = None,
        *,
        scratch: bool = False,
    ) -> None:
        self.activity = Activity()
        self.clock = ManualClock()
        self.server = ReferenceServer(self.activity, gates)
        self.ws_proxy: FaultProxy
        self.rest_proxy: FaultProxy
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            root = _RAM if scratch and os.access(_RAM, os.W_OK | os.X_OK) else None
            self._tmp = tempfile.TemporaryDirectory(prefix="fsm-reference-", dir=root)
            directory = self._tmp.name
        self.directory = Path(directory)
        self.client: ReferenceClient | None = None
        self._stores = 0

    async def start(self) -> None:
        port = await self.server.start()
        self.ws_proxy = FaultProxy(port, self.activity)
        self.rest_proxy = FaultProxy(port, self.activity)
        await self.ws_proxy.start()
        await self.rest_proxy.start()

    async def stop(self) -> None:
        """Stop the client, the proxies and the server, each even if an earlier one
        failed (or the world never fully started); remove the store's directory."""
        client, self.client = self.client, None
        parts: list[Callable[[], Coroutine[Any, Any, None]]] = []
        if client is not None:
            parts.append(client.close)
        for name in ("ws_proxy", "rest_proxy"):
            proxy: FaultProxy | None = getattr(self, name, None)
            if proxy is not None:
                parts.append(proxy.stop)
        parts.append(self.server.stop)
        first: BaseException | None = None
        for stop in parts:
            try:
                await stop()
            except Exception as exc:  # keep stopping the rest; the first error is re-raised
                first = first or exc
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        if first is not None:
            raise first

    def new_store(self) -> Path:
        self._stores += 1
        return self.directory / f"client-{self._stores}.sqlite"

    async def new_client(
        self,
        design: Design,
        *,
        store: Path | None = None,
        behaviour_: Behaviour | None = None,
        timings: Timings | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        connect: bool = True,
    ) -> ReferenceClient:
        """Start a client (on ``store``, to restart one that was killed)."""
        client = ReferenceClient(
            design,
            ws_url=f"http://127.0.0.1:{self.ws_proxy.port}/ws",
            rest_url=f"http://127.0.0.1:{self.rest_proxy.port}",
            store=store if store is not None else self.new_store(),
            clock=self.clock,
            timings=timings,
            behaviour_=behaviour_,
            on_event=on_event,
            activity=self.activity,
        )
        await client.start(connect=connect)
        self.client = client
        return client

    async def settle(self, timeout: float = 5.0) -> None:
        """Wait until nothing moves and the client has nothing queued."""
        client = self.client
        await settle(
            self.activity,
            ready=lambda: client is None or client.idle,
            timeout=timeout,
        )


class LoopThread:
    """An event loop running in a daemon thread; :meth:`run` waits (bounded) for a coroutine."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` in the loop and wait for it; if the wait ends any other way
        (a timeout, Ctrl-C), the coroutine's task is cancelled, not left pending."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        """Cancel every task still in the loop, wait (bounded) for them to finish,
        then stop the loop and its thread."""
        if self._thread.is_alive() and not self.loop.is_closed():
            done = asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop)
            with contextlib.suppress(Exception):
                done.result(5.0)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()

    @staticmethod
    async def _cancel_all() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
