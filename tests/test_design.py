"""Built-in designs and environments, and design files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import BOOLEAN_FEATURES, LIBRARY_CHOICES
from pydantic import ValidationError

from fsm import (
    DESIGNS,
    ENVIRONMENTS,
    Design,
    SpecError,
    UnknownName,
    get_design,
    get_environment,
    load_design,
)
from fsm.model.tables import CONNECTION, MESSAGE

if TYPE_CHECKING:
    from conftest import SpecWriter


def _differences(a: Design, b: Design) -> dict[str, Any]:
    fa, fb = a.features(), b.features()
    return {k: fb[k] for k in fa if fa[k] != fb[k]}


# -- built-ins --------------------------------------------------------------------------
def test_four_designs_are_built_in_in_review_order() -> None:
    assert list(DESIGNS) == ["pre-fix", "fixed", "seed-system", "hardened"]
    for name, design in DESIGNS.items():
        assert design.name == name
        assert design.summary
        assert "\n" not in design.summary


def test_pre_fix_has_no_resilience_feature() -> None:
    features = get_design("pre-fix").features()
    # It has a REST endpoint and its server acknowledges messages: its transport, not
    # a resilience feature.
    shown = {"rest_endpoint", "acknowledged", "send_failure_shown"}
    assert {k for k, v in features.items() if v is True} == shown
    assert features["offline_send"] == "rest"
    assert features["ws_attempts"] == 1
    assert features["max_rest_attempts"] == 1
    assert features["pending_cleared_on"] == "any_done"


def test_fixed_differs_from_pre_fix_exactly_in_the_seed_fix() -> None:
    assert _differences(get_design("pre-fix"), get_design("fixed")) == {
        "send_failure_disconnects": True,
        "write_ahead": True,
        "rest_fallback": True,
        "rest_retry_failure": "swallowed",
    }


def test_the_seed_system_adds_the_reconnect_and_the_refetch_to_the_fix() -> None:
    """The seed's four parts: the fix (detect, retry over REST), reconnect on return from
    the background, and recover responses the server computed (the companion fix)."""
    assert _differences(get_design("fixed"), get_design("seed-system")) == {
        "reconnect_on_foreground": True,
        "refetch_after_reconnect": True,
    }
    assert get_design("seed-system").rest_retry_failure == "swallowed"


def test_fixed_clears_the_whole_pending_list_on_any_done() -> None:
    """The seed clears pendingRetryMessages after any done/toolUse."""
    assert get_design("fixed").pending_cleared_on == "any_done"


def test_hardened_adds_the_production_features_to_the_seed_system() -> None:
    assert _differences(get_design("seed-system"), get_design("hardened")) == {
        "await_handshake": True,
        "heartbeat": True,
        "resend_on_reconnect": True,
        "message_ids": True,
        "pending_cleared_on": "own_confirmation",
        "max_rest_attempts": 2,
        "rest_retry_failure": "shown",
    }


def test_features_exclude_name_and_summary() -> None:
    features = get_design("fixed").features()
    assert "name" not in features
    assert "summary" not in features
    assert set(features) == set(Design.model_fields) - {"name", "summary"}


def test_designs_are_immutable() -> None:
    with pytest.raises(ValidationError):
        get_design("fixed").heartbeat = True


def test_unknown_design_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownName) as info:
        get_design("nope")
    assert info.value.kind == "design"
    assert info.value.name == "nope"
    assert info.value.known == ["fixed", "hardened", "pre-fix", "seed-system"]
    assert "'nope'" in str(info.value)


def test_three_environments_are_built_in() -> None:
    """ios-suspend allows nothing beyond iOS suspension; ios-suspend-silent only the seed's
    silent send into a suspended socket; half-open every half-open misbehaviour."""
    assert list(ENVIRONMENTS) == ["ios-suspend", "ios-suspend-silent", "half-open"]
    ios = get_environment("ios-suspend").model_dump(exclude={"name", "summary"})
    silent = get_environment("ios-suspend-silent").model_dump(exclude={"name", "summary"})
    half = get_environment("half-open").model_dump(exclude={"name", "summary"})
    assert {k for k, v in ios.items() if v} == {"suspension_reported"}
    assert {k for k, v in silent.items() if v} == {"suspended_sends_vanish", "suspension_reported"}
    assert {k for k, v in half.items() if v} == {
        "silent_drops",
        "half_open_sends_vanish",
        "suspension_reported",
    }


def test_unknown_environment_name_is_refused() -> None:
    with pytest.raises(UnknownName, match="unknown environment 'wifi'"):
        get_environment("wifi")


LIBRARY_FEATURES = [
    "rest_endpoint",
    "offline_send",
    "send_deadline_check",
    "acknowledged",
    "ack_timer",
    "ack_fails_on_disconnect",
    "ws_attempts",
    "send_failure_shown",
    "ordered_queue",
]


def test_every_valid_feature_combination_builds_both_tables() -> None:
    """The rows' conditions are exclusive and total for every design a file can describe:
    every combination of the seed's features (the client libraries' at their defaults)."""
    base = get_design("pre-fix").model_dump()
    flags = [f for f in BOOLEAN_FEATURES if f not in LIBRARY_FEATURES]
    built = 0
    for values in itertools.product([False, True], repeat=len(flags)):
        for policy in ("ws_send", "any_done", "own_confirmation"):
            for attempts in (1, 2, 5):
                data = {
                    **base,
                    **dict(zip(flags, values, strict=True)),
                    "pending_cleared_on": policy,
                    "max_rest_attempts": attempts,
                }
                try:
                    design = Design.model_validate(data)
                except ValidationError:
                    continue
                CONNECTION.table(design)
                MESSAGE.table(design)
                built += 1
    # write_ahead, rest_fallback and resend_on_reconnect have 5 valid combinations of 8.
    assert built == 2 ** (len(flags) - 3) * 5 * 3 * 3


def _library_combination_valid(base: Design, values: dict[str, Any]) -> bool:
    """An oracle of the coherence rules of the client libraries' features."""
    v = values
    fails = v["ack_timer"] or v["ack_fails_on_disconnect"]
    return (
        (
            v["rest_endpoint"]
            or (
                v["offline_send"] != "rest"
                and not base.rest_fallback
                and (base.max_rest_attempts, base.rest_retry_failure) == (1, "shown")
            )
        )
        and (v["offline_send"] != "queue" or base.resend_on_reconnect)
        and (not v["send_deadline_check"] or base.heartbeat)
        and (v["acknowledged"] or not fails)
        and (v["ws_attempts"] == 1 or (fails and base.resend_on_reconnect))
        and (v["send_failure_shown"] or (base.send_failure_disconnects and not base.rest_fallback))
        and (
            not v["ordered_queue"]
            or (
                base.resend_on_reconnect
                and v["acknowledged"]
                and base.pending_cleared_on == "own_confirmation"
                and v["offline_send"] == "queue"
            )
        )
    )


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_every_combination_of_the_libraries_features_builds_both_tables(name: str) -> None:
    """Every combination of the client libraries' features on each built-in design."""
    base = get_design(name)
    choices = LIBRARY_CHOICES
    built = expected = 0
    for combination in itertools.product(*choices.values()):
        values = dict(zip(choices, combination, strict=True))
        expected += _library_combination_valid(base, values)
        try:
            design = Design.model_validate({**base.model_dump(), **values})
        except ValidationError:
            continue
        CONNECTION.table(design)
        MESSAGE.table(design)
        built += 1
    assert built == expected > 0


