"""Text from outside (a design file, a suite, a log, an adapter, a driver) made inert.

Anything ``fsm`` prints or records that it did not write itself goes through
:func:`shown` first, so a newline cannot split it into two lines and an escape
sequence cannot reach a terminal.
"""

from __future__ import annotations

__all__ = ["shown"]


def shown(text: object) -> str:
    """``str(text)`` with every non-printable character written as its escape
    (``\\n``, ``\\x1b``, ``\\u202e``...), so it is one line and inert on a terminal."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(
        ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
        for ch in s
    )
