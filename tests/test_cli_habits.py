"""The command line meets its users' habits: --version, help without markup, "did you
mean", plain error messages, JSON that validates against its schema, one rule for
design files named like a built-in design, and ablate's notes and wording."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import TYPE_CHECKING

import jsonschema
import pytest

from fsm.analysis.properties import get_property
from fsm.cli import build_parser, main, version
from fsm.model.design import DESIGNS
from fsm.model.errors import UnknownName

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import SpecWriter


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err.strip()


# -- version and help ---------------------------------------------------------------------
def test_version_prints_the_package_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fsm", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout == f"fsm {version()}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", version())


def test_bare_fsm_prints_the_help_in_a_process() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fsm"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("usage: fsm ")
    assert done.stderr == ""


def helps() -> dict[str, str]:
    parser = build_parser()
    texts = {"fsm": parser.format_help()}
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for name, sub in getattr(action, "choices", {}).items():
            texts[name] = sub.format_help()
    return texts


def test_help_has_no_markup() -> None:
    texts = helps()
    assert {"check", "ablate", "review", "schema"} <= set(texts)
    for name, text in texts.items():
        assert "``" not in text, name
        assert "`" not in text, name
        assert ":class:" not in text, name
        assert ":func:" not in text, name


# -- did you mean ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "wrong", "meant"),
    [
        (["check", "--design", "prefix"], "prefix", "pre-fix"),
        (["check", "--design", "hardend"], "hardend", "hardened"),
        (["check", "--environment", "half-opn"], "half-opn", "half-open"),
        (["scenario", "seed-verificaton"], "seed-verificaton", "seed-verification"),
    ],
)
def test_an_unknown_name_suggests_the_closest(
    capsys: pytest.CaptureFixture[str], argv: list[str], wrong: str, meant: str
) -> None:
    assert run(*argv)[0] == 2
    line = one_line_error(capsys)
    assert f"{wrong!r} (did you mean {meant!r}?)" in line
    assert "known:" in line


def test_an_unknown_property_suggests_the_closest() -> None:
    with pytest.raises(UnknownName, match=r"did you mean 'no-silent-loss'\?"):
        get_property("no-silent-los")


def test_a_name_close_to_nothing_suggests_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("check", "--design", "zzzz")[0] == 2
    assert "did you mean" not in one_line_error(capsys)


def test_a_misspelt_design_file_field_suggests_the_field(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter
) -> None:
    path = write_spec("typo.toml", 'based_on = "fixed"\nname = "typo"\nheartbeet = true\n')
    assert run("check", "--spec", str(path))[0] == 2
    line = one_line_error(capsys)
    assert "heartbeet: unknown field (did you mean 'heartbeat'?)" in line
    assert "more" not in line


# -- error wording --------------------------------------------------------------------------
def test_errors_have_no_pydantic_prefix(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter
) -> None:
    path = write_spec("x.toml", 'based_on = "fixed"\nname = "x"\nwrite_ahead = false\n')
    assert run("check", "--spec", str(path))[0] == 2
    line = one_line_error(capsys)
    assert "Value error" not in line
    assert line == f"fsm: error: {path}: rest_fallback needs write_ahead: " + (
        "the REST retry sends the pending-retry list"
    )


def test_the_other_errors_are_named_not_counted(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter
) -> None:
    path = write_spec("few.toml", 'name = "few"\nsummary = "s"\nheartbeet = true\n')
    assert run("check", "--spec", str(path))[0] == 2
    line = one_line_error(capsys)
    more = re.search(r"\(and (\d+) more: missing ([^)]*)\)", line)
    assert more is not None, line
    named = more[2].split(", ")
    assert int(more[1]) == len(named)
    assert "await_handshake" in named
    assert "max_rest_attempts" in named


def test_missing_fields_are_listed(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter
) -> None:
    path = write_spec("bare.toml", 'name = "bare"\nsummary = "s"\nheartbeat = true\n')
    assert run("check", "--spec", str(path))[0] == 2
    line = one_line_error(capsys)
    assert "missing: await_handshake, send_failure_disconnects," in line
    assert "heartbeat," not in line
    assert "based_on" in line


def test_one_step_is_singular() -> None:
    code, out = run("check", "--design", "pre-fix")
    assert code == 1
    assert "counterexample: connected-means-acked (1 step)" in out
    assert "(4 steps)" in out
    assert "1 steps" not in out


# -- check --json against its schema --------------------------------------------------------
@pytest.fixture(scope="module")
def report_schema() -> dict[str, object]:
    out = io.StringIO()
    assert main(["schema", "report"], out=out) == 0
    schema: dict[str, object] = json.loads(out.getvalue())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@pytest.mark.parametrize(
    "argv",
    [
        ["--messages", "1"],
        ["--design", "pre-fix"],
        ["--design", "hardened", "--environment", "half-open"],
    ],
)
def test_check_json_validates_against_schema_report(
    report_schema: dict[str, object], argv: list[str]
) -> None:
    out = run("check", "--json", *argv)[1]
    doc = json.loads(out)
    jsonschema.validate(doc, report_schema, cls=jsonschema.Draft202012Validator)
    if "--design" in argv:
        assert doc["design"] == argv[argv.index("--design") + 1]
    else:
        assert isinstance(doc, dict)
        assert [r["design"] for r in doc["reports"]] == list(DESIGNS)


def test_schema_report_refuses_what_check_json_does_not_print(
    report_schema: dict[str, object],
) -> None:
    one = json.loads(run("check", "--json", "--design", "fixed", "--messages", "1")[1])
    for wrong in ([one], {"reports": one}, {**one, "reports": [one]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, report_schema, cls=jsonschema.Draft202012Validator)


def test_there_is_no_environment_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """Environments are built in (``--environment NAME``): no file format to describe."""
    assert run("schema", "environment")[0] == 2
    assert "environment" in one_line_error(capsys)


# -- a design file named like a built-in design ------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["check"],
        ["scenario", "seed-verification"],
        ["ablate"],
        ["diagrams", "--check"],
    ],
)
def test_every_command_refuses_a_spec_named_like_a_built_in(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter, argv: list[str]
) -> None:
    path = write_spec("impostor.toml", 'based_on = "pre-fix"\nname = "fixed"\n')
    code, out = run(*argv, "--spec", str(path))
    assert code == 2
    assert out == ""
    line = one_line_error(capsys)
    assert str(path) in line
    assert "'fixed' is a built-in design's" in line


def test_review_refuses_a_spec_named_like_a_built_in(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter, tmp_path: Path
) -> None:
    path = write_spec("impostor.toml", 'based_on = "pre-fix"\nname = "fixed"\n')
    assert run("review", "--out", str(tmp_path / "o"), "--spec", str(path))[0] == 2
    assert "named 'fixed'" in one_line_error(capsys)


def test_ablate_refuses_an_against_file_named_like_a_built_in(
    capsys: pytest.CaptureFixture[str], write_spec: SpecWriter
) -> None:
    path = write_spec("impostor.toml", 'based_on = "pre-fix"\nname = "fixed"\n')
    assert run("ablate", "--against", str(path))[0] == 2
    assert "'fixed' is a built-in design's" in one_line_error(capsys)


# -- ablate ---------------------------------------------------------------------------------
def test_ablate_against_a_design_file(write_spec: SpecWriter) -> None:
    path = write_spec("mine.toml", 'based_on = "hardened"\nname = "mine"\nmessage_ids = false\n')
    code, out = run("ablate", "--design", "hardened", "--against", str(path))
    assert code == 0
    assert out.startswith("design hardened, each feature changed to its value in mine,")
    (row,) = [line for line in out.splitlines() if line.startswith("message_ids")]
    assert "no-duplicate-delivery" in row
    assert "set back" not in out


@pytest.mark.parametrize(
    ("design", "against", "verb"),
    [
        ("hardened", "fixed", "set back"),
        ("fixed", "pre-fix", "set back"),
        ("pre-fix", "fixed", "changed"),
        ("fixed", "hardened", "changed"),
    ],
)
def test_ablate_says_set_back_only_when_it_is(design: str, against: str, verb: str) -> None:
    code, out = run("ablate", "--design", design, "--against", against, "--messages", "1")
    assert code == 0
    header = out.splitlines()[2]
    assert out.startswith(f"design {design}, each feature {verb} to its value in {against},")
    assert header.split()[1 : 1 + len(verb.split())] == verb.split()
    if verb == "changed":
        assert "set back" not in out


def test_ablate_notes_are_below_the_table() -> None:
    code, out = run("ablate", "--design", "pre-fix", "--against", "fixed", "--messages", "1")
    assert code == 0
    lines = out.splitlines()
    (row,) = [line for line in lines if line.startswith("rest_fallback")]
    assert "see note (1)" in row
    assert "needs" not in row
    assert lines[-1].startswith("(1) rest_fallback cannot be changed alone: rest_fallback needs")
