"""Hostile input: whatever a user gives ``fsm``, the answer is a report (exit 0 or 1)
or one escaped line on standard error (exit 2); an internal error is exit 70 with
one line, and its traceback only with ``--debug``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from fsm import strategies as fst
from fsm.cli import INTERNAL_ERROR, commands, main
from fsm.cli.output import shown
from fsm.model.design import (
    DESIGNS,
    MAX_SPEC_BYTES,
    Design,
    Environment,
    get_design,
    get_environment,
)

if TYPE_CHECKING:
    from conftest import SpecWriter

FSM = [sys.executable, "-m", "fsm"]


def run(*argv: str) -> tuple[int, str, str]:
    """Run the command line in-process: exit code, standard output, standard error."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(list(argv), out=out)
    return code, out.getvalue(), err.getvalue()


def one_line(err: str) -> str:
    """The single line on standard error: printable, no traceback."""
    lines = err.split("\n")
    assert len(lines) == 2, err
    assert lines[1] == "", err
    assert "Traceback" not in err
    assert lines[0].isprintable(), err
    return lines[0]


def bad_input(*argv: str) -> str:
    code, out, err = run(*argv)
    assert code == 2, (code, err)
    assert out == ""
    return one_line(err)


# -- files that are not design files ---------------------------------------------------------
BASED = 'based_on = "fixed"\nname = "mine"\n'


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("deep.json", "[" * 1000 + "]" * 1000, "nested too deeply"),
        ("deep.toml", "a = " + "[" * 500 + "]" * 500, "nested too deeply"),
        ("big.json", '{"name": "x", "max_rest_attempts": ' + "9" * 4301 + "}", "digits"),
        ("big.toml", BASED + "max_rest_attempts = " + "9" * 4301, "digits"),
        ("huge.toml", BASED + "#" * (MAX_SPEC_BYTES + 1), "larger than"),
        ("nul.toml", BASED + 'summary = "a\\u0000b"\n', "summary"),
        ("tab.json", '{"based_on": "fixed", "name": "mine", "summary": "a\\tb"}', "summary"),
        ("rlo.toml", BASED + 'summary = "\\u202eevil"\n', "summary"),
        ("latin1.toml", b'name = "caf\xe9"\n', "not UTF-8"),
        ("review.toml", 'based_on = "fixed"\nname = "review.html"\n', "reserved"),
        ("diff.toml", 'based_on = "fixed"\nname = "diff"\n', "reserved"),
        ("fixed.toml", 'based_on = "pre-fix"\nname = "fixed"\n', "built-in"),
        ("nl.toml", 'name = "fixed\\n"\nbased_on = "fixed"\n', "name"),
    ],
)
@pytest.mark.parametrize("command", [("check",), ("scenario", "seed-verification"), ("ablate",)])
def test_a_bad_design_file_is_one_line_naming_it(
    write_spec: SpecWriter, name: str, content: str | bytes, needle: str, command: tuple[str, ...]
) -> None:
    path = write_spec(name, content)
    line = bad_input(*command, "--spec", str(path))
    assert line.startswith(f"fsm: error: {path}: "), line
    assert needle in line


@pytest.mark.parametrize("name", ["review.html", "diff", "fixed"])
def test_every_command_refuses_the_same_design_names(tmp_path: Path, name: str) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text(f'based_on = "pre-fix"\nname = "{name}"\n', encoding="utf-8")
    out = tmp_path / "out"
    lines = {
        bad_input("check", "--spec", str(spec)),
        bad_input("scenario", "seed-verification", "--spec", str(spec)),
        bad_input("ablate", "--spec", str(spec)),
        bad_input("diagrams", "--spec", str(spec), "--out", str(out)),
        bad_input("review", "--spec", str(spec), "--out", str(out)),
    }
    assert len(lines) == 1, lines
    assert not out.exists()


