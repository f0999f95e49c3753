"""Stack rules on what a real account and cluster need for the stack to work, which no single
resource shows and an ``up`` does not fail on:

- ``metrics-api-for-resource-autoscaling``: an autoscaler on CPU or memory needs a resource
  metrics API (metrics.k8s.io) in the same stack; EKS installs none, and without it the
  targets stay unknown and nothing ever scales.
- ``eks-api-reachable``: whoever runs ``pulumi up`` reaches the Kubernetes API: a public
  endpoint limited to CIDRs, or a 443 rule on the cluster security group for a network or a
  security group (EKS's own group admits only itself).
- ``ecr-template-role``: an ECR repository creation template that tags or KMS-encrypts the
  repositories it creates names a role ``ecr.amazonaws.com`` may assume.

During a preview, IDs of new resources are unknown: joins then fall back to the component
tree (a resource and its companions share a parent).
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from ._stack_util import HPAS, of_type, parent_urn, report_each, undecided, val, vals
from ._util import as_list, get, num, statements

ADDON = "aws:eks/addon:Addon"
HELM_RELEASES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
METRICS_SERVER = "metrics-server"
RESOURCE_TRIGGERS = frozenset({"cpu", "memory"})


def _scales_on_resource_metrics(r: PolicyResource) -> bool:
    if r.resource_type in HPAS:
        return any(get(m, "type") == "Resource" for m in vals(r, "spec.metrics"))
    return any(get(t, "type") in RESOURCE_TRIGGERS for t in vals(r, "spec.triggers"))


def _serves_resource_metrics(r: PolicyResource) -> bool:
    if r.resource_type == ADDON:
        return val(r, "addonName") == METRICS_SERVER
    return val(r, "chart") == METRICS_SERVER


def _metrics_api(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    if any(_serves_resource_metrics(r) for r in of_type(resources, ADDON, *HELM_RELEASES)):
        return
    at = report_each(report)
    for scaler in of_type(resources, *HPAS, SCALED_OBJECT):
        if _scales_on_resource_metrics(scaler):
            at(
                f"'{scaler.name}' scales on CPU or memory, but nothing in the stack serves the "
                "resource metrics API (metrics.k8s.io), which EKS does not install: its targets "
                "stay <unknown> and it never scales. Install the metrics-server EKS add-on "
                "(aws.eks.Addon addon_name='metrics-server') or its Helm chart.",
                scaler,
            )


CLUSTER = "aws:eks/cluster:Cluster"
INGRESS_RULES = ("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",)
LEGACY_RULES = ("aws:ec2/securityGroupRule:SecurityGroupRule",)


def _admits_https(rule: PolicyResource) -> bool:
    if rule.resource_type in LEGACY_RULES and val(rule, "type") != "ingress":
        return False
    low, high = num(val(rule, "fromPort")), num(val(rule, "toPort"))
    protocol = str(val(rule, "ipProtocol") or val(rule, "protocol") or "")
    if protocol == "-1":
        return True
    return protocol == "tcp" and low is not None and high is not None and low <= 443 <= high


def _on_cluster_group(rule: PolicyResource, cluster: PolicyResource) -> bool:
    if undecided(rule, "securityGroupId") or undecided(cluster, "vpcConfig.clusterSecurityGroupId"):
        # A first preview: EKS makes the group. The rule is the cluster's if they share a parent.
        return parent_urn(rule) is not None and parent_urn(rule) == parent_urn(cluster)
    group = val(cluster, "vpcConfig.clusterSecurityGroupId")
    return bool(group) and val(rule, "securityGroupId") == group


def _api_reachable(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = args.resources
    rules = [r for r in of_type(resources, *INGRESS_RULES, *LEGACY_RULES) if _admits_https(r)]
    for cluster in of_type(resources, CLUSTER):
        if undecided(cluster, "vpcConfig.endpointPublicAccess"):
            continue
        if val(cluster, "vpcConfig.endpointPublicAccess") is True:
            continue  # its CIDRs are judged by eks-public-access-cidrs
        if any(_on_cluster_group(rule, cluster) for rule in rules):
            continue
        report(
            f"EKS cluster '{cluster.name}' has a private API endpoint only, and its cluster "
            "security group admits no one on 443: `pulumi up` cannot install the charts and "
            "workloads. Set clusterPublicAccessCidrs (the deployers' egress CIDRs), "
            "clusterApiAccessCidrs or clusterApiAccessSecurityGroupIds.",
            cluster.urn,
        )


TEMPLATE = "aws:ecr/repositoryCreationTemplate:RepositoryCreationTemplate"
ROLE = "aws:iam/role:Role"
ECR_SERVICE = "ecr.amazonaws.com"


def _trusts_ecr(role: PolicyResource) -> bool:
    return any(
        statement.get("Effect") == "Allow"
        and ECR_SERVICE in [str(s) for s in as_list(get(statement, "Principal.Service"))]
        for statement in statements(val(role, "assumeRolePolicy"))
    )


def _template_role(template: PolicyResource, roles: list[PolicyResource]) -> bool | None:
    """Whether the template names a role ECR may assume; None when that is decided at apply
    time (a role whose trust policy is itself unknown)."""
    if undecided(template, "customRoleArn"):
        # A first preview: the role is made in the same update, beside the template.
        candidates = [r for r in roles if parent_urn(r) == parent_urn(template)]
    else:
        arn = val(template, "customRoleArn")
        if not arn:
            return False
        candidates = [r for r in roles if val(r, "arn") == arn]
        if not candidates:
            return None  # a role of another stack: its trust is not ours to read
    if any(undecided(r, "assumeRolePolicy") for r in candidates):
        return None
    return any(_trusts_ecr(r) for r in candidates)


def _ecr_template_role(args: StackValidationArgs, report: ReportViolation) -> None:
    roles = of_type(args.resources, ROLE)
    for template in of_type(args.resources, TEMPLATE):
        kms = any(
            get(c, "encryptionType") == "KMS" for c in vals(template, "encryptionConfigurations")
        )
        tagged = bool(val(template, "resourceTags"))
        if not (kms or tagged) or _template_role(template, roles) is not False:
            continue
        uses = " and ".join(w for w, on in (("resource tags", tagged), ("KMS", kms)) if on)
        report(
            f"ECR repository creation template '{template.name}' uses {uses} without a role "
            "ECR may assume, so ECR cannot create the repositories it replicates into; set "
            "custom_role_arn to a role whose trust policy admits ecr.amazonaws.com.",
            template.urn,
        )


M = EnforcementLevel.MANDATORY

POLICIES = [
    StackValidationPolicy(
        name="metrics-api-for-resource-autoscaling",
        description="An autoscaler on CPU or memory has a resource metrics API in its stack.",
        validate=_metrics_api,
        enforcement_level=M,
    ),
    StackValidationPolicy(
        name="eks-api-reachable",
        description="The deployers reach each EKS cluster's API: public CIDRs or a 443 rule.",
        validate=_api_reachable,
        enforcement_level=M,
    ),
    StackValidationPolicy(
        name="ecr-template-role",
        description="ECR creation templates with tags or KMS name a role ECR may assume.",
        validate=_ecr_template_role,
        enforcement_level=M,
    ),
]
