"""The diagrams: their edges are the tables' rows, forbidden edges are marked,
output is byte-stable, ``--check`` catches stale files, and Graphviz is optional."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import no_dot
from hypothesis import HealthCheck, given, settings

from fsm import strategies as fst
from fsm.analysis.checker import check
from fsm.analysis.explore import Exploration, explore
from fsm.analysis.properties import PROPERTIES, violating_worlds
from fsm.analysis.report import message_name, reason_text
from fsm.analysis.system import System
from fsm.cli import main
from fsm.model.behaviour import select_behaviour
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design
from fsm.model.forbidden import FORBIDDEN
from fsm.model.tables import CONNECTION, MESSAGE, MachineSpec, Row
from fsm.render import catalog
from fsm.render import composed as cp
from fsm.render.counterexample import counterexample_dot
from fsm.render.diff import diff_dot, effect_changes
from fsm.render.machine import machine_dot, machine_graph, machine_mermaid
from fsm.render.style import GREEN, RED, VIOLATION_COLORS, VISITED
from fsm.staging import Staging

REPO = Path(__file__).resolve().parent.parent
SPECS: dict[str, MachineSpec[Any, Any]] = {"connection": CONNECTION, "message": MESSAGE}

_EDGE = re.compile(r"^\t+(\S+) -> (\S+)(?: \[(.*)\])?$", re.M)
_NODE = re.compile(r"^\t+(?!(?:graph|node|edge) )(\w+) \[(.*)\]$", re.M)


def edges(dot: str) -> list[tuple[str, str, str]]:
    """``(tail, head, attributes)`` of every edge line of a DOT source."""
    return [(m[1], m[2], m[3] or "") for m in _EDGE.finditer(dot)]


def nodes(dot: str) -> dict[str, str]:
    return {m[1]: m[2] for m in _NODE.finditer(dot)}


def says(attrs: str, word: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(word)}(?![\w])", attrs) is not None


def is_red(attrs: str) -> bool:
    return f'color="{RED}"' in attrs and "penwidth" in attrs and "style=dashed" not in attrs


def forbidden_ids(spec: MachineSpec[Any, Any], row: Row[Any, Any]) -> list[str]:
    return [r.id for r in FORBIDDEN if r.machine == spec.name and r.matches_row(row)]


def assert_machine_matches_table(spec: MachineSpec[Any, Any], design: Design) -> None:
    dot = machine_dot(spec, design)
    drawn = [e for e in edges(dot) if e[0] != "__start"]
    solid = [e for e in drawn if "style=dashed" not in e[2]]
    states = nodes(dot)
    table = spec.table(design)
    for row in table:
        src, dst, event = row.source.value, row.target.value, row.event.value
        ids = forbidden_ids(spec, row)
        if ids:
            assert any(
                (t, h) == (src, dst) and is_red(a) and says(a, event) and says(a, ids[0])
                for t, h, a in solid
            ), f"{design.name}: forbidden row {src} -{event}-> {dst} is not drawn red"
        elif src == dst:
            assert "↻" in states[src]
            assert says(states[src], event), f"{design.name}: loop {event} missing in {src}"
        else:
            assert any((t, h) == (src, dst) and says(a, event) for t, h, a in solid), (
                f"{design.name}: row {src} -{event}-> {dst} has no edge"
            )
    # ... and nothing else: every solid edge stands for rows of the table.
    pairs = {(r.source.value, r.target.value) for r in table}
    for tail, head, _ in solid:
        assert (tail, head) in pairs, f"{design.name}: edge {tail} -> {head} is not in the table"
    # The states a row names, or the initial one: no buffer without one, no REST states
    # without REST.
    named = {table.initial} | {r.source for r in table} | {r.target for r in table}
    assert set(states) - {"__start"} == {s.value for s in named}
    start = [h for t, h, _ in edges(dot) if t == "__start"]
    assert start == [table.initial.value]


@pytest.mark.parametrize("name", list(DESIGNS))
@pytest.mark.parametrize("machine", list(SPECS))
def test_machine_edges_are_the_table_rows(name: str, machine: str) -> None:
    assert_machine_matches_table(SPECS[machine], DESIGNS[name])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fst.designs())
def test_any_design_draws_exactly_its_table(design: Design) -> None:
    for spec in SPECS.values():
        assert_machine_matches_table(spec, design)
        mermaid = machine_mermaid(spec, design)
        for row in spec.table(design):
            src, dst, event = row.source.value, row.target.value, row.event.value
            if src == dst and not forbidden_ids(spec, row):
                assert re.search(rf"^    {src} : ↻ {event}\b", mermaid, re.M)
            else:
                line = re.search(rf"^    {src} --> {dst} : (.*)$", mermaid, re.M)
                assert line is not None
                assert says(line[1], event)


def test_forbidden_edges_are_red_in_pre_fix() -> None:
    pre_fix = DESIGNS["pre-fix"]
    conn = edges(machine_dot(CONNECTION, pre_fix))
    red = {(t, h) for t, h, a in conn if is_red(a) and says(a, "F2")}
    assert red == {("idle", "connected"), ("disconnected", "connected")}
    msg = edges(machine_dot(MESSAGE, pre_fix))
    (f1,) = [a for t, h, a in msg if is_red(a)]
    assert says(f1, "F1")
    assert says(f1, "ws_send_failed")
    assert "only while the connection is suspended_stale" in f1
    # F3 is respected by pre-fix, so it is drawn as a "must never" edge.
    assert any("style=dashed" in a and "F3 must never" in a for _, _, a in msg)


def test_hardened_respects_every_rule_and_shows_it() -> None:
    hardened = DESIGNS["hardened"]
    for spec in SPECS.values():
        drawn = edges(machine_dot(spec, hardened))
        assert not [a for _, _, a in drawn if is_red(a)]
        dashed = {(t, h, a) for t, h, a in drawn if "style=dashed" in a}
        for rule in (r for r in FORBIDDEN if r.machine == spec.name):
            candidates = {
                (r.source.value, r.event.value, r.target.value)
                for r in spec.rows
                if rule.matches_row(r)
            }
            assert candidates, f"{rule.id} matches no row of any design"
            for src, event, dst in candidates:
                assert any(
                    (t, h) == (src, dst) and f"{rule.id} must never" in a and says(a, event)
                    for t, h, a in dashed
                ), f"{rule.id}: {src} -{event}-> {dst} is not drawn as must-never"
            for state in rule.while_connection or ():
                assert any(f"{rule.id} must never (while {state.value})" in a for _, _, a in dashed)


def test_must_never_edges_are_not_drawn_like_transitions() -> None:
    """An F-rule edge the design does not have is thin, dashed, soft red, ends in a bar
    (blocked) instead of an arrow, is marked with a cross and does not shape the layout;
    no transition of the table looks like that."""
    for spec in SPECS.values():
        drawn = edges(machine_dot(spec, DESIGNS["hardened"]))
        never = [a for _, _, a in drawn if "must never" in a]
        assert never
        for attrs in never:
            assert "style=dashed" in attrs
            assert "arrowhead=tee" in attrs
            assert "constraint=false" in attrs
            assert "penwidth=0.8" in attrs
            assert "✗" in attrs
            assert "<i>" in attrs, "its label is in italics, unlike a transition's event"
        for attrs in (a for _, _, a in drawn if "must never" not in a):
            assert "arrowhead=tee" not in attrs
            assert "style=dashed" not in attrs


@pytest.mark.parametrize("name", ["pre-fix", "fixed", "seed-system"])
def test_every_state_a_trace_passes_through_is_shaded(name: str) -> None:
    design = DESIGNS[name]
    for env in ENVIRONMENTS:
        result = check(design, ENVIRONMENTS[env], catalog.MESSAGES)
        for verdict in result.verdicts:
            if verdict.holds or not verdict.trace:
                continue
            state_nodes = nodes(counterexample_dot(design, result, verdict))
            for step in verdict.trace:
                for fired in step.fired:
                    prefix = "c" if fired.message is None else message_name(fired.message)
                    for state in (fired.row.source, fired.row.target):
                        node = state_nodes[f"{prefix}__{state.value}"]
                        assert f'fillcolor="{VISITED}"' in node, (env, verdict.id, state)


def test_every_diagram_has_a_title_legend_and_initial_state() -> None:
    designs = list(DESIGNS.values())
    diagrams = catalog.build(designs, catalog.run_checks(designs))
    kinds = {d.kind for d in diagrams}
    assert kinds == {"machine", "counterexample", "composed", "diff"}
    for d in diagrams:
        assert "rankdir=" in d.dot
        assert "fontname=Helvetica" in d.dot
        title = re.search(r"<b>([^<]*)</b></font></td></tr>", d.dot)
        assert title is not None
        if d.kind != "diff":
            assert title[1].startswith(d.path.split("/")[0])
        assert '<td align="left" width="44"' in d.dot, f"{d.path} has no legend"
        assert "__start" in d.dot or "peripheries=2" in d.dot, f"{d.path}: no initial state"


def test_counterexample_numbers_the_fired_edges() -> None:
    design = DESIGNS["pre-fix"]
    result = check(design, ENVIRONMENTS["ios-suspend"], catalog.MESSAGES)
    verdict = result.verdict("no-silent-loss")
    assert verdict.trace
    dot = counterexample_dot(design, result, verdict)
    drawn = edges(dot)
    assert "pre-fix · ios-suspend · counterexample: no-silent-loss" in dot
    for n, step in enumerate(verdict.trace, start=1):
        for fired in step.fired:
            prefix = "c" if fired.message is None else message_name(fired.message)
            tail = f"{prefix}__{fired.row.source.value}"
            head = f"{prefix}__{fired.row.target.value}"
            assert any(
                (t, h) == (tail, head) and re.search(rf"<b>[\d, ]*\b{n}\b[\d, ]*</b>", a)
                for t, h, a in drawn
            ), f"step {n}: {fired} is not numbered"
    # The swallowed send error into the stale socket is F1, drawn red.
    assert any(
        (t, h) == ("m1__pending", "m1__sent_ws") and f'color="{RED}"' in a and "F1" in a
        for t, h, a in drawn
    )
    # States the trace passes through are highlighted, the others are not.
    state_nodes = nodes(dot)
    assert f'fillcolor="{VISITED}"' in state_nodes["c__suspended_stale"]
    assert f'fillcolor="{VISITED}"' not in state_nodes["c__handshaking"]
    # Step 4 enters pending and leaves it at once (pending -> sent_ws): still passed through.
    assert f'fillcolor="{VISITED}"' in state_nodes["m1__pending"]
    assert f'fillcolor="{VISITED}"' not in state_nodes["m1__sending_rest"]


def label_text(dot: str) -> str:
    """The words of a DOT source, tags and line breaks taken out."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", dot)).replace("•", " ")
    return " ".join(text.split())


