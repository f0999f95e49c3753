"""Recovery and upgrades of the database: cross-region backup replication, the plan of a
restored stack (what the "Recovery" runbook of docs/operate.md says it shows), and the PostgreSQL
major upgrade settings; per stack under mocks."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import pytest

from components.config.catalog import TIERS
from components.database.recovery import RESTORE_INPUTS, primary_identifier
from components.database.settings import ENGINE_VERSION, PARAMETER_FAMILY
from components.shared.contract import DatabaseRestore
from tests.shared import (
    DASHBOARD,
    DB_INSTANCE,
    DB_PARAMETER_GROUP,
    DNS_RECORD,
    K8S_SECRET,
    KMS_KEY,
    LOG_GROUP,
    METRIC_ALARM,
    SECRET_VERSION,
    StackRunner,
)
from tools.harness import Resource, StackRun, run_stack
from tools.policy import check_run, check_stack

REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
PROXY_TARGET = "aws:rds/proxyTarget:ProxyTarget"
PROVIDER = "pulumi:providers:aws"
RESTORE = {"dbRestoreName": "r20261201", "dbRestorePointInTime": "2026-12-01T08:15:00Z"}


def db_instances(run: StackRun) -> tuple[Resource, list[Resource]]:
    instances = run.of_type(DB_INSTANCE)
    (primary,) = [r for r in instances if not r.get("replicateSourceDb")]
    return primary, [r for r in instances if r.get("replicateSourceDb")]


# -- cross-region backup replication ------------------------------------------------------


@pytest.mark.parametrize("stack", ["tier3", "tier4"])
def test_backups_are_replicated_to_the_backup_region(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    provider = run.one(PROVIDER, "database-backups-us-west-2")
    assert provider.inputs["region"] == "us-west-2"
    replication = run.one(REPLICATION, "database-primary-backups-us-west-2")
    key = run.one(KMS_KEY, "database-backups-key")
    primary, _ = db_instances(run)
    assert replication.provider_name == key.provider_name == "database-backups-us-west-2"
    assert replication.inputs["retentionPeriod"] == primary.inputs["backupRetentionPeriod"]
    assert replication.inputs["retentionPeriod"] == TIERS[stack].db.backup_retention_days
    assert replication.inputs["kmsKeyId"].endswith(f"key/{key.id}")
    assert replication.inputs["sourceDbInstanceArn"].startswith("arn:aws:rds:")
    # Stateful outside dev: the key is protected, the replication never stopped by Pulumi.
    assert key.options.protect and replication.options.retain_on_delete
    policy = json.loads(key.inputs["policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["AccountAdministers"]
    assert key.inputs["enableKeyRotation"] is True


@pytest.mark.parametrize("stack", ["dev", "tier1", "tier2"])
def test_smaller_tiers_keep_their_backups_in_region(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    assert run.count(REPLICATION) == 0
    assert not [p for p in run.of_type(PROVIDER) if p.name.startswith("database-")]


# -- a restore ------------------------------------------------------------------------------


def test_restored_identifiers_leave_room_for_the_replicas() -> None:
    restore = DatabaseRestore("r20261201", point_in_time="latest")
    assert primary_identifier("ssp-tier3-db", restore) == "ssp-tier3-db-r20261201"
    assert primary_identifier("ssp-tier3-db", None) == "ssp-tier3-db"
    with pytest.raises(ValueError, match="at most 53 characters"):
        primary_identifier("ssp-" + "a" * 40 + "-db", restore)


@pytest.fixture(scope="module")
def restored() -> StackRun:
    return run_stack("tier3", extra_config=RESTORE)


def test_restore_makes_a_new_primary_from_the_current_ones_backups(restored: StackRun) -> None:
    primary, _ = db_instances(restored)
    assert primary.name == "database-primary-r20261201"
    assert primary.inputs["identifier"] == "ssp-tier3-db-r20261201"
    assert primary.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "ssp-tier3-db",
        "restoreTime": "2026-12-01T08:15:00Z",
    }
    assert "snapshotIdentifier" not in primary.inputs
    assert "dbName" not in primary.inputs  # the database comes from the backup
    # Removing the restore settings later changes nothing; it stays protected.
    assert list(primary.options.ignore_changes) == RESTORE_INPUTS
    assert primary.options.protect and primary.inputs["deletionProtection"] is True
    assert primary.inputs["finalSnapshotIdentifier"] == "ssp-tier3-db-r20261201-final"


def test_everything_follows_the_restored_primary(
    stack_run: StackRunner, restored: StackRun
) -> None:
    primary, replicas = db_instances(restored)
    ident = primary.inputs["identifier"]
    assert sorted(r.inputs["identifier"] for r in replicas) == [
        f"{ident}-replica-1",
        f"{ident}-replica-2",
    ]
    for replica in replicas:
        assert replica.inputs["replicateSourceDb"] == ident
        assert "replicateSourceDb" in replica.options.replace_on_changes
    target = restored.one(PROXY_TARGET)
    assert target.inputs["dbInstanceIdentifier"] == ident
    assert target.options.delete_before_replace  # a proxy holds one RDS instance
    assert restored.one(REPLICATION).name == "database-primary-r20261201-backups-us-west-2"
    plain_host = _host(stack_run("tier3"))
    assert _host(restored) != plain_host
    for version in restored.of_type(SECRET_VERSION):
        if version.name.startswith("database-"):
            assert json.loads(version.inputs["secretString"])["host"] == _host(restored)
    bootstrap = restored.one(K8S_SECRET, "workloads-bootstrap-db")
    assert _host(restored) in json.dumps(bootstrap.inputs["stringData"])
    offboard = restored.one(K8S_SECRET, "workloads-offboard-db").inputs["stringData"]
    assert urlparse(offboard["DATABASE_URL"]).hostname == _host(restored)
    # The key that signs destruction reports stays: the reports signed before stay verifiable.
    before = stack_run("tier3").one(K8S_SECRET, "workloads-offboard-db").inputs["stringData"]
    assert offboard["DESTRUCTION_REPORT_KEY"] == before["DESTRUCTION_REPORT_KEY"]
    records = restored.of_type(DNS_RECORD)
    assert len([r for r in records if r.name.startswith("database-reader-")]) == len(replicas)


def _host(run: StackRun) -> str:
    version = run.one(SECRET_VERSION, "database-credentials-version")
    return str(json.loads(version.inputs["secretString"])["host"])


def test_a_restore_changes_nothing_else_stateful(
    stack_run: StackRunner, restored: StackRun
) -> None:
    plain = {r.urn: r for r in stack_run("tier3")}
    after = {r.urn: r for r in restored}
    # Created and deleted: only the primary and what is named after it.
    gone = {plain[u].name for u in set(plain) - set(after)}
    assert gone == {
        "database-primary",
        "database-primary-postgresql-logs",
        "database-primary-upgrade-logs",
        "database-primary-backups-us-west-2",
    }
    assert {after[u].name for u in set(after) - set(plain)} == {
        n.replace("database-primary", "database-primary-r20261201") for n in gone
    }
    # Changed: what points at the instances, and the replicas rebuilt from the new primary.
    changed = {u for u in set(plain) & set(after) if plain[u].inputs != after[u].inputs}
    following = {METRIC_ALARM, DASHBOARD, PROXY_TARGET, SECRET_VERSION, K8S_SECRET}
    for urn in changed:
        res = after[urn]
        if res.type in following:
            continue
        if res.type == DB_INSTANCE:
            assert res.get("replicateSourceDb"), res.name
        else:
            assert res.type == LOG_GROUP and res.name.startswith("database-replica-"), res.name
            assert res.options.retain_on_delete, res.name  # the old logs are kept
    # The app reaches the proxy, whose endpoint stays; the two Jobs that hold the master reach
    # the primary itself (the proxy admits only the workloads' logins): their Secrets follow
    # the new host, or migrations and an offboarding would go to the instance being retired.
    assert {after[u].name for u in changed if after[u].type == K8S_SECRET} == {
        "workloads-bootstrap-db",
        "workloads-offboard-db",
    }


def test_a_restored_stack_passes_the_policy_pack(restored: StackRun) -> None:
    mandatory = [v for v in check_run(restored) if v.level == "mandatory"]
    assert not mandatory, [v.message for v in mandatory]


@pytest.mark.parametrize(
    ("stack", "config"),
    [
        ("tier3", RESTORE),
        ("tier2", {"dbEngineVersion": "17"}),
        ("tier1", {"dbUpgradeStrategy": "blue-green", "dbEngineVersion": "17"}),
    ],
)
def test_recovery_and_upgrade_plans_pass_a_first_preview(
    stack: str, config: dict[str, str]
) -> None:
    violations = check_stack(stack, config, preview=True)
    assert not [v.message for v in violations if v.level == "mandatory"]


def test_a_snapshot_restore_and_the_latest_time() -> None:
    run = run_stack("tier2", extra_config={"dbRestoreName": "r2", "dbRestoreSnapshot": "snap-1"})
    primary, replicas = db_instances(run)
    assert primary.inputs["snapshotIdentifier"] == "snap-1"
    assert "restoreToPointInTime" not in primary.inputs
    assert {r.inputs["replicateSourceDb"] for r in replicas} == {"ssp-tier2-db-r2"}
    latest = run_stack(
        "dev",
        extra_config={
            "dbRestoreName": "r3",
            "dbRestorePointInTime": "latest",
            "dbRestoreSource": "ssp-dev-db-r2",
        },
    )
    primary, _ = db_instances(latest)
    assert primary.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceIdentifier": "ssp-dev-db-r2",
        "useLatestRestorableTime": True,
    }


def test_a_stack_rebuilt_in_the_backup_region_restores_the_replicated_backups() -> None:
    arn = "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-abc123"
    run = run_stack(
        "tier2",
        extra_config={
            "aws:region": "us-west-2",
            "dbRestoreName": "dr1",
            "dbRestorePointInTime": "latest",
            "dbRestoreSource": arn,
        },
    )
    primary, _ = db_instances(run)
    assert primary.inputs["restoreToPointInTime"] == {
        "sourceDbInstanceAutomatedBackupsArn": arn,
        "useLatestRestorableTime": True,
    }


# -- PostgreSQL major upgrades ---------------------------------------------------------------


def test_the_plain_stacks_run_the_pinned_major(stack_run: StackRunner) -> None:
    run = stack_run("tier2")
    primary, _ = db_instances(run)
    assert primary.inputs["engineVersion"] == ENGINE_VERSION
    assert primary.inputs["allowMajorVersionUpgrade"] is True
    assert "blueGreenUpdate" not in primary.inputs
    assert primary.inputs["applyImmediately"] is False
    assert run.one(DB_PARAMETER_GROUP).inputs["family"] == PARAMETER_FAMILY


def test_in_place_upgrade_brings_the_new_family_before_the_switch() -> None:
    run = run_stack("tier2", extra_config={"dbEngineVersion": "17"})
    primary, (replica, *_) = db_instances(run)
    params = run.one(DB_PARAMETER_GROUP)
    # Replacing the group (family, name prefix) creates the new one first: the instances
    # move to it in the same update that upgrades them, then the old one is deleted.
    assert params.inputs["family"] == "postgres17"
    assert params.inputs["namePrefix"] == "ssp-tier2-db-pg17-"
    assert not params.options.delete_before_replace
    assert primary.inputs["engineVersion"] == "17"
    assert primary.inputs["allowMajorVersionUpgrade"] is True
    assert primary.inputs["parameterGroupName"] == replica.inputs["parameterGroupName"]
    # At once, not in the maintenance window: the replicas' group fits only after it.
    assert primary.inputs["applyImmediately"] is replica.inputs["applyImmediately"] is True
    assert "engineVersion" not in replica.inputs  # RDS upgrades in-Region replicas with it


def test_blue_green_upgrade_replicates_logically() -> None:
    run = run_stack("tier1", extra_config={"dbUpgradeStrategy": "blue-green"})
    primary, replicas = db_instances(run)
    assert not replicas
    assert primary.inputs["blueGreenUpdate"] == {"enabled": True}
    parameters = {p["name"]: p for p in run.one(DB_PARAMETER_GROUP).inputs["parameters"]}
    assert parameters["rds.logical_replication"] == {
        "name": "rds.logical_replication",
        "value": "1",
        "applyMethod": "pending-reboot",
    }
