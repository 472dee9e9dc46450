"""The design review: one document, rendered to Markdown and to HTML.

``fsm review`` checks every built-in design (and any design files) in both
built-in environments, renders the diagrams of :mod:`fsm.render.catalog`, and writes
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

from typing_extensions import assert_never

from fsm.analysis.ablation import AblationRow, ablate
from fsm.analysis.checker import CheckResult
from fsm.analysis.properties import PROPERTIES
from fsm.analysis.questions import Dependence, SendDependence, send_dependence
from fsm.analysis.report import message_name, reason_text
from fsm.analysis.scenario import ScenarioReport, get_scenario, run
from fsm.analysis.trace import Trace
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design, load_design
from fsm.model.forbidden import FORBIDDEN
from fsm.render import catalog
from fsm.render.catalog import Diagram
from fsm.render.composed import COMPOSED_ENVIRONMENT, Composed
from fsm.render.diff import edge_changes, effect_changes, feature_changes
from fsm.render.files import svg_of
from fsm.render.machine import SPECS, rule_scope
from fsm.render.text import (
    ablation_table,
    scenario_table,
    trace_headers,
    trace_rows,
    trace_words,
)

__all__ = [
    "DEFAULT_OUT",
    "ReviewData",
    "collect",
    "html_page",
    "markdown",
    "md_text",
    "review_designs",
]

DEFAULT_OUT = "diagrams"
SCENARIO = "seed-verification"


def review_designs(specs: Sequence[str]) -> list[Design]:
    """The built-in designs, then those of ``specs`` (a spec equal to a built-in is dropped)."""
    designs = list(DESIGNS.values()) + [load_design(path) for path in specs]
    catalog.check_names(designs)
    unique: dict[str, Design] = {}
    for d in designs:
        unique.setdefault(d.name, d)
    return list(unique.values())


# -- the data -------------------------------------------------------------------------
@dataclass
class ReviewData:
    """Everything the review shows, computed once."""

    designs: list[Design]
    results: dict[tuple[str, str], CheckResult]
    scenarios: dict[tuple[str, str], ScenarioReport]
    #: Each design's reachable one-message graph, explored once for the diagram
    #: and for the counts the review prints.
    composed: dict[str, Composed]
    diagrams: list[Diagram]
    #: (design, baseline) -> each feature set back, for consecutive built-in designs.
    ablations: dict[tuple[str, str], list[AblationRow]] = field(default_factory=dict)
    #: Whether each design keeps a message sent into a suspended socket only because
    #: the send raises (the seed's two readings of its root cause).
    sends: dict[str, SendDependence] = field(default_factory=dict)

    def result(self, design: str, env: str) -> CheckResult:
        return self.results[(design, env)]

    def diagram(self, path: str) -> Diagram | None:
        return next((d for d in self.diagrams if d.path == path), None)


def collect(designs: Sequence[Design]) -> ReviewData:
    """Check, replay the seed scenario and build the diagrams for ``designs``."""
    results = catalog.run_checks(designs)
    graphs = catalog.run_composed(designs)
    scenario = get_scenario(SCENARIO)
    scenarios = {
        (d.name, env): run(scenario, d, ENVIRONMENTS[env]) for d in designs for env in ENVIRONMENTS
    }
    builtins = list(DESIGNS)
    envs = list(ENVIRONMENTS.values())
    ablations = {
        (later, earlier): ablate(DESIGNS[later], DESIGNS[earlier], envs, catalog.MESSAGES)
        for earlier, later in itertools.pairwise(builtins)
    }
    diagrams = catalog.build(designs, results, graphs)
    sends = {d.name: send_dependence(d, SEND_MESSAGES) for d in designs}
    return ReviewData(list(designs), results, scenarios, graphs, diagrams, ablations, sends)


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
    diagram: Diagram
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


def _step_table(trace: Trace, explanation: Sequence[str] = ()) -> Table:
    """The trace's worlds, one row each, with the rows each step fired; with an
    ``explanation``, a last column says why the shaded last state violates."""
    rows: list[list[Text]] = []
    last = len(trace)
    for n, cells in enumerate(trace_rows(trace)):
        fired = ""
        if n:
            fired = "; ".join(
                f"{'connection' if f.message is None else message_name(f.message)}: "
                f"{f.row.source.value} -{f.row.event.value}-> {f.row.target.value}"
                for f in trace.steps[n - 1].fired
            )
        event: Inline = B(cells[1]) if n else cells[1]
        row: list[Text] = [[cells[0]], [event], *([c] for c in cells[2:]), [fired]]
        if explanation:
            row.append(["; ".join(explanation) if n == last and n else ""])
        rows.append(row)
    headers = [*trace_headers(len(trace.start.messages)), "transitions taken"]
    if explanation:
        headers.append("why it violates")
    return Table(headers, rows, frozenset({last}) if last else frozenset())


def _verdict_section(data: ReviewData) -> list[Block]:
    headers = ["design", "environment", "states", "transitions", *(p.id for p in PROPERTIES)]
    rows: list[list[Text]] = []
    for d in data.designs:
        for env in ENVIRONMENTS:
            result = data.result(d.name, env)
            cells: list[Text] = [
                [B(d.name)],
                [env],
                [str(result.states)],
                [str(result.transitions)],
            ]
            for v in result.verdicts:
                href = "" if v.holds else "#" + _cex_anchor(d.name, env, v.id)
                cells.append([Verdict(v.holds, href)])
            rows.append(cells)
    findings: list[Text] = []
    for d in data.designs:
        broken: dict[str, list[str]] = {}
        for env in ENVIRONMENTS:
            for v in data.result(d.name, env).verdicts:
                if not v.holds:
                    broken.setdefault(v.id, []).append(env)
        if not broken:
            findings.append([B(d.name), ": every property holds in every environment."])
            continue
        parts = [f"{pid} ({', '.join(envs)})" for pid, envs in broken.items()]
        findings.append([B(d.name), ": violates " + "; ".join(parts) + "."])
    return [
        Heading(2, "Verdicts", "verdicts"),
        Para(
            [
                f"Every design is explored exhaustively with {catalog.MESSAGES} messages in each "
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


#: The send question is asked with one message: a second send cannot then rescue
#: the first one, so the answer is about that send alone.
SEND_MESSAGES = 1

_DEPENDENCE_WORDS = {
    Dependence.independent: "keeps the message whichever way the send fails",
    Dependence.needs_the_raise: "depends on the send raising",
    Dependence.loses_either_way: "loses the message whichever way the send fails",
    Dependence.needs_the_silence: "loses the message only when the send raises",
}


def _send_section(data: ReviewData) -> list[Block]:
    """Which designs keep a message sent into a suspended socket only because the send
    raises: the seed's root cause says the send "fails silently", its fix catches an
    error from it."""
    items: list[Text] = []
    for d in data.designs:
        answer = data.sends.get(d.name)
        if answer is None:
            continue
        text: Text = [B(d.name), f" {_DEPENDENCE_WORDS[answer.verdict]}"]
        if answer.verdict is Dependence.needs_the_raise and answer.silent is not None:
            text = [
                *text,
                ": when a send into a suspended socket returns normally, ",
                C("catch"),
                f" never runs and the message is lost in {_steps(len(answer.silent))} (",
                C(trace_words(answer.silent)),
                ").",
            ]
        elif answer.verdict is Dependence.loses_either_way and answer.raised is not None:
            text = [
                *text,
                f" (raised: {_steps(len(answer.raised))}, ",
                C(trace_words(answer.raised)),
                ").",
            ]
        else:
            text = [*text, "."]
        items.append(text)
    if not items:
        return []
    return [
        Heading(3, "Does it depend on the send raising?", "send-raising"),
        Para(
            [
                "The seed's root cause says a send into a suspended socket \"fails silently "
                '(no error thrown)", while its fix catches an error from that send. Each '
                "design is explored with the send raising (",
                C("ios-suspend"),
                ") and returning normally (",
                C("ios-suspend-silent"),
                f"), with {SEND_MESSAGES} message, looking for a message lost right after "
                "such a send:",
            ]
        ),
        Bullets(items),
    ]


#: The properties the story's first sentence is about: what a user loses or gets twice.
_HARM = (
    ("no-silent-loss", "loses a message"),
    ("no-duplicate-delivery", "delivers a message twice"),
)
#: The seed's bug, drawn first: pre-fix losing a message sent into the stale socket.
STORY_COUNTEREXAMPLE = ("pre-fix", "ios-suspend", "no-silent-loss")
#: The seed's fix, drawn second.
STORY_DIFF = ("message", "pre-fix", "fixed")


def _envs_text(envs: Sequence[str]) -> str:
    if len(envs) == len(ENVIRONMENTS):
        return "in every environment"
    return "in " + " and ".join(envs) if len(envs) <= 2 else "in " + ", ".join(envs)


def _shortest(data: ReviewData, design: str, pid: str) -> tuple[str, Trace] | None:
    """The environment with the shortest counterexample to ``pid``, and that trace."""
    found = [
        (len(v.trace), env, v.trace)
        for env in ENVIRONMENTS
        if not (v := data.result(design, env).verdict(pid)).holds and v.trace is not None
    ]
    if not found:
        return None
    _, env, trace = min(found, key=lambda f: f[0])
    return env, trace


def _design_story(data: ReviewData, d: Design) -> Text:
    """Two or three sentences: what the design loses or duplicates, where, by which
    shortest trace; what else it breaks."""
    broken: dict[str, list[str]] = {}
    for env in ENVIRONMENTS:
        for v in data.result(d.name, env).verdicts:
            if not v.holds:
                broken.setdefault(v.id, []).append(env)
    if not broken:
        return [
            B(d.name),
            f" keeps every property {_envs_text(list(ENVIRONMENTS))}: it never loses a "
            "message, never delivers one twice, and every message ends confirmed or "
            "visibly failed without the user's help.",
        ]
    text: list[Inline] = [B(d.name)]
    harms = [(pid, words) for pid, words in _HARM if pid in broken]
    for n, (pid, words) in enumerate(harms):
        shortest = _shortest(data, d.name, pid)
        assert shortest is not None
        env, trace = shortest
        text += [
            (" " if n == 0 else "; it "),
            f"{words} in {env} ({_steps(len(trace))}): "
            if broken[pid] == [env]
            else f"{words} {_envs_text(broken[pid])}; shortest, in {env} ({_steps(len(trace))}): ",
            C(trace_words(trace)),
            " (",
            Link("trace", "#" + _cex_anchor(d.name, env, pid)),
            ")",
        ]
    if harms:
        text.append(".")
    else:
        text.append(" never loses a message and never delivers one twice.")
    others = [pid for pid in broken if pid not in dict(_HARM)]
    if others:
        text.append(" It also violates ")
        for n, pid in enumerate(others):
            env = broken[pid][0]
            text += [", " if n else "", Link(pid, "#" + _cex_anchor(d.name, env, pid))]
            if len(broken[pid]) < len(ENVIRONMENTS):
                text.append(f" ({', '.join(broken[pid])})")
        text.append(".")
    return text


def _story_section(data: ReviewData) -> list[Block]:
    """What a reviewer came for: per design what it loses or duplicates and how, the
    seed's bug drawn over the machines, the seed's fix as a diff, the send question."""
    blocks: list[Block] = [
        Heading(2, "What the checker found", "story"),
        Bullets([_design_story(data, d) for d in data.designs]),
    ]
    design, env, pid = STORY_COUNTEREXAMPLE
    cex = data.diagram(catalog.counterexample_path(design, env, pid))
    if cex is not None:
        blocks += [
            Heading(3, "The seed's bug: a send into the stale socket", "story-bug"),
            Para(
                [
                    B(design),
                    " sets the connected flag on ",
                    C("resume()"),
                    ", iOS suspends the socket in the background, the send after the "
                    "return raises, the error is only logged and the message stays ",
                    C("sent_ws"),
                    " with nothing on the server. The shaded row says why that state is a loss (",
                    Link("step table", "#" + _cex_anchor(design, env, pid)),
                    ").",
                ]
            ),
            Figure(cex),
        ]
    machine, old, new = STORY_DIFF
    diff = data.diagram(catalog.diff_path(machine, old, new))
    if diff is not None:
        blocks += [
            Heading(3, f"The seed's fix: {old} → {new}", "story-fix"),
            Para(
                [
                    "The swallowed send error (F1) is gone: a failed send now disconnects "
                    "and retries the pending-retry list over REST. Removed edges red and "
                    "dashed, added ones green (",
                    Link("every diff", f"#diff-{old}-{new}"),
                    ").",
                ]
            ),
            Figure(diff),
        ]
    return blocks + _send_section(data)


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
        Para(
            [
                "Each design is a set of named features; its tables are the rows those "
                "select, and its effects outside the machines (the write-ahead, how the "
                "server counts copies, the REST attempt budget) are selected the same way."
            ]
        ),
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
        found = ablation_table(rows, envs)
        body: list[list[Text]] = [
            [[C(feature)], [C(change)], *([B(c)] if c == "nothing" else [c] for c in rest)]
            for feature, change, *rest in found.rows
        ]
        blocks.append(Heading(3, f"{design}, against {baseline}"))
        blocks.append(Table(found.headers, body))
        if found.notes:
            blocks.append(Bullets([[note] for note in found.notes]))
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
    found = scenario_table(report, messages)
    rows: list[list[Text]] = []
    for n, (index, label, *rest) in enumerate(found.rows):
        event: Inline = label if n in found.skipped else B(label)
        rows.append([[index], [event], *([c] for c in rest)])
    return Table(found.headers, rows)


def _machines_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Machines", "machines"),
        Para(
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
        blocks.append(Para([d.summary]))
        for spec in SPECS:
            diagram = data.diagram(catalog.machine_path(d.name, spec.name))
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
        scope = rule_scope(rule)
        if scope:
            items.append(["scope: ", scope])
        blocks.append(Bullets(items))
        rows: list[list[Text]] = []
        traces: list[Block] = []
        for d in data.designs:
            edges = "; ".join(data.result(d.name, envs[0]).rule(rule.id).edges)
            cells: list[Text] = [[B(d.name)], [edges or "no"]]
            for env in envs:
                res = data.result(d.name, env).rule(rule.id)
                if res.trace is not None:
                    steps = _steps(len(res.trace))
                    cells.append([B(f"yes, in {steps}")])
                    traces.append(
                        Details(
                            f"{rule.id} reached in {d.name} ({env}) in {steps}",
                            [_step_table(res.trace)],
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


def _effects_table(old: Design, new: Design) -> Block:
    changes = [c for c in effect_changes(old, new) if c.change != "same"]
    if not changes:
        return Para(["Effects outside the machines: unchanged."])
    rows: list[list[Text]] = [
        [[c.change], [C(c.hook.value)], [c.text(c.before)], [c.text(c.after)]] for c in changes
    ]
    return Table(["effect", "hook", old.name, new.name], rows)


def _diffs_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Design diffs", "diffs"),
        Para(
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
        blocks.append(Para(["Features: ", ", ".join(feature_changes(old, new)) or "none"]))
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
                "shaded row is the state that violates the property, and its last column "
                "says why; the diagram draws the same steps over the machines, numbered."
            ]
        ),
    ]
    any_found = False
    for d in data.designs:
        for env in ENVIRONMENTS:
            for v in data.result(d.name, env).verdicts:
                if v.holds or not v.trace:
                    continue
                any_found = True
                blocks.append(
                    Heading(3, f"{d.name} · {env} · {v.id}", _cex_anchor(d.name, env, v.id))
                )
                parts: list[Inline] = [
                    C(v.id),
                    f": {v.property.statement}. Violated after {_steps(len(v.trace))}",
                ]
                if v.rule:
                    parts += [", by the forbidden transition ", Link(v.rule, f"#rule-{v.rule}")]
                blocks.append(Para([*parts, "."]))
                blocks.append(_step_table(v.trace, [reason_text(r) for r in v.explanation]))
                diagram = data.diagram(catalog.counterexample_path(d.name, env, v.id))
                if diagram is not None:
                    blocks.append(Details(f"diagram: {d.name} · {env} · {v.id}", [Figure(diagram)]))
    if not any_found:
        blocks.append(Para(["Every property holds in every design: there is no counterexample."]))
    return blocks


def _composed_section(data: ReviewData) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Reachable states", "composed"),
        Para(
            [
                "The whole reachable composed system of each design with one message in ",
                C(COMPOSED_ENVIRONMENT),
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
            Para(
                [f"{len(graph.worlds)} states, {len(graph.edges)} distinct transitions; {counts}."]
            )
        )
        blocks.append(Details(f"reachable states of {d.name}", [Figure(diagram, scroll=True)]))
    return blocks


SECTIONS = (
    ("What the checker found", "story"),
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
            C("fsm/model/tables.py"),
            ", the effects in ",
            C("fsm/model/effects.py"),
            " and the designs in ",
            C("fsm/model/design.py"),
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
        *_story_section(data),
        Heading(2, "About this review", "about"),
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


def md_text(text: str) -> str:
    """``text`` with Markdown's markup characters escaped (an underscore inside a
    word is no markup on GitHub, so ``sent_ws`` stays as it is)."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _md_part(part: Inline) -> str:
    match part:
        case str():
            return md_text(part)
        case B():
            return f"**{md_text(part.text)}**" if part.text else ""
        case C():
            return f"`{part.text}`"
        case Link():
            return f"[{md_text(part.text)}]({part.href})"
        case Verdict():
            word = "yes" if part.holds else "**NO**"
            return f"[{word}]({part.href})" if part.href else word
        case _:
            assert_never(part)


