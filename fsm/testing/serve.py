"""Serve a Python system under test over the driver protocol.

``python -m fsm.testing.serve --adapter reference`` is a driver (see
:mod:`fsm.testing.protocol`) for the reference client, server and proxy; any
adapter ``fsm replay --adapter`` takes works the same way. It exists so one
suite can run in process and through the protocol with identical results, and
as a small, complete example of a driver: read a request line, act, write one
answer line, in order, until ``close``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import BinaryIO

from pydantic import ValidationError

from fsm.analysis.system import Outcome, Stimulus
from fsm.model.design import Design, Environment
from fsm.model.errors import FsmError
from fsm.testing.adapters import StepRefused, SystemUnderTest, load_adapter
from fsm.testing.protocol import (
    FIELDS,
    PROTOCOL,
    Apply,
    Close,
    Closed,
    DriverHello,
    Error,
    Hello,
    ObservationAnswer,
    Refused,
    Reset,
    parse_request,
)
from fsm.testing.suite import message_index

__all__ = ["main", "serve"]

_STIMULI = {s.value: s for s in Stimulus}
_OUTCOMES = {o.value: o for o in Outcome}


def serve(adapter: SystemUnderTest, name: str, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Answer requests from ``stdin`` on ``stdout`` until ``close`` or the end of input."""

    def answer(message: DriverHello | ObservationAnswer | Refused | Error | Closed) -> None:
        stdout.write(message.model_dump_json().encode("utf-8") + b"\n")
        stdout.flush()

    for raw in iter(stdin.readline, b""):
        try:
            request = parse_request(raw)
        except ValidationError as exc:
            sys.stderr.write(f"not a request: {exc.errors()[0]['msg']}\n")
            return 2
        match request:
            case Hello():
                answer(
                    DriverHello(
                        id=request.id,
                        protocol=PROTOCOL,
                        name=name,
                        stimuli=[s.value for s in Stimulus],
                        outcomes=[o.value for o in Outcome],
                        fields=list(FIELDS),
                    )
                )
            case Reset() | Apply():
                try:
                    if isinstance(request, Reset):
                        observed = adapter.reset(
                            Design.model_validate(request.design),
                            Environment.model_validate(request.environment),
                            request.messages,
                        )
                    else:
                        observed = adapter.apply(
                            _STIMULI[request.stimulus],
                            message_index(request.message),
                            None if request.outcome is None else _OUTCOMES[request.outcome],
                        )
                except StepRefused as exc:
                    answer(Refused(id=request.id, reason=str(exc)))
                except KeyError as exc:
                    answer(Error(id=request.id, reason=f"unknown stimulus or outcome {exc}"))
                except (FsmError, ValueError) as exc:
                    answer(Error(id=request.id, reason=f"{type(exc).__name__}: {exc}"))
                else:
                    answer(ObservationAnswer(id=request.id, observation=observed))
            case Close():
                _close(adapter)
                answer(Closed(id=request.id))
                return 0
    _close(adapter)
    return 0


def _close(adapter: SystemUnderTest) -> None:
    close = getattr(adapter, "close", None)
    if callable(close):
        close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fsm.testing.serve",
        description="Serve an fsm adapter over the driver protocol (JSON lines on stdin/stdout).",
    )
    parser.add_argument("--adapter", default="reference", help="an adapter name or module:Class")
    args = parser.parse_args(argv)
    try:
        adapter = load_adapter(args.adapter)
    except FsmError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    return serve(adapter, f"fsm {args.adapter} adapter", sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    raise SystemExit(main())
