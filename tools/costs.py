"""Monthly cost estimate of a stack from what the program registers.

Prices are on-demand list prices for us-east-1 in USD, as the team recorded them on
PRICES_AS_OF; refresh them from the AWS pricing pages (or the Pricing Calculator) before
budgeting with them. Usage-based charges (data transfer, requests, logs, S3 storage,
CloudFront traffic) depend on the district and are listed as excluded, not guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tools.harness import Resource

PRICES_AS_OF = "2026-11-23"
PRICE_REGION = "us-east-1"
HOURS_PER_MONTH = 730

# vCPUs per DB instance class: RDS Proxy is billed per vCPU of the instances behind it. Kept
# here, not imported from components/: tools.diff prices another commit's program with it.
DB_INSTANCE_VCPUS: dict[str, int] = {
    "db.t4g.micro": 2,
    "db.t4g.small": 2,
    "db.t4g.medium": 2,
    "db.t4g.large": 2,
    "db.m6g.large": 2,
    "db.m6g.xlarge": 4,
    "db.m6g.2xlarge": 8,
    "db.r6g.large": 2,
    "db.r6g.xlarge": 4,
    "db.r6g.2xlarge": 8,
    "db.r6g.4xlarge": 16,
    "db.r6g.8xlarge": 32,
}

# RDS for PostgreSQL, Single-AZ, per hour (Multi-AZ doubles it).
RDS_HOURLY = {
    "db.t4g.micro": 0.016,
    "db.t4g.small": 0.032,
    "db.t4g.medium": 0.065,
    "db.t4g.large": 0.129,
    "db.m6g.large": 0.152,
    "db.m6g.xlarge": 0.304,
    "db.m6g.2xlarge": 0.608,
    "db.r6g.large": 0.225,
    "db.r6g.xlarge": 0.449,
    "db.r6g.2xlarge": 0.899,
    "db.r6g.4xlarge": 1.798,
    "db.r6g.8xlarge": 3.597,
}
RDS_GP3_GB_MONTH = 0.115  # Single-AZ; Multi-AZ doubles it
RDS_PROXY_VCPU_HOUR = 0.015
EC2_HOURLY = {
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "c6i.2xlarge": 0.34,
    "c6a.2xlarge": 0.306,
    "c6i.4xlarge": 0.68,
    "c6a.4xlarge": 0.612,
}
SPOT_FRACTION = 0.35  # typical Spot price as a fraction of on-demand for these families
EBS_GP3_GB_MONTH = 0.08
ELASTICACHE_HOURLY = {
    "cache.t4g.micro": 0.016,
    "cache.t4g.small": 0.032,
    "cache.t4g.medium": 0.065,
    "cache.m7g.large": 0.158,
    "cache.r7g.large": 0.219,
    "cache.r7g.xlarge": 0.437,
    "cache.r7g.2xlarge": 0.873,
}
# SageMaker real-time inference hosting, per instance hour (https://aws.amazon.com/sagemaker/
# pricing/, "Real-Time Inference", us-east-1): every type the spec accepts
# (components.config.capacity.SAGEMAKER_INSTANCE_VCPUS) has a price.
SAGEMAKER_HOURLY = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.c5.large": 0.102,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c6i.large": 0.102,
    "ml.c6i.xlarge": 0.204,
    "ml.c6i.2xlarge": 0.408,
}
EKS_CLUSTER_HOUR = 0.10
NAT_GATEWAY_HOUR = 0.045
ALB_HOUR = 0.0225 + 0.008  # the load balancer plus one LCU of baseline traffic
KMS_KEY_MONTH = 1.0
SECRET_MONTH = 0.40
ALARM_MONTH = 0.10
DASHBOARD_MONTH = 3.0
WAF_ACL_MONTH = 5.0
WAF_RULE_MONTH = 1.0  # every rule, the labelling ones and each managed rule group too
ACM_PUBLIC_CERTIFICATE_MONTH = 0.0  # public certificates used with ALB/CloudFront are free
AMP_COLLECTOR_HOUR = 0.04  # the managed scraper; its samples are usage-based
INTERFACE_ENDPOINT_AZ_HOUR = 0.01  # per AZ (subnet); its traffic ($0.01/GB) is usage-based
ROUTE53_ZONE_MONTH = 0.50  # a public or private hosted zone (the first 25); queries are usage

# A health check of a non-AWS endpoint (a CloudFront name is priced as one) with two
# optional features, HTTPS and latency measurement, at $2.00 each.
ROUTE53_HEALTH_CHECK_MONTH = 0.75 + 2 * 2.00
EXCLUDED = (
    "data transfer, NAT/LB traffic, S3 storage and requests (the access-log bucket included), "
    "CloudFront traffic, WAF requests ($0.60 per million), SQS requests ($0.40 per million "
    "after the free first million; the events queue's KMS calls are per 5-minute data key), "
    "CloudWatch Logs ingestion and storage, Route 53 queries, DynamoDB requests and storage "
    "(the district directory and its replicas), ECR storage and cross-region replication of "
    "images, Prometheus samples "
    "collected, ingested, stored and queried, Grafana user licences, cross-region backup "
    "storage and transfer (by the GB the backups replicate)"
)


UNKNOWN = "price unknown"
"""Said of a line item whose instance type the price table lacks: node groups accept any EC2
type, so an estimate never fails on one; it shows it unpriced instead of guessing."""


@dataclass(frozen=True)
class LineItem:
    what: str
    monthly_usd: float
    known: bool = True
    """False: the type is not in the price table; ``monthly_usd`` is 0 and not a price."""


def _priced(what: str, table: dict[str, float], kind: str, count: float = 1) -> LineItem:
    """``count`` hours-per-month of ``kind`` at the table's hourly price, or an unpriced item."""
    if kind not in table:
        return LineItem(f"{what} ({UNKNOWN})", 0.0, known=False)
    return LineItem(what, _hours(table[kind]) * count)


