"""The driver protocol: a system under test in a child process, speaking JSON lines.

The well-behaved drivers are fsm's own adapters served by ``python -m
fsm.testing.serve``; the badly behaved ones are small scripts written here that
serve the model adapter and then misbehave at a chosen step (crash, hang,
write garbage, answer out of order, report an error, refuse, support nothing).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jsonschema
import pytest

from fsm.model.design import get_design, get_environment
from fsm.testing.adapters import TransitionsAdapter
from fsm.testing.driver import DriverAdapter, DriverFailure
from fsm.testing.generators import generate
from fsm.testing.observation import Observation
from fsm.testing.protocol import (
    Apply,
    Close,
    Closed,
    DriverHello,
    Error,
    Hello,
    ObservationAnswer,
    Refused,
    Reset,
    driver_schema,
)
from fsm.testing.replay import replay
from fsm.testing.suite import Suite

ROOT = Path(__file__).resolve().parents[1]
SERVE = [sys.executable, "-m", "fsm.testing.serve"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _first(suite: Suite, n: int) -> Suite:
    return Suite.model_validate({**suite.model_dump(), "cases": suite.model_dump()["cases"][:n]})


@pytest.fixture(scope="module")
def suite() -> Suite:
    """Four cases: every misbehaving driver is restarted for each case after it fails."""
    full = generate(get_design("fixed"), get_environment("half-open"), 1, "transitions")
    return _first(full, 4)


def _fsm(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fsm", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_env(),
        cwd=ROOT,
        check=False,
    )


def _write_suite(suite: Suite, path: Path) -> Path:
    path.write_text(suite.model_dump_json(indent=2), encoding="utf-8")
    return path


# A driver that serves the model adapter and misbehaves at apply number MISBEHAVE_AT.
BAD_DRIVER = textwrap.dedent(
    """
    import io, json, os, subprocess, sys, time
    from fsm.testing import serve
    from fsm.testing.adapters import ModelAdapter

    how, at = sys.argv[1], int(sys.argv[2])
    pidfile = sys.argv[3] if len(sys.argv) > 3 else None
    if pidfile:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        with open(pidfile, "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
    applies = 0
    inner = ModelAdapter()
    for raw in iter(sys.stdin.buffer.readline, b""):
        req = json.loads(raw)
        if req["type"] == "hello" and how == "nothing":
            print(json.dumps({"type": "hello", "id": req["id"], "protocol": 1,
                              "name": "supports nothing", "stimuli": []}), flush=True)
            continue
        if req["type"] == "apply":
            applies += 1
            if applies == at:
                if how == "crash":
                    sys.stderr.write("driver: about to crash\\n"); sys.stderr.flush()
                    os._exit(3)
                if how == "hang":
                    time.sleep(300)
                if how == "garbage":
                    print("this is not json", flush=True); continue
                if how == "order":
                    print(json.dumps({"type": "refused", "id": req["id"] + 7,
                                      "reason": "x"}), flush=True); continue
                if how == "error":
                    print(json.dumps({"type": "error", "id": req["id"],
                                      "reason": "the client threw"}), flush=True); continue
            if how == "refuse":
                print(json.dumps({"type": "refused", "id": req["id"],
                                  "reason": "the proxy cannot do that"}), flush=True)
                continue
        # Anything else: answered as the model adapter would (serve() on this one line).
        serve.serve(inner, "bad", io.BytesIO(raw), sys.stdout.buffer)
        if req["type"] == "close":
            break
    """
)


@pytest.fixture
def bad_driver(tmp_path: Path) -> Path:
    path = tmp_path / "bad_driver.py"
    path.write_text(BAD_DRIVER, encoding="utf-8")
    return path


def test_the_schema_describes_every_message() -> None:
    schema = driver_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    observation = Observation.initial(2)
    messages = [
        Hello(id=0, protocol=1),
        Reset(id=1, design={"name": "x"}, environment={"name": "y"}, messages=2),
        Apply(id=2, stimulus="send", message="m1", outcome="ws_raised"),
        Close(id=3),
        DriverHello(id=0, protocol=1, name="d", stimuli=["send"]),
        ObservationAnswer(id=1, observation=observation),
        Refused(id=2, reason="no"),
        Error(id=2, reason="boom"),
        Closed(id=3),
    ]
    for m in messages:
        assert list(validator.iter_errors(json.loads(m.model_dump_json()))) == []
    assert list(validator.iter_errors({"type": "apply", "id": -1, "stimulus": "send"}))
    out = _fsm("schema", "driver")
    assert out.returncode == 0
    assert json.loads(out.stdout) == json.loads(json.dumps(schema))


def test_a_suite_gives_the_same_results_in_process_and_through_the_protocol() -> None:
    suite = generate(get_design("fixed"), get_environment("half-open"), 1, "transitions")
    in_process = replay(suite, TransitionsAdapter())
    with DriverAdapter([*SERVE, "--adapter", "transitions"], env=_env()) as driver:
        through = replay(suite, driver)
    assert in_process.passed
    assert through.passed
    assert [r.model_dump() for r in through.results] == [r.model_dump() for r in in_process.results]


def test_a_divergence_is_found_through_the_protocol(tmp_path: Path) -> None:
    """hardened's suite replayed as pre-fix diverges the same way in process and via a driver."""
    hardened = generate(get_design("hardened"), get_environment("ios-suspend"), 1, "transitions")
    design = get_design("pre-fix")
    in_process = replay(hardened, TransitionsAdapter(), design)
    with DriverAdapter([*SERVE, "--adapter", "transitions"], env=_env()) as driver:
        through = replay(hardened, driver, design)
    assert in_process.failures
    failed = [r.case for r in in_process.results if r.status == "failed"]
    assert failed
    by_case = {r.case: r for r in through.results}
    for r in in_process.results:
        other = by_case[r.case]
        assert other.divergence == r.divergence
        # A driver's refusal is "not applicable"; in process it is a failure.
        refused = r.divergence is not None and r.divergence.refused is not None
        assert other.status == ("not_applicable" if refused else r.status)


@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("crash", "the driver exited with code 3 before answering apply"),
        ("hang", "the driver did not answer apply within 0.5 s"),
        ("garbage", "the driver answered apply with a line that is not JSON"),
        ("order", "the driver answered request 10 when 3 was due"),
        ("error", "the driver reported an error: the client threw"),
    ],
)
def test_a_misbehaving_driver_fails_the_case_at_its_step(
    suite: Suite, bad_driver: Path, how: str, words: str
) -> None:
    command = [sys.executable, str(bad_driver), how, "2"]
    with DriverAdapter(command, env=_env(), deadline=0.5) as driver:
        report = replay(_first(suite, 2), driver)
    assert not report.passed
    assert [r.status for r in report.results] == ["failed", "failed"]
    for result in report.results:
        # The second case ran on a fresh driver, which failed at the same step.
        assert result.divergence is not None
        assert result.divergence.step == 2
        assert result.divergence.error == words
    first = report.results[0].divergence
    assert first is not None
    assert first.stderr == ("driver: about to crash" if how == "crash" else None)


