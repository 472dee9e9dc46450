"""Graphviz's ``dot``: every diagram's ``.dot`` source rendered to SVG and PNG.

:func:`render` runs one ``dot`` per file and format in a small thread pool; each
runs in a session of its own and is stopped (with its whole process group) when
the render fails or is interrupted. Without ``dot`` on PATH only the sources
exist, and the user is told how to install Graphviz.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from fsm.model.errors import RenderError
from fsm.render.catalog import Diagram

__all__ = ["DOT_TIMEOUT", "INSTALL_HINT", "PICTURES", "render", "svg_of"]

#: The pictures drawn from each ``.dot`` source, by suffix.
PICTURES = {".svg": ".dot", ".png": ".dot"}

#: What to tell a user without Graphviz.
INSTALL_HINT = (
    "Graphviz's dot is not on PATH, so only .dot and .mmd files were written; "
    "install Graphviz for SVG and PNG (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz)"
)


def _dot_binary() -> str | None:
    return shutil.which("dot")


#: Seconds one ``dot`` run may take before it is stopped and the render fails.
DOT_TIMEOUT = 120.0


class _Children:
    """The ``dot`` processes running for one :func:`render`, so that all of them can
    be stopped at once.

    Each runs in a session of its own: a terminal's Ctrl-C reaches only ``fsm``
    (``dot`` catches SIGINT and may block in its handler), and ``fsm`` then kills
    each child's whole process group.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen[bytes]] = set()
        self.stopped = False

    def run(self, argv: list[str]) -> tuple[int, str]:
        """Run ``argv`` to the end; its exit code and standard error."""
        with self.lock:
            if self.stopped:
                return -signal.SIGKILL, "stopped"
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            self.running.add(proc)
        try:
            try:
                _, err = proc.communicate(timeout=DOT_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill(proc)
                proc.communicate()
                return proc.returncode, f"no result after {DOT_TIMEOUT:.0f} seconds"
        finally:
            with self.lock:
                self.running.discard(proc)
        return proc.returncode, err.decode("utf-8", "replace")

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Start nothing more and kill every child still running."""
        with self.lock:
            self.stopped = True
            for proc in self.running:
                self.kill(proc)


def render(diagrams: Sequence[Diagram], root: Path, err: TextIO | None = None) -> bool:
    """Render each diagram's ``.dot`` under ``root`` to SVG and PNG with Graphviz.

    Without ``dot`` on PATH, say how to install it on ``err`` and return False.
    On any exception (a failed ``dot``, Ctrl-C) every ``dot`` still running is
    killed before the exception propagates, within a fraction of a second.
    """
    dot = _dot_binary()
    if dot is None:
        print(f"fsm: {INSTALL_HINT}", file=sys.stderr if err is None else err)
        return False
    jobs = [
        (root / f"{d.path}.dot", fmt, extra)
        for d in diagrams
        for fmt, extra in (("svg", ()), ("png", ("-Gdpi=110",)))
    ]
    children = _Children()

    def one(job: tuple[Path, str, tuple[str, ...]]) -> None:
        src, fmt, extra = job
        target = src.with_suffix(f".{fmt}")
        code, stderr = children.run([dot, f"-T{fmt}", *extra, "-o", str(target), str(src)])
        if code != 0 and not children.stopped:
            message = " ".join(stderr.split()) or f"exit code {code}"
            raise RenderError(f"dot failed on {src.relative_to(root)}: {message}")

    pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2))
    try:
        futures: list[Future[None]] = [pool.submit(one, job) for job in jobs]
        for future in futures:
            future.result()
    except BaseException:
        children.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return True


def svg_of(root: Path, diagram: Diagram) -> str | None:
    """The rendered SVG of ``diagram`` under ``root``, if there is one."""
    path = root / f"{diagram.path}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
