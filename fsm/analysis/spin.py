"""The second engine: check a design with SPIN, and map its trails back to typed traces.

:func:`spin_check` generates the Promela model (:mod:`fsm.analysis.promela`),
has ``spin`` write the verifier and the C compiler build it (once per model:
the build is cached under the system's temporary directory), then runs it
once per check. The verifier searches breadth first, so every trail is a
shortest one. A trail is read back by replaying the verifier on it, which
prints each step's label; the labels are replayed on
:meth:`System.successors <fsm.analysis.system.System.successors>` to rebuild
the concrete worlds, which also validates the trail: a label the system cannot
take, or a last world that does not violate the property, raises
:class:`EngineDisagreement`.

The result is the same :class:`~fsm.analysis.checker.CheckResult` as the
built-in checker's, with the properties SPIN judges (:data:`JUDGED`) and a
state count without symmetry reduction.

Every subprocess has a timeout. A missing ``spin`` or C compiler raises
:class:`EngineUnavailable` with one line saying what to install.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fsm.analysis.checker import CheckResult, RuleVerdict, Verdict, static_rows
from fsm.analysis.promela import ANY_RULE, CHECKS, Check, PromelaModel, Stranded, label_of, promela
from fsm.analysis.properties import describe, get_property
from fsm.analysis.system import System, Transition, World
from fsm.analysis.trace import Reason, Trace, broken_rules
from fsm.model.design import Design, Environment
from fsm.model.errors import (
    EngineDisagreement,
    EngineError,
    EngineUnavailable,
    StateLimitExceeded,
)
from fsm.model.forbidden import FORBIDDEN

__all__ = [
    "JUDGED",
    "NOT_JUDGED",
    "EngineUnavailable",
    "SpinCheck",
    "SpinRun",
    "Verifier",
    "compile_verifier",
    "replay",
    "run_check",
    "spin_check",
    "tools",
]

#: The properties SPIN judges, and those it does not (AG EF cannot be said in LTL).
JUDGED = (
    "no-silent-loss",
    "no-duplicate-delivery",
    "no-forbidden-transition",
    "connected-means-acked",
)
NOT_JUDGED = ("eventual-delivery", "recovers-unaided")

COMPILE_TIMEOUT = 600.0


@dataclass(frozen=True)
class Tools:
    spin: str
    cc: str


def tools() -> Tools:
    """Where ``spin`` and a C compiler are; :class:`EngineUnavailable` if either is missing."""
    spin = shutil.which("spin")
    if spin is None:
        raise EngineUnavailable(
            "the spin engine needs SPIN: install it (Debian/Ubuntu: sudo apt-get install spin; "
            "or `make deps`; elsewhere see https://spinroot.com)"
        )
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise EngineUnavailable(
            "the spin engine needs a C compiler to build SPIN's verifier: install gcc or clang "
            "(Debian/Ubuntu: sudo apt-get install gcc)"
        )
    return Tools(spin, cc)


@dataclass(frozen=True)
class Verifier:
    """A compiled verifier (``pan``) for one model and one search mode."""

    model: PromelaModel
    directory: Path
    mode: str

    @property
    def pan(self) -> Path:
        return self.directory / "pan"


_MODES: dict[str, tuple[str, ...]] = {
    "bfs": ("-DBFS", "-DSAFETY", "-DNOREDUCE"),
    "bfs-par": ("-DBFS_PAR", "-DNO_HC", "-DSAFETY", "-DNOREDUCE"),
    "swarm": ("-DBITSTATE", "-DSAFETY", "-DNOREDUCE", "-DT_RAND"),
}


def compile_verifier(model: PromelaModel, mode: str = "bfs", *, optimize: bool = True) -> Verifier:
    """Write ``model``, run ``spin -a`` and compile ``pan``; cached by the model's text.

    Without ``optimize`` the C compiler builds faster and the verifier runs
    slower: the right trade for the small models of a test suite.
    """
    found = tools()
    flags = (*_MODES[mode], "-O2" if optimize else "-O0")
    key = hashlib.sha256("\0".join([model.text, *flags, found.cc]).encode()).hexdigest()[:20]
    root = Path(tempfile.gettempdir()) / f"fsm-spin-{os.getuid() if hasattr(os, 'getuid') else 0}"
    final = root / key
    if (final / "pan").exists():
        return Verifier(model, final, mode)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix="build-"))
    try:
        (work / "model.pml").write_text(model.text, encoding="utf-8")
        _run([found.spin, "-a", "model.pml"], work, COMPILE_TIMEOUT, "spin -a")
        _run([found.cc, "-w", *flags, "-o", "pan", "pan.c"], work, COMPILE_TIMEOUT, "cc pan.c")
        try:
            work.rename(final)
        except OSError:  # another process built it first
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Verifier(model, final, mode)


def _run(
    argv: Sequence[str], cwd: Path, timeout: float, what: str, env: dict[str, str] | None = None
) -> str:
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EngineError(f"{what} took longer than {timeout:.0f} s; stopped") from None
    if done.returncode != 0 and what != "pan":
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise EngineError(f"{what} failed: {' / '.join(tail)}")
    return done.stdout + done.stderr


@dataclass(frozen=True)
class SpinRun:
    """One verifier run: one check, the states it stored and the trail it found."""

    check: Check | None
    states: int
    transitions: int
    seconds: float
    memory_mb: float
    #: The step labels of the trail, if the check was violated.
    labels: tuple[tuple[str, int | None, str | None], ...] | None


def run_check(
    verifier: Verifier,
    number: int,
    *,
    timeout: float = 3600.0,
    cores: int = 1,
    args: Sequence[str] = (),
) -> SpinRun:
    """Run check ``number`` (0: none, just count states) and read back its trail."""
    env = dict(os.environ, FSM_CHECK=str(number))
    argv = [str(verifier.pan), "-n", "-E", *args]
    if verifier.mode == "bfs-par":
        argv.append(f"-u{cores}")
    check = next((c for c in CHECKS if c.number == number), None)
    with tempfile.TemporaryDirectory(prefix="fsm-pan-") as cwd:
        start = time.perf_counter()
        out = _run(argv, Path(cwd), timeout, "pan", env)
        seconds = time.perf_counter() - start
        if "pan: out of memory" in out or "error: max search depth too small" in out:
            raise EngineError(f"SPIN's verifier stopped early: {out.strip().splitlines()[-1]}")
        states = _number(r"(\d+) states, stored", out)
        transitions = _number(r"(\d+) transitions \(", out)
        memory = _float(r"([\d.]+)\s+total actual memory usage", out)
        errors = _number(r"errors: (\d+)", out)
        labels = None
        if errors:
            trails = sorted(Path(cwd).glob("*.trail"))
            if not trails:
                raise EngineError("SPIN reported an error but wrote no trail")
            if trails[0].name != "model.pml.trail":
                trails[0].rename(Path(cwd) / "model.pml.trail")
            replayed = _run([str(verifier.pan), "-r", "-n"], Path(cwd), timeout, "pan", env)
            labels = tuple(
                label_of(line[len("@step ") :])
                for line in replayed.splitlines()
                if line.startswith("@step ")
            )
            if "@error" in replayed:
                raise EngineDisagreement("SPIN fired a row the design's table does not have")
    return SpinRun(check, states, transitions, seconds, memory, labels)


def _number(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else 0


def _float(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def replay(system: System, labels: Sequence[tuple[str, int | None, str | None]]) -> Trace:
    """Rebuild a SPIN trail as a :class:`Trace` on concrete worlds, step by step."""
    world = start = system.initial()
    steps: list[Transition] = []
    for n, (stimulus, message, outcome) in enumerate(labels):
        matching = [
            t
            for t in system.successors(world)
            if t.stimulus.value == stimulus
            and t.message == message
            and (None if t.outcome is None else t.outcome.value) == outcome
        ]
        if len(matching) != 1:
            raise EngineDisagreement(
                f"step {n + 1} of SPIN's trail ({stimulus} {message} {outcome}) is "
                f"{'not a step' if not matching else 'ambiguous'} of the composed system"
            )
        steps.append(matching[0])
        world = matching[0].target
    return Trace(start, tuple(steps))


def _violates(system: System, check: Check, trace: Trace) -> tuple[Reason, ...]:
    """Why the trail's end violates ``check`` (empty if it does not)."""
    w: World = trace.final
    if check.property == "no-duplicate-delivery":
        return tuple(
            Reason(i, f"the server applied it {m.server} times: {describe(m)}")
            for i, m in enumerate(w.messages)
            if m.server >= 2
        )
    if check.property == "connected-means-acked":
        if not System.connected_unacked(w):
            return ()
        why = (
            "the handshake has not completed"
            if w.socket.value == "opening"
            else f"the socket under it is {w.socket.value}"
        )
        return (Reason(None, f"the client reports connected (isConnected == true) but {why}"),)
    if check.property == "no-silent-loss":
        return tuple(
            Reason(
                i,
                describe(w.messages[i]) + ", and no step that could still move it can happen: "
                "it is stranded",
            )
            for i in Stranded.of(system).messages(w)
        )
    if not trace.steps:
        return ()
    return tuple(
        Reason(f.message, f"{rule.id}: {rule.reason}")
        for f in trace.steps[-1].fired
        for rule in broken_rules(f)
        if check.rule is None or rule.id == check.rule
    )