# -- design files ----------------------------------------------------------------------
FULL_TOML = """\
name = "custom"
summary = "A hand-written design."
await_handshake = true
send_failure_disconnects = true
write_ahead = true
rest_fallback = true
pending_cleared_on = "own_confirmation"
reconnect_on_foreground = false
heartbeat = true
resend_on_reconnect = false
message_ids = false
max_rest_attempts = 3
rest_retry_failure = "shown"
refetch_after_reconnect = false
"""


def test_load_a_complete_design_from_toml(write_spec: SpecWriter) -> None:
    design = load_design(write_spec("custom.toml", FULL_TOML))
    assert design.name == "custom"
    assert design.heartbeat is True
    assert design.reconnect_on_foreground is False
    assert design.max_rest_attempts == 3
    assert design.pending_cleared_on == "own_confirmation"


def test_load_a_design_from_json(write_spec: SpecWriter) -> None:
    data = {**get_design("hardened").model_dump(), "name": "from-json", "heartbeat": False}
    design = load_design(write_spec("d.json", json.dumps(data)))
    assert design.name == "from-json"
    assert design.heartbeat is False
    assert _differences(get_design("hardened"), design) == {"heartbeat": False}


def test_load_accepts_a_str_path_and_an_upper_case_suffix(write_spec: SpecWriter) -> None:
    path = write_spec("CUSTOM.TOML", FULL_TOML)
    assert load_design(str(path)).name == "custom"


