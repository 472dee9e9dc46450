"""Questions a design reviewer asks that are not properties.

``does this design depend on the send raising?`` The seed's root cause says a
send into a suspended socket "fails silently (no error thrown, just fails to
send)", while its fix catches an error from that very send. :func:`send_dependence`
answers, for one design, whether a message is lost right after a send into a
suspended socket that raised (``ios-suspend``) and right after one that returned
normally (``ios-suspend-silent``), each with its shortest trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fsm.analysis.explore import explore
from fsm.analysis.system import Outcome, Stimulus, System
from fsm.analysis.trace import Trace
from fsm.model.design import Design, Environment, get_environment
from fsm.model.vocabulary import Socket

__all__ = ["Dependence", "SendDependence", "loss_on_send", "send_dependence"]


def loss_on_send(
    design: Design, environment: Environment, messages: int, outcome: Outcome
) -> Trace | None:
    """The shortest trace whose last step is a send into a suspended socket that
    ended in ``outcome``, after which that very message is lost; ``None`` if none."""
    system = System(design, environment, messages)
    ex = explore(system)
    lost = ex.lost_by_state
    for sid, world in enumerate(ex.worlds):
        if world.socket is not Socket.suspended:
            continue
        for step in ex.steps(sid):
            stimulus, message, how = step.label
            if (
                stimulus is Stimulus.send
                and how is outcome
                and message is not None
                and step.positions[message] in lost[step.target]
            ):
                return ex.trace_through(sid, system.step(world, step.label))
    return None


class Dependence(Enum):
    """How a design fares when a send into a suspended socket fails."""

    #: No message is lost right after such a send, whichever way it fails.
    independent = "independent"
    #: Safe when the send raises, loses the message when it returns normally.
    needs_the_raise = "depends on the send raising"
    #: Loses the message whichever way the send fails.
    loses_either_way = "loses the message either way"
    #: Loses it when the send raises only (a design that trusts a silent send).
    needs_the_silence = "loses it only when the send raises"


@dataclass(frozen=True)
class SendDependence:
    """One design's answer, with the shortest losing trace in each reading."""

    design: Design
    messages: int
    #: Lost right after a send that raised (environment ``ios-suspend``).
    raised: Trace | None
    #: Lost right after a send that returned normally (``ios-suspend-silent``).
    silent: Trace | None

    @property
    def verdict(self) -> Dependence:
        if self.raised is None and self.silent is None:
            return Dependence.independent
        if self.raised is None:
            return Dependence.needs_the_raise
        if self.silent is None:
            return Dependence.needs_the_silence
        return Dependence.loses_either_way


def send_dependence(design: Design, messages: int = 2) -> SendDependence:
    """Whether ``design`` keeps a message sent into a suspended socket only because the
    send raises: the seed's two readings of its own root cause, step 5."""
    return SendDependence(
        design,
        messages,
        loss_on_send(design, get_environment("ios-suspend"), messages, Outcome.ws_raised),
        loss_on_send(design, get_environment("ios-suspend-silent"), messages, Outcome.ws_vanished),
    )
