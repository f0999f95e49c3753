"""Security-group rules the data stores share."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.shared.contract import owned


def admit_from_groups(
    name: str,
    *,
    security_group: aws.ec2.SecurityGroup,
    owner: pulumi.Resource,
    sources: Sequence[pulumi.Input[str]],
    port: int,
    description: str,
    tags: dict[str, str],
    provider: pulumi.ProviderResource | None = None,
) -> list[aws.vpc.SecurityGroupIngressRule]:
    """Admit TCP ``port`` into ``security_group`` from each source security group, never
    from a CIDR: how every data store lets the application tier in. The rules are owned by
    ``owner`` (the data store's component); they were once children of the group. ``provider``:
    the group's region where it is not the stack's."""
    return [
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-{i}",
            security_group_id=security_group.id,
            referenced_security_group_id=source,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=description,
            tags=tags,
            opts=owned(owner, was=security_group, provider=provider),
        )
        for i, source in enumerate(sources)
    ]
