"""The sections of the review, each declared once (title, anchor, builder) in
:data:`SECTIONS`: the document's headings and its table of contents both come
from that list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fsm.analysis.properties import PROPERTIES
from fsm.analysis.report import reason_text
from fsm.analysis.scenario import ScenarioReport, get_scenario
from fsm.model.design import ENVIRONMENTS, Design
from fsm.model.forbidden import FORBIDDEN
from fsm.render import catalog
from fsm.render.composed import COMPOSED_ENVIRONMENT
from fsm.render.diff import edge_changes, effect_changes, feature_changes
from fsm.render.machine import SPECS, rule_scope
from fsm.render.review.data import SCENARIO, ReviewData
from fsm.render.review.document import (
    Block,
    BulletList,
    Code,
    Collapsible,
    Figure,
    Grid,
    Heading,
    Inline,
    Link,
    MermaidSource,
    Paragraph,
    Strong,
    Text,
    YesNo,
)
from fsm.render.review.parts import cex_anchor, count_steps, step_table, yesno
from fsm.render.review.story import story_section
from fsm.render.text import ablation_table, scenario_table

__all__ = ["SECTIONS", "TITLE", "Section", "document"]

TITLE = "Design review: chat transport resilience"


@dataclass(frozen=True)
class Section:
    """One top-level section: its heading's text and anchor, and what follows it."""

    title: str
    anchor: str
    build: Callable[[ReviewData], list[Block]]
    #: Whether the table of contents lists it (not the one that holds the table).
    listed: bool = True


def _verdict_section(data: ReviewData) -> list[Block]:
    headers = ["design", "environment", "states", "transitions", *(p.id for p in PROPERTIES)]
    rows: list[list[Text]] = []
    for d in data.designs:
        for env in ENVIRONMENTS:
            result = data.result(d.name, env)
            cells: list[Text] = [
                [Strong(d.name)],
                [env],
                [str(result.states)],
                [str(result.transitions)],
            ]
            for v in result.verdicts:
                href = "#" + cex_anchor(d.name, env, v.id) if v.violated else ""
                cells.append([YesNo(v.holds, href)])
            rows.append(cells)
    findings: list[Text] = []
    for d in data.designs:
        broken: dict[str, list[str]] = {}
        for env in ENVIRONMENTS:
            for v in data.result(d.name, env).verdicts:
                if v.violated:
                    broken.setdefault(v.id, []).append(env)
        if not broken:
            findings.append([Strong(d.name), ": every property holds in every environment."])
            continue
        parts = [f"{pid} ({', '.join(envs)})" for pid, envs in broken.items()]
        findings.append([Strong(d.name), ": violates " + "; ".join(parts) + "."])
    return [
        Paragraph(
            [
                f"Every design is explored exhaustively with {catalog.MESSAGES} messages in each "
                "environment; states and transitions count the reachable composed system. ",
                "A ",
                Strong("NO"),
                " links to its shortest counterexample.",
            ]
        ),
        Grid(headers, rows),
        BulletList(findings),
        Heading(3, "Properties"),
        BulletList([[Code(p.id), f": {p.statement}"] for p in PROPERTIES]),
        Heading(3, "Environments"),
        BulletList([[Code(e.name), f": {e.summary}"] for e in ENVIRONMENTS.values()]),
    ]


def _designs_section(data: ReviewData) -> list[Block]:
    names = [d.name for d in data.designs]
    features = list(data.designs[0].features())
    rows: list[list[Text]] = [[[Strong("summary")], *([d.summary] for d in data.designs)]]
    for feature in features:
        cells: list[Text] = [[Code(feature)]]
        for d in data.designs:
            value = d.features()[feature]
            cells.append([yesno(value) if isinstance(value, bool) else str(value)])
        rows.append(cells)
    return [
        Paragraph(
            [
                "Each design is a set of named features; its tables are the rows those "
                "select, and its effects outside the machines (the write-ahead, how the "
                "server counts copies, the REST attempt budget) are selected the same way."
            ]
        ),
        Grid(["feature", *names], rows),
    ]


def _ablation_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            [
                "Each feature a built-in design adds is set back to the previous design's "
                "value, one at a time, and the variant is checked again. A cell lists the "
                "properties the design held that the variant violates; ",
                Strong("nothing"),
                " means no property in this model depends on that feature (it may still "
                "buy latency or comfort). Produced by ",
                Code("fsm ablate"),
                ".",
            ]
        ),
    ]
    envs = list(ENVIRONMENTS)
    for (design, baseline), rows in data.ablations.items():
        found = ablation_table(rows, envs)
        body: list[list[Text]] = [
            [
                [Code(feature)],
                [Code(change)],
                *([Strong(c)] if c == "nothing" else [c] for c in rest),
            ]
            for feature, change, *rest in found.rows
        ]
        blocks.append(Heading(3, f"{design}, against {baseline}"))
        blocks.append(Grid(found.headers, body))
        if found.notes:
            blocks.append(BulletList([[note] for note in found.notes]))
    return blocks


