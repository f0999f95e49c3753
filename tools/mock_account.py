"""The mock AWS account the program is evaluated in: who runs ``pulumi up``, its Availability
Zones (with the ids EKS and RDS Proxy refuse), its public hosted zones, and the outputs of the
stacks a StackReference reads. ``tools.mocks`` answers the program's invokes from it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
# Who runs `pulumi up` in the mock account: a session of the deploy role.
CALLER_ARN = f"arn:aws:sts::{ACCOUNT}:assumed-role/deploy/pulumi"
# What a StackReference reads: each stack's outputs as its own run under these mocks exported
# them (``python -m tools.plan --write-snapshots`` refreshes them; a test keeps them current).
STACK_OUTPUTS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "stack_outputs"
STACK_REFERENCE = "pulumi:pulumi:StackReference"


def stack_outputs(reference: str) -> dict[str, Any]:
    """The outputs of ``<org>/<project>/<stack>``, or none when that stack has no fixture
    (as an existing stack that was never brought up answers)."""
    path = STACK_OUTPUTS / f"{reference.rsplit('/', 1)[-1]}.json"
    return json.loads(path.read_text()) if path.exists() else {}


@dataclass(frozen=True)
class Zone:
    name: str
    zone_id: str
    zone_type: str = "availability-zone"
    opt_in_status: str = "opt-in-not-required"


# The mock account's zones. Names map to zone IDs differently in every account: this one sees
# use1-az3 (where EKS places no cluster) as us-east-1e, and has opted in to the Los Angeles
# Local Zone, whose name sorts before us-west-2a.
AVAILABILITY_ZONES: dict[str, list[Zone]] = {
    "us-east-1": [
        Zone("us-east-1a", "use1-az1"),
        Zone("us-east-1b", "use1-az2"),
        Zone("us-east-1c", "use1-az4"),
        Zone("us-east-1d", "use1-az6"),
        Zone("us-east-1e", "use1-az3"),
        Zone("us-east-1f", "use1-az5"),
    ],
    "us-west-2": [
        Zone("us-west-2a", "usw2-az2"),
        Zone("us-west-2b", "usw2-az1"),
        Zone("us-west-2c", "usw2-az3"),
        Zone("us-west-2d", "usw2-az4"),
        Zone("us-west-2-lax-1a", "usw2-lax1-az1", "local-zone", "opted-in"),
    ],
}


# The public hosted zones of the mock account: the example zones the committed stack files
# name. Any other id fails the lookup, as Route 53 answers for a zone the account lacks.
HOSTED_ZONES: dict[str, str] = {
    zone_id: "ssp.example.org"
    for zone_id in (
        "Z5B669DD3286DFE3E07",
        "Z51472081EE7D4060BD",
        "Z4D5DE3048BF3072F02",
        "ZEFA0A7B1D92C896027",
    )
}


def hosted_zone(query: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """``aws.route53.get_zone`` by id, for the mock account: a zone it lacks fails the
    invoke, as the provider does (the program sees the invoke's error)."""
    zone_id = str(query.get("zoneId") or "")
    if zone_id not in HOSTED_ZONES:
        return {}, [("zoneId", f"no matching Route 53 Hosted Zone found ({zone_id})")]
    return {
        "zoneId": zone_id,
        "id": zone_id,
        "name": HOSTED_ZONES[zone_id],
        "privateZone": False,
        "arn": f"arn:aws:route53:::hostedzone/{zone_id}",
        "nameServers": [f"ns-{i}.awsdns-{i:02d}.org" for i in range(1, 5)],
    }, []


def session_issuer(arn: str) -> str:
    """``aws.iam.get_session_context``: an assumed role's session names its role."""
    match = re.fullmatch(r"arn:(aws[a-z-]*):sts::(\d{12}):assumed-role/([^/]+)/.+", arn)
    return f"arn:{match[1]}:iam::{match[2]}:role/{match[3]}" if match else arn


def availability_zones(region: str, query: dict[str, Any]) -> dict[str, Any]:
    """``aws.get_availability_zones`` for the mock account: the region's zones without the
    excluded ones and those its filters leave out, sorted by name as the provider sorts them
    (terraform-provider-aws ``ec2_availability_zones_data_source.go``)."""
    zones = AVAILABILITY_ZONES.get(region) or [
        Zone(f"{region}{c}", f"{region.replace('-', '')[:4]}-az{i + 1}")
        for i, c in enumerate("abc")
    ]
    attribute = {"zone-type": "zone_type", "opt-in-status": "opt_in_status"}
    for spec in query.get("filters") or []:
        if spec["name"] not in attribute:
            raise ValueError(f"getAvailabilityZones filter {spec['name']!r}: not mocked")
        zones = [z for z in zones if getattr(z, attribute[spec["name"]]) in spec["values"]]
    excluded = set(query.get("excludeZoneIds") or []) | set(query.get("excludeNames") or [])
    zones = sorted((z for z in zones if not {z.name, z.zone_id} & excluded), key=lambda z: z.name)
    return {
        "names": [z.name for z in zones],
        "zoneIds": [z.zone_id for z in zones],
        "groupNames": [region if z.zone_type == "availability-zone" else z.name for z in zones],
    }
