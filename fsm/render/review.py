"""The design review: one document, rendered to Markdown and to HTML.

``fsm review`` checks every built-in design (and any design files) in both
built-in environments, renders the diagrams of :mod:`fsm.render.diagrams`, and writes
a design review twice from one document: ``REVIEW.md`` (GitHub renders its
tables, images and Mermaid blocks) and ``review.html`` (one self-contained page,
SVGs and CSS inline, no script).
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fsm.analysis.ablation import AblationRow, ablate
from fsm.analysis.properties import PROPERTIES
from fsm.analysis.report import CheckReport, StepView
from fsm.analysis.scenario import ScenarioReport, get_scenario, run
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design, load_design
from fsm.model.forbidden import FORBIDDEN
from fsm.render import diagrams as dg
from fsm.render.text import TRACE_HEADERS, message_cell, trace_rows

__all__ = [
    "DEFAULT_OUT",
    "ReviewData",
    "collect",
    "html_page",
    "markdown",
    "review_designs",
]

DEFAULT_OUT = "diagrams"
SCENARIO = "seed-verification"


def review_designs(specs: Sequence[str]) -> list[Design]:
    """The built-in designs, then those of ``specs`` (a spec equal to a built-in is dropped)."""
    designs = list(DESIGNS.values()) + [load_design(path) for path in specs]
    dg.check_names(designs)
    unique: dict[str, Design] = {}
    for d in designs:
        unique.setdefault(d.name, d)
    return list(unique.values())


# -- the data -------------------------------------------------------------------------
@dataclass
class ReviewData:
    """Everything the review shows, computed once."""

    designs: list[Design]
    reports: dict[tuple[str, str], CheckReport]
    scenarios: dict[tuple[str, str], ScenarioReport]
    diagrams: list[dg.Diagram]
    #: (design, baseline) -> each feature set back, for consecutive built-in designs.
    ablations: dict[tuple[str, str], list[AblationRow]] = field(default_factory=dict)

    def report(self, design: str, env: str) -> CheckReport:
        return self.reports[(design, env)]

    def diagram(self, path: str) -> dg.Diagram | None:
        return next((d for d in self.diagrams if d.path == path), None)


def collect(designs: Sequence[Design]) -> ReviewData:
    """Check, replay the seed scenario and build the diagrams for ``designs``."""
    reports = dg.run_checks(designs)
    scenario = get_scenario(SCENARIO)
    scenarios = {
        (d.name, env): run(scenario, d, ENVIRONMENTS[env]) for d in designs for env in ENVIRONMENTS
    }
    builtins = list(DESIGNS)
    envs = list(ENVIRONMENTS.values())
    ablations = {
        (later, earlier): ablate(DESIGNS[later], DESIGNS[earlier], envs, dg.MESSAGES)
        for earlier, later in itertools.pairwise(builtins)
    }
    return ReviewData(list(designs), reports, scenarios, dg.build(designs, reports), ablations)


# -- a small document model, rendered to Markdown and to HTML ------------------------------
@dataclass(frozen=True)
class B:
    """Bold text."""

    text: str


@dataclass(frozen=True)
class C:
    """Code (an identifier)."""

    text: str


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    bold: bool = False


@dataclass(frozen=True)
class Verdict:
    """yes / NO, optionally linking to the counterexample."""

    holds: bool
    href: str = ""


Inline = str | B | C | Link | Verdict
Text = Sequence[Inline]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    parts: Text


@dataclass(frozen=True)
class Bullets:
    items: Sequence[Text]


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[Text]]
    #: Row indexes to shade (the violating state of a trace).
    marked: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Figure:
    diagram: dg.Diagram
    #: Large graphs scroll in the HTML page instead of shrinking to its width.
    scroll: bool = False


@dataclass(frozen=True)
class Mermaid:
    source: str


@dataclass(frozen=True)
class Details:
    summary: str
    blocks: Sequence[Block] = field(default_factory=tuple)


Block = Heading | Para | Bullets | Table | Figure | Mermaid | Details


# -- building the document ---------------------------------------------------------------
TITLE = "Design review: chat transport resilience"


def _yesno(flag: bool) -> str:
    return "yes" if flag else "no"


def _cex_anchor(design: str, env: str, prop: str) -> str:
    return f"cex-{design}-{env}-{prop}"


def _steps(n: int) -> str:
    return f"{n} step" if n == 1 else f"{n} steps"


def _step_table(design: Design, steps: Sequence[StepView], messages: int) -> Table:
    rows: list[list[Text]] = []
    for n, cells in enumerate(trace_rows(steps, messages)):
        fired = ""
        if n:
            fired = "; ".join(
                f"{f.machine}: {f.source} -{f.event}-> {f.target}" for f in steps[n - 1].fired
            )
        event: Inline = B(cells[1]) if n else cells[1]
        rows.append([[cells[0]], [event], *([c] for c in cells[2:]), [fired]])
    headers = [*TRACE_HEADERS, *(f"m{i + 1}" for i in range(messages)), "transitions taken"]
    return Table(headers, rows, frozenset({len(steps)}) if steps else frozenset())


def _verdict_section(data: ReviewData) -> list[Block]:
    headers = ["design", "environment", "states", "transitions", *(p.id for p in PROPERTIES)]
    rows: list[list[Text]] = []
    for d in data.designs:
        for env in ENVIRONMENTS:
            report = data.report(d.name, env)
            cells: list[Text] = [
                [B(d.name)],
                [env],
                [str(report.states)],
                [str(report.transitions)],
            ]
            for pid in (p.id for p in PROPERTIES):
                p = report.property(pid)
                href = "" if p.holds else "#" + _cex_anchor(d.name, env, pid)
                cells.append([Verdict(p.holds, href)])
            rows.append(cells)
    findings: list[Text] = []
    for d in data.designs:
        broken: dict[str, list[str]] = {}
        for env in ENVIRONMENTS:
            for p in data.report(d.name, env).properties:
                if not p.holds:
                    broken.setdefault(p.id, []).append(env)
        if not broken:
            findings.append([B(d.name), ": every property holds in every environment."])
            continue
        parts = [f"{pid} ({', '.join(envs)})" for pid, envs in broken.items()]
        findings.append([B(d.name), ": violates " + "; ".join(parts) + "."])
    blocks: list[Block] = [
        Heading(2, "Verdicts", "verdicts"),
        Para(
            [
                f"Every design is explored exhaustively with {dg.MESSAGES} messages in each "
                "environment; states and transitions count the reachable composed system. ",
                "A ",
                B("NO"),
                " links to its shortest counterexample.",
            ]
        ),
        Table(headers, rows),
        Bullets(findings),
        Heading(3, "Properties"),
        Bullets([[C(p.id), f": {p.statement}"] for p in PROPERTIES]),
        Heading(3, "Environments"),
        Bullets([[C(e.name), f": {e.summary}"] for e in ENVIRONMENTS.values()]),
    ]
    return blocks


def _designs_section(data: ReviewData) -> list[Block]:
    names = [d.name for d in data.designs]
    features = list(data.designs[0].features())
    rows: list[list[Text]] = [[[B("summary")], *([d.summary] for d in data.designs)]]
    for feature in features:
        cells: list[Text] = [[C(feature)]]
        for d in data.designs:
            value = d.features()[feature]
            cells.append([_yesno(value) if isinstance(value, bool) else str(value)])
        rows.append(cells)
    return [
        Heading(2, "Designs", "designs"),
        Para(["Each design is a set of named features; its tables are the rows those select."]),
        Table(["feature", *names], rows),
    ]


def _ablation_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "What each feature buys", "ablation"),
        Para(
            [
                "Each feature a built-in design adds is set back to the previous design's "
                "value, one at a time, and the variant is checked again. A cell lists the "
                "properties the design held that the variant violates; ",
                B("nothing"),
                " means no property in this model depends on that feature (it may still "
                "buy latency or comfort). Produced by ",
                C("fsm ablate"),
                ".",
            ]
        ),
    ]
    envs = list(ENVIRONMENTS)
    for (design, baseline), rows in data.ablations.items():
        body: list[list[Text]] = []
        for row in rows:
            change: Text = [C(f"{row.value}"), " → ", C(f"{row.baseline}")]
            if row.invalid is not None:
                body.append(
                    [[C(row.feature)], change, [f"cannot be set back alone: {row.invalid}"]]
                    + [[""] for _ in envs[1:]]
                )
                continue
            body.append(
                [[C(row.feature)], change]
                + [
                    [", ".join(row.breaks[env]) if row.breaks[env] else B("nothing")]
                    for env in envs
                ]
            )
        blocks.append(Heading(3, f"{design}, against {baseline}"))
        blocks.append(Table(["feature", "set back", *envs], body))
    return blocks


def _scenario_section(data: ReviewData) -> list[Block]:
    scenario = get_scenario(SCENARIO)
    blocks: list[Block] = [
        Heading(2, "Seed verification", "seed-verification"),
        Para(
            [
                f"{scenario.summary} The scripted steps are replayed on each design; a step "
                "the design makes impossible is skipped. The outcome in each environment:"
            ]
        ),
    ]
    rows: list[list[Text]] = []
    for d in data.designs:
        for env in ENVIRONMENTS:
            report = data.scenarios[(d.name, env)]
            rows.append(
                [
                    [B(d.name)],
                    [env],
                    *([_fate(fate)] for fate in report.outcome.values()),
                ]
            )
    first = next(iter(data.scenarios.values()))
    blocks.append(Table(["design", "environment", *first.outcome], rows))
    env = next(iter(ENVIRONMENTS))
    for d in data.designs:
        report = data.scenarios[(d.name, env)]
        blocks.append(Heading(3, f"{d.name} in {env}"))
        blocks.append(_scenario_table(report, scenario.messages))
    return blocks


def _fate(fate: str) -> Inline:
    return B(fate) if fate.startswith("lost") else fate


def _scenario_table(report: ScenarioReport, messages: int) -> Table:
    names = [f"m{i + 1}" for i in range(messages)]
    rows: list[list[Text]] = []
    for s in report.steps:
        label = s.stimulus + (f" {s.message}" if s.message else "")
        if s.step is None:
            rows.append(
                [
                    [str(s.index)],
                    [label],
                    ["(not possible: skipped)"],
                    *([[""]] * (3 + messages)),
                    [s.why],
                ]
            )
            continue
        v = s.step
        rows.append(
            [
                [str(s.index)],
                [B(label)],
                [v.detail],
                [v.connection],
                [v.socket],
                ["fg" if v.foreground else "bg"],
                *([message_cell(m.state, m.held, m.on_server)] for m in v.messages),
                [s.why],
            ]
        )
    return Table(["#", "event", "detail", "connection", "socket", "app", *names, "why"], rows)


def _machines_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Machines", "machines"),
        Para(
            [
                "Each design's connection and message tables. Red bold edges are forbidden "
                "transitions the design has; dashed red edges are F-rules it respects. "
                "Events listed inside a state leave it where it is. The Mermaid version "
                "under each diagram is the same table."
            ]
        ),
    ]
    for d in data.designs:
        blocks.append(Heading(3, d.name, f"machines-{d.name}"))
        blocks.append(Para([d.summary]))
        for spec in dg.SPECS:
            diagram = data.diagram(f"{d.name}/{spec.name}")
            if diagram is None:
                continue
            blocks.append(Figure(diagram))
            if diagram.mermaid:
                blocks.append(
                    Details(f"{d.name}: {spec.name} machine in Mermaid", [Mermaid(diagram.mermaid)])
                )
    return blocks


def _rules_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Forbidden transitions", "forbidden"),
        Para(
            [
                "Transitions no design may take. A design ",
                B("has"),
                " a rule when a row of its table matches it, and ",
                B("reaches"),
                " it when some reachable step fires such a row.",
            ]
        ),
    ]
    envs = list(ENVIRONMENTS)
    for rule in FORBIDDEN:
        blocks.append(Heading(3, f"{rule.id}: {rule.machine} machine", f"rule-{rule.id}"))
        items: list[Text] = [["reason: ", rule.reason], ["evidence: ", rule.evidence]]
        scope = dg.rule_scope(rule)
        if scope:
            items.append(["scope: ", scope])
        blocks.append(Bullets(items))
        rows: list[list[Text]] = []
        traces: list[Block] = []
        for d in data.designs:
            results = {env: data.report(d.name, env) for env in envs}
            first = next(r for r in results[envs[0]].forbidden if r.id == rule.id)
            edges = "; ".join(first.edges)
            cells: list[Text] = [[B(d.name)], [edges or "no"]]
            for env in envs:
                res = next(r for r in results[env].forbidden if r.id == rule.id)
                if res.reachable and res.counterexample is not None:
                    steps = _steps(len(res.counterexample))
                    cells.append([B(f"yes, in {steps}")])
                    traces.append(
                        Details(
                            f"{rule.id} reached in {d.name} ({env}) in {steps}",
                            [_step_table(d, res.counterexample, results[env].messages)],
                        )
                    )
                else:
                    cells.append(["no"])
            rows.append(cells)
        blocks.append(
            Table(["design", "in its table", *(f"reached in {env}" for env in envs)], rows)
        )
        blocks += traces
    return blocks


def _diffs_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Design diffs", "diffs"),
        Para(
            [
                "Edges removed (red, dashed), added (green) and given new actions (amber) "
                "from one design to the next; unchanged edges are grey."
            ]
        ),
    ]
    for old, new in dg.diff_pairs(data.designs):
        blocks.append(Heading(3, f"{old.name} → {new.name}", f"diff-{old.name}-{new.name}"))
        blocks.append(Para(["Features: ", ", ".join(dg.feature_changes(old, new)) or "none"]))
        for spec in dg.SPECS:
            diagram = data.diagram(dg.diff_path(spec.name, old.name, new.name))
            if diagram is None:
                continue
            blocks.append(Figure(diagram))
            rows: list[list[Text]] = []
            for change, row, actions in dg.edge_changes(spec, old, new):
                rules = [r.id for r in FORBIDDEN if r.machine == spec.name and r.matches_row(row)]
                rows.append(
                    [
                        [B(change) if rules else change],
                        [row.source.value],
                        [row.event.value],
                        [row.target.value],
                        [actions],
                        [Link(rule, f"#rule-{rule}") for rule in rules],
                    ]
                )
            blocks.append(
                Details(
                    f"{spec.name} machine: {len(rows)} changed edges",
                    [Table(["change", "from", "event", "to", "actions", "F-rule"], rows)],
                )
            )
    return blocks


def _counterexamples_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Counterexamples", "counterexamples"),
        Para(
            [
                "The shortest trace to each violation, found by breadth-first search. The "
                "shaded row is the state that violates the property; the diagram draws the "
                "same steps over the machines, numbered."
            ]
        ),
    ]
    any_found = False
    for d in data.designs:
        for env in ENVIRONMENTS:
            report = data.report(d.name, env)
            for p in report.properties:
                if p.holds or not p.counterexample:
                    continue
                any_found = True
                blocks.append(
                    Heading(3, f"{d.name} · {env} · {p.id}", _cex_anchor(d.name, env, p.id))
                )
                parts: list[Inline] = [
                    C(p.id),
                    f": {p.statement}. Violated after {_steps(len(p.counterexample))}",
                ]
                if p.rule:
                    parts += [", by the forbidden transition ", Link(p.rule, f"#rule-{p.rule}")]
                blocks.append(Para([*parts, "."]))
                blocks.append(_step_table(d, p.counterexample, report.messages))
                diagram = data.diagram(dg.counterexample_path(d.name, env, p.id))
                if diagram is not None:
                    blocks.append(Details(f"diagram: {d.name} · {env} · {p.id}", [Figure(diagram)]))
    if not any_found:
        blocks.append(Para(["Every property holds in every design: there is no counterexample."]))
    return blocks


def _composed_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Reachable states", "composed"),
        Para(
            [
                "The whole reachable composed system of each design with one message in ",
                C(dg.COMPOSED_ENVIRONMENT),
                ". Coloured worlds violate a property: red lost, orange duplicated, purple "
                "connected before the handshake, grey unable to ever settle.",
            ]
        ),
    ]
    for d in data.designs:
        diagram = data.diagram(dg.composed_path(d.name))
        if diagram is None:
            continue
        graph = dg.composed(d)
        counts = ", ".join(f"{k}: {v}" for k, v in graph.counts().items())
        blocks.append(Heading(3, d.name, f"composed-{d.name}"))
        blocks.append(
            Para(
                [f"{len(graph.worlds)} states, {len(graph.edges)} distinct transitions; {counts}."]
            )
        )
        blocks.append(Details(f"reachable states of {d.name}", [Figure(diagram, scroll=True)]))
    return blocks


SECTIONS = (
    ("Verdicts", "verdicts"),
    ("Designs", "designs"),
    ("What each feature buys", "ablation"),
    ("Seed verification", "seed-verification"),
    ("Machines", "machines"),
    ("Forbidden transitions", "forbidden"),
    ("Design diffs", "diffs"),
    ("Counterexamples", "counterexamples"),
    ("Reachable states", "composed"),
)


def document(data: ReviewData) -> list[Block]:
    """The review as blocks; :func:`markdown` and :func:`html_page` render them."""
    intro = Para(
        [
            "Generated by ",
            C("fsm review"),
            " (",
            C("make review"),
            ") from the transition tables in ",
            C("fsm/model.py"),
            " and the designs in ",
            C("fsm/design.py"),
            "; regenerate rather than edit. Designs: ",
            ", ".join(d.name for d in data.designs),
            ". Environments: ",
            ", ".join(ENVIRONMENTS),
            ".",
        ]
    )
    contents = Bullets([[Link(title, "#" + anchor)] for title, anchor in SECTIONS])
    return [
        Heading(1, TITLE),
        intro,
        contents,
        *_verdict_section(data),
        *_designs_section(data),
        *_ablation_section(data),
        *_scenario_section(data),
        *_machines_section(data),
        *_rules_section(data),
        *_diffs_section(data),
        *_counterexamples_section(data),
        *_composed_section(data),
    ]


# -- Markdown -----------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*\[\]<|])|(?<!\w)_|_(?!\w)")


def _md_text(text: str) -> str:
    """``text`` with Markdown's markup characters escaped (an underscore inside a
    word is no markup on GitHub, so ``sent_ws`` stays as it is)."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _md_inline(parts: Text) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(_md_text(part))
        elif isinstance(part, B):
            out.append(f"**{_md_text(part.text)}**" if part.text else "")
        elif isinstance(part, C):
            out.append(f"`{part.text}`")
        elif isinstance(part, Link):
            text = f"**{_md_text(part.text)}**" if part.bold else _md_text(part.text)
            out.append(f"[{text}]({part.href})")
        else:
            word = "yes" if part.holds else "**NO**"
            out.append(f"[{word}]({part.href})" if part.href else word)
    return "".join(out)


