"""A real implementation of each design, a real server and a fault injector.

Needs the ``reference`` extra (aiohttp). Nothing else in :mod:`fsm` imports this
package; the command line finds its replay adapter by name.

* :mod:`~fsm.reference.client`: the asyncio chat client, table-driven from a
  design's behaviour, with a SQLite outbox;
* :mod:`~fsm.reference.server`: the aiohttp server (WebSocket + REST) whose store
  is the ground truth;
* :mod:`~fsm.reference.proxy`: the TCP fault proxy (suspend, black-hole, reset,
  network loss);
* :mod:`~fsm.reference.clock`: the manual clock the drivers advance;
* :mod:`~fsm.reference.world`: all of it wired together on loopback.
"""
