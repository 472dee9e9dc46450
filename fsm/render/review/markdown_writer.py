"""``REVIEW.md``: the review's blocks as GitHub Markdown, image links relative to
its folder."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from typing_extensions import assert_never

from fsm.analysis.report import verdict_word
from fsm.render.review.document import (
    Block,
    BulletList,
    Code,
    Collapsible,
    Figure,
    Grid,
    Heading,
    Inline,
    Link,
    MermaidSource,
    Paragraph,
    Strong,
    Text,
    YesNo,
)

__all__ = ["md_text", "to_markdown"]


_MD_SPECIAL = re.compile(r"([\\`*\[\]<|])|(?<!\w)_|_(?!\w)")


def md_text(text: str) -> str:
    """``text`` with Markdown's markup characters escaped (an underscore inside a
    word is no markup on GitHub, so ``sent_ws`` stays as it is)."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def _md_part(part: Inline) -> str:
    match part:
        case str():
            return md_text(part)
        case Strong():
            return f"**{md_text(part.text)}**" if part.text else ""
        case Code():
            return f"`{part.text}`"
        case Link():
            return f"[{md_text(part.text)}]({part.href})"
        case YesNo():
            word = "**NO**" if part.holds is False else verdict_word(part.holds)
            return f"[{word}]({part.href})" if part.href else word
        case _:
            assert_never(part)


def _md_inline(parts: Text) -> str:
    return "".join(_md_part(part) for part in parts)


def _md_table(block: Grid) -> str:
    lines = [
        "| " + " | ".join(md_text(h) for h in block.headers) + " |",
        "|" + "---|" * len(block.headers),
    ]
    for n, row in enumerate(block.rows):
        cells = [_md_inline(cell) for cell in row]
        if n in block.marked:
            cells = [f"**{c}**" if c and not c.startswith("**") else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _md_figure(block: Figure, rendered: bool) -> str:
    path = block.diagram.path
    links = [f"[DOT]({path}.dot)"]
    if block.diagram.mermaid is not None:
        links.append(f"[Mermaid]({path}.mmd)")
    if not rendered:
        return f"_{md_text(block.diagram.title)}: not rendered; " + " · ".join(links) + "_"
    image = f"[![{md_text(block.diagram.title)}]({path}.svg)]({path}.svg)"
    return image + "\n\n" + " · ".join([f"[SVG]({path}.svg)", f"[PNG]({path}.png)", *links])


def _md_block(block: Block, rendered: bool) -> list[str]:
    match block:
        case Heading():
            anchor = f'<a id="{block.anchor}"></a>\n\n' if block.anchor else ""
            return [f"{anchor}{'#' * block.level} {md_text(block.text)}"]
        case Paragraph():
            return [_md_inline(block.parts)]
        case BulletList():
            return ["\n".join(f"- {_md_inline(item)}" for item in block.items)]
        case Grid():
            return [_md_table(block)]
        case Figure():
            return [_md_figure(block, rendered)]
        case MermaidSource():
            return ["```mermaid\n" + block.source.rstrip("\n") + "\n```"]
        case Collapsible():
            inner = [part for b in block.blocks for part in _md_block(b, rendered)]
            summary = f"<details>\n<summary>{html.escape(block.summary)}</summary>"
            return [summary, *inner, "</details>"]
        case _:
            assert_never(block)


def to_markdown(blocks: Sequence[Block], rendered: bool = True) -> str:
    """The Markdown of ``blocks``; without ``rendered`` diagrams, each figure says so and
    links only to its sources."""
    parts = [part for block in blocks for part in _md_block(block, rendered)]
    return "\n\n".join(parts) + "\n"
