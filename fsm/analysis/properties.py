"""The properties the checker judges, as data: one registry, one place each.

A :class:`Property` has an id (as on the command line), a one-line statement,
a :class:`Kind`, how it is evaluated on an :class:`~fsm.analysis.explorer.Exploration`
and how a violation is explained in words. The checker, the command line, the
diagrams, the review, the JSON schema and the tests all list properties from
:data:`PROPERTIES`; :func:`get_property` refuses an unknown id.

Adding a property means adding one entry here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from fsm.analysis.explorer import Exploration
from fsm.analysis.system import Message, System, Transition, World
from fsm.analysis.trace import Reason, Trace, broken_rules
from fsm.model.errors import UnknownName
from fsm.model.vocabulary import MessageState, Socket

__all__ = [
    "PROPERTIES",
    "Finding",
    "Kind",
    "Property",
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
    """One property: what it says, how it is judged, how a violation is explained."""

    id: str
    statement: str
    kind: Kind
    #: For invariants and reachability properties: for every state, whether it
    #: violates the property. ``None`` for step rules.
    bad_states: Callable[[Exploration], Sequence[bool]] | None
    #: The explanation of a violating trace's last state (or last step), in words.
    explain: Callable[[Exploration, Trace], tuple[Reason, ...]]
    #: For step rules: the first violating step, by BFS depth.
    first_step: Callable[[Exploration], Finding | None] | None = None
    #: For invariants that are a predicate of one world: that predicate (true when
    #: violated), so the first violation is found without judging every state.
    violated_in: Callable[[World], bool] | None = None
    #: Where ``violated_in`` holds exactly when some message of the world is
    #: like this, the message predicate; the explorer then judges each kind of
    #: message once instead of every state.
    violated_by_a_message: Callable[[Message], bool] | None = None
    #: Where ``violated_in`` reads only the connection state and the socket.
    violated_by_the_connection: bool = False

    def find(self, ex: Exploration) -> Finding | None:
        """The violation at the least depth, if any."""
        if self.first_step is not None:
            return self.first_step(ex)
        if self.violated_by_a_message is not None:
            sid = ex.first_with_a_message(self.violated_by_a_message)
        elif self.violated_in is not None and self.violated_by_the_connection:
            sid = ex.first_by_global(self.violated_in)
        elif self.violated_in is not None:
            sid = ex.first(self.violated_in)
        else:
            assert self.bad_states is not None
            try:
                sid = self.bad_states(ex).index(True)
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
}


def describe(m: Message) -> str:
    """Where a sent message stands, in words: the client's view, the server's, the list."""
    assert m.state is not None
    parts = [_SHOWN[m.state]]
    if m.server == 0:
        parts.append("the server never received it")
    elif m.server >= 2:
        parts.append("the server applied it twice")
    elif m.done_owed:
        parts.append("the server has it and owes its done/toolUse on the current socket")
    elif m.state in (MessageState.sent_ws, MessageState.pending):
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
    return tuple(
        Reason(
            i, describe(m) + ", and nothing that can still happen delivers it or shows it failed"
        )
        for i, m in enumerate(trace.final.messages)
        if positions[i] in lost
    )


def _duplicate_reasons(ex: Exploration, trace: Trace) -> tuple[Reason, ...]:
    return tuple(
        Reason(i, describe(m)) for i, m in enumerate(trace.final.messages) if m.server >= 2
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
        reasons = [
            Reason(i, f"{describe(m)}; {how} confirms it or shows it failed")
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


def _duplicated(w: World) -> bool:
    return any(_duplicate(m) for m in w.messages)


def _states_where(predicate: Callable[[World], bool]) -> Callable[[Exploration], list[bool]]:
    def bad(ex: Exploration) -> list[bool]:
        return [predicate(w) for w in ex.worlds]

    return bad


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
        _lost_states,
        _lost_reasons,
    ),
    Property(
        "no-duplicate-delivery",
        "the server never applies one message twice",
        Kind.invariant,
        _states_where(_duplicated),
        _duplicate_reasons,
        violated_in=_duplicated,
        violated_by_a_message=_duplicate,
    ),
    Property(
        "no-forbidden-transition",
        "no step takes a forbidden transition (F-rules)",
        Kind.step,
        None,
        _rule_reasons,
        _first_rule_hit,
    ),
    Property(
        "connected-means-acked",
        "'connected' only after the server acknowledged the handshake",
        Kind.invariant,
        _states_where(System.connected_unacked),
        _unacked_reasons,
        violated_in=System.connected_unacked,
        violated_by_the_connection=True,
    ),
    Property(
        "eventual-delivery",
        "from every state, all sent messages can still end confirmed or failed",
        Kind.reachability,
        _unsettled_states(unaided=False),
        _settle_reasons(unaided=False),
    ),
    Property(
        "recovers-unaided",
        "all sent messages can end confirmed or failed without the user's help",
        Kind.reachability,
        _unsettled_states(unaided=True),
        _settle_reasons(unaided=True),
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
    return {p.id: list(p.bad_states(ex)) for p in PROPERTIES if p.bad_states is not None}
