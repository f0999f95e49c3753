"""The global stack's spec (tier 4): the shared domain, the regions and their districts.

A stack's role is its ``stackRole`` config: ``regional`` (every tier stack) or ``global``
(one per deployment: the Route 53 zone, the district directory, the image registry and the
shared-name certificate). ``build_global_spec`` is pure, like ``build_spec``; the keys it
reads are declared with the others in ``Pulumi.yaml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.config.catalog import TIERS
from components.config.project import config_defaults, is_project_default
from components.config.spec import PROJECT, SpecError
from components.config.tier import Tier

ROLES = ("regional", "global")
# Only these keys mean something to the global stack; the tier's do not apply to it.
GLOBAL_KEYS = {"stackRole", "owner", "domainName", "regions", "districts"}
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_STACK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DISTRICT = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_DOMAIN = re.compile(r"^(?=.{4,200}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def api_host(region: str, domain: str) -> str:
    """The hostname of a region's API (its CloudFront distribution): the 307's target."""
    return f"api.{region}.{domain}"


def shared_host(domain: str) -> str:
    """The one hostname every district may use: the global stack's CloudFront distribution,
    whose origin is latency-routed to the nearest region."""
    return f"api.{domain}"


def shared_origin_host(domain: str) -> str:
    """The shared distribution's origin: a latency record per serving region, naming that
    region's API load balancer (whose listener also holds a certificate for it)."""
    return f"origin.{domain}"


@dataclass(frozen=True)
class Region:
    """One line of the global stack's ``regions``, with the districts homed there."""

    name: str
    """AWS region (``us-west-2``)."""
    stack: str
    """The regional stack deployed there (``tier4-west``), read by StackReference."""
    districts: tuple[str, ...]
    """Districts homed here: the directory's first entries (the move script flips them)."""
    serving: bool = True
    """The shared name routes here. False (`` (building)`` on its line) while a new region is
    being built: its stack has no load balancer yet until its first ``pulumi up``."""


@dataclass(frozen=True)
class GlobalSpec:
    project: str
    stack: str
    region: str
    """The global stack's own region: the directory's and the registry's home."""
    owner: str
    domain_name: str
    """The public zone (``ssp.example.org``); regions are ``api.<region>.<domain>``."""
    regions: tuple[Region, ...]

    @property
    def tier(self) -> Tier:
        """The tier the regions run (tier4): the shared distribution takes its edge, WAF and
        log retention."""
        return TIERS["tier4"]

    @property
    def replica_regions(self) -> tuple[str, ...]:
        """Regions the directory and the images are replicated to (all but the home)."""
        return tuple(r.name for r in self.regions if r.name != self.region)

    @property
    def region_api_hosts(self) -> dict[str, str]:
        """``REGION_API_HOSTS`` of every regional API: region -> its API hostname."""
        return {r.name: api_host(r.name, self.domain_name) for r in self.regions}

    @property
    def district_regions(self) -> dict[str, str]:
        """Every district and its home region."""
        return {d: r.name for r in self.regions for d in r.districts}

    def tags(self, data_classification: str = "internal") -> dict[str, str]:
        return {
            "project": self.project,
            "stack": self.stack,
            # No tier row: the stack the tier 4 regional stacks share.
            "tier": "global",
            "owner": self.owner,
            "managed-by": "pulumi",
            "data-classification": data_classification,
        }


def stack_role(config: Mapping[str, Any], problems: list[str] | None = None) -> str:
    """``stackRole`` of a stack's config (keys without the project prefix)."""
    role = str(config.get("stackRole", config_defaults()["stackRole"])).strip()
    if role not in ROLES:
        message = f"stackRole={role!r}: allowed {', '.join(ROLES)}"
        if problems is None:
            raise ValueError(message)
        problems.append(message)
    return role


_REGION_LINE = re.compile(r"^(?P<region>\S+)=(?P<stack>\S+?)(?P<building> \(building\))?$")
_DISTRICT_LINE = re.compile(r"^(?P<district>\S+)=(?P<region>\S+)$")


def _as_lines(value: Any, key: str, problems: list[str]) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{key}: must be a list of strings")
        return []
    return value


