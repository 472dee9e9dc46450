"""The set of diagrams: what is drawn for a list of designs, and where it goes.

For each design: its connection and message machines (DOT and Mermaid, from
one graph), a counterexample for each violated property in each built-in
environment, and the reachable composed graph for one message. Between
consecutive built-in designs (and from each other design to the built-in it
differs least from): a diff of each machine. :func:`build` lists them in a
stable order; every source is byte-stable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

from fsm.analysis.checker import CheckResult, check
from fsm.model.design import DESIGNS, ENVIRONMENTS, Design
from fsm.model.errors import SpecError
from fsm.render import dot, mermaid
from fsm.render.composed import COMPOSED_ENVIRONMENT, Composed, composed, composed_dot
from fsm.render.counterexample import counterexample_dot
from fsm.render.diff import diff_dot
from fsm.render.machine import SPECS, machine_graph

__all__ = [
    "DIFF_DIR",
    "MESSAGES",
    "RESERVED",
    "Diagram",
    "Kind",
    "build",
    "check_names",
    "check_spec",
    "complete_dirs",
    "composed_path",
    "counterexample_path",
    "diff_pairs",
    "diff_path",
    "machine_path",
    "run_checks",
    "run_composed",
]

#: Messages the checker explores for the counterexamples and the review.
MESSAGES = 2
#: Sub-directory of the design diffs; no design may take its name (:func:`check_names`).
DIFF_DIR = "diff"
#: Names at the top of an output directory that a design's folder must not take.
RESERVED = (DIFF_DIR, "REVIEW.md", "review.html")

Kind = Literal["machine", "counterexample", "composed", "diff"]


@dataclass(frozen=True)
class Diagram:
    """One diagram: ``path`` is its file name without extension, relative to the output."""

    path: str
    kind: Kind
    title: str
    dot: str
    mermaid: str | None = None

    def sources(self) -> dict[str, str]:
        files = {f"{self.path}.dot": self.dot}
        if self.mermaid is not None:
            files[f"{self.path}.mmd"] = self.mermaid
        return files


def run_checks(designs: Sequence[Design]) -> dict[tuple[str, str], CheckResult]:
    """Check every design in every built-in environment."""
    return {
        (d.name, env): check(d, ENVIRONMENTS[env], MESSAGES)
        for d in designs
        for env in ENVIRONMENTS
    }


def run_composed(designs: Sequence[Design]) -> dict[str, Composed]:
    """Each design's reachable one-message graph in :data:`COMPOSED_ENVIRONMENT`."""
    return {d.name: composed(d) for d in designs}


def check_names(designs: Sequence[Design]) -> None:
    """Refuse designs whose names would overwrite another design's diagrams."""
    seen: dict[str, Design] = {}
    for d in designs:
        if d.name in RESERVED:
            what = "the design diffs" if d.name == DIFF_DIR else "the review page"
            raise SpecError(f"design name {d.name!r} is reserved for {what}; rename it")
        if d.name in DESIGNS and DESIGNS[d.name] != d:
            raise SpecError(f"design name {d.name!r} is a built-in design's; rename it")
        if d.name in seen and seen[d.name] != d:
            raise SpecError(f"two different designs are named {d.name!r}; rename one")
        seen[d.name] = d


def check_spec(path: str, design: Design) -> Design:
    """``design``, read from the file ``path``, if it may join the built-in designs
    (:func:`check_names`); else a :class:`SpecError` naming the file."""
    try:
        check_names([*DESIGNS.values(), design])
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
    return design


def diff_pairs(designs: Sequence[Design]) -> list[tuple[Design, Design]]:
    """Consecutive built-in designs among ``designs``, and each other design against
    the design it differs least from among the built-in ones and the other designs
    listed before it (those first on a tie): ``socketio-4.8`` after ``socketio-4.7``
    is drawn against it."""
    builtins = list(DESIGNS.values())
    names = {d.name for d in designs}
    pairs = [(a, b) for a, b in pairwise(builtins) if a.name in names or b.name in names]
    earlier: list[Design] = []
    for d in designs:
        if d.name in DESIGNS:
            continue
        features = d.features()
        base = min(
            [*earlier, *builtins],
            key=lambda b: sum(b.features()[k] != v for k, v in features.items()),
        )
        pairs.append((base, d))
        earlier.append(d)
    return pairs


def machine_path(design: str, machine: str) -> str:
    return f"{design}/{machine}"


def counterexample_path(design: str, environment: str, prop: str) -> str:
    return f"{design}/counterexample-{environment}-{prop}"


def composed_path(design: str) -> str:
    return f"{design}/composed-{COMPOSED_ENVIRONMENT}"


def diff_path(machine: str, old: str, new: str) -> str:
    return f"{DIFF_DIR}/{machine}-{old}-to-{new}"


def foreign_dirs(out: Path) -> list[Path]:
    """Sub-folders of ``out`` holding a design's diagrams (a ``connection.dot``) for no
    built-in design: what ``fsm diagrams --spec FILE --out`` the committed folder left."""
    found = []
    try:
        entries = sorted(out.iterdir())
    except OSError:
        return []
    for path in entries:
        known = path.name in DESIGNS or path.name == DIFF_DIR
        if not known and path.is_dir() and (path / "connection.dot").is_file():
            found.append(path)
    return found


def complete_dirs(designs: Sequence[Design]) -> list[str]:
    """Sub-directories whose every diagram ``build(designs)`` produces."""
    dirs = [d.name for d in designs]
    if all(name in {d.name for d in designs} for name in DESIGNS):
        dirs.append(DIFF_DIR)
    return sorted(dirs)


def build(
    designs: Sequence[Design],
    results: Mapping[tuple[str, str], CheckResult],
    graphs: Mapping[str, Composed] | None = None,
) -> list[Diagram]:
    """Every diagram for ``designs``, in a stable order.

    ``results`` come from :func:`run_checks`; ``graphs`` from :func:`run_composed`
    (computed here when not given).
    """
    graphs = run_composed(designs) if graphs is None else graphs
    out: list[Diagram] = []
    for d in designs:
        for spec in SPECS:
            graph = machine_graph(spec, d)
            out.append(
                Diagram(
                    machine_path(d.name, spec.name),
                    "machine",
                    f"{d.name}: {spec.name} machine",
                    dot.write(graph),
                    mermaid.write(graph),
                )
            )
        for env in ENVIRONMENTS:
            result = results[(d.name, env)]
            for verdict in result.verdicts:
                if not verdict.violated or not verdict.trace:
                    continue
                out.append(
                    Diagram(
                        counterexample_path(d.name, env, verdict.id),
                        "counterexample",
                        f"{d.name} in {env}: {verdict.id}",
                        counterexample_dot(d, result, verdict),
                    )
                )
        out.append(
            Diagram(
                composed_path(d.name),
                "composed",
                f"{d.name}: reachable states with one message ({COMPOSED_ENVIRONMENT})",
                composed_dot(graphs[d.name]),
            )
        )
    for old, new in diff_pairs(designs):
        for spec in SPECS:
            out.append(
                Diagram(
                    diff_path(spec.name, old.name, new.name),
                    "diff",
                    f"{spec.name} machine: {old.name} → {new.name}",
                    diff_dot(spec, old, new),
                )
            )
    return out
