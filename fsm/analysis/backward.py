"""Backward analyses of the reachable graph, on numpy arrays.

The checker asks two questions that are answered backwards from the states
or messages that are already fine: from which states a settled state is
reachable (``recovers`` and ``recovers-unaided``), and which messages no path
delivers (``no-silent-loss``). Both are searches over the graph reversed:
what is found fine waits in a flag (or mask of messages) per state until it
is taken back along the steps into that state, a batch of steps per handful
of numpy calls. Every state is taken back once (for the second question once
per message at most), so the work is linear in the number of edges (times
the number of messages).

The graph is given as flat arrays, the way the explorer stores it: the steps
out of state ``s`` are the edges ``offsets[s]`` up to ``offsets[s + 1]``, each
with its ``targets`` state, its ``pids`` permutation id (``perms[pid][i]`` is
where message ``i`` of the source went in the target, since the explorer sorts
messages) and a ``user`` flag for steps only the user takes. State ``s`` holds
the messages ``codes[mids[s]]``.

Memory: the reversed graph is one int32 source per edge, and for the message
analysis the edge's permutation id in one byte (two above 256 permutations);
it is built, and followed back, a batch of edges at a time, so the
temporaries stay a few megabytes however large the graph. Per state there are
an int32 index into it and a byte or two of flags.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["doomed_pairs", "settle_reachable"]

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.integer[Any]]
_Index = npt.NDArray[np.intp]


#: Edges handled by one batch of numpy calls: the graph is reversed, and
#: followed back, this many edges at a time (and states looked over for work
#: this many at a time).
BATCH = 1 << 16

#: The most entries of the table that takes a set of messages back through
#: every permutation at once; above it the messages are taken one at a time.
TABLE_LIMIT = 1 << 22


def settle_reachable(
    settled_state: Bools,
    offsets: Ints,
    targets: Ints,
    user: Bools,
    *,
    unaided: bool,
) -> Bools:
    """For every state, whether a state where ``settled_state`` holds is reachable.

    A state reaches itself. With ``unaided`` the steps the user takes
    (``user`` true) do not count. The same answer as
    :meth:`~fsm.analysis.explore.Exploration.can_settle`.

    >>> settle_reachable(
    ...     np.array([False, False, True]),  # states 0 -> 1 -> 2, 2 settled
    ...     offsets=np.array([0, 1, 2, 2]),
    ...     targets=np.array([1, 2]),
    ...     user=np.array([True, False]),  # the user takes 0 -> 1
    ...     unaided=True,
    ... ).tolist()
    [False, True, True]
    """
    skip = np.asarray(user, dtype=np.bool_) if unaided else None
    start, source, _ = _reverse(offsets, targets, skip=skip)
    del skip
    reach = np.array(settled_state, dtype=np.bool_, copy=True)
    pending = _Pending(reach.copy())
    for state, _news in pending:
        for _batch, edges, _counts in _batches(start, state):
            found = source[edges]
            del edges
            found = found[~reach[found]]
            reach[found] = True
            pending.add(found)
    return reach


def doomed_pairs(
    n: int,
    mids: Ints,
    codes: Ints,
    good_code: Bools,
    unsent_code: int,
    offsets: Ints,
    targets: Ints,
    pids: Ints,
    perms: Ints,
) -> Bools:
    """For every state and message, whether the message is fine: ``ok[s, p]``.

    Message ``p`` of state ``s`` is fine when it is not sent yet, when its code
    is good, or when some path from ``s`` takes it (followed through the
    explorer's sorting) to a state where it is good. The messages with ``ok``
    false are the ones :meth:`~fsm.analysis.explore.Exploration.doomed` lists,
    and this gives the same answer in every detail:

    * identical messages in one state (*twins*) share their fate, since the
      explorer steps only one of them: when one becomes fine, all do;
    * a message not sent yet is fine but spreads nothing backwards (it was not
      sent in any predecessor either).

    The search is over states, each with its messages as the bits of a mask.
    The messages found fine but not yet taken back wait in ``pending``; taking
    them back along every step into their state, through the step's
    permutation, gives the messages of the predecessor they were, and those
    not fine there yet become fine, with their twins, and wait in turn.
    Twins are never told apart: they start alike (fine or not by their code)
    and are always marked as a whole group, so a group is all fine or all not,
    as it is in :meth:`~fsm.analysis.explore.Exploration.doomed`. In which
    order messages are taken back does not change which ones end up fine.
    """
    mask_type = _mask_type(n)
    codes = np.asarray(codes)
    mids = np.asarray(mids)
    bit = np.left_shift(mask_type(1), np.arange(n, dtype=mask_type))
    # Per multiset: which messages start fine, which spread, and each one's twins.
    good = np.asarray(good_code, dtype=np.bool_)[codes]
    unsent = codes == unsent_code
    ok = _pack(good | unsent, bit)[mids]
    pending = _Pending(_pack(good & ~unsent, bit)[mids])
    del good, unsent
    twins = np.zeros(codes.shape, dtype=mask_type)
    for p in range(n):
        twins[:, p] = _pack(codes == codes[:, p : p + 1], bit)
    back = _Back(np.asarray(perms), bit)
    start, source, pid = _reverse(offsets, targets, carry=pids, kinds=len(back.perms))
    assert pid is not None
    for state, news in pending:
        for batch, edges, counts in _batches(start, state):
            src = source[edges]
            carried = back(pid[edges], np.repeat(news[batch], counts))
            del edges, counts
            carried &= ~ok[src]
            some = np.flatnonzero(carried)
            src, carried = src[some], carried[some]
            del some
            # Every twin of a message found fine is fine too, and none of them was.
            kin = twins[mids[src]]
            found = carried.copy()
            for p in range(n):
                found |= kin[:, p] * ((carried >> p) & 1)
            del carried, kin
            np.bitwise_or.at(ok, src, found)
            pending.add(src, found)
    del start, source, pid, pending
    result = np.empty((len(mids), n), dtype=np.bool_)
    for p in range(n):
        np.not_equal(ok & bit[p], 0, out=result[:, p])
    return result


class _Pending:
    """What waits to be taken back, per state (a flag, or a mask of messages),
    with a flag per run of :data:`BATCH` states that may have any.

    Iterating hands out the states with something waiting, a run at a time,
    with what waits in each, and clears it; :meth:`add` may add more meanwhile,
    and the iteration ends when nothing waits anywhere.
    """

    def __init__(self, waiting: npt.NDArray[Any]) -> None:
        self.waiting = waiting
        self.runs = np.ones(-(-len(waiting) // BATCH), dtype=np.bool_)

    def add(self, states: Ints, masks: Ints | None = None) -> None:
        """Flag ``states``, or add ``masks`` to what waits in them."""
        if masks is None:
            self.waiting[states] = True
        else:
            np.bitwise_or.at(self.waiting, states, masks)
        self.runs[states // BATCH] = True

    def __iter__(self) -> Iterator[tuple[npt.NDArray[np.int32], npt.NDArray[Any]]]:
        while True:
            dirty = np.flatnonzero(self.runs)
            if not dirty.size:
                return
            for run in dirty.tolist():
                self.runs[run] = False
                first = run * BATCH
                state = np.flatnonzero(self.waiting[first : first + BATCH]).astype(np.int32)
                if state.size:
                    state += first
                    what = self.waiting[state]
                    self.waiting[state] = 0
                    yield state, what


class _Back:
    """Takes a set of messages of a step's target back to the messages of its
    source they were, through the step's permutation (``perms[pid][i]`` is
    where message ``i`` of the source went)."""

    def __init__(self, perms: Ints, bit: Ints) -> None:
        n = len(bit)
        self.perms = perms.astype(bit.dtype)
        self.bit = bit
        self.table: Ints | None = None
        if len(perms) << n <= TABLE_LIMIT:
            every = np.arange(1 << n, dtype=bit.dtype)
            table = np.zeros((len(perms), 1 << n), dtype=bit.dtype)
            for p in range(n):
                table |= ((every[None, :] >> self.perms[:, p : p + 1]) & 1) * bit[p]
            self.table = table

    def __call__(self, pid: Ints, masks: Ints) -> Ints:
        if self.table is not None:
            return self.table[pid, masks]
        out = np.zeros_like(masks)
        for p in range(len(self.bit)):
            out |= ((masks >> self.perms[pid, p]) & 1) * self.bit[p]
        return out


def _mask_type(n: int) -> type[np.unsignedinteger[Any]]:
    """The smallest unsigned type with a bit for each of ``n`` messages."""
    for mask_type in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n <= np.iinfo(mask_type).bits:
            return mask_type
    raise ValueError(f"at most 64 messages per state, not {n}")


def _pack(flags: Bools, bit: Ints) -> Ints:
    """Rows of ``n`` flags as bit masks (bit ``p`` for column ``p``)."""
    masks: Ints = np.bitwise_or.reduce(flags * bit, axis=1)
    return masks


def _batches(start: Ints, states: Ints) -> Iterator[tuple[slice, _Index, Ints]]:
    """The steps into ``states`` in the reversed graph, about :data:`BATCH` at a
    time: each batch as the slice of ``states`` it covers, the positions of
    their steps (state after state) and how many go into each state."""
    for a in range(0, len(states), BATCH):
        part = states[a : a + BATCH]
        lo = start[part]
        counts = start[part + 1] - lo
        ends = np.cumsum(counts, dtype=np.intp)
        i = 0
        while i < len(part):
            done = int(ends[i - 1]) if i else 0
            j = max(int(np.searchsorted(ends, done + BATCH, side="right")), i + 1)
            c = counts[i:j]
            edges = np.repeat(lo[i:j] - (ends[i:j] - c - done), c)
            edges += np.arange(len(edges), dtype=np.intp)
            yield slice(a + i, a + j), edges, c
            i = j


def _reverse(
    offsets: Ints,
    targets: Ints,
    *,
    skip: Bools | None = None,
    carry: Ints | None = None,
    kinds: int = 0,
) -> tuple[Ints, npt.NDArray[np.int32], Ints | None]:
    """The graph backwards: the steps into state ``t`` are ``start[t]`` up to
    ``start[t + 1]`` in ``source`` (the state each leaves), in the order of the
    edges, leaving out the edges where ``skip`` holds; with ``carry`` (one
    value below ``kinds`` per edge) also its value for each, in the smallest
    unsigned type that holds them.

    A counting sort, a batch of edges at a time: each batch is sorted by
    target on its own and its steps placed after those of earlier batches, so
    no array as long as the graph is made but the ones returned.
    """
    offsets = np.asarray(offsets)
    targets = np.asarray(targets)
    states = len(offsets) - 1
    index_type = np.int32 if len(targets) < 1 << 31 else np.int64
    cuts = _cuts(offsets)
    # How many steps go into each state (counted one slot up: np.bincount would
    # copy the targets to intp); their running total is where each state's
    # steps start. ``fill`` moves it on as steps are placed, so at the end each
    # slot holds where its state's steps end, and is moved back up a slot.
    start = np.zeros(states + 1, dtype=index_type)
    for e0, e1 in cuts:
        into = targets[e0:e1] if skip is None else targets[e0:e1][~skip[e0:e1]]
        np.add.at(start[1:], into, index_type(1))
    np.cumsum(start, out=start)
    fill = start[:-1]
    source = np.empty(int(start[-1]), dtype=np.int32)
    carried = None
    if carry is not None:
        carry_type = np.uint8 if kinds <= 1 << 8 else np.uint16 if kinds <= 1 << 16 else np.uint32
        carried = np.empty(len(source), dtype=carry_type)
    for e0, e1 in cuts:
        s0 = int(np.searchsorted(offsets, e0, side="right")) - 1
        s1 = int(np.searchsorted(offsets, e1, side="left"))
        tgt = targets[e0:e1]
        bounds: Ints = np.clip(offsets[s0 : s1 + 1], e0, e1)
        src = np.repeat(np.arange(s0, s1, dtype=np.int32), np.diff(bounds).astype(np.intp))
        kept = None if skip is None else ~skip[e0:e1]
        if kept is not None:
            tgt, src = tgt[kept], src[kept]
        order = _stable_order(tgt)
        tgt = tgt[order]
        # Runs of steps into one state: the run's place, then one after another.
        first = np.ones(len(tgt), dtype=np.bool_)
        np.not_equal(tgt[1:], tgt[:-1], out=first[1:])
        heads = np.flatnonzero(first)
        del first
        runs = np.diff(heads, append=len(tgt))
        into = tgt[heads]
        del tgt
        place = np.repeat(fill[into] - heads, runs)
        place += np.arange(len(place), dtype=np.intp)
        fill[into] += runs.astype(index_type)
        del heads, runs, into
        source[place] = src[order]
        if carry is not None and carried is not None:
            values = carry[e0:e1] if kept is None else carry[e0:e1][kept]
            carried[place] = values[order]
        del src, kept, order, place
    start[1:] = start[:-1].copy()
    start[0] = 0
    return start, source, carried


def _stable_order(keys: Ints) -> _Index:
    """The order that sorts ``keys`` (state ids), equal keys in their order.

    Two passes of numpy's radix sort on 16 bits each, low bits first; a stable
    sort of 32-bit integers is a merge sort, slower by half.
    """
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    if len(keys) and int(keys.max()) >> 16:
        high = (keys >> 16).astype(np.uint16)[order]
        order = order[np.argsort(high, kind="stable")]
    return order


def _cuts(offsets: Ints) -> list[tuple[int, int]]:
    """The edges in runs of :data:`BATCH` (the last one shorter)."""
    edges = int(offsets[-1])
    return [(e0, min(e0 + BATCH, edges)) for e0 in range(0, edges, BATCH)]