def test_a_crashing_driver_is_a_failure_of_the_system_under_test(
    suite: Suite, tmp_path: Path, bad_driver: Path
) -> None:
    path = _write_suite(_first(suite, 2), tmp_path / "suite.json")
    out = _fsm("replay", str(path), "--driver", f"{sys.executable} {bad_driver} crash 2")
    assert out.returncode == 1, out.stderr
    assert out.stderr == ""
    first = out.stdout.split("\n\n")[0].splitlines()
    assert first[0].startswith("failure 1 of ")
    assert first[1].startswith("transitions-001: diverges at step 2 (")
    assert "  the driver exited with code 3 before answering apply" in first
    assert "    driver: about to crash" in first
    assert out.stdout.splitlines()[-1].endswith("0 of 2 cases pass, 2 fail")


def test_a_driver_that_supports_nothing_is_not_a_pass(
    suite: Suite, tmp_path: Path, bad_driver: Path
) -> None:
    path = _write_suite(suite, tmp_path / "suite.json")
    out = _fsm("replay", str(path), "--driver", f"{sys.executable} {bad_driver} nothing 0")
    assert out.returncode == 1
    n = len(suite.cases)
    lines = out.stdout.splitlines()
    assert lines[-1].endswith(
        f"0 of {n} cases pass, {n} skipped; NOT A PASS: {n} of {n} cases did not run"
    )
    assert lines[0] == f"skipped {n}: needs send, which the driver does not support" or lines[
        0
    ].startswith("skipped ")