def _hours(price: float) -> float:
    return price * HOURS_PER_MONTH


def estimate(resources: Iterable[Resource]) -> list[LineItem]:
    """One line per priced resource, in registration order."""
    resources = list(resources)
    items: list[LineItem] = []
    primaries: dict[str, str] = {}
    storage_of: dict[str, float] = {}
    for r in resources:
        t, i = r.type, r.inputs
        if t == "aws:rds/instance:Instance":
            cls = i["instanceClass"]
            copies = 2 if i.get("multiAz") else 1
            source = i.get("replicateSourceDb")
            # A replica inherits its source's storage size.
            storage = float(i.get("allocatedStorage") or storage_of.get(str(source), 0))
            storage_of[i.get("identifier", r.name)] = storage
            role = "replica" if source else "primary"
            if role == "primary":
                primaries[r.name] = cls
            az = " Multi-AZ" if copies == 2 else ""
            items.append(_priced(f"RDS {role} {cls}{az}", RDS_HOURLY, cls, copies))
            if storage:
                items.append(
                    LineItem(f"RDS gp3 {storage:.0f} GiB{az}", storage * RDS_GP3_GB_MONTH * copies)
                )
        elif t == "aws:elasticache/replicationGroup:ReplicationGroup":
            nodes = int(i.get("numCacheClusters") or 1)
            kind = i["nodeType"]
            items.append(_priced(f"ElastiCache {nodes} x {kind}", ELASTICACHE_HOURLY, kind, nodes))
        elif t == "aws:eks/cluster:Cluster":
            items.append(LineItem("EKS control plane", _hours(EKS_CLUSTER_HOUR)))
        elif t == "aws:eks/nodeGroup:NodeGroup":
            desired = int(i.get("scalingConfig", {}).get("desiredSize", 0))
            types = i.get("instanceTypes") or []
            if desired and types:
                spot = i.get("capacityType") == "SPOT"
                label = f"EKS nodes {r.name}: {desired} x {types[0]}{' (Spot)' if spot else ''}"
                count = desired * (SPOT_FRACTION if spot else 1)
                items.append(_priced(label, EC2_HOURLY, types[0], count))
        elif t == "aws:ec2/natGateway:NatGateway":
            items.append(LineItem("NAT gateway", _hours(NAT_GATEWAY_HOUR)))
        elif t == "aws:lb/loadBalancer:LoadBalancer":
            items.append(LineItem("Application load balancer", _hours(ALB_HOUR)))
        elif t == "aws:sagemaker/endpointConfiguration:EndpointConfiguration":
            for variant in i.get("productionVariants", []):
                count = int(variant.get("initialInstanceCount", 1))
                kind = variant["instanceType"]
                items.append(_priced(f"SageMaker {count} x {kind}", SAGEMAKER_HOURLY, kind, count))
        elif t == "aws:wafv2/webAcl:WebAcl":
            rules = len(i.get("rules", []))
            items.append(
                LineItem(f"WAF web ACL + {rules} rules", WAF_ACL_MONTH + rules * WAF_RULE_MONTH)
            )
        elif t == "aws:ec2/vpcEndpoint:VpcEndpoint" and i.get("vpcEndpointType") == "Interface":
            zones = len(i.get("subnetIds") or [])
            label = f"VPC interface endpoint {i['serviceName'].split('.', 3)[-1]}"
            items.append(LineItem(label, _hours(INTERFACE_ENDPOINT_AZ_HOUR) * zones))
        elif t == "aws:amp/scraper:Scraper":
            items.append(LineItem("Prometheus managed collector", _hours(AMP_COLLECTOR_HOUR)))
        elif t == "aws:acm/certificate:Certificate":
            items.append(LineItem("ACM public certificate", ACM_PUBLIC_CERTIFICATE_MONTH))
        elif t == "aws:route53/zone:Zone":
            kind = "private" if i.get("vpcs") else "public"
            items.append(LineItem(f"Route 53 {kind} hosted zone", ROUTE53_ZONE_MONTH))
        elif t == "aws:route53/healthCheck:HealthCheck":
            items.append(LineItem("Route 53 health check", ROUTE53_HEALTH_CHECK_MONTH))
        elif t == "aws:kms/key:Key":
            items.append(LineItem("KMS key", KMS_KEY_MONTH))
        elif t == "aws:secretsmanager/secret:Secret":
            items.append(LineItem("Secrets Manager secret", SECRET_MONTH))
        elif t == "aws:cloudwatch/metricAlarm:MetricAlarm":
            items.append(LineItem("CloudWatch alarm", ALARM_MONTH))
        elif t == "aws:cloudwatch/dashboard:Dashboard":
            items.append(LineItem("CloudWatch dashboard", DASHBOARD_MONTH))
    items.extend(_node_disks(resources))
    items.extend(_proxy(resources, primaries))
    return items


