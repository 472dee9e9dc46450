"""Everything a design changes is in its tables and effects, and properties are data."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest
from conftest import LIBRARY_CHOICES
from pydantic import ValidationError

from fsm import (
    DESIGNS,
    ENVIRONMENTS,
    PROPERTIES,
    ConnectionEvent,
    ConnectionState,
    Design,
    MessageEvent,
    UnknownName,
    check,
    connection_machine,
    get_design,
    get_environment,
    get_property,
    message_machine,
)
from fsm.analysis.properties import Kind
from fsm.model.behaviour import select_behaviour, validate_tables
from fsm.model.effects import EFFECTS, Effects
from fsm.model.vocabulary import Action, Hook, Meaning

FEATURES = [f for f in Design.model_fields if f not in ("name", "summary")]
PACKAGE = Path(__file__).resolve().parent.parent / "fsm"


def _values(feature: str) -> list[Any]:
    annotation = Design.model_fields[feature].annotation
    if annotation is bool:
        return [False, True]
    if annotation is int:
        return [1, 2, 3]
    return list(getattr(annotation, "__args__", ()))


def _with(design: Design, **changes: Any) -> Design | None:
    try:
        return Design.model_validate({**design.model_dump(), "name": "variant", **changes})
    except ValidationError:
        return None


def test_tables_effects_and_rules_validate() -> None:
    validate_tables()


def test_every_action_has_a_meaning_that_says_something() -> None:
    for action in Action:
        assert isinstance(action.meaning, Meaning), action
        assert action.meaning.describe(), action
        assert action.doc, action


def test_every_effect_hook_is_documented_and_every_effect_applies_somewhere() -> None:
    for hook in Hook:
        assert hook.doc
    for effect in EFFECTS:
        assert any(effect.applies(d) for d in DESIGNS.values()) or effect.when


@pytest.mark.parametrize("name", sorted(DESIGNS))
@pytest.mark.parametrize("feature", FEATURES)
def test_flipping_any_one_feature_changes_a_row_or_an_effect(name: str, feature: str) -> None:
    """No feature acts behind the tables' back: each one shows in the behaviour."""
    design = get_design(name)
    original = select_behaviour(design).fingerprint()
    changed = 0
    for value in _values(feature):
        if value == getattr(design, feature):
            continue
        variant = _with(design, **{feature: value})
        if variant is None:
            continue
        assert select_behaviour(variant).fingerprint() != original, (feature, value)
        changed += 1
    if feature in ("write_ahead",) and name == "pre-fix":
        assert changed == 1
    assert changed or all(
        _with(design, **{feature: v}) is None
        for v in _values(feature)
        if v != getattr(design, feature)
    )


def test_message_ids_on_fixed_shows_as_an_effect() -> None:
    fixed = get_design("fixed")
    with_ids = _with(fixed, message_ids=True)
    assert with_ids is not None
    a, b = select_behaviour(fixed), select_behaviour(with_ids)
    assert list(a.connection) == list(b.connection)
    assert list(a.message) == list(b.message)
    assert a.effects.actions(Hook.server_receives) == (Action.count_copy,)
    assert b.effects.actions(Hook.server_receives) == (Action.dedupe_copy,)


#: The client libraries' features, each with a default: the seed's behaviour.
LIBRARY = [f for f in FEATURES if not Design.model_fields[f].is_required()]


def test_every_valid_feature_combination_has_its_own_behaviour() -> None:
    """Two designs that differ in any feature differ in a row or an effect: every
    combination of the seed's features (the libraries' at their defaults), and every
    combination of the libraries' features on each built-in design."""
    base = get_design("pre-fix")
    seen: dict[tuple[Any, ...], Design] = {}

    def distinct(design: Design | None) -> None:
        if design is None:
            return
        fingerprint = select_behaviour(design).fingerprint()
        if fingerprint in seen:
            assert seen[fingerprint].features() == design.features(), (
                design.features(),
                seen[fingerprint].features(),
            )
        seen[fingerprint] = design

    flags = [f for f in FEATURES if Design.model_fields[f].annotation is bool and f not in LIBRARY]
    for values in itertools.product([False, True], repeat=len(flags)):
        for policy in ("ws_send", "any_done", "own_confirmation"):
            for attempts in (1, 2, 3):
                features = dict(zip(flags, values, strict=True))
                distinct(
                    _with(base, **features, pending_cleared_on=policy, max_rest_attempts=attempts)
                )
    seed = len(seen)
    assert seed > 1000
    choices = LIBRARY_CHOICES
    assert set(choices) == set(LIBRARY)
    for design in DESIGNS.values():
        for combination in itertools.product(*choices.values()):
            no_rest = {"max_rest_attempts": 1, "rest_retry_failure": "shown"}
            changes = dict(zip(choices, combination, strict=True))
            extra = {} if changes["rest_endpoint"] else no_rest
            distinct(_with(design, **changes, **extra))
    assert len(seen) > seed + 100


