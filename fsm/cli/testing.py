"""The testing commands: testgen, replay, mutants, monitor."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from fsm.cli.options import Parser, add_environment_option, add_messages_option, positive
from fsm.cli.output import write_file
from fsm.model.design import get_design, get_environment
from fsm.model.errors import ForbiddenTransition, SpecError
from fsm.render.text import table
from fsm.testing.adapters import adapter_names, load_adapter
from fsm.testing.generators import CRITERIA, generate
from fsm.testing.monitor import Monitor, MonitorError
from fsm.testing.mutants import MUTANTS, KillReport, kill_matrix
from fsm.testing.pytest_writer import pytest_module
from fsm.testing.replay import replay
from fsm.testing.suite import Suite, load_suite

__all__ = ["register"]

#: The environment ``fsm mutants`` uses unless told otherwise: the one in which every
#: feature of ``hardened`` is exercised (in ios-suspend a foreground reconnect
#: makes its send-failure, heartbeat and REST-retry rows dead).
MUTANTS_ENVIRONMENT = "half-open"


def _write(text: str, out: TextIO, path: str | None) -> None:
    if path is None:
        out.write(text)
    else:
        write_file(path, text)


def cmd_testgen(args: argparse.Namespace, out: TextIO) -> int:
    design = get_design(args.design)
    environment = get_environment(args.environment)
    suite = generate(
        design,
        environment,
        args.messages,
        args.criterion,
        seed=args.seed,
        length=args.length,
        max_steps=args.max_steps,
    )
    if args.format == "pytest":
        _write(pytest_module(suite), out, args.out)
    else:
        _write(suite.model_dump_json(indent=2, exclude_none=False) + "\n", out, args.out)
    if args.out is not None:
        stats = suite.stats
        line = (
            f"{suite.criterion}: {len(suite.cases)} cases, {stats.steps} steps "
            f"({stats.criterion_steps} for the criterion)"
        )
        if stats.optimum is not None:
            line += f", optimum {stats.optimum}"
        if stats.targets:
            line += f", covered {stats.covered}/{stats.targets}"
        if stats.dead_rows:
            line += f", {len(stats.dead_rows)} dead rows"
        out.write(f"{line}; wrote {args.out}\n")
    return 0


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    suite = load_suite(args.suite)
    design = get_design(args.design) if args.design else None
    adapter = load_adapter(args.adapter)
    try:
        report = replay(suite, adapter, design, adapter_name=args.adapter)
    finally:
        close = getattr(adapter, "close", None)
        if callable(close):
            close()
    if args.json:
        out.write(report.model_dump_json(indent=2) + "\n")
    else:
        for divergence in report.failures:
            out.write(divergence.describe() + "\n\n")
        failed = len(report.failures)
        out.write(
            f"suite {suite.design}/{suite.criterion} on {report.design} through "
            f"{report.adapter}: {len(report.results) - failed} of {len(report.results)} "
            f"cases pass\n"
        )
    return 0 if report.passed else 1


def print_kills(report: KillReport, out: TextIO) -> None:
    rows = []
    for m in report.mutants:
        if m.equivalent:
            verdict = "equivalent"
        elif m.killed:
            first = min(m.killed_by.items(), key=lambda kv: (kv[1], kv[0]))
            verdict = f"killed by {len(m.killed_by)} cases; first {first[0]} at step {first[1]}"
        else:
            verdict = "SURVIVES: " + " / ".join(m.witness)
        rows.append([m.name, verdict, m.source])
    out.write(
        f"criterion {report.criterion}: {report.cases} cases, {report.steps} steps\n"
        + table(["mutant", "verdict", "from"], rows)
        + "\n"
    )
    per = report.steps / report.killed if report.killed else float("inf")
    out.write(
        f"{report.criterion}: mutation score {report.score}, {per:.0f} steps per killed mutant\n\n"
    )


def cmd_mutants(args: argparse.Namespace, out: TextIO) -> int:
    design = get_design("hardened")
    environment = get_environment(args.environment)
    criteria = CRITERIA if args.criterion == "all" else (args.criterion,)
    reports = []
    for criterion in criteria:
        suite = generate(
            design, environment, args.messages, criterion, seed=args.seed, max_steps=args.max_steps
        )
        reports.append(kill_matrix(suite, environment))
    if args.json:
        out.write(json.dumps([r.model_dump() for r in reports], indent=2) + "\n")
    else:
        out.write(
            f"{len(MUTANTS)} mutants of {design.name}, {environment.name}, "
            f"{args.messages} messages\n\n"
        )
        for report in reports:
            print_kills(report, out)
        last = reports[-1] if args.criterion != "all" else reports[CRITERIA.index("transitions")]
        if args.criterion == "all":
            out.write("scores: " + ", ".join(f"{r.criterion} {r.score}" for r in reports) + "\n")
        out.write(f"mutation score {last.score}\n")
    return 0


def cmd_monitor(args: argparse.Namespace, out: TextIO) -> int:
    design = get_design(args.design)
    monitor = Monitor(design, raise_on_violation=False)
    path = Path(args.log)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    found: list[tuple[int, ForbiddenTransition]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(record, dict) or not isinstance(record.get("event"), str):
            raise SpecError(f'{path}:{number}: expected {{"event": ..., "message": ...}}')
        message = record.get("message")
        if message is not None and not isinstance(message, str):
            raise SpecError(f"{path}:{number}: message must be a string id")
        before = len(monitor.violations)
        try:
            monitor.observe(record["event"], message)
        except MonitorError as exc:
            raise SpecError(f"{path}:{number}: {exc}") from None
        found.extend((number, v) for v in monitor.violations[before:])
    if not found:
        out.write(f"{path}: {len(monitor.trace)} events, no forbidden transition ({design.name})\n")
        return 0
    number, first = found[0]
    out.write(f"{path}:{number}: {first}\n")
    for number, v in found[1:]:
        out.write(f"  also {path}:{number}: {v}\n")
    return 1


def register(sub: argparse._SubParsersAction[Parser], parents: Sequence[Parser] = ()) -> None:
    """Add the testing commands to ``fsm``'s parser."""
    p = sub.add_parser("testgen", parents=list(parents), help="generate a test suite from a design")
    p.add_argument("--design", metavar="NAME", required=True)
    add_environment_option(p)
    add_messages_option(p)
    p.add_argument("--criterion", choices=CRITERIA, required=True)
    p.add_argument("--seed", type=int, default=0, help="random: the walks' seed (default 0)")
    p.add_argument(
        "--length", type=positive, default=40, help="random: steps per walk (default 40)"
    )
    p.add_argument(
        "--max-steps",
        type=positive,
        default=200_000,
        help="random: stop after this many steps even if not every transition is covered",
    )
    p.add_argument("--format", choices=("json", "pytest"), default="json")
    p.add_argument("--out", metavar="FILE", help="write here instead of standard output")
    p.set_defaults(func=cmd_testgen)

    p = sub.add_parser("replay", parents=list(parents), help="replay a suite through an adapter")
    p.add_argument("suite", metavar="SUITE.json")
    p.add_argument(
        "--adapter",
        metavar="NAME",
        default="model",
        help=f"{', '.join(adapter_names())}, or module:Class (default model; "
        "reference needs the 'reference' extra)",
    )
    p.add_argument("--design", metavar="NAME", help="reset the adapter for this design instead")
    p.add_argument("--json", action="store_true", help="print the ReplayReport as JSON")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("mutants", parents=list(parents), help="kill matrix of hardened's mutants")
    p.add_argument("--criterion", choices=(*CRITERIA, "all"), default="transitions")
    add_environment_option(p, MUTANTS_ENVIRONMENT)
    add_messages_option(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--max-steps",
        type=positive,
        default=20_000,
        help="random: the walks' step budget (default 20000)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_mutants)

    p = sub.add_parser(
        "monitor", parents=list(parents), help="validate a recorded client log (JSON lines)"
    )
    p.add_argument("log", metavar="LOG.jsonl")
    p.add_argument("--design", metavar="NAME", required=True)
    p.set_defaults(func=cmd_monitor)


# Kept so the suite format is importable from here for the schema command.
SUITE_SCHEMA = Suite.model_json_schema
