"""The global stack's spec (tier 4): the shared domain, the regions and their districts.

A stack's role is its ``stackRole`` config: ``regional`` (every tier stack) or ``global``
(one per deployment: the Route 53 zone, the district directory, the image registry and the
shared-name certificate). ``build_global_spec`` is pure, like ``build_spec``; the keys it
reads are declared with the others in ``CONFIG_DEFAULTS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.spec import CONFIG_DEFAULTS, PROJECT, SpecError

ROLES = ("regional", "global")
# Only these keys mean something to the global stack; the tier's do not apply to it.
GLOBAL_KEYS = {"stackRole", "owner", "domainName", "regions"}
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_STACK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DISTRICT = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_DOMAIN = re.compile(r"^(?=.{4,200}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def api_host(region: str, domain: str) -> str:
    """The hostname of a region's API (its CloudFront distribution): the 307's target."""
    return f"api.{region}.{domain}"


def shared_host(domain: str) -> str:
    """The one hostname every district may use: latency-routed to the nearest region."""
    return f"api.{domain}"


@dataclass(frozen=True)
class Region:
    """One line of the global stack's ``regions``."""

    name: str
    """AWS region (``us-west-2``)."""
    stack: str
    """The regional stack deployed there (``tier4-west``), read by StackReference."""
    districts: tuple[str, ...]
    """Districts homed here: the directory's first entries (the move script flips them)."""
    serving: bool = True
    """The shared name routes here: false while a new region is being built (its stack has
    no distribution yet), true once its first ``pulumi up`` has run."""


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
    role = str(config.get("stackRole", CONFIG_DEFAULTS["stackRole"])).strip()
    if role not in ROLES:
        message = f"stackRole={role!r}: allowed {', '.join(ROLES)}"
        if problems is None:
            raise ValueError(message)
        problems.append(message)
    return role


def _region(name: str, value: Any, problems: list[str]) -> Region | None:
    key = f"regions.{name}"
    if not _REGION.match(name):
        problems.append(f"{key}: not an AWS region name (e.g. us-west-2)")
    if not isinstance(value, dict) or set(value) - {"stack", "districts", "serving"}:
        problems.append(f"{key}: must be {{stack: <regional stack>, districts: [...]}}")
        return None
    stack = str(value.get("stack", ""))
    if not _STACK.match(stack):
        problems.append(f"{key}.stack={stack!r}: must name the regional stack")
    districts = value.get("districts", [])
    if not isinstance(districts, list):
        problems.append(f"{key}.districts: must be a list of district ids")
        districts = []
    for d in districts:
        if not isinstance(d, str) or not _DISTRICT.match(d):
            problems.append(f"{key}.districts: {d!r} is not a district id (lower-case, dashes)")
    serving = value.get("serving", True)
    if not isinstance(serving, bool):
        problems.append(f"{key}.serving={serving!r}: must be true or false")
    return Region(name, stack, tuple(str(d) for d in districts), bool(serving))


def build_global_spec(config: Mapping[str, Any], *, stack: str, region: str | None) -> GlobalSpec:
    """Validate the global stack's config into a ``GlobalSpec``; every problem at once."""
    problems: list[str] = []
    for key in sorted(set(config) - GLOBAL_KEYS):
        problems.append(
            f"{PROJECT}:{key}: not read by the global stack; allowed: "
            + ", ".join(sorted(GLOBAL_KEYS))
        )
    if not region:
        problems.append("aws:region: not set; run `pulumi config set aws:region <region>`")
    domain = str(config.get("domainName", "")).strip()
    if not _DOMAIN.match(domain):
        problems.append(f"domainName={domain!r}: the public zone's lower-case DNS name")
    raw = config.get("regions", {})
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raw = None
    if not isinstance(raw, dict) or not raw:
        problems.append("regions: one line per region, {<region>: {stack: ..., districts: [...]}}")
        raw = {}
    regions = [r for name, v in raw.items() if (r := _region(str(name), v, problems))]
    homes: dict[str, list[str]] = {}
    for r in regions:
        for d in r.districts:
            homes.setdefault(d, []).append(r.name)
    for district, where in sorted(homes.items()):
        if len(where) > 1:
            problems.append(
                f"regions: district {district!r} is listed under {', '.join(where)}; a district "
                "has exactly one home region"
            )
    stacks = [r.stack for r in regions]
    for s in sorted({s for s in stacks if stacks.count(s) > 1}):
        problems.append(f"regions: stack {s!r} serves two regions; one regional stack each")
    if region and regions and region not in {r.name for r in regions}:
        problems.append(
            f"aws:region={region!r}: the global stack lives in one of its regions "
            f"({', '.join(r.name for r in regions)}), the directory's home"
        )
    owner = str(config.get("owner", CONFIG_DEFAULTS["owner"])).strip()
    if problems:
        raise SpecError(stack, problems)
    return GlobalSpec(PROJECT, stack, str(region), owner, domain, tuple(regions))


def region_entry(by_region: Mapping[str, str], region: str, global_stack: str | None) -> str:
    """A regional stack's entry in a per-region output of the global stack."""
    if region not in by_region:
        raise ValueError(
            f"aws:region={region!r}: the global stack {global_stack!r} does not list it; add "
            f"the line `{region}: {{stack: ..., districts: [...]}}` to its regions"
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
