"""The second engine: check a design with SPIN, and map its trails back to typed traces.

:func:`spin_check` generates the Promela model (:mod:`fsm.analysis.promela`),
has ``spin`` write the verifier and the C compiler build it (once per model:
the build is cached, see :func:`cache_root`), then runs it once per check.
The verifier searches breadth first, so every trail is a shortest one. A
trail is read back by replaying the verifier on it, which prints each step's
label; the labels are replayed on
:meth:`System.successors <fsm.analysis.system.System.successors>` to rebuild
the concrete worlds, which also validates the trail: a label the system cannot
take, or a last world that does not violate the property, raises
:class:`EngineDisagreement`.

The result is the same :class:`~fsm.analysis.checker.CheckResult` as the
built-in checker's, with the properties SPIN judges (:data:`JUDGED`) and a
state count without symmetry reduction.

Every subprocess has a timeout and runs in a process group of its own, which
is ended on every way out (a timeout, an error, Ctrl-C, SIGTERM), so no
verifier worker outlives the check. A missing ``spin`` or C compiler (or a
``CC`` that names no program) raises :class:`EngineUnavailable` with one line
saying what to install. A verifier run that reports no state explored is an
error, never a proof.

The cache trusts only what this user built: its folder is created private
(mode 0700) and checked, with every cached verifier in it, for its owner and
that no one else can write it; the cache key covers the model's text, the
flags and the tools' identity, and each verifier is run only if its SHA-256
matches the one recorded when it was built. A cache that fails a check is not
used: the verifier is then built in a fresh private folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import stat
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
    "cache_root",
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
    #: The C compiler's command: the program (a full path) and its own arguments.
    cc: tuple[str, ...]


def tools() -> Tools:
    """Where ``spin`` and a C compiler are; :class:`EngineUnavailable` if either is missing."""
    spin = shutil.which("spin")
    if spin is None:
        raise EngineUnavailable(
            "the spin engine needs SPIN: install it (Debian/Ubuntu: sudo apt-get install spin; "
            "or `make deps`; elsewhere see https://spinroot.com)"
        )
    given = os.environ.get("CC", "").strip()
    if given:
        try:
            words = shlex.split(given)
        except ValueError as exc:
            raise EngineUnavailable(f"CC={given!r} cannot be read as a command: {exc}") from None
        program = shutil.which(words[0]) if words else None
        if program is None:
            raise EngineUnavailable(
                f"CC={given!r} names no program on PATH: set CC to a C compiler or unset it"
            )
        return Tools(spin, (program, *words[1:]))
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise EngineUnavailable(
            "the spin engine needs a C compiler to build SPIN's verifier: install gcc or clang "
            "(Debian/Ubuntu: sudo apt-get install gcc)"
        )
    return Tools(spin, (cc,))


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


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


def cache_root() -> Path:
    """Where verifiers are cached: ``$XDG_CACHE_HOME/fsm/spin`` (``~/.cache/fsm/spin``),
    or, without a usable home, ``fsm-spin-<uid>`` under the temporary directory."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base and os.path.isabs(base):
        return Path(base) / "fsm" / "spin"
    home = os.environ.get("HOME", "").strip()
    if home and os.path.isabs(home) and os.path.isdir(home):
        return Path(home) / ".cache" / "fsm" / "spin"
    return Path(tempfile.gettempdir()) / f"fsm-spin-{_uid()}"


