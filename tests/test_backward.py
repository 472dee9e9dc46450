"""The numpy backward analyses against a plain Python oracle.

:func:`~fsm.analysis.backward.settle_reachable` and
:func:`~fsm.analysis.backward.doomed_pairs` must answer exactly as
:meth:`Exploration.can_settle` and :meth:`Exploration.doomed` do: on the real
explorations of every design and environment, on small graphs written out by
hand (with the answers written out too), and on random graphs with many
permutations and twins, which the real explorations have few of. The random
ones also run in batches of a few edges and without the permutation table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

from fsm import DESIGNS, ENVIRONMENTS, MessageState, System
from fsm.analysis import backward
from fsm.analysis.backward import doomed_pairs, settle_reachable
from fsm.analysis.explore import Exploration, explore
from fsm.analysis.explore import codec as codec_module
from fsm.analysis.explore import graph as graph_module
from fsm.analysis.explore.codec import Codec
from fsm.analysis.system import Message

Bools = npt.NDArray[np.bool_]


class Graph(NamedTuple):
    """An exploration's graph as the numpy arrays the analyses take."""

    n: int
    mids: npt.NDArray[np.int32]
    codes: npt.NDArray[np.int16]
    offsets: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int32]
    pids: npt.NDArray[Any]
    perms: npt.NDArray[np.int8]
    user: Bools
    settled: Bools
    good: Bools

    def settle(self, *, unaided: bool) -> Bools:
        return settle_reachable(
            self.settled[self.mids], self.offsets, self.targets, self.user, unaided=unaided
        )

    def ok(self, good: Bools | None = None) -> Bools:
        return doomed_pairs(
            self.n,
            self.mids,
            self.codes,
            self.good if good is None else good,
            codec_module.UNSENT,
            self.offsets,
            self.targets,
            self.pids,
            self.perms,
        )


def _graph(ex: Exploration) -> Graph:
    codec = ex._codec
    n = ex.system.n
    return Graph(
        n=n,
        mids=(ex._keys // codec_module.GLOBALS).astype(np.int32),
        codes=codec.rows,
        offsets=ex._offsets.astype(np.int64),
        targets=ex._targets,
        pids=ex._perms,
        perms=np.array(codec.perms, dtype=np.int8).reshape(-1, n),
        user=ex._user,
        settled=np.array(
            [
                all(graph_module.settled(m) for m in codec.messages(mid))
                for mid in range(codec.multisets)
            ],
            dtype=np.bool_,
        ),
        good=_good_codes(codec, graph_module.delivered_or_failed),
    )


def _good_codes(codec: Codec, good: Callable[[Message], bool]) -> Bools:
    codes = set(codec.rows.reshape(-1).tolist())
    return np.array([c in codes and good(codec.decode(c)) for c in range(codec_module.CODES)])


def _lost(ok: Bools) -> list[list[int]]:
    return [np.flatnonzero(~row).tolist() for row in ok]


# -- the oracle: the same questions answered one pair at a time in plain Python ------------
def _reference_reverse(graph: Graph) -> list[list[tuple[int, int, bool]]]:
    """For every state, the steps into it as (source, permutation id, by the user),
    in the order of the edges."""
    into: list[list[tuple[int, int, bool]]] = [[] for _ in range(len(graph.mids))]
    offsets = graph.offsets.tolist()
    targets, pids, user = graph.targets.tolist(), graph.pids.tolist(), graph.user.tolist()
    for s in range(len(graph.mids)):
        for e in range(offsets[s], offsets[s + 1]):
            into[targets[e]].append((s, pids[e], user[e]))
    return into


def _reference_settle(graph: Graph, *, unaided: bool) -> list[bool]:
    into = _reference_reverse(graph)
    good: list[bool] = graph.settled[graph.mids].tolist()
    stack = [s for s, ok in enumerate(good) if ok]
    while stack:
        t = stack.pop()
        for s, _pid, by_user in into[t]:
            if not (unaided and by_user) and not good[s]:
                good[s] = True
                stack.append(s)
    return good


def _reference_lost(graph: Graph, good_code: Bools) -> list[list[int]]:
    """Messages no path takes to a good state: backwards over (state, message)
    pairs, a message found fine making its twins (equal codes) fine; a message
    not sent yet is fine but spreads nothing."""
    n, into = graph.n, _reference_reverse(graph)
    rows = [tuple(graph.codes[m].tolist()) for m in graph.mids.tolist()]
    good = good_code.tolist()
    unsent = codec_module.UNSENT
    inverse = []
    for moved in graph.perms.tolist():
        flipped = [0] * n
        for old, new in enumerate(moved):
            flipped[new] = old
        inverse.append(flipped)
    ok = [[c == unsent or good[c] for c in row] for row in rows]
    stack = [
        (s, p) for s, row in enumerate(rows) for p, c in enumerate(row) if c != unsent and good[c]
    ]
    while stack:
        t, q = stack.pop()
        for s, pid, _by_user in into[t]:
            p = inverse[pid][q]
            if not ok[s][p]:
                for twin in range(n):
                    if rows[s][twin] == rows[s][p] and not ok[s][twin]:
                        ok[s][twin] = True
                        stack.append((s, twin))
    return [[p for p in range(n) if not row[p]] for row in ok]


def _assert_same(ex: Exploration, graph: Graph) -> None:
    lost = _reference_lost(graph, graph.good)
    assert _lost(graph.ok()) == lost
    assert list(ex.lost_by_state) == lost
    for unaided in (False, True):
        settle = _reference_settle(graph, unaided=unaided)
        assert graph.settle(unaided=unaided).tolist() == settle
        assert list(ex.can_settle(unaided=unaided)) == settle


# -- the real explorations ----------------------------------------------------------------
@pytest.mark.parametrize("design", list(DESIGNS))
@pytest.mark.parametrize("environment", list(ENVIRONMENTS))
@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("symmetry", [True, False])
def test_the_same_answers_as_the_explorer(
    design: str, environment: str, n: int, symmetry: bool
) -> None:
    ex = explore(System(DESIGNS[design], ENVIRONMENTS[environment], n), symmetry=symmetry)
    _assert_same(ex, _graph(ex))


@pytest.mark.parametrize("design", ["pre-fix", "fixed"])
@pytest.mark.parametrize("symmetry", [True, False])
def test_batches_and_the_slow_permutations_change_nothing(
    design: str, symmetry: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = explore(System(DESIGNS[design], ENVIRONMENTS["half-open"], 3), symmetry=symmetry)
    graph = _graph(ex)
    monkeypatch.setattr(backward, "BATCH", 50)
    monkeypatch.setattr(backward, "TABLE_LIMIT", 0)
    _assert_same(ex, graph)


def test_any_integer_types_will_do() -> None:
    """The explorer's own arrays as they are (unsigned, 64-bit keys, Python ints)."""
    ex = explore(System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], 3))
    graph = _graph(ex)
    n, codec = graph.n, ex._codec
    offsets, targets = ex._offsets, ex._targets
    ok = doomed_pairs(
        n,
        ex._keys // codec_module.GLOBALS,
        codec.rows.astype(np.int64),
        graph.good,
        codec_module.UNSENT,
        offsets.astype(np.uint64),
        targets,
        np.asarray(ex._perms),
        np.array(codec.perms),
    )
    assert _lost(ok) == _reference_lost(graph, graph.good)
    reach = settle_reachable(graph.settled[graph.mids], offsets, targets, graph.user, unaided=True)
    assert reach.tolist() == _reference_settle(graph, unaided=True)


