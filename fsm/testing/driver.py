"""A system under test in another process: :class:`DriverAdapter` speaks the driver protocol.

``fsm replay SUITE --driver 'node drivers/socketio/driver.js --client 4.8'``
starts the command as a child process and replays the suite through it, one
JSON line per request and per answer (:mod:`fsm.testing.protocol`).

What can go wrong with a child is a failure of the system under test, never
a pass and never an error of fsm: the driver exits or crashes, writes a line
that is not a protocol answer, answers out of order, answers ``error``, or
does not answer within the deadline. Each raises :class:`DriverFailure`
(with the end of the driver's standard error); the replay reports it at the
case and step where it happened, and the next case starts a fresh driver.

The child runs in a process group of its own, so the terminal's Ctrl-C reaches
only fsm, which then ends the whole group; :meth:`DriverAdapter.close` (also
the context manager's exit) always reaps it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
from collections import deque
from collections.abc import Sequence
from types import TracebackType
from typing import IO

from pydantic import ValidationError

from fsm.analysis.report import message_name
from fsm.analysis.system import Outcome, Stimulus
from fsm.model.design import Design, Environment
from fsm.model.errors import DriverFailure
from fsm.testing.adapters import StepRefused
from fsm.testing.observation import MessageObservation, Observation
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
    parse_answer,
)
from fsm.testing.suite import Case

__all__ = ["DriverAdapter", "DriverFailure", "neutral"]  # DriverFailure from fsm.model.errors

#: The longest answer line a driver may write (an observation of 8 messages is ~500 bytes).
MAX_LINE = 1 << 20
#: How much of the driver's standard error a report keeps (its last lines).
STDERR_LINES = 40


class DriverAdapter:
    """A :class:`~fsm.testing.adapters.SystemUnderTest` in a child process.

    ``command`` is the program and its arguments (no shell). ``deadline`` bounds
    every answer in seconds; ``start_deadline`` bounds the ``hello`` of a new
    child, which may have to start a server first.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        deadline: float = 10.0,
        start_deadline: float = 30.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if not command:
            raise ValueError("a driver needs a command")
        if not deadline > 0 or not start_deadline > 0:
            raise ValueError("deadlines must be positive")
        self.command = list(command)
        self.deadline = deadline
        self.start_deadline = start_deadline
        self._env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._next_id = 0
        self._messages = 0
        self.hello: DriverHello | None = None
        self.name = "driver " + " ".join(self.command)

    # -- what the driver supports ------------------------------------------------------
    @property
    def observes(self) -> frozenset[str]:
        """The observation fields the driver reports (all of them until it said hello)."""
        if self.hello is None:
            return frozenset(FIELDS)
        return frozenset(self.hello.fields) & frozenset(FIELDS)

    def start(self) -> DriverHello:
        """Start the child (if it is not running) and exchange ``hello``."""
        if self._proc is not None and self._proc.poll() is None and self.hello is not None:
            return self.hello
        self._stop()
        try:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=self._env,
            )
        except OSError as exc:
            raise DriverFailure(f"cannot start the driver: {exc.strerror or exc}") from None
        self._lines = queue.Queue()
        self._stderr.clear()
        self._next_id = 0
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        threading.Thread(target=self._read_stdout, args=(self._proc.stdout,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(self._proc.stderr,), daemon=True).start()
        answer = self._request(Hello(id=self._take_id(), protocol=PROTOCOL), self.start_deadline)
        if not isinstance(answer, DriverHello):
            raise self._fail(f"answered hello with {answer.type}")
        if answer.protocol != PROTOCOL:
            raise self._fail(f"speaks protocol {answer.protocol}; fsm speaks {PROTOCOL}")
        self.hello = answer
        return answer

    def unsupported(self, case: Case) -> str | None:
        """Why the driver cannot run ``case`` (a stimulus or outcome it lacks), or ``None``."""
        hello = self.start()
        stimuli, outcomes = set(hello.stimuli), set(hello.outcomes)
        for step in case.steps:
            if step.stimulus.value not in stimuli:
                return f"needs {step.stimulus.value}, which the driver does not support"
            if step.outcome is not None and step.outcome.value not in outcomes:
                return f"needs the outcome {step.outcome.value}, which the driver does not support"
        return None

    # -- the SystemUnderTest protocol ------------------------------------------------------
    def reset(self, design: Design, environment: Environment, messages: int) -> Observation:
        self.start()
        self._messages = messages
        request = Reset(
            id=self._take_id(),
            design=design.model_dump(mode="json"),
            environment=environment.model_dump(mode="json"),
            messages=messages,
        )
        return self._observation(self._request(request, self.deadline), "reset")

    def apply(
        self, stimulus: Stimulus, message: int | None, outcome: Outcome | None
    ) -> Observation:
        if self._proc is None or self.hello is None:
            raise DriverFailure("apply() before reset()")
        request = Apply(
            id=self._take_id(),
            stimulus=stimulus.value,
            message=None if message is None else message_name(message),
            outcome=None if outcome is None else outcome.value,
        )
        return self._observation(self._request(request, self.deadline), "apply")

    def close(self) -> None:
        """Ask the driver to close, then end its process group whatever it does."""
        proc = self._proc
        if proc is not None and proc.poll() is None and self.hello is not None:
            try:
                answer = self._request(Close(id=self._take_id()), min(self.deadline, 5.0))
                if isinstance(answer, Closed):
                    proc.wait(timeout=min(self.deadline, 5.0))
            except (DriverFailure, subprocess.TimeoutExpired):
                pass
        self._stop()

    def __enter__(self) -> DriverAdapter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the wire ---------------------------------------------------------------------------
    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _observation(
        self, answer: DriverHello | ObservationAnswer | Refused | Error | Closed, what: str
    ) -> Observation:
        if isinstance(answer, Refused):
            raise StepRefused(answer.reason)
        if isinstance(answer, Error):
            raise self._fail(f"reported an error: {answer.reason}")
        if not isinstance(answer, ObservationAnswer):
            raise self._fail(f"answered {what} with {answer.type}")
        observation = answer.observation
        if len(observation.messages) != self._messages:
            raise self._fail(
                f"observed {len(observation.messages)} messages; the suite has {self._messages}"
            )
        return neutral(observation, self.observes)

    def _request(
        self, request: Hello | Reset | Apply | Close, deadline: float
    ) -> DriverHello | ObservationAnswer | Refused | Error | Closed:
        proc = self._proc
        assert proc is not None
        assert proc.stdin is not None
        line = request.model_dump_json(exclude_none=False) + "\n"
        try:
            proc.stdin.write(line.encode("utf-8"))
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._fail(f"stopped reading before {request.type}") from None
        try:
            raw = self._lines.get(timeout=deadline)
        except queue.Empty:
            raise self._fail(f"did not answer {request.type} within {deadline:g} s") from None
        except BaseException:
            self._stop()  # interrupted (Ctrl-C): end the driver now, without asking it
            raise
        if raw is None:
            try:
                code = proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                code = None
            how = "closed its output" if code is None else _exit_status(code)
            raise self._fail(f"{how} before answering {request.type}")
        try:
            answer = parse_answer(raw)
        except ValidationError as exc:
            raise self._fail(f"answered {request.type} with {_what_is_wrong(raw, exc)}") from None
        if answer.id != request.id:
            raise self._fail(f"answered request {answer.id} when {request.id} was due")
        return answer

    def _fail(self, what: str) -> DriverFailure:
        stderr = self._stderr_text()
        self._stop()
        return DriverFailure(f"the driver {what}", stderr)

    def _stderr_text(self) -> str:
        return "\n".join(self._stderr)

    def _read_stdout(self, stream: IO[bytes]) -> None:
        lines = self._lines
        try:
            while True:
                raw = stream.readline(MAX_LINE + 1)
                if not raw:
                    break
                if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                    lines.put(b"<a line longer than 1 MiB>")
                    break
                lines.put(raw)
        except (OSError, ValueError):
            pass
        lines.put(None)

    def _read_stderr(self, stream: IO[bytes]) -> None:
        buffer = self._stderr
        try:
            for raw in iter(lambda: stream.readline(4096), b""):
                buffer.append(raw.decode("utf-8", "replace").rstrip("\n"))
        except (OSError, ValueError):
            pass

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        self.hello = None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        else:
            _signal_group(proc, signal.SIGKILL)  # grandchildren it left behind
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def neutral(observation: Observation, fields: frozenset[str]) -> Observation:
    """``observation`` with the fields not in ``fields`` set to one value, so that two
    observations compare on the observed fields only."""
    if fields >= frozenset(FIELDS):
        return observation
    return Observation(
        connected=observation.connected if "connected" in fields else False,
        messages=tuple(
            MessageObservation(
                state=m.state if "state" in fields else "unsent",
                held=m.held if "held" in fields else False,
                server=m.server if "server" in fields else 0,
            )
            for m in observation.messages
        ),
    )


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _what_is_wrong(raw: bytes, exc: ValidationError) -> str:
    try:
        json.loads(raw)
    except (ValueError, RecursionError):
        return "a line that is not JSON"
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "the answer"
    return f"a line that is not a protocol answer ({where}: {first['msg']})"
