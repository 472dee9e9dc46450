"""One neutral diagram graph: what the views build and the writers serialise.

A view (:mod:`fsm.render.machine`, :mod:`fsm.render.counterexample`,
:mod:`fsm.render.diff`, :mod:`fsm.render.composed`) turns the model and the
analysis into a :class:`Graph`: nodes, edges and clusters with semantic roles,
and labels as structured lines of :class:`Span`. A writer
(:mod:`fsm.render.dot`, :mod:`fsm.render.mermaid`) serialises a graph; it
decides how a role looks, the view decides what is drawn. The machine diagram
is written to DOT and to Mermaid from the same :class:`Graph`.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from fsm.render.style import Legend, Tone

__all__ = [
    "Cluster",
    "Edge",
    "EdgeRole",
    "Graph",
    "Grid",
    "Line",
    "Node",
    "NodeRole",
    "Panel",
    "Span",
    "SpanKind",
    "line",
    "plain_text",
]


class SpanKind(Enum):
    """What a piece of a label is; writers size and drop pieces by kind."""

    #: Ordinary text (a state's name, an event).
    text = "text"
    #: Bold text: a rule id, step numbers, a change sign.
    tag = "tag"
    #: Bold text that is the label's main statement.
    strong = "strong"
    #: What a transition does: ``/ close_socket``; small.
    action = "action"
    #: A remark about a row; small, in italics.
    note = "note"
    #: Supporting detail (a rule's reason); small, left out where space is short.
    detail = "detail"


@dataclass(frozen=True)
class Span:
    """A run of label text. ``tone`` ``None`` takes the edge's or node's tone."""

    text: str
    kind: SpanKind = SpanKind.text
    tone: Tone | None = None


Line = tuple[Span, ...]


def line(*spans: Span | str) -> Line:
    """A label line; a plain string is a :attr:`SpanKind.text` span."""
    return tuple(Span(s) if isinstance(s, str) else s for s in spans)


def plain_text(ln: Line, drop: frozenset[SpanKind] = frozenset()) -> str:
    """A line's spans as plain text, separated by spaces, without ``drop`` kinds."""
    return " ".join(s.text for s in ln if s.kind not in drop and s.text)


class NodeRole(Enum):
    """What a node is."""

    #: A machine state.
    state = "state"
    #: A machine state no transition of the design leads to.
    unreachable = "unreachable"
    #: A machine state a trace passes through.
    visited = "visited"
    #: A machine state a trace does not pass through.
    unvisited = "unvisited"
    #: A world of the composed system.
    world = "world"
    #: A group of worlds of the composed system (one connection and message state).
    group = "group"
    #: The dot an initial state is entered from.
    start = "start"


class EdgeRole(Enum):
    """What an edge is."""

    #: A transition of the design's table.
    allowed = "allowed"
    #: A transition the design has that a forbidden rule matches.
    forbidden = "forbidden"
    #: A forbidden rule's transition the design does not have.
    must_never = "must never"
    #: A transition a trace takes.
    taken = "taken"
    #: A forbidden transition a trace takes.
    taken_forbidden = "taken forbidden"
    #: A transition of the design a trace does not take.
    other = "other"
    #: In the old design of a diff only.
    removed = "removed"
    #: In the new design of a diff only.
    added = "added"
    #: In both designs of a diff, with different actions.
    changed = "changed"
    #: In both designs of a diff, the same.
    unchanged = "unchanged"
    #: From a start dot to the initial state.
    start = "start"
    #: A step of the composed system (``group`` names its kind of stimulus).
    step = "step"


@dataclass(frozen=True)
class Node:
    id: str
    role: NodeRole
    #: The node's main text (a state's name); empty for a start dot.
    name: str = ""
    #: Further label lines under the name (a composed world's socket, app, message).
    lines: tuple[Line, ...] = ()
    #: Events that leave the state where it is, drawn inside it.
    loops: tuple[Line, ...] = ()
    tooltip: str = ""
    #: The machine's initial state, or the composed system's first world.
    initial: bool = False
    #: The state a trace ends in.
    last: bool = False
    #: Ids of the properties a composed world (or some world of a group) violates.
    violates: tuple[str, ...] = ()
    #: A composed world where every sent message is confirmed or visibly failed.
    settled: bool = False


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    role: EdgeRole
    label: tuple[Line, ...] = ()
    tooltip: str = ""
    #: For :attr:`EdgeRole.step`: the kind of stimulus (a key of the style's colours).
    group: str = ""


@dataclass(frozen=True)
class Cluster:
    """A boxed group of nodes and the edges among them (one machine of a trace)."""

    id: str
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    #: Lay the cluster's nodes out in one row (one rank).
    row: bool = False


@dataclass(frozen=True)
class Panel:
    """A titled block of lines beside the graph (the effects outside the machines)."""

    title: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Grid:
    """A table beside the graph (a trace's steps); ``marked`` rows are shaded and
    ``remarks`` follow the row they belong to, spanning every column."""

    caption: Line
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    marked: frozenset[int] = frozenset()
    remarks: tuple[tuple[int, tuple[Line, ...]], ...] = ()


Direction = Literal["TB", "LR"]
Density = Literal["normal", "trace", "dense"]


@dataclass(frozen=True)
class Graph:
    """A whole diagram: a title, a legend, side blocks, nodes, edges and clusters."""

    name: str
    title: tuple[str, ...]
    direction: Direction = "LR"
    density: Density = "normal"
    legend: tuple[Legend, ...] = ()
    blocks: tuple[Panel | Grid, ...] = ()
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    clusters: tuple[Cluster, ...] = field(default_factory=tuple)
    #: A large graph, whose title would look tiny beside it at the usual size.
    big: bool = False

    def all_nodes(self) -> Sequence[Node]:
        return [*self.nodes, *(n for c in self.clusters for n in c.nodes)]
