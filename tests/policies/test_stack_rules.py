"""Stack rules on synthetic resource sets: what each one catches, and silence when fine."""

from __future__ import annotations

import json
from typing import Any

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from .helpers import TAGS, stack_messages, stack_resource

RDS = "aws:rds/instance:Instance"
PG = "aws:rds/parameterGroup:ParameterGroup"
PROXY = "aws:rds/proxy:Proxy"
TARGET_GROUP = "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CRON_JOB = "kubernetes:batch/v1:CronJob"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
LB = "aws:lb/loadBalancer:LoadBalancer"
BUCKET = "aws:s3/bucket:Bucket"


def tags(tier: str = "tier3") -> dict[str, str]:
    return {**TAGS, "tier": tier, "stack": tier}


def database(
    max_connections: int, *, proxy_percent: int | None, tier: str = "tier3"
) -> list[PolicyResource]:
    found = [
        stack_resource(
            RDS,
            "database-primary",
            {"id": "db-1", "parameterGroupName": "pg-1", "multiAz": True, "tags": tags(tier)},
        ),
        stack_resource(
            PG,
            "database-params",
            {
                "id": "pg-1",
                "name": "pg-1",
                "parameters": [{"name": "max_connections", "value": str(max_connections)}],
            },
        ),
    ]
    if proxy_percent is not None:
        found += [
            stack_resource(PROXY, "database-proxy", {"requireTls": True}),
            stack_resource(
                TARGET_GROUP,
                "database-proxy-targets",
                {"connectionPoolConfig": {"maxConnectionsPercent": float(proxy_percent)}},
            ),
        ]
    return found


def api(
    env: dict[str, str], max_replicas: int, *, via_config_map: bool = True
) -> list[PolicyResource]:
    container: dict[str, Any] = {"name": "api", "image": "repo/app:1.0"}
    if via_config_map:
        container["envFrom"] = [{"configMapRef": {"name": "app-config"}}]
    else:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return [
        stack_resource(
            CONFIG_MAP, "workloads-config", {"metadata": {"name": "app-config"}, "data": env}
        ),
        stack_resource(
            DEPLOYMENT,
            "workloads-api",
            {
                "metadata": {"name": "api"},
                "spec": {"replicas": 2.0, "template": {"spec": {"containers": [container]}}},
            },
        ),
        stack_resource(
            HPA,
            "workloads-api-hpa",
            {
                "spec": {
                    "scaleTargetRef": {"kind": "Deployment", "name": "api"},
                    "minReplicas": 2.0,
                    "maxReplicas": float(max_replicas),
                }
            },
        ),
    ]


def trainer(connections: int) -> PolicyResource:
    container = {
        "name": "trainer",
        "envFrom": [{"configMapRef": {"name": "app-config"}}],
        # Direct env wins over the ConfigMap, as in Kubernetes.
        "env": [{"name": "DB_POOL_MAX", "value": str(connections)}],
    }
    return stack_resource(
        CRON_JOB,
        "workloads-trainer",
        {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [container]}}}}}},
    )


# -- connection capacity ---------------------------------------------------------------------


def test_capacity_within_the_proxy_budget_is_silent() -> None:
    # tier3: (2 + 5) x 20 pods + 4 = 144 <= 75% of 500 = 375
    resources = [
        *database(500, proxy_percent=75),
        *api({"DB_POOL_MAX": "7"}, 20),
        trainer(4),
    ]
    assert stack_messages("connection-capacity", resources) == []


def test_pool_too_big_for_max_connections_through_the_proxy() -> None:
    # A tier3 variant whose per-pod pool is 20 + 10: 30 x 20 pods + 4 = 604 > 375.
    resources = [
        *database(500, proxy_percent=75),
        *api({"DB_POOL_SIZE": "20", "DB_MAX_OVERFLOW": "10"}, 20),
        trainer(4),
    ]
    found = stack_messages("connection-capacity", resources)
    assert len(found) == 1
    message, urn = found[0]
    assert "30 (DB_POOL_SIZE 20 + DB_MAX_OVERFLOW 10) x 20 pods (HPA maxReplicas)" in message
    assert "= 604 connections > 75% of max_connections 500 through the RDS proxy = 375" in message
    assert "database-params" in message and urn and urn.endswith("::database-params")


