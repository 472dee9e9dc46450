"""The explorer against its earlier versions, side by side in one run.

Three versions of the explorer explore the same systems:

* ``objects``: the first explorer, one ``World`` object per state in Python
  lists and dicts;
* ``packed``: states packed into integers and searched one at a time, steps
  memoised in dictionaries, backward analyses in Python loops;
* ``layered``: the current one, numpy arrays, a batch of states at a time.

The old versions are the whole package as it was at two commits of this
checkout's history (``git archive``), where those explorers were current; the
model has not changed since (the script checks that the versions agree on
every state count). Each measurement runs in a fresh process (peak resident
memory above the imports, per state); versions are interleaved round by round
and the medians are printed, with speed and memory ratios against
``objects``. ``--what check`` times a whole ``check`` (exploration, every
property, counterexamples) instead of the exploration alone.

    .venv/bin/python benchmarks/explorer_versions.py [--rounds 3] [--messages 6]
        [--what explore|check]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: Each earlier version: the commit whose package it is.
VERSIONS = {"objects": "2a33ada^", "packed": "d24c33b^"}
CASES = [
    ("pre-fix", "ios-suspend"),
    ("fixed", "ios-suspend"),
    ("fixed", "half-open"),
    ("seed-system", "half-open"),
    ("hardened", "half-open"),
]

_CHILD = """
import json, resource, sys, time
what, design, env, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
from fsm.analysis import checker
try:
    from fsm.analysis.explore import explore
except ImportError:  # the earlier versions: one module
    from fsm.analysis.explorer import explore
from fsm.analysis.system import System
from fsm.model.design import DESIGNS, ENVIRONMENTS
explore(System(DESIGNS[design], ENVIRONMENTS[env], 1))  # warm the imports and caches
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if what == "check":
    states = checker.check(DESIGNS[design], ENVIRONMENTS[env], n).states
else:
    states = len(explore(System(DESIGNS[design], ENVIRONMENTS[env], n)).worlds)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"states": states, "seconds": seconds, "bytes": (peak - base) * 1024}))
"""


def measure(tree: str, what: str, design: str, env: str, n: int) -> dict[str, float]:
    """One measurement in a fresh process importing the package from ``tree``."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, what, design, env, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": tree},
        cwd=tree,
    )
    data: dict[str, float] = json.loads(done.stdout)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell (median)")
    parser.add_argument("--messages", type=int, default=6, help="N (default 6)")
    parser.add_argument("--what", choices=["explore", "check"], default="explore")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, str] = {}
        for name, commit in VERSIONS.items():
            folder = Path(tmp) / name
            folder.mkdir()
            try:
                archive = subprocess.run(
                    ["git", "-C", here, "archive", commit, "fsm"],
                    capture_output=True,
                    check=True,
                ).stdout
                subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
            except (OSError, subprocess.CalledProcessError):
                sys.exit(
                    f"explorer_versions: cannot read {commit} (needs this repository's history)"
                )
            trees[name] = str(folder)
        trees["layered"] = here
        print(
            f"python {platform.python_version()} on {platform.machine()}; {args.what}, "
            f"N = {args.messages}, median of {args.rounds} fresh processes per cell"
        )
        print()
        print(
            "| design | environment | states | objects states/s | packed states/s "
            "| layered states/s | layered/objects | objects B/state | packed B/state "
            "| layered B/state | memory objects/layered |"
        )
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for design, env in CASES:
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
            for _ in range(args.rounds):
                for name, tree in trees.items():
                    runs[name].append(measure(tree, args.what, design, env, args.messages))
            states = {r["states"] for rs in runs.values() for r in rs}
            assert len(states) == 1, f"the versions disagree on the states: {states}"
            (count,) = states
            speed = {
                name: statistics.median(count / r["seconds"] for r in rs)
                for name, rs in runs.items()
            }
            memory = {
                name: statistics.median(r["bytes"] / count for r in rs) for name, rs in runs.items()
            }
            print(
                f"| {design} | {env} | {count:,.0f} | {speed['objects']:,.0f} "
                f"| {speed['packed']:,.0f} | {speed['layered']:,.0f} "
                f"| {speed['layered'] / speed['objects']:.1f}x | {memory['objects']:.0f} "
                f"| {memory['packed']:.0f} | {memory['layered']:.0f} "
                f"| {memory['objects'] / memory['layered']:.1f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
