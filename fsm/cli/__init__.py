"""The ``fsm`` command line.

Exit codes: 0 when everything checked holds, 1 when a property is violated (or
a scenario loses a message, or ``diagrams --check`` finds stale files), 2 on bad
usage or input, with one line on standard error that names the problem.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from fsm.cli import commands, review, testing
from fsm.cli.options import Parser, UsageError
from fsm.model.errors import FsmError

__all__ = ["build_parser", "entry", "main"]

Command = Callable[..., int]


def build_parser() -> Parser:
    """The ``fsm`` parser with every subcommand."""
    parser = Parser(prog="fsm", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    commands.register(sub)
    review.register(sub)
    testing.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        func: Command = args.func
        return func(args, out)
    except UsageError as exc:
        print(f"{exc}  (see --help)", file=sys.stderr)
        return 2
    except FsmError as exc:
        print(f"fsm: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # pragma: no cover - e.g. `fsm check | head`
        return 0
    except KeyboardInterrupt:  # pragma: no cover
        return 130


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
