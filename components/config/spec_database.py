"""The database's stack settings, validated for ``components.config.spec``: the backup region of
cross-region backup replication, the cross-region reporting replica (docs/tier4.md), a restore
into a new primary (docs/operate.md, "Recovery") and a PostgreSQL major upgrade
(docs/operate.md, "Upgrades").
Each rule appends a message naming its key."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from typing import Any

from components.config.tier import Tier
from components.shared.contract import (
    POSTGRES_PARAMETER_FAMILIES,
    DatabaseRestore,
    ReportingReplicaTarget,
)

UPGRADE_STRATEGIES = ("in-place", "blue-green")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_STACK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_RESTORE_NAME = re.compile(r"^[a-z][a-z0-9]{1,15}$")
_DB_IDENTIFIER = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]$")
# Replicated automated backups (another region's) are named by ARN.
_AUTOMATED_BACKUPS = re.compile(r"^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:auto-backup:[\w-]+$")
# Manual snapshots by identifier, automated ones as ``rds:<id>-<date>``, shared ones by ARN.
_SNAPSHOT = re.compile(
    r"^(?:rds:)?[a-zA-Z](?:[a-zA-Z0-9]|-(?!-))*$|^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:snapshot:\S+$"
)


def backup_region(
    values: Mapping[str, Any], tier: Tier, region: str | None, problems: list[str]
) -> str | None:
    backup = str(values["dbBackupRegion"]).strip() or None
    wanted = tier.db.cross_region_backups
    if wanted and backup is None:
        problems.append(
            f"dbBackupRegion: tier {tier.name} replicates its automated backups to a second "
            "region (db.cross_region_backups); set one, e.g. "
            "`pulumi config set dbBackupRegion us-west-2`"
        )
    elif backup is not None and not wanted:
        problems.append(
            f"dbBackupRegion={backup!r}: tier {tier.name} does not replicate backups; remove it "
            "or add the override db.cross_region_backups=true"
        )
    elif backup is not None and not _REGION.match(backup):
        problems.append(f"dbBackupRegion={backup!r}: must be an AWS region such as us-west-2")
    elif backup is not None and backup == region:
        problems.append(
            f"dbBackupRegion={backup!r}: is the stack's own region; a copy there survives "
            "nothing the original would not. Choose another region"
        )
    return backup


def reporting_replica(
    values: Mapping[str, Any], region: str | None, stack: str, problems: list[str]
) -> ReportingReplicaTarget | None:
    """``dbReportingReplica: us-west-2=tier4-west``: a read replica in that region, in the
    network of the stack deployed there; empty: none."""
    line = str(values["dbReportingReplica"]).strip()
    if not line:
        return None
    there, _, sibling = (part.strip() for part in line.partition("="))
    if not _REGION.match(there) or not _STACK.match(sibling):
        problems.append(
            f"dbReportingReplica={line!r}: must be <region>=<stack deployed there>, "
            "e.g. us-west-2=tier4-west"
        )
    elif there == region:
        problems.append(
            f"dbReportingReplica={line!r}: {there} is the stack's own region; the in-region "
            "replicas (db.replica_count) serve reads here"
        )
    elif sibling == stack:
        problems.append(f"dbReportingReplica={line!r}: must name another stack than {stack}")
    else:
        return ReportingReplicaTarget(there, sibling)
    return None


def restore(values: Mapping[str, Any], problems: list[str]) -> DatabaseRestore | None:
    """The ``dbRestore*`` settings: a name, and a point in time or a snapshot."""
    name = str(values["dbRestoreName"]).strip()
    when = str(values["dbRestorePointInTime"]).strip() or None
    snapshot = str(values["dbRestoreSnapshot"]).strip() or None
    source = str(values["dbRestoreSource"]).strip() or None
    if not name:
        for key, value in (
            ("dbRestorePointInTime", when),
            ("dbRestoreSnapshot", snapshot),
            ("dbRestoreSource", source),
        ):
            if value:
                problems.append(f"{key}: needs dbRestoreName (the restored instance's suffix)")
        return None
    ok = True
    if not _RESTORE_NAME.match(name):
        problems.append(
            f"dbRestoreName={name!r}: 2-16 lowercase letters and digits starting with a letter, "
            "e.g. r20261201"
        )
        ok = False
    if when and snapshot:
        problems.append("dbRestorePointInTime and dbRestoreSnapshot: set one, not both")
        ok = False
    if when and when != "latest":
        try:
            parsed = datetime.datetime.fromisoformat(when)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in when:
            problems.append(
                f"dbRestorePointInTime={when!r}: must be an RFC 3339 time with its offset "
                "(2026-12-01T08:15:00Z) or latest"
            )
            ok = False
    if snapshot and not _SNAPSHOT.match(snapshot):
        problems.append(
            f"dbRestoreSnapshot={snapshot!r}: must be a DB snapshot identifier "
            "(ssp-tier3-db-final, rds:ssp-tier3-db-2026-12-01-08-05) or a snapshot ARN"
        )
        ok = False
    if source and (
        snapshot or not (_DB_IDENTIFIER.match(source) or _AUTOMATED_BACKUPS.match(source))
    ):
        problems.append(
            f"dbRestoreSource={source!r}: a point-in-time restore's source DB instance "
            "identifier (e.g. ssp-tier3-db-r20261201) or replicated automated backups ARN "
            "(arn:aws:rds:<region>:<account>:auto-backup:ab-...); a snapshot restore has none"
        )
        ok = False
    if ok and not when and not snapshot:
        # Kept after the restore, they say where the primary came from (the instance
        # ignores them once made); a name alone would make a new, empty primary.
        problems.append(
            f"dbRestoreName={name!r}: needs dbRestorePointInTime or dbRestoreSnapshot, and "
            "keeps it after the restore"
        )
        ok = False
    return DatabaseRestore(name, when, snapshot, source) if ok else None


def engine_upgrade(
    values: Mapping[str, Any],
    tier: Tier,
    reporting: ReportingReplicaTarget | None,
    problems: list[str],
) -> tuple[str | None, str]:
    engine = str(values["dbEngineVersion"]).strip() or None
    if engine is not None and engine not in POSTGRES_PARAMETER_FAMILIES:
        problems.append(
            f"dbEngineVersion={engine!r}: a PostgreSQL major version; allowed "
            f"{', '.join(POSTGRES_PARAMETER_FAMILIES)}"
        )
    strategy = str(values["dbUpgradeStrategy"]).strip()
    if strategy not in UPGRADE_STRATEGIES:
        problems.append(f"dbUpgradeStrategy={strategy!r}: allowed {', '.join(UPGRADE_STRATEGIES)}")
    elif strategy == "blue-green" and (tier.db.replica_count or tier.db.proxy):
        problems.append(
            f"dbUpgradeStrategy=blue-green: tier {tier.name} has "
            f"{tier.db.replica_count} read replica(s) and proxy={tier.db.proxy}; the provider's "
            "blue/green switch leaves replicas and RDS Proxy on the old instance. Use in-place, "
            "or add the overrides db.replica_count=0 and db.proxy=false for the upgrade"
        )
    elif strategy == "blue-green" and reporting is not None:
        problems.append(
            "dbUpgradeStrategy=blue-green: RDS Blue/Green does not take a cross-region read "
            "replica along (dbReportingReplica); use in-place, or remove the replica first"
        )
    return engine, strategy


def master_password_rotation(values: Mapping[str, Any], problems: list[str]) -> int:
    """``dbMasterPasswordRotation``: how many times the master password has been rotated (each
    raise generates a new one at the next ``pulumi up``)."""
    raw = str(values["dbMasterPasswordRotation"]).strip()
    if not raw.isdigit():
        problems.append(
            f"dbMasterPasswordRotation={raw!r}: must be a whole number >= 0; raise it by one "
            "to rotate the master password"
        )
        return 0
    return int(raw)
