"""Transitions that must never exist, each with the evidence it comes from.

The checker looks for them in a design's table (statically: which rows match)
and in its reachable behaviour (dynamically: the shortest trace that fires one).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

from fsm.model.errors import UnknownName
from fsm.model.tables import Row
from fsm.model.vocabulary import Action, ConnectionState, MessageEvent, MessageState

__all__ = ["FORBIDDEN", "ForbiddenRule", "get_rule"]

C = ConnectionState
M, ME = MessageState, MessageEvent
A = Action


@dataclass(frozen=True)
class ForbiddenRule:
    """A transition no design may take.

    It matches a row of ``machine`` by sources, event and targets (``None``
    matches any), optionally only when the row carries ``action`` and, for
    a message row, only while the connection is in one of ``while_connection``.
    """

    id: str
    machine: Literal["connection", "message"]
    reason: str
    evidence: str
    sources: frozenset[Enum] | None
    event: Enum | None
    targets: frozenset[Enum] | None = None
    action: Action | None = None
    while_connection: frozenset[ConnectionState] | None = None

    def matches_row(self, row: Row[Any, Any]) -> bool:
        return (
            (self.sources is None or row.source in self.sources)
            and (self.event is None or row.event is self.event)
            and (self.targets is None or row.target in self.targets)
            and (self.action is None or self.action in row.actions)
        )

    @property
    def scope(self) -> str:
        """The connection states the rule is limited to, or '' when it always applies."""
        if self.while_connection is None:
            return ""
        return ", ".join(sorted(s.value for s in self.while_connection))

    def matches_step(self, row: Row[Any, Any], connection: ConnectionState) -> bool:
        return self.matches_row(row) and (
            self.while_connection is None or connection in self.while_connection
        )


FORBIDDEN: tuple[ForbiddenRule, ...] = (
    ForbiddenRule(
        id="F1",
        machine="message",
        reason="a send into a stale socket whose error is swallowed leaves the message "
        "sent_ws with no path to confirmation",
        evidence="seed, Root Cause 4-7; Starscream NativeEngine drops the send error",
        sources=frozenset({M.pending}),
        event=ME.ws_send_failed,
        targets=frozenset({M.sent_ws}),
        while_connection=frozenset({C.suspended_stale}),
    ),
    ForbiddenRule(
        id="F2",
        machine="connection",
        reason="the client reports connected before the server acknowledged the handshake",
        evidence="seed, Key Insight (isConnected = true on resume()); Ably RTN6",
        sources=None,
        event=None,
        targets=frozenset({C.connected}),
        action=A.open_socket,
    ),
    ForbiddenRule(
        id="F3",
        machine="message",
        reason="the pending-retry entry is cleared when the WebSocket send returns, "
        "not when the server's done/toolUse arrives",
        evidence="seed, ChatViewModel changes (cleared only after done/toolUse); Ably RTN7",
        sources=frozenset({M.pending}),
        event=ME.ws_send_ok,
        action=A.release,
    ),
    ForbiddenRule(
        id="F4",
        machine="message",
        reason="a failed REST retry is swallowed and the message is left looking sent, "
        "with nothing that will send it again",
        evidence="seed, ChatViewModel.setupSendFailedHandler: each REST retry is awaited "
        "with try?, which discards its error, and then pendingRetryMessages = nil",
        sources=frozenset({M.retrying_rest}),
        event=ME.retries_exhausted,
        targets=frozenset({M.sent_ws}),
    ),
)


def get_rule(rule_id: str) -> ForbiddenRule:
    """The rule with id ``rule_id``; :class:`UnknownName` naming the known ids if none."""
    for rule in FORBIDDEN:
        if rule.id == rule_id:
            return rule
    raise UnknownName("forbidden rule", rule_id, [r.id for r in FORBIDDEN])
