"""Hostile environments and careless use: planted files, signals, full disks.

Each test sets up the real thing (a file planted by another user, a real
signal to a real process, a real full device) and is skipped, with the
reason, only where the machine cannot provide it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import fsm
from fsm.analysis.promela import promela
from fsm.analysis.spin import (
    Verifier,
    run_check,
    tools,
)
from fsm.analysis.system import System
from fsm.cli import main
from fsm.model.design import get_design, get_environment
from fsm.model.errors import EngineDisagreement, EngineUnavailable, ForbiddenTransition
from fsm.testing.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent

try:
    tools()
    NO_SPIN = ""
except EngineUnavailable as exc:  # pragma: no cover - depends on the machine
    NO_SPIN = str(exc)

needs_spin = pytest.mark.skipif(bool(NO_SPIN), reason=NO_SPIN or "spin is installed")
needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="planting as another user needs root"
)
NOBODY = 65534


def _fsm_here(*argv: str) -> subprocess.CompletedProcess[str]:
    """The command line run in this process (no interpreter start-up): for tests
    that only read the exit code and the output."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv), out=out)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def _fsm(
    *argv: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fsm", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


# -- the SPIN verifier cache ----------------------------------------------------------------
FAKE_PAN = """#!/bin/sh
touch {marker}
echo "State-vector 1 byte, depth reached 0, errors: 0"
echo "        0 states, stored"
echo "        0 transitions (= stored+matched)"
exit 0
"""


@needs_spin
@needs_root
def test_a_verifier_planted_by_another_user_is_never_run(tmp_path: Path) -> None:
    """Build the verifier once, then hand the whole cache to ``nobody``, make it
    world-writable and swap every ``pan`` for a script that claims success:
    fsm must neither run it nor trust it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    env = {"TMPDIR": str(shared), "XDG_CACHE_HOME": str(shared / "cache")}
    argv = ("check", "--engine", "spin", "--design", "pre-fix", "--messages", "1")
    first = _fsm(*argv, env=env)
    assert first.returncode == 1, first.stderr
    pans = [p for p in shared.rglob("pan") if p.is_file()]
    assert pans, "the build left no cached verifier to plant over"
    marker = tmp_path / "planted-ran"
    for pan in pans:
        pan.write_text(FAKE_PAN.format(marker=marker))
    for path in [shared, *shared.rglob("*")]:
        if path != shared:
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
            os.chmod(path, 0o777)
    again = _fsm(*argv, env=env)
    assert not marker.exists(), "fsm ran a verifier another user planted"
    assert again.returncode == 1, again.stdout + again.stderr
    assert "NO" in again.stdout


def test_a_verifier_run_that_explored_nothing_is_an_error(tmp_path: Path) -> None:
    pan = tmp_path / "pan"
    pan.write_text(FAKE_PAN.format(marker=tmp_path / "ran"))
    pan.chmod(0o700)
    model = promela(System(get_design("pre-fix"), get_environment("ios-suspend"), 1))
    with pytest.raises(EngineDisagreement, match="no state explored"):
        run_check(Verifier(model, tmp_path, "bfs"), 1)
    assert (tmp_path / "ran").exists()


@needs_spin
@pytest.mark.parametrize("cc", ["gcc -O0", "gcc  -w"])
def test_cc_with_arguments_is_a_command(cc: str) -> None:
    done = _fsm("check", "--engine", "spin", "--design", "fixed", "--messages", "1", env={"CC": cc})
    assert done.returncode == 1, done.stderr


@needs_spin
def test_a_missing_cc_is_one_line_and_exit_2() -> None:
    done = _fsm(
        "check",
        "--engine",
        "spin",
        "--design",
        "fixed",
        "--messages",
        "1",
        env={"CC": "no-such-compiler-xyz"},
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "no-such-compiler-xyz" in done.stderr


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@needs_spin
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_fsm_alone_ends_every_verifier_worker(signum: int) -> None:
    argv = [sys.executable, "-m", "fsm", "check", "--engine", "spin", "--cores", "4"]
    argv += ["--design", "hardened", "--environment", "half-open", "--messages", "3"]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            workers = {p for p in _descendants(proc.pid) if _comm(p) == "pan"}
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert len(workers) >= 2, "the parallel verifier never started its workers"
        os.kill(proc.pid, signum)
        assert proc.wait(timeout=30) == 128 + signum
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "verifier workers outlived fsm"
    finally:
        for p in workers:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()


# -- nothing lost, nothing half-written -------------------------------------------------------
#: Runs fsm and SIGKILLs it the moment it holds a file open in FOLDER, right after the open.
KILL_WHEN_OPEN = """
import os, signal, sys
folder = sys.argv[1]
def hook(frame, event, arg):
    if event == "c_return" and getattr(arg, "__name__", "") == "open":
        for fd in os.listdir("/proc/self/fd"):
            try:
                where = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
            if where.startswith(folder + "/"):
                os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["fsm", *sys.argv[2:]]
