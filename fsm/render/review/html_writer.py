"""``review.html``: the review's blocks as one self-contained page, each diagram's
SVG inline, CSS inline, no script."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

from typing_extensions import assert_never

from fsm.analysis.report import verdict_word
from fsm.render.graphviz import svg_of
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

__all__ = ["CSS", "inline_svg", "to_html"]


CSS = """
:root { color-scheme: light; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1a202c;
  margin: 0; background: #f4f6fa; }
main { max-width: 1560px; margin: 0 auto; padding: 24px 32px 64px; background: white; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e2e8f0; }
h3 { font-size: 17px; margin: 28px 0 6px; }
code { font: 13px/1.4 "SFMono-Regular", Menlo, Consolas, monospace; background: #edf2f7;
  padding: 1px 4px; border-radius: 3px; }
a { color: #2b6cb0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border: 1px solid #cbd5e0; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #edf2f7; }
tr.marked td { background: #fed7d7; }
td.yes { background: #e6f4ea; color: #22543d; text-align: center; }
td.no { background: #fed7d7; color: #822727; font-weight: bold; text-align: center; }
td.no a { color: #822727; }
td.na { background: #edf2f7; color: #4a5568; text-align: center; }
figure { margin: 12px 0; }
figure .svg { overflow-x: auto; border: 1px solid #e2e8f0; border-radius: 6px; padding: 6px; }
figure .svg svg { max-width: 100%; height: auto; }
figure .svg.scroll { max-height: 900px; overflow: auto; }
figure .svg.scroll svg { max-width: none; }
figcaption { font-size: 12px; color: #5a6678; }
details { margin: 8px 0; }
summary { cursor: pointer; color: #2b6cb0; }
pre { background: #f7fafc; border: 1px solid #e2e8f0; padding: 8px; overflow-x: auto;
  font-size: 12px; }
.missing { color: #822727; }
"""


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _html_part(part: Inline) -> str:
    match part:
        case str():
            return _h(part)
        case Strong():
            return f"<strong>{_h(part.text)}</strong>"
        case Code():
            return f"<code>{_h(part.text)}</code>"
        case Link():
            return f'<a href="{_h(part.href)}">{_h(part.text)}</a>'
        case YesNo():
            word = verdict_word(part.holds)
            return f'<a href="{_h(part.href)}">{word}</a>' if part.href else word
        case _:
            assert_never(part)


def _html_inline(parts: Text) -> str:
    return "".join(_html_part(part) for part in parts)


_SVG_HEAD = re.compile(r"^.*?(?=<svg\b)", re.S)
_SVG_COMMENT = re.compile(r"<!--.*?-->", re.S)
_SVG_ID = re.compile(r'\bid="([^"]+)"')
_SVG_REF = re.compile(r'(url\(#|xlink:href="#|href="#)([^")]+)')


def inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to inline: no prolog or comments, ids made unique."""
    svg = _SVG_HEAD.sub("", svg, count=1)
    svg = _SVG_COMMENT.sub("", svg)
    svg = _SVG_ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = _SVG_REF.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
    return svg.strip()


def _html_table(block: Grid) -> str:
    head = "".join(f"<th>{_h(h)}</th>" for h in block.headers)
    rows = []
    for n, row in enumerate(block.rows):
        cells = []
        for cell in row:
            verdicts = [p for p in cell if isinstance(p, YesNo)]
            cls = ""
            if verdicts:
                cls = {True: ' class="yes"', False: ' class="no"', None: ' class="na"'}[
                    verdicts[0].holds
                ]
            cells.append(f"<td{cls}>{_html_inline(cell)}</td>")
        marked = ' class="marked"' if n in block.marked else ""
        rows.append(f"<tr{marked}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_figure(block: Figure, root: Path, rendered: bool, counter: list[int]) -> str:
    """The diagram's SVG inline. The page links to no file, so that it still works
    when it is mailed on its own: the caption names the files beside ``REVIEW.md``."""
    d = block.diagram
    kinds = ["dot"] + (["mmd"] if d.mermaid is not None else [])
    svg = svg_of(root, d) if rendered else None
    if svg is None:
        body = '<p class="missing">not rendered: Graphviz was not available</p>'
    else:
        counter[0] += 1
        kinds = ["svg", "png", *kinds]
        cls = "svg scroll" if block.scroll else "svg"
        body = f'<div class="{cls}">{inline_svg(svg, f"g{counter[0]}")}</div>'
    files = f"<code>{_h(d.path)}.{{{','.join(kinds)}}}</code>"
    caption = f"<figcaption>{_h(d.title)} · files beside REVIEW.md: {files}</figcaption>"
    return f"<figure>{body}{caption}</figure>"


def _html_block(block: Block, root: Path, rendered: bool, counter: list[int]) -> str:
    match block:
        case Heading():
            anchor = f' id="{_h(block.anchor)}"' if block.anchor else ""
            return f"<h{block.level}{anchor}>{_h(block.text)}</h{block.level}>"
        case Paragraph():
            return f"<p>{_html_inline(block.parts)}</p>"
        case BulletList():
            items = "".join(f"<li>{_html_inline(item)}</li>" for item in block.items)
            return f"<ul>{items}</ul>"
        case Grid():
            return _html_table(block)
        case Figure():
            return _html_figure(block, root, rendered, counter)
        case MermaidSource():
            return f"<pre>{_h(block.source)}</pre>"
        case Collapsible():
            inner = "\n".join(_html_block(b, root, rendered, counter) for b in block.blocks)
            return f"<details><summary>{_h(block.summary)}</summary>\n{inner}\n</details>"
        case _:
            assert_never(block)


def to_html(blocks: Sequence[Block], title: str, root: Path, rendered: bool = True) -> str:
    """One HTML page of ``blocks`` called ``title``, each diagram's SVG read from ``root``."""
    counter = [0]
    body = "\n".join(_html_block(b, root, rendered, counter) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_h(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
