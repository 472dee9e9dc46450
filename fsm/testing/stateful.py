"""Stateful conformance testing with hypothesis (needs the ``test`` extra).

Subclass :class:`ConformanceMachine`, say which design, environment and how many
messages, and return your adapter from :meth:`~ConformanceMachine.make_adapter`::

    from fsm.strategies import ConformanceMachine

    class MyClient(ConformanceMachine):
        design = "hardened"

        def make_adapter(self):
            return MyClientAdapter()

    TestMyClient = MyClient.TestCase

Each rule application takes one step the model offers in its current state
(any stimulus, message and outcome), applies it to the adapter, and checks
that the adapter shows the observation the model predicts. hypothesis then
shrinks a failing run to a short one.
"""

from __future__ import annotations

from typing import ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from fsm.analysis.system import System
from fsm.model.design import Design, get_design, get_environment
from fsm.testing.adapters import ModelAdapter, StepRefused, SystemUnderTest
from fsm.testing.observation import Observation, observe
from fsm.testing.suite import Step

__all__ = ["ConformanceMachine"]


class ConformanceMachine(RuleBasedStateMachine):
    """Drives an adapter and the model side by side; every step's observations must agree."""

    design: ClassVar[str | Design] = "hardened"
    environment: ClassVar[str] = "ios-suspend"
    messages: ClassVar[int] = 2

    def make_adapter(self) -> SystemUnderTest:
        """The system under test; the default is the model itself."""
        return ModelAdapter()

    def __init__(self) -> None:
        super().__init__()
        design = get_design(self.design) if isinstance(self.design, str) else self.design
        self.system = System(design, get_environment(self.environment), self.messages)
        self.world = self.system.initial()
        self.adapter = self.make_adapter()
        self.steps: list[str] = []
        observed = self.adapter.reset(design, self.system.environment, self.messages)
        expected = Observation.initial(self.messages)
        assert observed == expected, "after reset: " + "; ".join(expected.differences(observed))

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        options = self.system.successors(self.world)
        t = options[data.draw(st.integers(0, len(options) - 1), label="step")]
        step = Step.of(t)
        self.steps.append(step.label())
        trace = " / ".join(self.steps)
        try:
            observed = self.adapter.apply(t.stimulus, t.message, t.outcome)
        except StepRefused as exc:
            raise AssertionError(f"refused {step.label()}: {exc}\n  trace: {trace}") from None
        expected = observe(t.target)
        assert observed == expected, (
            f"after {step.label()}: "
            + "; ".join(expected.differences(observed))
            + f"\n  trace: {trace}"
        )
        self.world = t.target
