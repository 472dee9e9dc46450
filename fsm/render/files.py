"""Writing diagrams: the staging directory, Graphviz's render, the ``--check`` comparison.

:class:`Staging` writes a complete new output tree into a staging folder and
commits it with one atomic exchange of two folders, so a reader sees either the
previous review or the new one, never a mix; :func:`render` runs Graphviz's
``dot`` on every staged ``.dot`` file (without ``dot`` only the sources are
written) and stops every ``dot`` it started when interrupted.

Where the staging folder goes (it must be on the output's file system, or the
final rename fails with ``EXDEV``):

* beside the output, named ``.<out>.fsm-staging-<pid>-<random>``, when the output
  folder is fsm's: it does not exist yet, is empty, or holds the marker file
  :data:`MARKER` that every such commit writes. The new tree gets a copy (hard
  links where possible) of every file of the old tree that the run does not
  regenerate or prune, and is then exchanged with the old tree in one
  ``renameat2(RENAME_EXCHANGE)`` (two renames where the system lacks it); the
  output stays a real directory at the same path.
* inside the output, named ``.fsm-staging-<pid>-<random>``, when the output is a
  mount point (its parent is another file system) or a folder with other
  content and no marker (``--out .``): fsm never swaps a folder it does not own.
  Each top-level folder of diagrams is then completed and exchanged atomically
  on its own, the review pages last.

Staging folders left by a process that no longer runs (SIGKILL, power loss) are
removed by the next run on the same output.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TextIO

from fsm.model.errors import FsmError
from fsm.render.catalog import Diagram

__all__ = [
    "DOT_TIMEOUT",
    "INSTALL_HINT",
    "MARKER",
    "SOURCE_SUFFIXES",
    "STAGING_TAG",
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


# -- the staging folder and the commit ------------------------------------------------------
#: The file that marks an output folder as fsm's, to be replaced as a whole.
MARKER = ".fsm-output"
_MARKER_TEXT = (
    "This folder is written by fsm (fsm review, fsm diagrams). Each run builds a new\n"
    "copy beside it and exchanges the two folders in one step; files you add here\n"
    "are carried over. Delete this file and fsm replaces only its own sub-folders.\n"
)
#: Part of every staging folder's name, so that stale ones can be recognised.
STAGING_TAG = "fsm-staging"
_RETIRED = "-old"


def _inside_prefix() -> str:
    return f".{STAGING_TAG}-"


def _beside_prefix(target: Path) -> str:
    return f".{target.name}.{STAGING_TAG}-"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def clean_stale(target: Path) -> list[Path]:
    """Remove the staging folders of ``target`` (beside and inside it) whose process
    no longer runs; the paths removed.

    A swap interrupted between its two renames (only where ``renameat2`` is
    missing) left the old tree in a ``-old`` folder and no ``target``: it is put back.
    """
    removed: list[Path] = []
    for where, prefix in ((target.parent, _beside_prefix(target)), (target, _inside_prefix())):
        try:
            entries = list(os.scandir(where))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
                continue
            pid = entry.name[len(prefix) :].split("-", 1)[0]
            if not pid.isdigit() or _alive(int(pid)):
                continue
            path = Path(entry.path)
            retired = where == target.parent and path.name.endswith(_RETIRED)
            if retired and not os.path.lexists(target):
                os.rename(path, target)
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _owned(target: Path) -> bool:
    """Whether ``target`` is fsm's to replace as a whole: missing, empty or marked."""
    if not os.path.lexists(target):
        return True
    if (target / MARKER).is_file():
        return True
    with os.scandir(target) as entries:
        return next(entries, None) is None


def _same_file_system(target: Path) -> bool:
    """Whether ``target`` can be renamed within its parent (not a mount point)."""
    if not os.path.lexists(target):
        return True
    return target != target.parent and os.stat(target).st_dev == os.stat(target.parent).st_dev


def _default_dir_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o777 & ~umask


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _load_renameat2() -> Callable[[int, bytes, int, bytes, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_renameat2 = _load_renameat2()


def exchange(a: Path, b: Path) -> None:
    """Swap the folders ``a`` and ``b`` in one step (``renameat2(RENAME_EXCHANGE)``);
    where the system cannot, with two renames through ``a`` + ``-old``."""
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), str(b))
    retired = a.with_name(a.name + _RETIRED)
    os.rename(b, retired)
    try:
        os.rename(a, b)
    except OSError:
        os.rename(retired, b)
        raise
    os.rename(retired, a)


def _is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _carry(src: str, dst: Path) -> None:
    """Put the file (or symlink, or FIFO) ``src`` at ``dst``: a hard link, else a copy."""
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except OSError:
        pass
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst)


