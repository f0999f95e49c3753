"""How the workloads reach the database: each login's credentials in Secrets Manager (the
shape RDS Proxy reads), and one DNS name over the read replicas."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.database.settings import READER_TTL_SECONDS, credentials_document
from components.shared.contract import DatabaseLogin, owned
from components.shared.stack import StackContext


def credentials_secret(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    stack: StackContext,
    key: aws.kms.Key,
    primary: aws.rds.Instance,
    login: DatabaseLogin,
    role: str | None = None,
) -> aws.secretsmanager.Secret:
    """A login's credentials in Secrets Manager, in the shape RDS Proxy reads: the master
    login's (``role`` None), or a workload's."""
    prefix = f"{name}-{role}" if role else name
    secret = aws.secretsmanager.Secret(
        f"{prefix}-credentials",
        description=f"{'Master' if role is None else role.capitalize()} credentials of {ident}",
        kms_key_id=key.arn,
        recovery_window_in_days=30 if stack.protect else 7,
        tags=stack.tags,
        # The proxy authenticates with the workloads' secrets: deleting one cuts that
        # workload off the database.
        opts=pulumi.ResourceOptions(parent=owner, protect=stack.protect),
    )
    document: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(primary.address, login.password).apply(
            lambda v: credentials_document(v[0], v[1], login.username)
        )
    )
    # Not protected, unlike its secret: the provider replaces a version whose text changes
    # (a rotated password, a restored primary's host), and Pulumi refuses to replace a
    # protected resource. Replacing one puts a new version (AWSCURRENT) into the same secret.
    aws.secretsmanager.SecretVersion(
        f"{prefix}-credentials-version",
        secret_id=secret.id,
        secret_string=document,
        opts=owned(owner, was=secret, protect=False),
    )
    return secret


def reader_name(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    zone_name: str,
    vpc_id: pulumi.Input[str],
    tags: dict[str, str],
    replicas: list[aws.rds.Instance],
) -> pulumi.Output[str] | None:
    """One DNS name over the replicas (``reader.<zone_name>``, in a private zone of the
    VPC), or None without replicas."""
    if not replicas:
        return None
    # RDS Proxy read-only endpoints only serve Aurora clusters, so readers get a DNS name
    # instead: weighted CNAMEs (equal weights, short TTL) in a private zone of the VPC.
    zone = aws.route53.Zone(
        f"{name}-zone",
        name=zone_name,
        comment=f"Private names of {ident}",
        vpcs=[{"vpc_id": vpc_id}],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=owner),
    )
    records = [
        aws.route53.Record(
            f"{name}-reader-{i + 1}",
            zone_id=zone.zone_id,
            name=f"reader.{zone_name}",
            type="CNAME",
            ttl=READER_TTL_SECONDS,
            records=[replica.address],
            set_identifier=f"replica-{i + 1}",
            weighted_routing_policies=[{"weight": 1}],
            opts=owned(owner, was=zone),
        )
        for i, replica in enumerate(replicas)
    ]
    return records[0].fqdn