def _scenario_section(data: ReviewData) -> list[Block]:
    scenario = get_scenario(SCENARIO)
    blocks: list[Block] = [
        Paragraph(
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
                    [Strong(d.name)],
                    [env],
                    *([_fate(fate)] for fate in report.outcome.values()),
                ]
            )
    first = next(iter(data.scenarios.values()))
    blocks.append(Grid(["design", "environment", *first.outcome], rows))
    env = next(iter(ENVIRONMENTS))
    for d in data.designs:
        report = data.scenarios[(d.name, env)]
        blocks.append(Heading(3, f"{d.name} in {env}"))
        blocks.append(_scenario_table(report, scenario.messages))
    return blocks


def _fate(fate: str) -> Inline:
    return Strong(fate) if fate.startswith("lost") else fate


def _scenario_table(report: ScenarioReport, messages: int) -> Grid:
    found = scenario_table(report, messages)
    rows: list[list[Text]] = []
    for n, (index, label, *rest) in enumerate(found.rows):
        event: Inline = label if n in found.skipped else Strong(label)
        rows.append([[index], [event], *([c] for c in rest)])
    return Grid(found.headers, rows)


def _machines_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            [
                "Each design's connection and message tables. Red bold edges are forbidden "
                "transitions the design has; thin dashed edges ending in a bar, marked ✗, "
                "are F-rule edges it does not have: not transitions, what must never be one. "
                "Events listed inside a state leave it where it is. The box under the legend "
                "lists the design's effects outside the machines. The Mermaid version "
                "under each diagram is the same graph."
            ]
        ),
    ]
    for d in data.designs:
        blocks.append(Heading(3, d.name, f"machines-{d.name}"))
        blocks.append(Paragraph([d.summary]))
        for spec in SPECS:
            diagram = data.diagram(catalog.machine_path(d.name, spec.name))
            if diagram is None:
                continue
            blocks.append(Figure(diagram))
            if diagram.mermaid:
                blocks.append(
                    Collapsible(
                        f"{d.name}: {spec.name} machine in Mermaid",
                        [MermaidSource(diagram.mermaid)],
                    )
                )
    return blocks


def _rules_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            [
                "Transitions no design may take. A design ",
                Strong("has"),
                " a rule when a row of its table matches it, and ",
                Strong("reaches"),
                " it when some reachable step fires such a row.",
            ]
        ),
    ]
    envs = list(ENVIRONMENTS)
    for rule in FORBIDDEN:
        blocks.append(Heading(3, f"{rule.id}: {rule.machine} machine", f"rule-{rule.id}"))
        items: list[Text] = [["reason: ", rule.reason], ["evidence: ", rule.evidence]]
        scope = rule_scope(rule)
        if scope:
            items.append(["scope: ", scope])
        blocks.append(BulletList(items))
        rows: list[list[Text]] = []
        traces: list[Block] = []
        for d in data.designs:
            edges = "; ".join(data.result(d.name, envs[0]).rule(rule.id).edges)
            cells: list[Text] = [[Strong(d.name)], [edges or "no"]]
            for env in envs:
                res = data.result(d.name, env).rule(rule.id)
                if res.trace is not None:
                    steps = count_steps(len(res.trace))
                    cells.append([Strong(f"yes, in {steps}")])
                    traces.append(
                        Collapsible(
                            f"{rule.id} reached in {d.name} ({env}) in {steps}",
                            [step_table(res.trace)],
                        )
                    )
                else:
                    cells.append(["no"])
            rows.append(cells)
        blocks.append(
            Grid(["design", "in its table", *(f"reached in {env}" for env in envs)], rows)
        )
        blocks += traces
    return blocks


def _effects_table(old: Design, new: Design) -> Block:
    changes = [c for c in effect_changes(old, new) if c.change != "same"]
    if not changes:
        return Paragraph(["Effects outside the machines: unchanged."])
    rows: list[list[Text]] = [
        [[c.change], [Code(c.hook.value)], [c.text(c.before)], [c.text(c.after)]] for c in changes
    ]
    return Grid(["effect", "hook", old.name, new.name], rows)


