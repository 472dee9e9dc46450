"""Record ``examples/seed.jsonl``: what the real pre-fix client reports in the seed's test case.

Runs the seed's verification scenario (send, switch apps, return, send a
second message) on the reference client of ``pre-fix`` over loopback sockets,
with a runtime monitor fed by the client's own events, and writes every event
the monitor took as one JSON object per line. ``fsm monitor --design pre-fix
examples/seed.jsonl`` then reports the forbidden transitions of that run.
Needs the ``reference`` extra (aiohttp)::

    .venv/bin/python examples/record_seed_log.py [OUT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fsm import get_design, get_environment, replay
from fsm.analysis.scenario import get_scenario
from fsm.reference.adapter import ReferenceAdapter
from fsm.testing.generators import scenario_suite


def record(design: str = "pre-fix") -> list[dict[str, str]]:
    """The events a monitor took from the real client of ``design`` in the seed scenario."""
    suite = scenario_suite(
        get_scenario("seed-verification"), get_design(design), get_environment("ios-suspend")
    )
    with ReferenceAdapter(monitor=True) as adapter:
        report = replay(suite, adapter)
        assert report.passed, "the real client no longer behaves as the model says"
        assert adapter.monitor is not None
        trace = list(adapter.monitor.trace)
    return [{"event": e} if m is None else {"event": e, "message": m} for e, m in trace]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("seed.jsonl"))
    lines = [json.dumps(r, sort_keys=True) for r in record()]
    temporary = out.with_name(f".{out.name}.tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.replace(out)
    print(f"{out}: {len(lines)} events")


if __name__ == "__main__":
    main()
