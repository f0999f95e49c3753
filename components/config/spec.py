"""One validated, immutable spec per stack: config + tier row + overrides.

``build_spec`` is pure (config strings in, a ``StackSpec`` out): tests exercise every rule
without Pulumi. It collects every problem before failing, so one run lists them all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.config.catalog import TIERS
from components.config.overrides import apply_overrides
from components.config.project import config_defaults, is_project_default
from components.config.spec_database import (
    backup_region,
    engine_upgrade,
    master_password_rotation,
    reporting_replica,
    restore,
)
from components.config.spec_growth import edge_phase
from components.config.spec_tier import tier_problems
from components.config.tier import NodeGroupSize, Tier
from components.config.versions import KUBERNETES_VERSION
from components.shared.contract import DatabaseRestore, ReportingReplicaTarget

PROJECT = "student-success"
# CloudFront takes its certificates from N. Virginia only.
EDGE = "us-east-1"
# The app's migrations: a release is the image tag plus them (the bootstrap Job's name).
MIGRATIONS = Path(__file__).resolve().parents[2] / "app" / "migrations"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_CERT_ARN = re.compile(r"^arn:aws[a-z-]*:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[\w-]+$")
_IMAGE_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")


class SpecError(ValueError):
    """Raised with every problem of a stack's configuration, one per line."""

    def __init__(self, stack: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack {stack!r} has {len(problems)} configuration problem(s):\n{lines}")


@dataclass(frozen=True)
class StackSpec:
    """Everything the program needs to know about one stack, validated."""

    project: str
    stack: str
    region: str
    tier: Tier
    owner: str
    vpc_cidr: str
    app_image_tag: str
    alarm_email: str | None
    cluster_admin_role_arn: str | None
    cluster_public_access_cidrs: tuple[str, ...]
    cluster_api_access_cidrs: tuple[str, ...]
    """Networks admitted to the private API endpoint (443 on the cluster security group)."""
    cluster_api_access_security_group_ids: tuple[str, ...]
    """Security groups admitted to the private API endpoint."""
    api_domain_name: str | None
    """Name of the API's load balancer (HTTPS); None: plain HTTP (dev only)."""
    api_certificate_arn: str | None
    """An existing certificate for ``api_domain_name``; None: the program requests one."""
    edge_domain_name: str | None
    """Name of the CloudFront distribution on edge tiers."""
    edge_certificate_arn: str | None
    """An existing us-east-1 certificate for ``edge_domain_name``; None: requested."""
    hosted_zone_id: str | None = None
    """Route 53 zone of the domains: DNS validation of the requested certificates and the
    records naming the load balancer and the distribution."""
    sagemaker_model_published: bool = False
    """The endpoint's model archive exists (``publish-sagemaker`` ran): the endpoint may be
    created from it. Until then a SageMaker tier runs without its endpoint."""
    grafana_admin_group_ids: tuple[str, ...] = ()
    """IAM Identity Center groups given the Admin role of the Grafana workspace."""
    migrations: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The app's migrations by file name, as the image of ``app_image_tag`` holds them."""
    db_backup_region: str | None = None
    """Region the automated backups are replicated to (tiers with db.cross_region_backups)."""
    db_reporting_replica: ReportingReplicaTarget | None = None
    """The cross-region read replica for reporting (``dbReportingReplica``), or None."""
    db_restore: DatabaseRestore | None = None
    """The restore that made the current primary (docs/operate.md, "Recovery"), or None."""
    db_engine_version: str | None = None
    """PostgreSQL major this stack upgrades to ahead of the program's pin, or None."""
    db_upgrade_strategy: str = "in-place"
    """How a major upgrade runs: ``in-place`` or ``blue-green`` (docs/operate.md, "Upgrades")."""
    db_master_password_rotation: int = 0
    """Rotations of the master password so far (``dbMasterPasswordRotation``); 0: never."""
    node_kubernetes_version: str | None = None
    """Kubernetes minor the node groups are held on during an EKS upgrade, or None."""
    global_stack: str | None = None
    """The global stack (tier 4) this regional stack reads its zone, district directory and
    image registry from by StackReference, or None (a stack of its own)."""
    edge_phase: str = "cdn-only"
    """``cdn-only``: CloudFront is the only way in; ``both``: the load balancer also keeps its
    own WAF and direct clients while they move to CloudFront (``edgePhase``, docs/growth.md)."""

    @property
    def behind_cdn(self) -> bool:
        """CloudFront is the load balancer's only client (an edge tier past its move)."""
        return self.tier.edge.enabled and self.edge_phase == "cdn-only"

    @property
    def release(self) -> str:
        """Names the bootstrap Job that migrates for this image and these migrations."""
        digest = hashlib.sha256(self.app_image_tag.encode())
        for name in sorted(self.migrations):
            digest.update(f"\0{name}\0{self.migrations[name]}".encode())
        return digest.hexdigest()[:10]

    @property
    def protect(self) -> bool:
        """Pulumi ``protect`` and deletion protection on stateful resources."""
        return self.tier.deletion_protection

    def node_group(self, name: str) -> NodeGroupSize | None:
        return next((g for g in self.tier.node_groups if g.name == name), None)

    def tags(self, data_classification: str = "internal", **extra: str) -> dict[str, str]:
        """Tags every taggable resource carries; data stores pass ``ferpa``."""
        return {
            "project": self.project,
            "stack": self.stack,
            "tier": self.tier.name,
            "owner": self.owner,
            "managed-by": "pulumi",
            "data-classification": data_classification,
            **extra,
        }


def _check_tls(
    tier: Tier,
    region: str | None,
    *,
    zone: str | None,
    api: tuple[str | None, str | None],
    edge: tuple[str | None, str | None],
    problems: list[str],
) -> None:
    """TLS by construction: outside dev every entry has a name and either a certificate ARN
    or the hosted zone that validates the certificate the program requests."""
    api_domain, api_cert = api
    edge_domain, edge_cert = edge
    entries = [("apiDomainName", api_domain, "apiCertificateArn", api_cert, region)]
    if tier.edge.enabled:
        entries.append(("edgeDomainName", edge_domain, "edgeCertificateArn", edge_cert, EDGE))
    elif edge_domain or edge_cert:
        problems.append(f"edgeDomainName/edgeCertificateArn: tier {tier.name} has no CloudFront")
    for domain_key, domain, cert_key, cert, cert_region in entries:
        if not domain and tier.name != "dev":
            problems.append(
                f"{domain_key}: required outside dev, where the stack serves HTTPS only "
                f"(e.g. api.{tier.name}.district.example.org, in hostedZoneId's zone)"
            )
        if cert and not domain:
            problems.append(f"{cert_key}: needs {domain_key} (the name the certificate covers)")
        if domain and not cert and not zone:
            problems.append(
                f"{domain_key}={domain!r}: set hostedZoneId (the Route 53 zone that validates "
                f"the certificate the program requests) or {cert_key}"
            )
        match = _CERT_ARN.match(cert or "")
        if match and cert_region and match["region"] != cert_region:
            where = "CloudFront" if cert_key == "edgeCertificateArn" else "The load balancer"
            problems.append(f"{cert_key}={cert!r}: {where} needs a certificate in {cert_region}")
    if tier.edge.enabled and edge_domain and not api_domain:
        problems.append(
            "apiDomainName: CloudFront reaches the load balancer over HTTPS by a name its "
            "certificate covers; set it"
        )


def _cidr(value: Any, key: str, problems: list[str], prefixes: range | None = None) -> str:
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as err:
        problems.append(f"{key}={value!r}: not a valid CIDR ({err})")
        return str(value)
    if net.version != 4:
        problems.append(f"{key}={value!r}: must be an IPv4 CIDR")
    elif prefixes is not None and net.prefixlen not in prefixes:
        problems.append(
            f"{key}={value!r}: prefix /{net.prefixlen} not allowed; use /{prefixes.start}-"
            f"/{prefixes.stop - 1}"
        )
    return str(net)


def _as_list(value: Any, key: str, problems: list[str]) -> list[Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            problems.append(f"{key}: must be a list")
            return []
    if not isinstance(value, list):
        problems.append(f"{key}: must be a list")
        return []
    return value


def _as_bool(value: Any, key: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("true", "false"):
        return str(value).strip().lower() == "true"
    problems.append(f"{key}={value!r}: must be true or false")
    return False


def build_spec(
    config: Mapping[str, Any],
    *,
    stack: str,
    region: str | None,
    migrations: Mapping[str, str] | None = None,
) -> StackSpec:
    """Validate a stack's config (keys without the project prefix) into a ``StackSpec``."""
    problems: list[str] = []
    # Pulumi.yaml declares every key with its default; a real run has them all already.
    defaults = config_defaults()
    for key in sorted(set(config) - set(defaults)):
        problems.append(
            f"{PROJECT}:{key}: unknown config key; allowed: {', '.join(sorted(defaults))}"
        )
    values = {**defaults, **{k: v for k, v in config.items() if k in defaults}}

    if not region:
        problems.append("aws:region: not set; run `pulumi config set aws:region <region>`")
    tier = _tier(values, problems)
    vpc_cidr = _cidr(values["vpcCidr"], "vpcCidr", problems, range(16, 19))
    public_cidrs, access_cidrs, access_groups = _cluster_api_access(values, problems)

    def optional(key: str, pattern: re.Pattern[str], what: str) -> str | None:
        value = str(values[key]).strip()
        if value and not pattern.match(value):
            problems.append(f"{key}={value!r}: must be {what}")
        return value or None

    email = optional("alarmEmail", _EMAIL, "an email address")
    role = optional("clusterAdminRoleArn", _ROLE_ARN, "an IAM role ARN")
    zone = optional("hostedZoneId", _ZONE_ID, "a Route 53 hosted zone id (Z...)")
    global_stack = _global_stack(values, problems)
    if global_stack and zone:
        problems.append("hostedZoneId: the global stack's zone is used (globalStack); remove it")
    api_domain = optional("apiDomainName", _DOMAIN, "a lower-case DNS name")
    api_cert = optional("apiCertificateArn", _CERT_ARN, "an ACM certificate ARN")
    domain = optional("edgeDomainName", _DOMAIN, "a lower-case DNS name")
    cert = optional("edgeCertificateArn", _CERT_ARN, "an ACM certificate ARN")
    _check_tls(
        tier,
        region,
        # The global stack's zone validates the certificates of its regional stacks.
        zone=zone or global_stack,
        api=(api_domain, api_cert),
        edge=(domain, cert),
        problems=problems,
    )
    phase = edge_phase(values, tier, problems)
    published = _as_bool(values["sagemakerModelPublished"], "sagemakerModelPublished", problems)
    if published and not tier.inference.enabled:
        problems.append(f"sagemakerModelPublished: tier {tier.name} has no SageMaker endpoint")
    grafana_admins = _grafana_admin_groups(values, tier, problems)
    tag = str(values["appImageTag"])
    if not _IMAGE_TAG.match(tag) or tag == "latest":
        problems.append(f"appImageTag={tag!r}: must be an immutable version tag, not 'latest'")
    owner = str(values["owner"]).strip()
    if not owner:
        problems.append("owner: must name the team that owns the stack")

    db_backup_region = backup_region(values, tier, region, problems)
    db_restore = restore(values, problems)
    reporting = reporting_replica(values, region, stack, problems)
    engine, strategy = engine_upgrade(values, tier, reporting, problems)
    rotation = master_password_rotation(values, problems)
    node_version = _node_version(values, problems)

    if problems:
        raise SpecError(stack, problems)
    return StackSpec(
        project=PROJECT,
        stack=stack,
        region=str(region),
        tier=tier,
        owner=owner,
        vpc_cidr=vpc_cidr,
        app_image_tag=tag,
        alarm_email=email,
        cluster_admin_role_arn=role,
        cluster_public_access_cidrs=public_cidrs,
        cluster_api_access_cidrs=access_cidrs,
        cluster_api_access_security_group_ids=access_groups,
        api_domain_name=api_domain,
        api_certificate_arn=api_cert,
        edge_domain_name=domain,
        edge_certificate_arn=cert,
        hosted_zone_id=zone,
        sagemaker_model_published=published,
        grafana_admin_group_ids=grafana_admins,
        migrations=dict(migrations or {}),
        db_backup_region=db_backup_region,
        db_reporting_replica=reporting,
        db_restore=db_restore,
        db_engine_version=engine,
        db_upgrade_strategy=strategy,
        db_master_password_rotation=rotation,
        node_kubernetes_version=node_version,
        global_stack=global_stack,
        edge_phase=phase,
    )


def _tier(values: Mapping[str, Any], problems: list[str]) -> Tier:
    """The stack's tier row with its overrides, checked."""
    tier_name = str(values["tier"])
    base = TIERS.get(tier_name)
    if base is None:
        problems.append(f"tier={tier_name!r}: unknown tier; allowed: {', '.join(TIERS)}")
        base = TIERS["dev"]
    tier = apply_overrides(base, _as_list(values["overrides"], "overrides", problems), problems)
    problems.extend(tier_problems(tier))
    return tier


_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$")


def _cluster_api_access(
    values: Mapping[str, Any], problems: list[str]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Who reaches the Kubernetes API, which the program installs charts and workloads
    through: the public endpoint's CIDRs, and the networks and security groups admitted to the
    private one. A stack needs at least one path, or its first `up` times out on the first
    Kubernetes object."""

    def cidrs(key: str) -> tuple[str, ...]:
        found = tuple(_cidr(c, key, problems) for c in _as_list(values[key], key, problems))
        if "0.0.0.0/0" in found:
            problems.append(
                f"{key}: 0.0.0.0/0 would open the Kubernetes API to every network; list the "
                "deployers' CIDRs"
            )
        return found

    public, private = cidrs("clusterPublicAccessCidrs"), cidrs("clusterApiAccessCidrs")
    key = "clusterApiAccessSecurityGroupIds"
    groups = tuple(str(g) for g in _as_list(values[key], key, problems))
    for group in groups:
        if not _SECURITY_GROUP_ID.match(group):
            problems.append(f"{key}: {group!r} is not a security group id (sg-...)")
    if not (public or private or groups):
        problems.append(
            "clusterPublicAccessCidrs, clusterApiAccessCidrs or clusterApiAccessSecurityGroupIds: "
            "set one, or `pulumi up` cannot reach the cluster's private API endpoint to install "
            'the charts and workloads (docs/deploy.md, "Reaching the cluster\'s API")'
        )
    return public, private, groups


# An Identity Store group ID (IdentityStore API, GroupId): a UUID, optionally behind a
# 10-hex-digit prefix.
_GROUP_ID = re.compile(r"^([0-9a-f]{10}-)?[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


def _grafana_admin_groups(
    values: Mapping[str, Any], tier: Tier, problems: list[str]
) -> tuple[str, ...]:
    """``grafanaAdminGroupIds``: who signs in to the Grafana workspace (IAM Identity Center
    admits only the users and groups assigned to it)."""
    key = "grafanaAdminGroupIds"
    groups = tuple(str(g) for g in _as_list(values[key], key, problems))
    for group in groups:
        if not _GROUP_ID.match(group):
            problems.append(f"{key}: {group!r} is not an IAM Identity Center group id")
    if groups and not tier.monitoring.grafana:
        problems.append(f"{key}: tier {tier.name} has no Grafana workspace")
    return groups


def _global_stack(values: Mapping[str, Any], problems: list[str]) -> str | None:
    """``globalStack`` of a regional stack; the global stack's own keys are refused here."""
    if str(values["stackRole"]) != "regional":
        problems.append(f"stackRole={values['stackRole']!r}: this program part is regional")
    for key in ("domainName", "regions", "districts"):
        if not is_project_default(key, values[key]):
            problems.append(f"{key}: only the global stack (stackRole: global) reads it")
    name = str(values["globalStack"]).strip()
    if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        problems.append(f"globalStack={name!r}: must name the global stack (e.g. global)")
    return name or None


def _minor(version: str) -> int | None:
    match = re.fullmatch(r"1\.(\d+)", version)
    return int(match[1]) if match else None


# EKS supports nodes up to three minors older than the control plane (Kubernetes 1.28+).
NODE_VERSION_SKEW = 3


def _node_version(values: Mapping[str, Any], problems: list[str]) -> str | None:
    """``nodeKubernetesVersion``: the node groups' minor while the control plane moves on."""
    held = str(values["nodeKubernetesVersion"]).strip() or None
    if held is None:
        return None
    plane = _minor(KUBERNETES_VERSION) or 0
    minor = _minor(held)
    if minor is None or not plane - NODE_VERSION_SKEW <= minor <= plane:
        problems.append(
            f"nodeKubernetesVersion={held!r}: a Kubernetes minor no newer than the control "
            f"plane's {KUBERNETES_VERSION} and at most {NODE_VERSION_SKEW} older "
            f"(1.{plane - NODE_VERSION_SKEW}-{KUBERNETES_VERSION})"
        )
    return held


def load_spec() -> StackSpec:
    """Build the running stack's spec from its Pulumi config (every key of our namespace)."""
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    prefix = f"{PROJECT}:"
    everything = {**get_config_env(), **CONFIG.get()}
    ours = {k[len(prefix) :]: v for k, v in everything.items() if k.startswith(prefix)}
    migrations = {p.name: p.read_text() for p in sorted(MIGRATIONS.glob("*.sql"))}
    return build_spec(
        ours,
        stack=pulumi.get_stack(),
        region=pulumi.Config("aws").get("region"),
        migrations=migrations,
    )
