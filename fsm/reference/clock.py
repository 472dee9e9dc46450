"""Time for the reference client: a manual clock a test advances, or the loop's own.

Every time-based behaviour of the client (the heartbeat, the ack timeout, the
handshake timeout, the reconnect backoff, the delay before a dead socket is
reported) is a named timer on a :class:`Clock`. With :class:`ManualClock` nothing
happens until the test says so, so runs are deterministic and never sleep:
``advance(dt)`` fires every timer that falls due, in deadline order,
``fire(kind)`` fires the earliest pending timer of one kind at once (how the
replay adapter maps a model step such as ``ping_timeout`` to the real client),
``fire_timer(timer)`` fires one given timer (a message's acknowledgement timer),
and ``skip(dt)`` lets time pass while the app is frozen, firing nothing.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Clock", "ManualClock", "RealClock", "Timer"]


@dataclass(order=True)
class Timer:
    """One scheduled callback; ``cancel()`` makes it never fire."""

    deadline: float
    seq: int
    kind: str = field(compare=False)
    callback: Callable[[], None] = field(compare=False, repr=False)
    cancelled: bool = field(default=False, compare=False)
    fired: bool = field(default=False, compare=False)
    handle: asyncio.TimerHandle | None = field(default=None, compare=False, repr=False)

    def cancel(self) -> None:
        self.cancelled = True
        if self.handle is not None:
            self.handle.cancel()

    @property
    def pending(self) -> bool:
        return not (self.cancelled or self.fired)


class Clock(Protocol):
    """What the client needs from time."""

    def now(self) -> float: ...

    def call_later(self, delay: float, kind: str, callback: Callable[[], None]) -> Timer: ...


class ManualClock:
    """Time that moves only when told to.

    >>> clock = ManualClock()
    >>> seen = []
    >>> _ = clock.call_later(2.0, "heartbeat", lambda: seen.append("hb"))
    >>> _ = clock.call_later(1.0, "report", lambda: seen.append("report"))
    >>> clock.fire("heartbeat"), seen
    (True, ['hb'])
    >>> clock.advance(5.0), seen
    (1, ['hb', 'report'])
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._heap: list[Timer] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, kind: str, callback: Callable[[], None]) -> Timer:
        timer = Timer(self._now + max(delay, 0.0), next(self._seq), kind, callback)
        heapq.heappush(self._heap, timer)
        return timer

    def pending(self, kind: str | None = None) -> list[Timer]:
        """The pending timers (of ``kind``), earliest first."""
        return sorted(t for t in self._heap if t.pending and (kind is None or t.kind == kind))

    def advance(self, dt: float) -> int:
        """Move time forward by ``dt``, firing every timer that falls due; how many fired.

        A callback that schedules a timer due within the same window sees it fire too.
        """
        end = self._now + max(dt, 0.0)
        count = 0
        while self._heap and self._heap[0].deadline <= end:
            timer = heapq.heappop(self._heap)
            if not timer.pending:
                continue
            self._now = max(self._now, timer.deadline)
            timer.fired = True
            timer.callback()
            count += 1
        self._now = end
        return count

    def skip(self, dt: float) -> None:
        """Move time forward by ``dt`` firing nothing: the app was frozen (iOS suspends
        a process in the background), so the timers that fell due meanwhile wait until
        they are fired or advanced past.

        >>> clock = ManualClock()
        >>> seen = []
        >>> _ = clock.call_later(1.0, "heartbeat", lambda: seen.append("hb"))
        >>> clock.skip(60.0)
        >>> clock.now(), seen, len(clock.pending("heartbeat"))
        (60.0, [], 1)
        """
        self._now += max(dt, 0.0)

    def fire_timer(self, timer: Timer) -> bool:
        """Fire ``timer`` now (time jumps to its deadline if that is later); ``False``
        when it is no longer pending."""
        if not timer.pending:
            return False
        self._now = max(self._now, timer.deadline)
        timer.fired = True
        timer.callback()
        return True

    def fire(self, kind: str) -> bool:
        """Fire the earliest pending timer of ``kind`` now (time jumps to its deadline
        if that is later); ``False`` when there is none."""
        timers = self.pending(kind)
        return bool(timers) and self.fire_timer(timers[0])


class RealClock:
    """The event loop's monotonic time (for running the client outside tests)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()

    def now(self) -> float:
        return self._get_loop().time()

    def call_later(self, delay: float, kind: str, callback: Callable[[], None]) -> Timer:
        loop = self._get_loop()
        timer = Timer(loop.time() + delay, 0, kind, callback)

        def run() -> None:
            if timer.pending:
                timer.fired = True
                callback()

        timer.handle = loop.call_later(max(delay, 0.0), run)
        return timer