def test_based_on_takes_the_missing_fields_from_a_builtin(write_spec: SpecWriter) -> None:
    path = write_spec(
        "variant.toml", 'based_on = "fixed"\nname = "variant"\npending_cleared_on = "ws_send"\n'
    )
    design = load_design(path)
    assert design.name == "variant"
    assert _differences(get_design("fixed"), design) == {"pending_cleared_on": "ws_send"}


def test_based_on_in_json(write_spec: SpecWriter) -> None:
    path = write_spec(
        "v.json", json.dumps({"based_on": "hardened", "name": "v", "heartbeat": False})
    )
    assert _differences(get_design("hardened"), load_design(path)) == {"heartbeat": False}


def test_based_on_alone_reproduces_the_builtin(write_spec: SpecWriter) -> None:
    design = load_design(write_spec("same.toml", 'based_on = "pre-fix"\nname = "mine"\n'))
    assert design.features() == get_design("pre-fix").features()
    assert (design.name, design.summary) == ("mine", "pre-fix")


def _spec_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_design(path)
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


@pytest.mark.parametrize(
    ("filename", "content", "expected"),
    [
        pytest.param(
            "extra.toml",
            'based_on = "fixed"\nname = "x"\nteleport = true\n',
            ["teleport", "unknown field"],
            id="unknown-field",
        ),
        pytest.param(
            "type.toml",
            'based_on = "fixed"\nname = "x"\nheartbeat = "sometimes"\n',
            ["heartbeat", "boolean"],
            id="wrong-type",
        ),
        pytest.param(
            "type.json",
            json.dumps({"based_on": "fixed", "name": "x", "max_rest_attempts": "two"}),
            ["max_rest_attempts", "integer"],
            id="wrong-type-json",
        ),
        pytest.param(
            "range.toml",
            'based_on = "fixed"\nname = "x"\nmax_rest_attempts = 9\n',
            ["max_rest_attempts", "5"],
            id="attempts-too-high",
        ),
        pytest.param(
            "zero.toml",
            'based_on = "fixed"\nname = "x"\nmax_rest_attempts = 0\n',
            ["max_rest_attempts", "1"],
            id="attempts-too-low",
        ),
        pytest.param(
            "policy.toml",
            'based_on = "fixed"\nname = "x"\npending_cleared_on = "never"\n',
            ["pending_cleared_on", "own_confirmation"],
            id="unknown-policy",
        ),
        pytest.param(
            "incoherent.toml",
            'based_on = "fixed"\nname = "x"\nwrite_ahead = false\n',
            ["rest_fallback needs write_ahead"],
            id="rest-fallback-without-write-ahead",
        ),
        pytest.param(
            "resend.toml",
            'based_on = "pre-fix"\nname = "x"\nresend_on_reconnect = true\n',
            ["resend_on_reconnect needs write_ahead"],
            id="resend-without-write-ahead",
        ),
        pytest.param(
            "missing.toml",
            'name = "x"\nsummary = "s"\n',
            ["missing: await_handshake, ", "refetch_after_reconnect", "based_on"],
            id="missing-fields",
        ),
        pytest.param(
            "name.toml",
            'based_on = "fixed"\nname = "Has Spaces"\n',
            ["name", "pattern"],
            id="bad-name",
        ),
        pytest.param(
            "base.toml",
            'based_on = "nope"\n',
            ["based_on", "'nope'", "fixed, hardened, pre-fix"],
            id="unknown-base",
        ),
        pytest.param(
            "base.json",
            json.dumps({"based_on": 3}),
            ["based_on", "3"],
            id="non-string-base",
        ),
        pytest.param(
            "broken.toml",
            'name = "x\nheartbeat = true\n',
            ["invalid TOML", "line 1"],
            id="invalid-toml",
        ),
        pytest.param(
            "broken.json",
            '{"name": "x",\n "heartbeat": }',
            ["invalid JSON", "line 2"],
            id="invalid-json",
        ),
        pytest.param(
            "list.json",
            "[1, 2, 3]",
            ["top level must be a table"],
            id="non-table-top-level",
        ),
        pytest.param(
            "string.json",
            '"fixed"',
            ["top level must be a table"],
            id="string-top-level",
        ),
        pytest.param(
            "design.yaml",
            "name: x\n",
            ["unknown format", "'.yaml'", ".toml or .json"],
            id="unknown-extension",
        ),
        pytest.param(
            "latin1.toml",
            b'name = "caf\xe9"\n',
            ["not UTF-8"],
            id="not-utf8",
        ),
    ],
)
def test_bad_design_file_is_one_line_naming_the_problem(
    write_spec: SpecWriter, filename: str, content: str | bytes, expected: list[str]
) -> None:
    message = _spec_error(write_spec(filename, content))
    for part in expected:
        assert part in message, message


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    message = _spec_error(tmp_path / "absent.toml")
    assert "cannot read" in message
    assert "No such file" in message


