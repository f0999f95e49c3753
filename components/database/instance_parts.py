"""What a database instance needs beside itself, in the region it runs in: its subnet and
security groups, its parameter group and the log groups it exports to."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.config.tier import DatabaseSize
from components.database.recovery import parameter_family
from components.database.settings import LOG_EXPORTS, rds_log_group_prefix, rds_parameters
from components.shared.contract import POSTGRES_PORT
from components.shared.log_groups import EncryptedLogs
from components.shared.security_groups import admit_from_groups


def network(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    *,
    vpc_id: pulumi.Input[str],
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]],
    client_security_group_ids: Sequence[pulumi.Input[str]],
    tags: dict[str, str],
    region: str | None = None,
    provider: pulumi.ProviderResource | None = None,
) -> tuple[aws.rds.SubnetGroup, aws.ec2.SecurityGroup]:
    """The subnet group, and a security group that admits only the app's; ``region``: the
    network is another stack's, there (the reporting replica's)."""
    opts = pulumi.ResourceOptions(parent=owner, provider=provider)
    there = f" of the {region} stack" if region else ""
    whose = f"Isolated subnets{there} for {ident}" if region else f"Isolated subnets of {ident}"
    subnet_group = aws.rds.SubnetGroup(
        f"{name}-subnets",
        description=whose,
        subnet_ids=subnet_ids,
        tags=tags,
        opts=opts,
    )
    sg = aws.ec2.SecurityGroup(
        f"{name}-sg",
        vpc_id=vpc_id,
        description=(
            f"PostgreSQL {ident}: 5432 from the app tier{there} only"
            if region
            else f"PostgreSQL {ident}: 5432 from the app and the proxy only"
        ),
        tags={**tags, "Name": f"{ident}-sg"},
        opts=opts,
    )
    admit_from_groups(
        f"{name}-sg-from-client",
        security_group=sg,
        owner=owner,
        sources=client_security_group_ids,
        port=POSTGRES_PORT,
        description=f"PostgreSQL from the application tier{there}",
        tags=tags,
        provider=provider,
    )
    return subnet_group, sg


def parameter_group(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    *,
    size: DatabaseSize,
    major: str,
    blue_green: bool,
    tags: dict[str, str],
    provider: pulumi.ProviderResource | None = None,
) -> aws.rds.ParameterGroup:
    """The tier's PostgreSQL settings for the engine major the stack runs (``blue_green``:
    with what an RDS Blue/Green deployment replicates by).

    Replacing a parameter group (family change) must create the new one before the old one,
    still attached, is deleted: Pulumi's default order, with a name_prefix so the two can
    coexist. A major upgrade's new family is such a replacement, ready before the switch.
    Nothing else replaces it: the description (which RDS cannot change) names no size, so a
    move to a larger instance class only changes parameter values in place, the static ones
    at the next reboot."""
    return aws.rds.ParameterGroup(
        f"{name}-params",
        name_prefix=f"{ident}-pg{major}-",
        family=parameter_family(major),
        description=f"PostgreSQL {major} settings of {ident}",
        parameters=[
            {"name": p.name, "value": p.value, "apply_method": p.apply_method}
            for p in rds_parameters(size, logical_replication=blue_green)
        ],
        tags=tags,
        opts=pulumi.ResourceOptions(
            parent=owner,
            provider=provider,
            # Groups made while the description named the instance class keep theirs: a
            # replacement group for a text edit would leave every parameter pending a reboot.
            ignore_changes=["description"],
        ),
    )


def log_groups(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    key: aws.kms.Key,
    *,
    retention_days: int,
    tags: dict[str, str],
    protect: bool,
    provider: pulumi.ProviderResource | None = None,
) -> list[aws.cloudwatch.LogGroup]:
    """The groups RDS exports an instance's logs to, made before the instance so that they
    carry the tier's retention and the database's key (RDS would make them with neither,
    keeping student data in logs forever). ``protect``: they outlive the instance."""
    logs = EncryptedLogs(
        key,
        (rds_log_group_prefix(ident),),
        retention_days,
        tags,
        # An instance's logs outlive it (a restore replaces the instances).
        pulumi.ResourceOptions(parent=owner, provider=provider, retain_on_delete=protect),
    )
    return [
        logs.group(f"{name}-{log}-logs", name=f"{rds_log_group_prefix(ident)}{log}")
        for log in LOG_EXPORTS
    ]
