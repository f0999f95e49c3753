"""Static parameters reach the instances through an ordered reboot, replicas first."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import Stubber

from tools.reboot import Reboot, main, reboot_plan


def instance(identifier: str, status: str, multi_az: bool = False) -> dict[str, Any]:
    return {
        "DBInstanceIdentifier": identifier,
        "MultiAZ": multi_az,
        "DBParameterGroups": [{"DBParameterGroupName": "pg", "ParameterApplyStatus": status}],
    }


INSTANCES = [
    instance("ssp-tier3-db", "pending-reboot", multi_az=True),
    instance("ssp-tier3-db-replica-1", "pending-reboot"),
    instance("ssp-tier3-db-replica-2", "in-sync"),
    instance("ssp-tier3-dbx", "pending-reboot"),
    instance("ssp-dev-db", "pending-reboot"),
]


def test_replicas_reboot_before_the_primary_which_fails_over() -> None:
    assert reboot_plan(INSTANCES, "ssp-tier3-db") == [
        Reboot("ssp-tier3-db-replica-1", failover=False),
        Reboot("ssp-tier3-db", failover=True),
    ]


def test_nothing_to_do_when_every_group_is_in_sync() -> None:
    assert reboot_plan([instance("ssp-tier1-db", "in-sync")], "ssp-tier1-db") == []


def test_apply_reboots_in_order_and_waits_for_each() -> None:
    rds = boto3.client(
        "rds", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(rds) as stub:
        stub.add_response("describe_db_instances", {"DBInstances": INSTANCES})
        for identifier, failover in (("ssp-tier3-db-replica-1", False), ("ssp-tier3-db", True)):
            stub.add_response(
                "reboot_db_instance",
                {"DBInstance": {"DBInstanceIdentifier": identifier}},
                {"DBInstanceIdentifier": identifier, "ForceFailover": failover},
            )
            stub.add_response(
                "describe_db_instances",
                {
                    "DBInstances": [
                        {"DBInstanceIdentifier": identifier, "DBInstanceStatus": "available"}
                    ]
                },
                {"DBInstanceIdentifier": identifier},
            )
        assert main(["ssp-tier3-db", "--apply"], rds=rds) == 0
        stub.assert_no_pending_responses()


def test_without_apply_nothing_is_rebooted() -> None:
    rds = boto3.client(
        "rds", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(rds) as stub:
        stub.add_response("describe_db_instances", {"DBInstances": INSTANCES})
        assert main(["ssp-tier3-db"], rds=rds) == 0
        stub.assert_no_pending_responses()