def _diffs_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            [
                "Edges removed (red, dashed), added (green) and given new actions (amber) "
                "from one design to the next; unchanged edges are grey. The box under each "
                "legend, and the table under each heading, list the effects outside the "
                "machines that were removed, added or changed."
            ]
        ),
    ]
    for old, new in catalog.diff_pairs(data.designs):
        blocks.append(Heading(3, f"{old.name} → {new.name}", f"diff-{old.name}-{new.name}"))
        blocks.append(Paragraph(["Features: ", ", ".join(feature_changes(old, new)) or "none"]))
        blocks.append(_effects_table(old, new))
        for spec in SPECS:
            diagram = data.diagram(catalog.diff_path(spec.name, old.name, new.name))
            if diagram is None:
                continue
            blocks.append(Figure(diagram))
            rows: list[list[Text]] = []
            for change, row, actions in edge_changes(spec, old, new):
                rules = [r.id for r in FORBIDDEN if r.machine == spec.name and r.matches_row(row)]
                rows.append(
                    [
                        [Strong(change) if rules else change],
                        [row.source.value],
                        [row.event.value],
                        [row.target.value],
                        [actions],
                        [Link(rule, f"#rule-{rule}") for rule in rules],
                    ]
                )
            blocks.append(
                Collapsible(
                    f"{spec.name} machine: {len(rows)} changed edges",
                    [Grid(["change", "from", "event", "to", "actions", "F-rule"], rows)],
                )
            )
    return blocks


def _counterexamples_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            [
                "The shortest trace to each violation, found by breadth-first search. The "
                "shaded row is the state that violates the property, and its last column "
                "says why; the diagram draws the same steps over the machines, numbered."
            ]
        ),
    ]
    any_found = False
    for d in data.designs:
        for env in ENVIRONMENTS:
            for v in data.result(d.name, env).verdicts:
                if not v.violated or not v.trace:
                    continue
                any_found = True
                blocks.append(
                    Heading(3, f"{d.name} · {env} · {v.id}", cex_anchor(d.name, env, v.id))
                )
                parts: list[Inline] = [
                    Code(v.id),
                    f": {v.property.statement}. Violated after {count_steps(len(v.trace))}",
                ]
                if v.rule:
                    parts += [", by the forbidden transition ", Link(v.rule, f"#rule-{v.rule}")]
                blocks.append(Paragraph([*parts, "."]))
                blocks.append(step_table(v.trace, [reason_text(r) for r in v.explanation]))
                diagram = data.diagram(catalog.counterexample_path(d.name, env, v.id))
                if diagram is not None:
                    blocks.append(
                        Collapsible(f"diagram: {d.name} · {env} · {v.id}", [Figure(diagram)])
                    )
    if not any_found:
        blocks.append(
            Paragraph(["Every property holds in every design: there is no counterexample."])
        )
    return blocks


def _composed_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            [
                "The whole reachable composed system of each design with one message in ",
                Code(COMPOSED_ENVIRONMENT),
                ", grouped: a row per connection state, a node per state of the message, counting "
                "its worlds and how many violate each property (its fill is the first such "
                "property's colour; a green border: every world of it settled). In the "
                "diagram, hovering over a node lists its worlds and over an edge its steps.",
            ]
        ),
    ]
    for d in data.designs:
        diagram = data.diagram(catalog.composed_path(d.name))
        if diagram is None:
            continue
        graph = data.composed[d.name]
        counts = ", ".join(f"{k}: {v}" for k, v in graph.counts().items())
        blocks.append(Heading(3, d.name, f"composed-{d.name}"))
        blocks.append(
            Paragraph(
                [f"{len(graph.worlds)} states, {len(graph.edges)} distinct transitions; {counts}."]
            )
        )
        blocks.append(Collapsible(f"reachable states of {d.name}", [Figure(diagram, scroll=True)]))
    return blocks


def _about_section(data: ReviewData) -> list[Block]:
    """Where the review comes from, and the table of contents."""
    intro = Paragraph(
        [
            "Generated by ",
            Code("fsm review"),
            " (",
            Code("make review"),
            ") from the transition tables in ",
            Code("fsm/model/tables.py"),
            ", the effects in ",
            Code("fsm/model/effects.py"),
            " and the designs in ",
            Code("fsm/model/design.py"),
            "; regenerate rather than edit. Designs: ",
            ", ".join(d.name for d in data.designs),
            ". Environments: ",
            ", ".join(ENVIRONMENTS),
            ".",
        ]
    )
    contents = BulletList([[Link(s.title, "#" + s.anchor)] for s in SECTIONS if s.listed])
    return [intro, contents]


#: The review's sections, in order.
SECTIONS = (
    Section("What the checker found", "story", story_section),
    Section("About this review", "about", _about_section, listed=False),
    Section("Verdicts", "verdicts", _verdict_section),
    Section("Designs", "designs", _designs_section),
    Section("What each feature buys", "ablation", _ablation_section),
    Section("Seed verification", "seed-verification", _scenario_section),
    Section("Machines", "machines", _machines_section),
    Section("Forbidden transitions", "forbidden", _rules_section),
    Section("Design diffs", "diffs", _diffs_section),
    Section("Counterexamples", "counterexamples", _counterexamples_section),
    Section("Reachable states", "composed", _composed_section),
)


def document(data: ReviewData) -> list[Block]:
    """The review as blocks: the title, then each section's heading and blocks."""
    blocks: list[Block] = [Heading(1, TITLE)]
    for section in SECTIONS:
        blocks.append(Heading(2, section.title, section.anchor))
        blocks += section.build(data)
    return blocks
