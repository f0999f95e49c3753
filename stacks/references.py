"""What a stack reads from the project's other stacks, in one place (StackReference, in the
stack's own organization and project).

- a tier 4 regional stack reads its global stack: the zone, the image registry, the district
  directory, its region's origin certificate and the shared distribution's origin secret;
- the global stack reads each serving region's load balancer;
- a stack with a cross-region reporting replica reads the network and alarm topic of the
  stack deployed in the replica's region;
- every regional stack reads its own last outputs: the tier it runs, before it moves
  (a stack may read itself: pulumi/pulumi#3722; one never brought up has no outputs).

Each of those stacks must have run ``pulumi up`` with this program first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi

from components.config.spec_global import region_entry
from components.database import ReportingReplica
from components.registry import ImageRepository, replica_repository
from components.shared.contract import DistrictDirectory, ReportingReplicaTarget


def stack_reference(stack: str) -> pulumi.StackReference:
    """Another stack of this project, in this stack's organization."""
    return pulumi.StackReference(f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack}")


@dataclass(frozen=True)
class GlobalStack:
    """A tier 4 regional stack's global stack (``globalStack``), read for ``region``."""

    name: str
    region: str
    reference: pulumi.StackReference

    @classmethod
    def read(cls, name: str | None, region: str) -> GlobalStack | None:
        """The global stack of that name; None for a stack of its own (no ``globalStack``)."""
        return cls(name, region, stack_reference(name)) if name else None

    def zone_id(self) -> pulumi.Output[Any]:
        """The public zone: it validates this stack's certificates and names its hosts."""
        return self.reference.require_output("zone_id")

    def image_repository(self) -> ImageRepository:
        """The registry's replica in this region: ECR replicates the global images here."""
        return replica_repository(
            self.reference.require_output("registry_repository_name"), self.region
        )

    def origin_certificate_arn(self) -> pulumi.Output[Any]:
        """The certificate of ``origin.<domain>`` issued in this region, for the shared
        distribution's requests to this stack's load balancer."""
        return self.reference.require_output("origin_certificate_arns")[self.region]

    def shared_origin_secret(self) -> pulumi.Output[Any]:
        """The header the shared name's distribution sends: this stack's Edge admits it."""
        return pulumi.Output.secret(self.reference.require_output("shared_origin_verify_secret"))

    def directory(self) -> DistrictDirectory:
        """The district directory (its replica in this region) and every region's API."""
        return DistrictDirectory(
            table_name=self.reference.require_output("directory_table_name"),
            table_arn=self.reference.require_output("directory_table_arns").apply(
                lambda arns: region_entry(arns, self.region, self.name)
            ),
            region_api_hosts=self.reference.require_output("region_api_hosts").apply(
                lambda hosts: json.dumps(hosts, sort_keys=True)
            ),
        )


def deployed_outputs() -> pulumi.Output[dict[str, Any]]:
    """What this stack's last ``up`` exported (none before its first): the tier a move
    starts from."""
    return stack_reference(pulumi.get_stack()).outputs


def load_balancer_dns_name(stack: str) -> pulumi.Output[Any]:
    """A regional stack's API load balancer, for the global stack's latency records."""
    return stack_reference(stack).require_output("api_load_balancer_dns_name")


def reporting_replica(target: ReportingReplicaTarget | None) -> ReportingReplica | None:
    """Where the cross-region reporting replica goes: the network and alarm topic of the
    stack deployed in its region."""
    if target is None:
        return None
    there = stack_reference(target.stack)

    def output(key: str) -> pulumi.Output[Any]:
        def present(value: Any) -> Any:
            if value is None:
                raise ValueError(
                    f"dbReportingReplica: stack {target.stack} has no output {key!r}; run "
                    f"`pulumi up` there first (docs/tier4.md, reporting replica)"
                )
            return value

        return there.get_output(key).apply(present)

    def in_its_region(zones: list[str], vpc_id: str) -> str:
        if not all(zone.startswith(target.region) for zone in zones):
            raise ValueError(
                f"dbReportingReplica: stack {target.stack} runs in {zones[0][:-1]} (its "
                f"availability_zones), not {target.region}"
            )
        return vpc_id

    return ReportingReplica(
        region=target.region,
        vpc_id=pulumi.Output.all(output("availability_zones"), output("vpc_id")).apply(
            lambda v: in_its_region(v[0], v[1])
        ),
        subnet_ids=output("isolated_subnet_ids"),
        client_security_group_ids=[output("app_security_group_id")],
        alarm_topic_arn=output("alarm_topic_arn"),
    )
