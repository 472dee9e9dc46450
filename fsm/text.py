"""Plain-text rendering shared by the command line, the diagrams and the review."""

from __future__ import annotations

from collections.abc import Sequence

from fsm.checker import StepView, start_view

__all__ = ["LEGEND", "TRACE_HEADERS", "message_cell", "table", "trace_rows", "trace_table"]

#: The columns of a trace before one column per message.
TRACE_HEADERS = ("#", "event", "detail", "connection", "socket", "app", "net")

LEGEND = (
    "held = in the pending-retry list; srv:N = copies the server applied; "
    "app fg/bg = foreground/background"
)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, under a rule of dashes."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def message_cell(state: str, held: bool, on_server: int) -> str:
    """``sent_ws held srv:1``: the state, then the pending-list and server marks."""
    parts = [state]
    if held:
        parts.append("held")
    if on_server:
        parts.append(f"srv:{on_server}")
    return " ".join(parts)


def trace_rows(steps: Sequence[StepView], messages: int) -> list[list[str]]:
    """A trace as rows of :data:`TRACE_HEADERS` plus one cell per message, starting
    with the initial world as step 0."""
    return [
        [
            str(n),
            s.event + (f" {s.message}" if s.message else ""),
            s.detail,
            s.connection,
            s.socket,
            "fg" if s.foreground else "bg",
            "up" if s.network else "down",
            *(message_cell(m.state, m.held, m.on_server) for m in s.messages),
        ]
        for n, s in enumerate([start_view(messages), *steps])
    ]


def trace_table(steps: Sequence[StepView], messages: int) -> str:
    names = [f"m{i + 1}" for i in range(messages)]
    return table([*TRACE_HEADERS, *names], trace_rows(steps, messages))
