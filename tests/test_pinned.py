"""Numbers and single steps of the model pinned down, so that a wrong edit shows.

Each table below is a dict per built-in design (and environment): when a design
or an environment is added, add its entry; when the model changes on purpose,
update the numbers in the same commit and say why. (``fixed`` grew when the app's
own REST send and a retry from the pending list became two states, and
``hardened`` when it gained the refetch; ``seed-system`` and
``ios-suspend-silent`` were added.)
"""

from __future__ import annotations

import pytest

from fsm.analysis.ablation import ablate
from fsm.analysis.checker import check
from fsm.analysis.system import Message, Outcome, Stimulus, System, World
from fsm.model.design import DESIGNS, ENVIRONMENTS, Environment
from fsm.model.vocabulary import ConnectionEvent, ConnectionState, MessageState, Socket

# -- state counts ---------------------------------------------------------------------------
#: design -> environment -> (states, transitions) with two messages.
STATE_COUNTS: dict[str, dict[str, tuple[int, int]]] = {
    "pre-fix": {
        "ios-suspend": (376, 1160),
        "ios-suspend-silent": (376, 1174),
        "half-open": (432, 1364),
    },
    "fixed": {
        "ios-suspend": (757, 2527),
        "ios-suspend-silent": (879, 2904),
        "half-open": (1025, 3429),
    },
    "seed-system": {
        "ios-suspend": (272, 828),
        "ios-suspend-silent": (272, 828),
        "half-open": (868, 2803),
    },
    "hardened": {
        "ios-suspend": (589, 2028),
        "ios-suspend-silent": (589, 2028),
        "half-open": (1372, 5433),
    },
}


def test_every_built_in_design_and_environment_has_pinned_counts() -> None:
    assert set(STATE_COUNTS) == set(DESIGNS)
    for design, counts in STATE_COUNTS.items():
        assert set(counts) == set(ENVIRONMENTS), design


@pytest.mark.parametrize(
    ("design", "environment"),
    [(d, e) for d, counts in STATE_COUNTS.items() for e in counts],
)
def test_state_counts_of_the_built_in_designs(design: str, environment: str) -> None:
    result = check(DESIGNS[design], ENVIRONMENTS[environment], 2)
    assert (result.states, result.transitions) == STATE_COUNTS[design][environment]


# -- ablation tables ------------------------------------------------------------------------
#: (design, baseline) -> feature -> environment -> the properties that setting the
#: feature back breaks; a string where the feature cannot be set back alone.
ABLATIONS: dict[tuple[str, str], dict[str, dict[str, list[str]] | str]] = {
    ("fixed", "pre-fix"): {
        "send_failure_disconnects": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
        "write_ahead": (
            "rest_fallback needs write_ahead: the REST retry sends the pending-retry list"
        ),
        "rest_fallback": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
        "rest_retry_failure": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
    },
    ("seed-system", "fixed"): {
        "reconnect_on_foreground": {
            "ios-suspend": [
                "no-silent-loss",
                "no-duplicate-delivery",
                "eventual-delivery",
                "recovers-unaided",
            ],
            "ios-suspend-silent": [
                "no-silent-loss",
                "no-duplicate-delivery",
                "eventual-delivery",
                "recovers-unaided",
            ],
            "half-open": [],
        },
        "refetch_after_reconnect": {
            "ios-suspend": ["eventual-delivery", "recovers-unaided"],
            "ios-suspend-silent": ["eventual-delivery", "recovers-unaided"],
            "half-open": [],
        },
    },
    ("hardened", "seed-system"): {
        "await_handshake": {
            "ios-suspend": ["no-forbidden-transition", "connected-means-acked"],
            "ios-suspend-silent": ["no-forbidden-transition", "connected-means-acked"],
            "half-open": ["no-forbidden-transition", "connected-means-acked"],
        },
        "pending_cleared_on": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": ["no-silent-loss", "eventual-delivery", "recovers-unaided"],
        },
        "heartbeat": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": ["recovers-unaided"],
        },
        "resend_on_reconnect": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": ["no-silent-loss", "eventual-delivery", "recovers-unaided"],
        },
        "message_ids": {
            "ios-suspend": ["no-duplicate-delivery"],
            "ios-suspend-silent": ["no-duplicate-delivery"],
            "half-open": ["no-duplicate-delivery"],
        },
        "max_rest_attempts": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
        "rest_retry_failure": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [
                "no-silent-loss",
                "no-forbidden-transition",
                "eventual-delivery",
                "recovers-unaided",
            ],
        },
    },
    ("hardened", "fixed"): {
        "await_handshake": {
            "ios-suspend": ["no-forbidden-transition", "connected-means-acked"],
            "ios-suspend-silent": ["no-forbidden-transition", "connected-means-acked"],
            "half-open": ["no-forbidden-transition", "connected-means-acked"],
        },
        "pending_cleared_on": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": ["no-silent-loss", "eventual-delivery", "recovers-unaided"],
        },
        "reconnect_on_foreground": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
        "heartbeat": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": ["recovers-unaided"],
        },
        "resend_on_reconnect": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": ["no-silent-loss", "eventual-delivery", "recovers-unaided"],
        },
        "message_ids": {
            "ios-suspend": ["no-duplicate-delivery"],
            "ios-suspend-silent": ["no-duplicate-delivery"],
            "half-open": ["no-duplicate-delivery"],
        },
        "max_rest_attempts": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
        "rest_retry_failure": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [
                "no-silent-loss",
                "no-forbidden-transition",
                "eventual-delivery",
                "recovers-unaided",
            ],
        },
        "refetch_after_reconnect": {
            "ios-suspend": [],
            "ios-suspend-silent": [],
            "half-open": [],
        },
    },
}


