"""A test author's path: the generated pytest module, suites of design files, strict
suites, adapter errors, grouped failures, and the example client in examples/."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import no_dot

import fsm
from fsm import Suite, generate, get_design, get_environment, replay
from fsm.analysis.system import Outcome, Stimulus
from fsm.cli import main
from fsm.model.behaviour import select_behaviour
from fsm.model.design import DESIGNS, Design, Environment, load_design
from fsm.model.errors import SpecError
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageEvent, MessageState
from fsm.testing import suite as suite_module
from fsm.testing.adapters import ModelAdapter, SystemUnderTest, load_adapter
from fsm.testing.observation import VISIBLE, Observation
from fsm.testing.pytest_plugin import NO_ADAPTER
from fsm.testing.pytest_writer import pytest_module
from fsm.testing.suite import Case, Covers, Step, SuiteStats, load_suite

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "chat_client"
SPEC = EXAMPLE / "design.toml"
MODULE = EXAMPLE / "test_example_client.py"

BUGGY_CONFTEST = '''
import pytest
from fsm.testing.adapters import ModelAdapter


class ClearedOnWsSend(ModelAdapter):
    """The model of the design, but the pending-retry entry goes when the send returns."""

    def reset(self, design, environment, messages):
        buggy = design.model_copy(update={"pending_cleared_on": "ws_send"})
        return super().reset(buggy, environment, messages)


@pytest.fixture
def fsm_adapter():
    return ClearedOnWsSend()
'''

FIXED_CONFTEST = """
import pytest
from fsm.testing.adapters import TransitionsAdapter


@pytest.fixture
def fsm_adapter():
    return TransitionsAdapter()
"""


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``folder`` (its own root: no project options), importing this tree's fsm;
    without the plugins of hypothesis and xdist, which the generated modules do not use
    (they only slow each start)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_ADDOPTS", None)
    quiet = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:xdist")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *quiet, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _summary(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def fixed_rows() -> Suite:
    return generate(get_design("fixed"), get_environment("ios-suspend"), 2, "rows")


# -- 1. the pytest route ----------------------------------------------------------------
def test_the_generated_module_runs_the_users_adapter_never_the_model(
    tmp_path: Path, fixed_rows: Suite
) -> None:
    (tmp_path / "test_generated.py").write_text(pytest_module(fixed_rows), encoding="utf-8")
    cases = len(fixed_rows.cases)

    alone = _pytest(tmp_path)
    assert alone.returncode == 1
    assert _summary(alone).startswith(f"{cases} errors")
    assert NO_ADAPTER in alone.stdout

    (tmp_path / "conftest.py").write_text(BUGGY_CONFTEST, encoding="utf-8")
    buggy = _pytest(tmp_path)
    assert buggy.returncode == 1, buggy.stdout
    assert " failed" in _summary(buggy)
    assert "held: expected True, observed False" in buggy.stdout

    (tmp_path / "conftest.py").write_text(FIXED_CONFTEST, encoding="utf-8")
    fixed = _pytest(tmp_path)
    assert fixed.returncode == 0, fixed.stdout
    assert _summary(fixed).startswith(f"{cases} passed")


def test_the_plugin_option_names_an_adapter_and_a_conftest_fixture_wins(
    tmp_path: Path, fixed_rows: Suite
) -> None:
    (tmp_path / "test_generated.py").write_text(pytest_module(fixed_rows), encoding="utf-8")
    plugin = ("-p", "fsm.testing.pytest_plugin")
    model = _pytest(tmp_path, *plugin, "--fsm-adapter", "model")
    assert model.returncode == 0, model.stdout
    assert _summary(model).startswith(f"{len(fixed_rows.cases)} passed")
    unset = _pytest(tmp_path, *plugin)
    assert unset.returncode == 1
    assert NO_ADAPTER in unset.stdout
    unknown = _pytest(tmp_path, *plugin, "--fsm-adapter", "nope")
    assert unknown.returncode == 1
    assert "fsm: --fsm-adapter nope: unknown adapter" in unknown.stdout
    (tmp_path / "conftest.py").write_text(BUGGY_CONFTEST, encoding="utf-8")
    overridden = _pytest(tmp_path, *plugin, "--fsm-adapter", "model")
    assert overridden.returncode == 1, overridden.stdout
    assert " failed" in _summary(overridden)


# -- 2. no code from data -----------------------------------------------------------------
HOSTILE = [
    "ends in a backslash \\",
    "triple \"\"\" quotes ''' both",
    '"); import os; os.system("touch {marker}")#',
    'new\nline\r\n"""\nimport os; os.system(\'touch {marker}\')\n',
    "\x00 nul, \u2028 line separator, \U0001f600 and \\N{{BULLET}}",
    "{{'__import__': __import__('os').system('touch {marker}')}}",
]


