"""Config that names state a brand-new stack cannot have: the first deployment of a stack
(docs/deploy.md, "The first deployment of a stack") sets each key in a later step, once that
state exists. A committed stack file is where a new stack starts from, so it never holds
one (``committed_problems``; a test reads every ``Pulumi.<stack>.yaml``).

``after_first_up`` is the other side: the config a stack holds once those steps are done,
which is how the project's tools evaluate deployed stacks (``tools.harness.run_stack``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from components.config.catalog import TIERS
from components.config.overrides import apply_overrides

BUILDING = " (building)"


def _is_true(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _is_set(value: Any) -> bool:
    return bool(str(value).strip())


def _lines(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return [str(line) for line in value or []]


def _serving_region(value: Any) -> bool:
    return any(not line.endswith(BUILDING) for line in _lines(value))


@dataclass(frozen=True)
class LaterStep:
    key: str
    presupposes: Callable[[Any], bool]
    """Whether a value of ``key`` names state that does not exist before the step."""
    requires: str
    """What must exist first (and which step of the first deployment makes it)."""


LATER_STEPS: tuple[LaterStep, ...] = (
    LaterStep(
        "sagemakerModelPublished",
        _is_true,
        "the endpoint's model archive, which the first training run publishes after the "
        "first `up` created the models bucket",
    ),
    LaterStep(
        "regions",
        _serving_region,
        "each region's stack, brought up after the global stack it reads its zone from: "
        "a new global stack lists every region with ' (building)'",
    ),
    *(
        LaterStep(key, _is_set, "the database instance or snapshot a restore reads")
        for key in ("dbRestoreName", "dbRestorePointInTime", "dbRestoreSnapshot", "dbRestoreSource")
    ),
)


def committed_problems(config: Mapping[str, Any]) -> list[str]:
    """What a stack file (its keys without the project prefix) commits that a brand-new
    stack cannot have."""
    return [
        f"{step.key}={config[step.key]!r}: needs {step.requires}; leave it out of the "
        "committed stack file and set it when the step is done (docs/deploy.md)"
        for step in LATER_STEPS
        if step.key in config and step.presupposes(config[step.key])
    ]


def after_first_up(config: Mapping[str, Any]) -> dict[str, str]:
    """The keys a stack of this config (keys without the project prefix, as the CLI hands
    them over) holds once its first deployment is complete: the model published on a tier
    with a SageMaker endpoint, every region of a global stack serving."""
    done: dict[str, str] = {}
    base = TIERS.get(str(config.get("tier", "")))
    if base is not None:
        overrides = _lines(config.get("overrides", []))
        tier = apply_overrides(base, overrides, problems=[])
        if tier.inference.enabled:
            done["sagemakerModelPublished"] = "true"
    regions = _lines(config.get("regions", []))
    if any(line.endswith(BUILDING) for line in regions):
        done["regions"] = json.dumps(
            [line.removesuffix(BUILDING) for line in regions], separators=(",", ":")
        )
    return done
