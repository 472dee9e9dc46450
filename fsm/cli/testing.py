"""The testing commands: testgen, replay, mutants, monitor."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import stat
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import BinaryIO, TextIO

from fsm.cli.options import (
    Parser,
    add_design_options,
    add_environment_option,
    add_messages_option,
    positive,
    positive_seconds,
    spec_design,
)
from fsm.cli.output import shown, shown_lines
from fsm.model.design import Design, file_kind, get_design, get_environment
from fsm.model.errors import SpecError, UnknownName
from fsm.render.text import table
from fsm.staging import write_atomic
from fsm.testing.adapters import SystemUnderTest, adapter_names, load_adapter
from fsm.testing.driver import DriverAdapter
from fsm.testing.generators import CRITERIA, generate
from fsm.testing.monitor import Monitor, MonitorError
from fsm.testing.mutants import KillReport, kill_matrix, mutants_for
from fsm.testing.pytest_writer import pytest_module
from fsm.testing.replay import ReplayReport, replay
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
        write_atomic(path, text)


def _design(args: argparse.Namespace, default: str | None = None) -> Design | None:
    """The design ``--design NAME`` or ``--spec FILE`` gives, else ``default``'s."""
    if args.spec is not None:
        return spec_design(args.spec)
    name = args.design if args.design is not None else default
    return None if name is None else get_design(name)


def cmd_testgen(args: argparse.Namespace, out: TextIO) -> int:
    design = _design(args)
    assert design is not None
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
    design = _design(args)
    adapter: SystemUnderTest
    try:
        if args.driver is not None:
            command = _driver_command(args.driver)
            adapter = DriverAdapter(command, deadline=args.step_timeout)
            name = "driver " + shlex.join(command)
        else:
            adapter = load_adapter(args.adapter)
            name = args.adapter
        try:
            report = replay(suite, adapter, design, adapter_name=name)
        finally:
            close = getattr(adapter, "close", None)
            if callable(close):
                close()
    except SystemExit as exc:
        # An exit from inside the adapter is not the end of a passing replay.
        raise SpecError(
            f"adapter {args.adapter!r} tried to exit the process (SystemExit({exc.code!r})) "
            "before the replay finished; not a pass"
        ) from None
    if args.json:
        out.write(report.model_dump_json(indent=2) + "\n")
    else:
        print_failures(report, out, verbose=args.verbose)
        out.write(shown_lines(_summary(suite, report)) + "\n")
    return 0 if report.passed else 1


def print_failures(report: ReplayReport, out: TextIO, verbose: bool = False) -> None:
    """Every failure with ``verbose``; else one example per group of failures that
    first diverge alike (:func:`~fsm.testing.replay.group_failures`), with the counts."""
    if verbose:
        for divergence in report.failures:
            out.write(shown_lines(divergence.describe()) + "\n\n")
        return
    groups = report.groups()
    for n, group in enumerate(groups, start=1):
        count = len(group.failures)
        cases = "case diverges" if count == 1 else "cases diverge"
        out.write(
            f"failure {n} of {len(groups)}: {count} {cases} at {group.key.step}: "
            f"{group.key.what}; for example\n"
        )
        out.write(shown_lines(group.failures[0].describe()) + "\n")
        if count > 1:
            others = [d.case for d in group.failures[1:]]
            listed = ", ".join(others[:8]) + (
                f" and {len(others) - 8} more" if len(others) > 8 else ""
            )
            out.write(f"  also: {listed}\n")
        out.write("\n")
    if len(report.failures) > len(groups):
        out.write("(--verbose shows every failing case)\n")


def _driver_command(text: str) -> list[str]:
    try:
        command = shlex.split(text)
    except ValueError as exc:
        raise SpecError(f"driver command {text!r}: {exc}") from None
    if not command:
        raise SpecError("the driver command is empty")
    return command


def _summary(suite: Suite, report: ReplayReport) -> str:
    """The last lines of a replay: counts, why cases did not run, and whether it says anything."""
    total = len(report.results)
    counts = [f"{report.count('passed')} of {total} cases pass"]
    if report.count("failed"):
        counts.append(f"{report.count('failed')} fail")
    if report.count("not_applicable"):
        counts.append(f"{report.count('not_applicable')} not applicable (a step was refused)")
    if report.count("skipped"):
        counts.append(f"{report.count('skipped')} skipped")
    lines = []
    reasons = Counter(r.reason for r in report.results if r.status == "skipped")
    for reason, n in sorted(reasons.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        lines.append(f"skipped {n}: {reason}")
    refusals = Counter(
        r.divergence.refused
        for r in report.results
        if r.status == "not_applicable" and r.divergence is not None
    )
    for reason, n in sorted(refusals.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        lines.append(f"not applicable {n}: refused: {reason}")
    last = (
        f"suite {suite.design}/{suite.criterion} on {report.design} through "
        f"{report.adapter}: {', '.join(counts)}"
    )
    if not report.conclusive and not report.count("failed"):
        last += f"; NOT A PASS: {report.not_run} of {total} cases did not run"
    lines.append(last)
    return "\n".join(lines)


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
    design = _design(args, "hardened")
    assert design is not None
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
            f"{len(mutants_for(design))} mutants of {design.name}, {environment.name}, "
            f"{args.messages} messages ('from': the seed bug and REFERENCES, see docs/seed-bug.md "
            "and docs/references.md)\n\n"
        )
        for report in reports:
            print_kills(report, out)
        last = reports[-1] if args.criterion != "all" else reports[CRITERIA.index("transitions")]
        if args.criterion == "all":
            out.write("scores: " + ", ".join(f"{r.criterion} {r.score}" for r in reports) + "\n")
        out.write(f"mutation score {last.score}\n")
    return 0


#: The longest line ``fsm monitor`` reads: a record is an event and an id.
MAX_LOG_LINE = 64 * 1024


def _log_lines(path: str) -> Iterator[tuple[int, bytes]]:
    """The numbered lines of the log at ``path`` (``-``: standard input), read one at
    a time: split on ``\n`` only, each at most :data:`MAX_LOG_LINE` bytes.

    Only a regular file or standard input is read: a FIFO, a device or a folder
    is refused before anything is read from it (stream a live log through ``-``).
    """
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
        close = False
    else:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC)
        except OSError as exc:
            raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            raise SpecError(
                f"{path}: cannot read: {file_kind(mode)}, not a regular file "
                "(give - to read standard input)"
            )
        stream = os.fdopen(fd, "rb")
        close = True
    try:
        number = 0
        while True:
            try:
                line = stream.readline(MAX_LOG_LINE + 1)
            except OSError as exc:
                raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
            if not line:
                return
            number += 1
            if len(line) > MAX_LOG_LINE and not line.endswith(b"\n"):
                raise SpecError(f"{path}:{number}: line longer than {MAX_LOG_LINE // 1024} KiB")
            yield number, line
    finally:
        if close:
            stream.close()


