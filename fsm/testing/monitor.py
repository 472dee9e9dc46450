"""The runtime monitor: check what a live client does against a design's tables.

An application reports what it observes (``monitor.observe("connect")``,
``monitor.observe("ws_send_failed", "msg-42")``); the monitor moves the design's
connection machine and one machine per message id, carries out the rows'
actions on the pending-retry list, and checks every fired row against the
forbidden rules (:data:`~fsm.model.forbidden.FORBIDDEN`) in the connection
state it fired in. So it flags a rule even where the rule *is* a row of a bad
design's table (F1 is a row of ``pre-fix``), which the bare machine never
raises on. An event the table has no row for is a
:class:`~fsm.model.errors.ForbiddenTransition` too. Either is raised, or with
``raise_on_violation=False`` recorded in :attr:`Monitor.violations`, with the
last events up to it (at most ``window`` of them) and its number.

The work is bounded: an event costs the same however long the client ran, and
the monitor keeps only the last ``window`` events (:attr:`Monitor.trace`), a
count of all of them (:attr:`Monitor.events`) and one state per message id.

The tables are compiled once per design into nested dicts
(``state -> event name -> entry``), so an event costs a couple of dict lookups.

Events (one per thing the client observes):

* connection: ``connect``, ``handshake_ack``, ``handshake_fail``,
  ``app_background``, ``app_foreground``, ``network_lost``,
  ``network_restored``, ``socket_error``, ``ping_timeout``, and
  ``connection_dropped`` (optional: a client whose transport reports a dead
  socket while it believes it is connected may say so first; otherwise the
  monitor fires that row itself before ``ping_timeout`` and ``ws_send_failed``);
* per message id: ``send`` (the user pressed send), ``ws_send_ok``,
  ``ws_send_failed`` (also the connection's ``send_failed``), ``send_rest``,
  ``buffer``, ``queue`` or ``refuse`` (what a send did while not connected),
  ``deadline_buffer`` (a send found the heartbeat deadline passed: also the
  connection's ``heartbeat_expired``), ``done``, ``rest_ok``, ``rest_failed``
  (another attempt follows), ``retries_exhausted`` (no attempt left),
  ``recovered`` (a refetch showed the server has it), ``ack_retry`` and
  ``ack_failed`` (an acknowledgement that will not come, with and without an
  attempt left).

``retry_rest``, ``resend_ws`` and ``flush`` are not reported: they follow from
the rows' actions (the REST retry, the resend of the pending-retry list or of a
message whose attempt failed, the offline buffer written on a new connection).
Nor is what writing a message again does after ``ack_retry``: the monitor
follows the model there, knowing from ``app_background`` whether the socket was
suspended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from fsm.analysis.report import message_name
from fsm.analysis.system import Stimulus, Transition, disconnects
from fsm.model.behaviour import Behaviour, select_behaviour
from fsm.model.design import Design
from fsm.model.errors import (
    DefinitionError,
    ForbiddenTransition,
    InvalidArgument,
    MonitorError,
    UnknownName,
)
from fsm.model.forbidden import FORBIDDEN, ForbiddenRule
from fsm.model.tables import Row
from fsm.model.vocabulary import (
    Action,
    ConnectionEvent,
    ConnectionState,
    Hook,
    MessageEvent,
    MessageState,
    Socket,
    interpret,
)

__all__ = [
    "CONNECTION_EVENTS",
    "MESSAGE_EVENTS",
    "Monitor",
    "MonitorError",
    "Seen",
    "events_of",
]

#: Events about the connection an application reports.
CONNECTION_EVENTS: tuple[str, ...] = (
    "connect",
    "handshake_ack",
    "handshake_fail",
    "app_background",
    "app_foreground",
    "network_lost",
    "network_restored",
    "socket_error",
    "ping_timeout",
    ConnectionEvent.connection_dropped.value,
)
#: Events about one message an application reports (with the message's id).
MESSAGE_EVENTS: tuple[str, ...] = (
    "send",
    "ws_send_ok",
    "ws_send_failed",
    "send_rest",
    "done",
    "rest_ok",
    "rest_failed",
    "retries_exhausted",
    "recovered",
    MessageEvent.buffer.value,
    MessageEvent.queue.value,
    MessageEvent.refuse.value,
    MessageEvent.deadline_buffer.value,
    MessageEvent.ack_retry.value,
    MessageEvent.ack_failed.value,
)


_CONNECTION_EVENT = {e.value: e for e in ConnectionEvent}
_MESSAGE_EVENT = {e.value: e for e in MessageEvent}


class Seen(NamedTuple):
    """One event the monitor was told about."""

    event: str
    message: str | None


#: Events whose handling does more than fire their own row.
_COMPOSITE = frozenset(
    {
        "handshake_ack",
        "ping_timeout",
        "ws_send_failed",
        "rest_ok",
        "deadline_buffer",
        "app_background",
    }
)


@dataclass(slots=True)
class _Entry:
    target: Any
    actions: tuple[Action, ...]
    #: Rules the row breaks whatever the connection state.
    rules: tuple[ForbiddenRule, ...]
    #: Rules the row breaks only in some connection states.
    scoped: tuple[ForbiddenRule, ...]
    row: Row[Any, Any]
    #: Nothing but the state changes: the fast path takes it.
    plain: bool
    #: The compiled rows of the target state (connection rows only).
    next: dict[str, _Entry] | None = None


def _compile(
    table: Any, machine: str, on_disconnect: bool, ordered: bool = False
) -> dict[Any, dict[str, _Entry]]:
    """``table``'s rows as entries; ``on_disconnect``: the design has an effect at the
    client's disconnect, which a row that disconnects runs (it is not plain);
    ``ordered``: an ordered queue may write after any event (no row is plain)."""
    out: dict[Any, dict[str, _Entry]] = {state: {} for state in table.states}
    for row in table:
        rules = [r for r in FORBIDDEN if r.machine == machine and r.matches_row(row)]
        event = row.event.value
        # An action on the socket alone is the world's, not the monitor's.
        actions = tuple(a for a in row.actions if not a.meaning.footprint.socket_only)
        out[row.source][event] = _Entry(
            row.target,
            actions,
            tuple(r for r in rules if r.while_connection is None),
            tuple(r for r in rules if r.while_connection is not None),
            row,
            plain=not actions
            and not ordered
            and not rules
            and event not in _COMPOSITE
            and not (on_disconnect and disconnects(row)),
        )
    for entries in out.values():
        for entry in entries.values():
            entry.next = out[entry.target]
    return out


class Monitor:
    """Watches a live client and flags every transition the design forbids.

    >>> from fsm.model.design import get_design
    >>> monitor = Monitor(get_design("pre-fix"), raise_on_violation=False)
    >>> for event, message in [("connect", None), ("app_background", None),
    ...                        ("app_foreground", None), ("send", "a"),
    ...                        ("ws_send_failed", "a")]:
    ...     monitor.observe(event, message)
    >>> [v.rule for v in monitor.violations]
    ['F2', 'F1']
    """

    #: How many of the last events a monitor keeps, unless told otherwise.
    WINDOW = 100

    def __init__(
        self,
        design: Design | Behaviour,
        *,
        raise_on_violation: bool = True,
        window: int = WINDOW,
    ) -> None:
        if not isinstance(design, (Design, Behaviour)):
            raise InvalidArgument(
                f"Monitor needs a Design or a Behaviour, not {type(design).__name__} "
                "(get_design('hardened') gives one)"
            )
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise InvalidArgument(f"Monitor: window must be a positive int, not {window!r}")
        b = design if isinstance(design, Behaviour) else select_behaviour(design)
        self.behaviour = b
        self.window = window
        self._trim_at = 2 * window
        self.raise_on_violation = raise_on_violation
        on_disconnect = b.acts_on_disconnect
        ordered = b.one_in_flight
        self._conn = _compile(b.connection, "connection", on_disconnect, ordered)
        self._msg = _compile(b.message, "message", on_disconnect, ordered)
        self._at_step_end = b.effects.actions(Hook.step_end)
        self._on_accept = b.effects.actions(Hook.accept)
        self._pending = b.message.initial
        #: For the fast path of ``send``: whether accepting holds the message, or
        #: ``None`` when the accept effect does something else.
        self._accept: bool | None = (
            True if self._on_accept == (Action.hold,) else (False if not self._on_accept else None)
        )
        if ordered:
            self._accept = None  # holding a message puts it at the end of the queue
        self.connection: ConnectionState = b.connection.initial
        self._here = self._conn[self.connection]
        #: Each message id's state, in the order they were sent.
        self.messages: dict[str, MessageState] = {}
        #: The message ids in the pending-retry list.
        self.held: set[str] = set()
        #: In an ordered queue, the held message ids, oldest first.
        self.queue: list[str] = []
        #: Whether the client's socket was suspended with the app (it went to the
        #: background while a socket was open or opening, and none was opened or
        #: closed since): what writing a message again does depends on it.
        self.suspended = False
        #: The last events taken (at least ``window`` of them, at most twice as
        #: many), as ``(event, message id or None)``.
        self.trace: list[tuple[str, str | None]] = []
        #: How many events were taken in all.
        self.events = 0
        self.violations: list[ForbiddenTransition] = []

    # -- the one entry point ----------------------------------------------------------
    def observe(self, event: str, message: str | None = None) -> None:
        """Take one observed event; raise (or record) a :class:`ForbiddenTransition`
        when it breaks a rule or has no row; :class:`MonitorError` for an unknown
        event or message id (the state is then unchanged)."""
        if len(self.trace) >= self._trim_at:
            del self.trace[: -self.window]
        # The fast path: a row that only changes its machine's state.
        if message is None:
            try:
                entry = self._here.get(event)
            except TypeError:  # unhashable
                raise InvalidArgument(f"an event is a str, not {type(event).__name__}") from None
            if entry is not None and entry.plain:
                self.trace.append((event, None))
                self.events += 1
                self.connection = entry.target
                self._here = entry.next  # type: ignore[assignment]
                return
            self._guarded(self._connection_event, event, entry)
            return
        try:
            state = self.messages.get(message)
            entry = None if state is None else self._msg[state].get(event)
        except TypeError:  # unhashable
            self._guarded(self._message_event, event, message)
            return
        if state is not None:
            if entry is not None and entry.plain:
                self.trace.append((event, message))
                self.events += 1
                self.messages[message] = entry.target
                return
        elif event == "send" and self._accept is not None and type(message) is str:
            self.trace.append((event, message))
            self.events += 1
            self.messages[message] = self._pending
            if self._accept:
                self.held.add(message)
            return
        self._guarded(self._message_event, event, message)

    def _guarded(self, handle: Any, *args: Any) -> None:
        """Run ``handle`` and count the event; if it raises a violation or a
        :class:`MonitorError`, put every part of the state back (the recorded
        violations too), and count nothing.

        Without ``raise_on_violation`` nothing is saved: a violation is then
        recorded, not raised, and a :class:`MonitorError` is raised before any
        change."""
        if not self.raise_on_violation:
            handle(*args)
            self.events += 1
            return
        saved = (
            self.connection,
            dict(self.messages),
            set(self.held),
            list(self.queue),
            self.suspended,
            len(self.trace),
            len(self.violations),
        )
        try:
            handle(*args)
        except (ForbiddenTransition, MonitorError, UnknownName):
            (
                self.connection,
                self.messages,
                self.held,
                self.queue,
                self.suspended,
                length,
                found,
            ) = saved
            self._here = self._conn[self.connection]
            del self.trace[length:]
            del self.violations[found:]
            raise
        self.events += 1

    # -- connection events ------------------------------------------------------------
    def _connection_event(self, event: str, entry: _Entry | None) -> None:
        if not isinstance(event, str):
            raise InvalidArgument(f"an event is a str, not {type(event).__name__}")
        if event not in CONNECTION_EVENTS:
            if event in MESSAGE_EVENTS:
                raise MonitorError(f"event {event!r} needs a message id")
            raise UnknownName("event", event, [*CONNECTION_EVENTS, *MESSAGE_EVENTS])
        self.trace.append((event, None))
        if event == "app_background" and self.connection in _SOCKET_LIVE:
            self.suspended = True
        if event == "ping_timeout" and self._silently_dropped():
            entry = self._here.get(event)
        if entry is None:
            self._forbidden("connection", self.connection, _CONNECTION_EVENT[event])
            return
        self._fire_connection(entry)
        if event == "handshake_ack":
            for action in self.behaviour.effects.actions(Hook.connection_acknowledged):
                self._run(action, None)
        self._step_end()

    def _step_end(self) -> None:
        """What runs at the end of a step (an ordered queue writes its oldest message):
        after every event but ``send``, whose answer the client reports next."""
        for action in self._at_step_end:
            self._run(action, None)

    def _silently_dropped(self) -> bool:
        """A send raised or a heartbeat went unanswered while the client believed it
        was connected: the connection went half-open first, unreported (the
        ``connection_dropped`` row, which no client can observe). Fire it."""
        if self.connection is not ConnectionState.connected:
            return False
        entry = self._here.get(ConnectionEvent.connection_dropped.value)
        if entry is None:
            return False
        self._fire_connection(entry)
        return True

    def _fire_connection(self, entry: _Entry) -> None:
        before = self.connection
        self.connection = entry.target
        self._here = self._conn[entry.target]
        for rule in entry.rules:
            self._broken(rule, "connection", before, entry.row.event)
        if any(a.meaning.socket is not None for a in entry.row.actions):
            self.suspended = False  # a socket was opened or closed
        for action in entry.actions:
            self._run(action, None)
        if before.reports_connected and not entry.target.reports_connected:
            for action in self.behaviour.effects.actions(Hook.disconnected):
                self._run(action, None)

    def _fire_connection_event(self, event: ConnectionEvent) -> None:
        entry = self._here.get(event.value)
        if entry is None:
            self._forbidden("connection", self.connection, event)
        else:
            self._fire_connection(entry)

    # -- message events ---------------------------------------------------------------
    def _message_event(self, event: str, message: str) -> None:
        if not isinstance(event, str):
            raise InvalidArgument(f"an event is a str, not {type(event).__name__}")
        if not isinstance(message, str):
            raise InvalidArgument(f"a message id is a str or None, not {type(message).__name__}")
        if event == "send":
            if message in self.messages:
                raise MonitorError(f"message id {message!r} was already sent")
            self.trace.append((event, message))
            self.messages[message] = self.behaviour.message.initial
            for action in self._on_accept:
                self._run(action, message)
            return
        if event not in MESSAGE_EVENTS:
            if event in CONNECTION_EVENTS:
                raise MonitorError(f"event {event!r} takes no message id")
            raise UnknownName("event", event, [*CONNECTION_EVENTS, *MESSAGE_EVENTS])
        state = self.messages.get(message)
        if state is None:
            raise MonitorError(f"unknown message id {message!r}: report its 'send' first")
        self.trace.append((event, message))
        entry = self._msg[state].get(event)
        if entry is None:
            self._forbidden(f"message {message}", state, _MESSAGE_EVENT[event])
            return
        if event == "ws_send_failed":
            self._silently_dropped()
        self._fire_message(message, entry)
        if event == "ws_send_failed":
            self._fire_connection_event(ConnectionEvent.send_failed)
        elif event == "deadline_buffer":
            self._fire_connection_event(ConnectionEvent.heartbeat_expired)
        elif event == "rest_ok":
            for action in self.behaviour.effects.actions(Hook.rest_succeeded):
                self._run(action, message)
        self._step_end()

    def _fire_message(self, message: str, entry: _Entry) -> None:
        before = self.messages[message]
        self.messages[message] = entry.target
        for rule in entry.rules:
            self._broken(rule, f"message {message}", before, entry.row.event)
        for rule in entry.scoped:
            assert rule.while_connection is not None
            if self.connection in rule.while_connection:
                self._broken(rule, f"message {message}", before, entry.row.event)
        for action in entry.actions:
            self._run(action, message)

    def _run(self, action: Action, message: str | None) -> None:
        """Carry out what ``action`` means for the client's own state (the world's
        part, such as the socket and the server, is not the monitor's to know)."""
        interpret(action, self, message)

    # -- the effects (fsm.model.vocabulary.ActionInterpreter) ---------------------------
    def set_socket(self, action: Action, to: Socket, at: str | None) -> None:
        """The socket is the world's."""

    def set_held(self, action: Action, value: bool, at: str | None) -> None:
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        if value:
            if at not in self.held:
                self.queue.append(at)
            self.held.add(at)
        else:
            self.held.discard(at)
            if at in self.queue:
                self.queue.remove(at)

    def set_every_held(self, action: Action, value: bool, at: str | None) -> None:
        self.held = set(self.messages) if value else set()
        self.queue = list(self.messages) if value else []

    def on_oldest(self, action: Action, event: MessageEvent, over_ws: bool, at: str | None) -> None:
        if self.queue:
            entry = self._msg[self.messages[self.queue[0]]].get(event.value)
            if entry is not None:
                self._fire_message(self.queue[0], entry)

    def drain_queue(self, action: Action, at: str | None) -> None:
        """The oldest queued message is written if it waits and the client reports
        connected (a socket still opening aside, which the monitor cannot tell)."""
        if self.queue and self.messages[self.queue[0]] is MessageState.pending:
            self.write_now(action, self.queue[0])

    def on_each_held(
        self, action: Action, event: MessageEvent, over_ws: bool, at: str | None
    ) -> None:
        for held in [m for m in self.messages if m in self.held]:
            entry = self._msg[self.messages[held]].get(event.value)
            if entry is not None:
                self._fire_message(held, entry)

    def server_rule(self, action: Action, how: Literal["count", "once"], at: str | None) -> None:
        """How the server counts copies is the server's."""

    def count_attempt(self, action: Action, at: str | None) -> None:
        """The client reports ``rest_failed`` or ``retries_exhausted`` itself."""

    def on_each_on_server(self, action: Action, event: MessageEvent, at: str | None) -> None:
        """The client reports each message it recovered (``recovered``) itself."""

    def on_each(self, action: Action, event: MessageEvent, over_ws: bool, at: str | None) -> None:
        for message in list(self.messages):
            entry = self._msg[self.messages[message]].get(event.value)
            if entry is not None:
                self._fire_message(message, entry)

    def write_now(self, action: Action, at: str | None) -> None:
        """What writing message ``at`` again does, as the model has it (a socket
        still opening, which the monitor cannot tell from an open one, aside)."""
        if at is None:
            raise DefinitionError(f"action {action.value!r} needs a message")
        if not self.connection.reports_connected:
            return
        state = self.messages[at]
        expired = self._here.get(ConnectionEvent.heartbeat_expired.value)
        event = MessageEvent.resend_ws
        if self.suspended and expired is not None:
            event = MessageEvent.deadline_buffer
        entry = self._msg[state].get(event.value)
        if entry is None:
            self._forbidden(f"message {at}", state, event)
            return
        self._fire_message(at, entry)
        if event is MessageEvent.deadline_buffer and expired is not None:
            self._fire_connection(expired)

    def fail_ws_attempt(self, action: Action, at: str | None) -> None:
        """The client reports ``ack_retry`` or ``ack_failed`` itself."""

    def fail_each_unacked(self, action: Action, at: str | None) -> None:
        """The client reports ``ack_retry`` or ``ack_failed`` for each message itself."""

    # -- violations -------------------------------------------------------------------
    def _last(self) -> tuple[tuple[str, str | None], ...]:
        return tuple(self.trace[-self.window :])

    def _forbidden(self, machine: str, state: Any, event: Any) -> None:
        self._flag(
            ForbiddenTransition(
                machine, state, event, trace=self._last(), event_number=self.events + 1
            )
        )

    def _broken(self, rule: ForbiddenRule, machine: str, state: Any, event: Any) -> None:
        self._flag(
            ForbiddenTransition(
                machine,
                state,
                event,
                rule=rule.id,
                reason=rule.reason,
                trace=self._last(),
                event_number=self.events + 1,
            )
        )

    def _flag(self, violation: ForbiddenTransition) -> None:
        self.violations.append(violation)
        if self.raise_on_violation:
            raise violation


