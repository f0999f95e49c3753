"""In-cluster controllers installed with Helm: the cluster autoscaler and the AWS Load
Balancer Controller, each with its IRSA role and inline policy, and where the tier's events go
through SQS, KEDA with its IRSA role (whose policy the workloads attach: they own the queue)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster.args import ClusterArgs
from components.cluster.control_plane import ControlPlane
from components.cluster.iam_policies import autoscaler_policy, load_balancer_controller_policy
from components.config.tier import NodeGroupSize
from components.config.versions import (
    CLUSTER_AUTOSCALER_CHART,
    CLUSTER_AUTOSCALER_IMAGE_TAG,
    KEDA_CHART,
    LOAD_BALANCER_CONTROLLER_CHART,
)
from components.shared.contract import owned

AUTOSCALER_SA = ("kube-system", "cluster-autoscaler")
LOAD_BALANCER_CONTROLLER_SA = ("kube-system", "aws-load-balancer-controller")
KEDA_SA = ("keda", "keda-operator")


def system_node_selector(groups: Sequence[NodeGroupSize]) -> dict[str, str]:
    """Cluster add-ons go to the ``system`` group where the tier has one."""
    return {"workload": "system"} if any(g.name == "system" for g in groups) else {}


def controllers(
    plane: ControlPlane,
    args: ClusterArgs,
    provider: k8s.Provider,
    *,
    after: Sequence[pulumi.Resource],
) -> tuple[k8s.helm.v3.Release, aws.iam.Role] | None:
    """The controllers, on ``provider``, installed after ``after`` (nodes and add-ons); KEDA's
    release and role where the tier has it."""
    on_cluster = pulumi.ResourceOptions(
        parent=plane.component, provider=provider, depends_on=list(after)
    )
    selector = system_node_selector(args.node_groups)
    _cluster_autoscaler(plane, args.cluster_name, args.stack.region, selector, on_cluster)
    _load_balancer_controller(
        plane, args.cluster_name, args.stack.region, args.network.vpc_id, selector, on_cluster
    )
    return _keda(plane, selector, on_cluster) if args.queue_autoscaler else None


def _keda(
    plane: ControlPlane, selector: dict[str, str], opts: pulumi.ResourceOptions
) -> tuple[k8s.helm.v3.Release, aws.iam.Role]:
    """KEDA's operator reads the queue's depth with its own IRSA role (TriggerAuthentication
    ``podIdentity: aws``): the worker's role never leaves the worker."""
    role = plane.irsa_role("keda", *KEDA_SA)
    release = k8s.helm.v3.Release(
        f"{plane.name}-keda",
        name="keda",
        chart="keda",
        version=KEDA_CHART,
        repository_opts={"repo": "https://kedacore.github.io/charts"},
        namespace=KEDA_SA[0],
        create_namespace=True,
        values={
            "podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": role.arn}}},
            "nodeSelector": selector,
        },
        opts=opts,
    )
    return release, role


def _role_with_policy(
    plane: ControlPlane, role: str, service_account: tuple[str, str], policy: str
) -> aws.iam.Role:
    """``<name>-<role>-role`` for ``service_account`` and its ``<name>-<role>-policy``."""
    iam_role = plane.irsa_role(role, *service_account)
    aws.iam.RolePolicy(
        f"{plane.name}-{role}-policy",
        role=iam_role.id,
        policy=policy,
        opts=owned(plane.component, was=iam_role),
    )
    return iam_role


def _cluster_autoscaler(
    plane: ControlPlane,
    cluster_name: str,
    region: str,
    selector: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """The cluster autoscaler on the system nodes (``selector``), discovering the node
    groups tagged for ``cluster_name``."""
    role = _role_with_policy(plane, "autoscaler", AUTOSCALER_SA, autoscaler_policy(cluster_name))
    return k8s.helm.v3.Release(
        f"{plane.name}-autoscaler",
        name="cluster-autoscaler",
        chart="cluster-autoscaler",
        version=CLUSTER_AUTOSCALER_CHART,
        repository_opts={"repo": "https://kubernetes.github.io/autoscaler"},
        namespace=AUTOSCALER_SA[0],
        values={
            "cloudProvider": "aws",
            "awsRegion": region,
            "autoDiscovery": {"clusterName": cluster_name},
            "image": {"tag": CLUSTER_AUTOSCALER_IMAGE_TAG},
            "rbac": {
                "serviceAccount": {
                    "create": True,
                    "name": AUTOSCALER_SA[1],
                    "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                }
            },
            "extraArgs": {
                "balance-similar-node-groups": True,
                "skip-nodes-with-system-pods": False,
                "expander": "least-waste",
            },
            "nodeSelector": selector,
        },
        opts=opts,
    )


def _load_balancer_controller(
    plane: ControlPlane,
    cluster_name: str,
    region: str,
    vpc_id: pulumi.Input[str],
    selector: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> k8s.helm.v3.Release:
    """The AWS Load Balancer Controller on the system nodes (``selector``): it binds the
    API's Service to the load balancer's target group."""
    role = _role_with_policy(
        plane, "lb-controller", LOAD_BALANCER_CONTROLLER_SA, load_balancer_controller_policy()
    )
    return k8s.helm.v3.Release(
        f"{plane.name}-lb-controller",
        name="aws-load-balancer-controller",
        chart="aws-load-balancer-controller",
        version=LOAD_BALANCER_CONTROLLER_CHART,
        repository_opts={"repo": "https://aws.github.io/eks-charts"},
        namespace=LOAD_BALANCER_CONTROLLER_SA[0],
        values={
            "clusterName": cluster_name,
            # Region and VPC given explicitly: IMDS is out of reach of pods (hop limit 1).
            "region": region,
            "vpcId": vpc_id,
            "replicaCount": 2,
            "serviceAccount": {
                "create": True,
                "name": LOAD_BALANCER_CONTROLLER_SA[1],
                "annotations": {"eks.amazonaws.com/role-arn": role.arn},
            },
            # We bind a Pulumi-made ALB with a TargetGroupBinding; Services of type
            # LoadBalancer are not used, so their mutating webhook is not needed.
            "enableServiceMutatorWebhook": False,
            "nodeSelector": selector,
        },
        opts=opts,
    )
