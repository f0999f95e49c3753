"""Apply a stack's pending static PostgreSQL parameters (``max_connections``,
``shared_buffers``, ``shared_preload_libraries``): they wait for a reboot (``pending-reboot``),
while the spec's connection-capacity check already assumes them.

    python -m tools.reboot ssp-tier3-db            # what would be rebooted, in order
    python -m tools.reboot ssp-tier3-db --apply    # reboot it, one instance at a time

Run it after the `pulumi up` that changed the parameter group, in a quiet hour. Replicas go
first (reads move to the others behind the reader name); the primary last, with a failover to
its standby where it is Multi-AZ (about a minute of failed writes instead of a full reboot).
Each instance is back to ``available`` before the next one reboots.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

PENDING = "pending-reboot"


@dataclass(frozen=True)
class Reboot:
    identifier: str
    failover: bool
    """Reboot through a failover to the Multi-AZ standby (primary only)."""


def reboot_plan(instances: list[dict[str, Any]], identifier: str) -> list[Reboot]:
    """The instances of one database (``identifier`` and its ``-replica-N``) whose parameter
    group waits for a reboot: replicas first, the primary last."""
    ours = [
        i
        for i in instances
        if i["DBInstanceIdentifier"] == identifier
        or i["DBInstanceIdentifier"].startswith(f"{identifier}-replica-")
    ]
    pending = [
        i
        for i in ours
        if any(g.get("ParameterApplyStatus") == PENDING for g in i.get("DBParameterGroups", []))
    ]
    pending.sort(key=lambda i: i["DBInstanceIdentifier"] == identifier)
    return [
        Reboot(
            i["DBInstanceIdentifier"],
            failover=i["DBInstanceIdentifier"] == identifier and bool(i.get("MultiAZ")),
        )
        for i in pending
    ]


def apply(rds: Any, plan: list[Reboot]) -> None:
    """Reboot each instance of ``plan`` and wait until it is available again."""
    waiter = rds.get_waiter("db_instance_available")
    for step in plan:
        print(f"rebooting {step.identifier}" + (" with failover" if step.failover else ""))
        rds.reboot_db_instance(DBInstanceIdentifier=step.identifier, ForceFailover=step.failover)
        waiter.wait(DBInstanceIdentifier=step.identifier)


def main(argv: list[str] | None = None, rds: Any = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("identifier", help="the primary's identifier (ssp-<stack>-db)")
    parser.add_argument("--apply", action="store_true", help="reboot; without it, only list")
    args = parser.parse_args(argv)
    if rds is None:
        import boto3

        rds = boto3.client("rds")
    pages = rds.get_paginator("describe_db_instances").paginate()
    instances = [i for page in pages for i in page["DBInstances"]]
    plan = reboot_plan(instances, args.identifier)
    if not plan:
        print(f"{args.identifier}: no parameter waits for a reboot")
        return 0
    for step in plan:
        print(f"pending reboot: {step.identifier}" + (" (failover)" if step.failover else ""))
    if args.apply:
        apply(rds, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
