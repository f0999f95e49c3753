"""A stack's move to a higher tier, as an operator makes it: ``tier:`` changed in its stack file,
plus the keys the higher tier requires that the stack file does not set yet (example values,
as the stack files' own: a district uses its own domain, zone and backup region).

``moved_config(stack, to_tier)`` is that config, as ``run_stack(stack, extra_config)`` takes
it; ``adjacent_moves()`` every stack file's move to the next tier. The growth rehearsal
(``python -m tools.rehearse --grow``) and the per-move tests evaluate the program with them.
"""

from __future__ import annotations

from typing import Any

import yaml

from components.config.spec_growth import TIER_ORDER
from tools.harness import PROJECT, ROOT, stacks

# What a tier requires that the one below it does not, by config key; ``{stack}`` is the
# stack's name, ``{backup_region}`` a region other than the stack's own. The zone is one of the
# example zones the stack files name (the offline account knows them; a district uses its own).
REQUIRED_ON_ARRIVAL: dict[str, dict[str, str]] = {
    # HTTPS outside dev: the API's name and the Route 53 zone that validates its certificate.
    "tier1": {
        "apiDomainName": "api.{stack}.ssp.example.org",
        "hostedZoneId": "Z5B669DD3286DFE3E07",
    },
    # CloudFront's name; the automated backups replicated to a second region.
    "tier3": {"edgeDomainName": "{stack}.ssp.example.org", "dbBackupRegion": "{backup_region}"},
}


def stack_config(stack: str) -> dict[str, Any]:
    """The stack file's config, keys without the project prefix (``aws:`` keys kept whole)."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    prefix = f"{PROJECT}:"
    return {k.removeprefix(prefix): v for k, v in (data.get("config") or {}).items()}


def tier_of(stack: str) -> str | None:
    """The tier a stack file picks (None: the global stack, which has none)."""
    tier = stack_config(stack).get("tier")
    return str(tier) if tier else None


def next_tier(tier: str) -> str | None:
    """The tier above ``tier``; None at the top."""
    index = TIER_ORDER.index(tier)
    return TIER_ORDER[index + 1] if index + 1 < len(TIER_ORDER) else None


def config_at(stack: str, tier: str) -> dict[str, Any]:
    """What the stack file gets over its own keys to run ``tier`` (its own or one above): the
    tier, and the keys every tier on the way up requires that the file does not set."""
    config, here = stack_config(stack), tier_of(stack)
    if here is None:
        raise ValueError(f"{stack}: picks no tier (the global stack does not move)")
    if tier not in TIER_ORDER:
        raise ValueError(f"unknown tier {tier!r}; tiers: {', '.join(TIER_ORDER)}")
    start, end = TIER_ORDER.index(here), TIER_ORDER.index(tier)
    if end <= start:
        return {}
    region = str(config.get("aws:region", "us-east-1"))
    values = {
        "stack": stack,
        "backup_region": "us-east-1" if region != "us-east-1" else "us-west-2",
    }
    moved: dict[str, Any] = {"tier": tier}
    for passed in TIER_ORDER[start + 1 : end + 1]:
        for key, template in REQUIRED_ON_ARRIVAL.get(passed, {}).items():
            if key not in config:
                moved[key] = template.format(**values)
    return moved


def moved_config(stack: str, to_tier: str) -> dict[str, Any]:
    """The config ``stack`` is evaluated with at ``to_tier``, the tier above its own. A stack
    moves one tier at a time (each move is reviewed and rehearsed on its own; the program
    refuses skipping one)."""
    here = tier_of(stack)
    if here is not None and to_tier in TIER_ORDER:
        if TIER_ORDER.index(to_tier) <= TIER_ORDER.index(here):
            raise ValueError(f"{stack} is on {here}: {to_tier} is not a move up")
        if to_tier != next_tier(here):
            raise ValueError(
                f"{stack} is on {here}: a stack moves one tier at a time; move to "
                f"{next_tier(here)} first"
            )
    return config_at(stack, to_tier)


def adjacent_moves() -> list[tuple[str, str]]:
    """(stack, next tier) of every stack file that can move up and is not a region of tier 4's
    global stack (those already are on the top tier)."""
    moves = []
    for stack in stacks():
        tier = tier_of(stack)
        if tier is not None and (to := next_tier(tier)) is not None:
            moves.append((stack, to))
    return moves