def test_the_reversed_graph_keeps_the_order_of_the_edges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ex = explore(System(DESIGNS["hardened"], ENVIRONMENTS["half-open"], 3))
    graph = _graph(ex)
    into = _reference_reverse(graph)
    monkeypatch.setattr(backward, "BATCH", 1000)
    start, source, perm = backward._reverse(
        graph.offsets, graph.targets, carry=graph.pids, kinds=len(graph.perms)
    )
    assert perm is not None
    assert np.diff(start).tolist() == [len(steps) for steps in into]
    assert source.tolist() == [s for steps in into for s, _p, _u in steps]
    assert perm.tolist() == [p for steps in into for _s, p, _u in steps]
    start, source, _ = backward._reverse(graph.offsets, graph.targets, skip=graph.user)
    assert np.diff(start).tolist() == [sum(not u for _s, _p, u in steps) for steps in into]
    assert source.tolist() == [s for steps in into for s, _p, u in steps if not u]


def test_the_order_of_the_steps_into_a_state_is_kept_past_16_bits() -> None:
    keys = np.random.default_rng(0).integers(0, 1 << 20, size=5000).astype(np.int32)
    keys[:100] = 7  # a long run of equal keys
    order = backward._stable_order(keys)
    assert order.tolist() == np.argsort(keys, kind="stable").tolist()


# -- small graphs by hand ---------------------------------------------------------------
def _code(m: Message) -> int:
    return codec_module.message_code(m)


U = _code(Message())  # not sent yet
W = _code(Message(MessageState.sent_ws))  # sent, not delivered
P = _code(Message(MessageState.pending))  # accepted, not delivered
D = _code(Message(MessageState.sent_ws, server=1))  # delivered, not settled
C = _code(Message(MessageState.confirmed, server=1))  # delivered and settled

#: A step: (target, where each message went, whether the user takes it).
Step = tuple[int, tuple[int, ...], bool]


