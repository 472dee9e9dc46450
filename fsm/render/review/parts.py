"""Small pieces several sections of the review share: anchors, step counts, and
a trace as a table of its steps."""

from __future__ import annotations

from collections.abc import Sequence

from fsm.analysis.report import message_name
from fsm.analysis.trace import Trace
from fsm.render.review.document import Grid, Inline, Strong, Text
from fsm.render.text import trace_headers, trace_rows

__all__ = ["cex_anchor", "count_steps", "step_table", "yesno"]


def yesno(flag: bool) -> str:
    return "yes" if flag else "no"


def cex_anchor(design: str, env: str, prop: str) -> str:
    return f"cex-{design}-{env}-{prop}"


def count_steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def step_table(trace: Trace, explanation: Sequence[str] = ()) -> Grid:
    """The trace's worlds, one row each, with the rows each step fired; with an
    ``explanation``, a last column says why the shaded last state violates."""
    rows: list[list[Text]] = []
    last = len(trace)
    for n, cells in enumerate(trace_rows(trace)):
        fired = ""
        if n:
            fired = "; ".join(
                f"{'connection' if f.message is None else message_name(f.message)}: "
                f"{f.row.source.value} -{f.row.event.value}-> {f.row.target.value}"
                for f in trace.steps[n - 1].fired
            )
        event: Inline = Strong(cells[1]) if n else cells[1]
        row: list[Text] = [[cells[0]], [event], *([c] for c in cells[2:]), [fired]]
        if explanation:
            row.append(["; ".join(explanation) if n == last and n else ""])
        rows.append(row)
    headers = [*trace_headers(len(trace.start.messages)), "transitions taken"]
    if explanation:
        headers.append("why it violates")
    return Grid(headers, rows, frozenset({last}) if last else frozenset())