@pytest.mark.parametrize("env", list(ENVIRONMENTS))
def test_counterexample_says_why_its_last_state_violates(env: str) -> None:
    design = DESIGNS["pre-fix"]
    result = check(design, ENVIRONMENTS[env], catalog.MESSAGES)
    violated = [v for v in result.verdicts if not v.holds]
    assert violated
    for verdict in violated:
        assert verdict.explanation, verdict.id
        words = label_text(counterexample_dot(design, result, verdict))
        assert f"why this state violates {verdict.id}:" in words
        for reason in verdict.explanation:
            assert " ".join(reason_text(reason).split()) in words, (verdict.id, reason)


def test_diff_colours_removed_added_and_kept_edges() -> None:
    old, new = DESIGNS["pre-fix"], DESIGNS["fixed"]
    drawn = edges(diff_dot(MESSAGE, old, new))
    before = {r.edge for r in MESSAGE.table(old)}
    after = {r.edge for r in MESSAGE.table(new)}
    assert before - after
    assert after - before
    for s, e, t in before - after:
        assert any(
            (a, b) == (s.value, t.value) and f'color="{RED}"' in x and says(x, e.value)
            for a, b, x in drawn
        )
    for s, e, t in after - before:
        assert any(
            (a, b) == (s.value, t.value) and f'color="{GREEN}"' in x and says(x, e.value)
            for a, b, x in drawn
        )
    # The seed's fix: the swallowed send error (F1) is what pre-fix -> fixed removes.
    assert any("F1" in x and f'color="{RED}"' in x for _, _, x in drawn)


