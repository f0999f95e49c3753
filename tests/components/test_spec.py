"""Stack config -> validated spec: good stacks pass, bad config fails with every problem named."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.spec import CONFIG_DEFAULTS, PROJECT, SpecError, build_spec
from tools.harness import ROOT, run_stack

# What a stack outside dev names for TLS (the example stack files do the same).
TLS = {"apiDomainName": "api.ssp.example.org", "hostedZoneId": "Z0EXAMPLE12345"}
EDGE_TLS = {**TLS, "edgeDomainName": "ssp.example.org"}


def spec_problems(region: str | None = "us-east-1", **config: Any) -> list[str]:
    with pytest.raises(SpecError) as caught:
        build_spec(config, stack="test", region=region)
    return caught.value.problems


def test_defaults_give_the_dev_tier() -> None:
    spec = build_spec({}, stack="dev", region="us-east-1")
    assert spec.tier.name == "dev"
    assert not spec.protect
    assert spec.tags("ferpa")["data-classification"] == "ferpa"
    assert set(spec.tags()) >= {"project", "stack", "tier", "owner", "data-classification"}


def test_overrides_replace_single_values_with_their_type() -> None:
    spec = build_spec(
        {
            **TLS,
            "tier": "tier2",
            "overrides": [
                "db.replica_count=3",
                "node_groups.app.max_size=10",
                "db.multi_az=true",
                "alarms.error_rate_percent=0.5",
            ],
        },
        stack="tier2",
        region="us-east-1",
    )
    assert spec.tier.db.replica_count == 3
    assert spec.tier.db.multi_az is True
    assert spec.tier.alarms.error_rate_percent == 0.5
    app = spec.node_group("app")
    assert app is not None and app.max_size == 10


def test_overrides_arrive_as_json_text_from_the_engine() -> None:
    spec = build_spec(
        {**EDGE_TLS, "tier": "tier3", "overrides": '["db.replica_count=4"]'}, stack="t", region="x"
    )
    assert spec.tier.db.replica_count == 4


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"tier": "tier9"}, "tier='tier9': unknown tier; allowed: dev, tier1, tier2, tier3, tier4"),
        ({"teir": "tier1"}, "student-success:teir: unknown config key"),
        ({"overrides": ["db_size=3"]}, "overrides: unknown key 'db_size'"),
        (
            {"overrides": ["db_replica_count"]},
            "overrides: 'db_replica_count' must look like key=value",
        ),
        ({"overrides": ["db.replica_count=two"]}, "db.replica_count='two' must be an integer"),
        ({"overrides": ["db.multi_az=yes"]}, "db.multi_az='yes' must be true or false"),
        ({"overrides": ["db_replica_count=1"]}, "db_replica_count is now db.replica_count"),
        ({"vpcCidr": "10.0.0.0/33"}, "vpcCidr='10.0.0.0/33': not a valid CIDR"),
        ({"vpcCidr": "10.0.0.0/24"}, "prefix /24 not allowed; use /16-/18"),
        ({"overrides": ["api.min_replicas=5"]}, "api.min_replicas=5 > api.max_replicas=2"),
        ({"overrides": ["node_groups.app.min_size=4"]}, "node_groups.app: need 0 <= min_size (4)"),
        ({"overrides": ["node_groups.gpu.max_size=4"]}, "names node group 'gpu'; tier dev has app"),
        (
            {"tier": "tier1", "overrides": ["db.replica_count=2"]},
            "db.replica_count=2: tier tier1 allows 0-1",
        ),
        (
            {"overrides": ["db.instance_class=db.x9.huge"]},
            "db.instance_class='db.x9.huge': allowed",
        ),
        ({"tier": "tier1", "overrides": ["db.backup_retention_days=3"]}, "outside dev at least 7"),
        ({"tier": "tier1", "overrides": ["deletion_protection=false"]}, "only dev may drop it"),
        (
            {"tier": "tier3", "overrides": ["db.multi_az=false"]},
            "tier tier3 requires a Multi-AZ primary",
        ),
        (
            {"tier": "tier1", "overrides": ["api.pool_size=80"]},
            "connection capacity: (20 pool + 6 overflow) x 4 pods",
        ),
        ({"clusterPublicAccessCidrs": ["0.0.0.0/0"]}, "0.0.0.0/0 would open the Kubernetes API"),
        ({"alarmEmail": "not-an-email"}, "alarmEmail='not-an-email': must be an email address"),
        ({"appImageTag": "latest"}, "appImageTag='latest': must be an immutable version tag"),
        ({"edgeDomainName": "ssp.example.org"}, "tier dev has no CloudFront"),
        (
            {**TLS, "apiCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc"},
            "The load balancer needs a certificate in us-east-1",
        ),
        (
            {"apiCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/a"},
            "apiCertificateArn: needs apiDomainName",
        ),
        ({"apiDomainName": "api.example.org"}, "apiDomainName='api.example.org': set hostedZoneId"),
        ({"apiDomainName": "API.example.org"}, "must be a lower-case DNS name"),
        ({**TLS, "hostedZoneId": "zone-1"}, "hostedZoneId='zone-1': must be a Route 53 hosted"),
        ({"tier": "tier1"}, "apiDomainName: required outside dev, where the stack serves HTTPS"),
        ({"tier": "tier3", **TLS}, "edgeDomainName: required outside dev"),
        (
            {"tier": "tier3", "hostedZoneId": "Z0EXAMPLE12345", "edgeDomainName": "x.example.org"},
            "apiDomainName: CloudFront reaches the load balancer over HTTPS",
        ),
        (
            {
                **EDGE_TLS,
                "tier": "tier3",
                "edgeCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/abc",
            },
            "CloudFront needs a certificate in us-east-1",
        ),
        (
            {"overrides": ["waf.window_seconds=900"]},
            "waf.window_seconds=900: allowed 60, 120, 300, 600",
        ),
        (
            {"overrides": ["waf.per_key_limit=5"]},
            "waf.per_key_limit=5: WAF allows 10-2,000,000,000",
        ),
        (
            {"tier": "tier3", "overrides": ["inference.instance_type=ml.x9.huge"]},
            "inference.instance_type='ml.x9.huge': allowed ml.c5.2xlarge",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(config: dict[str, Any], expected: str) -> None:
    problems = spec_problems(**config)
    assert any(expected in p for p in problems), problems


def test_missing_region_is_named() -> None:
    assert any(p.startswith("aws:region: not set") for p in spec_problems(region=None))


def test_all_problems_are_listed_at_once() -> None:
    problems = spec_problems(tier="tier9", vpcCidr="nonsense", alarmEmail="x")
    assert len(problems) == 3
    message = str(SpecError("test", problems))
    assert message.startswith("stack 'test' has 3 configuration problem(s):")


def test_bad_config_fails_the_program_before_any_resource_is_registered() -> None:
    with pytest.raises(SpecError, match="unknown tier"):
        run_stack("dev", extra_config={"tier": "tier9"})


def test_pulumi_yaml_declares_exactly_the_keys_the_program_reads() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(CONFIG_DEFAULTS)
    for key, declaration in declared.items():
        assert declaration["description"], key
        assert declaration["default"] == CONFIG_DEFAULTS[key], key
        assert declaration["type"] in ("string", "boolean", "array"), key


def test_stack_files_hold_only_overrides_and_no_plaintext_secrets() -> None:
    for path in ROOT.glob("Pulumi.*.yaml"):
        config = yaml.safe_load(path.read_text())["config"]
        ours = {k.removeprefix(f"{PROJECT}:") for k in config if k.startswith(f"{PROJECT}:")}
        assert ours <= set(CONFIG_DEFAULTS), path.name
        assert set(config) - {f"{PROJECT}:{k}" for k in ours} <= {"aws:region"}, path.name
        text = Path(path).read_text().lower()
        assert "password" not in text and "token" not in text, path.name


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2", "tier3", "tier4"])
def test_every_stack_file_builds_a_valid_spec(stack: str) -> None:
    config = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    ours = {k.removeprefix(f"{PROJECT}:"): v for k, v in config.items() if k.startswith(PROJECT)}
    spec = build_spec(ours, stack=stack, region=config["aws:region"])
    assert spec.tier.name == ours["tier"]
    assert spec.protect == (stack != "dev")


def test_stack_whose_connections_do_not_fit_fails_before_deploying() -> None:
    with pytest.raises(
        Exception,
        match=re.escape(
            "(3 pool + 50 overflow) x 4 pods + 2 trainer = 214 > max_connections 50 - 10 "
            "reserved = 40"
        ),
    ):
        run_stack("tier1", extra_config={"overrides": ["api.pool_max_overflow=200"]})
