"""A shared counter every moving part bumps, so a driver can tell when all is quiet.

The client, the server and the proxy run in one event loop over loopback
sockets. After a driver makes the world do something, it waits until nothing
has happened for a few polls of the loop (:func:`settle`): then every byte
written has been read and every reaction has run, because on loopback a byte
is in the peer's buffer when ``send`` returns and the loop's selector sees it
on its next poll.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fsm.model.errors import SettleTimeout

__all__ = ["Activity", "settle"]


class Activity:
    """A monotonically increasing count of things that happened."""

    def __init__(self) -> None:
        self.count = 0

    def bump(self) -> None:
        self.count += 1


async def settle(
    activity: Activity,
    *,
    ready: Callable[[], bool] = lambda: True,
    quiet_polls: int = 3,
    poll: float = 0.002,
    timeout: float = 5.0,
) -> None:
    """Wait until ``activity`` has not moved for ``quiet_polls`` polls and ``ready()``
    holds; :class:`SettleTimeout` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = -1
    quiet = 0
    while True:
        if activity.count == last and ready():
            quiet += 1
            if quiet >= quiet_polls:
                return
        else:
            quiet = 0
            last = activity.count
        if time.monotonic() > deadline:
            raise SettleTimeout(f"the world did not go quiet within {timeout} s")
        await asyncio.sleep(poll)
