"""The reference client's acknowledgement ids and acknowledgement timers.

Each emit of a message (written over the WebSocket, or put in the offline buffer
to be written when a connection is acknowledged) gets a fresh acknowledgement id,
which its frame carries and the server's ``done`` echoes (socket.io numbers its
acknowledgement callbacks the same way). Flushing the buffer writes the message
with the id it was buffered with; every other write is a new emit.

In a design with an effect at the ``ack_timed_out`` hook (``ack_timer``), a message
that awaits its acknowledgement (:attr:`~fsm.model.vocabulary.MessageState.awaits_ack`:
``sent_ws`` or ``buffered``) has one timer, named ``ack_due``, armed for its
latest emit (socket.io's ackTimeout, registered at emit). When it fires the client
posts :attr:`~fsm.reference.records.Kind.ack_due` and runs the design's effect.

When the client stops waiting for an acknowledgement (its timer fired, or the
attempt failed with the connection) the message's ``ack_floor`` rises past its
latest id: a ``done`` that arrives later for an earlier emit is ignored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from fsm.reference.clock import Clock, Timer
from fsm.reference.records import ClientMessage, Event, Kind

__all__ = ["AckTimers"]


class AckTimers:
    """The acknowledgement ids of every message, and (``enabled``) their timers."""

    def __init__(
        self, clock: Clock, delay: float, post: Callable[[Event], None], *, enabled: bool
    ) -> None:
        self.clock = clock
        self.delay = delay
        self.post = post
        self.enabled = enabled
        self._ids = itertools.count(1)
        #: Per message key: the ack id its timer was armed for, and the timer.
        self._timers: dict[str, tuple[int, Timer]] = {}

    def new_id(self) -> int:
        return next(self._ids)

    def emit(self, m: ClientMessage) -> None:
        """A new emit of ``m`` that writes nothing yet: a fresh acknowledgement id."""
        m.ack_id = self.new_id()

    def follow(self, m: ClientMessage) -> None:
        """After a row moved ``m``: a timer for its latest emit while it awaits its
        acknowledgement, none otherwise."""
        if not self.enabled:
            return
        if not m.state.awaits_ack:
            self.cancel(m)
            return
        armed = self._timers.get(m.key)
        if armed is not None and armed[0] == m.ack_id and armed[1].pending:
            return
        self.cancel(m)
        event = Event(Kind.ack_due, key=m.key, attempt=m.ack_id)
        post = self.post
        timer = self.clock.call_later(self.delay, "ack_due", lambda: post(event))
        self._timers[m.key] = (m.ack_id, timer)

    def timer(self, m: ClientMessage) -> Timer | None:
        """``m``'s pending acknowledgement timer, if it has one."""
        armed = self._timers.get(m.key)
        return armed[1] if armed is not None and armed[1].pending else None

    def cancel(self, m: ClientMessage) -> None:
        armed = self._timers.pop(m.key, None)
        if armed is not None:
            armed[1].cancel()

    def expire(self, m: ClientMessage) -> None:
        """The client stops waiting for ``m``'s acknowledgements so far: a late one is
        ignored, and its timer stops."""
        m.ack_floor = m.ack_id + 1
        self.cancel(m)

    @staticmethod
    def current(m: ClientMessage, ack: object) -> bool:
        """Whether a ``done`` for ``m`` carrying ``ack`` (its echoed id, if any) is one
        the client still waits for."""
        return not isinstance(ack, int) or isinstance(ack, bool) or ack >= m.ack_floor

    def close(self) -> None:
        for _, timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
