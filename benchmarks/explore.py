"""How fast the checker explores each built-in design.

For every environment, design and number of messages N = 1..5 it prints the
reachable states and transitions (up to message symmetry), the wall time of a
full ``check`` (exploration, every property, counterexample replay), the
states explored per second and how many properties the design violates. A
second table runs the same exploration with and without the symmetry reduction
side by side, so the reduction is measured as a ratio in one run rather than
against numbers from another machine or day.

    .venv/bin/python benchmarks/explore.py [--max-messages N] [--repeat K]
    .venv/bin/python benchmarks/explore.py --engines [--max-messages 8] [--max-seconds S]

With ``--engines`` it prints instead, for every environment, design and
N = 1..8, both engines side by side: the built-in checker (symmetry-reduced
states, wall time of a full check, peak resident memory of a fresh process)
and SPIN (states without symmetry reduction, wall time of the exhaustive
breadth-first count run and of all its checks, SPIN's own memory figure).
``--max-seconds`` is the budget of one cell: a run that exceeds it is stopped
(or, for SPIN's checks after the count, not continued at the next N), and that
cell and the larger N of that engine, design and environment print
"over budget".
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

from fsm.analysis.checker import check
from fsm.analysis.explore import explore
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


_CHILD = """
import json, resource, sys, time
from fsm.analysis.checker import check
from fsm.model.design import DESIGNS, ENVIRONMENTS
d, e, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
result = check(DESIGNS[d], ENVIRONMENTS[e], n)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"states": result.states, "seconds": seconds, "mb": peak}))
"""


def explorer_run(design: str, env: str, n: int, timeout: float) -> dict[str, float] | None:
    """A full check in a fresh process, so its peak memory is its own; ``None``
    when it takes longer than ``timeout`` seconds."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, design, env, str(n)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    data: dict[str, float] = json.loads(done.stdout)
    return data


OVER = ["over budget", "-", "-"]


def engines(max_messages: int, max_seconds: float) -> None:
    """Both engines for every environment, design and N = 1..``max_messages``; a
    cell that takes longer than ``max_seconds`` (and every larger N of that
    engine, design and environment) prints "over budget"."""
    from fsm.analysis.spin import spin_check
    from fsm.model.errors import FsmError

    print(
        "| environment | design | N | explorer states | explorer s | explorer MB "
        "| spin states | spin count s | spin all checks s | spin MB |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for env in ENVIRONMENTS.values():
        for design in DESIGNS.values():
            py_on = spin_on = True
            for n in range(1, max_messages + 1):
                cells = list(OVER)
                if py_on:
                    py = explorer_run(design.name, env.name, n, max_seconds)
                    if py is None:
                        py_on = False
                    else:
                        cells = [f"{py['states']:,.0f}", f"{py['seconds']:.2f}", f"{py['mb']:.0f}"]
                spin_cells = [*OVER, "-"]
                if spin_on:
                    try:
                        sp = spin_check(design, env, n, timeout=max_seconds)
                    except FsmError:
                        spin_on = False
                    else:
                        if sp.seconds > max_seconds:
                            spin_on = False
                        spin_cells = [
                            f"{sp.result.states:,}",
                            f"{sp.runs[0].seconds:.2f}",
                            f"{sp.seconds:.2f}",
                            f"{max(r.memory_mb for r in sp.runs):.0f}",
                        ]
                print(
                    f"| {env.name} | {design.name} | {n} | "
                    + " | ".join(cells + spin_cells)
                    + " |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--max-messages", type=int, default=None, help="default 5, or 8 with --engines"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of K runs (default 3)")
    parser.add_argument("--engines", action="store_true", help="both engines side by side")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="budget per cell with --engines"
    )
    args = parser.parse_args()
    if args.engines:
        print(f"python {platform.python_version()} on {platform.machine()}")
        print()
        engines(args.max_messages or 8, args.max_seconds)
        return
    args.max_messages = args.max_messages or 5

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
