"""IAM trust policies every component uses, as pure functions tests can call."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws


def service_trust_policy(service: str, *, tag_session: bool = False) -> str:
    """Trust policy letting one AWS service (``rds.amazonaws.com``...) assume a role.
    EKS also tags its sessions, so its cluster role needs ``sts:TagSession`` too."""
    actions: str | list[str] = (
        ["sts:AssumeRole", "sts:TagSession"] if tag_session else "sts:AssumeRole"
    )
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}
            ],
        }
    )


def irsa_trust_policy(
    oidc_provider_arn: str, oidc_issuer: str, namespace: str, service_account: str
) -> str:
    """IRSA: only the service account ``namespace/service_account`` of this cluster, with
    the STS audience, may assume the role. ``oidc_issuer`` is without ``https://``."""
    issuer = oidc_issuer.removeprefix("https://")
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": oidc_provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                            f"{issuer}:aud": "sts.amazonaws.com",
                        }
                    },
                }
            ],
        }
    )


def service_account_role(
    name: str,
    *,
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer: pulumi.Input[str],
    namespace: str,
    service_account: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.iam.Role:
    """An IAM role that one Kubernetes service account assumes through IRSA."""
    trust = pulumi.Output.all(oidc_provider_arn, oidc_issuer).apply(
        lambda v: irsa_trust_policy(v[0], v[1], namespace, service_account)
    )
    return aws.iam.Role(name, assume_role_policy=trust, tags=tags, opts=opts)