def _private(path: Path, *, folder: bool) -> bool:
    """Whether ``path`` (not followed if a symlink) is a folder or regular file of
    this user's that no one else can write (a folder: that no one else can enter)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind = stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)
    others = 0o077 if folder else 0o022
    return kind and st.st_uid == _uid() and not st.st_mode & others


def _private_folder(root: Path) -> Path | None:
    """``root``, created with mode 0700 if missing (its parents 0700 too), if it
    passes :func:`_private`; ``None`` if it cannot be made or fails the check."""
    try:
        root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.mkdir(root, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return root if _private(root, folder=True) else None


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _trusted(final: Path) -> bool:
    """Whether ``final`` holds a verifier this user built: every part private, and
    the binary's digest the one recorded at build time."""
    pan, recorded = final / "pan", final / "pan.sha256"
    if not (
        _private(final, folder=True)
        and _private(pan, folder=False)
        and _private(recorded, folder=False)
    ):
        return False
    try:
        return recorded.read_text(encoding="ascii").strip() == _digest(pan)
    except (OSError, UnicodeDecodeError):
        return False


def _identity(program: str) -> str:
    """A program's path, size and modification time: a rebuilt tool changes the key."""
    try:
        st = os.stat(program)
    except OSError:
        return program
    return f"{program}:{st.st_size}:{st.st_mtime_ns}"


def compile_verifier(model: PromelaModel, mode: str = "bfs", *, optimize: bool = True) -> Verifier:
    """Write ``model``, run ``spin -a`` and compile ``pan``; cached by the model's text,
    the flags and the tools (see the module's notes on what the cache trusts).

    Without ``optimize`` the C compiler builds faster and the verifier runs
    slower: the right trade for the small models of a test suite.
    """
    found = tools()
    flags = (*_MODES[mode], "-O2" if optimize else "-O0")
    parts = [model.text, *flags, _identity(found.spin), _identity(found.cc[0]), *found.cc[1:]]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    root = _private_folder(cache_root())
    if root is not None and _trusted(root / key):
        return Verifier(model, root / key, mode)
    where = (
        root
        if root is not None
        else _private_folder(Path(tempfile.gettempdir()) / f"fsm-spin-{_uid()}")
    )
    # mkdtemp creates the folder with mode 0700 and a name no one can predict.
    work = Path(tempfile.mkdtemp(dir=where, prefix="build-"))
    try:
        (work / "model.pml").write_text(model.text, encoding="utf-8")
        _run([found.spin, "-a", "model.pml"], work, COMPILE_TIMEOUT, "spin -a")
        _run([*found.cc, "-w", *flags, "-o", "pan", "pan.c"], work, COMPILE_TIMEOUT, "cc pan.c")
        os.chmod(work / "pan", 0o700)
        (work / "pan.sha256").write_text(_digest(work / "pan") + "\n", encoding="ascii")
        if root is None:
            return Verifier(model, work, mode)  # not cached; left for the system to clean
        final = root / key
        if os.path.lexists(final) and not _trusted(final):
            _remove(final)
        try:
            work.rename(final)
        except OSError:  # another process built it first
            shutil.rmtree(work, ignore_errors=True)
            if not _trusted(final):
                raise EngineError(
                    f"the verifier cache {final} holds something fsm did not build"
                ) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return Verifier(model, final, mode)


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _end_group(proc: subprocess.Popen[str]) -> None:
    """Kill ``proc``'s process group (it leads one of its own) and reap ``proc``."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5.0)


def _run(
    argv: Sequence[str], cwd: Path, timeout: float, what: str, env: dict[str, str] | None = None
) -> str:
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise EngineUnavailable(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise EngineError(f"{what} took longer than {timeout:.0f} s; stopped") from None
    finally:
        # Every way out, a normal one too: workers the leader forked must not outlive it.
        _end_group(proc)
    if proc.returncode != 0 and what != "pan":
        tail = (stderr or stdout).strip().splitlines()[-3:]
        raise EngineError(f"{what} failed: {' / '.join(tail)}")
    return stdout + stderr


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
        if states <= 0:
            raise EngineDisagreement(
                "SPIN's verifier reported no state explored; its run proves nothing: "
                + (_tail(out) or "it printed nothing")
            )
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


def _tail(out: str) -> str:
    """The verifier's last line of output, for an error message."""
    lines = out.strip().splitlines()
    return lines[-1][:200] if lines else ""


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