class Staging:
    """A complete new output tree, built in a staging folder and committed at once.

    Write into :attr:`root` (:meth:`write`, :meth:`write_sources`, or tools that
    write files there), then :meth:`commit`. Leaving the ``with`` block removes
    the staging folder, and with it the previous tree after a commit; on an
    exception before the commit the output is untouched. Stale staging folders
    of earlier runs are removed on entry.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = Path()
        #: Whether the commit exchanges the whole output folder (else each sub-folder).
        self.whole = False
        self._target = Path()

    def _fail(self, exc: OSError) -> OutputError:
        return OutputError(f"cannot write to {self.out}: {exc.strerror or exc}")

    def __enter__(self) -> Staging:
        try:
            try:
                target = self._target = self.out.resolve()
            except RuntimeError:  # a symlink loop, before Python 3.13
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(self.out)) from None
            if os.path.lexists(target) and not target.is_dir():
                raise OutputError(f"cannot write to {self.out}: not a directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            clean_stale(target)
            self.whole = _owned(target) and _same_file_system(target)
            if self.whole:
                mode = (
                    stat.S_IMODE(os.stat(target).st_mode)
                    if target.exists()
                    else _default_dir_mode()
                )
                where, prefix = target.parent, _beside_prefix(target)
            else:
                where, prefix = target, _inside_prefix()
            self.root = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=where))
            if self.whole:
                os.chmod(self.root, mode)
        except OSError as exc:
            raise self._fail(exc) from None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.root != Path():
            shutil.rmtree(self.root, ignore_errors=True)

    def write(self, rel: str, data: str | bytes) -> None:
        path = self.root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        except OSError as exc:
            raise self._fail(exc) from None

    def write_sources(self, diagrams: Sequence[Diagram]) -> None:
        for d in diagrams:
            for rel, text in d.sources().items():
                self.write(rel, text)

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def commit(self, prune: Sequence[str] = (), last: Sequence[str] = ()) -> list[str]:
        """Make the staged tree the output; the staged files, ``last`` ones at the end.

        Files of the previous output that were not staged are carried over, except
        generated ones (of a staged kind) in the ``prune`` sub-directories: nothing
        generates them any more. A file where a staged folder goes (or a folder
        where a staged file goes) is an :class:`OutputError`, raised before the
        output changes.
        """
        files = self.files()
        order = [f for f in files if f not in last] + [f for f in last if f in files]
        kinds = {Path(f).suffix for f in files}
        target = self._target
        try:
            if self.whole:
                self.write(MARKER, _MARKER_TEXT)
                if not target.exists():
                    os.rename(self.root, target)
                    return order
                self._complete(self.root, target, "", set(prune), kinds)
                exchange(self.root, target)
                return order
            names = sorted(os.listdir(self.root), key=lambda n: (n in last, n))
            for name in names:
                if _is_dir(self.root / name):
                    self._complete(self.root / name, target / name, name, set(prune), kinds)
                elif _is_dir(target / name):
                    raise self._conflict(target / name, "a folder", "a file")
            for name in names:
                src, dst = self.root / name, target / name
                if _is_dir(src) and os.path.lexists(dst):
                    exchange(src, dst)
                else:
                    os.replace(src, dst)
        except OSError as exc:
            raise self._fail(exc) from None
        return order

    def _conflict(self, path: Path, found: str, wanted: str) -> OutputError:
        return OutputError(
            f"cannot write to {self.out}: {path} is {found} where fsm writes {wanted}; move it away"
        )

    def _complete(self, new: Path, old: Path, rel: str, prune: set[str], kinds: set[str]) -> None:
        """Copy into the staged folder ``new`` what it lacks of the old folder ``old``."""
        if not os.path.lexists(old):
            return
        if not _is_dir(old):
            raise self._conflict(old, "not a folder", "a folder")
        with os.scandir(old) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            name = entry.name
            if not rel and name.startswith((_inside_prefix(), f".{old.name}.{STAGING_TAG}-")):
                continue  # another run's staging folder
            sub = f"{rel}/{name}" if rel else name
            dst = new / name
            old_is_dir = entry.is_dir(follow_symlinks=False)
            if os.path.lexists(dst):
                if _is_dir(dst) and old_is_dir:
                    self._complete(dst, Path(entry.path), sub, prune, kinds)
                elif _is_dir(dst):
                    raise self._conflict(Path(entry.path), "not a folder", "a folder")
                elif old_is_dir:
                    raise self._conflict(Path(entry.path), "a folder", "a file")
                continue
            if old_is_dir:
                dst.mkdir()
                self._complete(dst, Path(entry.path), sub, prune, kinds)
                os.chmod(dst, stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode))
            elif not (rel in prune and Path(name).suffix in kinds and entry.is_file()):
                _carry(entry.path, dst)


def svg_of(root: Path, diagram: Diagram) -> str | None:
    """The rendered SVG of ``diagram`` under ``root``, if there is one."""
    path = root / f"{diagram.path}.svg"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