def test_composed_graph_groups_every_reachable_world() -> None:
    """A node per (connection state, message state), counting its worlds and those that
    violate each property; every edge between groups names its steps (label or tooltip)."""
    design = DESIGNS["pre-fix"]
    ex = explore(System(design, ENVIRONMENTS[cp.COMPOSED_ENVIRONMENT], 1))
    graph = cp.composed(design)
    dot = cp.composed_dot(graph)
    drawn = nodes(dot)
    groups = {cp.group_of(w) for w in ex.worlds}
    assert len(drawn) == len(groups) < len(ex.worlds) // 4
    words = {n: label_text(a) for n, a in drawn.items()}
    sizes = [re.search(r"(\d+) worlds?", w) for w in words.values()]
    assert sum(int(m[1]) for m in sizes if m is not None) == len(ex.worlds)
    assert all(m is not None for m in sizes)
    counts = graph.counts()
    assert counts["no-silent-loss"] > 0
    assert counts["connected-means-acked"] > 0
    for pid, count in counts.items():
        found = [int(m) for w in words.values() for m in re.findall(rf"(\d+) violate {pid}\b", w)]
        assert sum(found) == count, pid
    assert f'fillcolor="{VIOLATION_COLORS["no-silent-loss"]}"' in dot
    for tail, head, attrs in edges(dot):
        assert "tooltip=" in attrs or "label=" in attrs, (tail, head)
        assert "tooltip=" in attrs, (tail, head)
    # Each connection state is a row of its own.
    assert dot.count("rank=same") == len({g[0] for g in groups})
    assert all(v == 0 for k, v in cp.composed(DESIGNS["hardened"]).counts().items())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
