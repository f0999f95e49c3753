"""RDS Proxy in front of the primary, from tier 2 on: it pools the connections of every API
pod and job, which together would open more than the primary's max_connections."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.config.tier import DatabaseSize
from components.database.settings import (
    PROXY_BORROW_TIMEOUT_SECONDS,
    PROXY_IDLE_CLIENT_TIMEOUT_SECONDS,
    proxy_secret_policy,
)
from components.shared.contract import POSTGRES_PORT, NetworkRef, owned
from components.shared.iam import service_trust_policy
from components.shared.security_groups import admit_from_groups


def database_proxy(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    *,
    size: DatabaseSize,
    network: NetworkRef,
    tags: dict[str, str],
    db_sg: aws.ec2.SecurityGroup,
    secret_arns: Sequence[pulumi.Output[str]],
    key_arn: pulumi.Output[str],
    primary: aws.rds.Instance,
) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """RDS Proxy in front of the primary, admitting the workloads' logins (not the master's:
    migrations connect to the primary); returns (proxy name, endpoint)."""
    child = pulumi.ResourceOptions(parent=owner)
    proxy_sg = _proxy_security_group(owner, name, ident, network, tags, db_sg)
    role = aws.iam.Role(
        f"{name}-proxy-role",
        assume_role_policy=service_trust_policy("rds.amazonaws.com"),
        description=f"RDS Proxy of {ident} reads the workloads' credentials",
        tags=tags,
        opts=child,
    )
    region = aws.get_region_output().region
    role_policy = aws.iam.RolePolicy(
        f"{name}-proxy-policy",
        role=role.id,
        policy=pulumi.Output.all(key_arn, region, *secret_arns).apply(
            lambda v: proxy_secret_policy(v[2:], v[0], v[1])
        ),
        opts=owned(owner, was=role),
    )
    # iam_auth DISABLED: the app authenticates with the password from its Kubernetes
    # Secret (TLS is still required). REQUIRED would make every pod mint a 15-minute
    # IAM token through IRSA for each new connection, which the app's pool does not do.
    proxy = aws.rds.Proxy(
        f"{name}-proxy",
        name=f"{ident}-proxy",
        engine_family="POSTGRESQL",
        role_arn=role.arn,
        vpc_subnet_ids=list(network.isolated_subnet_ids),
        vpc_security_group_ids=[proxy_sg.id],
        require_tls=True,
        idle_client_timeout=PROXY_IDLE_CLIENT_TIMEOUT_SECONDS,
        auths=[
            {
                "auth_scheme": "SECRETS",
                "secret_arn": arn,
                "iam_auth": "DISABLED",
                "client_password_auth_type": "POSTGRES_SCRAM_SHA_256",
                "description": "A workload's login",
            }
            for arn in secret_arns
        ],
        tags=tags,
        opts=pulumi.ResourceOptions(parent=owner, depends_on=[role_policy]),
    )
    # No session pinning filters: whatever session state a client sets must keep it on its
    # connection. The app itself sets its tenant per transaction (set_config(..., true)) and
    # no longer switches roles, so ordinary requests do not pin.
    target_group = aws.rds.ProxyDefaultTargetGroup(
        f"{name}-proxy-targets",
        db_proxy_name=proxy.name,
        connection_pool_config={
            "max_connections_percent": size.proxy_max_connections_percent,
            "max_idle_connections_percent": size.proxy_max_connections_percent // 2,
            "connection_borrow_timeout": PROXY_BORROW_TIMEOUT_SECONDS,
        },
        opts=owned(owner, was=proxy),
    )
    aws.rds.ProxyTarget(
        f"{name}-proxy-primary",
        db_proxy_name=proxy.name,
        target_group_name=target_group.name,
        db_instance_identifier=primary.identifier,
        # A proxy holds one RDS instance: a new primary (a restore) is registered only
        # after the old one left.
        opts=pulumi.ResourceOptions.merge(
            owned(owner, was=proxy), pulumi.ResourceOptions(delete_before_replace=True)
        ),
    )
    return proxy.name, proxy.endpoint


def _proxy_security_group(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    network: NetworkRef,
    tags: dict[str, str],
    db_sg: aws.ec2.SecurityGroup,
) -> aws.ec2.SecurityGroup:
    """The proxy's group: 5432 from the app tier in, 5432 to the database out (whose group
    admits it)."""
    proxy_sg = aws.ec2.SecurityGroup(
        f"{name}-proxy-sg",
        vpc_id=network.vpc_id,
        description=f"RDS Proxy of {ident}: 5432 from the app, 5432 to the database",
        tags={**tags, "Name": f"{ident}-proxy-sg"},
        opts=pulumi.ResourceOptions(parent=owner),
    )
    in_proxy_sg = owned(owner, was=proxy_sg)
    admit_from_groups(
        f"{name}-proxy-sg-from-client",
        security_group=proxy_sg,
        owner=owner,
        sources=[network.app_security_group_id],
        port=POSTGRES_PORT,
        description="PostgreSQL from the application tier",
        tags=tags,
    )
    aws.vpc.SecurityGroupEgressRule(
        f"{name}-proxy-sg-to-db",
        security_group_id=proxy_sg.id,
        referenced_security_group_id=db_sg.id,
        ip_protocol="tcp",
        from_port=POSTGRES_PORT,
        to_port=POSTGRES_PORT,
        description="Pooled connections to the database",
        tags=tags,
        opts=in_proxy_sg,
    )
    aws.vpc.SecurityGroupIngressRule(
        f"{name}-sg-from-proxy",
        security_group_id=db_sg.id,
        referenced_security_group_id=proxy_sg.id,
        ip_protocol="tcp",
        from_port=POSTGRES_PORT,
        to_port=POSTGRES_PORT,
        description="PostgreSQL from the RDS Proxy",
        tags=tags,
        opts=owned(owner, was=db_sg),
    )
    return proxy_sg
