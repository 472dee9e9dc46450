"""Generated suites replayed on the real socket.io-client, 4.7.5 and 4.8.4.

For every socket.io design, environment and criterion (``transitions`` and
``rows``; one message, and two where the composed system stays small), the
suite is generated from the design file and replayed through
``drivers/socketio/driver.js`` with the options the design describes, on the
library version it describes and, for the designs of 4.8, on 4.7.5 too (which
lacks 4.8's send-time heartbeat check, so those suites are expected to fail).

Prints one row per replay: cases passed, refused (not applicable), skipped and
failed, the wall time, and what the failures are, each failing case put in one
of the kinds below by reading the model up to the step where it diverged:

``second-ack``
    a divergence of the retries designs from the library, not fixed here: a
    message buffered at the heartbeat deadline is written twice when the next
    connection is acknowledged (``emitBuffered()`` writes the buffered packet,
    ``_drainQueue(true)`` the queue's head again, socket.js 609-618), so two of
    its acknowledgement callbacks wait. The model keeps one. When one times out,
    its retry meets the deadline and the connection closes, and ``_clearAcks()``
    fails the other copy's callback (socket.js 466-491; only the packet still in
    ``sendBuffer`` is spared): a second failure, which discards the message when
    ``tryCount > retries``, where the model spares a ``buffered`` message.
``4.7.5``
    a 4.8 suite on 4.7.5 at a step where 4.8 finds the heartbeat deadline passed
    (the model fires ``heartbeat_expired``): 4.7.5 writes into the dead connection
    where 4.8 buffers the message and reconnects.
``other``
    none of these: a new divergence, to be read.

    .venv/bin/python benchmarks/socketio_suites.py [--quick] [--max-transitions N]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

from fsm.analysis.explore import explore
from fsm.analysis.system import Stimulus, System
from fsm.model.design import Design, Environment, get_environment, load_design
from fsm.model.vocabulary import ConnectionEvent
from fsm.testing.adapters import choose
from fsm.testing.driver import DriverAdapter
from fsm.testing.generators import generate
from fsm.testing.replay import Divergence, ReplayReport, replay
from fsm.testing.suite import Case, Criterion

ROOT = Path(__file__).resolve().parents[1]
DRIVER = ROOT / "drivers" / "socketio" / "driver.js"
RETRIES = ["--retries", "3", "--ack-timeout", "500"]
#: Each design, the driver options it describes, and the library versions to run it on.
DESIGNS: list[tuple[str, list[str], list[str]]] = [
    ("socketio-4.7", [], ["4.7"]),
    ("socketio-4.8", [], ["4.8", "4.7"]),
    ("socketio-4.8-retries", RETRIES, ["4.8", "4.7"]),
    ("socketio-4.8-retries-dedup", [*RETRIES, "--dedup"], ["4.8", "4.7"]),
]
ENVIRONMENTS = ["ios-suspend", "ios-suspend-silent", "half-open"]
CRITERIA: list[Criterion] = ["transitions", "rows"]
LIBRARY = {"4.7": "4.7.5", "4.8": "4.8.4"}
KINDS = ["second-ack", "4.7.5", "other"]


def kind(divergence: Divergence, case: Case, system: System, version: str) -> str:
    """Which known divergence a failing case shows (see the module's docstring)."""
    world, expired, deadline = system.initial(), False, False
    two_acks: set[int] = set()  # written twice when the current connection was acknowledged
    for step in case.steps[: divergence.step]:
        t = choose(system, world, step.stimulus, step.index, step.outcome)
        assert t is not None, f"{case.id}: {step.label()} is not a step of the model"
        rows = {(f.message, f"{f.row.source}-{f.row.event}") for f in t.fired}
        if step.stimulus is Stimulus.handshake_ack:
            two_acks = {
                i
                for i, _ in rows
                if i is not None
                and (i, "buffered-flush") in rows
                and (i, "sent_ws-resend_ws") in rows
            }
        expired = any(f.row.event is ConnectionEvent.heartbeat_expired for f in t.fired)
        deadline = step.stimulus is Stimulus.ack_timeout and (
            (step.index, "pending-deadline_buffer") in rows
        )
        world = t.target
    if version == "4.7" and expired:
        return "4.7.5"
    observed, expected = divergence.observed, divergence.expected
    if not deadline or observed is None or expected is None:
        return "other"
    aimed = case.steps[divergence.step - 1].index
    if aimed in two_acks:
        seen, wanted = observed.messages[aimed].state, expected.messages[aimed].state
        if seen == "failed" and wanted != "failed":
            return "second-ack"
    return "other"


def run(
    design: Design,
    env: Environment,
    criterion: Criterion,
    messages: int,
    version: str,
    options: list[str],
) -> tuple[ReplayReport, Counter[str], float]:
    suite = generate(design, env, messages, criterion)
    command = ["node", str(DRIVER), "--client", version, *options]
    started = time.perf_counter()
    with DriverAdapter(command, deadline=20) as driver:
        report = replay(suite, driver, adapter_name=" ".join(command[2:]))
    seconds = time.perf_counter() - started
    system = System(design, env, messages)
    cases = {c.id: c for c in suite.cases}
    kinds = Counter(kind(d, cases[d.case], system, version) for d in report.failures)
    return report, kinds, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--max-transitions",
        type=int,
        default=8000,
        help="a two-message transitions suite only below this many transitions (default 8000)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one message, each design on its own version only"
    )
    args = parser.parse_args()
    if shutil.which("node") is None or not (DRIVER.parent / "node_modules").is_dir():
        print("needs node and `npm ci` in drivers/socketio (make deps)", file=sys.stderr)
        return 2
    print("Generated suites on the real socket.io-client (drivers/socketio):")
    print()
    print(
        "| design | environment | criterion | messages | library | cases | passed | refused "
        "| skipped | failed | failures by kind | seconds |"
    )
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---|---:|")
    started = time.perf_counter()
    totals: Counter[str] = Counter()
    skipped: list[str] = []
    for name, options, versions in DESIGNS:
        design = load_design(ROOT / "designs" / f"{name}.toml")
        for env_name in ENVIRONMENTS:
            env = get_environment(env_name)
            for criterion in CRITERIA:
                for messages in (1,) if args.quick else (1, 2):
                    if messages > 1 and criterion == "transitions":
                        size = explore(System(design, env, messages)).transitions
                        if size > args.max_transitions:
                            skipped.append(f"{name} {env_name} {criterion} {messages}: {size}")
                            continue
                    for version in versions[:1] if args.quick else versions:
                        report, kinds, seconds = run(
                            design, env, criterion, messages, version, options
                        )
                        totals.update(kinds)
                        shown = ", ".join(f"{k} {kinds[k]}" for k in KINDS if kinds[k])
                        print(
                            f"| {name} | {env_name} | {criterion} | {messages} "
                            f"| {LIBRARY[version]} | {len(report.results)} "
                            f"| {report.count('passed')} | {report.count('not_applicable')} "
                            f"| {report.count('skipped')} | {report.count('failed')} "
                            f"| {shown} | {seconds:.1f} |",
                            flush=True,
                        )
    print()
    print(f"Failures by kind, all replays: {dict(totals) or 'none'}")
    if skipped:
        print(f"Not replayed (more than {args.max_transitions} transitions): {'; '.join(skipped)}")
    print(f"Total {time.perf_counter() - started:.0f} s")
    return 1 if totals["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
