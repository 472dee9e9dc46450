"""The public API is exactly what ``fsm.__all__`` lists, and it changes only on purpose."""

from __future__ import annotations

import types
from collections.abc import Callable

import pytest

import fsm

EXPORTED = [
    "DESIGNS",
    "ENVIRONMENTS",
    "FORBIDDEN",
    "PROPERTIES",
    "BadRequest",
    "CheckResult",
    "ConnectionEvent",
    "ConnectionState",
    "DefinitionError",
    "Design",
    "DriverFailure",
    "EngineDisagreement",
    "EngineError",
    "EngineUnavailable",
    "Environment",
    "ForbiddenRule",
    "ForbiddenTransition",
    "FsmError",
    "InvalidArgument",
    "Machine",
    "MessageEvent",
    "MessageState",
    "Monitor",
    "MonitorError",
    "Observation",
    "Outcome",
    "OutputError",
    "Property",
    "RenderError",
    "Row",
    "SettleTimeout",
    "SpecError",
    "StateLimitExceeded",
    "StepRefused",
    "Stimulus",
    "Suite",
    "System",
    "SystemUnderTest",
    "Trace",
    "Transition",
    "UnknownName",
    "UsageError",
    "Verdict",
    "World",
    "check",
    "connection_machine",
    "generate",
    "get_design",
    "get_environment",
    "get_property",
    "load_design",
    "message_machine",
    "replay",
]


def test_all_is_pinned() -> None:
    assert fsm.__all__ == EXPORTED


def _kind(name: str) -> tuple[int, str]:
    """Constants first, then classes, then functions, each alphabetically (ruff's RUF022)."""
    if name.isupper():
        return (0, name)
    return (1 if name[0].isupper() else 2, name)


def test_all_is_sorted() -> None:
    assert fsm.__all__ == sorted(fsm.__all__, key=_kind)


def test_every_exported_name_exists() -> None:
    for name in fsm.__all__:
        assert getattr(fsm, name) is not None, name


def test_every_public_attribute_is_exported() -> None:
    """Submodules aside, nothing public is reachable from ``fsm`` without being in ``__all__``."""
    public = {
        name
        for name, value in vars(fsm).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(fsm.__all__)


def test_errors_share_one_base_class() -> None:
    errors = [getattr(fsm, name) for name in fsm.__all__ if name.endswith(("Error", "Name"))]
    errors += [fsm.ForbiddenTransition, fsm.StateLimitExceeded, fsm.StepRefused]
    errors += [fsm.SettleTimeout, fsm.EngineUnavailable, fsm.EngineDisagreement]
    errors += [fsm.InvalidArgument, fsm.DriverFailure, fsm.BadRequest]
    assert len(errors) == 18
    for error in errors:
        assert issubclass(error, fsm.FsmError)
    assert issubclass(fsm.FsmError, Exception)


def test_every_exported_name_is_documented() -> None:
    """Each entry point says what it is: ``help(fsm)`` is useful name by name."""
    for name in fsm.__all__:
        value = getattr(fsm, name)
        if isinstance(value, (dict, tuple)):
            continue
        assert (value.__doc__ or "").strip(), name


def test_help_is_short_and_names_the_entry_points() -> None:
    doc = fsm.__doc__ or ""
    assert len(doc.splitlines()) < 40
    for name in ("check", "get_design", "connection_machine", "message_machine"):
        assert name in doc


def test_version_is_a_string() -> None:
    assert isinstance(fsm.__version__, str)
    assert fsm.__version__.count(".") == 2


def test_every_exception_lives_in_the_error_module() -> None:
    """Each exception class of the package is defined in :mod:`fsm.model.errors`, is an
    :class:`fsm.FsmError`, is exported from ``fsm`` and is drawn in the module's tree
    (a termination signal turned into :class:`KeyboardInterrupt` by the command line aside)."""
    import importlib
    import pkgutil

    from fsm.cli import Interrupted
    from fsm.model import errors

    found: set[type[BaseException]] = set()
    for info in pkgutil.walk_packages(fsm.__path__, "fsm."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            exception = isinstance(value, type) and issubclass(value, BaseException)
            if exception and value.__module__.startswith("fsm.") and value is not Interrupted:
                found.add(value)
    assert found
    tree = errors.__doc__ or ""
    for error in found:
        assert error.__module__ == "fsm.model.errors", error
        assert issubclass(error, fsm.FsmError), error
        assert getattr(fsm, error.__name__) is error, error
        assert error is fsm.FsmError or f"── {error.__name__} " in tree, error


def _lookups() -> list[tuple[str, Callable[[], object], str]]:
    from fsm.analysis.scenario import get_scenario
    from fsm.model.forbidden import get_rule
    from fsm.testing.adapters import load_adapter
    from fsm.testing.mutants import get_mutant

    design, env = fsm.get_design("fixed"), fsm.get_environment("ios-suspend")
    result = fsm.check(design, env, 1)
    suite = fsm.generate(design, env, messages=1, criterion="rows")
    return [
        ("design", lambda: fsm.get_design("fixd"), "fixed"),
        ("environment", lambda: fsm.get_environment("half-opn"), "half-open"),
        ("property", lambda: fsm.get_property("no-silent-los"), "no-silent-loss"),
        ("property", lambda: result.verdict("no-silent-los"), "no-silent-loss"),
        ("property", lambda: result.report().property("no-silent-los"), "no-silent-loss"),
        ("forbidden rule", lambda: get_rule("F99"), "F1"),
        ("forbidden rule", lambda: result.rule("F99"), "F1"),
        ("scenario", lambda: get_scenario("seed-verificaton"), "seed-verification"),
        ("mutant", lambda: get_mutant("no-such-mutant"), ""),
        ("adapter", lambda: load_adapter("modl"), "model"),
        ("case", lambda: suite.case("no-such-case"), suite.cases[0].id),
        ("criterion", lambda: fsm.generate(design, env, 1, "rowz"), "rows"),  # type: ignore[arg-type]
        ("event", lambda: fsm.Monitor(design).observe("conect"), "connect"),
    ]


def test_every_lookup_by_name_is_an_unknown_name_listing_the_known_ones() -> None:
    for kind, lookup, known in _lookups():
        with pytest.raises(fsm.UnknownName) as info:
            lookup()
        assert info.value.kind == kind
        assert str(info.value).startswith(f"unknown {kind} {info.value.name!r}")
        assert info.value.known, kind
        assert not known or known in info.value.known, (kind, info.value.known)
