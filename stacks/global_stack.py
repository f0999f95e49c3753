"""The program of tier 4's global stack: the public zone and the shared name's latency
records and certificates, the shared name's CloudFront distribution, the district directory
and the image registry the regions replicate (docs/tier4.md)."""

from __future__ import annotations

from typing import Any

from components.config.spec_global import GlobalSpec, api_host, shared_host, shared_origin_host
from components.directory import Directory, DirectoryArgs, replica_arn
from components.edge import Edge, EdgeArgs
from components.global_dns import GlobalDns, GlobalDnsArgs, RegionEndpoint
from components.registry import Registry, RegistryArgs
from components.shared.certificates import TlsName
from components.shared.stack import StackContext
from stacks.references import load_balancer_dns_name


def global_program(g: GlobalSpec) -> dict[str, Any]:
    """Every resource of the global stack; returns its outputs, which the regional stacks
    read by StackReference."""
    # Everything here is shared by every region and district: protected like a tier's data.
    stack = StackContext(
        name_prefix=f"ssp-{g.stack}",
        region=g.region,
        tags=g.tags(),
        protect=True,
        log_retention_days=g.tier.log_retention_days,
    )
    dns = GlobalDns(
        "dns",
        GlobalDnsArgs(
            stack=stack,
            domain_name=g.domain_name,
            shared_host=shared_host(g.domain_name),
            origin_host=shared_origin_host(g.domain_name),
            regions=tuple(
                RegionEndpoint(
                    region=r.name,
                    api_host=api_host(r.name, g.domain_name),
                    # Read only once the region serves: before its first up it has no
                    # load balancer to route to.
                    load_balancer_dns_name=load_balancer_dns_name(r.stack) if r.serving else None,
                )
                for r in g.regions
            ),
        ),
    )
    # The shared name's distribution: the regional distributions' WAF and headers, in front
    # of whichever region's load balancer origin.<domain> answers with.
    shared_edge = Edge(
        "shared-edge",
        EdgeArgs(
            stack=stack,
            api_origin_domain_name=shared_origin_host(g.domain_name),
            api_origin_https=True,
            size=g.tier.edge,
            waf=g.tier.waf,
            tls=TlsName(shared_host(g.domain_name), dns.zone_id, dns.shared_certificate_arn),
        ),
    )
    directory = Directory(
        "directory",
        DirectoryArgs(
            stack=stack,
            table_name=f"ssp-{g.stack}-district-directory",
            replica_regions=g.replica_regions,
            districts=g.district_regions,
        ),
    )
    registry = Registry(
        "registry",
        RegistryArgs(
            stack=stack,
            repository_name=f"{g.project}/{g.stack}/app",
            replica_regions=g.replica_regions,
        ),
    )
    return {
        "tier": "global",
        "domain_name": g.domain_name,
        "shared_api_host": shared_host(g.domain_name),
        "zone_id": dns.zone_id,
        "name_servers": dns.name_servers,
        # Publish at the domain's registrar once the zone signs (docs/tier4.md).
        "dnssec_ds_record": dns.ds_record,
        "shared_certificate_arn": dns.shared_certificate_arn,
        "health_check_ids": dns.health_check_ids,
        "origin_certificate_arns": dns.origin_certificate_arns,
        "shared_cdn_domain_name": shared_edge.distribution_domain_name,
        "shared_origin_verify_secret": shared_edge.origin_verify_secret,
        "region_api_hosts": g.region_api_hosts,
        "directory_table_name": directory.table_name,
        "directory_table_arns": directory.table_arn.apply(
            lambda arn: {r.name: replica_arn(arn, r.name) for r in g.regions}
        ),
        "registry_repository_name": registry.repository_name,
        "registry_repository_url": registry.repository_url,
    }