def test_hostile_titles_stay_data(tmp_path: Path, fixed_rows: Suite) -> None:
    marker = tmp_path / "pwned"
    cases = [
        case.model_copy(update={"title": HOSTILE[n % len(HOSTILE)].format(marker=marker)})
        for n, case in enumerate(fixed_rows.cases)
    ]
    suite = fixed_rows.model_copy(update={"cases": cases})
    text = pytest_module(suite)
    tree = ast.parse(text)
    tests = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    ]
    assert len(tests) == len(suite.cases)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            assert len(node.body) == 2  # the docstring and one run_case call
    assert text.isascii()
    namespace: dict[str, object] = {}
    exec(compile(text, "generated.py", "exec"), namespace)
    loaded = namespace["SUITE"]
    assert isinstance(loaded, Suite)
    assert [c.title for c in loaded.cases] == [c.title for c in cases]
    for name in tests:
        test = namespace[name]
        assert callable(test)
        test(ModelAdapter())
    (tmp_path / "test_hostile.py").write_text(text, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(FIXED_CONFTEST, encoding="utf-8")
    run = _pytest(tmp_path)
    assert run.returncode == 0, run.stdout
    assert _summary(run).startswith(f"{len(cases)} passed")
    assert not marker.exists()


@pytest.mark.parametrize(
    "field",
    [
        {"environment": 'ios-suspend"); import os; os.system("touch pwned")#'},
        {"design": 'x"""\nimport os\n"""'},
    ],
)
def test_a_suite_whose_names_are_code_is_refused(
    tmp_path: Path, fixed_rows: Suite, field: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    data = fixed_rows.model_dump(mode="json")
    data.update(field)
    if "design" in field:
        data["spec"] = None
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    with pytest.raises(SpecError):
        load_suite(path)
    with pytest.raises(ValueError, match="validation error"):
        pytest_module(fixed_rows.model_construct(**{**dict(fixed_rows), **field}))


# -- 3. users' designs everywhere ----------------------------------------------------------
def _mine(tmp_path: Path) -> Path:
    spec = tmp_path / "mine.toml"
    spec.write_text(
        'name = "mine"\nbased_on = "fixed"\npending_cleared_on = "own_confirmation"\n',
        encoding="utf-8",
    )
    return spec


def test_a_suite_of_a_design_file_replays_without_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _mine(tmp_path)
    out = tmp_path / "s.json"
    argv = ["testgen", "--spec", str(spec), "--criterion", "rows", "--out", str(out)]
    assert main(argv) == 0
    suite = load_suite(out)
    assert suite.design == "mine"
    assert suite.spec == load_design(spec)
    capsys.readouterr()
    assert main(["replay", str(out), "--spec", str(spec)]) == 0
    assert "on mine through model: 17 of 17 cases pass" in capsys.readouterr().out
    spec.unlink()
    capsys.readouterr()
    assert main(["replay", str(out), "--adapter", "transitions"]) == 0
    assert "on mine through transitions: 17 of 17 cases pass" in capsys.readouterr().out
    assert main(["replay", str(out), "--design", "fixed"]) == 1
    assert replay(suite, ModelAdapter()).passed
    assert replay(suite, ModelAdapter(), get_design("fixed")).passed is False


def test_mutants_and_monitor_take_a_design_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _mine(tmp_path)
    assert main(["mutants", "--spec", str(spec), "--criterion", "rows", "--json"]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["design"] == "mine"
    names = {m["name"] for m in report["mutants"]}
    assert "pre-fix" in names
    assert "heartbeat-paused" not in names  # mine has no heartbeat row to drop
    log = tmp_path / "log.jsonl"
    log.write_text('{"event": "app_background"}\n', encoding="utf-8")
    assert main(["monitor", str(log), "--spec", str(spec)]) == 0
    assert "no forbidden transition (mine)" in capsys.readouterr().out
    log.write_text('{"event": "connect"}\n', encoding="utf-8")  # mine sets the flag early
    assert main(["monitor", str(log), "--spec", str(spec)]) == 1
    assert "breaks F2" in capsys.readouterr().out
    assert main(["monitor", str(log)]) == 2


# -- 4. the example client ----------------------------------------------------------------
def test_the_example_module_is_up_to_date() -> None:
    suite = generate(load_design(SPEC), get_environment("ios-suspend"), 2, "rows")
    assert MODULE.read_text(encoding="utf-8") == pytest_module(suite), (
        "regenerate: fsm testgen --spec examples/chat_client/design.toml --criterion rows "
        "--format pytest --out examples/chat_client/test_example_client.py"
    )


@pytest.fixture
def example_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example folder as the current one, and not otherwise on sys.path."""
    monkeypatch.chdir(EXAMPLE)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(EXAMPLE))])
    yield EXAMPLE
    for name in ("chat_adapter", "chat_client"):
        sys.modules.pop(name, None)


def test_the_example_fails_through_replay_with_its_bug_and_passes_fixed(
    example_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "suite.json"
    argv = ["testgen", "--spec", "design.toml", "--criterion", "transitions", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["replay", str(out), "--adapter", "chat_adapter:FixedExampleClientAdapter"]) == 0
    assert "342 of 342 cases pass" in capsys.readouterr().out
    assert main(["replay", str(out), "--adapter", "chat_adapter:ExampleClientAdapter"]) == 1
    text = capsys.readouterr().out
    assert "203 of 342 cases pass" in text
    # 139 failures of one bug: grouped by first divergence, one example each.
    assert "failure 1 of 2: 93 cases diverge at send (ws_delivered): m1.held: " in text
    assert "failure 2 of 2: 46 cases diverge at send (ws_delivered): m2.held: " in text
    assert text.count("diverges at") == 2
    assert len(text.splitlines()) < 30
    capsys.readouterr()
    argv = ["replay", str(out), "--adapter", "chat_adapter:ExampleClientAdapter", "--verbose"]
    assert main(argv) == 1
    assert capsys.readouterr().out.count("diverges at") == 139


def test_the_example_fails_through_pytest_with_its_bug_and_passes_fixed(tmp_path: Path) -> None:
    folder = tmp_path / "chat_client"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    buggy = _pytest(folder)
    assert buggy.returncode == 1, buggy.stdout
    assert _summary(buggy).startswith("2 failed, 15 passed")
    fixed = _pytest(folder, "--fixed")
    assert fixed.returncode == 0, fixed.stdout
    assert _summary(fixed).startswith("17 passed")


def test_the_fake_world_rules_are_the_models() -> None:
    """The rules SystemUnderTest states, against the tables of every built-in design."""
    doc = " ".join((SystemUnderTest.__doc__ or "").split())
    for state, visible in VISIBLE.items():
        if state is not None:
            assert f"``{visible}``" in doc
            assert f"``{state.value}``" in doc
    connected = {ConnectionState.connected, ConnectionState.suspended_stale}
    assert "true in the connection states ``connected`` and ``suspended_stale``" in doc
    assert {s for s in ConnectionState if s not in connected} == {
        ConnectionState.idle,
        ConnectionState.handshaking,
        ConnectionState.disconnected,
    }
    for design in DESIGNS.values():
        b = select_behaviour(design)
        conn, msg = b.connection.rows, b.message.rows
        assert {s for (s, e) in conn if e is ConnectionEvent.connect} <= {
            ConnectionState.idle,
            ConnectionState.disconnected,
        }
        lost = {s: r.target for (s, e), r in conn.items() if e is ConnectionEvent.network_lost}
        assert lost[ConnectionState.suspended_stale] is ConnectionState.suspended_stale
        assert lost[ConnectionState.connected] is ConnectionState.disconnected
        assert lost[ConnectionState.handshaking] is ConnectionState.disconnected
        for in_flight in (MessageState.sending_rest, MessageState.retrying_rest):
            assert (in_flight, MessageEvent.retry_rest) not in msg
    assert "an opening, an open and a half-open one alike" in doc
    assert "in flight is not retried" in doc


# -- 5. failures people can read -----------------------------------------------------------
class Raises:
    """An adapter whose third step raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        self.model = ModelAdapter()
        self.steps = 0
        return self.model.reset(design, environment, messages)

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        self.steps += 1
        if self.steps == 3:
            raise self.error
        return self.model.apply(stimulus, message, outcome)


class RaisesKeyError(Raises):
    def __init__(self) -> None:
        super().__init__(KeyError("m9"))


class Exits(Raises):
    def __init__(self) -> None:
        super().__init__(SystemExit(3))


class RaisesEscapes(Raises):
    def __init__(self) -> None:
        super().__init__(RuntimeError("\x1b[2Jgone\nfsm: all 17 cases pass"))


class ReturnsNone:
    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        return Observation.initial(messages)

    def apply(self, stimulus: Stimulus, message: int | None, outcome: Outcome | None) -> None:
        return None


@pytest.mark.parametrize(
    ("adapter", "said"),
    [
        ("RaisesKeyError", "the adapter raised KeyError: 'm9'"),
        ("Exits", "the adapter raised SystemExit: 3"),
        ("ReturnsNone", "the adapter raised TypeError: returned a NoneType, not an Observation"),
        ("RaisesEscapes", "the adapter raised RuntimeError: \\x1b[2Jgone\\nfsm: all 17"),
    ],
)
def test_an_adapter_error_names_the_case_and_step_and_exits_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    adapter: str,
    said: str,
) -> None:
    (tmp_path / "my_adapters.py").write_text(
        "from test_test_author import Exits, RaisesEscapes, RaisesKeyError, ReturnsNone\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "my_adapters", raising=False)
    out = tmp_path / "s.json"
    assert main(["testgen", "--design", "fixed", "--criterion", "rows", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["replay", str(out), "--adapter", f"my_adapters:{adapter}", "--verbose"]) == 1
    text = capsys.readouterr().out
    step = "step 1" if adapter == "ReturnsNone" else "step 3"
    assert re.search(rf"^rows-\d+: diverges at {step} \(", text, re.MULTILINE)
    assert said in text
    assert "internal error" not in text
    assert "\x1b" not in text


# -- 6. strict suites ---------------------------------------------------------------------
def _corrupt(data: dict[str, object], how: str) -> None:
    cases = data["cases"]
    assert isinstance(cases, list)
    first = cases[0]["steps"][0]
    if how == "observation-length":
        first["expected"]["messages"] = first["expected"]["messages"][:1]
    elif how == "message-out-of-range":
        send = next(s for c in cases for s in c["steps"] if s["stimulus"] == "send")
        send["message"] = "m3"
    elif how == "messages-true":
        data["messages"] = True
    elif how == "duplicate-ids":
        cases[1]["id"] = cases[0]["id"]
    elif how == "negative-steps":
        data["stats"]["steps"] = -1  # type: ignore[index]
    elif how == "outcome-not-send":
        step = next(s for c in cases for s in c["steps"] if s["stimulus"] != "send")
        step["outcome"] = "ws_delivered"
    elif how == "string-number":
        data["messages"] = "2"
    elif how == "string-bool":
        first["expected"]["connected"] = "false"
    elif how == "done-without-message":
        step = next(s for c in cases for s in c["steps"] if s["stimulus"] != "send")
        step["stimulus"] = "done"
        step["message"] = None
    elif how == "spec-of-another-name":
        spec = data["spec"]
        assert isinstance(spec, dict)
        spec["name"] = "other"
    else:  # pragma: no cover
        raise AssertionError(how)


BAD = [
    ("observation-length", "expected shows 1 messages; the suite has 2"),
    ("message-out-of-range", "message m3 in a suite of 2 messages"),
    ("messages-true", "messages: Input should be a valid integer"),
    ("duplicate-ids", "two cases have the id 'rows-001'"),
    ("negative-steps", "stats.steps: Input should be greater than or equal to 0"),
    ("outcome-not-send", "an outcome (ws_delivered) on a"),
    ("string-number", "messages: Input should be a valid integer"),
    ("string-bool", "connected: Input should be a valid boolean"),
    ("done-without-message", "done needs a message"),
    ("spec-of-another-name", "is not the name of spec 'other'"),
]


@pytest.mark.parametrize(("how", "said"), BAD)
@pytest.mark.parametrize("adapter", ["model", "transitions", "reference"])
def test_a_bad_suite_is_bad_input_for_every_adapter(
    tmp_path: Path,
    fixed_rows: Suite,
    capsys: pytest.CaptureFixture[str],
    how: str,
    said: str,
    adapter: str,
) -> None:
    data = fixed_rows.model_dump(mode="json")
    _corrupt(data, how)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["replay", str(path), "--adapter", adapter]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert said in err
    assert err.startswith(f"fsm: error: {path}: ")


def test_suite_files_are_regular_and_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["replay", "/dev/zero"]) == 2
    assert "a device, not a regular file" in capsys.readouterr().err
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    assert main(["replay", str(fifo)]) == 2
    assert "a FIFO, not a regular file" in capsys.readouterr().err
    assert suite_module.MAX_SUITE_BYTES == 64 * 1024 * 1024
    path = tmp_path / "s.json"
    assert main(["testgen", "--design", "fixed", "--criterion", "rows", "--out", str(path)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(suite_module, "MAX_SUITE_BYTES", path.stat().st_size - 1)
    assert main(["replay", str(path)]) == 2
    assert "larger than" in capsys.readouterr().err


# -- 7. diagrams of a design file -----------------------------------------------------------
def test_diagrams_of_a_design_file_stay_out_of_the_committed_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dot(monkeypatch)  # folders are the point here, not pictures: sources only
    spec = _mine(tmp_path)
    shutil.copytree(
        ROOT / "diagrams",
        tmp_path / "diagrams",
        ignore=shutil.ignore_patterns("*.png", "*.svg", "*.html", "*.md"),
    )
    monkeypatch.chdir(tmp_path)
    assert main(["diagrams", "--check"]) == 0
    assert main(["diagrams", "--spec", str(spec)]) == 0
    assert "written to diagrams-mine" in capsys.readouterr().out
    assert (tmp_path / "diagrams-mine" / "mine" / "connection.dot").is_file()
    assert not (tmp_path / "diagrams" / "mine").exists()
    assert main(["diagrams", "--check"]) == 0
    # Written into the committed folder on purpose, then --check's advice undoes it.
    assert main(["diagrams", "--spec", str(spec), "--out", "diagrams"]) == 0
    capsys.readouterr()
    assert main(["diagrams", "--check"]) == 1
    text = capsys.readouterr().out
    assert "foreign: diagrams/mine" in text
    assert "rm -r diagrams/mine" in text
    assert "run `fsm diagrams --out diagrams`" in text
    assert main(["diagrams", "--out", "diagrams"]) == 0
    shutil.rmtree(tmp_path / "diagrams" / "mine")
    capsys.readouterr()
    assert main(["diagrams", "--check"]) == 0
    leftovers = sorted(p.name for p in (tmp_path / "diagrams").rglob("*mine*"))
    assert leftovers == []


def test_the_library_takes_a_users_design(tmp_path: Path) -> None:
    design = load_design(_mine(tmp_path))
    suite = fsm.generate(design, get_environment("ios-suspend"), 1, "rows")
    assert suite.spec == design
    assert fsm.replay(suite, ModelAdapter()).design == "mine"
    again = Suite.model_validate_json(suite.model_dump_json())
    assert again.spec == design
    assert get_design("fixed") != design


def test_every_adapter_refuses_the_same_impossible_steps(example_dir: Path) -> None:
    """Steps a well-formed suite may ask for but no world can take: each built-in adapter,
    and the example's, refuses each at its first step."""
    init = Observation.initial(2)
    impossible: list[tuple[Stimulus, str | None]] = [
        (Stimulus.done, "m1"),
        (Stimulus.send, "m2"),
        (Stimulus.handshake_ack, None),
        (Stimulus.handshake_fail, None),
        (Stimulus.app_foreground, None),
        (Stimulus.network_restored, None),
        (Stimulus.rest_ok, "m1"),
        (Stimulus.rest_error, "m2"),
        (Stimulus.socket_error, None),
        (Stimulus.connection_dropped, None),
        (Stimulus.ping_timeout, None),
    ]
    cases = [
        Case(
            id=f"c{n}",
            title=stimulus.value,
            covers=Covers(),
            steps=[Step(stimulus=stimulus, message=message, expected=init)],
        )
        for n, (stimulus, message) in enumerate(impossible)
    ]
    suite = Suite(
        design="fixed",
        spec=get_design("fixed"),
        environment="ios-suspend",
        messages=2,
        criterion="scenario",
        stats=SuiteStats(steps=len(cases)),
        cases=cases,
    )
    names = ["model", "transitions", "chat_adapter:FixedExampleClientAdapter"]
    if importlib.util.find_spec("aiohttp") is not None:
        names.append("reference")
    for name in names:
        adapter = load_adapter(name)
        try:
            report = replay(suite, adapter)
        finally:
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
        refused = [(f.case, f.step) for f in report.failures if f.refused is not None]
        assert refused == [(c.id, 1) for c in cases], name
