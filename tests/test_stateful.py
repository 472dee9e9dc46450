"""Random walks over the composed system, with the checker's properties as invariants.

Each rule application takes any step the system offers. Where the checker
proves a property, no walk may break it; where it finds a violation (the
pre-fix client's silent loss), hypothesis must find it too.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from fsm import FORBIDDEN, Design, MessageState, System, get_design, get_environment
from fsm.analysis.system import Transition, World

# Walks never fail for the designs that hold their invariants, so the examples
# only need to be many and varied enough; derandomized so every run is the same.
WALKS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# Searching for a known violation: generate, then shrink. The explain phase
# would replay the shrunk walk many more times for a report nobody reads here.
SEARCH = settings(
    max_examples=500,
    stateful_step_count=25,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.generate, Phase.shrink],
)


# Finding a longer violation is enough; shrinking it would cost more than the search.
FIND = settings(SEARCH, stateful_step_count=20, phases=[Phase.generate])


def _forbidden(t: Transition, ids: set[str]) -> list[str]:
    return [
        rule.id
        for f in t.fired
        for rule in FORBIDDEN
        if rule.id in ids and rule.machine == f.machine and rule.matches_step(f.row, f.connection)
    ]


def _system(design: str, environment: str, messages: int = 2) -> System:
    return System(get_design(design), get_environment(environment), messages)


class SystemWalk(RuleBasedStateMachine):
    """One run of the composed system; each step is any step the system offers.

    Subclasses say which system (``system``) and which invariants.
    """

    system: ClassVar[System]

    def __init__(self) -> None:
        super().__init__()
        self.world = self.system.initial()
        self.path: list[str] = []
        self.last: Transition | None = None

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        options = self.system.successors(self.world)
        assert options, "every world has a successor (the app can always go to the background)"
        t = options[data.draw(st.integers(0, len(options) - 1), label="choice")]
        label = t.stimulus.value + ("" if t.message is None else f" m{t.message + 1}")
        self.path.append(label + (f" ({t.outcome.value})" if t.outcome else ""))
        self.last = t
        self.world = t.target

    def where(self) -> str:
        return " -> ".join(self.path) or "(start)"


def unaccounted(world: World) -> list[int]:
    """Sent messages the server lacks that are neither in flight, nor in the client's
    pending-retry list, nor shown as failed: gone, whatever happens next."""
    return [
        i
        for i in System.undelivered(world)
        if world.messages[i].state
        not in (MessageState.pending, MessageState.sending_rest, MessageState.retrying_rest)
        and not world.messages[i].held
    ]


class NoSilentLoss(SystemWalk):
    @invariant()
    def no_silent_loss(self) -> None:
        lost = unaccounted(self.world)
        assert not lost, f"no-silent-loss violated (m{lost[0] + 1}) after: {self.where()}"


class FixedInvariants(NoSilentLoss):
    """What the seed's fix achieves when iOS suspends, once its REST retry's failure is
    shown instead of swallowed: no loss, neither F1 nor F3 taken."""

    system = System(
        Design.model_validate(
            {**get_design("fixed").model_dump(), "name": "fixed-shown"}
            | {"rest_retry_failure": "shown"}
        ),
        get_environment("ios-suspend"),
        2,
    )

    @invariant()
    def no_swallowed_send_error_nor_early_clear(self) -> None:
        if self.last is not None:
            assert _forbidden(self.last, {"F1", "F3"}) == [], self.where()


class HardenedInvariants(NoSilentLoss):
    """Everything the checker says the hardened design holds."""

    system = _system("hardened", "ios-suspend")

    @invariant()
    def no_duplicate_delivery(self) -> None:
        assert not System.duplicated(self.world), self.where()

    @invariant()
    def connected_means_acked(self) -> None:
        assert not System.connected_unacked(self.world), self.where()

    @invariant()
    def no_forbidden_transition(self) -> None:
        if self.last is not None:
            assert _forbidden(self.last, {r.id for r in FORBIDDEN}) == [], self.where()


class HardenedHalfOpen(HardenedInvariants):
    system = _system("hardened", "half-open")


class HardenedHalfOpenThreeMessages(HardenedInvariants):
    system = _system("hardened", "half-open", messages=3)


class PreFixNoSilentLoss(NoSilentLoss):
    system = _system("pre-fix", "ios-suspend")


class FixedNoSilentLoss(NoSilentLoss):
    system = _system("fixed", "ios-suspend")


class FixedNoDuplicate(SystemWalk):
    system = _system("fixed", "ios-suspend")

    @invariant()
    def no_duplicate_delivery(self) -> None:
        assert not System.duplicated(self.world), f"duplicate after: {self.where()}"


def test_fixed_with_its_retry_failure_shown_never_loses_a_message_when_ios_suspends() -> None:
    run_state_machine_as_test(FixedInvariants, settings=WALKS)


def test_random_walks_find_the_fixed_swallowed_rest_retry() -> None:
    """Hypothesis finds the fix's own try?: a failed REST retry leaves the message gone."""
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(FixedNoSilentLoss, settings=SEARCH)
    message = str(info.value)
    assert message.startswith("no-silent-loss violated"), message
    path = message.split("after: ", 1)[1].split(" -> ")
    assert any("ws_raised" in step for step in path), path
    assert path[-1].startswith("rest_error"), path
    assert len(path) <= 8, path  # shrunk close to the 5-step shortest counterexample


@pytest.mark.parametrize(
    "machine",
    [HardenedInvariants, HardenedHalfOpen, HardenedHalfOpenThreeMessages],
    ids=["ios-suspend", "half-open", "half-open-3-messages"],
)
def test_hardened_keeps_every_invariant(machine: type[HardenedInvariants]) -> None:
    run_state_machine_as_test(machine, settings=WALKS)


def test_random_walks_find_the_pre_fix_silent_loss() -> None:
    """Hypothesis finds and shrinks the seed bug: background, foreground, send."""
    with pytest.raises(AssertionError) as info:
        run_state_machine_as_test(PreFixNoSilentLoss, settings=SEARCH)
    message = str(info.value)
    assert message.startswith("no-silent-loss violated"), message
    path = message.split("after: ", 1)[1].split(" -> ")
    stimuli = [step.split(" ")[0] for step in path]
    assert stimuli[-1] == "send", path
    assert "ws_raised" in path[-1]
    background = stimuli.index("app_background")
    assert "app_foreground" in stimuli[background:]
    assert len(path) <= 6, path  # shrunk close to the 4-step shortest counterexample


def test_random_walks_find_the_fixed_duplicate() -> None:
    """The checker's no-duplicate-delivery violation of the fix is found by a walk too."""
    with pytest.raises(AssertionError, match=r"^duplicate after: ") as info:
        run_state_machine_as_test(FixedNoDuplicate, settings=FIND)
    path = str(info.value).split("after: ", 1)[1].split(" -> ")
    assert path[-1].startswith(("rest_ok", "rest_lost_response")), path
    assert any("raised" in step for step in path), path  # the failed send that retried it
