"""Issue 4 (compute): registry, buckets, cluster, add-ons, autoscaler and the workloads.

Pure functions are tested directly; the rest through the whole program under mocks
(``stack_run``), per stack.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import k8s_manifests as m
from components.catalog import TIERS, connection_capacity
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
from components.iam import api_role_policy, irsa_trust_policy, trainer_role_policy
from components.kms import key_policy
from components.registry import lifecycle_policy
from components.storage import Transition, bucket_policy, lifecycle_rules
from components.workloads.settings import (
    app_config_data,
    app_secret_data,
    database_secret_data,
    postgres_url,
)
from tools.harness import StackRun, run_stack, stacks

STACKS = stacks()
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
BUCKET = "aws:s3/bucket:Bucket"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"


def tier_of(run: StackRun) -> str:
    return run.config["student-success:tier"]


# -- pure functions ---------------------------------------------------------------------------


def test_irsa_trust_policy_pins_service_account_and_audience() -> None:
    doc = json.loads(
        irsa_trust_policy(
            "arn:aws:iam::1:oidc-provider/oidc.eks.x/id/A", "https://oidc.eks.x/id/A", "ns", "sa"
        )
    )
    (statement,) = doc["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "oidc.eks.x/id/A:sub": "system:serviceaccount:ns:sa",
        "oidc.eks.x/id/A:aud": "sts.amazonaws.com",
    }


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
    }
    assert all("-eksbuild." in v and v.startswith("v") for v in ADDON_VERSIONS.values())
    assert ADDON_VERSIONS["kube-proxy"].startswith(f"v{KUBERNETES_VERSION}.")
    assert CLUSTER_AUTOSCALER_IMAGE_TAG.startswith(f"v{KUBERNETES_VERSION}.")


def test_ecr_lifecycle_keeps_last_n_and_any_rule_is_last() -> None:
    rules = json.loads(lifecycle_policy(12))["rules"]
    assert rules[-1]["selection"] == {
        "tagStatus": "any",
        "countType": "imageCountMoreThan",
        "countNumber": 12,
    }
    assert rules[-1]["rulePriority"] == max(r["rulePriority"] for r in rules)
    with pytest.raises(ValueError, match="keep_images=0"):
        lifecycle_policy(0)


def test_bucket_policy_is_tls_only_plus_extras() -> None:
    extra = {"Sid": "CloudFront", "Effect": "Allow", "Action": "s3:GetObject"}
    doc = json.loads(bucket_policy("arn:aws:s3:::b", [extra]))
    deny = doc["Statement"][0]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]
    assert doc["Statement"][1] == extra


def test_key_policy_keeps_account_admin_and_adds_extras() -> None:
    extra = {"Sid": "CloudFrontDecrypts", "Effect": "Allow", "Action": "kms:Decrypt"}
    doc = json.loads(key_policy("123456789012", [extra]))
    assert doc["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert doc["Statement"][1] == extra


def test_lifecycle_rules_models_and_archive() -> None:
    models = lifecycle_rules(noncurrent_versions_kept=5, noncurrent_days=30, transitions=())
    expire = next(r for r in models if "noncurrent_version_expiration" in r)
    assert expire["noncurrent_version_expiration"] == {
        "newer_noncurrent_versions": 5,
        "noncurrent_days": 30,
    }
    archive = lifecycle_rules(
        noncurrent_versions_kept=None,
        noncurrent_days=30,
        transitions=(Transition(30, "GLACIER_IR"), Transition(365, "DEEP_ARCHIVE")),
    )
    assert not any("expiration" in r for r in archive), "FERPA archives never expire"
    with pytest.raises(ValueError, match="ascending"):
        lifecycle_rules(
            noncurrent_versions_kept=None,
            noncurrent_days=30,
            transitions=(Transition(365, "DEEP_ARCHIVE"), Transition(30, "GLACIER_IR")),
        )


def test_postgres_url_escapes_password_and_requires_tls() -> None:
    url = postgres_url("app", "p@ss/w:rd", "db.internal", 5432, "ssp")
    assert url == "postgresql://app:p%40ss%2Fw%3Ard@db.internal:5432/ssp?sslmode=require"


def test_app_secret_and_config_keys() -> None:
    secret = app_secret_data(redis_url=None, api_key_pepper="x" * 48)
    assert set(secret) == {"API_KEY_PEPPER"}
    database = database_secret_data(
        user="u", password="p", writer="w", reader="r", port=5432, database="d"
    )
    assert set(database) == {"DATABASE_URL", "DATABASE_READ_URL"}
    assert "@r:5432" in database["DATABASE_READ_URL"]
    secret = {**secret, **database}
    config = app_config_data(
        api=TIERS["tier3"].api,
        models_bucket="m",
        archive_bucket="a",
        region="us-east-1",
        load_balancer_cidrs=["10.40.128.0/22", "10.40.132.0/22"],
    )
    # Client addresses come from X-Forwarded-For only when the ALB's subnets sent it.
    assert config["FORWARDED_ALLOW_IPS"] == "10.40.128.0/22,10.40.132.0/22"
    assert config["MODEL_STORE_URL"] == "s3://m/models"
    assert config["ARCHIVE_STORE_URL"] == "s3://a/audit"
    assert config["ENVIRONMENT"] == "production"
    assert "APP_ENV" not in config
    assert not set(config) & set(secret)


def test_role_policies() -> None:
    api = json.loads(api_role_policy("arn:aws:s3:::m", "arn:k", "arn:aws:sagemaker:e"))
    actions = {s["Action"] for s in api["Statement"]}
    assert actions == {"s3:ListBucket", "s3:GetObject", "kms:Decrypt", "sagemaker:InvokeEndpoint"}
    no_sm = json.loads(api_role_policy("arn:aws:s3:::m", "arn:k", None))
    assert "sagemaker:InvokeEndpoint" not in {s["Action"] for s in no_sm["Statement"]}
    trainer = json.loads(trainer_role_policy("arn:aws:s3:::m", "arn:k", "arn:aws:s3:::a", "arn:j"))
    writes = next(s for s in trainer["Statement"] if s["Sid"] == "WriteArchives")
    assert writes["Resource"] == "arn:aws:s3:::a/*"


def test_hpa_spec_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="HPA replicas 3-2"):
        m.hpa_spec(
            deployment="api", min_replicas=3, max_replicas=2, cpu_percent=70, memory_percent=80
        )


# -- the whole program, per stack ---------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_control_plane(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    cluster = run.one("aws:eks/cluster:Cluster")
    assert cluster.get("version") == KUBERNETES_VERSION
    assert cluster.get("enabledClusterLogTypes") == ["api", "audit", "authenticator"]
    assert cluster.get("accessConfig.authenticationMode") == "API"
    assert cluster.get("vpcConfig.endpointPrivateAccess") is True
    assert cluster.get("vpcConfig.endpointPublicAccess") is False, "no public CIDRs configured"
    assert cluster.get("encryptionConfig.resources") == ["secrets"]
    name = cluster.get("name")
    log_group = run.has_properties(
        "aws:cloudwatch/logGroup:LogGroup", {"name": f"/aws/eks/{name}/cluster"}
    )
    assert len(log_group) == 1
    assert log_group[0].urn in cluster.options.depends_on
    key_arn = cluster.get("encryptionConfig.provider.keyArn")
    keys = [k for k in run.of_type("aws:kms/key:Key") if k.get("enableKeyRotation") is True]
    assert key_arn and keys
    oidc = run.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.get("clientIdLists") == ["sts.amazonaws.com"]
    assert oidc.get("url", "").startswith("https://oidc.eks.")


def test_cluster_admin_access_entry_when_configured() -> None:
    from tools.harness import run_stack

    role = "arn:aws:iam::123456789012:role/platform-admin"
    run = run_stack(
        "dev", {"clusterAdminRoleArn": role, "clusterPublicAccessCidrs": ["203.0.113.0/24"]}
    )
    entry = run.one("aws:eks/accessEntry:AccessEntry")
    assert entry.get("principalArn") == role
    assoc = run.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert assoc.get("policyArn").endswith("/AmazonEKSClusterAdminPolicy")
    assert assoc.get("accessScope") == {"type": "cluster"}
    cluster = run.one("aws:eks/cluster:Cluster")
    assert cluster.get("vpcConfig.endpointPublicAccess") is True
    assert cluster.get("vpcConfig.publicAccessCidrs") == ["203.0.113.0/24"]


def test_cluster_encryption_policy_is_on_the_key_only() -> None:
    (statement,) = json.loads(cluster_encryption_policy("arn:aws:kms:r:1:key/k"))["Statement"]
    assert statement["Resource"] == "arn:aws:kms:r:1:key/k"
    assert "kms:Decrypt" in statement["Action"]


@pytest.mark.parametrize("admin", [False, True])
def test_every_cluster_resource_is_a_child_of_the_component(admin: bool) -> None:
    """Node groups, add-ons, the OIDC provider, IRSA roles and role policies are owned by the
    component, not by the EKS cluster or a role; an alias keeps their deployed URN."""
    from tools.harness import run_stack

    extra = {"clusterAdminRoleArn": "arn:aws:iam::123456789012:role/platform-admin"}
    run = run_stack("tier3", extra if admin else None)
    component = run.one("ssp:cluster:Cluster")
    chain = f"::{component.type}$"
    owned = [r for r in run if chain in r.urn]
    assert len(owned) > 40
    assert {r.parent for r in owned} == {component.urn}
    assert run.count("aws:eks/accessEntry:AccessEntry") == int(admin)


@pytest.mark.parametrize("stack", STACKS)
def test_node_groups_follow_the_tier(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    groups = run.of_type(NODE_GROUP)
    assert len(groups) == len(tier.node_groups)
    cluster_name = run.one("aws:eks/cluster:Cluster").get("name")
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


def test_dev_is_small_and_single_group(stack_run: Any) -> None:
    run = stack_run("dev")
    (group,) = run.of_type(NODE_GROUP)
    assert group.get("labels.workload") == "app"
    assert group.get("scalingConfig.maxSize") <= 3
    assert run.one(HPA).get("spec.maxReplicas") <= 2


def test_tier3_has_spot_training_group_and_hpa_20(stack_run: Any) -> None:
    run = stack_run("tier3")
    (training,) = [g for g in run.of_type(NODE_GROUP) if g.get("labels.workload") == "training"]
    assert training.get("capacityType") == "SPOT"
    assert training.get("taints") == [
        {"key": "workload", "value": "training", "effect": "NO_SCHEDULE"}
    ]
    assert run.one(HPA).get("spec.maxReplicas") >= 20
    trainer = run.one("kubernetes:batch/v1:CronJob", "workloads-trainer")
    pod = trainer.get("spec.jobTemplate.spec.template.spec")
    assert pod["nodeSelector"] == {"workload": "training"}
    assert pod["tolerations"] == [
        {"key": "workload", "operator": "Equal", "value": "training", "effect": "NoSchedule"}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_addons_autoscaler_and_controller(stack_run: Any, stack: str) -> None:
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
    cluster_name = run.one("aws:eks/cluster:Cluster").get("name")
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
def test_registry_and_buckets(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    protect = TIERS[tier_of(run)].deletion_protection
    repo = run.one("aws:ecr/repository:Repository")
    assert repo.get("imageTagMutability") == "IMMUTABLE"
    assert repo.get("imageScanningConfiguration.scanOnPush") is True
    assert repo.get("encryptionConfigurations.0.encryptionType") == "KMS"
    assert repo.options.protect is protect
    assert run.count("aws:ecr/lifecyclePolicy:LifecyclePolicy") == 1
    buckets = run.of_type(BUCKET)
    assert len(buckets) == 2
    for bucket in buckets:
        assert bucket.options.protect is protect, bucket.name
        assert bucket.get("forceDestroy") is (not protect), bucket.name
        assert bucket.get("tags.data-classification") == "ferpa"
        assert "bucket" not in bucket.inputs, "auto-named through bucket_prefix"
        children = {c.type: c for c in run.attached_to(bucket, "bucket")}
        block = children["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]
        assert all(
            block.get(k) is True
            for k in (
                "blockPublicAcls",
                "blockPublicPolicy",
                "ignorePublicAcls",
                "restrictPublicBuckets",
            )
        )
        ownership = children["aws:s3/bucketOwnershipControls:BucketOwnershipControls"]
        assert ownership.get("rule.objectOwnership") == "BucketOwnerEnforced"
        assert (
            children["aws:s3/bucketVersioning:BucketVersioning"].get(
                "versioningConfiguration.status"
            )
            == "Enabled"
        )
        sse = children[
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        ].get("rules.0")
        assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
        assert sse["bucketKeyEnabled"] is True
        policy = json.loads(children["aws:s3/bucketPolicy:BucketPolicy"].get("policy"))
        assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = [
        r.get("rules")
        for r in run.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    ]
    flat = [rule for group in rules for rule in group]
    assert any(
        rule.get("noncurrentVersionExpiration", {}).get("newerNoncurrentVersions") == 5
        for rule in flat
    )
    assert any(
        [t["storageClass"] for t in rule.get("transitions", [])] == ["GLACIER_IR", "DEEP_ARCHIVE"]
        for rule in flat
    )


def _k8s(run: StackRun) -> list[Any]:
    return [r for r in run if r.type.startswith("kubernetes:") and r.custom]


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_object_uses_the_cluster_provider(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    objects = _k8s(run)
    assert len(objects) >= 15
    for obj in objects:
        assert obj.options.provider, f"{obj.type} {obj.name} uses the default provider"
        assert obj.provider_name == "cluster-k8s", obj.name


@pytest.mark.parametrize("stack", STACKS)
def test_selectors_match_labels(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    deployment = run.one("kubernetes:apps/v1:Deployment")
    pod_labels = deployment.get("spec.template.metadata.labels")
    selector = deployment.get("spec.selector.matchLabels")
    assert selector and selector.items() <= pod_labels.items()
    service = run.one("kubernetes:core/v1:Service")
    assert service.get("spec.selector").items() <= pod_labels.items()
    assert service.get("spec.ports.0.targetPort") == "http"
    assert deployment.get("spec.template.spec.containers.0.ports.0.name") == "http"
    pdb = run.one("kubernetes:policy/v1:PodDisruptionBudget")
    assert pdb.get("spec.selector.matchLabels").items() <= pod_labels.items()
    hpa = run.one(HPA)
    assert hpa.get("spec.scaleTargetRef") == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment.get("metadata.name"),
    }
    ingress = run.one(
        "kubernetes:networking.k8s.io/v1:NetworkPolicy", "workloads-allow-api-ingress"
    )
    assert ingress.get("spec.podSelector.matchLabels").items() <= pod_labels.items()
    egress = run.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "workloads-allow-egress")
    for job in run.of_type("kubernetes:batch/v1:CronJob"):
        job_labels = job.get("spec.jobTemplate.spec.template.metadata.labels")
        assert egress.get("spec.podSelector.matchLabels").items() <= job_labels.items()
    assert egress.get("spec.podSelector.matchLabels").items() <= pod_labels.items()
    binding = run.one("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert binding.get("spec.serviceRef") == {
        "name": service.get("metadata.name"),
        "port": service.get("spec.ports.0.port"),
    }
    namespace = run.one("kubernetes:core/v1:Namespace").get("metadata.name")
    for obj in _k8s(run):
        if obj.type.startswith("kubernetes:helm.sh") or obj.type.endswith(":Namespace"):
            continue
        assert obj.get("metadata.namespace") == namespace, obj.name


@pytest.mark.parametrize("stack", STACKS)
def test_api_pods_are_hardened_and_sized_by_the_tier(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    namespace = run.one("kubernetes:core/v1:Namespace")
    assert namespace.get("metadata.labels")["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = run.one("kubernetes:apps/v1:Deployment")
    pod = deployment.get("spec.template.spec")
    container = pod["containers"][0]
    assert container["image"].endswith(":0.1.0") and ".dkr.ecr." in container["image"]
    assert container["args"] == ["serve"]
    assert container["resources"] == {
        "requests": {"cpu": tier.api.cpu_request, "memory": tier.api.memory_request},
        "limits": {"cpu": tier.api.cpu_limit, "memory": tier.api.memory_limit},
    }
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"mountPath": "/tmp", "name": "tmp"} in container["volumeMounts"]
    assert container["livenessProbe"]["httpGet"]["path"] == m.LIVENESS_PATH
    assert container["readinessProbe"]["httpGet"]["path"] == m.READINESS_PATH
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    assert deployment.get("spec.strategy.rollingUpdate") == {"maxUnavailable": 0, "maxSurge": "25%"}
    assert "replicas" not in deployment.get("spec"), "the HPA owns the replica count"


@pytest.mark.parametrize("stack", STACKS)
def test_hpa_max_is_the_capacity_checks_max(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    hpa = run.one(HPA)
    assert hpa.get("spec.minReplicas") == tier.api.min_replicas
    assert hpa.get("spec.maxReplicas") == tier.api.max_replicas
    assert hpa.get("spec.maxReplicas") == connection_capacity(tier).max_pods
    targets = {
        x["resource"]["name"]: x["resource"]["target"]["averageUtilization"]
        for x in hpa.get("spec.metrics")
    }
    assert targets == {"cpu": tier.api.cpu_target_percent, "memory": tier.api.memory_target_percent}
    assert hpa.get("spec.behavior.scaleDown.stabilizationWindowSeconds") == 300


@pytest.mark.parametrize("stack", STACKS)
def test_jobs(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    jobs = {j.get("metadata.name"): j for j in run.of_type("kubernetes:batch/v1:CronJob")}
    assert jobs["trainer"].get("spec.schedule") == "0 2 * * *"
    assert jobs["archiver"].get("spec.schedule") == "0 4 * * 0"
    for job in jobs.values():
        spec = job.get("spec")
        assert spec["concurrencyPolicy"] == "Forbid" and spec["timeZone"]
        assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["serviceAccountName"] == "trainer"
    trainer = jobs["trainer"].get("spec.jobTemplate.spec")
    assert trainer["activeDeadlineSeconds"] == 1800 and trainer["backoffLimit"] == 2
    assert trainer["template"]["spec"]["containers"][0]["args"] == ["train"]


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_stay_secret(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    for secret in run.of_type("kubernetes:core/v1:Secret"):
        assert "stringData" in secret.secret_paths, secret.name
    shared = set(run.one("kubernetes:core/v1:Secret", "workloads-secret").get("stringData"))
    assert ("REDIS_URL" in shared) is tier.cache.enabled
    database = run.one("kubernetes:core/v1:Secret", "workloads-api-db").get("stringData")
    assert set(database) == {"DATABASE_URL", "DATABASE_READ_URL"}
    assert database["DATABASE_URL"].endswith("?sslmode=require")
    config = run.one("kubernetes:core/v1:ConfigMap").get("data")
    assert not any("postgresql://" in v or "rediss://" in v for v in config.values())
    assert "kubeconfig" not in run.outputs or "kubeconfig" in run.secret_outputs


@pytest.mark.parametrize("stack", STACKS)
def test_load_balancer(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    alb = run.one("aws:lb/loadBalancer:LoadBalancer")
    assert alb.get("internal") is False and alb.get("dropInvalidHeaderFields") is True
    assert alb.get("enableDeletionProtection") is tier.deletion_protection
    tg = run.one("aws:lb/targetGroup:TargetGroup")
    assert tg.get("targetType") == "ip" and tg.get("port") == 8080
    assert tg.get("healthCheck.path") == m.READINESS_PATH
    # No stack file names a certificate: plain HTTP on port 80 only.
    listener = run.one("aws:lb/listener:Listener")
    assert listener.get("port") == 80 and listener.get("protocol") == "HTTP"
    # Behind CloudFront the listener forwards only what carries the Edge's secret header.
    expected_default = "fixed-response" if tier.edge.enabled else "forward"
    assert listener.get("defaultActions.0.type") == expected_default
    internal = run.one("aws:lb/listenerRule:ListenerRule", "workloads-alb-internal-paths")
    assert internal.get("listenerArn").endswith(f"/{listener.id}")
    assert set(internal.get("conditions.0.pathPattern.values")) == {
        "/invocations",
        "/ping",
        "/metrics",
    }
    assert internal.get("actions.0.fixedResponse.statusCode") == "404"
    rules = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    alb_in = [r for r in rules if r.name.startswith("workloads-alb-in-")]
    assert [r.get("fromPort") for r in alb_in] == [80]
    for rule in alb_in:
        if tier.edge.enabled:
            assert rule.get("prefixListId") and "cidrIpv4" not in rule.inputs
        else:
            assert rule.get("cidrIpv4") == "0.0.0.0/0"
    to_pods = run.one(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "workloads-alb-pods-in"
    )
    assert to_pods.get("fromPort") == 8080 and to_pods.get("referencedSecurityGroupId")
    assert run.outputs["api_load_balancer_dns_name"].endswith(".elb.us-east-1.amazonaws.com")


@pytest.mark.parametrize("stack", STACKS)
def test_alarms(stack_run: Any, stack: str) -> None:
    run = stack_run(stack)
    tier = TIERS[tier_of(run)]
    alarms = {a.name: a for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    latency = alarms["workloads-alb-latency-p95"]
    assert latency.get("extendedStatistic") == "p95"
    assert latency.get("threshold") == pytest.approx(tier.alarms.latency_p95_ms / 1000)
    rate = alarms["workloads-alb-5xx-rate"]
    assert rate.get("threshold") == tier.alarms.error_rate_percent
    assert "IF(" in rate.get("metricQueries.0.expression")
    cpu = alarms["cluster-node-cpu-utilization"]
    assert (
        cpu.get("namespace") == "ContainerInsights"
        and cpu.get("threshold") == tier.alarms.cpu_percent
    )
    assert cpu.get("period") * cpu.get("evaluationPeriods") == 600
    memory = alarms["cluster-node-memory-utilization"]
    assert memory.get("threshold") == tier.alarms.memory_percent
    cluster_name = run.one("aws:eks/cluster:Cluster").get("name")
    metric_filter = run.one("aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert metric_filter.get("logGroupName") == f"/aws/containerinsights/{cluster_name}/application"
    assert '"trainer"' in metric_filter.get("pattern")
    assert alarms["workloads-training-failed"].get("treatMissingData") == "notBreaching"


CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-aaaa-bbbb-cccc-000011112222"


def test_a_certificate_gives_https_and_redirects_http() -> None:
    run = run_stack("tier1", extra_config={"apiCertificateArn": CERT})
    listeners = {r.get("port"): r for r in run.of_type("aws:lb/listener:Listener")}
    https, http = listeners[443], listeners[80]
    assert https.get("protocol") == "HTTPS" and https.get("certificateArn") == CERT
    assert https.get("sslPolicy") == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert https.get("defaultActions.0.type") == "forward"
    assert http.get("defaultActions.0.redirect") == {
        "port": "443",
        "protocol": "HTTPS",
        "statusCode": "HTTP_301",
    }
    internal = run.one("aws:lb/listenerRule:ListenerRule", "workloads-alb-internal-paths")
    assert internal.get("listenerArn").endswith(f"/{https.id}")
    rules = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted(r.get("fromPort") for r in rules if r.name.startswith("workloads-alb-in-")) == [
        80,
        443,
    ]


def test_behind_cloudfront_https_uses_one_prefix_list_rule() -> None:
    run = run_stack(
        "tier3", extra_config={"apiCertificateArn": CERT, "apiDomainName": "api.ssp.example.org"}
    )
    (listener,) = run.of_type("aws:lb/listener:Listener")  # no public HTTP listener
    assert listener.get("port") == 443
    rules = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    alb_in = [r for r in rules if r.name.startswith("workloads-alb-in-")]
    assert [(r.get("fromPort"), bool(r.get("prefixListId"))) for r in alb_in] == [(443, True)]
    origin = run.one("aws:cloudfront/distribution:Distribution").get("origins.0")
    assert origin["domainName"] == "api.ssp.example.org"
    assert origin["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    gate = run.one("aws:lb/listenerRule:ListenerRule", "edge-origin-gate")
    assert gate.get("listenerArn").endswith(listener.id)
    assert gate.get("conditions.0.httpHeader.httpHeaderName") == "X-Origin-Verify"
    assert gate.get("conditions.0.httpHeader.values.0") == origin["customHeaders"][0]["value"]
    assert "conditions.0.httpHeader.values.0" in gate.secret_paths
    assert gate.get("actions.0.type") == "forward"
