"""The cluster: EKS control plane, node groups, add-ons, the autoscaler and the load
balancer controller, and their IAM documents.

Pure functions are tested directly; the rest through the whole program under mocks
(``stack_run``), per stack."""

from __future__ import annotations

import json

import pytest

from components.cluster import (
    ADDON_VERSIONS,
    CLUSTER_AUTOSCALER_IMAGE_TAG,
    KUBERNETES_VERSION,
    autoscaler_policy,
    kubeconfig,
    load_balancer_controller_policy,
    node_group_tags,
)
from components.cluster.iam_policies import cluster_encryption_policy
from components.config.catalog import TIERS
from tests.shared import (
    ACCESS_ENTRY,
    CRON_JOB,
    EKS_CLUSTER,
    HPA,
    INGRESS_RULE,
    KMS_KEY,
    LOG_GROUP,
    NODE_GROUP,
    STACKS,
    StackRunner,
    tier_of,
)
from tools.harness import run_stack
from tools.mocks import _fake_id

# -- pure functions ------------------------------------------------------------------------


def test_autoscaler_policy_scales_only_owned_groups() -> None:
    doc = json.loads(autoscaler_policy("c1"))
    scale = next(s for s in doc["Statement"] if "autoscaling:SetDesiredCapacity" in s["Action"])
    assert scale["Condition"] == {
        "StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/c1": "owned"}
    }
    assert set(scale["Action"]) == {
        "autoscaling:SetDesiredCapacity",
        "autoscaling:TerminateInstanceInAutoScalingGroup",
    }
    for statement in doc["Statement"]:
        if "Condition" not in statement:
            assert all(":Describe" in a or ":Get" in a for a in statement["Action"]), statement


