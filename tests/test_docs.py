"""The shell examples of the README and the documentation site are run, so they cannot drift.

Every fenced block marked ``console`` in ``README.md`` and ``docs/`` is a
transcript: each ``$ fsm ...`` line is a command, and the lines under it up to
the next command are what it prints (standard output, then standard error). A
line that is exactly ``...`` stands for any number of lines, itself included
none; every other line must match exactly (trailing spaces aside). ``fsm`` is
the command line of this tree (``fsm.cli.main``, which ``python -m fsm`` runs),
run in a fresh folder holding a copy of ``examples/`` and ``designs/``, one folder
per block, so the commands of one block may use the files that earlier ones wrote.

Every block marked ``pycon`` is a doctest and is run as one.

A block whose command is too slow for the test suite is preceded by the line
``<!-- console: not run (REASON) -->``; it is reported as skipped with that
reason, never dropped silently.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fsm.cli import INTERNAL_ERROR, main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ELIDED = "..."
SKIP = re.compile(r"^<!-- console: not run \((?P<reason>[^)]+)\) -->$")


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    expected: tuple[str, ...]


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    commands: tuple[Command, ...]
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def parse(text: str, page: str) -> list[Example]:
    """Every ``console`` block of one Markdown page, in order."""
    examples: list[Example] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        opening = i
        before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
        marker = SKIP.match(before)
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i].rstrip())
            i += 1
        if i == len(lines):
            raise AssertionError(f"{page}:{opening + 1}: a console block is never closed")
        i += 1
        commands: list[Command] = []
        argv: list[str] | None = None
        expected: list[str] = []
        for ln in body:
            if ln.startswith("$ "):
                if argv is not None:
                    commands.append(Command(tuple(argv), tuple(expected)))
                argv, expected = shlex.split(ln[2:], comments=True), []
            elif argv is None:
                raise AssertionError(f"{page}:{opening + 1}: output before the first command")
            else:
                expected.append(ln)
        if argv is None:
            raise AssertionError(f"{page}:{opening + 1}: a console block without a command")
        commands.append(Command(tuple(argv), tuple(expected)))
        examples.append(
            Example(page, opening + 1, tuple(commands), marker["reason"] if marker else None)
        )
    return examples


def matches(expected: tuple[str, ...], actual: list[str]) -> bool:
    """Whether ``actual`` is ``expected`` with each ``...`` line standing for any lines."""
    if not expected:
        return not actual
    head, rest = expected[0], expected[1:]
    if head == ELIDED:
        return any(matches(rest, actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and actual[0] == head and matches(rest, actual[1:])


EXAMPLES = [
    example
    for path in PAGES
    for example in parse(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
]


def pycon_blocks(text: str) -> list[tuple[int, str]]:
    """Every ``pycon`` block of one page: the line it opens on and its text."""
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```pycon":
            start = i + 1
            i = start
            while i < len(lines) and lines[i].strip() != "```":
                i += 1
            blocks.append((start, "\n".join(lines[start:i]) + "\n"))
        i += 1
    return blocks


PYCON = [
    (f"{path.relative_to(ROOT)}:{line}", block)
    for path in PAGES
    for line, block in pycon_blocks(path.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize(("where", "block"), PYCON, ids=[w for w, _ in PYCON])
def test_the_python_example_prints_what_the_page_shows(where: str, block: str) -> None:
    test = doctest.DocTestParser().get_doctest(block, {}, where, where, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def run(command: Command, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What ``fsm ARGS`` prints, standard output then standard error, run in this process
    (``python -m fsm`` is ``sys.exit(fsm.cli.main())``; a test below runs it as a program)."""
    assert command.argv[0] == "fsm", f"only fsm commands are run: {command.argv}"
    code = main(list(command.argv[1:]))
    assert code != INTERNAL_ERROR, capsys.readouterr().err  # an internal error is never an example
    printed = capsys.readouterr()
    return [ln.rstrip() for ln in (printed.out + printed.err).splitlines()]


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_the_shell_example_prints_what_the_page_shows(
    example: Example,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if example.skip is not None:
        pytest.skip(f"{example.id}: {example.skip}")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "designs", tmp_path / "designs")
    monkeypatch.chdir(tmp_path)
    for command in example.commands:
        actual = run(command, capsys)
        shown = "\n".join(actual)
        assert matches(command.expected, actual), (
            f"{example.id}: `{shlex.join(command.argv)}` printed:\n{shown}"
        )


