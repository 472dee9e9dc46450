"""The design review: one document, rendered to Markdown and to HTML.

``fsm review`` checks every built-in design (and any design files) in both
built-in environments, renders the diagrams of :mod:`fsm.render.catalog`, and
writes a design review twice from one document: ``REVIEW.md`` (GitHub renders
its tables, images and Mermaid blocks) and ``review.html`` (one self-contained
page, SVGs and CSS inline, no script).

* :mod:`.data`: what the review shows, computed once (:func:`collect`);
* :mod:`.document`: the blocks a document is made of;
* :mod:`.sections`: the sections, declared once in :data:`SECTIONS`, and
  :func:`document`; :mod:`.story` and :mod:`.parts` hold some of their builders;
* :mod:`.markdown_writer`, :mod:`.html_writer`: the two writers.
"""

from __future__ import annotations

from pathlib import Path

from fsm.render.review.data import DEFAULT_OUT, ReviewData, collect, review_designs
from fsm.render.review.html_writer import to_html
from fsm.render.review.markdown_writer import md_text, to_markdown
from fsm.render.review.sections import SECTIONS, TITLE, Section, document

__all__ = [
    "DEFAULT_OUT",
    "SECTIONS",
    "TITLE",
    "ReviewData",
    "Section",
    "collect",
    "document",
    "html_page",
    "markdown",
    "md_text",
    "review_designs",
]


def markdown(data: ReviewData, rendered: bool = True) -> str:
    """``REVIEW.md``: the review for GitHub, image links relative to its directory."""
    return to_markdown(document(data), rendered)


def html_page(data: ReviewData, root: Path, rendered: bool = True) -> str:
    """``review.html``: the same review as one page, each SVG read from ``root``."""
    return to_html(document(data), TITLE, root, rendered)