def test_directory_instead_of_file_is_a_spec_error(tmp_path: Path) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert "cannot read" in _spec_error(folder)


def test_spec_error_names_only_the_first_problem(write_spec: SpecWriter) -> None:
    path = write_spec("two.toml", 'based_on = "fixed"\nname = "x"\nheartbeat = 1.5\nfoo = 1\n')
    message = _spec_error(path)
    assert "foo: unknown field (and 1 more: heartbeat)" in message


def test_a_variant_must_name_itself(write_spec: SpecWriter) -> None:
    """based_on does not lend the built-in's name: a changed design is a different design."""
    message = _spec_error(write_spec("variant.toml", 'based_on = "fixed"\nheartbeat = true\n'))
    assert "name" in message
    assert "\n" not in message


def test_a_variant_summary_says_what_changed(write_spec: SpecWriter) -> None:
    text = 'based_on = "fixed"\nname = "beat"\nheartbeat = true\n'
    design = load_design(write_spec("variant.toml", text))
    assert design.summary == "fixed, changing heartbeat"


@pytest.mark.parametrize("value", ['"yes"', '"off"', '"true"', "1"])
def test_a_value_that_is_not_a_boolean_is_refused(write_spec: SpecWriter, value: str) -> None:
    path = write_spec("lax.json", f'{{"based_on": "fixed", "name": "x", "heartbeat": {value}}}')
    message = _load_error(path)
    assert message is not None, f"{value} was accepted as a boolean"
    assert "heartbeat" in message


@pytest.mark.parametrize("value", ['"2"', "2.0"])
def test_a_value_that_is_not_an_integer_is_refused(write_spec: SpecWriter, value: str) -> None:
    path = write_spec(
        "lax.json", f'{{"based_on": "fixed", "name": "x", "max_rest_attempts": {value}}}'
    )
    message = _load_error(path)
    assert message is not None, f"{value} was accepted as an integer"
    assert "max_rest_attempts" in message


def _load_error(path: Path) -> str | None:
    """The SpecError ``load_design`` raises for ``path``, or None if it loads."""
    try:
        load_design(path)
    except SpecError as exc:
        return str(exc)
    return None