def test_capacity_without_proxy_keeps_the_reserve() -> None:
    # tier1: 9 x 4 + 2 = 38 <= 50 - 10 = 40, but 10 x 4 + 2 = 42 is not.
    ok = [
        *database(50, proxy_percent=None, tier="tier1"),
        *api({"DB_POOL_MAX": "9"}, 4),
        trainer(2),
    ]
    assert stack_messages("connection-capacity", ok) == []
    bad = [
        *database(50, proxy_percent=None, tier="tier1"),
        *api({"DB_POOL_MAX": "10"}, 4),
        trainer(2),
    ]
    (message, _), *_ = stack_messages("connection-capacity", bad)
    assert "= 42 connections > max_connections 50 - 10 reserved = 40" in message
    assert stack_messages("connection-capacity", bad, {"reservedConnections": 5}) == []


def test_capacity_counts_a_keda_scaled_workload_at_its_maximum() -> None:
    # tier3 with the event worker: 7 x 20 API pods + 4 + 2 x 10 workers = 164 <= 375, and
    # 2 x 200 workers (KEDA's maxReplicaCount, not the API's HPA) would not fit.
    def worker(max_workers: int) -> list[PolicyResource]:
        container = {"name": "worker", "env": [{"name": "DB_POOL_MAX", "value": "2"}]}
        return [
            stack_resource(
                DEPLOYMENT,
                "workloads-worker",
                {
                    "metadata": {"name": "worker"},
                    "spec": {"template": {"spec": {"containers": [container]}}},
                },
            ),
            stack_resource(
                "kubernetes:keda.sh/v1alpha1:ScaledObject",
                "workloads-worker-scaler",
                {"spec": {"scaleTargetRef": {"name": "worker"}, "maxReplicaCount": max_workers}},
            ),
        ]

    base = [*database(500, proxy_percent=75), *api({"DB_POOL_MAX": "7"}, 20), trainer(4)]
    assert stack_messages("connection-capacity", [*base, *worker(10)]) == []
    (message, _), *_ = stack_messages("connection-capacity", [*base, *worker(200)])
    assert "workloads-worker: 2 (DB_POOL_MAX) x 200 pods (KEDA maxReplicaCount)" in message


def test_capacity_reads_direct_env_too() -> None:
    resources = [
        *database(50, proxy_percent=None, tier="tier1"),
        *api({"DB_POOL_MAX": "20"}, 4, via_config_map=False),
    ]
    (message, _), *_ = stack_messages("connection-capacity", resources)
    assert "20 (DB_POOL_MAX) x 4 pods" in message


def test_proxy_taking_everything_leaves_no_reserve() -> None:
    resources = [*database(100, proxy_percent=100), *api({"DB_POOL_MAX": "1"}, 2)]
    (message, urn), *_ = stack_messages("connection-capacity", resources)
    assert "leaving fewer than 10 connections" in message
    assert urn and urn.endswith("::database-proxy-targets")


def test_capacity_inputs_missing_is_advisory_and_named() -> None:
    resources = [*database(500, proxy_percent=75), *api({"LOG_LEVEL": "INFO"}, 20)]
    assert stack_messages("connection-capacity", resources) == []
    (message, _), *_ = stack_messages("connection-capacity-inputs", resources)
    assert "DB_POOL_MAX" in message and "DB_POOL_SIZE" in message
    complete = [*database(500, proxy_percent=75), *api({"DB_POOL_MAX": "7"}, 20)]
    assert stack_messages("connection-capacity-inputs", complete) == []


# -- tier consistency --------------------------------------------------------------------------


def ha_stack(tier: str = "tier3") -> list[PolicyResource]:
    t = tags(tier)
    return [
        stack_resource(RDS, "database-primary", {"multiAz": True, "tags": t}),
        stack_resource(RDS, "database-replica-1", {"replicateSourceDb": "db-1", "tags": t}),
        stack_resource(RDS, "database-replica-2", {"replicateSourceDb": "db-1", "tags": t}),
        stack_resource(
            "aws:elasticache/replicationGroup:ReplicationGroup",
            "cache-redis",
            {"automaticFailoverEnabled": True, "numCacheClusters": 3.0, "tags": t},
        ),
        stack_resource(
            "aws:cloudfront/distribution:Distribution",
            "edge-cdn",
            {"webAclId": "arn:waf", "tags": t},
        ),
        *api({"DB_POOL_MAX": "7"}, 20),
    ]


