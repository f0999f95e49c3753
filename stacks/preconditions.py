"""What the account must already hold, and what the running credentials must not be, read
with data sources before anything is created: a real first ``pulumi preview`` fails here at
once, naming the config key, instead of an ``up`` failing (or waiting) half-way through.
docs/deploy.md lists every precondition of an account, these and those no data source shows.
"""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_aws as aws

from components.config.spec import SpecError, StackSpec
from stacks.references import deployed_outputs


def zone_serves(zone_name: str, domain: str) -> bool:
    """Whether a record for ``domain`` belongs in the zone ``zone_name``."""
    zone = zone_name.rstrip(".").lower()
    return domain == zone or domain.endswith(f".{zone}")


def hosted_zone(spec: StackSpec) -> str | None:
    """``hostedZoneId``, looked up: a public zone that exists in the account and whose name
    the stack's domains end in. ACM validates the certificates in it; a wrong zone would
    leave a first ``up`` waiting 75 minutes on a certificate that never validates."""
    zone_id = spec.hosted_zone_id
    if zone_id is None:
        return None
    try:
        zone = aws.route53.get_zone(zone_id=zone_id)
    except Exception as err:  # the provider's error, whatever its type: not found, denied
        raise SpecError(
            spec.stack,
            [f"hostedZoneId={zone_id!r}: Route 53 cannot read this zone in the account ({err})"],
        ) from err
    problems = []
    if zone.private_zone:
        problems.append(
            f"hostedZoneId={zone_id!r}: {zone.name} is a private zone; ACM validates in public ones"
        )
    for key, domain in (
        ("apiDomainName", spec.api_domain_name),
        ("edgeDomainName", spec.edge_domain_name),
    ):
        if domain and not zone_serves(zone.name, domain):
            problems.append(
                f"{key}={domain!r}: not in hostedZoneId {zone_id}'s zone {zone.name}; name a "
                "host under that zone or the zone that serves this name"
            )
    if problems:
        raise SpecError(spec.stack, problems)
    return zone_id


_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/(?:[^/]+/)*([^/]+)")


def role_identity(arn: str) -> tuple[str, str] | None:
    """(account, role name) of an IAM role ARN, whatever its path; None for another ARN."""
    match = _ROLE_ARN.fullmatch(arn)
    return (match[1], match[2]) if match else None


def creator_problems(admin_role_arn: str | None, deployer_arn: str) -> list[str]:
    """EKS makes the identity that creates the cluster its admin (the cluster's
    ``bootstrap_cluster_creator_admin_permissions``); a second access entry for that role
    fails the update with ResourceInUseException. ``deployer_arn`` is the role (or user)
    behind the running credentials."""
    if admin_role_arn is None:
        return []
    admin = role_identity(admin_role_arn)
    if admin is None or admin != role_identity(deployer_arn):
        return []
    return [
        f"clusterAdminRoleArn={admin_role_arn!r}: the role running `pulumi up`, which EKS makes "
        "cluster admin when it creates the cluster; name another role (operators', CI's) or "
        "remove the key"
    ]


def deployer_arn() -> str:
    """The role behind the running credentials (an assumed role's issuer), or the user."""
    caller = aws.get_caller_identity()
    return aws.iam.get_session_context(arn=caller.arn).issuer_arn


def check_cluster_admin(spec: StackSpec) -> None:
    """On a stack's first ``up`` only: afterwards the role running ``up`` need not be the one
    that created the cluster (a break-glass ``up`` by the admin role itself is fine)."""
    problems = creator_problems(spec.cluster_admin_role_arn, deployer_arn())

    def check(deployed: dict[str, Any]) -> None:
        if problems and not deployed:
            raise SpecError(spec.stack, problems)

    deployed_outputs().apply(check)


def warn_without_identity_center(spec: StackSpec) -> None:
    """Managed Grafana signs users in through IAM Identity Center, which must be enabled for
    the account (its organization's instance or an account instance). A member account may
    not be allowed to list the organization's instance, so an empty answer is a warning."""
    if not spec.tier.monitoring.grafana:
        return
    try:
        instances = aws.ssoadmin.get_instances().arns
    except Exception as err:  # denied: the deployer may lack sso:ListInstances
        instances, reason = [], f"listing them failed ({err})"
    else:
        reason = "none is visible to this account"
    if not instances:
        pulumi.log.warn(
            f"tier {spec.tier.name} signs in to Managed Grafana through IAM Identity Center, "
            f'and {reason}: enable it before `pulumi up` (docs/deploy.md, "Account '
            'preconditions")'
        )
