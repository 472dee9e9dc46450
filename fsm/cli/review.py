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


def _add_out_option(parser: argparse.ArgumentParser, spec_default: bool = False) -> None:
    """``--out DIR``, where the diagrams and the review are written."""
    default = f"{review.DEFAULT_OUT}"
    if spec_default:
        default += f"; with --spec, {review.DEFAULT_OUT}-NAME for the design called NAME"
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=nonempty,
        default=None if spec_default else review.DEFAULT_OUT,
        help=f"output directory (default {default})",
    )


def register(sub: argparse._SubParsersAction[Parser], parents: Sequence[Parser] = ()) -> None:
    """Add the ``diagrams`` and ``review`` subcommands to ``fsm``'s parser."""
    p = sub.add_parser(
        "diagrams",
        parents=list(parents),
        help="draw the machines, counterexamples and design diffs",
    )
    add_design_options(p)
    _add_out_option(p, spec_default=True)
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
    if args.out is not None:
        target = Path(args.out)
    elif args.spec is not None:  # a design file's diagrams stay out of the committed folder
        target = Path(f"{review.DEFAULT_OUT}-{designs[0].name}")
    else:
        target = Path(review.DEFAULT_OUT)
    if args.check:
        problems = sources.compare(diagrams, target, catalog.complete_dirs(designs))
        every = args.design is None and args.spec is None
        foreign = catalog.foreign_dirs(target) if every else []
        for line in problems:
            out.write(shown(line) + "\n")
        for path in foreign:
            out.write(f"foreign: {shown(path)} (the diagrams of no built-in design)\n")
        if problems:
            out.write(
                f"{len(problems)} diagram source(s) differ from the model; "
                f"run `fsm diagrams --out {shown(target)}` to update them\n"
            )
        if foreign:
            out.write(
                f"{len(foreign)} folder(s) hold diagrams of no built-in design; remove them "
                f"(rm -r {' '.join(shown(p) for p in foreign)}) or keep a design file's "
                f"diagrams elsewhere (fsm diagrams --spec FILE writes {review.DEFAULT_OUT}-NAME)\n"
            )
        if problems or foreign:
            return 1
        count = sum(len(d.sources()) for d in diagrams)
        out.write(f"{count} diagram sources in {shown(target)} are up to date\n")
        return 0
    with Staging(target) as staging:
        staging.write_all(sources.sources(diagrams))
        graphviz.render(diagrams, staging.root)
        written = staging.commit(prune=catalog.complete_dirs(designs), derived=graphviz.PICTURES)
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
        staging.commit(
            prune=catalog.complete_dirs(designs),
            last=("REVIEW.md", "review.html"),
            derived=graphviz.PICTURES,
        )
    out.write(
        f"review written to {shown(target / 'REVIEW.md')} and {shown(target / 'review.html')}\n"
    )
    return 0