def _md_inline(parts: Text) -> str:
    return "".join(_md_part(part) for part in parts)


def _md_table(block: Table) -> str:
    lines = [
        "| " + " | ".join(md_text(h) for h in block.headers) + " |",
        "|" + "---|" * len(block.headers),
    ]
    for n, row in enumerate(block.rows):
        cells = [_md_inline(cell) for cell in row]
        if n in block.marked:
            cells = [f"**{c}**" if c and not c.startswith("**") else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _md_figure(block: Figure, rendered: bool) -> str:
    path = block.diagram.path
    links = [f"[DOT]({path}.dot)"]
    if block.diagram.mermaid is not None:
        links.append(f"[Mermaid]({path}.mmd)")
    if not rendered:
        return f"_{md_text(block.diagram.title)}: not rendered; " + " · ".join(links) + "_"
    image = f"[![{md_text(block.diagram.title)}]({path}.svg)]({path}.svg)"
    return image + "\n\n" + " · ".join([f"[SVG]({path}.svg)", f"[PNG]({path}.png)", *links])


def _md_block(block: Block, rendered: bool) -> list[str]:
    match block:
        case Heading():
            anchor = f'<a id="{block.anchor}"></a>\n\n' if block.anchor else ""
            return [f"{anchor}{'#' * block.level} {md_text(block.text)}"]
        case Para():
            return [_md_inline(block.parts)]
        case Bullets():
            return ["\n".join(f"- {_md_inline(item)}" for item in block.items)]
        case Table():
            return [_md_table(block)]
        case Figure():
            return [_md_figure(block, rendered)]
        case Mermaid():
            return ["```mermaid\n" + block.source.rstrip("\n") + "\n```"]
        case Details():
            inner = [part for b in block.blocks for part in _md_block(b, rendered)]
            summary = f"<details>\n<summary>{html.escape(block.summary)}</summary>"
            return [summary, *inner, "</details>"]
        case _:
            assert_never(block)


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


def _html_part(part: Inline) -> str:
    match part:
        case str():
            return _h(part)
        case B():
            return f"<strong>{_h(part.text)}</strong>"
        case C():
            return f"<code>{_h(part.text)}</code>"
        case Link():
            return f'<a href="{_h(part.href)}">{_h(part.text)}</a>'
        case Verdict():
            word = "yes" if part.holds else "NO"
            return f'<a href="{_h(part.href)}">{word}</a>' if part.href else word
        case _:
            assert_never(part)


def _html_inline(parts: Text) -> str:
    return "".join(_html_part(part) for part in parts)


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


def _html_table(block: Table) -> str:
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


def _html_figure(block: Figure, root: Path, rendered: bool, counter: list[int]) -> str:
    """The diagram's SVG inline. The page links to no file, so that it still works
    when it is mailed on its own: the caption names the files beside ``REVIEW.md``."""
    d = block.diagram
    kinds = ["dot"] + (["mmd"] if d.mermaid is not None else [])
    svg = svg_of(root, d) if rendered else None
    if svg is None:
        body = '<p class="missing">not rendered: Graphviz was not available</p>'
    else:
        counter[0] += 1
        kinds = ["svg", "png", *kinds]
        cls = "svg scroll" if block.scroll else "svg"
        body = f'<div class="{cls}">{inline_svg(svg, f"g{counter[0]}")}</div>'
    files = f"<code>{_h(d.path)}.{{{','.join(kinds)}}}</code>"
    caption = f"<figcaption>{_h(d.title)} · files beside REVIEW.md: {files}</figcaption>"
    return f"<figure>{body}{caption}</figure>"


def _html_block(block: Block, root: Path, rendered: bool, counter: list[int]) -> str:
    match block:
        case Heading():
            anchor = f' id="{_h(block.anchor)}"' if block.anchor else ""
            return f"<h{block.level}{anchor}>{_h(block.text)}</h{block.level}>"
        case Para():
            return f"<p>{_html_inline(block.parts)}</p>"
        case Bullets():
            items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
            return f"<ul>{items}</ul>"
        case Table():
            return _html_table(block)
        case Figure():
            return _html_figure(block, root, rendered, counter)
        case Mermaid():
            return f"<pre>{_h(block.source)}</pre>"
        case Details():
            inner = "\n".join(_html_block(b, root, rendered, counter) for b in block.blocks)
            return f"<details><summary>{_h(block.summary)}</summary>\n{inner}\n</details>"
        case _:
            assert_never(block)


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
