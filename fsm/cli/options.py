"""Options and argument types shared by the commands."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import NoReturn

from fsm.model.design import DEFAULT_ENVIRONMENT, DESIGNS, Design, get_design, load_design
from fsm.model.errors import UsageError
from fsm.render.catalog import check_spec

__all__ = [
    "MAX_MESSAGES",
    "Parser",
    "add_design_options",
    "add_environment_option",
    "add_max_states_option",
    "add_messages_option",
    "change_verb",
    "design_or_file",
    "messages_count",
    "nonempty",
    "positive",
    "positive_seconds",
    "selected_designs",
    "spec_design",
]

MAX_MESSAGES = 8


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def messages_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 1 <= n <= MAX_MESSAGES:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_MESSAGES}, got {n}")
    return n


def positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 3600):
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds: {text}")
    return value


def nonempty(text: str) -> str:
    """An argument that may not be the empty string (``--spec ''`` is a mistake, not
    "every design")."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def add_design_options(
    parser: argparse.ArgumentParser, *, required: bool = False, what: str | None = None
) -> None:
    """``--design NAME`` / ``--spec FILE``, shared by every command that takes a design;
    ``what`` says what the design is for, in the help."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument(
        "--design",
        metavar="NAME",
        type=nonempty,
        help=f"a built-in design {what}" if what else "a built-in design (see: fsm designs)",
    )
    group.add_argument(
        "--spec",
        metavar="FILE",
        type=nonempty,
        help=f"a design file (.toml or .json) {what}" if what else "a design file (.toml or .json)",
    )


def add_max_states_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-states",
        metavar="K",
        type=positive,
        default=None,
        help="stop with an error when more states than this are reachable",
    )


def add_environment_option(
    parser: argparse.ArgumentParser, default: str = DEFAULT_ENVIRONMENT
) -> None:
    """``--environment NAME``, shared by every command that takes an environment."""
    parser.add_argument(
        "--environment",
        metavar="NAME",
        type=nonempty,
        default=default,
        help=f"what the world may do to sockets (default {default}; see: fsm environments)",
    )


def add_messages_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--messages",
        metavar="N",
        type=messages_count,
        default=2,
        help=f"messages the user may send (1-{MAX_MESSAGES}, default 2)",
    )


def spec_design(path: str) -> Design:
    """The design in the file ``path``, refused on the same grounds by every command:
    a name that is a built-in design's (unless it is that design) or a reserved one."""
    return check_spec(path, load_design(path))


def design_or_file(text: str) -> Design:
    """A built-in design's name, or a design file (a path that exists or ends in
    ``.toml``/``.json``)."""
    if text in DESIGNS:
        return DESIGNS[text]
    if Path(text).suffix.lower() in (".toml", ".json") or Path(text).exists():
        return spec_design(text)
    return get_design(text)


def change_verb(design: Design, baseline: Design) -> str:
    """``set back`` when both are built-in designs and ``baseline`` comes first (its
    values are ones ``design`` moved away from), ``changed`` otherwise."""
    order = [d for d in DESIGNS.values() if d in (design, baseline)]
    builtin = DESIGNS.get(design.name) == design and DESIGNS.get(baseline.name) == baseline
    return "set back" if builtin and order.index(baseline) < order.index(design) else "changed"


def selected_designs(args: argparse.Namespace) -> list[Design]:
    """The designs named by ``--design``/``--spec``; every built-in one if neither."""
    if args.design is not None:
        return [get_design(args.design)]
    if args.spec is not None:
        return [spec_design(args.spec)]
    return list(DESIGNS.values())