def test_complete_ha_tier_is_consistent() -> None:
    assert stack_messages("tier-consistency", ha_stack()) == []


def test_ha_tier_missing_pieces_are_each_reported() -> None:
    broken = [
        r for r in ha_stack() if r.name not in ("database-replica-2", "edge-cdn", "cache-redis")
    ]
    broken[0] = stack_resource(RDS, "database-primary", {"multiAz": False, "tags": tags()})
    messages = [m for m, _ in stack_messages("tier-consistency", broken)]
    assert any("'database-primary' must be Multi-AZ" in m for m in messages)
    assert any("1 RDS read replica(s), at least 2" in m for m in messages)
    assert any("ElastiCache Redis replication group" in m for m in messages)
    assert any("CloudFront distribution with a WAF" in m for m in messages)


def test_dev_may_relax_the_catalog() -> None:
    dev = [stack_resource(RDS, "database-primary", {"multiAz": False, "tags": tags("dev")})]
    assert stack_messages("tier-consistency", dev) == []
    assert stack_messages("tier-consistency", dev, {"haTiers": ["dev"]}) != []


# -- network -------------------------------------------------------------------------------------


def data_network(ingress: dict[str, Any]) -> list[PolicyResource]:
    return [
        stack_resource(RDS, "database-primary", {"vpcSecurityGroupIds": ["sg-db"], "tags": tags()}),
        stack_resource(SG, "database-sg", {"id": "sg-db", "tags": tags()}),
        stack_resource(INGRESS, "database-sg-in", {"securityGroupId": "sg-db", **ingress}),
    ]


def test_data_store_admitting_the_app_group_is_fine() -> None:
    ok = data_network(
        {
            "ipProtocol": "tcp",
            "fromPort": 5432.0,
            "toPort": 5432.0,
            "referencedSecurityGroupId": "sg-app",
        }
    )
    assert stack_messages("data-stores-reachable-only-from-app", ok) == []


def test_data_store_admitting_a_cidr_is_reported() -> None:
    bad = data_network({"ipProtocol": "-1", "cidrIpv4": "10.20.0.0/16"})
    (message, urn), *_ = stack_messages("data-stores-reachable-only-from-app", bad)
    assert "10.20.0.0/16" in message and urn and urn.endswith("::database-sg-in")


def test_data_store_inline_ingress_and_unknown_ids_fall_back_to_the_component() -> None:
    component = stack_resource("ssp:cache:Cache", "cache", {})
    unknown = unknown_checking_proxy(
        {"id": UNKNOWN_STRING_VALUE, "securityGroupIds": [UNKNOWN_STRING_VALUE]}
    )
    group = stack_resource(
        SG,
        "cache-sg",
        {
            "id": UNKNOWN_STRING_VALUE,
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 6379.0,
                    "toPort": 6379.0,
                    "cidrBlocks": ["10.0.0.0/8"],
                }
            ],
        },
        parent=component,
    )
    group.props = unknown_checking_proxy(dict(group.props))
    cache = stack_resource(
        "aws:elasticache/replicationGroup:ReplicationGroup", "cache-redis", {}, parent=component
    )
    cache.props = unknown
    (message, _), *_ = stack_messages(
        "data-stores-reachable-only-from-app", [component, group, cache]
    )
    assert "'cache-sg' lets 10.0.0.0/8" in message


def test_public_web_ingress_only_on_load_balancer_groups() -> None:
    web = {"ipProtocol": "tcp", "fromPort": 443.0, "toPort": 443.0, "cidrIpv4": "0.0.0.0/0"}
    ok = [
        stack_resource(LB, "workloads-alb", {"securityGroups": ["sg-alb"], "tags": tags()}),
        stack_resource(INGRESS, "alb-in-443", {"securityGroupId": "sg-alb", **web}),
    ]
    assert stack_messages("sg-public-web-only-on-load-balancers", ok) == []
    bad = [
        *ok,
        stack_resource(
            SG_RULE,
            "nodes-in-443",
            {
                "type": "ingress",
                "securityGroupId": "sg-app",
                "protocol": "tcp",
                "fromPort": 443.0,
                "toPort": 443.0,
                "cidrBlocks": ["0.0.0.0/0"],
            },
        ),
    ]
    (message, urn), *_ = stack_messages("sg-public-web-only-on-load-balancers", bad)
    assert "'nodes-in-443'" in message and urn and urn.endswith("::nodes-in-443")


