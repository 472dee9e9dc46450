"""The command line: output, exit codes (0 holds, 1 violated, 2 bad input), one-line errors."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from fsm import Design
from fsm.analysis.report import CheckReport, CheckReports, report_schema
from fsm.cli import main

if TYPE_CHECKING:
    from conftest import SpecWriter


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The single line written to standard error; it must carry no traceback."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# -- listings ------------------------------------------------------------------------------
def test_designs_lists_the_builtins_in_order() -> None:
    code, out = run("designs")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["pre-fix", "fixed", "seed-system", "hardened"]


def test_environments_lists_each_and_marks_the_default() -> None:
    code, out = run("environments")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == ["ios-suspend", "ios-suspend-silent", "half-open"]
    assert "(default)" in lines[0]
    assert not any("(default)" in line for line in lines[1:])


def test_bare_fsm_prints_the_help() -> None:
    code, out = run()
    assert code == 0
    assert out.startswith("usage: fsm ")
    assert "check" in out
    assert "Exit codes" in out


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify"], out=io.StringIO()) == 2
    assert "verify" in one_line_error(capsys)


# -- check --------------------------------------------------------------------------------
def test_check_hardened_holds() -> None:
    code, out = run("check", "--design", "hardened")
    assert code == 0
    assert out.startswith("design hardened   environment ios-suspend   messages 2")
    assert "NO" not in out
    assert "counterexample" not in out


def test_check_pre_fix_is_violated_and_shows_the_counterexample() -> None:
    code, out = run("check", "--design", "pre-fix")
    assert code == 1
    assert re.search(r"^no-silent-loss +NO ", out, re.MULTILINE)
    assert "counterexample: no-silent-loss" in out
    assert "forbidden transition F1 reached" in out
    assert "app_background" in out
    assert "held = in the pending-retry list" in out


def test_check_without_a_design_checks_every_builtin() -> None:
    code, out = run("check", "--messages", "1")
    assert code == 1
    assert [line.split()[1] for line in out.splitlines() if line.startswith("design ")] == [
        "pre-fix",
        "fixed",
        "seed-system",
        "hardened",
    ]


def test_check_json_parses_as_a_check_report() -> None:
    code, out = run("check", "--design", "fixed", "--environment", "half-open", "--json")
    assert code == 1
    report = CheckReport.model_validate_json(out)
    assert (report.design, report.environment, report.messages) == ("fixed", "half-open", 2)
    assert not report.property("no-silent-loss").holds


def test_check_json_for_several_designs_is_one_check_reports_object() -> None:
    code, out = run("check", "--messages", "1", "--json")
    assert code == 1
    doc = CheckReports.model_validate_json(out)
    assert [r.design for r in doc.reports] == ["pre-fix", "fixed", "seed-system", "hardened"]


def test_check_json_exit_code_follows_the_verdict() -> None:
    code, out = run("check", "--design", "hardened", "--environment", "half-open", "--json")
    assert code == 0
    assert CheckReport.model_validate_json(out).holds


def test_check_a_spec_file(write_spec: SpecWriter) -> None:
    path = write_spec(
        "early.toml", 'based_on = "fixed"\nname = "early"\npending_cleared_on = "ws_send"\n'
    )
    code, out = run("check", "--spec", str(path), "--json")
    assert code == 1
    report = CheckReport.model_validate_json(out)
    assert report.design == "early"
    assert next(r for r in report.forbidden if r.id == "F3").reachable


def test_unknown_design_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("check", "--design", "nope")
    assert code == 2
    assert out == ""
    line = one_line_error(capsys)
    assert "'nope'" in line
    assert "pre-fix" in line


def test_unknown_environment_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", "--design", "fixed", "--environment", "wifi")[0] == 2
    assert "'wifi'" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--messages", "0"], "--messages"),
        (["--messages", "x"], "'x'"),
        (["--messages", "9"], "between 1 and 8"),
        (["--max-states", "0"], "--max-states"),
        (["--max-states", "-5"], "at least 1"),
        (["--max-states", "many"], "'many'"),
        (["--design", "fixed", "--spec", "x.toml"], "not allowed with"),
        (["--colour"], "--colour"),
    ],
)
def test_bad_check_options_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    code, out = run("check", *argv)
    assert code == 2
    assert out == ""
    assert expected in one_line_error(capsys)


def test_max_states_exceeded_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("check", "--design", "fixed", "--max-states", "10")
    assert code == 2
    assert out == ""
    line = one_line_error(capsys)
    assert "--max-states 10" in line
    assert "exceeds" in line


def test_max_states_large_enough_is_no_error() -> None:
    assert run("check", "--design", "hardened", "--messages", "1", "--max-states", "100000")[0] == 0


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.toml", "name = \n", "invalid TOML"),
        ("bad.json", '{"based_on": "fixed", "name": "x", "heartbeat": "sometimes"}', "heartbeat"),
        ("bad.yaml", "name: x\n", "unknown format"),
        ("bad.toml", 'based_on = "fixed"\nname = "x"\nwrite_ahead = false\n', "write_ahead"),
    ],
)
def test_bad_spec_is_one_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
    write_spec: SpecWriter,
    name: str,
    content: str,
    expected: str,
) -> None:
    path = write_spec(name, content)
    code, out = run("check", "--spec", str(path))
    assert code == 2
    assert out == ""
    line = one_line_error(capsys)
    assert line.startswith("fsm: error: ")
    assert str(path) in line
    assert expected in line


def test_missing_spec_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run("check", "--spec", str(tmp_path / "nowhere.toml"))[0] == 2
    assert "cannot read" in one_line_error(capsys)


# -- scenario ----------------------------------------------------------------------------
def test_seed_scenario_loses_the_second_message_before_the_fix() -> None:
    code, out = run("scenario", "seed-verification", "--design", "pre-fix")
    assert code == 1
    outcome = dict(line.split(": ", 1) for line in out.splitlines() if line[:3] in ("m1:", "m2:"))
    assert outcome["m2"].startswith("lost")
    assert outcome["m1"] == "confirmed over the WebSocket"
    assert "(not possible: skipped)" in out


def test_seed_scenario_confirms_the_second_message_over_rest_after_the_fix() -> None:
    code, out = run("scenario", "seed-verification", "--design", "fixed")
    assert code == 0
    outcome = dict(line.split(": ", 1) for line in out.splitlines() if line[:3] in ("m1:", "m2:"))
    assert outcome == {"m1": "confirmed over the WebSocket", "m2": "confirmed over REST"}


def test_seed_scenario_json() -> None:
    code, out = run("scenario", "seed-verification", "--design", "pre-fix", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["scenario"] == "seed-verification"
    assert report["outcome"]["m2"].startswith("lost")


def test_seed_scenario_for_every_design_fails_if_any_loses() -> None:
    code, out = run("scenario", "seed-verification")
    assert code == 1
    assert out.count("scenario seed-verification") == 4


def test_unknown_scenario_is_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("scenario", "no-such-story", "--design", "fixed")[0] == 2
    line = one_line_error(capsys)
    assert "'no-such-story'" in line
    assert "seed-verification" in line


# -- as a process -------------------------------------------------------------------------
def _fsm(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fsm", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_python_dash_m_fsm_runs_the_command_line() -> None:
    done = _fsm("designs")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "pre-fix",
        "fixed",
        "seed-system",
        "hardened",
    ]
    assert done.stderr == ""


def test_bad_spec_in_a_process_prints_no_traceback(write_spec: SpecWriter) -> None:
    path = write_spec("broken.json", "{not json")
    done = _fsm("check", "--spec", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "invalid JSON" in done.stderr


def test_reports_are_identical_across_processes() -> None:
    """Nothing in a report depends on hash seeds or memory addresses."""
    argv = ("check", "--design", "fixed", "--environment", "half-open", "--json")
    outputs = []
    for seed in ("1", "2"):
        done = _fsm(*argv, env={**os.environ, "PYTHONHASHSEED": seed})
        assert done.returncode == 1, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]


# -- ablate ---------------------------------------------------------------------------------
def test_ablate_names_the_feature_that_carries_each_property() -> None:
    code, out = run("ablate", "--design", "hardened", "--against", "fixed")
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line and line[0].isalpha()}
    assert "no-duplicate-delivery" in rows["message_ids"]
    assert "connected-means-acked" in rows["await_handshake"]
    assert rows["reconnect_on_foreground"].split()[-2:] == ["nothing", "nothing"]


def test_ablate_says_when_a_feature_cannot_be_removed_alone() -> None:
    code, out = run("ablate", "--design", "fixed", "--against", "pre-fix")
    assert code == 0
    table, notes = out.split("\n\n")[1:3]
    assert "see note (1)" in table
    assert "cannot" not in table, "the reason is a note under the table, not a cell"
    assert notes.startswith("(1) write_ahead cannot be set back alone: rest_fallback needs")


def test_ablate_against_an_unknown_design_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("ablate", "--against", "nope")[0] == 2
    assert "nope" in one_line_error(capsys)


# -- schema ---------------------------------------------------------------------------------
def test_the_design_file_schema_lists_every_field_and_based_on() -> None:
    code, out = run("schema", "design")
    assert code == 0
    schema = json.loads(out)
    assert set(schema["properties"]) == {*Design.model_fields, "based_on"}
    assert schema["properties"]["based_on"]["enum"] == [
        "fixed",
        "hardened",
        "pre-fix",
        "seed-system",
    ]
    assert {"required": ["based_on", "name"]} in schema["anyOf"]
    assert schema["additionalProperties"] is False


def test_the_report_schema_is_what_check_json_prints() -> None:
    code, out = run("schema", "report")
    assert code == 0
    assert json.loads(out) == report_schema()


def test_an_unknown_schema_is_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("schema", "nope")[0] == 2
    assert "nope" in one_line_error(capsys)


def test_check_says_why_the_last_state_of_a_counterexample_violates() -> None:
    code, out = run("check", "--design", "pre-fix")
    assert code == 1
    block = out.split("counterexample: no-silent-loss")[1].split("counterexample:")[0]
    assert "  why: m1: the client shows it as sent over the WebSocket" in block
