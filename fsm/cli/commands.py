"""The checking commands: designs, environments, check, ablate, schema, scenario."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TextIO

from fsm.analysis.ablation import ablate
from fsm.analysis.checker import check
from fsm.analysis.report import CheckReport
from fsm.analysis.scenario import SCENARIOS, ScenarioReport, get_scenario, run
from fsm.cli.options import (
    Parser,
    add_design_options,
    add_messages_option,
    positive,
    selected_designs,
)
from fsm.model.design import (
    DEFAULT_ENVIRONMENT,
    DESIGNS,
    ENVIRONMENTS,
    Environment,
    design_file_schema,
    get_design,
    get_environment,
)
from fsm.render.text import LEGEND, ablation_table, scenario_table, table, trace_table
from fsm.testing.adapters import ModelAdapter
from fsm.testing.generators import scenario_suite
from fsm.testing.replay import replay
from fsm.testing.suite import Suite, load_suite

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
            [[p.id, "yes" if p.holds else "NO", p.statement] for p in report.properties],
        )
        + "\n"
    )
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
        out.write(f"\ncounterexample: {p.id}{rule} ({len(p.counterexample)} steps)\n")
        out.write(trace_table(p.counterexample, report.messages) + "\n")
    for r in report.forbidden:
        if r.counterexample is not None:
            out.write(
                f"\nforbidden transition {r.id} reached ({len(r.counterexample)} steps): "
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
    reports = [check(d, environment, args.messages, args.max_states).report() for d in designs]
    if args.json:
        if len(reports) == 1:
            out.write(reports[0].model_dump_json(indent=2) + "\n")
        else:
            out.write("[\n" + ",\n".join(r.model_dump_json(indent=2) for r in reports) + "\n]\n")
    else:
        for n, report in enumerate(reports):
            if n:
                out.write("\n" + "=" * 72 + "\n\n")
            print_report(report, out)
    return 0 if all(r.holds for r in reports) else 1


def cmd_ablate(args: argparse.Namespace, out: TextIO) -> int:
    (design,) = selected_designs(args) if (args.design or args.spec) else [get_design("hardened")]
    baseline = get_design(args.against)
    environments = list(ENVIRONMENTS.values())
    rows = ablate(design, baseline, environments, args.messages)
    out.write(
        f"design {design.name}, each feature set back to its value in {baseline.name}, "
        f"{args.messages} messages: what breaks that held before\n\n"
    )
    if not rows:
        out.write(f"{design.name} and {baseline.name} have the same features\n")
        return 0
    out.write(ablation_table(rows, [e.name for e in environments]).render() + "\n")
    return 0


#: What ``fsm schema`` can describe.
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "design": design_file_schema,
    "environment": Environment.model_json_schema,
    "report": CheckReport.model_json_schema,
    "scenario": ScenarioReport.model_json_schema,
    "suite": Suite.model_json_schema,
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
    designs = selected_designs(args) if (args.design or args.spec) else [get_design(suite.design)]
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


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add the checking commands to ``fsm``'s parser."""
    p = sub.add_parser("designs", help="list the built-in designs")
    p.set_defaults(func=cmd_designs)

    p = sub.add_parser("environments", help="list the built-in environments")
    p.set_defaults(func=cmd_environments)

    p = sub.add_parser("check", help="explore a design exhaustively and judge every property")
    add_design_options(p)
    p.add_argument(
        "--environment",
        metavar="NAME",
        default=DEFAULT_ENVIRONMENT,
        help=f"what the world may do to sockets (default {DEFAULT_ENVIRONMENT})",
    )
    add_messages_option(p)
    p.add_argument(
        "--max-states",
        metavar="K",
        type=positive,
        default=None,
        help="stop with an error when more states than this are reachable",
    )
    p.add_argument("--json", action="store_true", help="print a CheckReport as JSON")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "ablate", help="set each feature back to a baseline's value and see what breaks"
    )
    add_design_options(p)
    p.add_argument(
        "--against",
        metavar="NAME",
        default="fixed",
        help="the built-in design whose values are put back (default fixed)",
    )
    add_messages_option(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("schema", help="print the JSON Schema of a design file or a report")
    p.add_argument("what", choices=sorted(SCHEMAS), help="which document")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("scenario", help="replay a named scenario step by step")
    p.add_argument(
        "name",
        metavar="NAME",
        help=f"one of: {', '.join(sorted(SCENARIOS))}; or a suite file (.json) to replay",
    )
    p.add_argument(
        "--suite", action="store_true", help="print the scenario as a suite (fsm schema suite)"
    )
    add_design_options(p)
    p.add_argument("--environment", metavar="NAME", default=DEFAULT_ENVIRONMENT)
    p.add_argument("--json", action="store_true", help="print the ScenarioReport as JSON")
    p.set_defaults(func=cmd_scenario)