def _md_block(block: Block, rendered: bool) -> list[str]:
    if isinstance(block, Heading):
        anchor = f'<a id="{block.anchor}"></a>\n\n' if block.anchor else ""
        return [f"{anchor}{'#' * block.level} {_md_text(block.text)}"]
    if isinstance(block, Para):
        return [_md_inline(block.parts)]
    if isinstance(block, Bullets):
        return ["\n".join(f"- {_md_inline(item)}" for item in block.items)]
    if isinstance(block, Table):
        lines = [
            "| " + " | ".join(_md_text(h) for h in block.headers) + " |",
            "|" + "---|" * len(block.headers),
        ]
        for n, row in enumerate(block.rows):
            cells = [_md_inline(cell) for cell in row]
            if n in block.marked:
                cells = [f"**{c}**" if c and not c.startswith("**") else c for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
        return ["\n".join(lines)]
    if isinstance(block, Figure):
        path = block.diagram.path
        links = [f"[DOT]({path}.dot)"]
        if block.diagram.mermaid is not None:
            links.append(f"[Mermaid]({path}.mmd)")
        if not rendered:
            return [f"_{_md_text(block.diagram.title)}: not rendered; " + " · ".join(links) + "_"]
        image = f"[![{_md_text(block.diagram.title)}]({path}.svg)]({path}.svg)"
        return [image + "\n\n" + " · ".join([f"[SVG]({path}.svg)", f"[PNG]({path}.png)", *links])]
    if isinstance(block, Mermaid):
        return ["```mermaid\n" + block.source.rstrip("\n") + "\n```"]
    inner = [part for b in block.blocks for part in _md_block(b, rendered)]
    return [f"<details>\n<summary>{html.escape(block.summary)}</summary>", *inner, "</details>"]


def markdown(data: ReviewData, rendered: bool = True) -> str:
    """``REVIEW.md``: the review for GitHub, image links relative to its directory."""
    parts = [part for block in document(data) for part in _md_block(block, rendered)]
    return "\n\n".join(parts) + "\n"


# -- HTML ---------------------------------------------------------------------------------
CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1a202c;
  margin: 0; background: #f4f6fa; }
main { max-width: 1560px; margin: 0 auto; padding: 24px 32px 64px; background: white; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e2e8f0; }
h3 { font-size: 17px; margin: 28px 0 6px; }
code { font: 13px/1.4 "SFMono-Regular", Menlo, Consolas, monospace; background: #edf2f7;
  padding: 1px 4px; border-radius: 3px; }
a { color: #2b6cb0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border: 1px solid #cbd5e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #edf2f7; }
tr.marked td { background: #fed7d7; }
td.yes { background: #e6f4ea; color: #22543d; text-align: center; }
td.no { background: #fed7d7; color: #822727; font-weight: bold; text-align: center; }
td.no a { color: #822727; }
figure { margin: 12px 0; }
figure .svg { overflow-x: auto; border: 1px solid #e2e8f0; border-radius: 6px; padding: 6px; }
figure .svg svg { max-width: 100%; height: auto; }
figure .svg.scroll { max-height: 900px; overflow: auto; }
figure .svg.scroll svg { max-width: none; }
figcaption { font-size: 12px; color: #5a6678; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #2b6cb0; }
pre { background: #f7fafc; border: 1px solid #e2e8f0; padding: 8px; overflow-x: auto;
  font-size: 12px; }
.missing { color: #822727; }
"""


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_inline(parts: Text) -> str:
    out = []
    for part in parts:
        if isinstance(part, str):
            out.append(_h(part))
        elif isinstance(part, B):
            out.append(f"<strong>{_h(part.text)}</strong>")
        elif isinstance(part, C):
            out.append(f"<code>{_h(part.text)}</code>")
        elif isinstance(part, Link):
            text = f"<strong>{_h(part.text)}</strong>" if part.bold else _h(part.text)
            out.append(f'<a href="{_h(part.href)}">{text}</a>')
        else:
            word = "yes" if part.holds else "NO"
            out.append(f'<a href="{_h(part.href)}">{word}</a>' if part.href else word)
    return "".join(out)


_SVG_HEAD = re.compile(r"^.*?(?=<svg\b)", re.S)
_SVG_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SVG_ID = re.compile(r'\bid="([^"]+)"')
_SVG_REF = re.compile(r'(url\(#|xlink:href="#|href="#)([^")]+)')


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to inline: no prolog or comments, ids made unique."""
    svg = _SVG_HEAD.sub("", svg, count=1)
    svg = _SVG_COMMENT.sub("", svg)
    svg = _SVG_ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _SVG_REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    return svg.strip()


def _html_block(block: Block, root: Path, rendered: bool, counter: list[int]) -> str:
    if isinstance(block, Heading):
        anchor = f' id="{_h(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{anchor}>{_h(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{_html_inline(block.parts)}</p>"
    if isinstance(block, Bullets):
        items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
        return f"<ul>{items}</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_h(h)}</th>" for h in block.headers)
        rows = []
        for n, row in enumerate(block.rows):
            cells = []
            for cell in row:
                verdicts = [p for p in cell if isinstance(p, Verdict)]
                cls = ""
                if verdicts:
                    cls = ' class="yes"' if verdicts[0].holds else ' class="no"'
                cells.append(f"<td{cls}>{_html_inline(cell)}</td>")
            marked = ' class="marked"' if n in block.marked else ""
            rows.append(f"<tr{marked}>{''.join(cells)}</tr>")
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    if isinstance(block, Figure):
        d = block.diagram
        links = [f'<a href="{_h(d.path)}.dot">DOT</a>']
        if d.mermaid is not None:
            links.append(f'<a href="{_h(d.path)}.mmd">Mermaid</a>')
        svg = dg.svg_of(root, d) if rendered else None
        if svg is None:
            body = '<p class="missing">not rendered: Graphviz was not available</p>'
        else:
            counter[0] += 1
            links = [
                f'<a href="{_h(d.path)}.svg">SVG</a>',
                f'<a href="{_h(d.path)}.png">PNG</a>',
                *links,
            ]
            cls = "svg scroll" if block.scroll else "svg"
            body = f'<div class="{cls}">{inline_svg(svg, f"g{counter[0]}")}</div>'
        caption = f"<figcaption>{_h(d.title)} · {' · '.join(links)}</figcaption>"
        return f"<figure>{body}{caption}</figure>"
    if isinstance(block, Mermaid):
        return f"<pre>{_h(block.source)}</pre>"
    inner = "\n".join(_html_block(b, root, rendered, counter) for b in block.blocks)
    return f"<details><summary>{_h(block.summary)}</summary>\n{inner}\n</details>"


def html_page(data: ReviewData, root: Path, rendered: bool = True) -> str:
    """``review.html``: the same review as one page, each SVG read from ``root``."""
    counter = [0]
    body = "\n".join(_html_block(b, root, rendered, counter) for b in document(data))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(TITLE)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
