"""IAM policy documents of the cluster, as pure functions tests can call."""

from __future__ import annotations

import json
from typing import Any


def cluster_encryption_policy(key_arn: str) -> str:
    """What the control plane needs on the secrets-encryption key."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"],
                    "Resource": key_arn,
                }
            ],
        }
    )


def autoscaler_policy(cluster_name: str) -> str:
    """Cluster autoscaler, least privilege: read anything, but resize and terminate only in
    the groups tagged as owned by this cluster (EKS tags managed node groups' ASGs so)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Discover",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:DescribeAutoScalingGroups",
                        "autoscaling:DescribeAutoScalingInstances",
                        "autoscaling:DescribeLaunchConfigurations",
                        "autoscaling:DescribeScalingActivities",
                        "autoscaling:DescribeTags",
                        "ec2:DescribeImages",
                        "ec2:DescribeInstanceTypes",
                        "ec2:DescribeLaunchTemplateVersions",
                        "ec2:GetInstanceTypesFromInstanceRequirements",
                        # Labels and taints of empty groups (scale from zero: training).
                        "eks:DescribeNodegroup",
                    ],
                    "Resource": "*",
                },
                {
                    "Sid": "ScaleOwnedGroups",
                    "Effect": "Allow",
                    "Action": [
                        "autoscaling:SetDesiredCapacity",
                        "autoscaling:TerminateInstanceInAutoScalingGroup",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"
                        }
                    },
                },
            ],
        }
    )


# Conditions of the Load Balancer Controller policy: the request tags a new resource with
# this cluster's tag; the resource already carries it (the controller created it).
_CLUSTER_TAG_REQUESTED = {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}}
_CLUSTER_TAG_ON_RESOURCE = {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}


def load_balancer_controller_policy() -> str:
    """AWS Load Balancer Controller, a least-privilege subset of the official policy.

    Kept: discovery, TargetGroupBinding (register/deregister pod IPs in any target group,
    including the one Pulumi creates for the API), and managing ALBs, target groups and
    security groups the controller itself created (tagged ``elbv2.k8s.aws/cluster``).
    Dropped: ACM, Cognito, WAF and Shield (TLS and WAF live on CloudFront here) and the
    untagged security-group rule edits (our TargetGroupBinding has no ``networking``; the
    ALB-to-pod rule is managed by Pulumi).
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                *_lbc_discovery_statements(),
                *_lbc_security_group_statements(),
                *_lbc_load_balancer_statements(),
            ],
        }
    )


def _lbc_discovery_statements() -> list[dict[str, Any]]:
    """The service-linked role, read-only discovery and TargetGroupBinding's target
    registration."""
    return [
        {
            "Sid": "ServiceLinkedRole",
            "Effect": "Allow",
            "Action": "iam:CreateServiceLinkedRole",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}
            },
        },
        {
            "Sid": "Discover",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeAccountAttributes",
                "ec2:DescribeAddresses",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeInternetGateways",
                "ec2:DescribeVpcs",
                "ec2:DescribeVpcPeeringConnections",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeTags",
                "ec2:DescribeRouteTables",
                "ec2:GetSecurityGroupsForVpc",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeListenerAttributes",
                "elasticloadbalancing:DescribeListenerCertificates",
                "elasticloadbalancing:DescribeSSLPolicies",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetGroupAttributes",
                "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:DescribeTags",
                "elasticloadbalancing:DescribeTrustStores",
                "elasticloadbalancing:DescribeCapacityReservation",
            ],
            "Resource": "*",
        },
        {
            "Sid": "TargetGroupBinding",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:RegisterTargets",
                "elasticloadbalancing:DeregisterTargets",
            ],
            "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
        },
    ]


def _lbc_security_group_statements() -> list[dict[str, Any]]:
    """Security groups: create them tagged, then manage only those carrying the tag."""
    return [
        {
            "Sid": "CreateSecurityGroup",
            "Effect": "Allow",
            "Action": "ec2:CreateSecurityGroup",
            "Resource": "*",
        },
        {
            "Sid": "TagNewSecurityGroup",
            "Effect": "Allow",
            "Action": "ec2:CreateTags",
            "Resource": "arn:aws:ec2:*:*:security-group/*",
            "Condition": {
                "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                **_CLUSTER_TAG_REQUESTED,
            },
        },
        {
            "Sid": "ManageOwnedSecurityGroups",
            "Effect": "Allow",
            "Action": [
                "ec2:CreateTags",
                "ec2:DeleteTags",
                "ec2:AuthorizeSecurityGroupIngress",
                "ec2:RevokeSecurityGroupIngress",
                "ec2:DeleteSecurityGroup",
            ],
            "Resource": "*",
            "Condition": _CLUSTER_TAG_ON_RESOURCE,
        },
    ]


def _lbc_load_balancer_statements() -> list[dict[str, Any]]:
    """ALBs, target groups, listeners and rules: created tagged, then managed only when
    tagged."""
    return [
        {
            "Sid": "CreateTaggedLoadBalancers",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:CreateLoadBalancer",
                "elasticloadbalancing:CreateTargetGroup",
            ],
            "Resource": "*",
            "Condition": _CLUSTER_TAG_REQUESTED,
        },
        {
            "Sid": "ListenersAndRules",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:ModifyRule",
            ],
            "Resource": "*",
        },
        {
            "Sid": "TagOwnedLoadBalancers",
            "Effect": "Allow",
            "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
            "Resource": [
                "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
            ],
            "Condition": {
                "Null": {
                    "aws:RequestTag/elbv2.k8s.aws/cluster": "true",
                    "aws:ResourceTag/elbv2.k8s.aws/cluster": "false",
                }
            },
        },
        {
            "Sid": "TagOnCreate",
            "Effect": "Allow",
            "Action": "elasticloadbalancing:AddTags",
            "Resource": [
                "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
            ],
            "Condition": {
                "StringEquals": {
                    "elasticloadbalancing:CreateAction": [
                        "CreateTargetGroup",
                        "CreateLoadBalancer",
                    ]
                },
                **_CLUSTER_TAG_REQUESTED,
            },
        },
        {
            "Sid": "ModifyOwnedLoadBalancers",
            "Effect": "Allow",
            "Action": [
                "elasticloadbalancing:ModifyLoadBalancerAttributes",
                "elasticloadbalancing:SetIpAddressType",
                "elasticloadbalancing:SetSecurityGroups",
                "elasticloadbalancing:SetSubnets",
                "elasticloadbalancing:DeleteLoadBalancer",
                "elasticloadbalancing:ModifyTargetGroup",
                "elasticloadbalancing:ModifyTargetGroupAttributes",
                "elasticloadbalancing:ModifyListenerAttributes",
                "elasticloadbalancing:DeleteTargetGroup",
            ],
            "Resource": "*",
            "Condition": _CLUSTER_TAG_ON_RESOURCE,
        },
    ]
