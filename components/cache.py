"""Redis on ElastiCache: one replication group, encrypted at rest and in transit, with an
auth token, automatic failover where there is a replica to fail over to, and its alarms."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.config.tier import AlarmThresholds, CacheSize
from components.shared.alarms import Threshold, metric_alarm
from components.shared.contract import REDIS_PORT, NetworkRef, check_identifier
from components.shared.kms import account_key_policy, customer_key
from components.shared.security_groups import admit_from_groups
from components.shared.stack import StackContext

ENGINE_VERSION = "7.1"  # Redis 7.1: ElastiCache applies patch releases itself
PARAMETER_FAMILY = "redis7"
# ElastiCache accepts 16-128 printable characters in an auth token, with only these
# specials (no '@', '"' or '/').
TOKEN_SPECIALS = "!&#$^<>-"
TOKEN_LENGTH = 64
# Night in the continental US (UTC), the two windows apart.
SNAPSHOT_WINDOW = "06:00-07:00"
MAINTENANCE_WINDOW = "sun:10:30-11:30"


def redis_url(host: str, token: str) -> str:
    """TLS URL with the token percent-encoded: it may hold '#', '&', '<'... (redis-py and
    most clients unquote the password part)."""
    return f"rediss://:{quote(token, safe='')}@{host}:{REDIS_PORT}/0"


def member_cluster_ids(replication_group_id: str, nodes: int) -> list[str]:
    """Node ids ElastiCache gives the members of a non-clustered group (``<id>-001``...),
    which CloudWatch uses as the CacheClusterId dimension."""
    return [f"{replication_group_id}-{i:03d}" for i in range(1, nodes + 1)]


@dataclass
class CacheArgs:
    stack: StackContext
    """The stack: the prefix of the AWS names (``ssp-tier3`` -> replication group
    ``ssp-tier3-redis``), tags, the alarm topic, and ``protect`` (Pulumi ``protect`` and a
    final snapshot; False on dev only)."""
    network: NetworkRef
    """The VPC: the nodes take its isolated subnets and admit only its app tier's group on
    6379."""
    size: CacheSize
    """The tier's cache slice: node type and count, snapshot retention."""
    alarms: AlarmThresholds
    """The tier's alarm thresholds."""
    apply_immediately: bool = False
    """Apply modifications at once instead of in the maintenance window (dev only)."""


