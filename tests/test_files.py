"""Writing the output: a complete new tree swapped in at once, stale staging folders
cleaned up, one line and exit 2 when the output cannot be written, and Graphviz's
children stopped when ``fsm`` is interrupted."""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fsm import staging
from fsm.cli import main
from fsm.model import errors as fsm_errors
from fsm.render import graphviz

HAS_DOT = shutil.which("dot") is not None
FSM = [sys.executable, "-m", "fsm"]
#: A process id no process has (above Linux's largest pid_max).
DEAD_PID = 4_194_305


@pytest.fixture(autouse=True)
def no_dot(monkeypatch: pytest.MonkeyPatch, ablate_once: None) -> None:
    """Only the sources, and the review's ablation computed once: these tests are
    about files, not pictures or findings."""
    monkeypatch.setattr(graphviz, "_dot_binary", lambda: None)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def staging_folders(*places: Path) -> list[str]:
    return sorted(
        p.name for place in places if place.is_dir() for p in place.iterdir() if "staging" in p.name
    )


def diagrams(out: Path, *extra: str) -> int:
    return main(["diagrams", "--design", "pre-fix", "--out", str(out), *extra])


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Graphviz's dot is not on PATH" not in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- the whole-folder swap ----------------------------------------------------------------------
def test_a_new_output_folder_is_fsm_s_and_marked(tmp_path: Path) -> None:
    out = tmp_path / "a" / "out"
    assert diagrams(out) == 0
    assert out.is_dir()
    assert not out.is_symlink()
    assert (out / staging.MARKER).is_file()
    assert (out / "pre-fix" / "connection.dot").is_file()
    assert staging_folders(tmp_path / "a", out) == []
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_the_swap_keeps_the_folder_its_mode_and_the_user_s_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert diagrams(out) == 0
    out.chmod(0o750)
    (out / "notes.txt").write_text("mine\n")
    (out / "extra").mkdir()
    (out / "extra" / "keep.md").write_text("keep\n")
    (out / "link").symlink_to("notes.txt")
    gone = out / "pre-fix" / "counterexample-ios-suspend-gone.dot"
    gone.write_text("digraph {}\n")
    inode = (out / "notes.txt").stat().st_ino
    assert diagrams(out) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "notes.txt").stat().st_ino == inode, "carried over as a hard link"
    assert (out / "extra" / "keep.md").read_text() == "keep\n"
    assert os.readlink(out / "link") == "notes.txt"
    assert not gone.exists(), "a generated file nothing generates any more is pruned"
    assert staging_folders(tmp_path, out) == []


def test_without_dot_a_picture_stays_while_its_source_does(tmp_path: Path) -> None:
    """Pictures are not drawn again without Graphviz: those of a diagram that is still
    written are kept, those of a diagram that is gone go with its source."""
    out = tmp_path / "out"
    assert diagrams(out) == 0
    kept = out / "pre-fix" / "connection"
    gone = out / "pre-fix" / "counterexample-ios-suspend-gone"
    gone.with_suffix(".dot").write_text("digraph {}\n")
    for stem in (kept, gone):
        for suffix in (".png", ".svg"):
            stem.with_suffix(suffix).write_bytes(b"a picture")
    assert diagrams(out) == 0
    assert kept.with_suffix(".png").read_bytes() == b"a picture"
    assert kept.with_suffix(".svg").read_bytes() == b"a picture"
    assert sorted(p.name for p in (out / "pre-fix").glob(f"{gone.name}.*")) == []