sys.setprofile(hook)
from fsm.cli import entry
entry()
"""

WRITERS = [
    ("testgen", "--design", "pre-fix", "--messages", "1", "--criterion", "transitions"),
    (
        "testgen",
        "--design",
        "pre-fix",
        "--messages",
        "1",
        "--criterion",
        "rows",
        "--format",
        "pytest",
    ),
    ("export", "promela", "--design", "pre-fix", "--messages", "1"),
]


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
@pytest.mark.parametrize("argv", WRITERS, ids=["testgen-json", "testgen-pytest", "export-promela"])
def test_sigkill_mid_write_leaves_the_previous_file(tmp_path: Path, argv: tuple[str, ...]) -> None:
    out = tmp_path / "out" / "target"
    out.parent.mkdir()
    previous = b'{"a previous, valid file": true}\n'
    out.write_bytes(previous)
    done = subprocess.run(
        [sys.executable, "-c", KILL_WHEN_OPEN, str(out.parent), *argv, "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert out.read_bytes() == previous


def _small_tmpfs(where: Path) -> Path:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    return where


@needs_root
@pytest.mark.parametrize("argv", WRITERS, ids=["testgen-json", "testgen-pytest", "export-promela"])
def test_a_full_disk_keeps_the_previous_file_and_is_exit_2(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    disk = _small_tmpfs(tmp_path / "disk")
    try:
        out = disk / "target"
        previous = b"previous\n" * 2000
        out.write_bytes(previous)
        filler = disk / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            f.write(b"x" * 50_000)
        done = _fsm(*argv, "--out", str(out))
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "No space left on device" in done.stderr
        assert out.read_bytes() == previous
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "target"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("argv", WRITERS, ids=["testgen-json", "testgen-pytest", "export-promela"])
@pytest.mark.parametrize("where", ["folder", "missing", "/dev/full"])
def test_a_bad_out_is_one_line_and_exit_2(
    tmp_path: Path, argv: tuple[str, ...], where: str
) -> None:
    target = {
        "folder": str(tmp_path),
        "missing": str(tmp_path / "no" / "such" / "file"),
        "/dev/full": "/dev/full",
    }[where]
    if where == "/dev/full" and not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    done = _fsm_here(*argv, "--out", target)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert target in done.stderr
    if where == "/dev/full":
        assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_symlinked_out_replaces_the_file_it_points_to(tmp_path: Path) -> None:
    real = tmp_path / "real.pml"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.pml"
    link.symlink_to(real)
    done = _fsm("export", "promela", "--design", "fixed", "--messages", "1", "--out", str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink()
    assert real.read_text().startswith("/*") or "proctype" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


# -- the monitor: streamed, bounded, exact -------------------------------------------------
def _log(tmp_path: Path, data: bytes) -> Path:
    log = tmp_path / "client.jsonl"
    log.write_bytes(data)
    return log


def _monitor(
    *argv: str, design: str = "hardened", timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """In this process, or with ``timeout`` in a child that cannot hang the tests."""
    if timeout is None:
        return _fsm_here("monitor", "--design", design, *argv)
    return _fsm("monitor", "--design", design, *argv, timeout=timeout)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x1c", "\x0b"])
def test_a_line_separator_inside_a_json_string_is_one_record(
    tmp_path: Path, separator: str
) -> None:
    lines = ['{"event": "connect"}', '{"event": "handshake_ack"}']
    lines.append(json.dumps({"event": "send", "message": f"a{separator}b"}, ensure_ascii=False))
    lines.append(
        json.dumps({"event": "ws_send_ok", "message": f"a{separator}b"}, ensure_ascii=False)
    )
    done = _monitor(str(_log(tmp_path, ("\n".join(lines) + "\n").encode())))
    assert done.returncode == 0, done.stderr
    assert "4 events, no forbidden transition" in done.stdout


def test_a_form_feed_between_records_is_not_json(tmp_path: Path) -> None:
    log = _log(tmp_path, b'{"event": "connect"}\f{"event": "handshake_ack"}\n')
    done = _monitor(str(log))
    assert done.returncode == 2
    assert done.stderr.strip() == f"fsm: error: {log}:1: not JSON: Extra data"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"event": "connect"}\n{"event": "\xff\xfe"}\n', ":2: not UTF-8 text"),
        (b"[" * 5000 + b"]" * 5000 + b"\n", ":1: not a log record: nested too deep"),
        (b'{"event": "connect", "n": ' + b"7" * 5000 + b"}\n", ":1: not a log record:"),
        (b'{"event": "connect"}\n' + b" " * (70 * 1024) + b"\n", ":2: line longer than 64 KiB"),
    ],
    ids=["not-utf8", "deep", "digits", "long-line"],
)
def test_a_hostile_log_line_is_one_line_and_exit_2(tmp_path: Path, data: bytes, why: str) -> None:
    log = _log(tmp_path, data)
    done = _monitor(str(log))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert done.stderr.startswith(f"fsm: error: {log}{why}")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_refused_without_reading_it() -> None:
    done = _monitor("/dev/zero", timeout=20)
    assert done.returncode == 2
    assert "a device, not a regular file" in done.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_without_a_writer_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    done = _monitor(str(fifo), timeout=20)
    assert done.returncode == 2
    assert "a FIFO, not a regular file (give - to read standard input)" in done.stderr


def test_standard_input_is_read_as_it_arrives() -> None:
    """The verdict comes while the writer still holds the pipe open."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsm", "monitor", "--design", "pre-fix", "-"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        proc.stdin.write(b'{"event": "connect"}\n')
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 1
        first = proc.stdout.readline().decode()
        assert first.startswith("standard input:1: ")
        assert "F2" in first
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        assert proc.stderr is not None
        proc.stderr.close()


