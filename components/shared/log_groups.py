"""Encrypted CloudWatch log groups, made one way: a customer-managed key whose policy lets
CloudWatch Logs use it for the groups under a few name prefixes (and no others), and the
groups themselves, encrypted with it and kept for the stack's retention.

``encrypted_logs`` makes the key; ``EncryptedLogs.group`` makes each group and refuses a
name outside the key's prefixes, which CloudWatch Logs would otherwise refuse only at
``pulumi up`` (the key policy would not admit the group).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.shared.kms import logs_key


@dataclass(frozen=True)
class EncryptedLogs:
    """A key CloudWatch Logs encrypts with, and what every group under it shares."""

    key: aws.kms.Key
    """The key; its policy admits the groups under ``prefixes`` (``kms.logs_statement``)."""
    prefixes: tuple[str, ...]
    """Names of the groups the key serves start with one of these."""
    retention_days: int
    """Retention of every group."""
    tags: dict[str, str]
    """Tags of every group, unless a group names its own."""
    opts: pulumi.ResourceOptions
    """Options of every group (its owner, provider), unless a group names its own."""

    def group(
        self,
        resource_name: str,
        *,
        name: str | None = None,
        name_prefix: str | None = None,
        tags: dict[str, str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> aws.cloudwatch.LogGroup:
        """A log group encrypted with the key: named ``name``, or AWS-named from
        ``name_prefix``, or (neither) auto-named by Pulumi from ``resource_name``."""
        actual = name or name_prefix or f"{resource_name}-"
        if not any(actual.startswith(prefix) for prefix in self.prefixes):
            raise ValueError(
                f"log group {actual!r}: its key serves only groups under "
                f"{', '.join(self.prefixes)}; name it under one of them"
            )
        return aws.cloudwatch.LogGroup(
            resource_name,
            name=name,
            name_prefix=name_prefix,
            retention_in_days=self.retention_days,
            kms_key_id=self.key.arn,
            tags=self.tags if tags is None else tags,
            opts=self.opts if opts is None else opts,
        )


def encrypted_logs(
    key_name: str,
    *,
    log_group_prefixes: Sequence[str],
    description: str,
    retention_days: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    region: str | None = None,
) -> EncryptedLogs:
    """A new key for the log groups under ``log_groups_prefixes`` (``region``: theirs, when
    it is not the stack's; a key serves log groups of its own region only)."""
    key = logs_key(
        key_name,
        log_group_prefixes=log_group_prefixes,
        description=description,
        tags=tags,
        opts=opts,
        region=region,
    )
    return EncryptedLogs(key, tuple(log_group_prefixes), retention_days, tags, opts)