def test_the_commit_is_one_exchange_of_complete_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the one exchange the output is the previous one, file for file; after it,
    the new one. A reader never sees part of each."""
    out = tmp_path / "out"
    assert main(["review", "--out", str(out)]) == 0
    before = snapshot(out)
    spec = tmp_path / "mine.toml"
    spec.write_text('based_on = "fixed"\nname = "mine"\nheartbeat = true\n', encoding="utf-8")
    real = staging.exchange
    seen: list[tuple[dict[str, bytes], dict[str, bytes]]] = []

    def spy(a: Path, b: Path) -> None:
        seen.append((snapshot(b), snapshot(a)))
        real(a, b)

    monkeypatch.setattr(staging, "exchange", spy)
    assert main(["review", "--out", str(out), "--spec", str(spec)]) == 0
    assert len(seen) == 1
    old, new = seen[0]
    assert old == before
    assert snapshot(out) == new
    assert "mine/connection.dot" in new
    assert new["REVIEW.md"] != before["REVIEW.md"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space")])
def test_a_commit_that_fails_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: BaseException
) -> None:
    out = tmp_path / "out"
    assert diagrams(out) == 0
    (out / "pre-fix" / "connection.dot").write_text("old\n")
    before = snapshot(out)

    def fail(a: Path, b: Path) -> None:
        raise failure

    monkeypatch.setattr(staging, "exchange", fail)
    assert diagrams(out) == (130 if isinstance(failure, KeyboardInterrupt) else 2)
    assert snapshot(out) == before
    assert staging_folders(tmp_path, out) == []


def test_the_exchange_works_without_renameat2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert diagrams(out) == 0
    (out / "pre-fix" / "connection.dot").write_text("old\n")
    monkeypatch.setattr(staging, "_renameat2", None)
    assert diagrams(out) == 0
    assert (out / "pre-fix" / "connection.dot").read_text() != "old\n"
    assert staging_folders(tmp_path, out) == []


def test_an_output_symlink_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    link = tmp_path / "link"
    link.symlink_to(real)
    assert diagrams(link) == 0
    assert diagrams(link) == 0
    assert link.is_symlink()
    assert (real / "pre-fix" / "connection.dot").is_file()
    assert staging_folders(tmp_path, real) == []


# -- folders fsm does not own, and mount points ---------------------------------------------------
def test_a_folder_with_other_content_is_never_swapped(tmp_path: Path) -> None:
    """``--out .``: fsm replaces only its own sub-folders, staged inside the folder."""
    out = tmp_path / "project"
    out.mkdir()
    (out / "README").write_text("mine\n")
    inode = out.stat().st_ino
    assert diagrams(out) == 0
    assert out.stat().st_ino == inode
    assert not (out / staging.MARKER).exists()
    assert (out / "README").read_text() == "mine\n"
    assert (out / "pre-fix" / "connection.dot").is_file()
    assert staging_folders(tmp_path, out) == []


def test_on_a_mount_point_the_staging_is_inside_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Renaming across file systems fails (EXDEV): on a mount point (whose parent is
    another file system) the staging folder goes inside it."""
    out = tmp_path / "mnt"
    assert diagrams(out) == 0
    (out / "pre-fix" / "connection.dot").write_text("old\n")
    monkeypatch.setattr(staging, "_same_file_system", lambda target: False)
    made: list[Path] = []
    real = tempfile.mkdtemp

    def spy(prefix: str, dir: Path) -> str:
        made.append(Path(dir))
        return real(prefix=prefix, dir=dir)

    monkeypatch.setattr(tempfile, "mkdtemp", spy)
    inode = out.stat().st_ino
    assert diagrams(out) == 0
    assert made == [out.resolve()]
    assert out.stat().st_ino == inode
    assert (out / "pre-fix" / "connection.dot").read_text() != "old\n"
    assert staging_folders(tmp_path, out) == []


# -- what cannot be written is one line, before anything changes --------------------------------
@pytest.mark.parametrize("owned", [True, False])
def test_a_file_where_a_design_folder_goes_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], owned: bool
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    if owned:
        assert main(["diagrams", "--out", str(out)]) == 0
        shutil.rmtree(out / "hardened")
    (out / "hardened").write_text("a file\n")
    before = snapshot(out)
    capsys.readouterr()
    assert main(["diagrams", "--out", str(out)]) == 2
    line = one_error_line(capsys)
    assert "hardened is not a folder where fsm writes a folder" in line
    assert snapshot(out) == before
    assert staging_folders(tmp_path, out) == []


