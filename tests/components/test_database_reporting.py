"""The opt-in cross-region read replica for reporting (``dbReportingReplica``, docs/tier4.md):
the setting's rules, and tier4-east's replica in us-west-2, placed in tier4-west's network by
StackReference (its outputs: tests/fixtures/stack_outputs/tier4-west.json), under mocks."""

from __future__ import annotations

import json

import pytest

from components.config.catalog import TIERS
from components.config.spec import SpecError, build_spec
from components.shared.contract import ReportingReplicaTarget
from tests.shared import (
    API_ACCESS,
    DB_INSTANCE,
    DB_PARAMETER_GROUP,
    FIXTURES,
    INGRESS_RULE,
    KMS_KEY,
    LOG_GROUP,
    METRIC_ALARM,
    SECURITY_GROUP,
    STACKS,
    StackRunner,
)
from tools.harness import Resource, StackRun, run_stack
from tools.policy import check_run

OPT_IN = {"dbReportingReplica": "us-west-2=tier4-west"}
PROVIDER = "database-reporting-us-west-2"
SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
WEST = json.loads((FIXTURES / "stack_outputs" / "tier4-west.json").read_text())


def spec(line: str, **config: str):  # type: ignore[no-untyped-def]
    values = {
        **API_ACCESS,
        "tier": "tier3",
        "dbBackupRegion": "us-west-2",
        "apiDomainName": "origin.ssp.example.org",
        "edgeDomainName": "api.ssp.example.org",
        "hostedZoneId": "Z0EXAMPLE12345",
        "dbReportingReplica": line,
    }
    return build_spec({**values, **config}, stack="tier3", region="us-east-1")


# -- the setting ----------------------------------------------------------------------------


def test_the_setting_names_a_region_and_the_stack_deployed_there() -> None:
    assert spec("us-west-2=tier3-west").db_reporting_replica == ReportingReplicaTarget(
        "us-west-2", "tier3-west"
    )
    assert spec(" ").db_reporting_replica is None


@pytest.mark.parametrize(
    ("line", "config", "problem"),
    [
        ("us-west-2", {}, "must be <region>=<stack deployed there>"),
        ("west=tier3-west", {}, "must be <region>=<stack deployed there>"),
        ("us-west-2=", {}, "must be <region>=<stack deployed there>"),
        ("us-east-1=tier3-east", {}, "is the stack's own region"),
        ("us-west-2=tier3", {}, "must name another stack than tier3"),
        # RDS Blue/Green leaves a cross-region replica behind.
        (
            "us-west-2=tier3-west",
            {
                "dbUpgradeStrategy": "blue-green",
                "overrides": '["db.replica_count=0", "db.proxy=false"]',
            },
            "does not take a cross-region read replica along",
        ),
    ],
)
def test_a_bad_setting_is_named(line: str, config: dict[str, str], problem: str) -> None:
    with pytest.raises(SpecError) as error:
        spec(line, **config)
    assert any(
        p.startswith("dbReportingReplica") or "blue-green" in p for p in error.value.problems
    )
    assert problem in str(error.value)


# -- the replica ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def east() -> StackRun:
    return run_stack("tier4-east", OPT_IN)


def reporting(run: StackRun) -> list[Resource]:
    return [r for r in run if r.name.startswith("database-reporting") and r.custom]


def test_every_part_of_the_replica_is_made_in_its_region(east: StackRun) -> None:
    parts = reporting(east)
    provider = next(r for r in parts if r.name == PROVIDER)
    assert provider.inputs["region"] == "us-west-2"
    # Key, subnet group, security group and its rule, parameter group, log groups, the
    # instance and both alarms: none may fall back to the stack's own region.
    others = [r for r in parts if r is not provider]
    assert len(others) == 10
    assert {r.provider_name for r in others} == {PROVIDER}


def test_the_replica_follows_the_primary_across_regions(east: StackRun) -> None:
    instances = east.of_type(DB_INSTANCE)
    (primary,) = [r for r in instances if not r.get("replicateSourceDb")]
    replica = east.one(DB_INSTANCE, "database-reporting")
    key = east.one(KMS_KEY, "database-reporting-key")
    assert replica.inputs["identifier"] == "ssp-tier4-east-db-reporting"
    # Across regions the source is named by ARN (the primary's, in us-east-1).
    assert replica.inputs["replicateSourceDb"].startswith("arn:aws:rds:us-east-1:")
    assert replica.inputs["replicateSourceDb"].endswith(f"instance/{primary.id}")
    assert "replicateSourceDb" in replica.options.replace_on_changes
    # Encrypted by a key of its own region, Performance Insights too.
    assert replica.inputs["kmsKeyId"] == replica.inputs["performanceInsightsKmsKeyId"]
    assert replica.inputs["kmsKeyId"].startswith("arn:aws:kms:us-west-2:")
    assert replica.inputs["kmsKeyId"].endswith(f"key/{key.id}")
    assert key.options.protect and key.inputs["enableKeyRotation"] is True
    assert replica.inputs["storageEncrypted"] is True
    assert replica.inputs["publiclyAccessible"] is False
    assert replica.inputs["instanceClass"] == primary.inputs["instanceClass"]
    assert east.outputs["db_reporting_endpoint"].endswith(".us-west-2.rds.amazonaws.com")