SEED_LOG = [
    ("connect", None),
    ("handshake_ack", None),
    ("send", "a"),
    ("ws_send_ok", "a"),
    ("done", "a"),
    ("app_background", None),
    ("app_foreground", None),
    ("send", "b"),
    ("ws_send_failed", "b"),
]


def _seed_log(tmp_path: Path) -> Path:
    return _log(
        tmp_path,
        "".join(json.dumps({"event": e, "message": m}) + "\n" for e, m in SEED_LOG).encode(),
    )


def test_monitor_stops_at_the_first_forbidden_transition_unless_all(tmp_path: Path) -> None:
    log = _seed_log(tmp_path)
    first = _monitor(str(log), design="pre-fix")
    assert first.returncode == 1
    assert first.stdout.splitlines() == [
        f"{log}:1: connection machine: event 'connect' in state 'idle' breaks F2: "
        "the client reports connected before the server acknowledged the handshake",
        f"{log}: stopped at the first forbidden transition (--all: every one)",
    ]
    every = _monitor(str(log), "--all", design="pre-fix")
    assert every.returncode == 1
    lines = every.stdout.splitlines()
    assert lines[0] == first.stdout.splitlines()[0]
    assert lines[-2].startswith(f"  also {log}:9: ")
    assert "F1" in lines[-2]
    assert lines[-1] == f"{log}: 9 events, {len(lines) - 1} forbidden (pre-fix)"