def test_a_folder_where_the_review_page_goes_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / "REVIEW.md").mkdir(parents=True)
    assert main(["review", "--out", str(out)]) == 2
    assert "REVIEW.md is a folder where fsm writes a file" in one_error_line(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["REVIEW.md"]
    assert staging_folders(tmp_path, out) == []


def test_an_output_that_is_a_symlink_loop_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to("loop")
    assert diagrams(loop) == 2
    assert "Too many levels of symbolic links" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop"]


def test_a_full_disk_is_exit_2_and_leaves_the_previous_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["review", "--out", str(out)]) == 0
    before = snapshot(out)
    real = Path.write_bytes
    budget = [20]

    def write_bytes(self: Path, data: bytes) -> int:
        budget[0] -= 1
        if budget[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    capsys.readouterr()
    assert main(["review", "--out", str(out)]) == 2
    assert one_error_line(capsys) == f"fsm: error: cannot write to {out}: No space left on device"
    monkeypatch.undo()
    assert snapshot(out) == before
    assert staging_folders(tmp_path, out) == []


# -- stale staging folders ----------------------------------------------------------------------
def test_stale_staging_folders_are_removed_and_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert diagrams(out) == 0
    live_pid = os.getppid()
    beside_dead = tmp_path / f".out.{staging.STAGING_TAG}-{DEAD_PID}-abcd1234"
    inside_dead = out / f".{staging.STAGING_TAG}-{DEAD_PID}-abcd1234"
    beside_live = tmp_path / f".out.{staging.STAGING_TAG}-{live_pid}-abcd1234"
    for folder in (beside_dead, inside_dead, beside_live):
        (folder / "pre-fix").mkdir(parents=True)
        (folder / "pre-fix" / "connection.svg").write_text("<svg/>")
    other = tmp_path / ".out-abcd1234"  # not ours: left alone
    other.mkdir()
    assert diagrams(out) == 0
    assert not beside_dead.exists()
    assert not inside_dead.exists()
    assert beside_live.is_dir()
    assert other.is_dir()
    assert staging_folders(out) == []


def test_an_interrupted_two_rename_swap_is_undone(tmp_path: Path) -> None:
    """Where renameat2 is missing, a kill between the two renames leaves the old tree
    in a ``-old`` folder and no output: the next run puts it back first."""
    out = tmp_path / "out"
    assert diagrams(out) == 0
    (out / "notes.txt").write_text("mine\n")
    retired = tmp_path / f".out.{staging.STAGING_TAG}-{DEAD_PID}-abcd1234-old"
    out.rename(retired)
    assert diagrams(out) == 0
    assert (out / "notes.txt").read_text() == "mine\n"
    assert staging_folders(tmp_path, out) == []


# -- interrupting a real run ----------------------------------------------------------------------
def _dot_children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            comm = Path(f"/proc/{entry}/comm").read_text().strip()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and comm == "dot":
            found.append(int(entry))
    return found


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _start_review(out: Path) -> subprocess.Popen[bytes]:
    """``fsm review`` in a process group of its own, as a shell runs a job."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.Popen(
        [*FSM, "review", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )


needs_dot = pytest.mark.skipif(
    not (HAS_DOT and Path("/proc/self/stat").exists()), reason="needs Graphviz's dot and /proc"
)


@needs_dot
def test_ctrl_c_during_rendering_stops_every_dot_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _start_review(out) as proc:
        try:
            assert _wait_for(lambda: bool(_dot_children(proc.pid)), 60), "dot never started"
            started = time.monotonic()
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            code = proc.wait(timeout=10)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert code == 130, err
    assert took < 2.5
    assert err == b""
    assert _wait_for(lambda: not _processes_mentioning(str(tmp_path)), 2), "a dot survived"
    assert not out.exists(), "nothing half-written"
    assert staging_folders(tmp_path) == []


@needs_dot
def test_after_a_kill_the_next_run_removes_the_staging_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with _start_review(out) as proc:
        try:
            assert _wait_for(lambda: bool(_dot_children(proc.pid)), 60), "dot never started"
            os.killpg(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    # the orphaned dot processes finish their one diagram and exit
    assert _wait_for(lambda: not _processes_mentioning(str(tmp_path)), 30)
    assert not out.exists(), "nothing half-written"
    assert len(staging_folders(tmp_path)) == 1
    assert diagrams(out) == 0
    assert staging_folders(tmp_path, out) == []


# -- one file at a time ---------------------------------------------------------------------------
def test_write_atomic_writes_a_new_file_with_the_usual_mode(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    staging.write_atomic(path, "{}\n")
    assert path.read_bytes() == b"{}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.json"]


def test_write_atomic_replaces_a_file_keeping_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "model.pml"
    path.write_text("old\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    staging.write_atomic(path, b"new\n")
    assert path.read_bytes() == b"new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode, "a new file renamed over the old one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pml"]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_a_write_atomic_that_fails_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    path = tmp_path / "model.pml"
    path.write_text("old\n")

    def fail(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, step, fail)
    message = re.escape(f"cannot write {path}: No space left")
    with pytest.raises(fsm_errors.OutputError, match=message):
        staging.write_atomic(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pml"], "no temporary file left"


def test_write_atomic_refuses_a_folder(tmp_path: Path) -> None:
    (tmp_path / "out.json").mkdir()
    with pytest.raises(fsm_errors.OutputError, match=r"out\.json: Is a directory"):
        staging.write_atomic(tmp_path / "out.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]
