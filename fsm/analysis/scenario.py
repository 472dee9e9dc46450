"""Named scenarios: scripted event sequences replayed on the composed system.

A scenario is data: a list of stimuli, each optionally aimed at one message.
Replaying it on a design walks :class:`~fsm.analysis.system.System` one step at a time,
so what happens is whatever the design's tables say. A step the design makes
impossible (say, a REST response for a message that was never sent over REST)
is reported as skipped, which is itself a finding.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from fsm.analysis.explore import explore
from fsm.analysis.report import StepView, message_name, step_view
from fsm.analysis.system import Stimulus, System, World
from fsm.model.design import Design, Environment
from fsm.model.errors import UnknownName
from fsm.model.vocabulary import MessageState

__all__ = ["SCENARIOS", "Scenario", "ScenarioReport", "ScriptStep", "get_scenario", "run"]


@dataclass(frozen=True)
class ScriptStep:
    stimulus: Stimulus
    #: 1-based message number, or None for a step that concerns no single message.
    message: int | None = None
    why: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    messages: int
    steps: tuple[ScriptStep, ...]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="seed-verification",
            summary="The seed's test case: send, switch away, return, send a second message.",
            messages=2,
            steps=(
                ScriptStep(Stimulus.connect, why="the app opens its WebSocket"),
                ScriptStep(Stimulus.handshake_ack, why="the server accepts it"),
                ScriptStep(Stimulus.send, 1, why="the user sends a first message"),
                ScriptStep(Stimulus.done, 1, why="its response arrives"),
                ScriptStep(Stimulus.app_background, why="the user switches apps"),
                ScriptStep(Stimulus.app_foreground, why="a push notification brings them back"),
                ScriptStep(Stimulus.send, 2, why="the user sends a second message"),
                ScriptStep(Stimulus.rest_ok, 2, why="a REST request for it succeeds, if any"),
            ),
        ),
    )
}


class ScenarioStep(BaseModel):
    index: int
    stimulus: str
    message: str | None
    why: str
    happened: bool
    step: StepView | None


class ScenarioReport(BaseModel):
    scenario: str
    design: str
    environment: str
    steps: list[ScenarioStep]
    outcome: dict[str, str]

    @property
    def lost(self) -> list[str]:
        return [m for m, fate in self.outcome.items() if fate.startswith("lost")]


def _lost_at(system: System, world: World) -> set[int]:
    """Messages of ``world`` that no continuation delivers or shows as failed."""
    found = explore(system, symmetry=False, start=world).lost()
    if found is None or found[0] != 0:
        return set()
    return set(found[1])


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownName("scenario", name, sorted(SCENARIOS)) from None


def run(scenario: Scenario, design: Design, environment: Environment) -> ScenarioReport:
    """Replay ``scenario`` on ``design``; the first listed outcome is taken where
    the environment allows several (a send into a half-open socket raises before it vanishes)."""
    system = System(design, environment, scenario.messages)
    world = system.initial()
    steps: list[ScenarioStep] = []
    confirmed_by: dict[int, str] = {}
    for n, script in enumerate(scenario.steps, start=1):
        target = None if script.message is None else script.message - 1
        choice = next(
            (
                t
                for t in system.successors(world)
                if t.stimulus is script.stimulus and (target is None or t.message == target)
            ),
            None,
        )
        before = world
        if choice is not None:
            world = choice.target
            for fired in choice.fired:
                if fired.message is not None and fired.row.target is MessageState.confirmed:
                    confirmed_by[fired.message] = fired.row.event.value
        steps.append(
            ScenarioStep(
                index=n,
                stimulus=script.stimulus.value,
                message=None if target is None else message_name(target),
                why=script.why,
                happened=choice is not None,
                step=None if choice is None else step_view(before, choice),
            )
        )
    lost = _lost_at(system, world)
    outcome = {}
    for i, m in enumerate(world.messages):
        name = message_name(i)
        if m.state is None:
            outcome[name] = "never sent"
        elif i in lost:
            outcome[name] = f"lost: the client shows {m.state.value}, the server never got it"
        elif m.server >= 2:
            outcome[name] = f"{m.state.value}, but delivered {m.server} times"
        elif m.state is MessageState.confirmed:
            via = "over REST" if confirmed_by.get(i) == "rest_ok" else "over the WebSocket"
            outcome[name] = f"confirmed {via}"
        elif m.state is MessageState.failed:
            outcome[name] = "failed, shown to the user"
        else:
            where = "on the server" if m.server else "not on the server"
            outcome[name] = f"{m.state.value}, {where}, not yet confirmed"
    return ScenarioReport(
        scenario=scenario.name,
        design=design.name,
        environment=environment.name,
        steps=steps,
        outcome=outcome,
    )