def _handmade(
    n: int, states: Sequence[tuple[int, ...]], steps: Sequence[list[Step]]
) -> Exploration:
    """An exploration of a graph written out by hand: state ``s`` holds the
    messages ``states[s]`` (codes) and its steps are ``steps[s]``."""
    codec = Codec(n, symmetry=False)
    mids = codec.intern(codec.pack(np.array(states, dtype=np.int16).reshape(-1, n)))
    keys = mids.astype(np.int64) * codec_module.GLOBALS
    targets = [target for out in steps for target, _p, _u in out]
    perms = [codec.perm(positions) for out in steps for _t, positions, _u in out]
    user = [by_user for out in steps for _t, _p, by_user in out]
    offsets = np.cumsum([0] + [len(out) for out in steps])
    codec.trim()
    system = System(DESIGNS["fixed"], ENVIRONMENTS["half-open"], n)
    return Exploration(
        system,
        codec,
        keys,
        np.zeros(len(states), np.int32),
        np.zeros(len(states), np.int16),
        offsets.astype(np.int64),
        np.array(targets, np.int32),
        np.array(perms, np.int16),
        np.array(user, np.bool_),
        {},
    )


def test_settling_through_a_cycle_a_dead_end_and_a_step_of_the_user() -> None:
    # 0 -> 1 -> 2 -> 0 is a cycle; 2 -> 3 (settled) is the user's; 4 has no step
    # and is not settled, 5 has none and is.
    ex = _handmade(
        1,
        [(W,), (W,), (W,), (C,), (W,), (C,)],
        [[(1, (0,), False)], [(2, (0,), False)], [(0, (0,), False), (3, (0,), True)], [], [], []],
    )
    graph = _graph(ex)
    assert graph.settle(unaided=False).tolist() == [True, True, True, True, False, True]
    assert graph.settle(unaided=True).tolist() == [False, False, False, True, False, True]
    _assert_same(ex, graph)


def test_twins_share_their_fate() -> None:
    # State 0's two identical messages swap places into state 1, where message 0
    # (delivered) is fine and message 1 is not: 0's message 1 becomes message 0
    # there and is fine, so its twin is too. State 2 makes the same step with
    # two different messages: only the one that lands on the delivered one is fine.
    swap = (1, 0)
    ex = _handmade(
        2,
        [(W, W), (D, W), (W, P)],
        [[(1, swap, False)], [], [(1, swap, False)]],
    )
    graph = _graph(ex)
    assert graph.ok().tolist() == [[True, True], [True, False], [False, True]]
    _assert_same(ex, graph)


def test_a_cycle_that_never_delivers_loses_its_message() -> None:
    ex = _handmade(
        1, [(W,), (W,), (D,)], [[(1, (0,), False)], [(0, (0,), False)], [(2, (0,), False)]]
    )
    graph = _graph(ex)
    assert _lost(graph.ok()) == [[0], [0], []]
    _assert_same(ex, graph)


def test_a_message_not_sent_yet_is_fine_and_spreads_nothing() -> None:
    # The step 0 -> 1 turns a sent message into an unsent one (no real step
    # does): the unsent one is fine, but that does not make the sent one fine,
    # though the unsent one is delivered in 2.
    ex = _handmade(1, [(W,), (U,), (D,)], [[(1, (0,), False)], [(2, (0,), False)], []])
    graph = _graph(ex)
    assert graph.ok().tolist() == [[False], [True], [True]]
    _assert_same(ex, graph)


def test_a_state_without_steps_keeps_what_it_has() -> None:
    ex = _handmade(3, [(U, P, C)], [[]])
    graph = _graph(ex)
    assert graph.ok().tolist() == [[True, False, True]]
    assert graph.settle(unaided=False).tolist() == [False]
    _assert_same(ex, graph)


# -- random graphs ------------------------------------------------------------------------
_PALETTE = [
    U,
    W,
    P,
    D,
    C,
    _code(Message(MessageState.failed)),
    _code(Message(MessageState.sending_rest, attempts=1)),
]


def _random(rng: np.random.Generator, n: int) -> Exploration:
    states = int(rng.integers(1, 40))
    palette = rng.choice(_PALETTE, size=int(rng.integers(1, 5)), replace=False).tolist()
    multisets = [
        tuple(rng.choice(palette, size=n).tolist()) for _ in range(int(rng.integers(1, 8)))
    ]
    moves = [tuple(range(n))] + [tuple(rng.permutation(n).tolist()) for _ in range(3)]
    steps: list[list[Step]] = [
        [
            (
                int(rng.integers(states)),
                moves[int(rng.integers(len(moves)))],
                bool(rng.random() < 0.3),
            )
            for _ in range(int(rng.integers(0, 4)))
        ]
        for _ in range(states)
    ]
    chosen = [multisets[int(rng.integers(len(multisets)))] for _ in range(states)]
    return _handmade(n, chosen, steps)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9])
@pytest.mark.parametrize(("batch", "table"), [(backward.BATCH, True), (3, False)])
def test_random_graphs(n: int, batch: int, table: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backward, "BATCH", batch)
    if not table:
        monkeypatch.setattr(backward, "TABLE_LIMIT", 0)
    rng = np.random.default_rng(n)
    for _ in range(25):
        ex = _random(rng, n)
        graph = _graph(ex)
        _assert_same(ex, graph)
        settled = _good_codes(ex._codec, graph_module.settled)
        assert _lost(graph.ok(settled)) == _reference_lost(graph, settled)
        assert list(ex.doomed(graph_module.settled)) == _reference_lost(graph, settled)
