"""What the account must hold before anything is created, read at preview: the hosted zone
(it exists, is public, and serves the stack's names), the identity running `pulumi up` (not
also named cluster admin), IAM Identity Center where Grafana signs people in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from components.config.catalog import TIERS
from components.config.spec import SpecError
from stacks import preconditions
from stacks.preconditions import creator_problems, role_identity, zone_serves
from tests.shared import ACM_CERTIFICATE
from tools.harness import run_stack
from tools.mock_account import CALLER_ARN, HOSTED_ZONES, session_issuer


def test_a_zone_serves_its_own_name_and_the_names_under_it() -> None:
    assert zone_serves("ssp.example.org.", "ssp.example.org")
    assert zone_serves("ssp.example.org", "api.tier1.ssp.example.org")
    assert not zone_serves("ssp.example.org", "api.example.org")
    assert not zone_serves("ssp.example.org", "api.notssp.example.org")


def test_a_zone_the_account_lacks_fails_the_first_preview_naming_the_key() -> None:
    with pytest.raises(SpecError) as caught:
        run_stack("tier1", {"hostedZoneId": "Z0123456789ABCDEFGHIJ"}, preview=True)
    (problem,) = caught.value.problems
    assert problem.startswith("hostedZoneId='Z0123456789ABCDEFGHIJ': Route 53 cannot read")


def test_a_domain_outside_the_zone_fails_naming_the_key() -> None:
    with pytest.raises(SpecError) as caught:
        run_stack("tier1", {"apiDomainName": "api.district.example.com"}, preview=True)
    (problem,) = caught.value.problems
    assert problem.startswith("apiDomainName='api.district.example.com': not in hostedZoneId")


def test_the_committed_example_zones_plan_offline() -> None:
    run = run_stack("tier1", preview=True)
    (query,) = [a for token, a in run.invokes if token == "aws:route53/getZone:getZone"]
    assert query["zoneId"] in HOSTED_ZONES
    assert run.of_type(ACM_CERTIFICATE)


def test_the_deploying_role_named_cluster_admin_is_refused() -> None:
    """EKS makes the creator admin: a second access entry for it fails the update."""
    deployer = session_issuer(CALLER_ARN)
    assert deployer == "arn:aws:iam::123456789012:role/deploy"
    with pytest.raises(SpecError) as caught:
        run_stack("dev", {"clusterAdminRoleArn": deployer})
    (problem,) = caught.value.problems
    assert problem.startswith(f"clusterAdminRoleArn={deployer!r}: the role running `pulumi up`")


def test_a_deployed_stack_may_be_brought_up_by_its_admin_role() -> None:
    """After the first up the creator is unknown: the admin role running a later up is fine."""
    deployer = session_issuer(CALLER_ARN)
    config = {"clusterAdminRoleArn": deployer}
    deployed = run_stack("dev").outputs
    assert deployed
    run = run_stack("dev", config, deployed=deployed)
    assert run.resources


def test_another_role_or_a_path_is_compared_by_account_and_name() -> None:
    deployer = "arn:aws:iam::123456789012:role/deploy"
    assert creator_problems("arn:aws:iam::123456789012:role/cluster-admins", deployer) == []
    assert creator_problems("arn:aws:iam::210987654321:role/deploy", deployer) == []
    assert creator_problems("arn:aws:iam::123456789012:role/ops/deploy", deployer)
    assert creator_problems(None, deployer) == []
    assert role_identity("arn:aws:iam::123456789012:user/deploy") is None


def _spec(tier: str) -> Any:
    return SimpleNamespace(tier=TIERS[tier], stack=tier)


def test_grafana_without_identity_center_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        preconditions.aws.ssoadmin, "get_instances", lambda: SimpleNamespace(arns=[])
    )
    preconditions.warn_without_identity_center(_spec("tier4"))
    (warning,) = caplog.messages
    assert "IAM Identity Center" in warning and "none is visible to this account" in warning
    caplog.clear()
    preconditions.warn_without_identity_center(_spec("tier3"))  # no Grafana: not asked
    assert caplog.messages == []


def test_grafana_with_identity_center_is_silent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    arns = ["arn:aws:sso:::instance/ssoins-1"]
    monkeypatch.setattr(
        preconditions.aws.ssoadmin, "get_instances", lambda: SimpleNamespace(arns=arns)
    )
    preconditions.warn_without_identity_center(_spec("tier4"))
    assert caplog.messages == []
