"""The public API is exactly what ``fsm.__all__`` lists, and it changes only on purpose."""

from __future__ import annotations

import types

import fsm

EXPORTED = [
    "DESIGNS",
    "ENVIRONMENTS",
    "FORBIDDEN",
    "PROPERTIES",
    "CheckResult",
    "ConnectionEvent",
    "ConnectionState",
    "DefinitionError",
    "Design",
    "Environment",
    "ForbiddenRule",
    "ForbiddenTransition",
    "FsmError",
    "InvalidArgument",
    "Machine",
    "MessageEvent",
    "MessageState",
    "Monitor",
    "Observation",
    "Outcome",
    "Property",
    "Row",
    "SpecError",
    "StateLimitExceeded",
    "Stimulus",
    "Suite",
    "System",
    "SystemUnderTest",
    "Trace",
    "Transition",
    "UnknownName",
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
    errors = [fsm.DefinitionError, fsm.ForbiddenTransition, fsm.SpecError]
    errors += [fsm.StateLimitExceeded, fsm.UnknownName]
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
