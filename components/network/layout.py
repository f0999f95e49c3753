"""The VPC's layout, pure: the fixed subnet plan, what the app tier may reach, and the flow
logs' delivery policy. Tests call them without Pulumi."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws

SubnetTier = Literal["public", "private", "isolated"]
SUBNET_TIERS: tuple[SubnetTier, ...] = ("public", "private", "isolated")
MAX_AZS = 4

# Zones the stack must never use, by zone ID (names map to IDs differently in every account):
# EKS refuses cluster subnets there (UnsupportedAvailabilityZoneException; EKS user guide,
# "VPC and subnet requirements"), and RDS Proxy does not serve use1-az3 (pulumi-aws
# rds.Proxy docs), nor does that zone offer the newer instance families.
UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")
# Only the region's own Availability Zones that every account has: Local and Wavelength
# Zones (which an account may opt in to, and which the data source then lists) lack EKS
# control-plane placement, RDS Multi-AZ and most instance types.
ZONE_FILTERS: list[aws.GetAvailabilityZonesFilterArgsDict] = [
    {"name": "zone-type", "values": ["availability-zone"]},
    {"name": "opt-in-status", "values": ["opt-in-not-required"]},
]


@dataclass(frozen=True)
class SubnetPlan:
    tier: SubnetTier
    az_index: int
    cidr: str


def plan_subnets(vpc_cidr: str, az_count: int) -> list[SubnetPlan]:
    """Carve the VPC into fixed slots so that nothing is ever renumbered.

    The VPC is cut into eight blocks of 1/8. Private subnets (EKS nodes and pods, which
    take one VPC address each with the VPC CNI) get a whole block per AZ: blocks 0-3.
    Block 4 holds the public subnets and block 5 the isolated ones, each cut into eight
    slots, one per AZ. Blocks 6-7 are kept for a future subnet tier. A subnet's CIDR
    depends only on its tier and AZ index, so adding an AZ (up to four) or a tier later
    leaves every existing subnet, and the NAT gateways inside them, untouched.
    """
    if not 1 <= az_count <= MAX_AZS:
        raise ValueError(f"az_count={az_count}: the subnet plan holds 1-{MAX_AZS} AZs")
    vpc = ipaddress.IPv4Network(vpc_cidr)
    blocks: list[ipaddress.IPv4Network] = list(vpc.subnets(prefixlen_diff=3))
    public_slots = list(blocks[4].subnets(prefixlen_diff=3))
    isolated_slots = list(blocks[5].subnets(prefixlen_diff=3))
    plan: list[SubnetPlan] = []
    for az in range(az_count):
        plan.append(SubnetPlan("public", az, str(public_slots[az])))
        plan.append(SubnetPlan("private", az, str(blocks[az])))
        plan.append(SubnetPlan("isolated", az, str(isolated_slots[az])))
    return plan


def flow_log_delivery_policy(log_group_arn: str) -> str:
    """Least privilege for delivering flow logs into one log group."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    "Resource": [log_group_arn, f"{log_group_arn}:*"],
                }
            ],
        }
    )


def app_egress(vpc_cidr: pulumi.Input[str]) -> list[aws.ec2.SecurityGroupEgressArgsDict]:
    """What nodes and pods may reach: anything inside the VPC (the data stores, the VPC's
    DNS resolver, the EKS control plane's network interfaces, other nodes) and HTTPS out
    (AWS's APIs: ECR, STS for IRSA, SageMaker, EKS, S3 through its gateway endpoint; reached
    through the NAT). Nothing else leaves the VPC. The pods' NetworkPolicy narrows it further
    (the data stores' ports, cluster DNS, HTTPS)."""
    return [
        {
            "protocol": "-1",
            "from_port": 0,
            "to_port": 0,
            "cidr_blocks": [vpc_cidr],
            "description": "Inside the VPC: data stores, DNS, control plane, nodes",
        },
        {
            "protocol": "tcp",
            "from_port": 443,
            "to_port": 443,
            "cidr_blocks": ["0.0.0.0/0"],
            "description": "HTTPS to AWS APIs (ECR, STS, SageMaker, EKS, S3)",
        },
    ]
