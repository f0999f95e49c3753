"""Recovery and upgrades of the database: the automated backups replicated to a second
region, a restore into a new primary, and the engine's major version (docs/operate.md, "Recovery"
and "Upgrades")."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.database.settings import ENGINE_VERSION
from components.shared.contract import (
    POSTGRES_PARAMETER_FAMILIES,
    DatabaseRestore,
    check_identifier,
)
from components.shared.kms import customer_key, key_policy

# What only the restore's first `pulumi up` needs: afterwards the operator may drop the
# settings, and the instance must not be replaced for it.
RESTORE_INPUTS = ["restoreToPointInTime", "snapshotIdentifier"]


def engine_major(engine_version: str | None) -> str:
    """The PostgreSQL major the stack runs: its upgrade setting, else the program's pin."""
    return engine_version or ENGINE_VERSION


def parameter_family(major: str) -> str:
    """The parameter group family of a major (``postgres17``)."""
    return POSTGRES_PARAMETER_FAMILIES[major]


def primary_identifier(ident: str, restore: DatabaseRestore | None) -> str:
    """The primary's DB instance identifier: ``ssp-tier3-db``, or ``ssp-tier3-db-r20261201``
    after a restore (RDS restores into a new instance, which needs a new name)."""
    # 63 characters at most, with room for the replicas' "-replica-N".
    return check_identifier(f"{ident}-{restore.name}", 53) if restore else ident


def primary_resource_name(name: str, restore: DatabaseRestore | None) -> str:
    """The primary's Pulumi name. A restore is a new resource, not a replacement of the old
    one: its restore inputs are then used at creation although ``ignore_changes`` names them
    (an ignored input is reset to the old state's value on a replacement), and the old
    primary is deleted only after everything follows the new one."""
    return f"{name}-primary-{restore.name}" if restore else f"{name}-primary"


def restore_inputs(ident: str, restore: DatabaseRestore | None) -> dict[str, Any]:
    """The primary's inputs that make RDS restore it: a snapshot, or a point in time of the
    source's automated backups. Without a restore: a new, empty database."""
    if restore is None:
        return {}
    if restore.snapshot:
        return {"snapshot_identifier": restore.snapshot}
    source = restore.source or ident
    point: aws.rds.InstanceRestoreToPointInTimeArgsDict = (
        # Another region's replicated backups (a stack rebuilt in the backup region).
        {"source_db_instance_automated_backups_arn": source}
        if source.startswith("arn:")
        else {"source_db_instance_identifier": source}
    )
    if restore.point_in_time == "latest":
        point["use_latest_restorable_time"] = True
    else:
        point["restore_time"] = restore.point_in_time
    return {"restore_to_point_in_time": point}


def region_provider(owner: pulumi.Resource, name: str, region: str) -> aws.Provider:
    """A provider for another region, in the stack's account."""
    # An explicit provider does not read the stack's aws:* config: hand it the profile so
    # both act in the same account.
    return aws.Provider(
        name, region=region, profile=aws.config.profile, opts=pulumi.ResourceOptions(parent=owner)
    )


def backup_replication(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    primary: aws.rds.Instance,
    primary_name: str,
    *,
    region: str | None,
    retention_days: int,
    tags: dict[str, str],
    protect: bool,
) -> aws.rds.InstanceAutomatedBackupsReplication | None:
    """The primary's automated backups (snapshots and transaction logs) replicated to the
    backup ``region``, encrypted there by a key of that region, for ``retention_days``: a
    point-in-time restore survives the loss of the stack's region. None without a region."""
    if region is None:
        return None
    provider = region_provider(owner, f"{name}-backups-{region}", region)
    there = pulumi.ResourceOptions(parent=owner, provider=provider)
    account = aws.get_caller_identity_output().account_id
    key = customer_key(
        f"{name}-backups-key",
        description=f"Encrypts the replicated automated backups of {ident} in {region}",
        # RDS uses it through grants made with the caller's IAM permissions.
        policy=account.apply(key_policy),
        tags=tags,
        opts=pulumi.ResourceOptions.merge(there, pulumi.ResourceOptions(protect=protect)),
    )
    # Named after the primary: a restored primary gets a replication of its own. Pulumi
    # never stops one (retain_on_delete, instead of protect, so that a restore needs no
    # second unprotect): the old primary's copies stay restorable for their retention.
    return aws.rds.InstanceAutomatedBackupsReplication(
        f"{primary_name}-backups-{region}",
        source_db_instance_arn=primary.arn,
        kms_key_id=key.arn,
        retention_period=retention_days,
        opts=pulumi.ResourceOptions.merge(there, pulumi.ResourceOptions(retain_on_delete=protect)),
    )