def test_special_files_are_refused_without_reading_them(tmp_path: Path) -> None:
    assert "unknown format" in bad_input("check", "--spec", "/dev/zero")
    zero = tmp_path / "zero.json"
    zero.symlink_to("/dev/zero")
    assert "not a regular file" in bad_input("check", "--spec", str(zero))
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert "a directory, not a regular file" in bad_input("check", "--spec", str(folder))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_spec_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    proc = subprocess.run(
        [*FSM, "check", "--spec", str(fifo)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "a FIFO, not a regular file" in one_line(proc.stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ("check", "--design", ""),
        ("check", "--spec", ""),
        ("check", "--environment", ""),
        ("scenario", "seed-verification", "--design", ""),
        ("ablate", "--spec", ""),
        ("diagrams", "--design", ""),
        ("review", "--out", ""),
        ("review", "--spec", ""),
    ],
)
def test_an_empty_name_is_bad_usage_not_every_design(argv: tuple[str, ...]) -> None:
    assert "must not be empty" in bad_input(*argv)


def test_the_model_refuses_text_that_is_not_one_printable_line() -> None:
    fixed = DESIGNS["fixed"].model_dump()
    for summary in ("a\x00b", "two\nlines", "\x1b[2J", "\u202eevil", "\udcff"):
        with pytest.raises(ValidationError, match=r"printable|unicode"):
            Design.model_validate({**fixed, "summary": summary})
        with pytest.raises(ValidationError, match=r"printable|unicode"):
            Environment(name="x", summary=summary, silent_drops=False, half_open_sends_vanish=False)
    assert Design.model_validate({**fixed, "summary": "Ünïcode, emoji 😀 and all"})


# -- what is echoed is escaped ----------------------------------------------------------------
def test_a_key_with_a_newline_is_one_line(write_spec: SpecWriter) -> None:
    path = write_spec("nl.toml", BASED + '"evil\\nkey" = 1\n')
    line = bad_input("check", "--spec", str(path))
    assert "evil\\nkey: unknown field" in line


def test_terminal_escapes_are_not_echoed(write_spec: SpecWriter, tmp_path: Path) -> None:
    path = write_spec("esc.toml", BASED + '"\\u001b]0;pwned\\u0007" = 1\n')
    line = bad_input("check", "--spec", str(path))
    assert "\x1b" not in line
    assert "\\x1b]0;pwned\\x07: unknown field" in line
    missing = tmp_path / "\x1b[31mred\u202e.toml"
    line = bad_input("check", "--spec", str(missing))
    assert "\\x1b[31mred\\u202e.toml: cannot read" in line
    line = bad_input("check", "--design", "\x1b[2J\nx")
    assert "\\x1b[2J\\nx" in line


def test_shown_escapes_only_what_is_not_printable() -> None:
    assert shown("plain text, ünïcode 😀") == "plain text, ünïcode 😀"
    assert shown("a\nb\tc\x00\x1b\x7f\x9b\u2028\ufeff") == (
        "a\\nb\\tc\\x00\\x1b\\x7f\\x9b\\u2028\\ufeff"
    )


# -- exit codes -------------------------------------------------------------------------------
@pytest.mark.parametrize(("design", "verdict"), [("pre-fix", 1), ("hardened", 0)])
def test_a_closed_pipe_keeps_the_verdict(design: str, verdict: int) -> None:
    """``fsm check --design pre-fix | head -1`` under ``pipefail`` still fails."""
    with subprocess.Popen(
        [*FSM, "check", "--design", design], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline().startswith(b"design ")
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == verdict
    assert err == b""


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_full_standard_output_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*FSM, "check", "--design", "hardened"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert one_line(proc.stderr) == "fsm: error: cannot write the output: No space left on device"


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_in_process_keeps_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--design", "pre-fix"], out=ClosedPipe()) == 1
    assert main(["check", "--design", "hardened"], out=ClosedPipe()) == 0
    assert capsys.readouterr().err == ""


def test_ablate_takes_max_states() -> None:
    line = bad_input("ablate", "--messages", "3", "--max-states", "100")
    assert "exceeds --max-states 100" in line
    code, out, _ = run("ablate", "--max-states", "100000")
    assert code == 0
    assert "pending_cleared_on" in out


def crash(*args: object, **kwargs: object) -> Any:
    raise RuntimeError("something inside broke")


def test_an_internal_error_is_exit_70_and_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "check", crash)
    code, _, err = run("check", "--design", "fixed")
    assert code == INTERNAL_ERROR
    line = one_line(err)
    assert line == (
        "fsm: internal error: RuntimeError: something inside broke "
        "(run with --debug for the traceback)"
    )


@pytest.mark.parametrize(
    "argv", [("--debug", "check", "--design", "fixed"), ("check", "--debug", "--design", "fixed")]
)
def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]) -> None:
    monkeypatch.setattr(commands, "check", crash)
    code, _, err = run(*argv)
    assert code == INTERNAL_ERROR
    assert err.startswith("Traceback")
    assert err.endswith("fsm: internal error: RuntimeError: something inside broke\n")


