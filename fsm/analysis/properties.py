"""The properties the checker judges, as data: one registry, one place each.

A :class:`Property` has an id (as on the command line), a one-line statement,
a :class:`Kind`, how it is evaluated on an :class:`~fsm.analysis.explore.Exploration`
and how a violation is explained in words. The checker, the command line, the
diagrams, the review, the JSON schema and the tests all list properties from
:data:`PROPERTIES`; :func:`get_property` refuses an unknown id.

Adding a property means adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fsm.analysis.explore import Exploration, Scope
from fsm.analysis.system import Message, System, Transition
from fsm.analysis.trace import Reason, Trace, broken_rules
from fsm.model.behaviour import Behaviour
from fsm.model.errors import UnknownName
from fsm.model.vocabulary import MessageState, Socket

__all__ = [
    "PROPERTIES",
    "Finding",
    "Kind",
    "Property",
    "Scope",
    "describe",
    "get_property",
    "property_ids",
    "violating_worlds",
]


class Kind(Enum):
    """How a property is judged."""

    #: A predicate every reachable state must satisfy (AG p).
    invariant = "state invariant"
    #: A rule every reachable step must respect.
    step = "step rule"
    #: From every reachable state, a good state is still reachable (AG EF p).
    reachability = "reachability from every state (AG EF)"


@dataclass(frozen=True)
class Finding:
    """Where a property is first violated: a state, or a step taken out of a state."""

    state: int
    step: Transition | None = None
    rule: str | None = None


@dataclass(frozen=True)
class Property:
    """One property: what it says, how it is judged, how a violation is explained.

    An invariant that is a predicate of one state states that predicate once,
    as ``violated`` (true when violated) with the :class:`Scope` it reads:
    ``Scope.message`` for a predicate of one message (violated when some
    message is so), ``Scope.globals`` for one of the connection state, socket,
    foreground and network, ``Scope.world`` for one of the whole world. The
    exploration derives both the first violation and the flags of every state
    from it, judging each kind of message or each global part once where the
    scope allows.
    """

    id: str
    statement: str
    kind: Kind
    #: The explanation of a violating trace's last state (or last step), in words.
    explain: Callable[[Exploration, Trace], tuple[Reason, ...]]
    #: For invariants that are a predicate of one state: that predicate.
    violated: Callable[[Any], bool] | None = None
    #: The part of a state ``violated`` reads.
    scope: Scope = Scope.world
    #: For the other invariants and the reachability properties: for every
    #: state, whether it violates the property.
    states: Callable[[Exploration], Sequence[bool]] | None = None
    #: For step rules: the first violating step, by BFS depth.
    first_step: Callable[[Exploration], Finding | None] | None = None
    #: Why the property says nothing about a design, if it may not: a verdict on it
    #: would be vacuous (``None`` when it applies). The checker reports "n/a".
    inapplicable: Callable[[Behaviour], str | None] | None = None

    def why_inapplicable(self, behaviour: Behaviour) -> str | None:
        """Why the property says nothing about ``behaviour``'s design; ``None`` when it
        applies."""
        return None if self.inapplicable is None else self.inapplicable(behaviour)

    @property
    def bad_states(self) -> Callable[[Exploration], Sequence[bool]] | None:
        """For invariants and reachability properties: for every state, whether
        it violates the property. ``None`` for step rules."""
        violated, scope = self.violated, self.scope
        if violated is not None:
            return lambda ex: ex.states_where(violated, scope)
        return self.states

    def find(self, ex: Exploration) -> Finding | None:
        """The violation at the least depth, if any."""
        if self.first_step is not None:
            return self.first_step(ex)
        if self.violated is not None:
            sid = ex.first(self.violated, self.scope)
        else:
            assert self.states is not None
            try:
                sid = self.states(ex).index(True)
            except ValueError:
                sid = None
        return None if sid is None else Finding(sid)

    def trace(self, ex: Exploration, finding: Finding) -> Trace:
        """A shortest concrete trace to ``finding``."""
        if finding.step is not None:
            return ex.trace_through(finding.state, finding.step)
        return ex.trace_to(finding.state)


# -- words ------------------------------------------------------------------------------
_SHOWN = {
    MessageState.pending: "the client still holds it as pending",
    MessageState.sent_ws: "the client shows it as sent over the WebSocket",
    MessageState.sending_rest: "a REST request carrying it is in flight",
    MessageState.retrying_rest: "a REST retry carrying it is in flight",
    MessageState.confirmed: "the client shows it as confirmed",
    MessageState.failed: "the client shows it as failed",
    MessageState.buffered: "the client keeps it in its offline buffer",
}
_AWAITING = (MessageState.sent_ws, MessageState.pending, MessageState.buffered)


def describe(m: Message, acknowledged: bool = True) -> str:
    """Where a sent message stands, in words: the client's view, the server's, the list.
    ``acknowledged``: the design's server acknowledges messages sent over the WebSocket."""
    assert m.state is not None
    parts = [_SHOWN[m.state]]
    if m.server == 0:
        parts.append("the server never received it")
    elif m.server >= 2:
        parts.append("the server applied it twice")
    elif m.done_owed:
        parts.append("the server has it and owes its done/toolUse on the current socket")
    elif m.state in _AWAITING and acknowledged:
        parts.append("the server has it but its done/toolUse died with the socket")
    else:
        parts.append("the server has it")
    parts.append(
        "it is in the pending-retry list" if m.held else "it is not in the pending-retry list"
    )
    return ", ".join(parts)