def test_terminal_escapes_from_a_log_are_escaped_on_stdout(tmp_path: Path) -> None:
    evil = "\x1b[2J\x1b[HALL 17 CASES PASS\r"
    log = _log(
        tmp_path,
        (
            json.dumps({"event": "send", "message": evil})
            + "\n"
            + json.dumps({"event": "rest_ok", "message": evil})
            + "\n"
        ).encode(),
    )
    done = _monitor(str(log))
    assert done.returncode == 1
    assert "\x1b" not in done.stdout
    assert "\r" not in done.stdout
    assert "\\x1b[2J\\x1b[HALL 17 CASES PASS\\r" in done.stdout


def test_a_violation_keeps_a_bounded_window_and_its_number() -> None:
    monitor = Monitor(get_design("pre-fix"), raise_on_violation=False, window=5)
    for _ in range(2000):
        monitor.observe("connect")  # F2 once, then no row in suspended_stale
        monitor.observe("app_background")
        assert len(monitor.trace) <= 10
    assert monitor.events == 4000
    assert len(monitor.violations) >= 2000
    assert all(len(v.trace) <= 5 for v in monitor.violations)
    last = monitor.violations[-1]
    assert last.event_number == 3999
    assert last.trace == (("connect", None), ("app_background", None)) * 2 + (("connect", None),)


def test_a_raised_violation_is_not_kept() -> None:
    monitor = Monitor(get_design("pre-fix"))
    with pytest.raises(ForbiddenTransition):
        monitor.observe("connect")
    assert monitor.violations == []
    assert monitor.events == 0


# -- the API's boundary ------------------------------------------------------------------
HALF = get_environment("half-open")
FIXED = get_design("fixed")


@pytest.mark.parametrize(
    ("call", "text"),
    [
        (lambda: fsm.generate(FIXED, HALF, 1, "random", length=0), "length must be at least 1"),
        (lambda: fsm.generate(FIXED, HALF, 1, "random", max_steps=0), "max_steps must be"),
        (lambda: fsm.generate(FIXED, HALF, 1, "random", seed="x"), "seed must be an int"),  # type: ignore[arg-type]
        (lambda: fsm.check(FIXED, HALF, 1, max_states=-5), "max_states must be at least 1"),
        (lambda: fsm.check(FIXED, HALF, 1, max_states=True), "max_states must be an int"),
        (lambda: fsm.check("fixed", HALF), "design must be a Design, not str"),  # type: ignore[arg-type]
        (lambda: fsm.check(FIXED, "half-open"), "environment must be an Environment, not str"),  # type: ignore[arg-type]
        (lambda: fsm.check(FIXED, HALF, "2"), "messages must be an int, not str"),  # type: ignore[arg-type]
        (lambda: fsm.get_design(3), "a design name is a str, not int"),  # type: ignore[arg-type]
        (lambda: fsm.get_design(["fixed"]), "a design name is a str, not list"),  # type: ignore[arg-type]
        (lambda: fsm.get_environment(None), "an environment name is a str"),  # type: ignore[arg-type]
        (lambda: fsm.Monitor("hardened"), "Monitor needs a Design or a Behaviour, not str"),  # type: ignore[arg-type]
        (lambda: fsm.Monitor(FIXED, window=0), "window must be a positive int"),
        (lambda: fsm.Monitor(FIXED).observe(["connect"]), "an event is a str, not list"),  # type: ignore[arg-type]
        (lambda: fsm.Monitor(FIXED).observe(7, "a"), "an event is a str, not int"),  # type: ignore[arg-type]
        (lambda: fsm.Monitor(FIXED).observe("send", 7), "a message id is a str or None"),  # type: ignore[arg-type]
        (lambda: fsm.Monitor(FIXED).observe("send", ["a"]), "a message id is a str or None"),  # type: ignore[arg-type]
    ],
)
def test_a_wrong_argument_is_an_fsm_error_naming_it(call: Callable[[], object], text: str) -> None:
    with pytest.raises(fsm.InvalidArgument, match=re.escape(text)) as info:
        call()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, TypeError)


