"""The image registry's lifecycle policy."""

from __future__ import annotations

import json

import pytest

from components.registry import lifecycle_policy


def test_ecr_lifecycle_keeps_last_n_and_any_rule_is_last() -> None:
    rules = json.loads(lifecycle_policy(12))["rules"]
    assert rules[-1]["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": 12,
    }
    assert rules[-1]["rulePriority"] == max(r["rulePriority"] for r in rules)
    with pytest.raises(ValueError, match="keep_images=0"):
        lifecycle_policy(0)
