"""The database rules at their edges: an instance whose tier the pack cannot tell, the
backup-retention minimum an operator configures, and messages that name exactly what to fix."""

from __future__ import annotations

from typing import Any

import pytest

from policies.rules import rds

from .helpers import TAGS, resource_messages
from .test_rules import DB, RDS, with_

UNTAGGED = with_(DB, "tags", {k: v for k, v in DB["tags"].items() if k != "tier"})


@pytest.mark.parametrize(
    "instance",
    [UNTAGGED, with_(DB, "tags", {**TAGS, "tier": "tier9"})],
    ids=["no tier tag", "a tier the config does not list"],
)
def test_the_instance_class_rule_passes_an_instance_whose_tier_it_has_no_list_for(
    instance: dict[str, Any],
) -> None:
    tiny = with_(instance, "instanceClass", "db.t4g.micro")
    assert resource_messages("rds-instance-class-allowed", RDS, tiny) == []


def test_the_instance_class_message_names_the_class_the_tier_and_the_allowed_ones() -> None:
    [message] = resource_messages(
        "rds-instance-class-allowed", RDS, with_(DB, "instanceClass", "db.t4g.micro"), None, "db"
    )
    assert message == (
        "RDS instance 'db' uses instance class db.t4g.micro, not allowed on tier tier3; use "
        "one of db.r6g.xlarge, db.r6g.2xlarge, db.r6g.4xlarge or extend "
        "allowedInstanceClasses.tier3 in the policy config."
    )


def test_an_instance_without_an_instance_class_is_reported_as_none() -> None:
    [message] = resource_messages(
        "rds-instance-class-allowed", RDS, with_(DB, "instanceClass", None)
    )
    assert "uses instance class (none)" in message


def test_the_engine_refuses_a_backup_retention_minimum_of_zero_which_would_turn_the_rule_off() -> (
    None
):
    # The engine validates a pack's config against each policy's JSON schema.
    schema = rds.BACKUP_SCHEMA.properties["minimumRetentionDays"]
    assert schema["minimum"] == 1
    assert schema["default"] == 7
    assert schema["maximum"] == 35  # RDS keeps automated backups at most 35 days


@pytest.mark.parametrize(("days", "reported"), [(14.0, False), (13.0, True), (None, True)])
def test_backups_kept_the_configured_minimum_pass_and_a_day_less_fails(
    days: float | None, reported: bool
) -> None:
    instance = with_(DB, "backupRetentionPeriod", days)
    messages = resource_messages(
        "rds-backup-retention", RDS, instance, {"minimumRetentionDays": 14}, "db"
    )
    assert bool(messages) is reported
    if reported:
        kept = int(days or 0)
        assert messages == [
            f"RDS instance 'db' keeps automated backups {kept} day(s) on tier tier3; outside dev "
            "set backup_retention_period >= 14 (catalog field db_backup_retention_days)."
        ]


def test_a_dev_instance_and_a_read_replica_need_no_backups_of_their_own() -> None:
    none_kept = with_(DB, "backupRetentionPeriod", 0.0)
    dev = with_(none_kept, "tags", {**TAGS, "tier": "dev"})
    replica = with_(none_kept, "replicateSourceDb", "primary")
    assert resource_messages("rds-backup-retention", RDS, dev) == []
    assert resource_messages("rds-backup-retention", RDS, replica) == []


def test_a_dev_instance_and_a_read_replica_may_go_without_deletion_protection() -> None:
    unprotected = with_(with_(DB, "deletionProtection", False), "skipFinalSnapshot", True)
    dev = with_(unprotected, "tags", {**TAGS, "tier": "dev"})
    replica = with_(unprotected, "replicateSourceDb", "primary")
    assert resource_messages("rds-deletion-protection", RDS, dev) == []
    assert resource_messages("rds-deletion-protection", RDS, replica) == []
    assert len(resource_messages("rds-deletion-protection", RDS, unprotected)) == 2


def test_a_read_replica_and_a_primary_below_tier3_need_not_be_multi_az() -> None:
    single = with_(DB, "multiAz", False)
    replica = with_(single, "replicateSourceDb", "primary")
    tier2 = with_(single, "tags", {**TAGS, "tier": "tier2"})
    assert resource_messages("rds-multi-az", RDS, replica) == []
    assert resource_messages("rds-multi-az", RDS, tier2) == []
    assert resource_messages("rds-multi-az", RDS, single) != []


def test_the_deletion_protection_messages_name_the_tier() -> None:
    unprotected = with_(with_(DB, "deletionProtection", False), "skipFinalSnapshot", True)
    assert resource_messages("rds-deletion-protection", RDS, unprotected, None, "db") == [
        "RDS instance 'db' has no deletion protection on tier tier3; set "
        "deletion_protection=True outside dev (and protect=True in its resource options).",
        "RDS instance 'db' skips its final snapshot on tier tier3; set "
        "skip_final_snapshot=False with a final_snapshot_identifier outside dev.",
    ]
