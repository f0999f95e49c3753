"""The ElastiCache rules beyond the table of tests/policies/test_rules.py: the node count that
needs failover, and each missing setting named."""

from __future__ import annotations

from typing import Any

import pytest

from policies.rules.cache import node_count

from .helpers import resource_messages

RG = "aws:elasticache/replicationGroup:ReplicationGroup"
FAILOVER = "elasticache-automatic-failover"


@pytest.mark.parametrize(
    ("props", "nodes"),
    [
        ({"numCacheClusters": 3.0}, 3),
        ({"numCacheClusters": 1.0, "numNodeGroups": 3.0, "replicasPerNodeGroup": 2.0}, 1),
        ({"numNodeGroups": 3.0, "replicasPerNodeGroup": 2.0}, 9),
        ({"numNodeGroups": 2.0}, 2),
        ({"replicasPerNodeGroup": 1.0}, 2),
        ({"numNodeGroups": 0.0, "replicasPerNodeGroup": 0.0}, 1),
        ({}, 1),
    ],
)
def test_a_groups_nodes_are_its_clusters_or_shards_times_copies(
    props: dict[str, Any], nodes: int
) -> None:
    assert node_count(props) == nodes


def test_a_single_node_needs_no_failover_two_do() -> None:
    assert resource_messages(FAILOVER, RG, {"numCacheClusters": 1.0}) == []
    (message,) = resource_messages(FAILOVER, RG, {"numCacheClusters": 2.0}, resource_name="c")
    assert message == (
        "ElastiCache replication group 'c' has 2 nodes but no automatic failover across AZs; "
        "set automatic_failover_enabled=True and multi_az_enabled=True."
    )
    half = {"numNodeGroups": 2.0, "automaticFailoverEnabled": True}
    (message,) = resource_messages(FAILOVER, RG, half, resource_name="c")
    assert "'c' has 2 nodes" in message and message.endswith("set multi_az_enabled=True.")
    both = {**half, "multiAzEnabled": True}
    assert resource_messages(FAILOVER, RG, both) == []


def test_encryption_and_authentication_name_the_group() -> None:
    (message,) = resource_messages("elasticache-encrypted-at-rest", RG, {}, resource_name="c")
    assert message.startswith("ElastiCache replication group 'c' is not encrypted at rest")
    (message,) = resource_messages("elasticache-encrypted-in-transit", RG, {}, resource_name="c")
    assert message.startswith("ElastiCache replication group 'c' accepts plaintext")
    tls = {"transitEncryptionEnabled": True}
    assert resource_messages("elasticache-encrypted-in-transit", RG, tls) == []
    required = {**tls, "transitEncryptionMode": "required"}
    assert resource_messages("elasticache-encrypted-in-transit", RG, required) == []
    (message,) = resource_messages("elasticache-auth-token", RG, {}, resource_name="c")
    assert message.startswith("ElastiCache replication group 'c' lets any client")
    rbac = {"userGroupIds": ["students-app"]}
    assert resource_messages("elasticache-auth-token", RG, rbac) == []