# -- adapters and replay -------------------------------------------------------------------
ADAPTER_MODULE = """
from fsm.testing.adapters import ModelAdapter


class Exits(ModelAdapter):
    def apply(self, stimulus, message, outcome):
        raise SystemExit(0)


class NeedsArguments(ModelAdapter):
    def __init__(self, url):
        super().__init__()
"""


@pytest.fixture(scope="module")
def small_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("suite")
    (folder / "planted_adapters.py").write_text(ADAPTER_MODULE)
    suite = folder / "suite.json"
    done = _fsm(
        "testgen", "--design", "fixed", "--messages", "1", "--criterion", "rows",
        "--out", str(suite),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return suite


@pytest.mark.parametrize(
    ("adapter", "text"),
    [
        (":Bar", "give module:Class, both parts non-empty"),
        ("os:", "give module:Class, both parts non-empty"),
        ("os:path", "'path' is a module, not a class"),
        ("sys:exit", "'exit' is a builtin_function_or_method, not a class"),
        ("collections:OrderedDict", "needs reset() and apply()"),
        ("planted_adapters:NeedsArguments", "NeedsArguments() raised TypeError"),
    ],
)
def test_a_bad_adapter_is_one_line_and_never_a_pass(
    small_suite: Path, adapter: str, text: str
) -> None:
    done = _fsm(
        "replay", str(small_suite), "--adapter", adapter,
        env={"PYTHONPATH": f"{ROOT}{os.pathsep}{small_suite.parent}"},
    )  # fmt: skip
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1
    assert text in done.stderr
    assert "pass" not in done.stdout


def test_an_adapter_that_exits_fails_its_case_and_is_never_a_pass(small_suite: Path) -> None:
    done = _fsm(
        "replay", str(small_suite), "--adapter", "planted_adapters:Exits", "--verbose",
        env={"PYTHONPATH": f"{ROOT}{os.pathsep}{small_suite.parent}"},
    )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert re.search(r"^rows-\d+: diverges at step \d+ \(", done.stdout, re.MULTILINE)
    assert "the adapter raised SystemExit" in done.stdout
    assert done.stdout.splitlines()[-1].endswith(" fail")


def test_a_suite_cannot_put_terminal_escapes_on_the_screen(
    small_suite: Path, tmp_path: Path
) -> None:
    """A design name carrying escapes is not a suite: refused in one escaped line."""
    doc = json.loads(small_suite.read_text())
    doc["design"] = "fixed\x1b[2J\x1b[H\rALL 17 CASES PASS"
    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps(doc))
    done = _fsm("replay", str(evil), "--design", "fixed")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "\x1b" not in done.stderr
    assert "\r" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def long_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A suite whose replay on the reference client takes tens of seconds."""
    suite = tmp_path_factory.mktemp("long") / "suite.json"
    made = _fsm(
        "testgen", "--design", "hardened", "--messages", "2", "--criterion", "transitions",
        "--out", str(suite),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    return suite


@pytest.mark.skipif(
    importlib.util.find_spec("aiohttp") is None, reason="the reference adapter needs aiohttp"
)
@pytest.mark.parametrize("after", [3.0, 4.5])
def test_ctrl_c_during_a_reference_replay_leaves_no_pending_task(
    long_suite: Path, after: float
) -> None:
    suite = long_suite
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsm", "replay", str(suite), "--adapter", "reference"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(after)
    if proc.poll() is not None:
        pytest.skip("the replay finished before the signal; a slower case is needed here")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Task was destroyed" not in err
    assert err == ""
