"""How fast the checker explores each built-in design.

For every environment, design and number of messages N = 1..5 it prints the
reachable states and transitions (up to message symmetry), the wall time of a
full ``check`` (exploration, every property, counterexample replay), the
states explored per second and how many properties the design violates. A
second table runs the same exploration with and without the symmetry reduction
side by side, so the reduction is measured as a ratio in one run rather than
against numbers from another machine or day.

    .venv/bin/python benchmarks/explore.py [--max-messages N] [--repeat K]
"""

from __future__ import annotations

import argparse
import platform
import time

from fsm.analysis.checker import check
from fsm.analysis.explorer import explore
from fsm.analysis.system import System
from fsm.model.design import DESIGNS, ENVIRONMENTS


def best_of(repeat: int, run: object) -> float:
    assert callable(run)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--max-messages", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs (default 3)")
    args = parser.parse_args()

    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.repeat}")
    print()
    print("| environment | design | N | states | transitions | check (s) | states/s | violated |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for env in ENVIRONMENTS.values():
        for design in DESIGNS.values():
            for n in range(1, args.max_messages + 1):
                report = check(design, env, n)
                repeat = args.repeat if report.states < 50_000 else 1
                seconds = best_of(repeat, lambda d=design, e=env, k=n: check(d, e, k))
                violated = sum(not v.holds for v in report.verdicts)
                print(
                    f"| {env.name} | {design.name} | {n} | {report.states} | "
                    f"{report.transitions} | {seconds:.3f} | {report.states / seconds:,.0f} | "
                    f"{violated} of {len(report.verdicts)} |"
                )

    print()
    print("Symmetry reduction, same run (exploration only):")
    print()
    print(
        "| environment | design | N | states (full) | states (reduced) | time ratio full/reduced |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for env in ENVIRONMENTS.values():
        for design in DESIGNS.values():
            for n in (2, 3):
                system = System(design, env, n)
                full = explore(system, symmetry=False)
                reduced = explore(system)
                t_full = best_of(args.repeat, lambda s=system: explore(s, symmetry=False))
                t_reduced = best_of(args.repeat, lambda s=system: explore(s))
                print(
                    f"| {env.name} | {design.name} | {n} | {len(full.worlds)} | "
                    f"{len(reduced.worlds)} | {t_full / t_reduced:.1f}x |"
                )


if __name__ == "__main__":
    main()