def test_running_out_of_memory_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(*args: object, **kwargs: object) -> Any:
        raise MemoryError

    monkeypatch.setattr(commands, "check", exhausted)
    code, _, err = run("check", "--design", "fixed")
    assert code == INTERNAL_ERROR
    assert "out of memory" in one_line(err)


# -- fuzzing the design file ------------------------------------------------------------------
ODD = ["\x00", "\n", "\r", "\t", "\x1b[31m", "\u202e", "\ufeff", "\u2028", "é", "😀", "\\", '"']
odd_text = st.lists(st.one_of(st.sampled_from(ODD), st.text(max_size=4)), max_size=4).map("".join)
scalars = st.one_of(
    st.booleans(),
    st.integers(-3, 8),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
    st.sampled_from(["ws_send", "any_done", "own_confirmation", "fixed", "pre-fix"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)
FIELDS = [*Design.model_fields, "based_on"]
keys = st.one_of(st.sampled_from(FIELDS), odd_text)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A design file's content as data: valid, valid then mutated, or nonsense."""
    kind = draw(st.sampled_from(["valid", "mutated", "based_on", "nonsense"]))
    if kind == "nonsense":
        return draw(values)
    if kind == "based_on":
        doc: dict[str, Any] = {
            "based_on": draw(st.sampled_from([*DESIGNS, "nope"])),
            "name": draw(st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), keys)),
        }
    else:
        doc = draw(fst.designs()).model_dump()
        doc["name"] = draw(st.from_regex(r"[a-z][a-z0-9._-]{0,8}", fullmatch=True))
    if kind != "valid":
        for _ in range(draw(st.integers(0, 3))):
            action = draw(st.sampled_from(["set", "drop"]))
            key = draw(keys)
            if action == "set":
                doc[key] = draw(values)
            else:
                doc.pop(key, None)
    return doc


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # numbers and strings: JSON's escapes are TOML's


def encode(doc: Any, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if not isinstance(doc, dict):
        return f"value = {toml_value(doc)}\n".encode("utf-8", "surrogatepass")
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in doc.items()]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


files = st.one_of(
    st.tuples(documents(), st.sampled_from(["json", "toml"])).map(lambda t: (encode(*t), t[1])),
    st.tuples(
        st.one_of(
            st.binary(max_size=64),
            st.integers(1, 3000).map(lambda n: b'{"name": ' + b"[" * n + b"]" * n + b"}"),
            st.integers(1, 3000).map(lambda n: b"name = " + b"[" * n + b"]" * n),
        ),
        st.sampled_from(["json", "toml", "TOML", "yaml", ""]),
    ),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    content=files,
    command=st.sampled_from([("check", "--messages", "1"), ("scenario", "seed-verification")]),
)
def test_any_design_file_gives_a_report_or_one_line(
    content: tuple[bytes, str], command: tuple[str, ...]
) -> None:
    data, suffix = content
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (f"design.{suffix}" if suffix else "design")
        path.write_bytes(data)
        code, out, err = run(*command, "--spec", str(path))
    if code in (0, 1):
        assert err == ""
        assert out.startswith(("design ", "scenario ")), out[:200]
    else:
        assert code == 2, (code, err)
        assert out == ""
        assert one_line(err).startswith("fsm: error: ")


