"""The opt-in cross-region read replica for reporting (``dbReportingReplica``, docs/tier4.md):
a replica of the primary in another region, in the network of the regional stack there, with
its own key, parameter group and log groups in that region and its lag alarm on that region's
topic."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.config.tier import AlarmThresholds, DatabaseSize
from components.database.alarms import replica_alarms
from components.database.args import ReportingReplica
from components.database.instance_parts import log_groups, network, parameter_group
from components.database.recovery import region_provider
from components.database.settings import _SharedInstanceArgs, rds_log_group_prefix
from components.shared.kms import customer_key, key_policy, logs_statement


def reporting_replica(
    owner: pulumi.Resource,
    name: str,
    ident: str,
    target: ReportingReplica | None,
    *,
    primary: aws.rds.Instance,
    common: _SharedInstanceArgs,
    depends_on: list[pulumi.Resource],
    size: DatabaseSize,
    major: str,
    blue_green: bool,
    alarms: AlarmThresholds,
    retention_days: int,
    tags: dict[str, str],
    protect: bool,
) -> aws.rds.Instance | None:
    """The replica ``<primary identifier>-reporting`` in the ``target`` region, or None where
    the stack has not opted in. ``common`` is what the primary's replicas share; what is
    regional (key, parameter group, subnets, security group, log groups) is made there, with
    the primary's settings (``size``, ``major``, ``blue_green``, ``retention_days``)."""
    if target is None:
        return None
    region, replica_ident = target.region, f"{ident}-reporting"
    provider = region_provider(owner, f"{name}-reporting-{region}", region)
    there = pulumi.ResourceOptions(parent=owner, provider=provider)
    key = _regional_key(f"{name}-reporting-key", replica_ident, region, tags, protect, there)
    subnets, sg = network(
        owner,
        f"{name}-reporting",
        replica_ident,
        vpc_id=target.vpc_id,
        subnet_ids=target.subnet_ids,
        client_security_group_ids=target.client_security_group_ids,
        tags=tags,
        region=region,
        provider=provider,
    )
    params = parameter_group(
        owner,
        f"{name}-reporting",
        replica_ident,
        size=size,
        major=major,
        blue_green=blue_green,
        tags=tags,
        provider=provider,
    )
    regional = common.copy()
    regional["kms_key_id"] = regional["performance_insights_kms_key_id"] = key.arn
    regional["parameter_group_name"] = params.name
    regional["vpc_security_group_ids"] = [sg.id]
    replica = aws.rds.Instance(
        f"{name}-reporting",
        **regional,
        identifier=replica_ident,
        # Across regions RDS names the source by ARN; the engine version, storage and logins
        # come with it, and a major upgrade of the primary upgrades this replica too.
        replicate_source_db=primary.arn,
        db_subnet_group_name=subnets.name,
        multi_az=False,
        # Holds no data of its own, like the in-region replicas: rebuilt, never restored.
        deletion_protection=False,
        skip_final_snapshot=True,
        tags={**tags, "Name": replica_ident},
        opts=pulumi.ResourceOptions.merge(
            there,
            pulumi.ResourceOptions(
                depends_on=[
                    *depends_on,
                    *log_groups(
                        owner,
                        f"{name}-reporting",
                        replica_ident,
                        key,
                        retention_days=retention_days,
                        tags=tags,
                        protect=protect,
                        provider=provider,
                    ),
                ],
                # RDS cannot move a replica to another source: after a restore it is rebuilt
                # from the new primary.
                replace_on_changes=["replicateSourceDb"],
            ),
        ),
    )
    replica_alarms(
        owner,
        name,
        role="reporting",
        title=f"Reporting replica in {region}",
        replica=replica,
        alarms=alarms,
        topic_arn=target.alarm_topic_arn,
        tags=tags,
        provider=provider,
    )
    return replica


def _regional_key(
    resource_name: str,
    identifier: str,
    region: str,
    tags: dict[str, str],
    protect: bool,
    there: pulumi.ResourceOptions,
) -> aws.kms.Key:
    """An encrypted primary's cross-region replica needs a key of its own region; Performance
    Insights and the exported logs there use it too."""
    account = aws.get_caller_identity_output().account_id
    return customer_key(
        resource_name,
        description=f"Encrypts {identifier} in {region}: storage, Performance Insights, logs",
        policy=account.apply(
            lambda a: key_policy(
                a, [logs_statement(region, a, rds_log_group_prefix(identifier).rstrip("/"))]
            )
        ),
        tags=tags,
        opts=pulumi.ResourceOptions.merge(there, pulumi.ResourceOptions(protect=protect)),
    )