@dataclass(frozen=True)
class SpinCheck:
    """SPIN's verdicts, as a :class:`CheckResult`, with how they were obtained."""

    result: CheckResult
    #: Exhaustive (breadth first, every state stored); False for a swarm of bitstate runs.
    exhaustive: bool
    runs: tuple[SpinRun, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.runs)


def spin_check(
    design: Design,
    environment: Environment,
    messages: int = 2,
    *,
    cores: int = 1,
    swarm: int = 0,
    timeout: float = 3600.0,
    max_states: int | None = None,
    optimize: bool = True,
    hash_bits: int | None = None,
) -> SpinCheck:
    """Check ``design`` with SPIN: one verifier run per check, trails replayed.

    ``cores`` > 1 uses SPIN's parallel breadth-first search; ``swarm`` > 0 runs
    that many bitstate searches with different seeds and hash functions instead
    of one exhaustive search (not a proof when nothing is found). ``hash_bits``
    sizes the verifier's hash table (2**bits slots; SPIN's default is 24).
    """
    system = System(design, environment, messages)
    model = promela(system)
    mode = "swarm" if swarm else ("bfs-par" if cores > 1 else "bfs")
    verifier = compile_verifier(model, mode, optimize=optimize)
    hashing = [] if hash_bits is None else [f"-w{hash_bits}"]
    runs: list[SpinRun] = []

    def one(number: int) -> SpinRun:
        if not swarm:
            run = run_check(verifier, number, timeout=timeout, cores=cores, args=hashing)
            runs.append(run)
            return run
        best: SpinRun | None = None
        bits = 26 if hash_bits is None else hash_bits
        for seed in range(1, swarm + 1):
            run = run_check(
                verifier,
                number,
                timeout=timeout,
                args=[f"-RS{seed * 7919}", f"-w{bits + seed % 4}", f"-k{1 + seed % 3}"],
            )
            runs.append(run)
            if (
                (run.labels is not None and (best is None or len(run.labels) < _len(best)))
                or best is None
                or (best.labels is None and run.states > best.states)
            ):
                best = run
        assert best is not None
        return best

    counted = one(0)
    if max_states is not None and counted.states > max_states:
        raise StateLimitExceeded(max_states)
    traces: dict[int, Trace | None] = {}
    for check in CHECKS:
        run = one(check.number)
        if run.labels is None:
            traces[check.number] = None
            continue
        trace = replay(system, run.labels)
        if not _violates(system, check, trace) and mode == "bfs-par":
            # SPIN's parallel search writes the trail up to the state the
            # violating step leaves from: complete it with that step.
            trace = _complete(system, check, trace)
        if not _violates(system, check, trace):
            raise EngineDisagreement(
                f"SPIN's trail for {check.property}"
                f"{'' if check.rule is None else ' ' + check.rule} ends in a world that "
                "does not violate it"
            )
        traces[check.number] = trace
    verdicts = []
    for pid in JUDGED:
        prop = get_property(pid)
        if pid == "no-forbidden-transition":
            found = [
                (len(t), c.rule or "", c, t)
                for c in CHECKS
                if c.rule is not None and (t := traces[c.number]) is not None
            ]
            if not found:
                verdicts.append(Verdict(prop, True))
                continue
            _, rule_id, check, trace = min(found, key=lambda x: (x[0], x[1]))
            verdicts.append(Verdict(prop, False, trace, rule_id, _violates(system, check, trace)))
            continue
        only = next(c for c in CHECKS if c.property == pid)
        found_trace = traces[only.number]
        if found_trace is None:
            verdicts.append(Verdict(prop, True))
        else:
            verdicts.append(
                Verdict(prop, False, found_trace, None, _violates(system, only, found_trace))
            )
    rules = tuple(
        RuleVerdict(rule, static_rows(system.behaviour, rule), traces[4 + k])
        for k, rule in enumerate(FORBIDDEN)
    )
    assert 4 + len(FORBIDDEN) == ANY_RULE
    result = CheckResult(
        design=design,
        environment=environment,
        messages=messages,
        states=counted.states,
        transitions=counted.transitions,
        verdicts=tuple(verdicts),
        rules=rules,
    )
    notes = [
        "engine spin: states counted without symmetry reduction"
        + ("" if not swarm else f"; {swarm} bitstate runs per check, a lower bound"),
        "not judged by spin (AG EF, use the built-in engine): " + ", ".join(NOT_JUDGED),
        "no-silent-loss is judged as 'no stranded message', a sound under-approximation "
        "(see the README)",
    ]
    if swarm:
        notes.append(
            "swarm: a violation found is real (its trail was replayed); none found is not a proof"
        )
    return SpinCheck(result, exhaustive=not swarm, runs=tuple(runs), notes=tuple(notes))


def _complete(system: System, check: Check, trace: Trace) -> Trace:
    for step in system.successors(trace.final):
        longer = Trace(trace.start, (*trace.steps, step))
        if _violates(system, check, longer):
            return longer
    return trace


def _len(run: SpinRun) -> int:
    return len(run.labels) if run.labels is not None else 1 << 30