def test_the_examples_run_as_python_m_fsm_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The program ``python -m fsm`` prints what the in-process run of an example does."""
    command = next(c for e in EXAMPLES for c in e.commands if c.argv[:2] == ("fsm", "monitor"))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    shutil.copytree(ROOT / "designs", tmp_path / "designs")
    monkeypatch.chdir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "fsm", *command.argv[1:]],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1  # the log breaks F2 and F1
    assert done.stdout.splitlines() == run(command, capsys)
    assert matches(command.expected, done.stdout.splitlines())


def test_every_page_with_commands_has_run_examples() -> None:
    """The README and the commands page show real runs, and most examples are run."""
    pages = {e.page for e in EXAMPLES if e.skip is None}
    assert {"README.md", "docs/commands.md", "docs/getting-started.md"} <= pages
    run_ = [e for e in EXAMPLES if e.skip is None]
    assert len(run_) >= 2 * len(EXAMPLES) // 3


def test_an_elided_region_matches_any_lines_and_nothing_else() -> None:
    assert matches(("a", ELIDED, "z"), ["a", "z"])
    assert matches(("a", ELIDED, "z"), ["a", "b", "c", "z"])
    assert not matches(("a", ELIDED, "z"), ["a", "b", "y"])
    assert not matches(("a", "z"), ["a", "b", "z"])
    assert not matches(("a",), ["a", "extra"])


def test_a_block_is_parsed_into_commands_outputs_and_a_skip_reason() -> None:
    text = (
        "<!-- console: not run (slow) -->\n\n```console\n$ fsm designs  # list\npre-fix  x\n"
        "$ fsm environments\n```\n"
    )
    (example,) = parse(text, "page.md")
    assert example.skip == "slow"
    assert example.commands == (
        Command(("fsm", "designs"), ("pre-fix  x",)),
        Command(("fsm", "environments"), ()),
    )


def test_the_api_reference_fences_doctests_as_code() -> None:
    pytest.importorskip("griffe", reason="the API reference needs the 'docs' extra")
    spec = importlib.util.spec_from_file_location("griffe_doctest", ROOT / "docs/griffe_doctest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "Say::\n\n    >>> 1 + 1\n    2\n\nDone, [a][b] stays."
    assert module.fence_doctests(text) == (
        "Say:\n\n```pycon\n>>> 1 + 1\n2\n```\n\nDone, [a][b] stays."
    )


def test_the_shipped_monitor_log_is_what_the_model_says_the_client_reports() -> None:
    """``examples/seed.jsonl`` was recorded from the real pre-fix client in the seed's
    test case (``examples/record_seed_log.py``); the model's run of the same scenario
    reports exactly those events, so the log is current."""
    from fsm import get_design, get_environment
    from fsm.analysis.scenario import get_scenario
    from fsm.analysis.system import System, Transition
    from fsm.testing.monitor import events_of

    scenario = get_scenario("seed-verification")
    system = System(get_design("pre-fix"), get_environment("ios-suspend"), scenario.messages)
    world, steps = system.initial(), list[Transition]()
    for script in scenario.steps:
        target = None if script.message is None else script.message - 1
        options = [
            t
            for t in system.successors(world)
            if t.stimulus is script.stimulus and (target is None or t.message == target)
        ]
        if options:
            steps.append(options[0])
            world = options[0].target
    shipped = [
        json.loads(line)
        for line in (ROOT / "examples/seed.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert shipped == [
        {"event": e} if m is None else {"event": e, "message": m} for e, m in events_of(steps)
    ]


def test_the_api_reference_lists_every_public_name_of_the_package() -> None:
    """``docs/api/fsm.md`` has a row for each name of ``fsm.__all__``, and no other."""
    import fsm

    page = (ROOT / "docs/api/fsm.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\| \[`fsm\.(\w+)`\]", page, flags=re.MULTILINE)
    assert sorted(listed) == sorted(fsm.__all__)


def test_every_api_page_is_in_the_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert [p for p in pages if f" {p}\n" not in nav] == []
