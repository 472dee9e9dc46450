"""The ``diagrams`` and ``review`` commands: write what :mod:`fsm.render` draws."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from fsm.cli.options import Parser, add_design_options, nonempty, selected_designs
from fsm.cli.output import shown
from fsm.render import catalog, graphviz, review, sources
from fsm.staging import Staging

__all__ = ["cmd_diagrams", "cmd_review", "register"]


def _add_out_option(parser: argparse.ArgumentParser) -> None:
    """``--out DIR``, where the diagrams and the review are written."""
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=nonempty,
        default=review.DEFAULT_OUT,
        help=f"output directory (default {review.DEFAULT_OUT})",
    )


def register(sub: argparse._SubParsersAction[Parser], parents: Sequence[Parser] = ()) -> None:
    """Add the ``diagrams`` and ``review`` subcommands to ``fsm``'s parser."""
    p = sub.add_parser(
        "diagrams",
        parents=list(parents),
        help="draw the machines, counterexamples and design diffs",
    )
    add_design_options(p)
    _add_out_option(p)
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming each .dot/.mmd file that is stale or missing",
    )
    p.set_defaults(func=cmd_diagrams)

    p = sub.add_parser(
        "review", parents=list(parents), help="check every design and write the design review"
    )
    _add_out_option(p)
    p.add_argument(
        "--spec",
        metavar="FILE",
        type=nonempty,
        nargs="+",
        action="extend",
        default=[],
        help="design files (.toml or .json) to review beside the built-in designs",
    )
    p.set_defaults(func=cmd_review)


def cmd_diagrams(args: argparse.Namespace, out: TextIO) -> int:
    designs = selected_designs(args)
    catalog.check_names(designs)
    diagrams = catalog.build(designs, catalog.run_checks(designs), catalog.run_composed(designs))
    target = Path(args.out)
    if args.check:
        problems = sources.compare(diagrams, target, catalog.complete_dirs(designs))
        for line in problems:
            out.write(shown(line) + "\n")
        if problems:
            out.write(
                f"{len(problems)} diagram source(s) differ from the model; "
                f"run `fsm diagrams --out {shown(target)}` to update them\n"
            )
            return 1
        count = sum(len(d.sources()) for d in diagrams)
        out.write(f"{count} diagram sources in {shown(target)} are up to date\n")
        return 0
    with Staging(target) as staging:
        staging.write_all(sources.sources(diagrams))
        graphviz.render(diagrams, staging.root)
        written = staging.commit(prune=catalog.complete_dirs(designs))
    out.write(f"{len(written)} files written to {shown(target)}\n")
    return 0


def cmd_review(args: argparse.Namespace, out: TextIO) -> int:
    designs = review.review_designs(args.spec)
    target = Path(args.out)
    data = review.collect(designs)
    with Staging(target) as staging:
        staging.write_all(sources.sources(data.diagrams))
        rendered = graphviz.render(data.diagrams, staging.root)
        staging.write("REVIEW.md", review.markdown(data, rendered))
        staging.write("review.html", review.html_page(data, staging.root, rendered))
        staging.commit(prune=catalog.complete_dirs(designs), last=("REVIEW.md", "review.html"))
    out.write(
        f"review written to {shown(target / 'REVIEW.md')} and {shown(target / 'review.html')}\n"
    )
    return 0
