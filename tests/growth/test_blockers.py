"""Each blocker that once made a move unsafe, put back into the program: the growth checks
catch it. A check that passed these too would prove nothing about the moves."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random
import pytest

from components.config.catalog import TIERS
from components.config.spec import StackSpec
from components.workloads import configuration
from tools import growth


def catches(stack: str, target: str, check: str | None) -> list[str]:
    """What the move's checks find: ``check``'s, or each up's own (``growth.problems``)."""
    move = growth.evaluate_move(stack, target)
    if check is None:
        return [p for up in move.ups for p in growth.problems(up)]
    return growth.CHECKS[check](move)


def class_in_the_description(monkeypatch: pytest.MonkeyPatch, *, ignored: bool) -> None:
    """Parameter groups described as they once were: with the tier's instance class."""
    made = aws.rds.ParameterGroup

    def named(resource_name: str, **kwargs: Any) -> aws.rds.ParameterGroup:
        tier = TIERS[pulumi.Config().require("tier")]
        kwargs["description"] += f" on {tier.db.instance_class}"
        if not ignored:
            # As the groups were made before: no ignoreChanges on the description.
            kwargs["opts"] = pulumi.ResourceOptions(parent=kwargs["opts"].parent)
        return made(resource_name, **kwargs)

    monkeypatch.setattr(aws.rds, "ParameterGroup", named)


def test_a_parameter_group_description_naming_the_instance_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class_in_the_description(monkeypatch, ignored=False)
    found = catches("tier1", "tier2", None)
    assert any("replace aws:rds/parameterGroup:ParameterGroup" in p for p in found), found


def test_a_parameter_group_description_naming_the_class_even_if_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ignoreChanges keeps a group made with the old description; a new stack must not get one.
    class_in_the_description(monkeypatch, ignored=True)
    found = catches("tier1", "tier2", "database")
    assert any("names the instance class" in p for p in found), found


def test_a_multi_az_primary_given_an_empty_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    made = aws.rds.Instance

    def emptied(resource_name: str, **kwargs: Any) -> aws.rds.Instance:
        if kwargs.get("multi_az") and kwargs.get("availability_zone") is None:
            kwargs["availability_zone"] = ""
        return made(resource_name, **kwargs)

    monkeypatch.setattr(aws.rds, "Instance", emptied)
    found = catches("tier2", "tier3", "database")
    assert any("replace database-primary" in p for p in found), found


def test_the_queue_flipped_to_sqs_without_the_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    made = configuration.app_config_data

    def undrained(**kwargs: Any) -> dict[str, str]:
        data = made(**kwargs)
        data.pop(growth.DRAIN, None)
        return data

    monkeypatch.setattr(configuration, "app_config_data", undrained)
    found = catches("tier1", "tier2", "queue")
    assert any(f"on SQS without {growth.DRAIN}=true" in p for p in found), found


def test_the_pepper_regenerated_with_the_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    made = random.RandomPassword

    def per_tier(resource_name: str, **kwargs: Any) -> random.RandomPassword:
        if resource_name.endswith("api-key-pepper"):
            kwargs["keepers"] = {"tier": pulumi.Config().require("tier")}
        return made(resource_name, **kwargs)

    monkeypatch.setattr(random, "RandomPassword", per_tier)
    found = catches("tier1", "tier2", "secrets")
    # The mocks give a password whose keepers change a new value, as the provider does.
    assert found == [
        "up 1: replace random:index/randomPassword:RandomPassword workloads-api-key-pepper: "
        "a credential changes",
        "up 1: Secret workloads-secret: API_KEY_PEPPER changes",
    ]


def test_node_groups_with_fixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    made = aws.eks.NodeGroup

    def fixed(resource_name: str, **kwargs: Any) -> aws.eks.NodeGroup:
        kwargs["node_group_name"] = kwargs.pop("node_group_name_prefix").rstrip("-")
        return made(resource_name, **kwargs)

    monkeypatch.setattr(aws.eks, "NodeGroup", fixed)
    found = catches("tier1", "tier2", None)
    assert any("needs node_group_name_prefix" in p for p in found), found


def test_cloudfront_taking_over_in_the_first_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The load balancer closed to all but CloudFront whatever the phase, as before the phases.
    monkeypatch.setattr(StackSpec, "behind_cdn", property(lambda spec: spec.tier.edge.enabled))
    found = catches("tier2", "tier3", "edge")
    assert "up 1 deletes aws:wafv2/webAcl:WebAcl workloads-alb-waf" in found, found
    assert "up 1 must keep the load balancer open while CloudFront comes up" in found, found


def test_the_worker_without_a_disruption_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    made = k8s.policy.v1.PodDisruptionBudget

    def unless_the_worker(resource_name: str, **kwargs: Any) -> Any:
        return None if resource_name.endswith("-worker-pdb") else made(resource_name, **kwargs)

    monkeypatch.setattr(k8s.policy.v1, "PodDisruptionBudget", unless_the_worker)
    found = catches("tier1", "tier2", "rolling")
    assert found == ["workloads-worker: no PodDisruptionBudget selects its pods"], found
