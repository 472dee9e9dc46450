"""Run one reference client as its own process (the kill-and-restart test uses it).

    python -m fsm.reference --design NAME --ws URL --rest URL --store PATH TEXT...

It starts the client on a real clock, sends each TEXT, prints ``accepted KEY``
for each once the client has accepted it, then keeps running until killed (at
most ``--linger`` seconds).
"""

from __future__ import annotations

import argparse
import asyncio

from fsm.model.design import DESIGNS, get_design
from fsm.reference.client import ReferenceClient
from fsm.reference.clock import RealClock


async def _main(args: argparse.Namespace) -> None:
    client = ReferenceClient(
        get_design(args.design),
        ws_url=args.ws,
        rest_url=args.rest_url,
        store=args.store,
        clock=RealClock(),
    )
    await client.start()
    for text in args.texts:
        key = await client.send(text)
        print(f"accepted {key}", flush=True)
    await asyncio.sleep(args.linger)
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fsm.reference")
    parser.add_argument("--design", required=True, choices=sorted(DESIGNS))
    parser.add_argument("--ws", required=True)
    parser.add_argument("--rest", required=True, dest="rest_url")
    parser.add_argument("--store", required=True)
    parser.add_argument("--linger", type=float, default=30.0)
    parser.add_argument("texts", nargs="+")
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
