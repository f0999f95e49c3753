"""Managed Grafana over the Prometheus workspace: the workspace (IAM Identity Center sign-in,
a role that may only query this Prometheus workspace), its data source and the repository's
dashboards, provisioned through the Grafana API with a rotating service-account token."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumiverse_grafana as grafana
import pulumiverse_time as time

from components.shared.iam import service_trust_policy

DASHBOARDS = Path(__file__).parent / "dashboards"
DATA_SOURCE_UID = "amp"  # the dashboards' panels name their data source by this uid
GRAFANA_VERSION = "10.4"
# Service-account tokens live at most 30 days; a new one is made on the first `up` after 25,
# so the provider never authenticates with an expired one.
TOKEN_SECONDS = 30 * 86_400
TOKEN_ROTATION_DAYS = 25
QUERY_ACTIONS = ("aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata")


def dashboards() -> dict[str, dict[str, Any]]:
    """The dashboards of the repository, by file stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def data_source_settings(region: str) -> dict[str, Any]:
    """The Prometheus data source signs its queries with the workspace's own role."""
    return {
        "httpMethod": "POST",
        "sigV4Auth": True,
        "sigV4AuthType": "ec2_iam_role",
        "sigV4Region": region,
    }


def grafana_workspace(
    owner: pulumi.ComponentResource,
    name: str,
    name_prefix: str,
    region: str,
    prometheus: aws.amp.Workspace,
    tags: dict[str, str],
    admin_group_ids: Sequence[str] = (),
) -> pulumi.Output[str]:
    """The Grafana workspace with its data source and dashboards, its Admin role given to
    ``admin_group_ids`` (IAM Identity Center groups); its URL."""
    child = pulumi.ResourceOptions(parent=owner)
    role = aws.iam.Role(
        f"{name}-grafana-role",
        assume_role_policy=service_trust_policy("grafana.amazonaws.com"),
        tags=tags,
        opts=child,
    )
    aws.iam.RolePolicy(
        f"{name}-grafana-query",
        role=role.id,
        policy=prometheus.arn.apply(
            lambda arn: json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": list(QUERY_ACTIONS), "Resource": arn}
                    ],
                }
            )
        ),
        opts=child,
    )
    workspace = aws.grafana.Workspace(
        f"{name}-grafana",
        name=name_prefix,
        description=f"Dashboards of {name_prefix}",
        account_access_type="CURRENT_ACCOUNT",
        authentication_providers=["AWS_SSO"],
        permission_type="CUSTOMER_MANAGED",
        role_arn=role.arn,
        grafana_version=GRAFANA_VERSION,
        tags=tags,
        opts=child,
    )
    if admin_group_ids:
        # IAM Identity Center signs in only the users and groups assigned to the workspace.
        aws.grafana.RoleAssociation(
            f"{name}-grafana-admins",
            workspace_id=workspace.id,
            role="ADMIN",
            group_ids=list(admin_group_ids),
            opts=child,
        )
    provisioner = aws.grafana.WorkspaceServiceAccount(
        f"{name}-grafana-provisioner",
        workspace_id=workspace.id,
        name="pulumi",
        grafana_role="ADMIN",  # creating data sources takes an admin
        opts=child,
    )
    rotation = time.Rotating(
        f"{name}-grafana-token-rotation", rotation_days=TOKEN_ROTATION_DAYS, opts=child
    )
    token = aws.grafana.WorkspaceServiceAccountToken(
        f"{name}-grafana-token",
        workspace_id=workspace.id,
        service_account_id=provisioner.service_account_id,
        # A new name, so a new token, at every rotation.
        name=rotation.unix.apply(lambda unix: f"pulumi-{unix}"),
        seconds_to_live=TOKEN_SECONDS,
        opts=child,
    )
    url = workspace.endpoint.apply(lambda host: f"https://{host}")
    provider = grafana.Provider(
        f"{name}-grafana-provider",
        url=url,
        auth=token.key,
        opts=child,
    )
    api = pulumi.ResourceOptions(parent=owner, provider=provider)
    source = grafana.oss.DataSource(
        f"{name}-grafana-prometheus",
        type="prometheus",
        name="Amazon Managed Service for Prometheus",
        uid=DATA_SOURCE_UID,
        url=prometheus.prometheus_endpoint,
        is_default=True,
        json_data_encoded=json.dumps(data_source_settings(region)),
        opts=api,
    )
    for stem, board in dashboards().items():
        grafana.oss.Dashboard(
            f"{name}-dashboard-{stem}",
            config_json=json.dumps(board, sort_keys=True),
            overwrite=True,  # the repository is the source of truth; UI edits are replaced
            opts=pulumi.ResourceOptions(parent=owner, provider=provider, depends_on=[source]),
        )
    return url
