"""Hypothesis strategies over the model, for property tests of code built on it.

Needs ``hypothesis`` (the ``test`` extra)::

    from hypothesis import given
    from fsm import strategies as fst

    @given(fst.walks("hardened", max_steps=30))
    def test_my_client_follows_the_model(walk):
        for step in walk:
            my_client.apply(step.stimulus.value, step.message)
            assert my_client.connection_state == step.target.connection.value

Every strategy reads the same tables as the checker; nothing here restates them.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from fsm.design import DEFAULT_ENVIRONMENT, Design, get_design, get_environment
from fsm.model import (
    CONNECTION,
    MESSAGE,
    ConnectionEvent,
    ConnectionState,
    MessageEvent,
    MessageState,
)
from fsm.system import System, Transition

__all__ = [
    "connection_events",
    "connection_states",
    "designs",
    "message_events",
    "message_states",
    "walks",
]


def connection_states() -> st.SearchStrategy[ConnectionState]:
    return st.sampled_from(list(CONNECTION.states))


def connection_events() -> st.SearchStrategy[ConnectionEvent]:
    return st.sampled_from(list(CONNECTION.events))


def message_states() -> st.SearchStrategy[MessageState]:
    return st.sampled_from(list(MESSAGE.states))


def message_events() -> st.SearchStrategy[MessageEvent]:
    return st.sampled_from(list(MESSAGE.events))


@st.composite
def designs(draw: st.DrawFn) -> Design:
    """Any valid design: every feature combination the Design model accepts."""
    write_ahead = draw(st.booleans())
    fields: dict[str, Any] = {
        "name": "generated",
        "summary": "A design drawn by hypothesis.",
        "await_handshake": draw(st.booleans()),
        "send_failure_disconnects": draw(st.booleans()),
        "write_ahead": write_ahead,
        "rest_fallback": write_ahead and draw(st.booleans()),
        "pending_cleared_on": draw(st.sampled_from(["ws_send", "any_done", "own_confirmation"])),
        "reconnect_on_foreground": draw(st.booleans()),
        "heartbeat": draw(st.booleans()),
        "resend_on_reconnect": write_ahead and draw(st.booleans()),
        "message_ids": draw(st.booleans()),
        "max_rest_attempts": draw(st.integers(1, 3)),
    }
    return Design(**fields)


def walks(
    design: Design | str,
    environment: str = DEFAULT_ENVIRONMENT,
    *,
    messages: int = 2,
    max_steps: int = 20,
) -> st.SearchStrategy[list[Transition]]:
    """Random runs of the composed system from its initial state.

    Each element is a :class:`~fsm.system.Transition`: the stimulus, the message
    it concerns, and the world after it. Shrinking shortens the run and prefers
    earlier choices among the steps offered at each point.
    """
    resolved = get_design(design) if isinstance(design, str) else design
    system = System(resolved, get_environment(environment), messages)

    @st.composite
    def walk(draw: st.DrawFn) -> list[Transition]:
        world = system.initial()
        steps: list[Transition] = []
        length = draw(st.integers(0, max_steps))
        for _ in range(length):
            options = system.successors(world)
            if not options:  # pragma: no cover - every world can at least background
                break
            step = options[draw(st.integers(0, len(options) - 1))]
            steps.append(step)
            world = step.target
        return steps

    return walk()