@pytest.mark.parametrize(("design", "baseline"), list(ABLATIONS))
def test_ablation_tables_of_the_built_in_designs(design: str, baseline: str) -> None:
    rows = ablate(DESIGNS[design], DESIGNS[baseline], list(ENVIRONMENTS.values()))
    found = {r.feature: r.invalid if r.invalid is not None else r.breaks for r in rows}
    assert found == ABLATIONS[(design, baseline)]


# -- the pending-retry list: only what is in it is retried or resent --------------------------
def test_a_send_failure_retries_only_listed_messages() -> None:
    """``fixed`` clears the whole list on any done, so a message may be sent and not
    listed; when a later send fails, the REST retry must leave it alone."""
    system = System(DESIGNS["fixed"], ENVIRONMENTS["ios-suspend"], 2)
    unlisted = Message(MessageState.sent_ws, held=False, server=1)
    world = World(
        ConnectionState.suspended_stale, Socket.suspended, True, True, (unlisted, Message())
    )
    (step,) = [t for t in system.successors(world) if t.outcome is Outcome.ws_raised]
    assert step.target.connection is ConnectionState.disconnected
    assert step.target.messages[1].state is MessageState.retrying_rest, "the listed one is retried"
    assert step.target.messages[0] == unlisted, "the unlisted one is not"


def test_a_new_connection_resends_only_listed_messages() -> None:
    """Without the refetch (which confirms what the server has), a new connection
    resends the listed message and leaves the unlisted one alone."""
    no_refetch = DESIGNS["hardened"].model_copy(update={"refetch_after_reconnect": False})
    system = System(no_refetch, ENVIRONMENTS["ios-suspend"], 2)
    unlisted = Message(MessageState.sent_ws, held=False, server=1)
    listed = Message(MessageState.pending, held=True)
    world = World(ConnectionState.handshaking, Socket.opening, True, True, (unlisted, listed))
    (step,) = [t for t in system.successors(world) if t.stimulus is Stimulus.handshake_ack]
    assert step.target.connection is ConnectionState.connected
    assert step.target.messages[1].state is MessageState.sent_ws
    assert step.target.messages[1].server == 1, "the listed one is resent"
    assert step.target.messages[0] == unlisted, "the unlisted one is not resent"


# -- the environment's two flags act on different steps -------------------------------------
def _env(silent_drops: bool, half_open_sends_vanish: bool) -> Environment:
    return Environment(
        name="custom",
        summary="A custom environment.",
        silent_drops=silent_drops,
        half_open_sends_vanish=half_open_sends_vanish,
    )


OPEN = World(ConnectionState.connected, Socket.open, True, True, (Message(),))
#: A connection that went half-open: the client still believes it is connected.
HALF_OPEN = World(ConnectionState.suspended_stale, Socket.half_open, True, True, (Message(),))


@pytest.mark.parametrize("silent_drops", [False, True])
@pytest.mark.parametrize("sends_vanish", [False, True])
def test_silent_drops_and_vanishing_sends_are_separate_flags(
    silent_drops: bool, sends_vanish: bool
) -> None:
    system = System(DESIGNS["fixed"], _env(silent_drops, sends_vanish), 1)
    drops = [t for t in system.successors(OPEN) if t.stimulus is Stimulus.connection_dropped]
    assert len(drops) == int(silent_drops)
    if drops:
        assert drops[0].target.socket is Socket.half_open
    outcomes = {t.outcome for t in system.successors(HALF_OPEN) if t.stimulus is Stimulus.send}
    expected = {Outcome.ws_raised, Outcome.ws_vanished} if sends_vanish else {Outcome.ws_raised}
    assert outcomes == expected


def test_without_silent_drops_no_socket_goes_half_open() -> None:
    system = System(DESIGNS["hardened"], _env(False, True), 1)
    result = check(DESIGNS["hardened"], system.environment, 1)
    ios = check(DESIGNS["hardened"], ENVIRONMENTS["ios-suspend"], 1)
    assert (result.states, result.transitions) == (ios.states, ios.transitions)


# -- socket_error ------------------------------------------------------------------------------
@pytest.mark.parametrize("design", list(DESIGNS))
def test_socket_error_closes_the_socket(design: str) -> None:
    """In every connection state where the receive loop may report the error, the
    socket ends closed and the client no longer believes it is connected."""
    system = System(DESIGNS[design], ENVIRONMENTS["ios-suspend"], 1)
    states = [
        c for c in ConnectionState if system.connection.allows(c, ConnectionEvent.socket_error)
    ]
    assert states
    for c in states:
        world = World(c, Socket.suspended, True, True, (Message(),))
        (step,) = [t for t in system.successors(world) if t.stimulus is Stimulus.socket_error]
        assert step.target.socket is Socket.closed, c
        assert not System.believes_connected(step.target), c


@pytest.mark.parametrize("design", ["pre-fix", "fixed"])
def test_socket_error_is_reached_and_closes_the_socket(design: str) -> None:
    system = System(DESIGNS[design], ENVIRONMENTS["ios-suspend"], 1)
    seen = {system.initial()}
    frontier = [system.initial()]
    errors = 0
    while frontier:
        world = frontier.pop()
        for t in system.successors(world):
            if t.stimulus is Stimulus.socket_error:
                errors += 1
                assert t.target.socket is Socket.closed, (world, t.target)
            if t.target not in seen:
                seen.add(t.target)
                frontier.append(t.target)
    assert errors > 0
