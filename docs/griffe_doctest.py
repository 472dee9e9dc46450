"""A griffe extension for the API reference: doctest examples become code blocks.

The package's docstrings hold plain doctest paragraphs (``>>> ...`` and the
output under them), which Markdown would render as quoted prose. This
extension fences each such paragraph as ``pycon`` before mkdocstrings renders
it, and turns a reST ``::`` that introduces one into a plain colon. Nothing
else in a docstring changes.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_PROMPT = re.compile(r"^\s*>>>( |$)")


def fence_doctests(text: str) -> str:
    """``text`` with every doctest paragraph fenced as a ``pycon`` code block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if not _PROMPT.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        start = i
        while i < len(lines) and lines[i].strip():
            i += 1
        block = textwrap.dedent("\n".join(lines[start:i])).splitlines()
        # The paragraph that introduced an indented block with reST's "::".
        for j in range(len(out) - 1, -1, -1):
            if out[j].strip():
                if out[j].rstrip().endswith("::"):
                    out[j] = out[j].rstrip()[:-1]
                break
        out += ["```pycon", *block, "```"]
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctest paragraphs of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
