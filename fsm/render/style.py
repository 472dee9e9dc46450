"""The diagrams' look: colours, fonts, tones, legend samples and HTML-label helpers.

Views (:mod:`fsm.render.machine`, ...) say what a node or an edge *is* (a
:class:`~fsm.render.graph.Tone`, a role); this module says how that looks.
Only :mod:`fsm.render.dot` turns it into Graphviz's HTML-like labels.
"""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass
from enum import Enum
from typing import Literal

__all__ = [
    "AMBER",
    "BLUE",
    "FAINT",
    "FONT",
    "GREEN",
    "GREY",
    "INK",
    "MINUS",
    "MUTED",
    "OTHER_STIMULUS",
    "RED",
    "RED_SOFT",
    "SHADE",
    "STATE_FILL",
    "STATE_LINE",
    "STIMULUS_COLORS",
    "VIOLATION_COLORS",
    "VISITED",
    "Legend",
    "Tone",
    "esc",
    "short",
    "small",
    "tone_color",
    "violation_color",
    "wrap",
]

FONT = "Helvetica"
INK = "#1a202c"
MUTED = "#5a6678"
FAINT = "#cfd6e0"
GREY = "#a0aec0"
STATE_FILL = "#f4f6fa"
STATE_LINE = "#4a5568"
RED = "#c53030"
RED_SOFT = "#e57f7f"
GREEN = "#2f855a"
AMBER = "#b7791f"
BLUE = "#2b6cb0"
VISITED = "#fff3b0"
#: The background of a trace's violating state.
SHADE = "#fed7d7"
MINUS = "\u2212"


class Tone(Enum):
    """What a piece of a diagram means, as a colour family."""

    ink = "ink"
    muted = "muted"
    grey = "grey"
    alarm = "alarm"
    good = "good"
    change = "change"
    path = "path"


_TONES: dict[Tone, str] = {
    Tone.ink: INK,
    Tone.muted: MUTED,
    Tone.grey: "#8a94a6",
    Tone.alarm: RED,
    Tone.good: GREEN,
    Tone.change: AMBER,
    Tone.path: BLUE,
}


def tone_color(tone: Tone) -> str:
    return _TONES[tone]


#: The fill of a composed-graph world that violates a property, by property id.
VIOLATION_COLORS: dict[str, str] = {
    "no-silent-loss": "#fc8181",
    "no-duplicate-delivery": "#f6ad55",
    "connected-means-acked": "#b794f4",
    "eventual-delivery": "#a0aec0",
    "recovers-unaided": "#90cdf4",
}
#: Fills for properties added later, picked by id.
_SPARE = ("#f687b3", "#68d391", "#faf089", "#4fd1c5")


def violation_color(pid: str) -> str:
    """The fill of a world that violates property ``pid``."""
    if pid in VIOLATION_COLORS:
        return VIOLATION_COLORS[pid]
    return _SPARE[sum(map(ord, pid)) % len(_SPARE)]


#: Edge colours of the composed graph, by group of stimuli.
STIMULUS_COLORS: tuple[tuple[frozenset[str], str, str], ...] = (
    (frozenset({"send"}), "#2b6cb0", "the user sends"),
    (frozenset({"app_background", "app_foreground"}), "#805ad5", "app lifecycle"),
    (
        frozenset({"network_lost", "network_restored", "connection_dropped", "socket_error"}),
        "#c05621",
        "network and socket failures",
    ),
    (
        frozenset({"done", "rest_ok", "rest_error", "rest_lost_response", "ack_timeout"}),
        "#2f855a",
        "server",
    ),
)
OTHER_STIMULUS = ("#718096", "connect, handshake, heartbeat")


# -- text -------------------------------------------------------------------------------
def esc(text: str) -> str:
    """``text`` escaped for a Graphviz HTML-like label."""
    return html.escape(text, quote=False)


def small(text: str, color: str = MUTED, size: int = 9, italic: bool = False) -> str:
    """``text`` as a small HTML-label font run."""
    body = f"<i>{esc(text)}</i>" if italic else esc(text)
    return f'<font point-size="{size}" color="{color}">{body}</font>'


def wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between words."""
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def short(text: str, width: int = 48) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, ending in ``…``."""
    return textwrap.shorten(text, width, placeholder="…")


# -- legends ----------------------------------------------------------------------------
LegendKind = Literal["line", "bold", "dashed", "box", "ring", "dashring", "text", "stripes"]


@dataclass(frozen=True)
class Legend:
    """One legend line: a drawn sample and what it means.

    ``kind`` is ``line``, ``bold``, ``dashed``, ``box`` (a filled square, ``edge``
    its border colour), ``ring`` / ``dashring`` (a border only), ``stripes``
    (``color`` is several colours joined by ``:``) or ``text`` (``sample`` in bold).
    """

    kind: LegendKind
    color: str
    text: str
    sample: str = ""
    edge: str = STATE_LINE
