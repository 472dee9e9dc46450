"""``fsm monitor`` on long logs: lines per second and peak memory, beside the
code at 7814de1 (which read the whole file and copied the whole trace into
every violation).

Two logs, written once to a temporary folder:

* ``flapping``: connection events only (connect, handshake, background,
  foreground...), a forbidden transition every few lines on ``pre-fix``;
* ``messages``: a block of nine events with two new message ids each (the
  seed's verification trace), so the monitor holds one state per id.

Each run is a separate process running ``fsm monitor --all`` (the old code:
without ``--all``, it had none and reported every violation); the time is the
command's alone, without the interpreter's start; the peak resident memory, of
the whole process, comes from ``wait4``. The old code is taken with
``git archive 7814de1`` and run on smaller logs, as its cost grows with the
square of the number of violations.

    .venv/bin/python benchmarks/monitor.py [--lines 1000000] [--old-lines 5000,10000,20000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD = "7814de1"

FLAP = ["connect", "handshake_ack", "app_background", "app_foreground", "network_lost"]


def flapping(n: int) -> Iterator[str]:
    return (json.dumps({"event": FLAP[i % len(FLAP)]}) + "\n" for i in range(n))


def messages(n: int) -> Iterator[str]:
    written = 0
    i = 0
    while True:
        a, b = f"a{i}", f"b{i}"
        block = [
            ("connect", None),
            ("handshake_ack", None),
            ("send", a),
            ("ws_send_ok", a),
            ("done", a),
            ("app_background", None),
            ("app_foreground", None),
            ("send", b),
            ("ws_send_failed", b),
        ]
        for e, m in block:
            if written == n:
                return
            yield json.dumps({"event": e, "message": m}) + "\n"
            written += 1
        i += 1


#: Run in the child: time ``fsm monitor`` alone, not the interpreter's start.
CHILD = """
import sys, time
from fsm.cli import main
class Sink:
    def write(self, text):
        return len(text)
    def flush(self):
        pass
start = time.perf_counter()
code = main(sys.argv[1:], Sink())
sys.stderr.write(f"{time.perf_counter() - start} {code}\\n")
"""


def run(tree: Path, log: Path, design: str, extra: list[str]) -> tuple[float, float]:
    """Seconds (the command alone) and peak resident MiB of one monitor run."""
    argv = [sys.executable, "-c", CHILD, "monitor", "--design", design, *extra, str(log)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.Popen(argv, cwd=tree, env=env, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    words = err.strip().splitlines()[-1].split() if err.strip() else []
    if proc.returncode != 0 or len(words) != 2 or words[1] not in ("0", "1"):
        raise SystemExit(f"monitor failed ({proc.returncode}): {err.strip()}")
    return float(words[0]), usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--old-lines", default="5000,10000,20000")
    args = parser.parse_args()
    old_sizes = [int(x) for x in args.old_lines.split(",") if x]
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores")
    print()
    with tempfile.TemporaryDirectory(prefix="fsm-bench-monitor-") as tmp:
        work = Path(tmp)
        old = work / "old"
        old.mkdir()
        archive = subprocess.run(
            ["git", "archive", OLD, "fsm"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old)
        print("| code | log | design | lines | seconds | lines/s | peak MiB |")
        print("|---|---|---|---:|---:|---:|---:|")
        for kind, make in (("flapping", flapping), ("messages", messages)):
            design = "pre-fix"
            rows: list[tuple[str, Path, int]] = []
            for n in old_sizes:
                rows.append(("7814de1", old, n))
            for n in sorted({*old_sizes, args.lines // 10, args.lines}):
                rows.append(("this tree", ROOT, n))
            for label, tree, n in rows:
                log = work / f"{kind}-{n}.jsonl"
                if not log.exists():
                    with open(log, "w", encoding="utf-8") as f:
                        f.writelines(make(n))
                extra = [] if tree == old else ["--all"]
                seconds, peak = run(tree, log, design, extra)
                print(
                    f"| {label} | {kind} | {design} | {n:,} | {seconds:.2f} | "
                    f"{n / seconds:,.0f} | {peak:.0f} |"
                )


if __name__ == "__main__":
    main()