@pytest.mark.parametrize("name", sorted(DESIGNS))
def test_designs_with_the_same_behaviour_get_the_same_verdicts(name: str) -> None:
    """The name and summary are not behaviour: a renamed design is judged identically."""
    design = get_design(name)
    twin = Design.model_validate(
        {**design.model_dump(), "name": "twin", "summary": "Another name, same features."}
    )
    assert select_behaviour(twin).fingerprint() == select_behaviour(design).fingerprint()
    for env in ENVIRONMENTS.values():
        a, b = check(design, env).report(), check(twin, env).report()
        assert a.model_dump(exclude={"design"}) == b.model_dump(exclude={"design"})


def test_effects_select_one_entry_per_hook() -> None:
    for design in DESIGNS.values():
        effects = Effects.select(design)
        hooks = [s.hook for s in effects]
        assert hooks == sorted(set(hooks), key=list(Hook).index)
        assert effects.param(Hook.rest_attempt_fails) == design.max_rest_attempts


# -- no design feature is read outside table selection --------------------------------
SELECTION = {"model/tables.py", "model/effects.py", "model/behaviour.py", "model/design.py"}


def test_no_design_feature_is_read_outside_table_selection() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in SELECTION or rel == "strategies.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in FEATURES:
                offenders.append(f"{rel}:{node.lineno}: .{node.attr}")
    assert offenders == []


# -- properties are data ---------------------------------------------------------------
def test_property_ids_are_unique_and_documented() -> None:
    ids = [p.id for p in PROPERTIES]
    assert len(ids) == len(set(ids))
    for prop in PROPERTIES:
        assert prop.statement
        assert isinstance(prop.kind, Kind)
        assert (prop.bad_states is None) is (prop.kind is Kind.step)


def test_an_unknown_property_cannot_be_judged() -> None:
    with pytest.raises(UnknownName, match="no-such-property"):
        get_property("no-such-property")
    result = check(get_design("hardened"), get_environment("ios-suspend"), 1)
    with pytest.raises(UnknownName):
        result.verdict("no-such-property")


@pytest.mark.parametrize(("design", "environment"), list(itertools.product(DESIGNS, ENVIRONMENTS)))
def test_every_violation_is_explained(design: str, environment: str) -> None:
    result = check(get_design(design), get_environment(environment))
    for verdict in result.verdicts:
        assert verdict.holds is (verdict.trace is None)
        if not verdict.holds:
            assert verdict.explanation, verdict.id
            assert all(reason.text for reason in verdict.explanation)


def test_the_seed_loss_is_explained_in_words() -> None:
    result = check(get_design("pre-fix"), get_environment("ios-suspend"))
    (reason,) = result.verdict("no-silent-loss").explanation
    assert reason.message == 0
    assert "the server never received it" in reason.text
    assert "not in the pending-retry list" in reason.text
    report = result.report().property("no-silent-loss")
    assert report.explanation[0].startswith("m1: ")


def test_fixed_duplicate_is_explained_as_two_copies() -> None:
    result = check(get_design("fixed"), get_environment("ios-suspend"))
    reasons = result.verdict("no-duplicate-delivery").explanation
    assert [r.message for r in reasons] == [0]
    assert "the server applied it twice" in reasons[0].text


# -- the public machines --------------------------------------------------------------
def test_fire_accepts_an_event_name() -> None:
    machine = connection_machine(get_design("hardened"))
    assert machine.fire("connect") is ConnectionState.handshaking
    assert machine.may("handshake_ack")


def test_an_event_of_the_other_machine_is_a_type_error_not_a_forbidden_transition() -> None:
    machine = connection_machine(get_design("hardened"))
    with pytest.raises(TypeError, match="ConnectionEvent"):
        machine.fire(MessageEvent.done)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="no event named 'done'"):
        machine.fire("done")
    assert machine.state is ConnectionState.idle
    message = message_machine(get_design("hardened"))
    with pytest.raises(TypeError):
        message.fire(ConnectionEvent.connect)  # type: ignore[arg-type]


# -- layers -----------------------------------------------------------------------------
def test_no_module_uses_another_modules_private_names() -> None:
    """``from fsm.x import _y`` and ``module._y`` across modules are refused."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fsm"):
                for name in node.names:
                    if name.name.startswith("_"):
                        offenders.append(f"{rel}:{node.lineno}: imports {name.name}")
                    aliases.add(name.asname or name.name)
            elif isinstance(node, ast.Import):
                aliases.update(a.asname or a.name for a in node.names if a.name.startswith("fsm"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                offenders.append(f"{rel}:{node.lineno}: uses {node.value.id}.{node.attr}")
    assert offenders == []


def test_the_report_schema_lists_the_registered_properties() -> None:
    from fsm.analysis.report import CheckReport

    schema = CheckReport.model_json_schema()
    prop = schema["$defs"]["PropertyResult"]["properties"]
    assert prop["id"]["enum"] == [p.id for p in PROPERTIES]
    assert prop["kind"]["enum"] == [k.name for k in Kind]