@pytest.mark.parametrize("name", list(DESIGNS))
def test_composed_graph_fits_a_screen(name: str, tmp_path: Path) -> None:
    """Drawn at its natural size (72 dpi), the reachable graph is about one wide screen."""
    source = tmp_path / "composed.dot"
    source.write_text(cp.composed_dot(cp.composed(DESIGNS[name])), encoding="utf-8")
    svg = subprocess.run(
        ["dot", "-Tsvg", str(source)], capture_output=True, text=True, check=True
    ).stdout
    size = re.search(r'<svg width="(\d+)pt" height="(\d+)pt"', svg)
    assert size is not None
    width, height = int(size[1]), int(size[2])
    assert width <= 2400, width
    assert height <= 1400, height


@pytest.mark.parametrize("name", list(DESIGNS))
def test_composed_flags_are_the_property_registry_s(name: str) -> None:
    design = DESIGNS[name]
    graph = cp.composed(design)
    bad = violating_worlds(explore(System(design, ENVIRONMENTS[cp.COMPOSED_ENVIRONMENT], 1)))
    state_properties = [p.id for p in PROPERTIES if p.bad_states is not None]
    assert list(graph.properties) == list(bad) == state_properties
    assert list(graph.counts()) == state_properties
    for i, flags in enumerate(graph.flags):
        assert flags == tuple(pid for pid, states in bad.items() if states[i]), i


