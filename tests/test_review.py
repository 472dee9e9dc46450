"""``fsm review``: the report's content comes from the checker, it is written
atomically and deterministically, and bad input is one line with exit code 2."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import WINDOW, browser_missing, open_page
from conftest import no_dot

from fsm.analysis.ablation import ablate
from fsm.analysis.checker import CheckResult, check
from fsm.analysis.explore import Exploration, explore
from fsm.analysis.properties import PROPERTIES
from fsm.analysis.report import reason_text
from fsm.analysis.system import System
from fsm.cli import INTERNAL_ERROR, main
from fsm.model.design import DESIGNS, ENVIRONMENTS
from fsm.model.forbidden import FORBIDDEN
from fsm.render import composed as cp
from fsm.render import review
from fsm.render.review import data as review_data
from fsm.render.text import trace_words

HAS_DOT = shutil.which("dot") is not None
BROWSER_MISSING = browser_missing()


@pytest.fixture
def rendered(shared_review: Path) -> Path:
    """The run's one review with Graphviz (when it is installed), which the tests
    below only read."""
    return shared_review


@pytest.fixture(scope="module")
def reports() -> dict[tuple[str, str], CheckResult]:
    return {(d, e): check(DESIGNS[d], ENVIRONMENTS[e], 2) for d in DESIGNS for e in ENVIRONMENTS}


def verdict_rows(markdown: str) -> dict[tuple[str, str], dict[str, str]]:
    """The verdict matrix of REVIEW.md: (design, environment) -> property -> yes/NO."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| design | environment |"))
    headers = [h.strip() for h in lines[start].strip("|").split("|")]
    rows: dict[tuple[str, str], dict[str, str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [re.sub(r"[*\[\]]|\(#[^)]*\)", "", c).strip() for c in line.strip("|").split("|")]
        row = dict(zip(headers, cells, strict=True))
        rows[(row["design"], row["environment"])] = row
    return rows


def test_verdict_matrix_is_the_checkers(
    rendered: Path, reports: dict[tuple[str, str], CheckResult]
) -> None:
    rows = verdict_rows((rendered / "REVIEW.md").read_text(encoding="utf-8"))
    assert set(rows) == set(reports)
    for key, report in reports.items():
        assert rows[key]["states"] == str(report.states)
        assert rows[key]["transitions"] == str(report.transitions)
        for pid in (p.id for p in PROPERTIES):
            assert rows[key][pid] == ("yes" if report.verdict(pid).holds else "NO"), (key, pid)
    # The seed bug and its cure, as the checker sees them.
    assert not reports[("pre-fix", "ios-suspend")].verdict("no-silent-loss").holds
    assert rows[("pre-fix", "ios-suspend")]["no-silent-loss"] == "NO"
    assert all(reports[("hardened", e)].holds for e in ENVIRONMENTS)
    assert all(rows[("hardened", e)][p.id] == "yes" for e in ENVIRONMENTS for p in PROPERTIES)


def test_review_has_every_section(rendered: Path) -> None:
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    for section in review.SECTIONS:
        assert f'<a id="{section.anchor}"></a>\n\n## {section.title}' in md
    for name in DESIGNS:
        # the seed scenario, the machines in Mermaid, the composed graph
        assert f"### {name} in ios-suspend" in md
        assert f"title: {name} · connection machine" in md
        assert f"title: {name} · message machine" in md
        assert f"({name}/composed-ios-suspend.svg)" in md
    assert md.count("```mermaid") == 2 * len(DESIGNS)
    assert "m2: lost" not in md  # outcomes are table cells, not prose
    assert "lost: the client shows sent_ws" in md
    for rule in FORBIDDEN:
        assert f'<a id="rule-{rule.id}"></a>' in md
        assert rule.evidence in md


def test_each_counterexample_has_a_table_and_a_diagram(
    rendered: Path, reports: dict[tuple[str, str], CheckResult]
) -> None:
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    for (design, env), report in reports.items():
        for v in report.verdicts:
            anchor = f"cex-{design}-{env}-{v.id}"
            if v.holds:
                assert anchor not in md
                continue
            assert f'<a id="{anchor}"></a>' in md, anchor
            assert f"(#{anchor})" in md, "the verdict matrix links to it"
            assert f"{design}/counterexample-{env}-{v.id}.svg" in md
            section = md.split(f'<a id="{anchor}"></a>', 1)[1].split("<a id=", 1)[0]
            assert v.trace is not None
            steps = [line for line in section.splitlines() if re.match(r"\| \*?\*?\d+", line)]
            assert len(steps) == len(v.trace) + 1  # the start row, then each step


def test_step_tables_say_why_the_shaded_state_violates(
    rendered: Path, reports: dict[tuple[str, str], CheckResult]
) -> None:
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    for (design, env), report in reports.items():
        for v in report.verdicts:
            if v.holds:
                continue
            assert v.explanation
            section = md.split(f'<a id="cex-{design}-{env}-{v.id}"></a>', 1)[1]
            table = next(c for c in section.split("\n\n") if c.startswith("| #")).splitlines()
            assert table[0].endswith("| transitions taken | why it violates |")
            *earlier, shaded = table[2:]
            cells = [c.strip() for c in shaded.strip("|").split("|")]
            assert cells[0] == f"**{len(v.trace or ())}**"
            for reason in v.explanation:
                assert review.md_text(reason_text(reason)) in cells[-1], (design, env, v.id)
            assert all(line.endswith("|  |") for line in earlier), "only the shaded row says why"


def test_review_explores_each_composed_graph_once(monkeypatch: pytest.MonkeyPatch) -> None:
    explored: list[Exploration] = []
    real = explore

    def counting(system: System) -> Exploration:
        explored.append(real(system))
        return explored[-1]

    monkeypatch.setattr(cp, "explore", counting)
    monkeypatch.setattr(review_data, "ablate", lambda *args, **kwargs: [])
    designs = list(DESIGNS.values())
    data = review.collect(designs)
    assert len(explored) == len(designs)
    md = review.markdown(data, rendered=False)
    for d in designs:
        graph = data.composed[d.name]
        counts = ", ".join(f"{k}: {v}" for k, v in graph.counts().items())
        assert (
            f"{len(graph.worlds)} states, {len(graph.edges)} distinct transitions; {counts}." in md
        )
    assert len(explored) == len(designs), "rendering the review explored again"


def test_links_are_relative_and_resolve(rendered: Path) -> None:
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#][^)]*)\)", md)
    assert targets
    for target in targets:
        assert not target.startswith(("/", "http")), target
        if HAS_DOT or not target.endswith((".svg", ".png")):
            assert (rendered / target).is_file(), target


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_html_is_self_contained(rendered: Path) -> None:
    page = (rendered / "review.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']https?:""", page)
    assert "<link" not in page
    svgs = page.count("<svg")
    assert svgs >= 2 * len(DESIGNS) + 4
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "inlined SVG ids collide"
    assert '<td class="no"><a href="#cex-pre-fix-ios-suspend-no-silent-loss">NO</a></td>' in page


@dataclass(frozen=True)
class PlainReview:
    """A review written without Graphviz, and what ``fsm review`` printed."""

    out: Path
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def plain_review(tmp_path_factory: pytest.TempPathFactory) -> PlainReview:
    """One ``fsm review`` without Graphviz, shared by the two tests below, which only
    read it."""
    out = tmp_path_factory.mktemp("plain") / "r"
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        no_dot(patch)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["review", "--out", str(out)])
    assert code == 0, stderr.getvalue()
    return PlainReview(out, stdout.getvalue(), stderr.getvalue())


def test_review_prints_where_it_is(plain_review: PlainReview) -> None:
    out = plain_review.out
    assert (
        plain_review.stdout == f"review written to {out / 'REVIEW.md'} and {out / 'review.html'}\n"
    )
    assert "apt-get install graphviz" in plain_review.stderr
    assert (out / "REVIEW.md").is_file()
    assert (out / "review.html").is_file()
    assert "not rendered" in (out / "review.html").read_text(encoding="utf-8")


def test_review_is_deterministic(
    plain_review: PlainReview, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run, from scratch, writes the same bytes as the first."""
    no_dot(monkeypatch)
    first, second = plain_review.out, tmp_path / "b"
    assert main(["review", "--out", str(second)]) == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*.*"))
    assert files
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.*"))
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


@pytest.mark.usefixtures("ablate_once")
def test_interrupted_review_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, review_copy: Path
) -> None:
    no_dot(monkeypatch)
    out = review_copy
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(review, "html_page", broken)
    spec = tmp_path / "mine.toml"
    spec.write_text('based_on = "fixed"\nname = "mine"\nheartbeat = true\n', encoding="utf-8")
    assert main(["review", "--out", str(out), "--spec", str(spec)]) == INTERNAL_ERROR
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.toml", "out"]


@pytest.mark.usefixtures("ablate_once")
def test_spec_files_join_the_review(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_dot(monkeypatch)
    spec = tmp_path / "mine.toml"
    spec.write_text('based_on = "fixed"\nname = "mine"\nheartbeat = true\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["review", "--out", str(out), "--spec", str(spec)]) == 0
    md = (out / "REVIEW.md").read_text(encoding="utf-8")
    rows = verdict_rows(md)
    mine = check(
        DESIGNS["fixed"].model_copy(update={"name": "mine", "heartbeat": True}),
        ENVIRONMENTS["half-open"],
        2,
    )
    assert rows[("mine", "half-open")]["no-silent-loss"] == (
        "yes" if mine.verdict("no-silent-loss").holds else "NO"
    )
    assert "### fixed → mine" in md
    assert (out / "diff" / "message-fixed-to-mine.dot").is_file()


@pytest.mark.usefixtures("ablate_once")
def test_two_socket_io_designs_side_by_side_show_the_loss_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """socket.io-client 4.7.5 loses the message the seed lost after a suspension; 4.8.4
    does not; the second design file is drawn against the first: the send-time check."""
    no_dot(monkeypatch)
    designs = Path(__file__).resolve().parents[1] / "designs"
    old, new = str(designs / "socketio-4.7.toml"), str(designs / "socketio-4.8.toml")
    out = tmp_path / "out"
    assert main(["review", "--out", str(out), "--spec", old, "--spec", new]) == 0
    md = (out / "REVIEW.md").read_text(encoding="utf-8")
    rows = verdict_rows(md)
    for env in ("ios-suspend", "ios-suspend-silent"):
        assert rows[("socketio-4.7", env)]["no-silent-loss"] == "NO"
        assert rows[("socketio-4.8", env)]["no-silent-loss"] == "yes"
    assert rows[("socketio-4.7", "half-open")]["no-silent-loss"] == "NO"
    assert rows[("socketio-4.8", "half-open")]["no-silent-loss"] == "NO"
    assert "### socketio-4.7 → socketio-4.8" in md
    section = md.split('<a id="diff-socketio-4.7-socketio-4.8"></a>', 1)[1].split("<a id=", 1)[0]
    assert "+send_deadline_check" in section
    assert "heartbeat_expired" in section
    assert "deadline_buffer" in section
    assert (out / "diff" / "connection-socketio-4.7-to-socketio-4.8.dot").is_file()


@pytest.mark.usefixtures("ablate_once")
def test_review_lists_effect_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A design that differs from ``fixed`` only outside its machines still gets a diff
    that says what changed."""
    no_dot(monkeypatch)
    spec = tmp_path / "ids.toml"
    spec.write_text('based_on = "fixed"\nname = "ids"\nmessage_ids = true\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["review", "--out", str(out), "--spec", str(spec)]) == 0
    md = (out / "REVIEW.md").read_text(encoding="utf-8")
    section = md.split('<a id="diff-fixed-ids"></a>', 1)[1].split("<a id=", 1)[0]
    assert "| effect | hook | fixed | ids |" in section
    assert "| changed | `server_receives` | count_copy | dedupe_copy |" in section
    for machine in ("connection", "message"):
        assert f"{machine} machine: 0 changed edges" in section
        dot = (out / "diff" / f"{machine}-fixed-to-ids.dot").read_text(encoding="utf-8")
        assert "effects: 0 removed, 0 added, 1 changed" in dot


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('based_on = "fixed"\nname = "bad"\nmax_rest_attempts = 9\n', "max_rest_attempts"),
        ("this is not toml", "invalid TOML"),
    ],
)
def test_bad_spec_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str
) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["review", "--out", str(out), "--spec", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert needle in err
    assert "bad.toml" in err
    assert not out.exists()


def test_missing_spec_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["review", "--out", str(tmp_path / "o"), "--spec", str(tmp_path / "no.toml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no.toml" in err


def test_ablation_tables_come_from_the_checker(rendered: Path) -> None:
    """Each row of 'What each feature buys' is what ``ablate`` finds for that feature."""
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    section = md.split('<a id="ablation"></a>')[1].split("<a id=")[0]
    rows = {
        r.feature: r
        for r in ablate(DESIGNS["hardened"], DESIGNS["seed-system"], list(ENVIRONMENTS.values()))
    }
    hardened = section.split("### hardened, against seed-system")[1]
    for feature, row in rows.items():
        line = next(line for line in hardened.splitlines() if line.startswith(f"| `{feature}` |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        for env, cell in zip(ENVIRONMENTS, cells[2:], strict=True):
            assert cell == (", ".join(row.breaks[env]) or "**nothing**"), (feature, env)


def test_the_review_says_which_designs_depend_on_the_send_raising(rendered: Path) -> None:
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    section = md.split("### Does it depend on the send raising?")[1].split("###")[0]
    assert "**fixed** depends on the send raising" in section
    assert "lost in 4 steps" in section
    assert "**pre-fix** loses the message whichever way the send fails" in section
    assert "**hardened** keeps the message whichever way the send fails" in section


# -- in a real browser ------------------------------------------------------------------
def run(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed: no diagrams to show")
@pytest.mark.skipif(BROWSER_MISSING is not None, reason=f"no headless browser: {BROWSER_MISSING}")
def test_review_html_in_chromium(rendered: Path, tmp_path: Path) -> None:
    """The page copied on its own, in headless Chromium: every link resolves, the story
    is on the first screen, every diagram renders and the console stays clean."""
    page = tmp_path / "mailed" / "review.html"
    page.parent.mkdir()
    shutil.copyfile(rendered / "review.html", page)
    with open_page(page) as driver:
        # Every link works with the file on its own: an anchor of this page.
        links = run(
            driver,
            "return [...document.querySelectorAll('[href]')].map(a => a.getAttribute('href'))",
        )
        assert links
        outside = [h for h in links if not h.startswith(("#", "data:"))]
        assert not outside, f"links that break when the page is mailed alone: {outside[:5]}"
        broken = run(
            driver,
            "return [...document.querySelectorAll('a[href^=\"#\"]')]"
            ".map(a => a.getAttribute('href').slice(1))"
            ".filter(id => !document.getElementById(decodeURIComponent(id)))",
        )
        assert not broken, f"in-page links to nothing: {broken}"
        assert run(driver, "return document.querySelectorAll('img').length") == 0

        # The story is what the first screen shows, above the verdict table.
        assert run(driver, "return window.innerHeight") <= WINDOW[1]
        story = run(driver, "return document.getElementById('story').getBoundingClientRect().top")
        assert 0 <= story < run(driver, "return window.innerHeight") / 2
        first = run(driver, "return document.querySelector('#story + ul li').innerText")
        assert first.startswith("pre-fix loses a message")
        order = run(
            driver,
            "return ['story', 'story-bug', 'story-fix', 'send-raising', 'verdicts']"
            ".map(id => document.getElementById(id).getBoundingClientRect().top)",
        )
        assert order == sorted(order), order
        screenshot = tmp_path / "first-screen.png"
        screenshot.write_bytes(driver.get_screenshot_as_png())
        assert screenshot.stat().st_size > 10_000

        # Every diagram renders, the ones folded in <details> once opened.
        run(driver, "document.querySelectorAll('details').forEach(d => d.open = true)")
        sizes = run(
            driver,
            "return [...document.querySelectorAll('figure')].map(f => {"
            " const s = f.querySelector('svg');"
            " if (!s) return [f.innerText.slice(0, 80), 0, 0];"
            " const r = s.getBoundingClientRect();"
            " return [f.innerText.slice(0, 80), r.width, r.height]; })",
        )
        assert len(sizes) >= 2 * 2 * len(DESIGNS) + 2
        empty = [title for title, w, h in sizes if w < 50 or h < 50]
        assert not empty, f"diagrams that do not render: {empty}"
        bug = run(
            driver,
            "return document.querySelector('#story-bug ~ figure svg').getBoundingClientRect().top",
        )
        assert bug > story

        # A clean console: no error from the page or its SVGs.
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors


# -- the story first ----------------------------------------------------------------------
def test_the_review_opens_with_the_story(
    rendered: Path, reports: dict[tuple[str, str], CheckResult]
) -> None:
    """Before the verdict table: per design what it loses or duplicates, where and by which
    shortest trace (from the checker), the seed's bug drawn, the seed's fix as a diff,
    and the send question."""
    md = (rendered / "REVIEW.md").read_text(encoding="utf-8")
    story = md.split('<a id="story"></a>', 1)[1].split('<a id="about"></a>', 1)[0]
    assert md.index('<a id="story"></a>') < md.index('<a id="verdicts"></a>')
    assert md.index("## What the checker found") < md.index("## Verdicts")
    first = story.split('<a id="story-bug"></a>', 1)[0]
    bullets = [line for line in first.splitlines() if line.startswith("- **")]
    for name in DESIGNS:
        (line,) = [b for b in bullets if b.startswith(f"- **{name}**")]
        lost = [e for e in ENVIRONMENTS if not reports[(name, e)].verdict("no-silent-loss").holds]
        assert ("loses a message in " in line) == bool(lost), name
        if lost:
            env = min(
                lost, key=lambda e: len(reports[(name, e)].verdict("no-silent-loss").trace or ())
            )
            trace = reports[(name, env)].verdict("no-silent-loss").trace
            assert trace is not None
            assert f"`{trace_words(trace)}`" in line
            assert f"(#cex-{name}-{env}-no-silent-loss)" in line
        twice = any(
            not reports[(name, e)].verdict("no-duplicate-delivery").holds for e in ENVIRONMENTS
        )
        assert ("delivers a message twice in " in line) == twice, name
        if all(reports[(name, e)].holds for e in ENVIRONMENTS):
            assert "keeps every property in every environment" in line
    bug = story.index("pre-fix/counterexample-ios-suspend-no-silent-loss.svg")
    fix = story.index("diff/message-pre-fix-to-fixed.svg")
    send = story.index("### Does it depend on the send raising?")
    assert bug < fix < send


def test_reachability_counterexamples_say_why_nothing_settles(
    reports: dict[tuple[str, str], CheckResult],
) -> None:
    found = 0
    for report in reports.values():
        for v in report.verdicts:
            if v.holds or v.property.kind.name != "reachability":
                continue
            found += 1
            text = " ".join(reason_text(r) for r in v.explanation)
            assert "no continuation" in text, (report.design.name, v.id)
            assert "confirms it or shows it failed" in text or "settles all of them" in text
    assert found


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_html_links_only_within_itself(rendered: Path) -> None:
    """Mailed alone, the page still works: every link is an anchor of the page."""
    page = (rendered / "review.html").read_text(encoding="utf-8")
    hrefs = re.findall(r'\bhref="([^"]*)"', page)
    assert hrefs
    assert [h for h in hrefs if not h.startswith("#")] == []
    ids = set(re.findall(r'\bid="([^"]+)"', page))
    assert {h[1:] for h in hrefs} <= ids
    assert "src=" not in page


def test_the_readme_shows_the_review_screenshot() -> None:
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "](diagrams/review-screenshot.png)" in readme
    png = root / "diagrams" / "review-screenshot.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
