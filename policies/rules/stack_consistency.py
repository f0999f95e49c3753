"""Stack rules on what must hold across resources: a tier's high availability, network
exposure, and each bucket's controls.

- ``tier-consistency``: what a highly-available tier must have (Multi-AZ, replicas, Redis
  failover, WAF on CloudFront); the tier is read from the resources' ``tier`` tag.
- ``data-stores-reachable-only-from-app``: DB/proxy/cache security groups admit security
  groups only, never CIDRs.
- ``sg-public-web-only-on-load-balancers``: public 80/443 sits on a load balancer's group.
- ``s3-bucket-controls-present``: every bucket has its public access block, SSE-KMS, TLS-only
  policy, and versioning when it holds models.
- ``route53-public-zone-dnssec``: every public hosted zone the stack creates is signed
  (DNSSEC signing on, with a key-signing key).

During a preview, IDs of new resources are unknown: joins then fall back to the component tree
(a resource and its companions share a parent), and values that stay unknown are skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import cache, kubernetes, network, s3
from ._stack_util import (
    HPAS,
    RDS_INSTANCE,
    RDS_PROXY,
    hpa_for,
    is_replica,
    of_type,
    parent_urn,
    report_each,
    resource_id,
    stack_tier,
    undecided,
    val,
    vals,
)
from ._util import as_list, known, num, present, setting

LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"


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
    at = report_each(report)
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
        hpa = hpa_for(workload, hpas)
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
        if (resource_id(g) in data_ids)
        or (resource_id(g) is None and parent_urn(g) in store_parents)
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
        target = resource_id(r) if r.resource_type in SG_TYPES else val(r, "securityGroupId")
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
    keys = {str(k) for k in (resource_id(bucket), val(bucket, "bucket")) if k}
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


# -- DNSSEC ----------------------------------------------------------------------------------

ZONE = "aws:route53/zone:Zone"
ZONE_DNSSEC = "aws:route53/hostedZoneDnsSec:HostedZoneDnsSec"
KEY_SIGNING_KEY = "aws:route53/keySigningKey:KeySigningKey"


def _of_zone(
    zone: PolicyResource, resources: list[PolicyResource], type_: str
) -> list[PolicyResource]:
    """The resources of ``type_`` naming the zone's id; on a first preview (ids unknown), those
    of the zone's component."""
    ids = {str(i) for i in (resource_id(zone), val(zone, "zoneId")) if i}
    found = []
    for r in of_type(resources, type_):
        ref = val(r, "hostedZoneId")
        if (ref is not None and str(ref) in ids) or (
            ref is None and parent_urn(r) == parent_urn(zone)
        ):
            found.append(r)
    return found


def _public_zones_signed(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    for zone in of_type(resources, ZONE):
        if present(zone.props, "vpcs") or undecided(zone, "vpcs"):
            continue  # a private zone: answers only inside its VPCs
        signing = [
            r
            for r in _of_zone(zone, resources, ZONE_DNSSEC)
            if val(r, "signingStatus", "SIGNING") == "SIGNING"
        ]
        if not signing or not _of_zone(zone, resources, KEY_SIGNING_KEY):
            report(
                f"Public hosted zone '{zone.name}' is not signed: add an aws.route53.KeySigningKey "
                "(an ECC_NIST_P256 SIGN_VERIFY KMS key in us-east-1) and an "
                "aws.route53.HostedZoneDnsSec with signing_status SIGNING, then publish its DS "
                "record at the registrar (components/global_dns.py does).",
                zone.urn,
            )


M = EnforcementLevel.MANDATORY

POLICIES = [
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
    StackValidationPolicy(
        name="route53-public-zone-dnssec",
        description="Public hosted zones are signed with DNSSEC.",
        validate=_public_zones_signed,
        enforcement_level=M,
    ),
]
