"""The cache: ElastiCache Redis (failover, encryption, the auth token in its URL), its network
exposure and its alarms."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from components.cache import member_cluster_ids, redis_url
from components.config.catalog import TIERS
from tests.shared import INGRESS_RULE, REPLICATION_GROUP, StackRunner, alarm, ingress_of

# -- pure functions ------------------------------------------------------------------------


def test_redis_url_percent_encodes_the_token() -> None:
    token = "ab#c&d<e>f$g^h!i-j"
    url = redis_url("master.example", token)
    parsed = urlparse(url)
    assert parsed.scheme == "rediss"
    assert (parsed.hostname, parsed.port, parsed.path) == ("master.example", 6379, "/0")
    assert unquote(parsed.password or "") == token


def test_member_cluster_ids_follow_elasticache_naming() -> None:
    assert member_cluster_ids("ssp-tier3-redis", 2) == [
        "ssp-tier3-redis-001",
        "ssp-tier3-redis-002",
    ]


# -- per stack -----------------------------------------------------------------------------


def test_tier3_redis_fails_over_and_encrypts(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    group = run.one(REPLICATION_GROUP, "cache-redis")
    assert group.get("engine") == "redis"
    assert group.get("engineVersion") == "7.1"
    assert group.get("nodeType") == tier.cache.node_type
    assert group.get("numCacheClusters") == tier.cache.num_nodes
    assert group.get("automaticFailoverEnabled") is True
    assert group.get("multiAzEnabled") is True
    assert group.get("atRestEncryptionEnabled") is True
    assert group.get("kmsKeyId", "").startswith("arn:aws:kms:")
    assert group.get("transitEncryptionEnabled") is True
    assert group.get("snapshotRetentionLimit") >= 7
    assert group.get("applyImmediately") is False
    assert group.get("tags.data-classification") == "ferpa"
    params = run.one("aws:elasticache/parameterGroup:ParameterGroup", "cache-params")
    assert params.get("family") == "redis7"
    assert params.get("parameters") == [{"name": "maxmemory-policy", "value": "allkeys-lru"}]
    assert run.outputs["cache_primary_endpoint"]


def test_cache_admits_only_the_app(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    rules = [r for r in ingress_of(run, "cache-sg") if r.type == INGRESS_RULE]
    assert [r.name for r in rules] == ["cache-sg-from-client-0"]
    rule = rules[0]
    assert rule.get("referencedSecurityGroupId", "").startswith("network-app-sg-")
    assert rule.get("cidrIpv4") is None
    assert (rule.get("fromPort"), rule.get("toPort")) == (6379, 6379)


def test_cache_alarms_cover_every_node(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    tier = TIERS["tier3"]
    for i in range(1, tier.cache.num_nodes + 1):
        node = f"ssp-tier3-redis-{i:03d}"
        cpu = alarm(run, f"cache-node-{i}-cpu")
        assert cpu.get("metricName") == "EngineCPUUtilization"
        assert cpu.get("threshold") == tier.alarms.cpu_percent
        assert cpu.get("dimensions.CacheClusterId") == node
        memory = alarm(run, f"cache-node-{i}-memory")
        assert memory.get("metricName") == "DatabaseMemoryUsagePercentage"
        assert memory.get("threshold") == tier.alarms.memory_percent
        evictions = alarm(run, f"cache-node-{i}-evictions")
        assert (evictions.get("threshold"), evictions.get("evaluationPeriods")) == (0, 3)
        assert evictions.get("statistic") == "Sum"
