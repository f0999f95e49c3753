"""The public zone of a multi-region deployment (tier 4) and its shared name.

``api.<domain>`` has one latency record per serving region, each an alias of that region's
CloudFront distribution and tied to a health check of the region's own API hostname
(``api.<region>.<domain>``, ``/ready``: the API and its database answer). Route 53 answers
with the lowest-latency healthy region; when a region's check fails, its record drops out
and the next-nearest region answers: that is the failover. Any region may answer a district
(the API sends a 307 to the district's home region).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.certificates import TlsName, tls_certificate
from components.contract import owned

# The hosted zone of every CloudFront distribution (aliases name it).
CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"
# CloudFront takes certificates from N. Virginia only.
EDGE_REGION = "us-east-1"
# The API's readiness path: the process and its database answer.
HEALTH_PATH = "/ready"
# Three failed checks 30 s apart (about 90 s) take a region out of the answers.
FAILURE_THRESHOLD = 3
REQUEST_INTERVAL_SECONDS = 30


@dataclass
class RegionEndpoint:
    """What the global stack reads of one regional stack (StackReference)."""

    region: str
    api_host: str
    """``api.<region>.<domain>``: the distribution's own name, checked by Route 53."""
    distribution_domain_name: pulumi.Input[str] | None
    """``dxxxx.cloudfront.net``; None while the region is not serving yet."""


@dataclass
class GlobalDnsArgs:
    domain_name: str
    """The zone (``ssp.example.org``)."""
    shared_host: str
    """The latency-routed name (``api.ssp.example.org``)."""
    regions: tuple[RegionEndpoint, ...]
    """Every region of the global stack: a health check each, a latency record once serving."""
    protect: bool
    """Pulumi ``protect`` on the zone (every name of the deployment lives in it)."""
    tags: dict[str, str] = field(default_factory=dict)
    """Tags for the zone, the certificate and the health checks."""


class GlobalDns(pulumi.ComponentResource):
    zone_id: pulumi.Output[str]
    """The public hosted zone: regional stacks validate certificates and add records in it."""
    name_servers: pulumi.Output[Sequence[str]]
    """Delegate the domain to these at its registrar."""
    shared_certificate_arn: pulumi.Output[str]
    """An issued us-east-1 certificate for the shared name."""
    health_check_ids: Mapping[str, pulumi.Output[str]]
    """Route 53 health check per region."""

    def __init__(self, name: str, args: GlobalDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ssp:global_dns:GlobalDns", name, None, opts)
        zone = aws.route53.Zone(
            f"{name}-zone",
            name=args.domain_name,
            comment="Student Success: shared and regional API names",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        edge_provider = aws.Provider(
            f"{name}-{EDGE_REGION}",
            region=EDGE_REGION,
            profile=aws.config.profile,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.shared_certificate_arn = tls_certificate(
            f"{name}-shared",
            TlsName(args.shared_host, zone.zone_id),
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, provider=edge_provider),
        )
        self.health_check_ids = {}
        for endpoint in args.regions:
            check = aws.route53.HealthCheck(
                f"{name}-{endpoint.region}-health",
                type="HTTPS",
                fqdn=endpoint.api_host,
                port=443,
                resource_path=HEALTH_PATH,
                enable_sni=True,
                request_interval=REQUEST_INTERVAL_SECONDS,
                failure_threshold=FAILURE_THRESHOLD,
                measure_latency=True,
                tags={**args.tags, "Name": f"{endpoint.api_host}{HEALTH_PATH}"},
                opts=owned(self),
            )
            self.health_check_ids[endpoint.region] = check.id
            if endpoint.distribution_domain_name is None:
                continue
            aws.route53.Record(
                f"{name}-{endpoint.region}-latency",
                zone_id=zone.zone_id,
                name=args.shared_host,
                type="A",
                set_identifier=endpoint.region,
                latency_routing_policies=[{"region": endpoint.region}],
                health_check_id=check.id,
                aliases=[
                    {
                        "name": endpoint.distribution_domain_name,
                        "zone_id": CLOUDFRONT_ZONE_ID,
                        # CloudFront's own health is not a region's: the check above is.
                        "evaluate_target_health": False,
                    }
                ],
                opts=owned(self),
            )
        self.zone_id = zone.zone_id
        self.name_servers = zone.name_servers
        self.register_outputs(
            {
                "zone_id": self.zone_id,
                "name_servers": self.name_servers,
                "shared_certificate_arn": self.shared_certificate_arn,
                "health_check_ids": self.health_check_ids,
            }
        )
