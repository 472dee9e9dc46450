"""What the command line writes: escaped text, and a standard output that survives a
closed pipe.

Anything a user typed (a path, a key of a design file, a name) is echoed through
:func:`shown`, so a newline cannot split an error into two lines and an escape
sequence cannot reach the terminal. :class:`Output` keeps writing after the
reader of a pipe went away (``fsm check | head -1``), discarding the rest, so the
command still finishes and its exit code is the verdict's.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from fsm.model.errors import FsmError

__all__ = ["Output", "OutputFailed", "shown", "shown_lines", "write_file"]


class OutputFailed(FsmError):
    """Standard output cannot be written (a full disk, ``> /dev/full``)."""


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


def shown_lines(text: str) -> str:
    """``text``'s lines, each through :func:`shown`: the line breaks stay, nothing
    else that is not printable does."""
    return "\n".join(shown(line) for line in text.split("\n"))


class Output:
    """A text stream wrapper that turns a broken pipe into silence.

    After the first :class:`BrokenPipeError` every further write is dropped (any
    other error writing is :class:`OutputFailed`, exit code 2); when
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
                raise OutputFailed(f"cannot write the output: {exc.strerror or exc}") from None
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._close()
            except OSError as exc:
                self._close()
                raise OutputFailed(f"cannot write the output: {exc.strerror or exc}") from None

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


def write_file(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically: into a temporary file in the
    same folder, flushed to disk with ``fsync``, then renamed over ``path``. A
    reader, a crash or a full disk leaves either the previous file or the new
    one, never a mix; a file that was there keeps its permissions.

    A path that is a folder, a special file (``/dev/full``, a FIFO) or in a
    folder that does not exist, and any error writing, is
    :class:`OutputFailed` with one line naming the path (exit code 2).
    """
    given = Path(path)
    # Through a symlink, the file it points to is replaced, not the link.
    target = Path(os.path.realpath(given))
    folder = target.parent

    def fail(why: str) -> OutputFailed:
        return OutputFailed(f"cannot write {shown(given)}: {why}")

    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise fail("it is a folder; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise fail("not a regular file (fsm writes files it can replace atomically)")
    if not folder.is_dir():
        raise fail(f"no folder {shown(folder)}")
    data = text.encode("utf-8")
    try:
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if st is not None:
                os.chmod(temp, stat.S_IMODE(st.st_mode))
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(temp, 0o666 & ~umask)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    with contextlib.suppress(OSError):
        dirfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)
