"""What the reference client reads from a design, in one place.

The client is table-driven: every decision that moves its connection or a
message is the design's row for that event
(:func:`fsm.model.behaviour.select_behaviour`), and every row's actions are carried out
with real I/O (:mod:`fsm.reference.client`). A few things the implementation
needs are not a single row; they are derived here from the same behaviour, and
nowhere else:

=====================  ===================================================  ========================
knob                   read from                                            design feature
=====================  ===================================================  ========================
``holds_first``        ``accept`` effect holds the message                  ``write_ahead``
``sends_ids``          ``server_receives`` effect dedupes by id             ``message_ids``
``pings``              the connection table has a ``ping_timeout`` row      ``heartbeat``
``rest_attempts``      the retry budget (``Behaviour.retry_budget``)        ``max_rest_attempts``
``acks``               the server acknowledges (``acknowledges``)           ``acknowledged``
``ack_timers``         an effect at the ``ack_timed_out`` hook              ``ack_timer``
``has_rest``           a message row sends over REST                        ``rest``
=====================  ===================================================  ========================

Everything else (``await_handshake``, ``send_failure_disconnects``,
``rest_fallback``, ``pending_cleared_on``, ``rest_retry_failure``,
``reconnect_on_foreground``, ``resend_on_reconnect``, ``refetch_after_reconnect``,
``rest``, ``offline_send``, ``send_deadline_check``, ``ack_fails_on_disconnect``,
``ws_attempts``) is in the rows and effects the client fires, so a mutant given as
an edited :class:`~fsm.model.behaviour.Behaviour` runs on the real client too.
"""

from __future__ import annotations

from dataclasses import dataclass

from fsm.model.behaviour import Behaviour
from fsm.model.vocabulary import Action, ConnectionEvent, Hook

__all__ = ["Policy", "Timings"]


@dataclass(frozen=True)
class Timings:
    """The client's timers, in seconds of its clock."""

    heartbeat_interval: float = 5.0
    #: The heartbeat's ack watchdog: a message still unacknowledged this long after
    #: its send declares the socket dead (designs with a heartbeat and acknowledgements).
    ack_watchdog: float = 12.0
    #: The design's acknowledgement timer (``ack_timer``, socket.io's ackTimeout).
    ack_delay: float = 0.5
    handshake_timeout: float = 10.0
    #: How long after the app is back in the foreground the receive loop reports a
    #: socket that died (iOS reports a suspended socket some time later).
    report_delay: float = 1.0
    backoff_first: float = 0.1
    backoff_max: float = 2.0
    #: Real-time bound on any single HTTP request or socket open (never reached
    #: in tests; it only guarantees that every wait ends).
    io_timeout: float = 10.0

    @property
    def heartbeat_deadline(self) -> float:
        """How long after the server was last heard a socket counts as dead: the
        heartbeat declares it so at the second unanswered tick. A send that checks the
        deadline (``heartbeat_expired``) compares the clock with it."""
        return 2 * self.heartbeat_interval


@dataclass(frozen=True)
class Policy:
    """The implementation knobs of one behaviour."""

    behaviour: Behaviour
    #: Write the message into the pending list before any send.
    holds_first: bool
    #: Send client message ids (the server dedupes by them).
    sends_ids: bool
    #: Run the heartbeat and the ack watchdog (both end in ``ping_timeout``).
    pings: bool
    rest_attempts: int
    #: The server owes an acknowledgement for each copy written over the WebSocket.
    acks: bool
    #: Each message awaiting its acknowledgement has a timer (``ack_timed_out`` effect).
    ack_timers: bool
    #: The client has a REST endpoint (without it the refetch goes over the socket).
    has_rest: bool

    @classmethod
    def of(cls, b: Behaviour) -> Policy:
        accept = b.effects.actions(Hook.accept)
        receives = b.effects.actions(Hook.server_receives)
        pings = any(row.event is ConnectionEvent.ping_timeout for row in b.connection)
        return cls(
            behaviour=b,
            holds_first=Action.hold in accept,
            sends_ids=Action.dedupe_copy in receives,
            pings=pings,
            rest_attempts=b.retry_budget or 1,
            acks=b.acknowledges,
            ack_timers=Hook.ack_timed_out in b.effects.by_hook,
            has_rest=any(row.target.rest_in_flight for row in b.message),
        )
