"""EKS: a private API endpoint, no world-open public endpoint, audit logs, envelope
encryption of Secrets, IMDSv2 on the nodes' launch templates."""

from __future__ import annotations

import ipaddress

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
)

from ._util import as_list, get, label, present, rule, setting

CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
WORLD = frozenset({"0.0.0.0/0", "::/0"})


def _cluster(args: ResourceValidationArgs) -> str:
    return label("EKS cluster", args.name)


def _private_endpoint(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if get(args.props, "vpcConfig.endpointPrivateAccess") is not True:
        report(
            f"{_cluster(args)} has no private API endpoint, so nodes and operators reach the "
            "Kubernetes API over the internet; set vpc_config.endpoint_private_access=True.",
            None,
        )


PUBLIC_CIDRS_SCHEMA = PolicyConfigSchema(
    properties={
        "allowedPublicCidrs": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "When not empty, every CIDR of a public EKS endpoint must lie inside "
            "one of these networks (office/VPN ranges). 0.0.0.0/0 is never allowed.",
        },
    }
)


def _inside(cidr: str, networks: list[str]) -> bool:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
        return any(
            net.version == allowed.version and net.subnet_of(allowed)  # type: ignore[arg-type]
            for allowed in (ipaddress.ip_network(n, strict=False) for n in networks)
        )
    except ValueError:
        return False


def _public_cidrs(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if get(args.props, "vpcConfig.endpointPublicAccess") is False:
        return
    cidrs = [str(c) for c in as_list(get(args.props, "vpcConfig.publicAccessCidrs"))]
    if not cidrs or WORLD & set(cidrs):
        report(
            f"{_cluster(args)} exposes its public API endpoint to 0.0.0.0/0 (the default when "
            "public_access_cidrs is empty); set vpc_config.endpoint_public_access=False or list "
            "your office/VPN CIDRs in public_access_cidrs (config clusterPublicAccessCidrs).",
            None,
        )
        return
    allowed = [str(c) for c in as_list(setting(args, PUBLIC_CIDRS_SCHEMA, "allowedPublicCidrs"))]
    outside = [c for c in cidrs if allowed and not _inside(c, allowed)]
    if outside:
        report(
            f"{_cluster(args)} opens its public API endpoint to {', '.join(outside)}, outside "
            f"the allowed networks {', '.join(allowed)}; remove them or extend "
            "allowedPublicCidrs in the policy config.",
            None,
        )


LOGS_SCHEMA = PolicyConfigSchema(
    properties={
        "requiredLogTypes": {
            "type": "array",
            "items": {"type": "string"},
            "default": ["api", "audit", "authenticator"],
            "description": "Control-plane log types every cluster must enable.",
        },
    }
)


def _control_plane_logs(args: ResourceValidationArgs, report: ReportViolation) -> None:
    enabled = {str(t) for t in as_list(args.props.get("enabledClusterLogTypes"))}
    missing = [
        t for t in as_list(setting(args, LOGS_SCHEMA, "requiredLogTypes")) if t not in enabled
    ]
    if missing:
        report(
            f"{_cluster(args)} does not log {', '.join(missing)} from its control plane; add "
            "them to enabled_cluster_log_types (who read which student record is an audit "
            "question).",
            None,
        )


def _secrets_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    resources = {str(r) for r in as_list(get(args.props, "encryptionConfig.resources"))}
    if "secrets" not in resources or not present(args.props, "encryptionConfig.provider.keyArn"):
        report(
            f"{_cluster(args)} does not envelope-encrypt Kubernetes Secrets; set "
            "encryption_config={'resources': ['secrets'], 'provider': {'key_arn': <KMS key>}}.",
            None,
        )


def _imdsv2(args: ResourceValidationArgs, report: ReportViolation) -> None:
    tokens = get(args.props, "metadataOptions.httpTokens")
    if get(args.props, "metadataOptions.httpEndpoint") == "disabled":
        return
    if tokens != "required":
        report(
            f"Launch template '{args.name}' allows IMDSv1 (http_tokens={tokens or 'optional'}), "
            "so a pod with SSRF can steal the node role; set "
            "metadata_options={'http_tokens': 'required', 'http_put_response_hop_limit': 1}.",
            None,
        )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "eks-private-endpoint",
        "EKS clusters enable the private API endpoint.",
        [CLUSTER],
        _private_endpoint,
        M,
    ),
    rule(
        "eks-public-access-cidrs",
        "A public EKS endpoint is never open to 0.0.0.0/0 and stays inside the allowed CIDRs.",
        [CLUSTER],
        _public_cidrs,
        M,
        PUBLIC_CIDRS_SCHEMA,
    ),
    rule(
        "eks-control-plane-logs",
        "EKS clusters ship api, audit and authenticator logs.",
        [CLUSTER],
        _control_plane_logs,
        M,
        LOGS_SCHEMA,
    ),
    rule(
        "eks-secrets-encryption",
        "EKS clusters envelope-encrypt Secrets with KMS.",
        [CLUSTER],
        _secrets_encryption,
        M,
    ),
    rule(
        "eks-launch-template-imdsv2",
        "Node launch templates require IMDSv2.",
        [LAUNCH_TEMPLATE],
        _imdsv2,
        M,
    ),
]