def _regions(lines: list[str], problems: list[str]) -> list[tuple[str, str, bool]]:
    """``regions``: ``<region>=<stack>``, `` (building)`` while the region's first up is due."""
    found = []
    for line in lines:
        match = _REGION_LINE.match(line.strip())
        if not match:
            problems.append(f"regions: {line!r} must be <region>=<stack>[ (building)]")
            continue
        region, stack = match["region"], match["stack"]
        if not _REGION.match(region):
            problems.append(f"regions: {line!r}: {region!r} is not an AWS region (us-west-2)")
        if not _STACK.match(stack):
            problems.append(f"regions: {line!r}: {stack!r} is not a stack name")
        found.append((region, stack, match["building"] is None))
    return found


def _districts(lines: list[str], regions: set[str], problems: list[str]) -> dict[str, str]:
    """``districts``: ``<district id>=<home region>``, each district exactly once."""
    homes: dict[str, list[str]] = {}
    for line in lines:
        match = _DISTRICT_LINE.match(line.strip())
        if not match or not _DISTRICT.match(match["district"]):
            problems.append(
                f"districts: {line!r} must be <district id>=<region> (ids lower-case, dashes)"
            )
            continue
        homes.setdefault(match["district"], []).append(match["region"])
        if match["region"] not in regions:
            problems.append(
                f"districts: {line!r}: {match['region']!r} is not in regions "
                f"({', '.join(sorted(regions))})"
            )
    for district, where in sorted(homes.items()):
        if len(where) > 1:
            problems.append(
                f"districts: {district!r} is listed {len(where)} times ({', '.join(where)}); "
                "a district has exactly one home region"
            )
    return {d: where[0] for d, where in homes.items()}


def build_global_spec(config: Mapping[str, Any], *, stack: str, region: str | None) -> GlobalSpec:
    """Validate the global stack's config into a ``GlobalSpec``; every problem at once."""
    problems: list[str] = []
    # The CLI hands every key's project default to every stack: only a value the stack file
    # sets (other than the default) is refused.
    for key in sorted(set(config) - GLOBAL_KEYS):
        if not is_project_default(key, config[key]):
            problems.append(
                f"{PROJECT}:{key}: not read by the global stack; allowed: "
                + ", ".join(sorted(GLOBAL_KEYS))
            )
    if not region:
        problems.append("aws:region: not set; run `pulumi config set aws:region <region>`")
    values = {**config_defaults(), **config}
    domain = str(values["domainName"]).strip()
    if not _DOMAIN.match(domain):
        problems.append(f"domainName={domain!r}: the public zone's lower-case DNS name")
    parsed = _regions(_as_lines(values["regions"], "regions", problems), problems)
    if not parsed:
        problems.append("regions: list at least one <region>=<regional stack>")
    names = [r for r, _, _ in parsed]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"regions: {name!r} is listed twice; one regional stack per region")
    stacks = [s for _, s, _ in parsed]
    for name in sorted({s for s in stacks if stacks.count(s) > 1}):
        problems.append(f"regions: stack {name!r} serves two regions; one regional stack each")
    homes = _districts(_as_lines(values["districts"], "districts", problems), set(names), problems)
    if region and names and region not in names:
        problems.append(
            f"aws:region={region!r}: the global stack lives in one of its regions "
            f"({', '.join(names)}), the directory's and the registry's home"
        )
    regions = [
        Region(name, stack, tuple(sorted(d for d, r in homes.items() if r == name)), serving)
        for name, stack, serving in parsed
    ]
    owner = str(values["owner"]).strip()
    if problems:
        raise SpecError(stack, problems)
    return GlobalSpec(PROJECT, stack, str(region), owner, domain, tuple(regions))


def region_entry(by_region: Mapping[str, str], region: str, global_stack: str | None) -> str:
    """A regional stack's entry in a per-region output of the global stack."""
    if region not in by_region:
        raise ValueError(
            f"aws:region={region!r}: the global stack {global_stack!r} does not list it; add "
            f"`{region}=<regional stack>` to its regions"
        )
    return by_region[region]


def load_role() -> str:
    """The running stack's ``stackRole``."""
    return stack_role(_our_config())


def load_global_spec() -> GlobalSpec:
    import pulumi

    return build_global_spec(
        _our_config(), stack=pulumi.get_stack(), region=pulumi.Config("aws").get("region")
    )


def _our_config() -> dict[str, Any]:
    from pulumi.runtime.config import CONFIG, get_config_env

    prefix = f"{PROJECT}:"
    everything = {**get_config_env(), **CONFIG.get()}
    return {k[len(prefix) :]: v for k, v in everything.items() if k.startswith(prefix)}
