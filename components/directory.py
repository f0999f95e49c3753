"""The district directory (tier 4): which region is each district's home.

A DynamoDB global table (docs/tier4.md, "The district directory"): every regional API reads
its own region's replica with ``dynamodb:GetItem`` (milliseconds, and still answering when
another region is down); the move script writes an entry with ``PutItem`` in the home region
and DynamoDB replicates it to the others within about a second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.shared.contract import owned
from components.shared.stack import StackContext

PARTITION_KEY = "district_id"
HOME_REGION = "home_region"


def directory_item(district_id: str, home_region: str) -> str:
    """One entry in DynamoDB's attribute-value JSON (what ``TableItem.item`` takes)."""
    return json.dumps({PARTITION_KEY: {"S": district_id}, HOME_REGION: {"S": home_region}})


def replica_arn(table_arn: str, region: str) -> str:
    """The ARN of a global table's replica in ``region``: the same table name there."""
    parts = table_arn.split(":")
    return ":".join([*parts[:3], region, *parts[4:]])


@dataclass
class DirectoryArgs:
    stack: StackContext
    """The stack: the table's tags (propagated to its replicas), and Pulumi ``protect`` and
    DynamoDB deletion protection."""
    table_name: str
    """Name of the table, the same in every region (``ssp-global-district-directory``)."""
    replica_regions: tuple[str, ...]
    """Regions beside the stack's own that hold a replica (one per regional stack)."""
    districts: Mapping[str, str]
    """Every district and its home region: the entries the table starts with."""


class Directory(pulumi.ComponentResource):
    table_name: pulumi.Output[str]
    """Name of the table in every region (``DISTRICT_DIRECTORY_TABLE``)."""
    table_arn: pulumi.Output[str]
    """ARN of the table in the stack's region."""

    def __init__(self, name: str, args: DirectoryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:directory:Directory", name, None, opts)
        protect = args.stack.protect
        table = aws.dynamodb.Table(
            f"{name}-table",
            name=args.table_name,
            hash_key=PARTITION_KEY,
            attributes=[{"name": PARTITION_KEY, "type": "S"}],
            # A few thousand districts, read once per district per cache period: on demand
            # costs cents, and a move never waits for capacity.
            billing_mode="PAY_PER_REQUEST",
            # Global tables (version 2019.11.21) replicate through the table's stream.
            stream_enabled=True,
            stream_view_type="NEW_AND_OLD_IMAGES",
            replicas=[
                {
                    "region_name": r,
                    "point_in_time_recovery": True,
                    "propagate_tags": True,
                    "deletion_protection_enabled": protect,
                }
                for r in args.replica_regions
            ],
            point_in_time_recovery={"enabled": True},
            # The AWS-managed key (aws/dynamodb): the table holds routing, no student data; a
            # customer key needs one per replica region, set by recreating each replica
            # (accepted scanner finding, docs/review.md).
            server_side_encryption={"enabled": True},
            deletion_protection_enabled=protect,
            tags=args.stack.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=protect),
        )
        for district, region in sorted(args.districts.items()):
            aws.dynamodb.TableItem(
                f"{name}-{district}",
                table_name=table.name,
                hash_key=PARTITION_KEY,
                item=directory_item(district, region),
                # The stack writes a district's first home; afterwards the move script owns
                # the entry (it flips it after the data moved), and the config line is edited
                # to match. An `up` between the two must not flip it back.
                opts=owned(self, depends_on=[table]).merge(
                    pulumi.ResourceOptions(ignore_changes=["item"])
                ),
            )
        self.table_name = table.name
        self.table_arn = table.arn
        self.register_outputs({"table_name": self.table_name, "table_arn": self.table_arn})