# -- S3 -----------------------------------------------------------------------------------------


def test_bucket_controls_present() -> None:
    tls = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": "s3:*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ]
        }
    )
    bucket = stack_resource(
        BUCKET, "models-bucket", {"id": "models-x", "bucket": "ssp-models", "tags": tags()}
    )
    companions = [
        stack_resource(
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            "models-pab",
            {"bucket": "models-x"},
        ),
        stack_resource(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
            "models-sse",
            {"bucket": "models-x"},
        ),
        stack_resource(
            "aws:s3/bucketPolicy:BucketPolicy",
            "models-policy",
            {"bucket": "models-x", "policy": tls},
        ),
        stack_resource(
            "aws:s3/bucketVersioning:BucketVersioning",
            "models-versioning",
            {"bucket": "models-x", "versioningConfiguration": {"status": "Enabled"}},
        ),
    ]
    assert stack_messages("s3-bucket-controls-present", [bucket, *companions]) == []
    (message, _), *_ = stack_messages("s3-bucket-controls-present", [bucket, *companions[:2]])
    assert "aws:SecureTransport=false" in message and "versioning" in message
    # An audit archive is not a model bucket: versioning is its own choice.
    archive = stack_resource(BUCKET, "audit-archive", {"id": "audit-x", "tags": tags()})
    others = [
        stack_resource(r.resource_type, f"audit-{r.name}", {**r.props, "bucket": "audit-x"})
        for r in companions[:3]
    ]
    assert stack_messages("s3-bucket-controls-present", [archive, *others]) == []


# -- the internet-facing entries and their logs ------------------------------------------------

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
ALB_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/api/1"
ACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/api/1"


def _alb(parent: PolicyResource | None = None, **props: Any) -> PolicyResource:
    return stack_resource(LB, "api", {"internal": False, "arn": ALB_ARN, **props}, parent)


def test_internet_facing_load_balancer_needs_a_waf() -> None:
    alb = _alb()
    associated = stack_resource(
        ASSOCIATION, "api-waf", {"resourceArn": ALB_ARN, "webAclArn": ACL_ARN}
    )
    elsewhere = stack_resource(ASSOCIATION, "other", {"resourceArn": f"{ALB_ARN}-other"})
    assert stack_messages("internet-entry-has-waf", [alb, associated]) == []
    ((message, urn),) = stack_messages("internet-entry-has-waf", [alb, elsewhere])
    assert "'api' is internet-facing without a WAF" in message and urn == alb.urn
    internal = _alb(internal=True)
    assert stack_messages("internet-entry-has-waf", [internal]) == []


def test_behind_cloudfront_the_distributions_waf_guards_the_load_balancer() -> None:
    component = stack_resource("ssp:api_load_balancer:ApiLoadBalancer", "lb", {})
    alb = _alb(component)
    from_cloudfront = stack_resource(
        INGRESS, "lb-in-443", {"prefixListId": "pl-3b927c52", "fromPort": 443.0}, component
    )
    from_anywhere = stack_resource(
        INGRESS, "lb-in-80", {"cidrIpv4": "0.0.0.0/0", "fromPort": 80.0}, component
    )
    cdn = stack_resource(DISTRIBUTION, "cdn", {"webAclId": ACL_ARN})
    assert stack_messages("internet-entry-has-waf", [alb, from_cloudfront, cdn]) == []
    # Open to a CIDR, or a distribution without a web ACL: the load balancer is exposed.
    assert stack_messages("internet-entry-has-waf", [alb, from_cloudfront, from_anywhere, cdn])
    bare = stack_resource(DISTRIBUTION, "cdn", {})
    assert stack_messages("internet-entry-has-waf", [alb, from_cloudfront, bare])