#: Connection states with a socket open or opening under them.
_SOCKET_LIVE = frozenset(
    {ConnectionState.handshaking, ConnectionState.connected, ConnectionState.suspended_stale}
)

#: Rows a client does not report: they follow from another row's actions or event.
_IMPLIED = frozenset(
    {
        "send_failed",
        "retry_rest",
        "resend_ws",
        "connection_dropped",
        "flush",
        ConnectionEvent.heartbeat_expired.value,
    }
)


def events_of(steps: list[Transition]) -> list[Seen]:
    """What a client running these composed-system steps would report to a monitor:
    ``send`` for each new message, then every fired row's event the client sees
    (messages named ``m1``, ``m2``, ... in the order they were sent)."""
    seen: list[Seen] = []
    for step in steps:
        if step.stimulus is Stimulus.send:
            assert step.message is not None
            seen.append(Seen("send", message_name(step.message)))
        for k, fired in enumerate(step.fired):
            event = fired.row.event.value
            if event in _IMPLIED:
                continue
            # A send reports where the deadline put its message; a message written
            # again after a failed attempt follows from ``ack_retry``.
            if event == MessageEvent.deadline_buffer.value and (
                step.stimulus is not Stimulus.send or k
            ):
                continue
            name = None if fired.message is None else message_name(fired.message)
            seen.append(Seen(event, name))
    return seen
