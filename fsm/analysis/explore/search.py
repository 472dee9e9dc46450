"""The batched breadth-first search that builds an :class:`Exploration`.

The search expands states in id order, a batch of :data:`BATCH` at a time,
with numpy: each kind of step (a send with each outcome, each connection
stimulus, done and each REST outcome for each message) is applied to the whole
batch at once, and the new states are numbered exactly as a one-by-one
breadth-first search numbers them. What a kind of step does is learnt from
:class:`System` the first time it is needed and memoised on exactly what it
depends on (see :class:`_Search`; which memo a step may use is decided by what
its actions touch, :mod:`fsm.analysis.explore.touches`); most steps are then
table look-ups on arrays of codes, a sort of each row and a look-up of the
row's key. The encoding is :mod:`fsm.analysis.explore.codec`.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from fsm.analysis.explore import touches
from fsm.analysis.explore.codec import (
    AIMED,
    BATCH,
    CODES,
    CONNECTION_STIMULI,
    DONE_OWED,
    FIRST_AIMED_KIND,
    FIRST_CONNECTION_RANK,
    GLOBALS,
    HELD,
    HELD_SHIFT,
    MESSAGE_STRIDE,
    OUTCOMES,
    PART_SHIFT,
    PARTS,
    SEND,
    STATE_SHIFT,
    STIMULI,
    UNSENT,
    aimed_rank,
    global_code,
    label_ids,
    ranks,
)
from fsm.analysis.explore.graph import Exploration
from fsm.analysis.explore.learn import (
    DONE_DIES,
    EACH,
    HELD_VALUES,
    MEMO_LIMIT,
    NOT_LOCAL,
    OWES_DONE,
    SPREAD_BITS,
    SPREAD_MASK,
    TWIN,
    UNCHANGED,
    UNKNOWN,
    WHOLE,
    Learner,
)
from fsm.analysis.system import System, Transition, World
from fsm.model.errors import StateLimitExceeded, require_int

__all__ = ["PROGRESS_AFTER", "explore"]

#: Explorations that run longer than this print a progress line on a terminal.
PROGRESS_AFTER = 1.0
_clock: Callable[[], float] = time.monotonic


class _Progress:
    """A progress line on standard error, for long explorations on a terminal."""

    def __init__(self) -> None:
        self.started = _clock()
        self.shown = False
        self.next = self.started + PROGRESS_AFTER
        self.live = sys.stderr.isatty()

    def tick(self, states: int) -> None:
        now = _clock()
        if now >= self.next:
            self.show(states, now)
            self.next = now + 0.5

    def show(self, states: int, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        sys.stderr.write(
            f"\rexploring: {states:,} states, {states / elapsed:,.0f} states/s, "
            f"{elapsed:.1f} s\x1b[K"
        )
        sys.stderr.flush()
        self.shown = True

    def done(self, states: int) -> None:
        if self.shown:
            self.show(states, _clock())
            sys.stderr.write("\n")
            sys.stderr.flush()


def explore(
    system: System,
    max_states: int | None = None,
    *,
    symmetry: bool = True,
    start: World | None = None,
) -> Exploration:
    """Visit every reachable world of ``system``, breadth first.

    With ``symmetry`` (the default) worlds that differ only in which message is
    which are visited once. Without it every concrete world is visited; that is
    slower and exists to measure and cross-check the reduction. ``start``
    replaces the system's initial world. An exploration that takes more than
    :data:`PROGRESS_AFTER` seconds prints a progress line on standard error
    when that is a terminal; ``max_states`` stops it with
    :class:`~fsm.model.errors.StateLimitExceeded`.
    """
    if max_states is not None:
        require_int("max_states", max_states, minimum=1)
    was_enabled = gc.isenabled()
    gc.disable()  # millions of small objects, none of them in a cycle
    try:
        return _Search(system, symmetry).run(max_states, start)
    finally:
        if was_enabled:
            gc.enable()


class _Aimed(NamedTuple):
    """Steps aimed at one message each, out of a batch of states, as parallel arrays."""

    #: The source's position in the batch.
    at: NDArray[Any]
    #: The step's place among its source's steps (see :meth:`_Layer.edges`).
    rank: NDArray[Any]
    #: The message it is aimed at.
    i: NDArray[Any]
    #: A send outcome, or FIRST_AIMED_KIND + which aimed stimulus.
    kind: NDArray[Any]
    #: Its label id.
    lid: NDArray[Any]
    #: The global code after it.
    to: NDArray[Any]

    def take(self, which: NDArray[Any]) -> _Aimed:
        return _Aimed(*(column[which] for column in self))


class _Layer:
    """The steps out of one breadth-first layer, built one kind of step at a time."""

    def __init__(self) -> None:
        self.parts: list[tuple[NDArray[Any], ...]] = []

    def add(
        self,
        at: NDArray[Any],
        rank: NDArray[Any] | int,
        lid: NDArray[Any],
        mkey: NDArray[np.int64],
        pid: NDArray[Any],
        mask: NDArray[Any],
        g2: NDArray[Any],
    ) -> None:
        size = len(at)
        if size:
            self.parts.append(
                tuple(
                    np.broadcast_to(np.asarray(x), (size,))
                    for x in (at, rank, lid, mkey, pid, mask, g2)
                )
            )

    def edges(self, ranks: int) -> tuple[NDArray[Any], ...]:
        """The steps in breadth-first order: by source, then as System.successors lists them."""
        columns = [np.concatenate([p[k] for p in self.parts]) for k in range(7)]
        order = np.argsort(columns[0].astype(np.int64) * ranks + columns[1], kind="stable")
        return tuple(c[order] for c in columns)


def _grow(size: int, *columns: NDArray[Any]) -> None:
    """Make room for ``size`` entries in each column, growing it in place by a quarter."""
    for column in columns:
        if size > len(column):
            column.resize(max(size, len(column) * 5 // 4 + 1024), refcheck=False)


class _Search(Learner):
    """One breadth-first search, a layer at a time, over the memo tables of
    :class:`~fsm.analysis.explore.learn.Learner`."""

    # -- the search -------------------------------------------------------------------
    def run(self, max_states: int | None, start: World | None) -> Exploration:
        system, codec = self.system, self.codec
        first_world = system.initial() if start is None else start
        row = np.array([[codec.encode(m) for m in first_world.messages]], np.int16)
        mkey0, _pid = codec.arrange(row)
        mid0 = int(codec.intern(mkey0)[0])
        g0 = global_code(first_world)
        # The global codes a state can have, each given a slot: every multiset has
        # a row of slots in ``index`` holding the state id of (multiset, global).
        if self.loose or len(self.moving_kinds):
            reachable = list(range(GLOBALS))
        else:
            reachable = [g0]
            for g in reachable:
                self.learn_global(g)
                for g2 in [*self.send_to[g].tolist(), *self.step_to[g].tolist()]:
                    if g2 >= 0 and g2 not in reachable:
                        reachable.append(g2)
        slot_of = np.full(GLOBALS, -1, np.int64)
        slot_of[reachable] = np.arange(len(reachable))
        width = len(reachable)
        index = np.full(64 * width, -1, np.int32)
        index[mid0 * width + slot_of[g0]] = 0
        # Per state, grown in place: its key, its parent and the label of the step
        # into it; per step: its target, permutation, label and whether the user
        # takes it.
        label_type = np.int16 if self.labels < 1 << 15 else np.int32
        keys = np.array([mid0 * GLOBALS + g0], np.int64)
        parents = np.zeros(1, np.int32)
        labels = np.zeros(1, label_type)
        offsets = np.zeros(2, np.int64)
        targets = np.zeros(0, np.int32)
        perms = np.zeros(0, np.int16)
        edge_labels = np.zeros(0, label_type)
        user = np.zeros(0, np.bool_)
        total = 1
        steps = 0
        rule_hits: dict[str, tuple[int, Transition]] = {}
        hit_mask = 0
        progress = _Progress()
        done = 0
        while done < total:
            # States are expanded in id order, a batch at a time; a batch may span
            # two layers, and new states are numbered as a one-by-one search would.
            batch = keys[done : min(total, done + BATCH)].copy()  # keys may move when grown
            at, _rank, lid, mkey, pid, mask, g2 = self.layer(batch)
            mids = codec.intern(mkey).astype(np.int64)
            if len(index) < codec.multisets * width:
                old = len(index)
                index.resize(max(codec.multisets, 2 * old // width) * width, refcheck=False)
                index[old:] = -1
            cell = mids * width + slot_of[g2]
            fresh = np.flatnonzero(index[cell] < 0)
            if len(fresh):
                unique, first = np.unique(cell[fresh], return_index=True)
                count = len(unique)
                if max_states is not None and total + count > max_states:
                    progress.done(max_states)
                    raise StateLimitExceeded(max_states)
                born = fresh[np.sort(first)]
                size = total + count
                index[cell[born]] = np.arange(total, size, dtype=np.int32)
                _grow(size, keys, parents, labels)
                keys[total:size] = mids[born] * GLOBALS + g2[born]
                parents[total:size] = done + at[born]
                labels[total:size] = lid[born]
                total = size
            size = steps + len(at)
            _grow(size, targets, perms, edge_labels, user)
            targets[steps:size] = index[cell]
            perms[steps:size] = pid
            edge_labels[steps:size] = lid
            user[steps:size] = self.is_user[lid]
            _grow(done + len(batch) + 1, offsets)
            np.cumsum(
                np.bincount(at, minlength=len(batch)), out=offsets[done + 1 : done + len(batch) + 1]
            )
            offsets[done + 1 : done + len(batch) + 1] += steps
            steps = size
            unseen = mask & self.mask_type(self.all_rules & ~hit_mask)
            while unseen.any():
                e = int(np.flatnonzero(unseen)[0])
                t = self.step_of(int(batch[at[e]]), int(lid[e]))
                for f in t.fired:
                    for rule, bit in self.rules[id(f.row)]:
                        if rule.id not in rule_hits and rule.matches_step(f.row, f.connection):
                            rule_hits[rule.id] = (done + int(at[e]), t)
                            hit_mask |= bit
                unseen = mask & self.mask_type(self.all_rules & ~hit_mask)
            done += len(batch)
            if progress.live:
                progress.tick(total)
        progress.done(total)
        del index
        codec.trim()
        for column in (keys, parents, labels):
            column.resize(total, refcheck=False)
        for edge_column in (targets, perms, edge_labels, user):
            edge_column.resize(steps, refcheck=False)
        offsets.resize(total + 1, refcheck=False)
        return Exploration(
            system,
            codec,
            keys,
            parents,
            labels,
            offsets.astype(np.int32) if steps < 1 << 31 else offsets,
            targets,
            perms,
            user,
            rule_hits,
            edge_labels,
        )

    def layer(self, frontier: NDArray[np.int64]) -> tuple[NDArray[Any], ...]:
        """Every step out of the states with keys ``frontier``, in breadth-first order:
        (position in the layer, rank, label, multiset key, permutation, mask, global)."""
        codec, n = self.codec, self.n
        mids = frontier // GLOBALS
        g = (frontier % GLOBALS).astype(np.intp)
        for unknown in np.unique(g[~self.known[g]]).tolist():
            self.learn_global(unknown)
        rows = codec.rows[mids]
        layer = _Layer()

        # Steps aimed at one message: sends (at the first unsent message, one per
        # outcome), then done and the REST outcomes (per message, one per group of
        # twins with the symmetry reduction).
        parts: list[tuple[NDArray[Any], NDArray[Any], int, int]] = []  # (at, i, kind, rank)
        unsent = rows == UNSENT
        has_unsent: NDArray[np.bool_] = np.any(unsent, axis=1)
        first_unsent = unsent.argmax(1)
        for o in range(len(OUTCOMES)):
            ok = np.flatnonzero(has_unsent & (self.send_to[g, o] >= 0))
            parts.append((ok, first_unsent[ok], o, o))
        owes_done = (rows & DONE_OWED) != 0
        kinds = owes_done.astype(np.intp) * OWES_DONE | self.aim_of_state[rows >> STATE_SHIFT]
        if self.symmetry and n > 1:
            kinds[:, 1:][rows[:, 1:] == rows[:, :-1]] = TWIN
        new_kinds = ~self.aims_known[g[:, None], kinds]
        if new_kinds.any():
            for s, i in np.argwhere(new_kinds).tolist():
                if not self.aims_known[g[s], kinds[s, i]]:
                    self.learn_aims(int(frontier[s]), i, int(kinds[s, i]))
        for i in range(n):
            for b in range(len(AIMED)):
                ok = np.flatnonzero(self.aims[g, kinds[:, i], b])
                parts.append((ok, np.full(len(ok), i), FIRST_AIMED_KIND + b, aimed_rank(i, b)))
        at = np.concatenate([p[0] for p in parts])
        i_ = np.concatenate([p[1] for p in parts])
        kind = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
        rank = np.concatenate([np.full(len(p[0]), p[3]) for p in parts])
        sends = kind < FIRST_AIMED_KIND
        aimed = np.maximum(kind - FIRST_AIMED_KIND, 0)
        stimulus = np.where(sends, SEND, self.aimed_stimulus[aimed])
        outcome = np.where(sends, kind + 1, 0)
        lid = label_ids(stimulus, i_ + 1, outcome, n)
        to = np.where(sends, self.send_to[g[at], np.minimum(kind, len(OUTCOMES) - 1)], g[at])
        self.aimed(layer, frontier, rows, _Aimed(at, rank, i_, kind, lid, to), g)

        # Connection steps, in stimulus order.
        has_done: NDArray[np.bool_] = np.any(owes_done, axis=1)
        for k in CONNECTION_STIMULI:
            to = self.step_to[g, k]
            ok = np.flatnonzero(to >= 0)
            if not len(ok):
                continue
            how = self.step_how[g[ok], k]
            lid_k = label_ids(k, 0, 0, n)
            rank_k = FIRST_CONNECTION_RANK + k
            quiet = ok[(how == UNCHANGED) | ((how == DONE_DIES) & ~has_done[ok])]
            layer.add(
                quiet,
                rank_k,
                np.full(len(quiet), lid_k),
                codec.mkeys[mids[quiet]],
                np.zeros(len(quiet), np.int32),
                self.step_mask[g[quiet], k],
                to[quiet],
            )
            clear = ok[(how == DONE_DIES) & has_done[ok]]
            if len(clear):
                mkeys, pids = codec.arrange(rows[clear] & ~DONE_OWED)
                layer.add(
                    clear,
                    rank_k,
                    np.full(len(clear), lid_k),
                    mkeys,
                    pids,
                    self.step_mask[g[clear], k],
                    to[clear],
                )
            each = ok[how == EACH]
            if len(each):
                self.each_message(layer, rows, each, k, lid_k, g, to[each])
            whole = ok[how == WHOLE]
            if self.spread and len(whole):
                whole = self.each_message(layer, rows, whole, k, lid_k, g, to[whole])
            if len(whole):
                self.whole_step(
                    layer, frontier, whole, rank_k, np.full(len(whole), lid_k), g, to[whole]
                )
        return layer.edges(ranks(n))

    def aimed(
        self,
        layer: _Layer,
        frontier: NDArray[np.int64],
        rows: NDArray[np.int16],
        steps: _Aimed,
        g: NDArray[np.intp],
    ) -> None:
        """Steps aimed at one message each."""
        if self.loose:
            self.whole_step(layer, frontier, steps.at, steps.rank, steps.lid, g, steps.to)
            return
        at, rank, i, kind, lid, to = steps
        part = g[at] >> PART_SHIFT
        number = self.codec.number[rows[at, i]]  # every code in a stored row has one
        # One flat index into both local tables.
        cell = (kind * PARTS + part) * self.local.shape[2] + number
        table, masks = self.local.reshape(-1), self.local_mask.reshape(-1)
        entry = table[cell]
        unknown = np.flatnonzero(entry == UNKNOWN)
        if len(unknown):
            _u, first = np.unique(cell[unknown], return_index=True)
            for e in unknown[first].tolist():
                table[cell[e]], masks[cell[e]] = self.learn_local(int(frontier[at[e]]), int(lid[e]))
            entry = table[cell]
        local = np.flatnonzero(entry >= 0)
        if len(local):
            x = entry[local]
            held = x % HELD_VALUES - 1
            new = rows[at[local]].copy()
            hold = held >= 0
            new[hold] = new[hold] & ~HELD | (held[hold, None] << HELD_SHIFT).astype(np.int16)
            new[np.arange(len(local)), i[local]] = x // HELD_VALUES
            mkeys, pids = self.codec.arrange(new)
            mask = masks[cell[local]]
            layer.add(at[local], rank[local], lid[local], mkeys, pids, mask, to[local])
        other = np.flatnonzero(entry == NOT_LOCAL)
        if not len(other):
            return
        left = steps.take(other)
        if len(self.moving_kinds):
            # A step of a moving stimulus that is not local may move the global part.
            moving = np.isin(left.kind, self.moving_kinds)
            if moving.any():
                m = left.take(np.flatnonzero(moving))
                self.whole_step(layer, frontier, m.at, m.rank, m.lid, g, m.to, whole_global=True)
                left = left.take(np.flatnonzero(~moving))
        if self.separable or self.spread:
            left = self.pairwise(layer, rows, left, g)
        if len(left.at):
            self.whole_step(layer, frontier, left.at, left.rank, left.lid, g, left.to)

    def pairwise(
        self, layer: _Layer, rows: NDArray[np.int16], steps: _Aimed, g: NDArray[np.intp]
    ) -> _Aimed:
        """Aimed steps one pair of messages at a time, in a separable design or
        where the step spreads; gives back the steps that do not spread, to
        learn on the whole multiset."""
        at, rank, i, _kind, lid, to = steps
        n = self.n
        count = len(at)
        source = rows[at]
        ci = source[np.arange(count), i].astype(np.int64)
        others = source.astype(np.int64)
        if n == 1:
            others[:, 0] = UNSENT
        label = lid - (i + 1) * MESSAGE_STRIDE  # the label without the message
        part = (g[at] >> PART_SHIFT).astype(np.int64)
        keys = (((label * PARTS + part) * CODES + ci) * CODES)[:, None] + others
        flat = keys.reshape(-1)
        found, where = self.pairs.find(flat)
        if not found.all():
            missing = np.flatnonzero(~found)
            unique, first = np.unique(flat[missing], return_index=True)
            learnt = [
                self.learn_pair(
                    int(label[e // n]), int(ci[e // n]), int(others.flat[e]), int(g[at[e // n]])
                )
                for e in missing[first].tolist()
            ]
            columns = list(zip(*learnt, strict=True))
            dtypes: list[Any] = [np.int16, np.int16, self.mask_type, np.int8]
            self.pairs.add(unique, *(np.array(c, d) for c, d in zip(columns, dtypes, strict=True)))
            found, where = self.pairs.find(flat)
        after_i = self.pairs.columns[0][where].reshape(count, n)
        after = self.pairs.columns[1][where].reshape(count, n)
        masks = self.pairs.columns[2][where].reshape(count, n)
        mine = np.arange(n)[None, :] == i[:, None]
        spreads = self.pairs.columns[3][where].reshape(count, n)
        if n > 1:
            masks = np.where(mine, 0, masks)
            spreads = np.where(mine, touches.SPREADS, spreads)
            last = np.where(i == n - 1, n - 2, n - 1)
            new_i = after_i[np.arange(count), last]
        else:
            new_i = after_i[:, 0]
        new = np.where(mine, new_i[:, None], after).astype(np.int16)
        mask = np.bitwise_or.reduce(masks, axis=1)
        if self.separable:
            mkeys, pids = self.codec.arrange(new)
            layer.add(at, rank, lid, mkeys, pids, mask, to)
            return steps.take(np.zeros(0, np.intp))
        ok = np.bitwise_and.reduce(spreads, axis=1) & touches.SPREADS != 0
        self.spread_add(
            layer, new, np.bitwise_or.reduce(spreads, axis=1), ok, at, rank, lid, mask, to
        )
        return steps.take(np.flatnonzero(~ok))

    def spread_add(
        self,
        layer: _Layer,
        new: NDArray[np.int16],
        spreads: NDArray[Any],
        ok: NDArray[np.bool_],
        at: NDArray[Any],
        rank: NDArray[Any] | int,
        lid: NDArray[Any],
        mask: NDArray[Any],
        to: NDArray[Any],
    ) -> None:
        """Add the steps that spread (``ok``), with every held flag set where one
        of the rows they fired set it."""
        if not ok.any():
            return
        new = new[ok]
        held = (spreads[ok] & touches.SETS_EVERY_HELD) != 0
        bit = np.int16(int(self.held_value) << HELD_SHIFT)
        new[held] = new[held] & np.int16(~HELD) | bit
        mkeys, pids = self.codec.arrange(new)
        rank = rank if isinstance(rank, int) else rank[ok]
        layer.add(at[ok], rank, lid[ok], mkeys, pids, mask[ok], to[ok])

    def each_message(
        self,
        layer: _Layer,
        rows: NDArray[np.int16],
        at: NDArray[Any],
        k: int,
        lid: int,
        g: NDArray[np.intp],
        to: NDArray[Any],
    ) -> NDArray[Any]:
        """A connection step one message at a time, in a separable design or where
        it spreads; gives back the sources of the steps that do not spread."""
        part = (g[at] >> PART_SHIFT)[:, None]
        source = rows[at]
        number = self.codec.number[source]
        if self.each is None:
            shape = (len(STIMULI), PARTS, 1 << self.codec.bits)
            self.each = np.full(shape, UNKNOWN, np.int32)
            self.each_mask = np.zeros(shape, self.mask_type)
        entry = self.each[k, part, number]
        if (entry == UNKNOWN).any():
            unknown = np.argwhere(entry == UNKNOWN)
            for s, m in unknown.tolist():
                where = k, part[s, 0], number[s, m]
                if self.each[where] == UNKNOWN:
                    self.each[where], self.each_mask[where] = self.learn_each(
                        k, int(g[at[s]]), int(source[s, m])
                    )
            entry = self.each[k, part, number]
        new = (entry >> SPREAD_BITS).astype(np.int16)
        masks = np.bitwise_or.reduce(self.each_mask[k, part, number], axis=1)
        labels = np.full(len(at), lid)
        rank = FIRST_CONNECTION_RANK + k
        if self.separable:
            mkeys, pids = self.codec.arrange(new)
            layer.add(at, rank, labels, mkeys, pids, masks, to)
            return at[:0]
        spreads = entry & SPREAD_MASK
        ok = np.bitwise_and.reduce(spreads, axis=1) & touches.SPREADS != 0
        self.spread_add(
            layer, new, np.bitwise_or.reduce(spreads, axis=1), ok, at, rank, labels, masks, to
        )
        rest: NDArray[Any] = at[~ok]
        return rest

    def whole_step(
        self,
        layer: _Layer,
        frontier: NDArray[np.int64],
        at: NDArray[Any],
        rank: NDArray[Any] | int,
        lid: NDArray[Any],
        g: NDArray[np.intp],
        to: NDArray[Any],
        *,
        whole_global: bool = False,
    ) -> None:
        """Steps learnt on the whole multiset (and, in loose designs or with
        ``whole_global``, the whole global part, which the steps may change)."""
        if not len(at):
            return
        full = self.loose or whole_global
        memo = self.whole_global if whole_global and not self.loose else self.whole
        mids = (frontier[at] // GLOBALS).astype(np.int64)
        part = g[at] if full else g[at] >> PART_SHIFT
        keys = (mids * self.labels + lid) * GLOBALS + part
        unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        found, where = memo.find(unique)
        if not found.all():
            if len(memo) + int((~found).sum()) > MEMO_LIMIT:
                memo.clear()
                found[:] = False
            missing = np.flatnonzero(~found)
            learnt = self.learn_whole(
                [(int(frontier[at[first[u]]]), int(lid[first[u]])) for u in missing.tolist()]
            )
            memo.add(unique[missing], *learnt)
            found, where = memo.find(unique)
        where = where[inverse.reshape(-1)]
        mkey, pid, mask, g2 = (c[where] for c in memo.columns)
        layer.add(at, rank, lid, mkey, pid, mask, g2 if full else to)
