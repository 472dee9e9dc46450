"""The review as a document: a list of blocks made of inline runs, which the
Markdown writer (:mod:`.markdown_writer`) and the HTML writer (:mod:`.html_writer`)
both render.

Inline runs are plain text, :class:`Strong`, :class:`Code`, :class:`Link` and
:class:`YesNo` (a property's verdict in a cell); blocks are :class:`Heading`,
:class:`Paragraph`, :class:`BulletList`, :class:`Grid` (a table of cells),
:class:`Figure` (a diagram), :class:`MermaidSource` and :class:`Collapsible` (a
summary that opens on its blocks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fsm.render.catalog import Diagram

__all__ = [
    "Block",
    "BulletList",
    "Code",
    "Collapsible",
    "Figure",
    "Grid",
    "Heading",
    "Inline",
    "Link",
    "MermaidSource",
    "Paragraph",
    "Strong",
    "Text",
    "YesNo",
]


@dataclass(frozen=True)
class Strong:
    """Bold text."""

    text: str


@dataclass(frozen=True)
class Code:
    """Code (an identifier)."""

    text: str


@dataclass(frozen=True)
class Link:
    text: str
    href: str


@dataclass(frozen=True)
class YesNo:
    """yes / NO / n/a (the property says nothing about the design), optionally
    linking to the counterexample."""

    holds: bool | None
    href: str = ""


Inline = str | Strong | Code | Link | YesNo
Text = Sequence[Inline]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass(frozen=True)
class Paragraph:
    parts: Text


@dataclass(frozen=True)
class BulletList:
    items: Sequence[Text]


@dataclass(frozen=True)
class Grid:
    headers: Sequence[str]
    rows: Sequence[Sequence[Text]]
    #: Row indexes to shade (the violating state of a trace).
    marked: frozenset[int] = frozenset()


@dataclass(frozen=True)
class Figure:
    diagram: Diagram
    #: Large graphs scroll in the HTML page instead of shrinking to its width.
    scroll: bool = False


@dataclass(frozen=True)
class MermaidSource:
    source: str


@dataclass(frozen=True)
class Collapsible:
    summary: str
    blocks: Sequence[Block] = field(default_factory=tuple)


Block = Heading | Paragraph | BulletList | Grid | Figure | MermaidSource | Collapsible
