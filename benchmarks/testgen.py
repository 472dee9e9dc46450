"""Test generation, mutation score and the runtime monitor, measured in one run.

Prints, per built-in design and criterion: cases, total steps, the optimum (for
``transitions``), and how many of ``hardened``'s mutants the suite kills when it
is generated from ``hardened``; then the steps seeded random walks need to take
every transition, next to the optimal suite; then the monitor's cost per event
next to ``transitions``' ``Machine.trigger`` on the same event stream.

    .venv/bin/python benchmarks/testgen.py [--messages N] [--environment NAME]
"""

from __future__ import annotations

import argparse
import platform
import random
import time
from collections.abc import Callable
from typing import Any

from fsm.analysis.system import System, Transition
from fsm.model.design import DESIGNS, get_design, get_environment
from fsm.model.machines import connection_machine, message_machine
from fsm.testing.generators import CRITERIA, generate
from fsm.testing.monitor import Monitor, events_of
from fsm.testing.mutants import MUTANTS, kill_matrix


def suites(messages: int, environment: str) -> None:
    env = get_environment(environment)
    print(f"Suites, {environment}, {messages} messages (mutants of hardened, model adapter):")
    print()
    print("| design | criterion | cases | steps | optimum | mutants killed |")
    print("|---|---|---:|---:|---:|---:|")
    for design in DESIGNS.values():
        for criterion in CRITERIA:
            if criterion == "random":
                continue
            suite = generate(design, env, messages, criterion)
            optimum = "" if suite.stats.optimum is None else str(suite.stats.optimum)
            killed = ""
            if design.name == "hardened":
                killed = kill_matrix(suite, env).score
            print(
                f"| {design.name} | {criterion} | {len(suite.cases)} | "
                f"{suite.stats.criterion_steps} | {optimum} | {killed} |"
            )
    print()


def random_vs_optimal(messages: int, environment: str, seeds: int) -> None:
    env = get_environment(environment)
    print(f"Random walks (length 40) until every transition is taken, {environment}:")
    print()
    print("| design | transitions | optimal suite | random, median of seeds | ratio |")
    print("|---|---:|---:|---:|---:|")
    for design in DESIGNS.values():
        optimal = generate(design, env, messages, "transitions").stats
        runs = []
        for seed in range(seeds):
            stats = generate(design, env, messages, "random", seed=seed, max_steps=1_000_000).stats
            runs.append(stats.criterion_steps if stats.covered == stats.targets else None)
        done = sorted(r for r in runs if r is not None)
        median = done[len(done) // 2] if done else None
        ratio = "" if median is None else f"{median / optimal.criterion_steps:.0f}x"
        shown = "not covered in 1M steps" if median is None else str(median)
        print(
            f"| {design.name} | {optimal.targets} | {optimal.criterion_steps} | {shown} | {ratio} |"
        )
    print()


def _stream(length: int) -> tuple[Any, list[tuple[str, str | None]], list[Transition]]:
    design = get_design("hardened")
    system = System(design, get_environment("ios-suspend"), 2)
    rng = random.Random(0)
    world = system.initial()
    steps = []
    for _ in range(length):
        options = system.successors(world)
        step = options[rng.randrange(len(options))]
        steps.append(step)
        world = step.target
    return design, [(e.event, e.message) for e in events_of(steps)], steps


def _best(rounds: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(rounds))


def monitor_cost(repeat: int) -> None:
    design, events, steps = _stream(40)

    def monitored() -> float:
        monitors = [Monitor(design) for _ in range(repeat)]
        start = time.perf_counter()
        for monitor in monitors:
            observe = monitor.observe
            for event, message in events:
                observe(event, message)
        return (time.perf_counter() - start) / (repeat * len(events)) * 1e6

    # The same stream on transitions' machines: one trigger per machine event.
    triggers: list[tuple[int, str]] = []
    for step in steps:
        for fired in step.fired:
            index = 0 if fired.message is None else fired.message + 1
            triggers.append((index, fired.row.event.value))

    def triggered() -> float:
        rounds = max(1, repeat // 10)
        groups = [
            [connection_machine(design), message_machine(design), message_machine(design)]
            for _ in range(rounds)
        ]
        start = time.perf_counter()
        for group in groups:
            models = [m._model for m in group]  # type: ignore[attr-defined]
            for index, event in triggers:
                models[index].trigger(event)
        return (time.perf_counter() - start) / (rounds * len(triggers)) * 1e6

    table = {(s, e): s for s in range(5) for e in range(11)}

    def looked_up() -> float:
        start = time.perf_counter()
        for _ in range(repeat):
            for _ in events:
                table.get((2, 3))
        return (time.perf_counter() - start) / (repeat * len(events)) * 1e6

    monitor_us = _best(5, monitored)
    trigger_us = _best(5, triggered)
    dict_us = _best(5, looked_up)
    print(f"Runtime monitor, hardened, a {len(events)}-event stream, best of 5, same run:")
    print()
    print("| executor | µs per event |")
    print("|---|---:|")
    print(f"| fsm.Monitor.observe | {monitor_us:.2f} |")
    print(f"| transitions Machine.trigger | {trigger_us:.2f} |")
    print(f"| a dict lookup | {dict_us:.2f} |")
    print()
    print(f"monitor is {trigger_us / monitor_us:.1f}x faster than Machine.trigger")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2)
    parser.add_argument("--environment", default="half-open")
    parser.add_argument("--seeds", type=int, default=3, help="random walks: seeds (default 3)")
    parser.add_argument(
        "--random-messages", type=int, default=1, help="random walks: messages (default 1)"
    )
    parser.add_argument("--repeat", type=int, default=500)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {len(MUTANTS)} mutants")
    print()
    suites(args.messages, args.environment)
    random_vs_optimal(args.random_messages, args.environment, args.seeds)
    monitor_cost(args.repeat)


if __name__ == "__main__":
    main()