#: A record in the form a client writes most often, with plain names: read without
#: the JSON parser (what it matches, json.loads reads the same way).
_PLAIN = re.compile(
    rb'[ \t]*\{[ \t]*"event"[ \t]*:[ \t]*"([A-Za-z0-9_]+)"[ \t]*'
    rb'(?:,[ \t]*"message"[ \t]*:[ \t]*(?:"([A-Za-z0-9_.:-]*)"|null)[ \t]*)?\}[ \t\r]*\n?'
)


def _record(path: str, number: int, line: bytes) -> tuple[str, str | None] | None:
    """The event and message id of one log line; ``None`` for a blank line."""
    plain = _PLAIN.fullmatch(line)
    if plain is not None:
        event, message = plain.groups()
        return event.decode(), None if message is None else message.decode()
    if not line.strip(b" \t\r\n"):
        return None
    where = f"{path}:{number}"
    try:
        record = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        raise SpecError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise SpecError(f"{where}: not a log record: nested too deep") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise SpecError(f"{where}: not a log record: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        raise SpecError(f'{where}: expected {{"event": ..., "message": ...}}')
    message = record.get("message")
    if message is not None and not isinstance(message, str):
        raise SpecError(f"{where}: message must be a string id")
    return record["event"], message


def cmd_monitor(args: argparse.Namespace, out: TextIO) -> int:
    design = _design(args)
    assert design is not None
    monitor = Monitor(design, raise_on_violation=False, window=1)
    path: str = args.log
    name = "standard input" if path == "-" else shown(path)
    found = 0
    # Clients repeat most lines exactly (connection events): each distinct line is
    # read once while the memo lasts; it is emptied when full.
    memo: dict[bytes, tuple[str, str | None] | None] = {}
    for number, line in _log_lines(path):
        try:
            seen = memo[line]
        except KeyError:
            seen = _record(path, number, line)
            if len(memo) >= 4096:
                memo.clear()
            memo[line] = seen
        if seen is None:
            continue
        try:
            monitor.observe(*seen)
        except (MonitorError, UnknownName) as exc:
            raise SpecError(f"{path}:{number}: {exc}") from None
        if monitor.violations:
            for v in monitor.violations:
                out.write(f"{'  also ' if found else ''}{name}:{number}: {shown(v)}\n")
                found += 1
            monitor.violations.clear()
            if not args.all:
                out.write(f"{name}: stopped at the first forbidden transition (--all: every one)\n")
                return 1
    if found:
        out.write(f"{name}: {monitor.events} events, {found} forbidden ({design.name})\n")
        return 1
    out.write(f"{name}: {monitor.events} events, no forbidden transition ({design.name})\n")
    return 0


def register(sub: argparse._SubParsersAction[Parser], parents: Sequence[Parser] = ()) -> None:
    """Add the testing commands to ``fsm``'s parser."""
    p = sub.add_parser("testgen", parents=list(parents), help="generate a test suite from a design")
    add_design_options(p, required=True, what="to generate the suite from")
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
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--adapter",
        metavar="NAME",
        default="model",
        help=f"{', '.join(adapter_names())}, or module:Class (default model; "
        "reference needs the 'reference' extra)",
    )
    how.add_argument(
        "--driver",
        metavar="COMMAND",
        help="run the system under test as this command (split like a shell line, not run "
        "by one) and speak the driver protocol with it over its stdin/stdout "
        "(fsm schema driver); instead of --adapter",
    )
    p.add_argument(
        "--step-timeout",
        type=positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="with --driver: how long one answer may take (default 10)",
    )
    add_design_options(
        p, required=False, what="to reset the adapter for instead of the one the suite records"
    )
    p.add_argument("--json", action="store_true", help="print the ReplayReport as JSON")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="describe every failing case (default: one per group that diverges alike)",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "mutants", parents=list(parents), help="kill matrix of a design's mutants (hardened's)"
    )
    add_design_options(p, required=False, what="whose mutants to build (default hardened)")
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
    p.add_argument("log", metavar="LOG.jsonl", help="a regular file, or - for standard input")
    add_design_options(p, required=True, what="whose tables and rules the log must follow")
    p.add_argument(
        "--all", action="store_true", help="report every forbidden transition, not only the first"
    )
    p.set_defaults(func=cmd_monitor)
