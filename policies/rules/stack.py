"""Stack rules: properties no single resource shows.

- ``connection-capacity``: per-pod pool x the HPA's maxReplicas (+ batch jobs) fits the
  primary's connection budget: ``max_connections`` from the RDS parameter group, through the
  RDS proxy its ``maxConnectionsPercent`` share, else ``max_connections`` minus the reserved
  connections. The per-pod pool is ``DB_POOL_MAX``, else ``DB_POOL_SIZE`` + ``DB_MAX_OVERFLOW``,
  from the pods' environment (direct ``env`` values or the ConfigMap keys they reference).
- ``tier-consistency``: what a highly-available tier must have (Multi-AZ, replicas, Redis
  failover, WAF on CloudFront); the tier is read from the resources' ``tier`` tag.
- ``data-stores-reachable-only-from-app``: DB/proxy/cache security groups admit security
  groups only, never CIDRs.
- ``sg-public-web-only-on-load-balancers``: public 80/443 sits on a load balancer's group.
- ``s3-bucket-controls-present``: every bucket has its public access block, SSE-KMS, TLS-only
  policy, and versioning when it holds models.

During a preview, IDs of new resources are unknown: joins then fall back to the component tree
(a resource and its companions share a parent), and values that stay unknown are skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from . import cache, kubernetes, network, s3
from ._util import as_list, get, known, num, present, setting

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
RDS_PROXY = "aws:rds/proxy:Proxy"
RDS_PROXY_TARGET_GROUP = "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
HPAS = (
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
    "kubernetes:autoscaling/v1:HorizontalPodAutoscaler",
)
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
# A pod's connections: DB_POOL_MAX (a min/max pool such as asyncpg's or psycopg's), else
# DB_POOL_SIZE + DB_MAX_OVERFLOW (SQLAlchemy's QueuePool).
POOL_MAX_KEY = "DB_POOL_MAX"
POOL_KEY, OVERFLOW_KEY = "DB_POOL_SIZE", "DB_MAX_OVERFLOW"
POOL_KEYS = (POOL_MAX_KEY, POOL_KEY)


def at_path(value: Any, path: str, default: Any = None) -> Any:
    """``get`` that yields ``default`` for a value unknown during a preview."""
    return known(partial(get, value, path, default), default)


def val(r: PolicyResource, path: str, default: Any = None) -> Any:
    """A property at a dotted path, ``default`` when absent or unknown during a preview."""
    return at_path(r.props, path, default)


def undecided(r: PolicyResource, path: str) -> bool:
    """The property is unknown during a preview: it is decided at apply time (another
    resource's output), so a rule must neither pass nor fail on it as if it were missing."""
    try:
        get(r.props, path)
    except UnknownValueError:
        return True
    return False


def vals(r: PolicyResource, path: str) -> list[Any]:
    return known(lambda: as_list(get(r.props, path)), []) or []


def of_type(resources: Iterable[PolicyResource], *types: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type in types]


def parent_urn(r: PolicyResource) -> str | None:
    return r.parent.urn if r.parent is not None else r.opts.parent


def is_replica(r: PolicyResource) -> bool:
    return present(r.props, "replicateSourceDb")


def stack_tier(resources: Iterable[PolicyResource]) -> str | None:
    """The tier most resources are tagged with."""
    tiers = Counter(str(t) for r in resources if (t := val(r, "tags.tier")))
    return tiers.most_common(1)[0][0] if tiers else None


def _report_each(report: ReportViolation) -> Callable[[str, PolicyResource | None], None]:
    return lambda message, r: report(message, r.urn if r is not None else None)


# -- connection capacity ---------------------------------------------------------------------

CAPACITY_SCHEMA = PolicyConfigSchema(
    properties={
        "reservedConnections": {
            "type": "integer",
            "minimum": 0,
            "default": 10,
            "description": "Connections kept for superusers, migrations, operators and "
            "monitoring when the app connects without a proxy (and left over by the proxy).",
        },
    }
)


@dataclass(frozen=True)
class PoolUser:
    """A workload that opens a connection pool to the primary."""

    resource: PolicyResource
    per_pod: int
    per_pod_from: str
    pods: int
    pods_from: str

    @property
    def demand(self) -> int:
        return self.per_pod * self.pods

    def describe(self) -> str:
        return (
            f"{self.resource.name}: {self.per_pod} ({self.per_pod_from}) x {self.pods} pods "
            f"({self.pods_from})"
        )


def per_pod_connections(env: Mapping[str, Any]) -> tuple[int, str]:
    """Connections one container may open, and how that was read from its environment."""
    if env.get(POOL_MAX_KEY) is not None:
        return int(num(env.get(POOL_MAX_KEY), 0.0) or 0), POOL_MAX_KEY
    pool = int(num(env.get(POOL_KEY), 0.0) or 0)
    overflow = int(num(env.get(OVERFLOW_KEY), 0.0) or 0)
    return pool + overflow, f"{POOL_KEY} {pool} + {OVERFLOW_KEY} {overflow}"


def _config_maps(resources: list[PolicyResource]) -> dict[str, Mapping[str, Any]]:
    maps: dict[str, Mapping[str, Any]] = {}
    for r in of_type(resources, CONFIG_MAP):
        data = val(r, "data", {}) or {}
        for name in (val(r, "metadata.name"), r.name):
            if name:
                maps.setdefault(str(name), data)
    return maps


def container_env(
    container: Mapping[str, Any], maps: Mapping[str, Mapping[str, Any]], fallback: Mapping[str, Any]
) -> dict[str, Any]:
    """Environment of a container: ``envFrom`` ConfigMaps overridden by direct ``env``. A
    reference to a ConfigMap whose name is not known yet resolves to ``fallback``."""
    env: dict[str, Any] = {}
    for source in known(lambda: as_list(container.get("envFrom")), []) or []:
        ref = at_path(source, "configMapRef.name")
        if at_path(source, "configMapRef") is not None:
            env.update(maps.get(str(ref), fallback) if ref else fallback)
    for item in known(lambda: as_list(container.get("env")), []) or []:
        name = at_path(item, "name")
        if not name:
            continue
        value = at_path(item, "value")
        ref = at_path(item, "valueFrom.configMapKeyRef")
        if value is not None:
            env[str(name)] = value
        elif isinstance(ref, Mapping):
            data = maps.get(str(at_path(ref, "name") or ""), fallback)
            key = at_path(ref, "key")
            if key in data:
                env[str(name)] = data[key]
    return env


def _hpa_for(workload: PolicyResource, hpas: list[PolicyResource]) -> PolicyResource | None:
    name = val(workload, "metadata.name")
    for hpa in hpas:
        target = val(hpa, "spec.scaleTargetRef.name")
        if target and target in (name, workload.name):
            return hpa
    # Autonamed workloads are only known after the update: a single HPA targets the only one.
    return hpas[0] if len(hpas) == 1 else None


def pool_users(resources: list[PolicyResource]) -> list[PoolUser]:
    """Every workload whose containers size a DB pool, with its maximum pod count."""
    maps = _config_maps(resources)
    pooled_maps = [data for data in maps.values() if any(k in data for k in POOL_KEYS)]
    fallback = pooled_maps[0] if len({id(m) for m in pooled_maps}) == 1 else {}
    hpas = of_type(resources, *HPAS)
    users = []
    for r in of_type(resources, *kubernetes.WORKLOADS):
        if r.resource_type == kubernetes.JOB:
            # A one-off Job (a release's migrations) runs before the pods it migrates for;
            # its connection is part of the reserve kept for migrations and operators.
            continue
        spec = known(partial(kubernetes.pod_spec, r.resource_type, r.props), {}) or {}
        per_pod, sources = 0, []
        for container in kubernetes.containers(spec, init=False):
            connections, source = per_pod_connections(container_env(container, maps, fallback))
            if connections:
                per_pod += connections
                sources.append(source)
        if not per_pod:
            continue
        if r.resource_type in kubernetes.LONG_RUNNING:
            hpa = _hpa_for(r, hpas)
            if hpa is not None and val(hpa, "spec.maxReplicas") is not None:
                pods, source = int(num(val(hpa, "spec.maxReplicas"), 1.0) or 1), "HPA maxReplicas"
            else:
                pods, source = int(num(val(r, "spec.replicas"), 1.0) or 1), "spec.replicas"
        else:
            cron = r.resource_type == kubernetes.CRON_JOB
            path = "spec.jobTemplate.spec.parallelism" if cron else "spec.parallelism"
            pods, source = int(num(val(r, path), 1.0) or 1), "parallelism"
        users.append(PoolUser(r, per_pod, " + ".join(sources), pods, source))
    return users


def max_connections(resources: list[PolicyResource]) -> tuple[int, PolicyResource] | None:
    """max_connections of the primary's parameter group (the smallest when it is ambiguous)."""
    groups = []
    for pg in of_type(resources, RDS_PARAMETER_GROUP):
        for parameter in vals(pg, "parameters"):
            if at_path(parameter, "name") == "max_connections":
                value = num(at_path(parameter, "value"))
                if value is not None:
                    groups.append((int(value), pg))
    if not groups:
        return None
    primaries = [r for r in of_type(resources, RDS_INSTANCE) if not is_replica(r)]
    wanted = {val(p, "parameterGroupName") for p in primaries} - {None}
    named = [(v, pg) for v, pg in groups if {val(pg, "name"), val(pg, "id"), pg.name} & wanted]
    return min(named or groups, key=lambda g: g[0])


def _capacity(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    primaries = [r for r in of_type(resources, RDS_INSTANCE) if not is_replica(r)]
    found = max_connections(resources)
    users = pool_users(resources)
    if not primaries or found is None or not users:
        return  # connection-capacity-inputs says what is missing
    limit, group = found
    reserved = int(setting(args, CAPACITY_SCHEMA, "reservedConnections"))
    target_groups = of_type(resources, RDS_PROXY_TARGET_GROUP)
    via_proxy = bool(of_type(resources, RDS_PROXY))
    percent = min(
        (
            int(num(val(t, "connectionPoolConfig.maxConnectionsPercent"), 100.0) or 100)
            for t in target_groups
        ),
        default=100,
    )
    demand = sum(u.demand for u in users)
    if via_proxy:
        budget = limit * percent // 100
        where = f"{percent}% of max_connections {limit} through the RDS proxy"
    else:
        budget = limit - reserved
        where = f"max_connections {limit} - {reserved} reserved"
    pools = " + ".join(u.describe() for u in users)
    if demand > budget:
        report(
            f"connection capacity: {pools} = {demand} connections > {where} = {budget} "
            f"(parameter group '{group.name}'); lower app_pool_size/app_pool_max_overflow or "
            "api_max_replicas, or raise db_max_connections (and the proxy's "
            "max_connections_percent).",
            group.urn,
        )
    if via_proxy and limit * (100 - percent) // 100 < reserved:
        report(
            f"connection capacity: the RDS proxy may take {percent}% of max_connections {limit}, "
            f"leaving fewer than {reserved} connections for superusers and operators; lower "
            "connection_pool_config.max_connections_percent (db_proxy_max_connections_percent).",
            target_groups[0].urn if target_groups else None,
        )


def _capacity_inputs(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    primaries = [r for r in of_type(resources, RDS_INSTANCE) if not is_replica(r)]
    workloads = of_type(resources, *kubernetes.LONG_RUNNING)
    if not primaries or not workloads:
        return
    if max_connections(resources) is None:
        report(
            "connection capacity cannot be checked: no aws.rds.ParameterGroup sets "
            "max_connections; set it explicitly from the catalog's db_max_connections.",
            primaries[0].urn,
        )
    if not pool_users(resources):
        report(
            "connection capacity cannot be checked: no workload sets DB_POOL_MAX (or "
            "DB_POOL_SIZE + DB_MAX_OVERFLOW) per pod in its env or in a ConfigMap it "
            "references; put them in the app's ConfigMap (and the trainer's own in its env).",
            workloads[0].urn,
        )
    elif not of_type(resources, *HPAS):
        report(
            "connection capacity uses spec.replicas because no HorizontalPodAutoscaler was "
            "found; the HPA's maxReplicas is the real worst case.",
            workloads[0].urn,
        )


# -- tier consistency ------------------------------------------------------------------------

TIER_SCHEMA = PolicyConfigSchema(
    properties={
        "haTiers": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["tier3", "tier4"],
            "description": "Tiers that must be highly available end to end.",
        },
        "minDbReplicas": {"type": "integer", "minimum": 0, "default": 2},
        "minApiReplicas": {"type": "integer", "minimum": 1, "default": 2},
    }
)


def _tier_consistency(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    tier = stack_tier(resources)
    if tier not in as_list(setting(args, TIER_SCHEMA, "haTiers")):
        return  # dev and the small tiers may relax what the catalog says
    at = _report_each(report)
    instances = of_type(resources, RDS_INSTANCE)
    primaries = [r for r in instances if not is_replica(r)]
    replicas = [r for r in instances if is_replica(r)]
    for primary in primaries:
        if val(primary, "multiAz") is not True:
            at(
                f"tier {tier}: RDS primary '{primary.name}' must be Multi-AZ (multi_az=True).",
                primary,
            )
    if not primaries:
        at(f"tier {tier}: no RDS PostgreSQL primary in the stack.", None)
    min_replicas = int(setting(args, TIER_SCHEMA, "minDbReplicas"))
    if primaries and len(replicas) < min_replicas:
        at(
            f"tier {tier}: {len(replicas)} RDS read replica(s), at least {min_replicas} required "
            "(catalog db_replica_count).",
            primaries[0],
        )
    groups = of_type(resources, cache.REPLICATION_GROUP)
    failover = [
        g
        for g in groups
        if val(g, "automaticFailoverEnabled") is True
        and known(partial(cache.node_count, g.props), 0) >= 2
    ]
    if not failover:
        at(
            f"tier {tier}: needs an ElastiCache Redis replication group with >= 2 nodes and "
            "automatic_failover_enabled=True; found "
            f"{', '.join(g.name for g in groups) or 'none'}.",
            groups[0] if groups else None,
        )
    distributions = of_type(resources, DISTRIBUTION)
    if not distributions:
        at(f"tier {tier}: needs a CloudFront distribution with a WAF web ACL; found none.", None)
    for d in distributions:
        if not present(d.props, "webAclId"):  # a WAF made in the same update is unknown yet
            at(f"tier {tier}: CloudFront distribution '{d.name}' has no WAF (web_acl_id).", d)
    min_api = int(setting(args, TIER_SCHEMA, "minApiReplicas"))
    hpas = of_type(resources, *HPAS)
    for workload in of_type(resources, kubernetes.DEPLOYMENT):
        hpa = _hpa_for(workload, hpas)
        source = hpa if hpa is not None else workload
        path = "spec.minReplicas" if hpa is not None else "spec.replicas"
        count = num(val(source, path), 1.0) or 1.0
        if count < min_api:
            at(
                f"tier {tier}: Deployment '{workload.name}' may run {int(count)} pod(s) "
                f"({source.name} {path}); at least {min_api} keep the API up during a node loss.",
                source,
            )


# -- network reachability ----------------------------------------------------------------------

DATA_STORE_GROUPS = (
    (RDS_INSTANCE, "vpcSecurityGroupIds"),
    (RDS_PROXY, "vpcSecurityGroupIds"),
    (cache.REPLICATION_GROUP, "securityGroupIds"),
)
SG_TYPES = (network.SECURITY_GROUP, network.DEFAULT_SECURITY_GROUP)
RULE_TYPES = (network.INGRESS_RULE, network.SG_RULE)


def _id(r: PolicyResource) -> str | None:
    value = known(lambda: r.props.get("id"))
    return str(value) if value else None


def _ingress_of(r: PolicyResource) -> list[network.Ingress]:
    return known(lambda: list(network.ingresses(r.resource_type, r.props)), []) or []


def _data_stores_only_from_app(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    stores = [r for t, _ in DATA_STORE_GROUPS for r in of_type(resources, t)]
    data_ids = {
        str(g) for t, p in DATA_STORE_GROUPS for r in of_type(resources, t) for g in vals(r, p)
    }
    store_parents = {parent_urn(r) for r in stores} - {None}
    groups = of_type(resources, *SG_TYPES)
    data_groups = {
        g.urn
        for g in groups
        if (_id(g) in data_ids) or (_id(g) is None and parent_urn(g) in store_parents)
    }
    for r in groups + of_type(resources, *RULE_TYPES):
        if r.resource_type in SG_TYPES:
            guarded = r.urn in data_groups
        else:
            target = val(r, "securityGroupId")
            guarded = (
                (target is not None and str(target) in data_ids)
                or parent_urn(r) in data_groups
                or (target is None and parent_urn(r) in store_parents)
            )
        if not guarded:
            continue
        for ingress in _ingress_of(r):
            if ingress.cidrs:
                report(
                    f"'{r.name}' lets {', '.join(ingress.cidrs)} reach a data store's security "
                    f"group on {ingress.ports}; data stores admit only the app's (or the "
                    "proxy's) security group: reference it instead of a CIDR.",
                    r.urn,
                )


def _public_web_on_load_balancers(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    lb_groups = {
        str(g) for lb in of_type(resources, *LOAD_BALANCERS) for g in vals(lb, "securityGroups")
    }
    for r in of_type(resources, *SG_TYPES, *RULE_TYPES):
        target = _id(r) if r.resource_type in SG_TYPES else val(r, "securityGroupId")
        if target is None:
            continue  # unknown during a preview
        for ingress in _ingress_of(r):
            if (
                network.WORLD & set(ingress.cidrs)
                and ingress.web_only
                and str(target) not in lb_groups
            ):
                report(
                    f"'{r.name}' opens {ingress.ports} to the internet on a security group that no "
                    "load balancer uses; only the API's load balancer may be public: attach the "
                    "group to the aws.lb.LoadBalancer or remove the rule.",
                    r.urn,
                )


# -- S3 --------------------------------------------------------------------------------------


def _companions(
    bucket: PolicyResource, resources: list[PolicyResource], types: Iterable[str]
) -> list[PolicyResource]:
    keys = {str(k) for k in (_id(bucket), val(bucket, "bucket")) if k}
    found = []
    for r in of_type(resources, *types):
        ref = val(r, "bucket")
        if ref is not None:
            if str(ref) in keys:
                found.append(r)
        elif parent_urn(r) in (bucket.urn, parent_urn(bucket)):
            found.append(r)
    return found


def _bucket_controls(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    pattern = str(setting(args, s3.MODEL_BUCKET_SCHEMA, "modelBucketPattern"))
    for bucket in of_type(resources, *s3.BUCKETS):
        missing = []
        if not _companions(bucket, resources, [s3.PUBLIC_ACCESS_BLOCK]):
            missing.append("an aws.s3.BucketPublicAccessBlock")
        inline_sse = known(partial(s3.sse_algorithms, bucket.resource_type, bucket.props), [])
        if not inline_sse and not _companions(bucket, resources, s3.ENCRYPTION):
            missing.append("an aws.s3.BucketServerSideEncryptionConfiguration (SSE-KMS)")
        companions = _companions(bucket, resources, [s3.BUCKET_POLICY])
        policies = [val(bucket, "policy")] + [val(p, "policy") for p in companions]
        # A policy document built from the bucket's ARN is unknown on a first preview: the
        # resource rule s3-tls-only-policy judges it once it is known.
        if not any(undecided(p, "policy") for p in companions) and not any(
            p and s3.denies_insecure_transport(p) for p in policies
        ):
            missing.append("a bucket policy denying aws:SecureTransport=false")
        if s3.is_model_bucket(bucket.name, {"bucket": val(bucket, "bucket")}, pattern):
            versioned = val(bucket, "versioning.enabled") is True or any(
                val(v, "versioningConfiguration.status") == "Enabled"
                for v in _companions(bucket, resources, s3.VERSIONING)
            )
            if not versioned:
                missing.append("versioning (aws.s3.BucketVersioning status Enabled)")
        if missing:
            report(
                f"S3 bucket '{bucket.name}' has no {'; no '.join(missing)}; build it with the "
                "hardened SecureBucket component.",
                bucket.urn,
            )


M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

POLICIES = [
    StackValidationPolicy(
        name="connection-capacity",
        description="Connection pools at the HPA maximum fit the database's connection budget.",
        validate=_capacity,
        enforcement_level=M,
        config_schema=CAPACITY_SCHEMA,
    ),
    StackValidationPolicy(
        name="connection-capacity-inputs",
        description="The stack declares what the connection-capacity check needs.",
        validate=_capacity_inputs,
        enforcement_level=A,
    ),
    StackValidationPolicy(
        name="tier-consistency",
        description="Highly-available tiers have Multi-AZ, replicas, Redis failover and WAF.",
        validate=_tier_consistency,
        enforcement_level=M,
        config_schema=TIER_SCHEMA,
    ),
    StackValidationPolicy(
        name="data-stores-reachable-only-from-app",
        description="Database, proxy and cache security groups admit security groups, not CIDRs.",
        validate=_data_stores_only_from_app,
        enforcement_level=M,
    ),
    StackValidationPolicy(
        name="sg-public-web-only-on-load-balancers",
        description="Public 80/443 ingress exists only on load balancers' security groups.",
        validate=_public_web_on_load_balancers,
        enforcement_level=M,
    ),
    StackValidationPolicy(
        name="s3-bucket-controls-present",
        description="Every bucket has a public access block, SSE-KMS, a TLS-only policy, and "
        "versioning when it holds models.",
        validate=_bucket_controls,
        enforcement_level=M,
        config_schema=s3.MODEL_BUCKET_SCHEMA,
    ),
]
