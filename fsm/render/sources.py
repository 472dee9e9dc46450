"""The diagrams' text sources (``.dot``, ``.mmd``): all of them by path, and the
``fsm diagrams --check`` comparison with those on disk."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fsm.render.catalog import Diagram

__all__ = ["SOURCE_SUFFIXES", "compare", "sources"]


def sources(diagrams: Sequence[Diagram]) -> dict[str, str]:
    """Every source file of ``diagrams``: its path under the output -> its text."""
    found: dict[str, str] = {}
    for d in diagrams:
        found.update(d.sources())
    return found


SOURCE_SUFFIXES = (".dot", ".mmd")


def compare(diagrams: Sequence[Diagram], out: Path, dirs: Sequence[str] = ()) -> list[str]:
    """Problems of the ``.dot``/``.mmd`` files in ``out``: ``stale: ...``, ``missing: ...``,
    and ``obsolete: ...`` for sources in ``dirs`` that nothing generates any more."""
    expected = sources(diagrams)
    problems: list[str] = []
    for rel, text in sorted(expected.items()):
        path = out / rel
        try:
            current = path.read_bytes()
        except OSError:
            problems.append(f"missing: {path}")
            continue
        if current != text.encode("utf-8"):
            problems.append(f"stale: {path}")
    for sub in dirs:
        for path in sorted((out / sub).glob("*")):
            rel = f"{sub}/{path.name}"
            if path.suffix in SOURCE_SUFFIXES and rel not in expected:
                problems.append(f"obsolete: {path}")
    return problems