def _lost_reasons(ex: Exploration, trace: Trace) -> tuple[Reason, ...]:
    sid, positions = ex.state_of(trace.final)
    lost = set(ex.lost_by_state[sid])
    acked = ex.system.acknowledges
    return tuple(
        Reason(
            i,
            describe(m, acked) + ", and nothing that can still happen delivers it or shows it "
            "failed",
        )
        for i, m in enumerate(trace.final.messages)
        if positions[i] in lost
    )


def _duplicate_reasons(ex: Exploration, trace: Trace) -> tuple[Reason, ...]:
    acked = ex.system.acknowledges
    return tuple(
        Reason(i, describe(m, acked)) for i, m in enumerate(trace.final.messages) if m.server >= 2
    )


def _unacked_reasons(ex: Exploration, trace: Trace) -> tuple[Reason, ...]:
    w = trace.final
    if w.socket is Socket.opening:
        why = "the handshake has not completed"
    else:
        why = f"the socket under it is {w.socket.value}"
    return (Reason(None, f"the client reports connected (isConnected == true) but {why}"),)


def _settle_reasons(unaided: bool) -> Callable[[Exploration, Trace], tuple[Reason, ...]]:
    def explain(ex: Exploration, trace: Trace) -> tuple[Reason, ...]:
        sid, positions = ex.state_of(trace.final)
        doomed = set(ex.never_settle(sid, unaided=unaided))
        how = (
            "no continuation without the user's help (no new send, no trip to the background)"
            if unaided
            else "no continuation"
        )
        acked = ex.system.acknowledges
        reasons = [
            Reason(i, f"{describe(m, acked)}; {how} confirms it or shows it failed")
            for i, m in enumerate(trace.final.messages)
            if positions[i] in doomed
        ]
        if not reasons:
            reasons.append(
                Reason(
                    None,
                    f"each message could settle on its own, but {how} settles all of them",
                )
            )
        return tuple(reasons)

    return explain


def _first_rule_hit(ex: Exploration) -> Finding | None:
    if not ex.rule_hits:
        return None
    rule_id, (src, step) = min(
        ex.rule_hits.items(), key=lambda item: (len(ex.path(item[1][0])), item[0])
    )
    return Finding(src, step, rule_id)


def _rule_reasons(ex: Exploration, trace: Trace) -> tuple[Reason, ...]:
    step = trace.steps[-1]
    return tuple(
        Reason(fired.message, f"{rule.id}: {rule.reason}")
        for fired in step.fired
        for rule in broken_rules(fired)
    )


def _lost_states(ex: Exploration) -> Sequence[bool]:
    return ex.lost_states()


def _duplicate(m: Message) -> bool:
    return m.server >= 2


def _without_settling(b: Behaviour) -> str | None:
    """Why a property about messages ending confirmed or failed says nothing about a
    design where a message written over the WebSocket can never end so."""
    if b.settles_written:
        return None
    return (
        "not applicable: nothing in this design ever confirms or fails a message once it "
        "is written over the WebSocket (no acknowledgement comes back), so whether sent "
        "messages end confirmed or failed has one vacuous answer; no-silent-loss says "
        "whether each reaches the server"
    )


def _unsettled_states(unaided: bool) -> Callable[[Exploration], Sequence[bool]]:
    def bad(ex: Exploration) -> Sequence[bool]:
        return ex.cannot_settle_states(unaided=unaided)

    return bad


#: Every property, in the order reports list them.
PROPERTIES: tuple[Property, ...] = (
    Property(
        "no-silent-loss",
        "every sent message can still reach the server or be shown as failed",
        Kind.invariant,
        _lost_reasons,
        states=_lost_states,
    ),
    Property(
        "no-duplicate-delivery",
        "the server never applies one message twice",
        Kind.invariant,
        _duplicate_reasons,
        violated=_duplicate,
        scope=Scope.message,
    ),
    Property(
        "no-forbidden-transition",
        "no step takes a forbidden transition (F-rules)",
        Kind.step,
        _rule_reasons,
        first_step=_first_rule_hit,
    ),
    Property(
        "connected-means-acked",
        "'connected' only after the server acknowledged the handshake",
        Kind.invariant,
        _unacked_reasons,
        violated=System.connected_unacked,
        scope=Scope.globals,
    ),
    Property(
        "eventual-delivery",
        "from every state, all sent messages can still end confirmed or failed",
        Kind.reachability,
        _settle_reasons(unaided=False),
        states=_unsettled_states(unaided=False),
        inapplicable=_without_settling,
    ),
    Property(
        "recovers-unaided",
        "all sent messages can end confirmed or failed without the user's help",
        Kind.reachability,
        _settle_reasons(unaided=True),
        states=_unsettled_states(unaided=True),
        inapplicable=_without_settling,
    ),
)


def property_ids() -> list[str]:
    """The ids of :data:`PROPERTIES`, in report order."""
    return [p.id for p in PROPERTIES]


def get_property(pid: str) -> Property:
    """The property with id ``pid``; :class:`UnknownName` if there is none."""
    for prop in PROPERTIES:
        if prop.id == pid:
            return prop
    raise UnknownName("property", pid, property_ids())


def violating_worlds(ex: Exploration) -> dict[str, list[bool]]:
    """For every state property, which states of ``ex`` violate it."""
    found: dict[str, list[bool]] = {}
    for p in PROPERTIES:
        bad = p.bad_states
        if bad is not None:
            found[p.id] = list(bad(ex))
    return found
