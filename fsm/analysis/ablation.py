"""Ablation: set each feature of a design back to a baseline's value and see what breaks."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from fsm.analysis.checker import check
from fsm.model.design import Design, Environment

__all__ = ["AblationRow", "ablate"]


class AblationRow(BaseModel):
    """One feature of a design set back to a baseline's value, and what then breaks."""

    feature: str
    value: bool | int | str
    baseline: bool | int | str
    #: Why the variant could not be built (a feature another one needs), if so.
    invalid: str | None = None
    #: For each environment, the properties the design holds and the variant violates.
    breaks: dict[str, list[str]] = {}


def ablate(
    design: Design,
    baseline: Design,
    environments: list[Environment],
    messages: int = 2,
    max_states: int | None = None,
) -> list[AblationRow]:
    """Set each feature where ``design`` differs from ``baseline`` back, one at a time.

    A feature whose removal breaks nothing carries no property in this model
    (it may still buy latency or comfort); one whose removal breaks a property
    is load-bearing for it.
    """
    rows: list[AblationRow] = []
    ours, theirs = design.features(), baseline.features()
    held = {
        env.name: {
            v.id for v in check(design, env, messages, max_states).verdicts if v.holds is True
        }
        for env in environments
    }
    for feature in ours:
        if ours[feature] == theirs[feature]:
            continue
        row = AblationRow(feature=feature, value=ours[feature], baseline=theirs[feature])
        try:
            variant = Design.model_validate({**design.model_dump(), feature: theirs[feature]})
        except ValidationError as exc:
            row.invalid = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            rows.append(row)
            continue
        for env in environments:
            result = check(variant, env, messages, max_states)
            row.breaks[env.name] = [
                v.id for v in result.verdicts if v.violated and v.id in held[env.name]
            ]
        rows.append(row)
    return rows
