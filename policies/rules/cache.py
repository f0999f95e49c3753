"""ElastiCache Redis: encryption at rest and in transit, authentication, failover."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import label, num, present, rule

REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"


def _group(args: ResourceValidationArgs) -> str:
    return label("ElastiCache replication group", args.name)


def node_count(props: Mapping[str, Any]) -> int:
    """Nodes of a replication group: ``numCacheClusters``, or shards x (replicas + 1)."""
    clusters = num(props.get("numCacheClusters"))
    if clusters is not None:
        return int(clusters)
    shards = num(props.get("numNodeGroups"), 1.0) or 1.0
    replicas = num(props.get("replicasPerNodeGroup"), 0.0) or 0.0
    return int(shards * (replicas + 1))


def _at_rest(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("atRestEncryptionEnabled") is not True:
        report(
            f"{_group(args)} is not encrypted at rest; set at_rest_encryption_enabled=True "
            "with a kms_key_id (needs a replacement).",
            None,
        )


def _in_transit(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("transitEncryptionEnabled") is not True:
        report(
            f"{_group(args)} accepts plaintext connections; set transit_encryption_enabled=True "
            "and connect with rediss://.",
            None,
        )
    elif args.props.get("transitEncryptionMode") == "preferred":
        report(
            f"{_group(args)} has transit_encryption_mode='preferred', which still accepts "
            "plaintext; set it to 'required'.",
            None,
        )


def _auth(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "authToken") and not present(args.props, "userGroupIds"):
        report(
            f"{_group(args)} lets any client in the network connect without credentials; set "
            "auth_token from a generated secret (or user_group_ids for RBAC).",
            None,
        )


def _failover(args: ResourceValidationArgs, report: ReportViolation) -> None:
    nodes = node_count(args.props)
    if nodes < 2:
        return
    missing = [
        key
        for key, prop in (
            ("automatic_failover_enabled", "automaticFailoverEnabled"),
            ("multi_az_enabled", "multiAzEnabled"),
        )
        if args.props.get(prop) is not True
    ]
    if missing:
        report(
            f"{_group(args)} has {nodes} nodes but no automatic failover across AZs; set "
            f"{' and '.join(f'{k}=True' for k in missing)}.",
            None,
        )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "elasticache-encrypted-at-rest",
        "ElastiCache replication groups encrypt data at rest.",
        [REPLICATION_GROUP],
        _at_rest,
        M,
    ),
    rule(
        "elasticache-encrypted-in-transit",
        "ElastiCache replication groups require TLS.",
        [REPLICATION_GROUP],
        _in_transit,
        M,
    ),
    rule(
        "elasticache-auth-token",
        "ElastiCache replication groups require authentication.",
        [REPLICATION_GROUP],
        _auth,
        M,
    ),
    rule(
        "elasticache-automatic-failover",
        "ElastiCache replication groups with two or more nodes fail over automatically.",
        [REPLICATION_GROUP],
        _failover,
        M,
    ),
]