def _node_disks(resources: list[Resource]) -> list[LineItem]:
    """gp3 root volumes of the desired nodes, from each node group's launch template."""
    templates = {r.id: r for r in resources if r.type == "aws:ec2/launchTemplate:LaunchTemplate"}
    items = []
    for r in resources:
        if r.type != "aws:eks/nodeGroup:NodeGroup":
            continue
        desired = int(r.get("scalingConfig.desiredSize", 0))
        template = templates.get(r.get("launchTemplate.id", ""))
        mappings = template.inputs.get("blockDeviceMappings", []) if template else []
        size = sum(float(m.get("ebs", {}).get("volumeSize", 0)) for m in mappings)
        if desired and size:
            label = f"EBS gp3 {r.name}: {desired} x {size:.0f} GiB"
            items.append(LineItem(label, desired * size * EBS_GP3_GB_MONTH))
    return items


def _proxy(resources: list[Resource], primaries: dict[str, str]) -> list[LineItem]:
    proxies = [r for r in resources if r.type == "aws:rds/proxy:Proxy"]
    if not proxies or not primaries:
        return []
    if any(c not in DB_INSTANCE_VCPUS for c in primaries.values()):
        return [LineItem(f"RDS Proxy ({UNKNOWN})", 0.0, known=False) for _ in proxies]
    vcpus = sum(DB_INSTANCE_VCPUS[c] for c in primaries.values())
    return [
        LineItem(f"RDS Proxy ({vcpus} vCPU)", _hours(RDS_PROXY_VCPU_HOUR) * vcpus) for _ in proxies
    ]


def total(items: Iterable[LineItem]) -> float:
    return sum(item.monthly_usd for item in items)