def test_composed_explores_once_and_asks_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    explored: list[Exploration] = []
    real = explore

    def counting(system: System) -> Exploration:
        explored.append(real(system))
        return explored[-1]

    def registry(ex: Exploration) -> dict[str, list[bool]]:
        assert ex is explored[-1]
        return {"no-duplicate-delivery": [i % 2 == 0 for i in range(len(ex.worlds))]}

    monkeypatch.setattr(cp, "explore", counting)
    monkeypatch.setattr(cp, "violating_worlds", registry)
    graph = cp.composed(DESIGNS["pre-fix"])
    assert len(explored) == 1
    assert graph.properties == ("no-duplicate-delivery",)
    assert graph.counts() == {"no-duplicate-delivery": (len(graph.worlds) + 1) // 2}
    dot = cp.composed_dot(graph)
    assert VIOLATION_COLORS["no-silent-loss"] not in dot
    assert f'fillcolor="{VIOLATION_COLORS["no-duplicate-delivery"]}"' in dot
    words = label_text(dot)
    assert (
        sum(map(int, re.findall(r"(\d+) violate no-duplicate-delivery", words)))
        == (graph.counts()["no-duplicate-delivery"])
    )


def with_message_ids(design: Design) -> Design:
    """``design`` with server-side dedup by client id, under the same name."""
    return design.model_copy(update={"message_ids": True})


def test_machine_diagrams_show_the_design_s_effects() -> None:
    fixed = DESIGNS["fixed"]
    variant = with_message_ids(fixed)
    # The tables are the same: only an effect outside the machines differs.
    assert select_behaviour(fixed).message.rows == select_behaviour(variant).message.rows
    assert select_behaviour(fixed).connection.rows == select_behaviour(variant).connection.rows
    for design in (*DESIGNS.values(), variant):
        for spec in SPECS.values():
            graph = machine_graph(spec, design)
            dot, mermaid = machine_dot(spec, design), machine_mermaid(spec, design)
            assert mermaid == machine_mermaid(spec, design)
            assert graph.blocks, "no effects block"
            for selected in select_behaviour(design).effects:
                assert html.escape(selected.describe(), quote=False) in dot
                assert selected.describe() in mermaid
    for spec in SPECS.values():
        assert machine_dot(spec, fixed) != machine_dot(spec, variant)
        assert machine_mermaid(spec, fixed) != machine_mermaid(spec, variant)
        assert "server_receives / count_copy" in machine_dot(spec, fixed)
        assert "server_receives / dedupe_copy" in machine_dot(spec, variant)
        assert "server_receives / dedupe_copy" in machine_mermaid(spec, variant)


def test_diff_lists_and_counts_effect_changes() -> None:
    fixed = DESIGNS["fixed"]
    variant = with_message_ids(fixed)
    (change,) = [c for c in effect_changes(fixed, variant) if c.change != "same"]
    assert change.change == "changed"
    assert change.hook.value == "server_receives"
    for spec in SPECS.values():
        dot = diff_dot(spec, fixed, variant)
        title = re.search(r"edges: [^<]*", dot)
        assert title is not None
        assert "0 removed, 0 added, 0 with new actions" in title[0]
        assert "effects: 0 removed, 0 added, 1 changed" in title[0]
        assert "count_copy" in dot
        assert "dedupe_copy" in dot
    # Designs that differ in their tables list their effect changes too.
    words = label_text(diff_dot(MESSAGE, DESIGNS["pre-fix"], fixed))
    assert "effects: 0 removed, 1 added, 0 changed" in words
    assert "+ accept / hold" in words


def sources(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.suffix in (".dot", ".mmd")
    }


def test_output_is_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_dot(monkeypatch)
    assert main(["diagrams", "--out", str(tmp_path / "a")]) == 0
    assert main(["diagrams", "--out", str(tmp_path / "b")]) == 0
    first, second = sources(tmp_path / "a"), sources(tmp_path / "b")
    assert first == second
    assert "pre-fix/counterexample-ios-suspend-no-silent-loss.dot" in first
    assert "diff/connection-pre-fix-to-fixed.dot" in first
    assert "hardened/message.mmd" in first


def test_without_dot_sources_are_still_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    no_dot(monkeypatch)
    out = tmp_path / "d"
    assert main(["diagrams", "--design", "pre-fix", "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "apt-get install graphviz" in err[0]
    assert (out / "pre-fix" / "connection.dot").is_file()
    assert (out / "pre-fix" / "connection.mmd").is_file()
    assert not list(out.rglob("*.svg"))
    assert not list(out.rglob("*.png"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_with_dot_svg_and_png_are_rendered(tmp_path: Path) -> None:
    assert main(["diagrams", "--design", "hardened", "--out", str(tmp_path)]) == 0
    svg = (tmp_path / "hardened" / "connection.svg").read_text(encoding="utf-8")
    assert "<svg" in svg
    assert "hardened · connection machine" in svg
    assert (tmp_path / "hardened" / "message.png").read_bytes().startswith(b"\x89PNG")


def test_check_passes_on_the_committed_diagrams(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagrams", "--check", "--out", str(REPO / "diagrams")]) == 0
    assert "up to date" in capsys.readouterr().out


def test_check_names_stale_missing_and_obsolete_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "diagrams"
    shutil.copytree(REPO / "diagrams", copy)
    stale = copy / "pre-fix" / "connection.dot"
    stale.write_text(stale.read_text(encoding="utf-8").replace("idle", "idle2", 1), "utf-8")
    (copy / "hardened" / "message.mmd").unlink()
    (copy / "fixed" / "counterexample-ios-suspend-gone.dot").write_text("digraph {}\n")
    before = sources(copy)
    assert main(["diagrams", "--check", "--out", str(copy)]) == 1
    out = capsys.readouterr().out
    assert f"stale: {stale}" in out
    assert f"missing: {copy / 'hardened' / 'message.mmd'}" in out
    assert "obsolete: " in out
    assert "counterexample-ios-suspend-gone.dot" in out
    assert sources(copy) == before, "--check wrote something"


def test_rewriting_prunes_obsolete_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_dot(monkeypatch)
    gone = tmp_path / "pre-fix" / "counterexample-ios-suspend-gone.dot"
    gone.parent.mkdir(parents=True)
    gone.write_text("digraph {}\n")
    keep = tmp_path / "notes.txt"
    keep.write_text("mine\n")
    assert main(["diagrams", "--out", str(tmp_path)]) == 0
    assert not gone.exists()
    assert keep.read_text() == "mine\n"


def test_bad_spec_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('based_on = "fixed"\nname = "bad"\nheartbeat = "often"\n', encoding="utf-8")
    assert main(["diagrams", "--spec", str(bad), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "bad.toml" in err
    assert "heartbeat" in err
    assert not (tmp_path / "out").exists()


def test_spec_may_not_take_a_built_in_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text('based_on = "pre-fix"\nname = "fixed"\n', encoding="utf-8")
    assert main(["diagrams", "--spec", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "built-in" in capsys.readouterr().err


def test_spec_design_is_diffed_against_the_closest_built_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_dot(monkeypatch)
    spec = tmp_path / "mine.toml"
    spec.write_text('based_on = "fixed"\nname = "mine"\nheartbeat = true\n', encoding="utf-8")
    assert main(["diagrams", "--spec", str(spec), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "mine" / "connection.dot").is_file()
    diff = (tmp_path / "out" / "diff" / "connection-fixed-to-mine.dot").read_text()
    assert "+heartbeat" in diff
    assert "ping_timeout" in diff


def test_staging_leaves_the_output_alone_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.dot").write_text("old\n")

    def interrupted() -> None:
        with Staging(out) as staging:
            staging.write("a.dot", "new\n")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        interrupted()
    assert (out / "a.dot").read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_output_that_is_a_file_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "taken"
    target.write_text("not a directory\n")
    assert main(["diagrams", "--design", "pre-fix", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "cannot write" in err
    assert target.read_text() == "not a directory\n"
