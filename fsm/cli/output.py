"""What the command line writes: escaped text, and a standard output that survives a
closed pipe.

Anything a user typed (a path, a key of a design file, a name) is echoed through
:func:`shown`, so a newline cannot split an error into two lines and an escape
sequence cannot reach the terminal. :class:`Output` keeps writing after the
reader of a pipe went away (``fsm check | head -1``), discarding the rest, so the
command still finishes and its exit code is the verdict's.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from fsm.model.errors import OutputError
from fsm.model.text import shown

__all__ = ["Output", "shown", "shown_lines"]


def shown_lines(text: str) -> str:
    """``text``'s lines, each through :func:`shown`: the line breaks stay, nothing
    else that is not printable does."""
    return "\n".join(shown(line) for line in text.split("\n"))


class Output:
    """A text stream wrapper that turns a broken pipe into silence.

    After the first :class:`BrokenPipeError` every further write is dropped (any
    other error writing is :class:`~fsm.model.errors.OutputError`, exit code 2); when
    the stream is the process's standard output, its descriptor is pointed at
    ``/dev/null`` so the interpreter's final flush cannot fail either.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._close()
            except OSError as exc:
                self._close()
                raise OutputError(f"cannot write the output: {exc.strerror or exc}") from None
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._close()
            except OSError as exc:
                self._close()
                raise OutputError(f"cannot write the output: {exc.strerror or exc}") from None

    def _close(self) -> None:
        self.broken = True
        silence_stdout(self.stream)


def silence_stdout(stream: TextIO | None = None) -> None:
    """Point standard output at ``/dev/null`` if ``stream`` is it (or not given)."""
    if stream is not None and stream is not sys.stdout:
        return
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)