# -- fuzzing the monitor's log ------------------------------------------------------------------
from fsm.testing.monitor import CONNECTION_EVENTS, MESSAGE_EVENTS  # noqa: E402

ids = st.one_of(st.sampled_from(["a", "b", "m1"]), odd_text)
records = st.one_of(
    st.fixed_dictionaries(
        {"event": st.sampled_from(CONNECTION_EVENTS)}, optional={"message": st.none()}
    ),
    st.fixed_dictionaries({"event": st.sampled_from(MESSAGE_EVENTS), "message": ids}),
    st.dictionaries(st.one_of(st.sampled_from(["event", "message"]), odd_text), values),
    values,
)
log_lines = st.one_of(
    records.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.binary(max_size=32),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"event": "connect", "n": ' + b"9" * n + b"}"),
    st.sampled_from([b"", b"\f", b"\r", b" \t", b"\xef\xbb\xbf{}"]),
)
logs = st.lists(log_lines, max_size=12).map(lambda lines: b"\n".join(lines))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=logs, design=st.sampled_from(["pre-fix", "hardened"]), every=st.booleans())
def test_any_log_gives_a_verdict_or_one_line(data: bytes, design: str, every: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "client.jsonl"
        path.write_bytes(data)
        argv = ["monitor", "--design", design, str(path)] + (["--all"] if every else [])
        code, out, err = run(*argv)
    for line in out.split("\n"):
        assert line.isprintable(), line
    if code in (0, 1):
        assert err == ""
        assert out.endswith(f"({design})\n" if code == 0 or every else "(--all: every one)\n")
    else:
        assert code == 2, (code, err)
        assert one_line(err).startswith(f"fsm: error: {path}:")
        if not every:
            assert out == ""


# -- fuzzing suites -------------------------------------------------------------------------
from fsm.testing.generators import generate  # noqa: E402

#: A small valid suite to mutate: fixed's rows criterion with one message.
SUITE = json.loads(
    generate(get_design("fixed"), get_environment("ios-suspend"), 1, "rows").model_dump_json()
)


def _places(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key or index of the suite's tree, as a path from the top."""
    found = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            found += _places(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            found += _places(v, (*path, i))
    return found


PLACES = _places(SUITE)[1:]


@st.composite
def suites(draw: st.DrawFn) -> bytes:
    """A suite file: the valid one with a few places set, dropped or duplicated, or nonsense."""
    kind = draw(st.sampled_from(["mutated", "mutated", "nonsense"]))
    if kind == "nonsense":
        return draw(st.one_of(st.binary(max_size=64), values.map(lambda v: json.dumps(v).encode())))
    doc = json.loads(json.dumps(SUITE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PLACES))
        parent: Any = doc
        try:
            for step in path[:-1]:
                parent = parent[step]
            action = draw(st.sampled_from(["set", "drop", "copy"]))
            if action == "set":
                parent[path[-1]] = draw(values)
            elif action == "drop" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == "copy" and isinstance(parent, list) and parent:
                parent.append(parent[0])
        except (KeyError, IndexError, TypeError):
            continue
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=suites())
def test_any_suite_file_gives_a_replay_or_one_line(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.json"
        path.write_bytes(data)
        code, out, err = run("replay", str(path))
    for line in out.split("\n"):
        assert line.isprintable(), line
    if code in (0, 1):
        assert err == ""
        assert " cases pass" in out.splitlines()[-1], out[-300:]
    else:
        assert code == 2, (code, err)
        assert out == ""
        assert one_line(err).startswith("fsm: error: ")