class Cache(pulumi.ComponentResource):
    primary_endpoint: pulumi.Output[str]
    """Host of the primary node (follows failovers)."""
    reader_endpoint: pulumi.Output[str]
    """Host spreading reads over the replicas."""
    port: int
    """Redis port."""
    url: pulumi.Output[str]
    """``rediss://:<token>@<primary>:6379/0`` (a secret Output)."""
    replication_group_id: pulumi.Output[str]
    """ID of the replication group."""
    security_group_id: pulumi.Output[str]
    """Security group of the nodes."""

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:cache:Cache", name, None, opts)
        stack, size, tags = args.stack, args.size, args.stack.tags
        group_id = check_identifier(f"{stack.name_prefix}-redis", 40)
        nodes = size.num_nodes
        if nodes < 1:
            raise ValueError(f"cache_num_nodes={nodes}: a cache needs at least one node")
        child = pulumi.ResourceOptions(parent=self)

        key = customer_key(
            f"{name}-key",
            description=f"Encrypts {group_id}: data at rest and snapshots",
            policy=account_key_policy(),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=stack.protect),
        )
        token = random.RandomPassword(
            f"{name}-auth-token",
            length=TOKEN_LENGTH,
            special=True,
            override_special=TOKEN_SPECIALS,
            opts=child,
        )
        secret_token: pulumi.Output[str] = pulumi.Output.secret(token.result)

        subnet_group, sg = self._network(name, group_id, args.network, tags)
        params = aws.elasticache.ParameterGroup(
            f"{name}-params",
            family=PARAMETER_FAMILY,
            description=f"Redis 7 settings of {group_id}",
            # A cache, not a store: when memory is full, drop the least recently used key
            # rather than refuse writes.
            parameters=[{"name": "maxmemory-policy", "value": "allkeys-lru"}],
            tags=tags,
            opts=child,
        )

        failover = nodes >= 2
        group = aws.elasticache.ReplicationGroup(
            f"{name}-redis",
            replication_group_id=group_id,
            description=f"Redis cache of {stack.name_prefix}",
            engine="redis",
            engine_version=ENGINE_VERSION,
            node_type=size.node_type,
            num_cache_clusters=nodes,
            parameter_group_name=params.name,
            port=REDIS_PORT,
            subnet_group_name=subnet_group.name,
            security_group_ids=[sg.id],
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            # In-transit encryption from day one: turning it on later replaces the group
            # (a new, empty cache), and the auth token needs it anyway.
            transit_encryption_enabled=True,
            auth_token=secret_token,
            snapshot_retention_limit=size.snapshot_retention_days,
            snapshot_window=SNAPSHOT_WINDOW,
            maintenance_window=MAINTENANCE_WINDOW,
            final_snapshot_identifier=f"{group_id}-final" if stack.protect else None,
            # Outside dev, changes (node type, parameters...) wait for the maintenance window
            # instead of restarting nodes in the middle of a school day.
            apply_immediately=args.apply_immediately,
            auto_minor_version_upgrade=True,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self, protect=stack.protect, additional_secret_outputs=["authToken"]
            ),
        )

        self._alarms(name, args.alarms, stack, group_id, nodes)

        self.primary_endpoint = group.primary_endpoint_address
        self.reader_endpoint = group.reader_endpoint_address
        self.port = REDIS_PORT
        self.url = pulumi.Output.secret(
            pulumi.Output.all(group.primary_endpoint_address, secret_token).apply(
                lambda v: redis_url(v[0], v[1])
            )
        )
        self.replication_group_id = group.replication_group_id
        self.security_group_id = sg.id
        self.register_outputs(
            {
                "primary_endpoint": self.primary_endpoint,
                "reader_endpoint": self.reader_endpoint,
                "port": self.port,
                "url": self.url,
                "replication_group_id": self.replication_group_id,
                "security_group_id": self.security_group_id,
            }
        )

    def _network(
        self, name: str, group_id: str, network: NetworkRef, tags: dict[str, str]
    ) -> tuple[aws.elasticache.SubnetGroup, aws.ec2.SecurityGroup]:
        """The isolated subnets' group, and a security group admitting only the app tier."""
        child = pulumi.ResourceOptions(parent=self)
        subnet_group = aws.elasticache.SubnetGroup(
            f"{name}-subnets",
            description=f"Isolated subnets of {group_id}",
            subnet_ids=list(network.isolated_subnet_ids),
            tags=tags,
            opts=child,
        )
        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=network.vpc_id,
            description=f"Redis {group_id}: 6379 from the app only",
            tags={**tags, "Name": f"{group_id}-sg"},
            opts=child,
        )
        admit_from_groups(
            f"{name}-sg-from-client",
            security_group=sg,
            owner=self,
            sources=[network.app_security_group_id],
            port=REDIS_PORT,
            description="Redis from the application tier",
            tags=tags,
        )
        return subnet_group, sg

    def _alarms(
        self, name: str, alarms: AlarmThresholds, stack: StackContext, group_id: str, nodes: int
    ) -> None:
        """Engine CPU, memory and sustained evictions on every node."""

        def alarm(
            index: int, node: str, role: str, description: str, metric: str, threshold: Threshold
        ) -> None:
            metric_alarm(
                f"{name}-node-{index}-{role}",
                description=f"{node}: {description}",
                namespace="AWS/ElastiCache",
                metric=metric,
                dimensions={"CacheClusterId": node},
                threshold=threshold,
                statistic="Sum" if metric == "Evictions" else "Average",
                topic_arn=stack.alarm_topic,
                tags=stack.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )

        for i, node in enumerate(member_cluster_ids(group_id, nodes), start=1):
            alarm(
                i,
                node,
                "cpu",
                f"engine CPU above {alarms.cpu_percent}% for 10 minutes",
                "EngineCPUUtilization",
                Threshold(alarms.cpu_percent, period_seconds=300, periods=2),
            )
            # The app gives every key a TTL, so a healthy cache stays below maxmemory; nearing
            # it means evictions are next.
            alarm(
                i,
                node,
                "memory",
                f"memory above {alarms.memory_percent}% of maxmemory",
                "DatabaseMemoryUsagePercentage",
                Threshold(alarms.memory_percent, period_seconds=60, periods=5),
            )
            # An eviction burst is allkeys-lru doing its job; evictions in each of three
            # consecutive 5-minute periods mean the working set no longer fits the node.
            alarm(
                i,
                node,
                "evictions",
                "keys evicted in every 5 minutes for 15 minutes",
                "Evictions",
                Threshold(0, period_seconds=300, periods=3, missing_data="notBreaching"),
            )