def test_refused_steps_make_cases_not_applicable_never_passed(
    suite: Suite, tmp_path: Path, bad_driver: Path
) -> None:
    path = _write_suite(suite, tmp_path / "suite.json")
    out = _fsm("replay", str(path), "--driver", f"{sys.executable} {bad_driver} refuse 0")
    assert out.returncode == 1
    n = len(suite.cases)
    last = out.stdout.splitlines()[-1]
    assert f"0 of {n} cases pass, {n} not applicable (a step was refused)" in last
    assert "NOT A PASS" in last


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone once nothing runs.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split()[2] == "Z"
    except FileNotFoundError:
        return True


def test_the_driver_and_its_children_are_reaped(
    suite: Suite, tmp_path: Path, bad_driver: Path
) -> None:
    pidfile = tmp_path / "pids"
    one = _first(suite, 1)
    with DriverAdapter(
        [sys.executable, str(bad_driver), "none", "0", str(pidfile)], env=_env()
    ) as driver:
        report = replay(one, driver)
        assert report.passed
        pids = [int(p) for p in pidfile.read_text().split()]
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids)


def test_ctrl_c_during_a_replay_ends_the_driver(
    suite: Suite, tmp_path: Path, bad_driver: Path
) -> None:
    path = _write_suite(suite, tmp_path / "suite.json")
    pidfile = tmp_path / "pids"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fsm",
            "replay",
            str(path),
            "--driver",
            f"{sys.executable} {bad_driver} hang 1 {pidfile}",
            "--step-timeout",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=ROOT,
    )
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pids = [int(p) for p in pidfile.read_text().split()]
    time.sleep(0.5)  # the driver is now hanging in its first apply
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(p) for p in pids)


def test_a_driver_that_cannot_start_is_a_failure() -> None:
    with DriverAdapter(["/nonexistent/driver"]) as driver, pytest.raises(DriverFailure):
        driver.start()


def test_the_reference_client_gives_the_same_results_through_the_protocol() -> None:
    pytest.importorskip("aiohttp")
    full = generate(get_design("hardened"), get_environment("half-open"), 1, "transitions")
    small = _first(full, 3)
    from fsm.reference.adapter import ReferenceAdapter

    in_process_adapter = ReferenceAdapter()
    try:
        in_process = replay(small, in_process_adapter)
    finally:
        in_process_adapter.close()
    with DriverAdapter([*SERVE, "--adapter", "reference"], env=_env(), deadline=30) as driver:
        through = replay(small, driver)
    assert in_process.passed
    assert [r.model_dump() for r in through.results] == [r.model_dump() for r in in_process.results]


def _exchanges(page: Path) -> list[list[str]]:
    """The ``text`` blocks of ``page`` that are exchanges: lines of ``> `` and ``< ``."""
    blocks = re.findall(r"```text\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    return [b.splitlines() for b in blocks if b.startswith("> {")]


@pytest.mark.parametrize("page", ["README.md", "docs/driver-protocol.md"])
def test_the_exchange_a_page_shows_is_what_a_served_adapter_answers(page: str) -> None:
    """Each ``>`` line is sent (a shortened design or environment is the built-in one
    it names) and each ``<`` line must be the answer, byte for byte."""
    [lines] = _exchanges(ROOT / page)
    with subprocess.Popen(
        [*SERVE, "--adapter", "transitions"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        answers = 0
        for line in lines:
            kind, text = line[:2], line[2:]
            if kind == "> ":
                request = json.loads(text)
                if request["type"] == "reset":
                    design = get_design(request["design"]["name"])
                    environment = get_environment(request["environment"]["name"])
                    request["design"] = json.loads(design.model_dump_json())
                    request["environment"] = json.loads(environment.model_dump_json())
                proc.stdin.write(json.dumps(request) + "\n")
                proc.stdin.flush()
            else:
                assert kind == "< ", line
                assert proc.stdout.readline().rstrip("\n") == text
                answers += 1
        assert answers >= 4
        assert proc.wait(timeout=30) == 0