def test_the_replica_lives_in_the_sibling_stacks_network(east: StackRun) -> None:
    subnets = east.one(SUBNET_GROUP, "database-reporting-subnets")
    assert subnets.inputs["subnetIds"] == WEST["isolated_subnet_ids"]
    sg = east.one(SECURITY_GROUP, "database-reporting-sg")
    assert sg.inputs["vpcId"] == WEST["vpc_id"]
    assert "ingress" not in sg.inputs and "egress" not in sg.inputs
    (rule,) = [r for r in east.of_type(INGRESS_RULE) if r.name.startswith("database-reporting")]
    assert rule.inputs["referencedSecurityGroupId"] == WEST["app_security_group_id"]
    assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 5432
    assert "cidrIpv4" not in rule.inputs
    replica = east.one(DB_INSTANCE, "database-reporting")
    assert replica.inputs["vpcSecurityGroupIds"] == [sg.id]
    assert replica.inputs["dbSubnetGroupName"] == subnets.id


def test_its_settings_and_logs_are_those_of_the_primary_in_its_region(east: StackRun) -> None:
    primary_params = east.one(DB_PARAMETER_GROUP, "database-params")
    params = east.one(DB_PARAMETER_GROUP, "database-reporting-params")
    assert params.inputs["family"] == primary_params.inputs["family"]
    assert params.inputs["parameters"] == primary_params.inputs["parameters"]
    key = east.one(KMS_KEY, "database-reporting-key")
    logs = [r for r in east.of_type(LOG_GROUP) if r.name.startswith("database-reporting")]
    assert sorted(r.inputs["name"] for r in logs) == [
        "/aws/rds/instance/ssp-tier4-east-db-reporting/postgresql",
        "/aws/rds/instance/ssp-tier4-east-db-reporting/upgrade",
    ]
    assert {r.inputs["kmsKeyId"] for r in logs} == {
        f"arn:aws:kms:us-west-2:123456789012:key/{key.id}"
    }
    # CloudWatch Logs of us-west-2 may encrypt with the key those groups, and no others.
    (logs_grant,) = [
        s
        for s in json.loads(key.inputs["policy"])["Statement"]
        if s["Sid"] == "CloudWatchLogsEncrypts"
    ]
    assert logs_grant["Principal"] == {"Service": "logs.us-west-2.amazonaws.com"}
    assert json.dumps(logs_grant).count("ssp-tier4-east-db-reporting") == 1


def test_its_lag_alarm_notifies_the_topic_of_its_region(east: StackRun) -> None:
    lag = east.one(METRIC_ALARM, "database-reporting-lag")
    assert lag.inputs["metricName"] == "ReplicaLag"
    assert lag.inputs["dimensions"] == {"DBInstanceIdentifier": "ssp-tier4-east-db-reporting"}
    assert lag.inputs["threshold"] == TIERS["tier4"].alarms.replica_lag_seconds
    # Silence is what a broken replication looks like.
    assert lag.inputs["treatMissingData"] == "breaching"
    assert lag.inputs["alarmActions"] == [WEST["alarm_topic_arn"]]
    assert WEST["alarm_topic_arn"].startswith("arn:aws:sns:us-west-2:")
    cpu = east.one(METRIC_ALARM, "database-reporting-cpu")
    assert cpu.inputs["alarmActions"] == [WEST["alarm_topic_arn"]]


@pytest.mark.parametrize("preview", [False, True], ids=["preview", "first-preview"])
def test_the_policy_pack_passes_with_the_replica(preview: bool) -> None:
    run = run_stack("tier4-east", OPT_IN, preview=preview)
    assert reporting(run)
    mandatory = [v for v in check_run(run) if v.level == "mandatory"]
    assert mandatory == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_stack_has_one_unless_it_opts_in(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    assert reporting(run) == []
    assert "db_reporting_endpoint" not in run.outputs


def test_a_restored_primary_gets_a_new_replica() -> None:
    restored = run_stack(
        "tier4-east",
        {**OPT_IN, "dbRestoreName": "r20261201", "dbRestorePointInTime": "latest"},
    )
    primary = restored.one(DB_INSTANCE, "database-primary-r20261201")
    replica = restored.one(DB_INSTANCE, "database-reporting")
    assert replica.inputs["identifier"] == "ssp-tier4-east-db-r20261201-reporting"
    assert replica.inputs["replicateSourceDb"].endswith(f"instance/{primary.id}")


def test_an_engine_upgrade_brings_the_replicas_parameter_group_along() -> None:
    upgraded = run_stack("tier4-east", {**OPT_IN, "dbEngineVersion": "17"})
    params = upgraded.one(DB_PARAMETER_GROUP, "database-reporting-params")
    assert params.inputs["family"] == "postgres17"
    assert params.inputs["namePrefix"] == "ssp-tier4-east-db-reporting-pg17-"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        # The sibling named runs elsewhere.
        ("eu-west-1=tier4-west", "stack tier4-west runs in us-west-2"),
        # A stack without the outputs (not deployed by this program, or not yet).
        ("eu-west-1=global", "stack global has no output '[a-z_]+'; run .pulumi up. there first"),
    ],
)
def test_a_sibling_that_cannot_hold_it_is_named(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_stack("tier4-east", {"dbReportingReplica": line})
