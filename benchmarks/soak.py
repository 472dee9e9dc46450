"""Soak: the real client of each design sends N messages through injected faults.

    python benchmarks/soak.py [--messages N] [--seed S] [--json] [--design NAME ...]

For every design, a fresh server, fault proxies and client (``fsm.reference``)
run the same seeded fault schedule: between messages the schedule suspends and
resumes the app (the socket reset, or silently black-holed and reported
later), black-holes the live connection (half-open), resets it, takes the
network away and back, makes the REST endpoint answer 503 or apply a message
and drop the response, and kills the client and starts it again on its SQLite
store. The client's clock advances a fixed step per message, so the schedule
is the same for every design. After the last message the faults stop, every
dead socket is reported, and the client gets 30 s of its clock to recover.

Then, from the server's own store: ``sent`` (messages the client accepted),
``confirmed`` and ``failed`` (as the client shows them), ``lost`` (the server
never applied it and the client does not show it failed), ``duplicated`` (the
server applied it more than once), and messages per second of wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

from fsm.model.design import DESIGNS, Design, get_design
from fsm.model.vocabulary import MessageState
from fsm.reference.activity import settle
from fsm.reference.policy import Timings
from fsm.reference.server import Gates, RestVerdict
from fsm.reference.world import ReferenceWorld

#: Faults and their weights; one may be injected before each message.
FAULTS: dict[str, int] = {
    "suspend": 4,  # background + foreground; the suspended socket is reset (sends raise)
    "suspend_silent": 2,  # the same, black-holed: sends vanish; reported 3 messages later
    "suspend_after_send": 2,  # suspended just after a send, before its done arrives
    "blackhole": 1,  # the live connection goes half-open; nothing is ever reported
    "reset": 2,  # the live connection is reset; the receive loop reports it
    "network": 2,  # the network goes for 4 messages
    "rest_503": 2,  # the REST endpoint fails for 4 messages
    "rest_ambiguous": 2,  # the REST endpoint applies and drops the response for 4 messages
    "kill": 1,  # the client process is killed and started again
}
FAULT_RATE = 0.12
STEP = 0.25  # seconds of the client's clock per message
TIMINGS = Timings(heartbeat_interval=2.0, ack_watchdog=4.0, report_delay=0.6)


@dataclass(frozen=True)
class Row:
    design: str
    sent: int
    confirmed: int
    failed: int
    lost: int
    duplicated: int
    msgs_per_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "design": self.design,
            "sent": self.sent,
            "confirmed": self.confirmed,
            "failed": self.failed,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "msgs_per_s": self.msgs_per_s,
        }


def schedule(messages: int, seed: int) -> list[str | None]:
    """The fault (or ``None``) injected before each message: the same for every design."""
    rng = random.Random(seed)
    names = list(FAULTS)
    weights = [FAULTS[n] for n in names]
    return [
        rng.choices(names, weights)[0] if k > 0 and rng.random() < FAULT_RATE else None
        for k in range(messages)
    ]


async def soak_design(design: Design, messages: int, seed: int) -> Row:
    rest_mode: list[RestVerdict] = ["ok"]
    world = ReferenceWorld(Gates(rest_verdict=lambda: rest_mode[0]))
    await world.start()
    try:
        return await _run(world, design, messages, seed, rest_mode)
    finally:
        await world.stop()


async def _run(
    world: ReferenceWorld, design: Design, messages: int, seed: int, rest_mode: list[RestVerdict]
) -> Row:
    store = world.new_store()
    client = await world.new_client(design, store=store, timings=TIMINGS)
    bodies = [f"soak-{seed}-{k}" for k in range(messages)]
    later: dict[int, list[str]] = {}  # message index -> things to undo before it

    async def quiet() -> None:
        c = world.client
        await settle(
            world.activity,
            ready=lambda: c is None or c.idle,
            quiet_polls=2,
            poll=0.001,
            timeout=10.0,
        )

    start = time.perf_counter()
    world.clock.advance(STEP)
    await quiet()
    for k, fault in enumerate(schedule(messages, seed)):
        for undo in later.pop(k, []):
            if undo == "network":
                world.ws_proxy.network_up()
                world.rest_proxy.network_up()
                client.network_changed(True)
            elif undo == "rest":
                rest_mode[0] = "ok"
            elif undo == "report":
                world.ws_proxy.reset(only_defunct=True)
        if fault in ("suspend", "suspend_silent"):
            world.ws_proxy.suspend()
            client.background()
            if fault == "suspend":
                world.ws_proxy.reset(only_defunct=True)
            else:
                later.setdefault(k + 3, []).append("report")
            await quiet()
            world.clock.advance(STEP)
            client.foreground()
        elif fault == "blackhole":
            world.ws_proxy.blackhole()
        elif fault == "reset":
            world.ws_proxy.reset()
        elif fault == "network" and client.network:
            world.ws_proxy.network_down()
            world.rest_proxy.network_down()
            client.network_changed(False)
            later.setdefault(k + 4, []).append("network")
        elif fault in ("rest_503", "rest_ambiguous"):
            rest_mode[0] = "fail" if fault == "rest_503" else "ambiguous"
            later.setdefault(k + 4, []).append("rest")
        elif fault == "kill":
            await client.close()  # what a killed process leaves behind
            client = await world.new_client(design, store=store, timings=TIMINGS)
            client.network_changed(world.ws_proxy.accepting == "up")
        if fault is not None:
            await quiet()
        if fault == "suspend_after_send":
            # The server applies the message; its done dies with the suspended socket.
            world.server.gates.hold_done = True
        await client.send(bodies[k])
        await quiet()
        if fault == "suspend_after_send":
            world.ws_proxy.suspend()
            client.background()
            world.ws_proxy.reset(only_defunct=True)
            await quiet()
            world.server.gates.hold_done = False
            world.clock.advance(STEP)
            client.foreground()
            await quiet()
        world.clock.advance(STEP)
    elapsed = time.perf_counter() - start

    # The faults stop; every dead socket is eventually reported; the client recovers.
    rest_mode[0] = "ok"
    if not client.network:
        world.ws_proxy.network_up()
        world.rest_proxy.network_up()
        client.network_changed(True)
    world.ws_proxy.reset(only_defunct=True)
    for _ in range(60):
        world.clock.advance(0.5)
        await quiet()

    applied = world.server.applied
    shown = {m.body: m.state for m in client.snapshot()}
    sent = sum(1 for b in bodies if b in shown)
    confirmed = sum(1 for b in bodies if shown.get(b) is MessageState.confirmed)
    failed = sum(1 for b in bodies if shown.get(b) is MessageState.failed)
    lost = sum(
        1 for b in bodies if applied.get(b, 0) == 0 and shown.get(b) is not MessageState.failed
    )
    duplicated = sum(1 for b in bodies if applied.get(b, 0) >= 2)
    return Row(design.name, sent, confirmed, failed, lost, duplicated, round(messages / elapsed, 1))


async def soak(designs: list[Design], messages: int, seed: int) -> list[Row]:
    return [await soak_design(d, messages, seed) for d in designs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--design", action="append", choices=sorted(DESIGNS))
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")
    designs = [get_design(n) for n in (args.design or list(DESIGNS))]
    began = time.perf_counter()
    rows = asyncio.run(asyncio.wait_for(soak(designs, args.messages, args.seed), 600))
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=2))
        return 0
    faults = schedule(args.messages, args.seed)
    counts = {f: faults.count(f) for f in FAULTS}
    print(
        f"{args.messages} messages per design, seed {args.seed}; faults: "
        + ", ".join(f"{f} {n}" for f, n in counts.items())
    )
    header = ("design", "sent", "confirmed", "failed", "lost", "duplicated", "msgs/s")
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    for r in rows:
        cells = (r.design, r.sent, r.confirmed, r.failed, r.lost, r.duplicated, r.msgs_per_s)
        print("| " + " | ".join(str(c) for c in cells) + " |")
    print(f"elapsed {time.perf_counter() - began:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
