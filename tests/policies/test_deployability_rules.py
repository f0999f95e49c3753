"""Stack rules on what a real account and cluster need for the stack to work: a metrics API
for CPU and memory autoscalers, a path to the cluster's API, a role for ECR's creation
templates. Each catches its bad stack and stays silent on the good one, including during a
first preview, when the IDs that join resources are unknown."""

from __future__ import annotations

import json
from typing import Any

from pulumi_policy import PolicyResource
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from .helpers import stack_messages, stack_resource

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
ADDON = "aws:eks/addon:Addon"
RELEASE = "kubernetes:helm.sh/v3:Release"
CLUSTER = "aws:eks/cluster:Cluster"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
ROLE = "aws:iam/role:Role"
COMPONENT = "ssp:registry:Registry"


def hpa(metric_type: str = "Resource") -> PolicyResource:
    metric = {"type": metric_type, "resource": {"name": "cpu"}}
    return stack_resource(HPA, "workloads-api-hpa", {"spec": {"metrics": [metric]}})


# -- metrics-api-for-resource-autoscaling ---------------------------------------------------


def test_a_cpu_autoscaler_without_a_metrics_api_is_reported() -> None:
    (message, at) = stack_messages("metrics-api-for-resource-autoscaling", [hpa()])[0]
    assert "'workloads-api-hpa' scales on CPU or memory" in message
    assert "metrics-server" in message
    assert at is not None and at.endswith("::workloads-api-hpa")


def test_a_keda_cpu_trigger_needs_the_metrics_api_too() -> None:
    scaled = stack_resource(SCALED_OBJECT, "worker", {"spec": {"triggers": [{"type": "memory"}]}})
    assert stack_messages("metrics-api-for-resource-autoscaling", [scaled])


def test_the_metrics_server_add_on_or_chart_serves_the_metrics_api() -> None:
    addon = stack_resource(ADDON, "cluster-metrics-server", {"addonName": "metrics-server"})
    chart = stack_resource(RELEASE, "metrics", {"chart": "metrics-server"})
    for server in (addon, chart):
        assert stack_messages("metrics-api-for-resource-autoscaling", [hpa(), server]) == []
    other = stack_resource(ADDON, "cluster-coredns", {"addonName": "coredns"})
    assert stack_messages("metrics-api-for-resource-autoscaling", [hpa(), other])


def test_queue_and_external_metric_autoscalers_need_no_metrics_api() -> None:
    sqs = stack_resource(
        SCALED_OBJECT, "worker", {"spec": {"triggers": [{"type": "aws-sqs-queue"}]}}
    )
    assert stack_messages("metrics-api-for-resource-autoscaling", [hpa("External"), sqs]) == []


# -- eks-api-reachable ----------------------------------------------------------------------


def cluster(public: Any, group: Any = "sg-cluster") -> PolicyResource:
    return stack_resource(
        CLUSTER,
        "cluster",
        {
            "vpcConfig": {
                "endpointPrivateAccess": True,
                "endpointPublicAccess": public,
                "clusterSecurityGroupId": group,
            }
        },
    )


def https_rule(group: Any, port: int = 443, parent: PolicyResource | None = None) -> PolicyResource:
    props = {"securityGroupId": group, "ipProtocol": "tcp", "fromPort": port, "toPort": port}
    return stack_resource(
        INGRESS, "cluster-api-from-runner", {**props, "cidrIpv4": "10.9.0.0/22"}, parent
    )


def test_a_private_endpoint_nobody_is_admitted_to_is_reported() -> None:
    (message, at) = stack_messages("eks-api-reachable", [cluster(False)])[0]
    assert "private API endpoint only" in message
    assert "clusterPublicAccessCidrs" in message and "clusterApiAccessCidrs" in message
    assert at is not None and at.endswith("::cluster")


def test_a_rule_on_another_group_or_port_does_not_reach_the_api() -> None:
    for rule in (https_rule("sg-app"), https_rule("sg-cluster", port=5432)):
        assert stack_messages("eks-api-reachable", [cluster(False), rule])


def test_public_cidrs_or_443_on_the_cluster_group_reach_the_api() -> None:
    assert stack_messages("eks-api-reachable", [cluster(True)]) == []
    assert stack_messages("eks-api-reachable", [cluster(False), https_rule("sg-cluster")]) == []


def test_on_a_first_preview_the_rule_beside_the_cluster_counts() -> None:
    """EKS creates the cluster group: its ID is unknown until then."""
    component = stack_resource("ssp:cluster:Cluster", "cluster", {})
    plane = stack_resource(CLUSTER, "cluster", {}, component)
    plane.props = unknown_checking_proxy(
        {
            "vpcConfig": {
                "endpointPrivateAccess": True,
                "endpointPublicAccess": False,
                "clusterSecurityGroupId": UNKNOWN_STRING_VALUE,
            }
        }
    )
    beside = https_rule(UNKNOWN_STRING_VALUE, parent=component)
    assert stack_messages("eks-api-reachable", [component, plane, beside]) == []
    assert stack_messages("eks-api-reachable", [component, plane])


# -- ecr-template-role ----------------------------------------------------------------------


def trust(service: str) -> str:
    statement = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def template(role_arn: Any = None, parent: PolicyResource | None = None) -> PolicyResource:
    props: dict[str, Any] = {
        "prefix": "ssp",
        "appliedFors": ["REPLICATION"],
        "encryptionConfigurations": [{"encryptionType": "KMS"}],
        "resourceTags": {"project": "student-success"},
    }
    if role_arn is not None:
        props["customRoleArn"] = role_arn
    return stack_resource(TEMPLATE, "registry-replica-template-us-west-2", props, parent)


ECR_ROLE_ARN = "arn:aws:iam::123456789012:role/replica-creation"


def test_a_template_with_tags_and_kms_and_no_role_is_reported() -> None:
    (message, at) = stack_messages("ecr-template-role", [template()])[0]
    assert "uses resource tags and KMS without a role" in message
    assert "ecr.amazonaws.com" in message
    assert at is not None and at.endswith("::registry-replica-template-us-west-2")


def test_the_role_must_trust_ecr() -> None:
    ecr = stack_resource(
        ROLE, "ecr", {"arn": ECR_ROLE_ARN, "assumeRolePolicy": trust("ecr.amazonaws.com")}
    )
    ec2 = stack_resource(
        ROLE, "ecr", {"arn": ECR_ROLE_ARN, "assumeRolePolicy": trust("ec2.amazonaws.com")}
    )
    assert stack_messages("ecr-template-role", [ecr, template(ECR_ROLE_ARN)]) == []
    assert stack_messages("ecr-template-role", [ec2, template(ECR_ROLE_ARN)])


def test_a_template_without_tags_or_kms_needs_no_role() -> None:
    plain = stack_resource(
        TEMPLATE, "t", {"prefix": "ssp", "encryptionConfigurations": [{"encryptionType": "AES256"}]}
    )
    assert stack_messages("ecr-template-role", [plain]) == []


def test_on_a_first_preview_the_role_beside_the_template_counts() -> None:
    registry = stack_resource(COMPONENT, "registry", {})
    role = stack_resource(
        ROLE,
        "registry-replica-creation-role",
        {"assumeRolePolicy": trust("ecr.amazonaws.com")},
        registry,
    )
    proxied = template(UNKNOWN_STRING_VALUE, registry)
    proxied.props = unknown_checking_proxy(dict(proxied.props))
    assert stack_messages("ecr-template-role", [registry, role, proxied]) == []
    assert stack_messages("ecr-template-role", [registry, proxied])