def test_first_preview_joins_the_association_by_component() -> None:
    component = stack_resource("ssp:api_load_balancer:ApiLoadBalancer", "lb", {})
    alb = stack_resource(LB, "api", {}, component)
    alb.props = unknown_checking_proxy({"internal": False, "arn": UNKNOWN_STRING_VALUE})
    association = stack_resource(ASSOCIATION, "api-waf", {}, component)
    association.props = unknown_checking_proxy({"resourceArn": UNKNOWN_STRING_VALUE})
    assert stack_messages("internet-entry-has-waf", [alb, association]) == []


def test_every_web_acl_logs() -> None:
    acl = stack_resource(WEB_ACL, "api-waf", {"arn": ACL_ARN, "scope": "REGIONAL"})
    logging = stack_resource(WAF_LOGGING, "api-waf-logging", {"resourceArn": ACL_ARN})
    assert stack_messages("waf-logging", [acl, logging]) == []
    ((message, urn),) = stack_messages("waf-logging", [acl])
    assert "'api-waf' logs nothing" in message and urn == acl.urn
    other = stack_resource(WAF_LOGGING, "x", {"resourceArn": f"{ACL_ARN}-other"})
    assert stack_messages("waf-logging", [acl, other])


def test_ferpa_buckets_keep_server_access_logs() -> None:
    ferpa = {**tags(), "data-classification": "ferpa"}
    models = stack_resource(BUCKET, "models-bucket", {"id": "models-x", "tags": ferpa})
    logged = stack_resource(BUCKET_LOGGING, "models-access-logging", {"bucket": "models-x"})
    assert stack_messages("s3-access-logging", [models, logged]) == []
    ((message, urn),) = stack_messages("s3-access-logging", [models])
    assert "'models-bucket' holds student records without server access logs" in message
    assert urn == models.urn
    # The access-log bucket does not log into itself; internal buckets are not required to.
    log_bucket = stack_resource(BUCKET, "access-logs-bucket", {"id": "logs-x", "tags": ferpa})
    internal = stack_resource(BUCKET, "scratch", {"id": "s", "tags": tags()})
    assert stack_messages("s3-access-logging", [log_bucket, internal]) == []


def _signed_zone(status: str = "SIGNING") -> list[PolicyResource]:
    component = stack_resource("ssp:global_dns:GlobalDns", "dns", {})
    zone = stack_resource(
        "aws:route53/zone:Zone", "dns-zone", {"name": "ssp.example.org", "zoneId": "Z1"}, component
    )
    ksk = stack_resource(
        "aws:route53/keySigningKey:KeySigningKey", "dns-ksk", {"hostedZoneId": "Z1"}, component
    )
    signing = stack_resource(
        "aws:route53/hostedZoneDnsSec:HostedZoneDnsSec",
        "dns-dnssec",
        {"hostedZoneId": "Z1", "signingStatus": status},
        component,
    )
    return [component, zone, ksk, signing]


def test_a_signed_public_zone_and_a_private_zone_pass() -> None:
    private = stack_resource(
        "aws:route53/zone:Zone", "database-zone", {"name": "x.internal", "vpcs": [{"vpcId": "v"}]}
    )
    assert stack_messages("route53-public-zone-dnssec", [*_signed_zone(), private]) == []


def test_an_unsigned_public_zone_is_reported() -> None:
    component, zone, ksk, _ = _signed_zone()
    for resources in ([component, zone, ksk], _signed_zone("NOT_SIGNING"), [component, zone]):
        ((message, at),) = stack_messages("route53-public-zone-dnssec", resources)
        assert message.startswith("Public hosted zone 'dns-zone' is not signed")
        assert at == zone.urn
    # Another zone's signing does not count.
    other = _signed_zone()
    other[3].props = {"hostedZoneId": "Z2", "signingStatus": "SIGNING"}
    assert len(stack_messages("route53-public-zone-dnssec", other)) == 1


def test_on_a_first_preview_the_zone_signing_is_joined_by_component() -> None:
    resources = _signed_zone()
    for r in resources[1:]:
        r.props = unknown_checking_proxy(
            {**r.props, "zoneId": UNKNOWN_STRING_VALUE, "hostedZoneId": UNKNOWN_STRING_VALUE}
        )
    assert stack_messages("route53-public-zone-dnssec", resources) == []
