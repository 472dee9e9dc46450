"""Writing output atomically: one file, or a whole folder tree at once.

:func:`write_atomic` writes one file through a temporary file beside it, synced
to disk and renamed over the target, so a reader sees the old file or the new
one, never a part.

:class:`Staging` writes a complete new output tree into a staging folder and
commits it with one atomic exchange of two folders, so a reader sees either the
previous tree or the new one, never a mix.

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
  Each top-level folder is then completed and exchanged atomically on its own,
  the ``last`` files at the end.

Staging folders left by a process that no longer runs (SIGKILL, power loss) are
removed by the next run on the same output. Failures are
:class:`~fsm.model.errors.OutputError`, one line naming the output.

The module depends on nothing of ``fsm`` but its errors, so every layer that
writes files (the command line, rendering, test generation) can use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from fsm.model.errors import OutputError

__all__ = [
    "MARKER",
    "STAGING_TAG",
    "Staging",
    "clean_stale",
    "exchange",
    "write_atomic",
]


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to the file ``path`` in one step.

    The bytes go to a temporary file in the same folder, are synced to disk, and
    the temporary file is renamed over ``path``; the folder is synced too. A
    reader, a crash or a full disk leaves either the previous file or the new
    one, never a mix. A new file gets the mode a plain ``open`` would give it,
    an existing one keeps its mode; through a symlink, the file it points to is
    replaced, not the link.

    A path that is a folder, a special file (``/dev/full``, a FIFO) or in a
    folder that does not exist, and any error writing, is an
    :class:`~fsm.model.errors.OutputError` naming ``path``, with ``path`` as it
    was and no temporary file left.
    """
    given = Path(path)
    target = Path(os.path.realpath(given))
    folder = target.parent
    blob = data.encode("utf-8") if isinstance(data, str) else data

    def fail(why: str) -> OutputError:
        return OutputError(f"cannot write {given}: {why}")

    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise fail(f"{os.strerror(errno.EISDIR)} (give a file name)")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise fail("not a regular file (fsm writes files it can replace atomically)")
    if not folder.is_dir():
        raise fail(f"no folder {folder}")
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        raise fail(exc.strerror or str(exc)) from None
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Sync ``folder``'s entries to disk, where the system lets a folder be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
    return 0o777 & ~_umask()


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

    Write into :attr:`root` (:meth:`write`, :meth:`write_all`, or tools that
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
        self._derived: dict[str, str] = {}

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

    def write_all(self, files: Mapping[str, str | bytes]) -> None:
        """:meth:`write` each of ``files`` (relative path -> contents), in sorted order."""
        for rel in sorted(files):
            self.write(rel, files[rel])

    def files(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )

    def commit(
        self,
        prune: Sequence[str] = (),
        last: Sequence[str] = (),
        derived: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Make the staged tree the output; the staged files, ``last`` ones at the end.

        Files of the previous output that were not staged are carried over, except
        generated ones in the ``prune`` sub-directories: those of a staged kind
        (nothing generates them any more), and those of a ``derived`` kind (a
        suffix, mapped to the suffix of its source) whose source was not staged,
        such as the picture of a diagram that is gone while the pictures were not
        drawn again. A file where a staged folder goes (or a folder where a staged
        file goes) is an :class:`OutputError`, raised before the output changes.
        """
        files = self.files()
        order = [f for f in files if f not in last] + [f for f in last if f in files]
        kinds = {Path(f).suffix for f in files}
        self._derived = dict(derived or {})
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

    def _generated(self, new: Path, name: str, kinds: set[str]) -> bool:
        """Whether the old file ``name`` beside the staged folder ``new`` is generated
        output that nothing generates any more."""
        suffix = Path(name).suffix
        if suffix in kinds:
            return True
        source = self._derived.get(suffix)
        return source is not None and not (new / f"{name[: -len(suffix)]}{source}").exists()

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
            elif not (rel in prune and entry.is_file() and self._generated(new, name, kinds)):
                _carry(entry.path, dst)