def test_load_balancer_controller_policy_covers_target_group_binding() -> None:
    doc = json.loads(load_balancer_controller_policy())
    actions = {
        a
        for s in doc["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    for needed in (
        "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "ec2:DescribeSubnets",
    ):
        assert needed in actions
    # Destructive actions only on resources the controller tagged itself.
    for statement in doc["Statement"]:
        acts = (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        )
        if any(a.endswith(("DeleteLoadBalancer", "DeleteSecurityGroup")) for a in acts):
            assert "Condition" in statement
    assert not any(a.startswith(("wafv2:", "shield:", "acm:", "cognito")) for a in actions)


def test_kubeconfig_uses_aws_eks_get_token() -> None:
    cfg = kubeconfig("c1", "https://x", "Q0E=", "eu-west-1")
    user = cfg["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"][:4] == ["eks", "get-token", "--cluster-name", "c1"]
    assert user["args"][4:6] == ["--region", "eu-west-1"]
    assert cfg["clusters"][0]["cluster"]["certificate-authority-data"] == "Q0E="
    assert cfg["current-context"] == "c1"


def test_node_group_tags_for_scale_from_zero() -> None:
    training = next(g for g in TIERS["tier3"].node_groups if g.name == "training")
    tags = node_group_tags("c1", training)
    assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
    assert tags["k8s.io/cluster-autoscaler/c1"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/node-template/taint/workload"] == "training:NoSchedule"


def test_addon_table_pins_eksbuild_versions_for_the_kubernetes_minor() -> None:
    assert set(ADDON_VERSIONS) == {
        "vpc-cni",
        "coredns",
        "kube-proxy",
        "aws-ebs-csi-driver",
        "amazon-cloudwatch-observability",
        "metrics-server",
    }
    assert all("-eksbuild." in v and v.startswith("v") for v in ADDON_VERSIONS.values())
    assert ADDON_VERSIONS["kube-proxy"].startswith(f"v{KUBERNETES_VERSION}.")
    assert CLUSTER_AUTOSCALER_IMAGE_TAG.startswith(f"v{KUBERNETES_VERSION}.")


def test_cluster_encryption_policy_is_on_the_key_only() -> None:
    (statement,) = json.loads(cluster_encryption_policy("arn:aws:kms:r:1:key/k"))["Statement"]
    assert statement["Resource"] == "arn:aws:kms:r:1:key/k"
    assert "kms:Decrypt" in statement["Action"]


# -- the whole program, per stack ----------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_control_plane(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    cluster = run.one(EKS_CLUSTER)
    assert cluster.get("version") == KUBERNETES_VERSION
    assert cluster.get("enabledClusterLogTypes") == ["api", "audit", "authenticator"]
    assert cluster.get("accessConfig.authenticationMode") == "API"
    assert cluster.get("vpcConfig.endpointPrivateAccess") is True
    # The example stack files reach the API through the public endpoint, limited to CIDRs.
    assert cluster.get("vpcConfig.endpointPublicAccess") is True
    assert cluster.get("vpcConfig.publicAccessCidrs") == ["203.0.113.10/32"]
    assert cluster.get("encryptionConfig.resources") == ["secrets"]
    name = cluster.get("name")
    log_group = run.has_properties(LOG_GROUP, {"name": f"/aws/eks/{name}/cluster"})
    assert len(log_group) == 1
    assert log_group[0].urn in cluster.options.depends_on
    key_arn = cluster.get("encryptionConfig.provider.keyArn")
    keys = [k for k in run.of_type(KMS_KEY) if k.get("enableKeyRotation") is True]
    assert key_arn and keys
    oidc = run.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.get("clientIdLists") == ["sts.amazonaws.com"]
    assert oidc.get("url", "").startswith("https://oidc.eks.")


def test_cluster_admin_access_entry_when_configured() -> None:
    role = "arn:aws:iam::123456789012:role/platform-admin"
    run = run_stack(
        "dev", {"clusterAdminRoleArn": role, "clusterPublicAccessCidrs": ["203.0.113.0/24"]}
    )
    entry = run.one(ACCESS_ENTRY)
    assert entry.get("principalArn") == role
    assoc = run.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert assoc.get("policyArn").endswith("/AmazonEKSClusterAdminPolicy")
    assert assoc.get("accessScope") == {"type": "cluster"}
    cluster = run.one(EKS_CLUSTER)
    assert cluster.get("vpcConfig.endpointPublicAccess") is True
    assert cluster.get("vpcConfig.publicAccessCidrs") == ["203.0.113.0/24"]


@pytest.mark.parametrize("admin", [False, True])
def test_every_cluster_resource_is_a_child_of_the_component(admin: bool) -> None:
    """Node groups, add-ons, the OIDC provider, IRSA roles and role policies are owned by the
    component, not by the EKS cluster or a role; an alias keeps their deployed URN."""
    extra = {"clusterAdminRoleArn": "arn:aws:iam::123456789012:role/platform-admin"}
    run = run_stack("tier3", extra if admin else None)
    component = run.one("ssp:cluster:Cluster")
    chain = f"::{component.type}$"
    owned = [r for r in run if chain in r.urn]
    assert len(owned) > 40
    assert {r.parent for r in owned} == {component.urn}
    assert run.count(ACCESS_ENTRY) == int(admin)


@pytest.mark.parametrize("stack", STACKS)
def test_node_groups_follow_the_tier(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    groups = run.of_type(NODE_GROUP)
    assert len(groups) == len(tier.node_groups)
    cluster_name = run.one(EKS_CLUSTER).get("name")
    for size in tier.node_groups:
        (group,) = [g for g in groups if g.get("labels.workload") == size.name]
        where = f"{stack}/{group.name}"
        assert group.get("scalingConfig") == {
            "minSize": size.min_size,
            "maxSize": size.max_size,
            "desiredSize": size.desired_size,
        }, where
        assert "scalingConfig.desiredSize" in group.options.ignore_changes, where
        assert group.get("capacityType") == size.capacity_type, where
        assert group.get("updateConfig.maxUnavailablePercentage") == 33, where
        assert group.inputs["tags"][f"k8s.io/cluster-autoscaler/{cluster_name}"] == "owned"
        assert group.inputs["tags"]["k8s.io/cluster-autoscaler/enabled"] == "true"
        taints = group.get("taints") or []
        if size.dedicated:
            assert taints == [{"key": "workload", "value": size.name, "effect": "NO_SCHEDULE"}]
        else:
            assert not taints, where
    for template in run.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert template.get("metadataOptions.httpTokens") == "required"
        assert template.get("metadataOptions.httpPutResponseHopLimit") == 1
        ebs = template.get("blockDeviceMappings.0.ebs")
        assert ebs["volumeType"] == "gp3" and ebs["encrypted"] == "true"
        assert len(template.get("vpcSecurityGroupIds")) == 2


def test_dev_is_small_and_single_group(stack_run: StackRunner) -> None:
    run = stack_run("dev")
    (group,) = run.of_type(NODE_GROUP)
    assert group.get("labels.workload") == "app"
    assert group.get("scalingConfig.maxSize") <= 3
    assert run.one(HPA, "workloads-api-hpa").get("spec.maxReplicas") <= 2


def test_tier3_has_spot_training_group_and_hpa_20(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    (training,) = [g for g in run.of_type(NODE_GROUP) if g.get("labels.workload") == "training"]
    assert training.get("capacityType") == "SPOT"
    assert training.get("taints") == [
        {"key": "workload", "value": "training", "effect": "NO_SCHEDULE"}
    ]
    assert run.one(HPA, "workloads-api-hpa").get("spec.maxReplicas") >= 20
    trainer = run.one(CRON_JOB, "workloads-trainer")
    pod = trainer.get("spec.jobTemplate.spec.template.spec")
    assert pod["nodeSelector"] == {"workload": "training"}
    assert pod["tolerations"] == [
        {"key": "workload", "operator": "Equal", "value": "training", "effect": "NoSchedule"}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_addons_autoscaler_and_controller(stack_run: StackRunner, stack: str) -> None:
    run = stack_run(stack)
    addons = {a.get("addonName"): a for a in run.of_type("aws:eks/addon:Addon")}
    assert set(addons) == set(ADDON_VERSIONS)
    for addon_name, addon in addons.items():
        assert addon.get("addonVersion") == ADDON_VERSIONS[addon_name]
        assert addon.get("resolveConflictsOnUpdate") == "OVERWRITE"
    for irsa in ("vpc-cni", "aws-ebs-csi-driver", "amazon-cloudwatch-observability"):
        assert addons[irsa].get("serviceAccountRoleArn"), irsa
    assert json.loads(addons["vpc-cni"].get("configurationValues")) == {
        "enableNetworkPolicy": "true"
    }
    releases = {r.get("chart"): r for r in run.of_type("kubernetes:helm.sh/v3:Release")}
    autoscaler = releases["cluster-autoscaler"]
    assert autoscaler.get("repositoryOpts.repo") == "https://kubernetes.github.io/autoscaler"
    assert autoscaler.get("version")
    values = autoscaler.get("values")
    cluster_name = run.one(EKS_CLUSTER).get("name")
    assert values["autoDiscovery"]["clusterName"] == cluster_name
    assert values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert values["extraArgs"] == {
        "balance-similar-node-groups": True,
        "skip-nodes-with-system-pods": False,
        "expander": "least-waste",
    }
    has_system = any(g.name == "system" for g in TIERS[tier_of(run)].node_groups)
    assert values["nodeSelector"] == ({"workload": "system"} if has_system else {})
    controller = releases["aws-load-balancer-controller"]
    assert controller.get("repositoryOpts.repo") == "https://aws.github.io/eks-charts"
    assert controller.get("values.clusterName") == cluster_name


@pytest.mark.parametrize("stack", STACKS)
def test_the_metrics_api_is_installed_once_nodes_run_it(stack_run: StackRunner, stack: str) -> None:
    """The HPAs scale on CPU and memory, which only a metrics API serves: EKS has none."""
    run = stack_run(stack)
    (metrics,) = run.has_properties("aws:eks/addon:Addon", {"addonName": "metrics-server"})
    assert metrics.get("addonVersion") == ADDON_VERSIONS["metrics-server"]
    for group in run.of_type(NODE_GROUP):
        assert group.urn in metrics.options.depends_on, group.name
    provider = run.one("pulumi:providers:kubernetes")
    assert metrics.urn in provider.options.depends_on, "workloads wait for the metrics API"


# -- reaching the API ---------------------------------------------------------------------


def test_private_paths_to_the_api_open_443_on_the_cluster_security_group() -> None:
    group = "sg-0123456789abcdef0"
    run = run_stack(
        "tier2",
        {
            "clusterPublicAccessCidrs": [],
            "clusterApiAccessCidrs": ["10.100.0.0/22"],
            "clusterApiAccessSecurityGroupIds": [group],
        },
    )
    cluster = run.one(EKS_CLUSTER)
    assert cluster.get("vpcConfig.endpointPublicAccess") is False
    rules = run.has_properties(INGRESS_RULE, {"fromPort": 443, "toPort": 443, "ipProtocol": "tcp"})
    on_cluster = [r for r in rules if r.name.startswith("cluster-api-from-")]
    assert {(r.get("cidrIpv4"), r.get("referencedSecurityGroupId")) for r in on_cluster} == {
        ("10.100.0.0/22", None),
        (None, group),
    }
    # The group EKS made for the cluster (computed: the mocks derive it from the name).
    cluster_group = f"sg-{_fake_id(cluster.name + 'cluster')}"
    assert {r.get("securityGroupId") for r in on_cluster} == {cluster_group}
    provider = run.one("pulumi:providers:kubernetes")
    assert {r.urn for r in on_cluster} <= set(provider.options.depends_on)


def test_the_kubeconfig_takes_the_stacks_aws_profile() -> None:
    """The token must belong to the identity that created the cluster, as the other providers
    do; ambient AWS_PROFILE credentials would otherwise win."""
    args = kubeconfig("c", "https://x", "ca", "us-east-1", "district-admin")["users"][0]["user"]
    assert args["exec"]["args"][-4:] == ["--profile", "district-admin", "--output", "json"]
    without = kubeconfig("c", "https://x", "ca", "us-east-1")["users"][0]["user"]
    assert "--profile" not in without["exec"]["args"]
    run = run_stack("dev", {"aws:profile": "district-admin"})
    config = json.loads(run.one("pulumi:providers:kubernetes").get("kubeconfig"))
    assert "--profile" in config["users"][0]["user"]["exec"]["args"]


# -- upgrades: control plane, then add-ons, then node groups --------------------------------


def test_node_groups_run_the_control_planes_version(stack_run: StackRunner) -> None:
    run = stack_run("tier3")
    assert run.one(EKS_CLUSTER).get("version") == KUBERNETES_VERSION
    assert {g.get("version") for g in run.of_type(NODE_GROUP)} == {KUBERNETES_VERSION}


def test_an_eks_upgrade_goes_plane_then_addons_then_nodes() -> None:
    minor = int(KUBERNETES_VERSION.split(".")[1])
    held = f"1.{minor - 1}"
    run = run_stack("tier2", extra_config={"nodeKubernetesVersion": held})
    plane = run.one(EKS_CLUSTER)
    # Step 1 (nodes held): the plane and the add-ons move, the nodes stay.
    assert plane.get("version") == KUBERNETES_VERSION
    assert {g.get("version") for g in run.of_type(NODE_GROUP)} == {held}
    addons = {a.get("addonName"): a for a in run.of_type("aws:eks/addon:Addon")}
    for addon in addons.values():
        assert plane.urn in addon.options.depends_on, addon.name
    # Step 2 (setting removed): the node groups roll after the add-ons they need.
    for group in run.of_type(NODE_GROUP):
        for early in ("vpc-cni", "kube-proxy"):
            assert addons[early].urn in group.options.depends_on, (group.name, early)
