"""Plain-text rendering shared by the command line, the diagrams and the review.

Tables come back as plain data (:class:`TextTable`: headers, rows, notes), so
the command line prints them with :func:`table` and the review turns the same
rows into its own table blocks: each table is built once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fsm.analysis.ablation import AblationRow
from fsm.analysis.report import UNSENT, StepView, detail, message_name, start_view
from fsm.analysis.scenario import ScenarioReport
from fsm.analysis.system import Message, initial_world
from fsm.analysis.trace import Trace

__all__ = [
    "LEGEND",
    "SKIPPED",
    "TRACE_HEADERS",
    "TextTable",
    "ablation_table",
    "message_cell",
    "message_names",
    "scenario_table",
    "steps_text",
    "table",
    "trace_headers",
    "trace_rows",
    "trace_table",
    "trace_words",
    "view_rows",
]

#: The columns of a trace before one column per message.
TRACE_HEADERS = ("#", "event", "detail", "connection", "socket", "app", "net")

LEGEND = (
    "held = in the pending-retry list; srv:N = copies the server applied; "
    "app fg/bg = foreground/background"
)

#: The detail of a scripted step the design makes impossible.
SKIPPED = "(not possible: skipped)"


@dataclass(frozen=True)
class TextTable:
    """A table as plain data: ``skipped`` rows are steps that did not happen."""

    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    skipped: frozenset[int] = frozenset()

    def render(self) -> str:
        """The headers and rows as :func:`table` text (the notes are not included)."""
        return table(self.headers, self.rows)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, under a rule of dashes."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def message_names(count: int) -> list[str]:
    """``m1``, ``m2``, ...: one column header per message."""
    return [message_name(i) for i in range(count)]


def message_cell(state: str, held: bool, on_server: int) -> str:
    """``sent_ws held srv:1``: the state, then the pending-list and server marks."""
    parts = [state]
    if held:
        parts.append("held")
    if on_server:
        parts.append(f"srv:{on_server}")
    return " ".join(parts)


def _message(m: Message) -> str:
    return message_cell(UNSENT if m.state is None else m.state.value, m.held, m.server)


def trace_headers(messages: int) -> list[str]:
    """:data:`TRACE_HEADERS` and one column per message."""
    return [*TRACE_HEADERS, *message_names(messages)]


def trace_rows(trace: Trace) -> list[list[str]]:
    """A typed trace as rows of :func:`trace_headers`, starting with its start world
    as step 0."""
    rows = []
    for n, w in enumerate(trace.worlds()):
        event, words = "(start)", ""
        if n:
            step = trace.steps[n - 1]
            event = step.stimulus.value
            if step.message is not None:
                event += f" {message_name(step.message)}"
            words = detail(trace.before(n - 1), step)
        rows.append(
            [
                str(n),
                event,
                words,
                w.connection.value,
                w.socket.value,
                "fg" if w.foreground else "bg",
                "up" if w.network else "down",
                *(_message(m) for m in w.messages),
            ]
        )
    return rows


def view_rows(steps: Sequence[StepView], messages: int) -> list[list[str]]:
    """The wire format's trace (``fsm check --json``) as rows of :func:`trace_headers`,
    starting with the initial world as step 0."""
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
        for n, s in enumerate([start_view(initial_world(messages)), *steps])
    ]


def trace_words(trace: Trace) -> str:
    """A trace in one line: ``connect, app_background, send m1 (ws_raised), rest_error m1``."""
    words = []
    for step in trace.steps:
        word = step.stimulus.value
        if step.message is not None:
            word += f" {message_name(step.message)}"
        if step.outcome is not None:
            word += f" ({step.outcome.value})"
        words.append(word)
    return ", ".join(words)


def trace_table(steps: Sequence[StepView], messages: int) -> str:
    return table(trace_headers(messages), view_rows(steps, messages))


def scenario_table(report: ScenarioReport, messages: int) -> TextTable:
    """A replayed scenario: one row per scripted step, then each message's fate as notes."""
    rows: list[list[str]] = []
    skipped = set()
    for n, s in enumerate(report.steps):
        label = s.stimulus + (f" {s.message}" if s.message else "")
        if s.step is None:
            skipped.add(n)
            rows.append([str(s.index), label, SKIPPED, "", "", "", *([""] * messages), s.why])
            continue
        v = s.step
        rows.append(
            [
                str(s.index),
                label,
                v.detail,
                v.connection,
                v.socket,
                "fg" if v.foreground else "bg",
                *(message_cell(m.state, m.held, m.on_server) for m in v.messages),
                s.why,
            ]
        )
    headers = ["#", "event", "detail", "connection", "socket", "app", *message_names(messages)]
    return TextTable(
        headers=[*headers, "why"],
        rows=rows,
        notes=[f"{name}: {fate}" for name, fate in report.outcome.items()],
        skipped=frozenset(skipped),
    )


def steps_text(n: int) -> str:
    """``1 step``, ``4 steps``."""
    return f"{n} step" if n == 1 else f"{n} steps"


def ablation_table(
    rows: Sequence[AblationRow], environments: Sequence[str], verb: str = "set back"
) -> TextTable:
    """Each feature ``verb`` (``set back`` or ``changed``) to the baseline's value: the
    properties it then breaks, per environment (``nothing`` when none). A feature that
    cannot be changed alone gets a numbered note, listed in ``notes``."""
    body: list[list[str]] = []
    notes: list[str] = []
    for row in rows:
        change = f"{row.value} -> {row.baseline}"
        if row.invalid is not None:
            notes.append(f"({len(notes) + 1}) {row.feature} cannot be {verb} alone: {row.invalid}")
            body.append([row.feature, change, *([f"see note ({len(notes)})"] * len(environments))])
            continue
        body.append(
            [row.feature, change, *(", ".join(row.breaks[e]) or "nothing" for e in environments)]
        )
    return TextTable(headers=["feature", verb, *environments], rows=body, notes=notes)
