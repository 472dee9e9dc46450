"""The fsm command line.

Exit codes: 0 when everything checked holds, 1 when a property is violated (or
a scenario loses a message, or diagrams --check finds stale files), 2 on bad
usage or input, with one line on standard error that names the problem, 70 on an
internal error (one line; the traceback with --debug), 128 + the signal's
number when interrupted (130 for Ctrl-C).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn, TextIO, cast

from fsm.cli import commands, review, testing
from fsm.cli.options import Parser
from fsm.cli.output import Output, shown, silence_stdout
from fsm.model.errors import FsmError, StateLimitExceeded, UsageError

__all__ = ["INTERNAL_ERROR", "Interrupted", "build_parser", "entry", "main", "version"]

Command = Callable[..., int]

#: The exit code of an error that is a bug in ``fsm``, not in its input (EX_SOFTWARE).
INTERNAL_ERROR = 70


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) turned into an orderly exit: children
    are stopped and staging folders removed as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def version() -> str:
    """The installed package's version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("fsm")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "unknown"


def build_parser() -> Parser:
    """The ``fsm`` parser with every subcommand."""
    common = Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the traceback of an internal error",
    )
    parser = Parser(
        prog="fsm",
        description="Check a chat client's transport designs as finite-state machines, "
        "draw them, and write a design review.",
        epilog=(__doc__ or "").split("\n\n", 1)[-1].strip(),
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    commands.register(sub, [common])
    review.register(sub, [common])
    testing.register(sub, [common])
    return parser


def _in_flags(exc: FsmError) -> str:
    """``exc``'s message, in terms of the command line's flags where the library's
    words name a bound that a flag sets."""
    if isinstance(exc, StateLimitExceeded):
        return f"state space exceeds --max-states {exc.limit}; raise the limit or lower --messages"
    return str(exc)


def _error(message: str) -> None:
    """Write ``message`` to standard error as exactly one escaped line."""
    sys.stderr.write(shown(message) + "\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``fsm`` with ``argv`` (the process's arguments when None), writing to ``out``.

    Run as the program (``argv`` None, in the main thread), SIGTERM and SIGHUP
    are handled like Ctrl-C.
    """
    if argv is None and threading.current_thread() is threading.main_thread():
        for name in ("SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is not None:
                signal.signal(signum, _interrupt)
    stream = Output(sys.stdout if out is None else out)
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else list(argv)):
        parser.print_help(cast(TextIO, stream))
        stream.flush()
        return 0
    debug = False
    try:
        args = parser.parse_args(argv)
        debug = bool(getattr(args, "debug", False))
        func: Command = args.func
        code = func(args, cast(TextIO, stream))
        stream.flush()
        return code
    except UsageError as exc:
        _error(f"{exc}  (see --help)")
        return 2
    except FsmError as exc:
        _error(f"fsm: error: {_in_flags(exc)}")
        return 2
    except BrokenPipeError:  # argparse's --help into a closed pipe
        silence_stdout()
        return 0
    except Interrupted as exc:
        return 128 + exc.signum
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        _error("fsm: error: out of memory; lower --messages or give --max-states")
        return INTERNAL_ERROR
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        _error(f"fsm: internal error: {type(exc).__name__}: {exc}{hint}")
        return INTERNAL_ERROR


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise Interrupted(signum)


def entry() -> NoReturn:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    entry()
