"""The VPC: public, private (app) and isolated (data) subnets per AZ, NAT, endpoints and
flow logs. ``layout`` holds the pure subnet plan and policies, ``component`` the
``Network`` component."""

from components.network.component import Network, NetworkArgs
from components.network.layout import (
    MAX_AZS,
    SUBNET_TIERS,
    UNSUPPORTED_ZONE_IDS,
    ZONE_FILTERS,
    SubnetPlan,
    app_egress,
    flow_log_delivery_policy,
    plan_subnets,
)

__all__ = [
    "MAX_AZS",
    "SUBNET_TIERS",
    "UNSUPPORTED_ZONE_IDS",
    "ZONE_FILTERS",
    "Network",
    "NetworkArgs",
    "SubnetPlan",
    "app_egress",
    "flow_log_delivery_policy",
    "plan_subnets",
]
