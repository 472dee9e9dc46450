"""The checking commands: designs, environments, check, ablate, schema, scenario."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from fsm.analysis.ablation import ablate
from fsm.analysis.checker import check
from fsm.analysis.promela import promela
from fsm.analysis.report import CheckReport, CheckReports, report_schema, verdict_word
from fsm.analysis.scenario import SCENARIOS, ScenarioReport, get_scenario, run
from fsm.analysis.spin import spin_check
from fsm.analysis.system import System
from fsm.cli.options import (
    Parser,
    add_design_options,
    add_environment_option,
    add_max_states_option,
    add_messages_option,
    change_verb,
    design_or_file,
    positive,
    selected_designs,
)
from fsm.model.design import (
    DEFAULT_ENVIRONMENT,
    DESIGNS,
    ENVIRONMENTS,
    design_file_schema,
    get_design,
    get_environment,
)
from fsm.model.errors import UsageError
from fsm.render.text import (
    LEGEND,
    ablation_table,
    scenario_table,
    steps_text,
    table,
    trace_table,
)
from fsm.staging import write_atomic
from fsm.testing.adapters import ModelAdapter
from fsm.testing.generators import scenario_suite
from fsm.testing.protocol import driver_schema
from fsm.testing.replay import replay
from fsm.testing.suite import Suite, load_suite, suite_design

__all__ = ["register"]


# -- text rendering -------------------------------------------------------------------
def print_report(report: CheckReport, out: TextIO) -> None:
    out.write(
        f"design {report.design}   environment {report.environment}   "
        f"messages {report.messages}   states {report.states}   "
        f"transitions {report.transitions}\n\n"
    )
    out.write(
        table(
            ["property", "holds", "statement"],
            [[p.id, verdict_word(p.holds), p.statement] for p in report.properties],
        )
        + "\n"
    )
    for p in report.properties:
        if p.holds is None:
            for line in p.explanation:
                out.write(f"  {p.id}: {line}\n")
    out.write(
        "\n"
        + table(
            ["rule", "in the table", "reachable", "reason"],
            [
                [r.id, "; ".join(r.edges) or "no", "yes" if r.reachable else "no", r.reason]
                for r in report.forbidden
            ],
        )
        + "\n"
    )
    for p in report.properties:
        if p.counterexample is None:
            continue
        rule = f", rule {p.rule}" if p.rule else ""
        out.write(f"\ncounterexample: {p.id}{rule} ({steps_text(len(p.counterexample))})\n")
        out.write(trace_table(p.counterexample, report.messages) + "\n")
        for line in p.explanation:
            out.write(f"  why: {line}\n")
    for r in report.forbidden:
        if r.counterexample is not None:
            out.write(
                f"\nforbidden transition {r.id} reached ({steps_text(len(r.counterexample))}): "
                f"{r.reason}\n"
            )
            out.write(trace_table(r.counterexample, report.messages) + "\n")
    if not report.holds:
        out.write(f"\n{LEGEND}\n")


def print_scenario(report: ScenarioReport, messages: int, out: TextIO) -> None:
    out.write(
        f"scenario {report.scenario}   design {report.design}   "
        f"environment {report.environment}\n\n"
    )
    steps = scenario_table(report, messages)
    out.write(steps.render())
    out.write("\n\n")
    for note in steps.notes:
        out.write(f"{note}\n")


# -- commands -------------------------------------------------------------------------
def cmd_designs(args: argparse.Namespace, out: TextIO) -> int:
    width = max(len(n) for n in DESIGNS)
    for design in DESIGNS.values():
        out.write(f"{design.name.ljust(width)}  {design.summary}\n")
    return 0


def cmd_environments(args: argparse.Namespace, out: TextIO) -> int:
    width = max(len(n) for n in ENVIRONMENTS)
    for env in ENVIRONMENTS.values():
        default = " (default)" if env.name == DEFAULT_ENVIRONMENT else ""
        out.write(f"{env.name.ljust(width)}  {env.summary}{default}\n")
    return 0


def cmd_check(args: argparse.Namespace, out: TextIO) -> int:
    designs = selected_designs(args)
    environment = get_environment(args.environment)
    notes: list[str] = []
    if args.engine == "spin":
        reports = []
        for d in designs:
            result = spin_check(
                d,
                environment,
                args.messages,
                cores=args.cores,
                swarm=args.swarm,
                max_states=args.max_states,
            )
            reports.append(result.result.report())
            notes = list(result.notes)
    else:
        if args.cores != 1 or args.swarm:
            raise UsageError("fsm check: --cores and --swarm need --engine spin")
        reports = [check(d, environment, args.messages, args.max_states).report() for d in designs]
    for note in notes:
        print(f"fsm: {note}", file=sys.stderr)
    if args.json:
        # One design: its CheckReport; several: one CheckReports object (`fsm schema report`).
        doc = reports[0] if len(reports) == 1 else CheckReports(reports=reports)
        out.write(doc.model_dump_json(indent=2) + "\n")
    else:
        for n, report in enumerate(reports):
            if n:
                out.write("\n" + "=" * 72 + "\n\n")
            print_report(report, out)
    return 0 if all(r.holds for r in reports) else 1


def cmd_export(args: argparse.Namespace, out: TextIO) -> int:
    if not (args.design or args.spec):
        raise UsageError("fsm export: give --design NAME or --spec FILE")
    (design,) = selected_designs(args)
    model = promela(System(design, get_environment(args.environment), args.messages))
    if args.out:
        write_atomic(args.out, model.text)
    else:
        out.write(model.text)
    return 0


def cmd_ablate(args: argparse.Namespace, out: TextIO) -> int:
    chosen = args.design is not None or args.spec is not None
    (design,) = selected_designs(args) if chosen else [get_design("hardened")]
    baseline = design_or_file(args.against)
    environments = list(ENVIRONMENTS.values())
    rows = ablate(design, baseline, environments, args.messages, args.max_states)
    verb = change_verb(design, baseline)
    out.write(
        f"design {design.name}, each feature {verb} to its value in {baseline.name}, "
        f"{args.messages} messages: what breaks that held before\n\n"
    )
    if not rows:
        out.write(f"{design.name} and {baseline.name} have the same features\n")
        return 0
    found = ablation_table(rows, [e.name for e in environments], verb)
    out.write(found.render() + "\n")
    if found.notes:
        out.write("\n" + "\n".join(found.notes) + "\n")
    return 0


#: What ``fsm schema`` can describe.
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "design": design_file_schema,
    "report": report_schema,
    "scenario": ScenarioReport.model_json_schema,
    "suite": Suite.model_json_schema,
    "driver": driver_schema,
}


def cmd_schema(args: argparse.Namespace, out: TextIO) -> int:
    out.write(json.dumps(SCHEMAS[args.what](), indent=2, sort_keys=True) + "\n")
    return 0


def cmd_scenario(args: argparse.Namespace, out: TextIO) -> int:
    if args.name.endswith(".json"):
        return _scenario_file(args, out)
    scenario = get_scenario(args.name)
    if args.suite:
        designs = selected_designs(args) if (args.design or args.spec) else [get_design("hardened")]
        environment = get_environment(args.environment)
        suite = scenario_suite(scenario, designs[0], environment)
        out.write(suite.model_dump_json(indent=2) + "\n")
        return 0
    environment = get_environment(args.environment)
    designs = selected_designs(args)
    reports = [run(scenario, d, environment) for d in designs]
    for n, report in enumerate(reports):
        if args.json:
            out.write(report.model_dump_json(indent=2) + "\n")
            continue
        if n:
            out.write("\n")
        print_scenario(report, scenario.messages, out)
    return 1 if any(r.lost for r in reports) else 0


def _scenario_file(args: argparse.Namespace, out: TextIO) -> int:
    """``fsm scenario FILE.json``: replay a suite file on the model, case by case."""
    suite = load_suite(args.name)
    designs = (
        selected_designs(args)
        if (args.design is not None or args.spec is not None)
        else [suite_design(suite)]
    )
    report = replay(suite, ModelAdapter(), designs[0], adapter_name="model")
    if args.json:
        out.write(report.model_dump_json(indent=2) + "\n")
    else:
        for result in report.results:
            verdict = "passes" if result.passed else "DIVERGES"
            out.write(f"{result.case}: {result.steps} steps, {verdict}\n")
            if result.divergence is not None:
                out.write(result.divergence.describe() + "\n")
    return 0 if report.passed else 1


def register(sub: argparse._SubParsersAction[Parser], parents: Sequence[Parser] = ()) -> None:
    """Add the checking commands to ``fsm``'s parser."""
    p = sub.add_parser("designs", parents=list(parents), help="list the built-in designs")
    p.set_defaults(func=cmd_designs)

    p = sub.add_parser("environments", parents=list(parents), help="list the built-in environments")
    p.set_defaults(func=cmd_environments)

    p = sub.add_parser(
        "check",
        parents=list(parents),
        help="explore a design exhaustively and judge every property",
    )
    add_design_options(p)
    add_environment_option(p)
    add_messages_option(p)
    add_max_states_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="print JSON: a CheckReport for one design, a CheckReports object for several "
        "(fsm schema report describes both)",
    )
    p.add_argument(
        "--engine",
        choices=("explorer", "spin"),
        default="explorer",
        help="the built-in explorer (default, judges every property) or SPIN (judges the "
        "safety properties; needs spin and a C compiler)",
    )
    p.add_argument(
        "--cores",
        metavar="K",
        type=positive,
        default=1,
        help="with --engine spin: SPIN's parallel breadth-first search on K cores",
    )
    p.add_argument(
        "--swarm",
        metavar="K",
        type=positive,
        default=0,
        help="with --engine spin: K bitstate runs with different seeds and hash functions "
        "instead of one exhaustive search (for models too big to store; not a proof)",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "export",
        parents=list(parents),
        help="write the composed system in another checker's language",
    )
    p.add_argument("language", choices=("promela",), help="promela: a model for SPIN")
    add_design_options(p)
    add_environment_option(p)
    add_messages_option(p)
    p.add_argument("--out", metavar="FILE", help="write to FILE instead of standard output")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "ablate",
        parents=list(parents),
        help="set each feature back to a baseline's value and see what breaks",
    )
    add_design_options(p)
    p.add_argument(
        "--against",
        metavar="NAME|FILE",
        default="fixed",
        help="the built-in design or design file whose values are put back (default fixed)",
    )
    add_messages_option(p)
    add_max_states_option(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser(
        "schema",
        parents=list(parents),
        help="print the JSON Schema of a design file, a check report or a scenario",
    )
    p.add_argument("what", choices=sorted(SCHEMAS), help="which document")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "scenario", parents=list(parents), help="replay a named scenario step by step"
    )
    p.add_argument(
        "name",
        metavar="NAME",
        help=f"one of: {', '.join(sorted(SCENARIOS))}; or a suite file (.json) to replay",
    )
    p.add_argument(
        "--suite", action="store_true", help="print the scenario as a suite (fsm schema suite)"
    )
    add_design_options(p)
    add_environment_option(p)
    p.add_argument("--json", action="store_true", help="print the ScenarioReport as JSON")
    p.set_defaults(func=cmd_scenario)
