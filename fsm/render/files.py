"""Writing diagrams: the staging directory, Graphviz's render, the ``--check`` comparison.

:class:`Staging` writes everything into a temporary directory beside the output
and swaps the files in one by one (atomically, the report pages last), so an
interrupted run leaves the previous files intact. :func:`render` runs Graphviz's
``dot`` on every staged ``.dot`` file; without ``dot`` only the sources are
written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TextIO

from fsm.model.errors import FsmError
from fsm.render.catalog import Diagram

__all__ = [
    "INSTALL_HINT",
    "SOURCE_SUFFIXES",
    "OutputError",
    "RenderError",
    "Staging",
    "compare",
    "render",
    "svg_of",
]

#: What to tell a user without Graphviz.
INSTALL_HINT = (
    "Graphviz's dot is not on PATH, so only .dot and .mmd files were written; "
    "install Graphviz for SVG and PNG (Debian/Ubuntu: apt-get install graphviz; "
    "macOS: brew install graphviz)"
)


# -- comparing and writing ---------------------------------------------------------------
SOURCE_SUFFIXES = (".dot", ".mmd")


def compare(diagrams: Sequence[Diagram], out: Path, dirs: Sequence[str] = ()) -> list[str]:
    """Problems of the ``.dot``/``.mmd`` files in ``out``: ``stale: ...``, ``missing: ...``,
    and ``obsolete: ...`` for sources in ``dirs`` that nothing generates any more."""
    expected: dict[str, str] = {}
    for d in diagrams:
        expected.update(d.sources())
    problems: list[str] = []
    for rel, text in sorted(expected.items()):
        path = out / rel
        try:
            current = path.read_bytes()
        except OSError:
            problems.append(f"missing: {path}")
            continue
        if current != text.encode("utf-8"):
            problems.append(f"stale: {path}")
    for sub in dirs:
        for path in sorted((out / sub).glob("*")):
            rel = f"{sub}/{path.name}"
            if path.suffix in SOURCE_SUFFIXES and rel not in expected:
                problems.append(f"obsolete: {path}")
    return problems


class RenderError(FsmError):
    """Graphviz's dot refused a generated diagram."""


class OutputError(FsmError):
    """The output directory cannot be written."""


def _dot_binary() -> str | None:
    return shutil.which("dot")


def render(diagrams: Sequence[Diagram], root: Path, err: TextIO | None = None) -> bool:
    """Render each diagram's ``.dot`` under ``root`` to SVG and PNG with Graphviz.

    Without ``dot`` on PATH, say how to install it on ``err`` and return False.
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

    def one(job: tuple[Path, str, tuple[str, ...]]) -> None:
        src, fmt, extra = job
        target = src.with_suffix(f".{fmt}")
        proc = subprocess.run(
            [dot, f"-T{fmt}", *extra, "-o", str(target), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            message = " ".join(proc.stderr.split()) or f"exit code {proc.returncode}"
            raise RenderError(f"dot failed on {src.relative_to(root)}: {message}")

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        list(pool.map(one, jobs))
    return True


class Staging:
    """A temporary directory beside ``out``; :meth:`commit` moves its files into ``out``.

    Files are swapped in one by one with :func:`os.replace` (atomic on one file
    system), the report pages last, so an interrupted run leaves the previous
    files intact. On leaving the ``with`` block the temporary directory is removed.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = Path()

    def __enter__(self) -> Staging:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            parent = self.out.resolve().parent
            self.root = Path(tempfile.mkdtemp(prefix=f".{self.out.resolve().name}-", dir=parent))
        except OSError as exc:
            raise OutputError(f"cannot write to {self.out}: {exc.strerror or exc}") from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def write(self, rel: str, data: str | bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def write_sources(self, diagrams: Sequence[Diagram]) -> None:
        for d in diagrams:
            for rel, text in d.sources().items():
                self.write(rel, text)

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def commit(self, prune: Sequence[str] = (), last: Sequence[str] = ()) -> list[str]:
        """Move every staged file into ``out`` (``last`` ones at the end), then delete
        generated files in the ``prune`` sub-directories that were not staged."""
        files = self.files()
        order = [f for f in files if f not in last] + [f for f in last if f in files]
        for rel in order:
            target = self.out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / rel, target)
        kinds = {Path(f).suffix for f in files}
        staged = set(files)
        for sub in prune:
            for path in sorted((self.out / sub).glob("*")):
                rel = f"{sub}/{path.name}"
                if path.is_file() and path.suffix in kinds and rel not in staged:
                    path.unlink()
        return order


def svg_of(root: Path, diagram: Diagram) -> str | None:
    """The rendered SVG of ``diagram`` under ``root``, if there is one."""
    path = root / f"{diagram.path}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
