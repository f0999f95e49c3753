"""The committed stack files are where a brand-new stack starts: none commits a value that
names state only a later step of the first deployment creates (a published model, a serving
region, a database to restore from)."""

from __future__ import annotations

import pytest
import yaml

from components.config.lifecycle import after_first_up, committed_problems
from tests.shared import SAGEMAKER_ENDPOINT, StackRunner
from tools.harness import ROOT, run_stack, stacks

PREFIX = "student-success:"


def _stack_file(stack: str) -> dict[str, object]:
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.removeprefix(PREFIX): v for k, v in data.items() if k.startswith(PREFIX)}


@pytest.mark.parametrize("stack", stacks())
def test_no_stack_file_commits_state_a_new_stack_cannot_have(stack: str) -> None:
    assert committed_problems(_stack_file(stack)) == []


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"sagemakerModelPublished": True}, "sagemakerModelPublished"),
        ({"sagemakerModelPublished": "true"}, "sagemakerModelPublished"),
        ({"regions": ["us-east-1=tier4-east"]}, "regions"),
        ({"dbRestoreName": "r20261201"}, "dbRestoreName"),
        ({"dbRestoreSnapshot": "ssp-tier3-db-final"}, "dbRestoreSnapshot"),
    ],
)
def test_values_of_later_steps_are_refused_naming_the_key(
    config: dict[str, object], key: str
) -> None:
    (problem,) = committed_problems(config)
    assert problem.startswith(f"{key}=")
    assert "leave it out of the committed stack file" in problem


def test_values_a_new_stack_can_have_pass() -> None:
    assert (
        committed_problems(
            {
                "sagemakerModelPublished": False,
                "regions": ["us-east-1=tier4-east (building)"],
                "dbRestoreName": "",
                "tier": "tier3",
            }
        )
        == []
    )


def test_after_the_first_up_the_model_is_published_and_the_regions_serve() -> None:
    assert after_first_up({"tier": "tier3"}) == {"sagemakerModelPublished": "true"}
    assert after_first_up({"tier": "tier2"}) == {}
    assert after_first_up({"tier": "tier2", "overrides": ["inference.enabled=true"]}) == {
        "sagemakerModelPublished": "true"
    }
    regions = ["us-east-1=tier4-east (building)", "us-west-2=tier4-west"]
    assert after_first_up({"regions": regions}) == {
        "regions": '["us-east-1=tier4-east","us-west-2=tier4-west"]'
    }


def test_a_new_stacks_first_up_has_no_endpoint_and_the_deployed_stack_has(
    stack_run: StackRunner,
) -> None:
    """The offline tools evaluate a stack as it stands once deployed; its first `up`, from
    the committed file alone, runs without the endpoint whose model does not exist yet."""
    assert stack_run("tier3").of_type(SAGEMAKER_ENDPOINT)
    assert not run_stack("tier3", first_up=True).of_type(SAGEMAKER_ENDPOINT)
