"""Per-resource waivers (``policies/waivers.yaml``): one policy does not apply to one resource,
for a stated reason, until a date, with the approver's name. Reviewed like code, instead of
turning a policy off for a whole stack with ``--policy-pack-config``.

    waivers:
      - urn: urn:pulumi:tier1::student-success::aws:rds/instance:Instance::database-instance
        policy: rds-multi-az
        reason: tier1 accepts a single-AZ database until the district's budget review
        expires: 2027-03-31
        approved_by: security@district.example

The file is checked when the pack loads: an entry missing a field, with an unknown field, a
policy the pack does not have, a URN that is not one, a date that is not one, or a second
waiver of the same policy on the same resource stops the pack with a message naming it. A
waived violation is not reported until the expiry date (inclusive, UTC); after it, the
violation is reported again and ``waivers-not-expired`` fails the stack until the waiver is
renewed or deleted.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

WAIVERS_FILE = Path(__file__).resolve().parent.parent / "waivers.yaml"
FIELDS = ("urn", "policy", "reason", "expires", "approved_by")


@dataclass(frozen=True)
class Waiver:
    urn: str
    policy: str
    reason: str
    expires: datetime.date
    approved_by: str

    def expired(self, today: datetime.date | None = None) -> bool:
        return (today or _today()) > self.expires

    def describe(self) -> str:
        return (
            f"waiver of {self.policy} on {self.urn} (approved by {self.approved_by}, "
            f"expires {self.expires.isoformat()}: {self.reason})"
        )


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def _date(where: str, value: Any) -> datetime.date:
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"{where}: expires {value!r} is not a date (YYYY-MM-DD)") from None


def _waiver(where: str, entry: Any, policies: set[str]) -> Waiver:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: a waiver is a mapping of {', '.join(FIELDS)}")
    missing = [f for f in FIELDS if f not in entry or entry[f] in (None, "")]
    unknown = sorted(str(k) for k in entry if k not in FIELDS)
    if missing or unknown:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unknown fields {', '.join(unknown)}"] if unknown else []
        raise ValueError(f"{where}: {'; '.join(problems)} (a waiver has {', '.join(FIELDS)})")
    urn, policy = str(entry["urn"]), str(entry["policy"])
    if not urn.startswith("urn:pulumi:") or urn.count("::") != 3:
        raise ValueError(
            f"{where}: urn {urn!r} is not a resource URN "
            "(urn:pulumi:<stack>::<project>::<type>::<name>)"
        )
    if policy not in policies:
        raise ValueError(f"{where}: the pack has no policy {policy!r}")
    expires = _date(where, entry["expires"])
    return Waiver(urn, policy, str(entry["reason"]), expires, str(entry["approved_by"]))


def load(path: Path, policies: Iterable[str]) -> list[Waiver]:
    """The waivers of ``path``, checked against the pack's policy names."""
    known = set(policies)
    raw = yaml.safe_load(path.read_text()) if path.exists() else None
    raw = raw or {}
    if not isinstance(raw, Mapping) or set(raw) - {"waivers"}:
        raise ValueError(f"{path.name}: the file holds one key, 'waivers', a list")
    entries = raw.get("waivers") or []
    if not isinstance(entries, list):
        raise ValueError(f"{path.name}: 'waivers' is a list")
    waivers: list[Waiver] = []
    for index, entry in enumerate(entries):
        waiver = _waiver(f"{path.name} waiver {index + 1}", entry, known)
        if any((w.urn, w.policy) == (waiver.urn, waiver.policy) for w in waivers):
            raise ValueError(
                f"{path.name} waiver {index + 1}: a second waiver of {waiver.policy} on "
                f"{waiver.urn}"
            )
        waivers.append(waiver)
    return waivers


_ACTIVE: list[Waiver] = []


def active() -> list[Waiver]:
    """The waivers the pack applies (``install`` sets them)."""
    return list(_ACTIVE)


def install(waivers: Iterable[Waiver]) -> None:
    _ACTIVE[:] = list(waivers)


def find(policy: str, urn: str | None) -> Waiver | None:
    return next((w for w in _ACTIVE if (w.policy, w.urn) == (policy, urn)), None)


def _filtered(policy: str, default_urn: str | None, report: ReportViolation) -> ReportViolation:
    def filtered(message: str, urn: str | None = None) -> None:
        waiver = find(policy, urn or default_urn)
        if waiver is None:
            report(message, urn)
        elif waiver.expired():
            report(f"{message} (its {waiver.describe()} has expired)", urn)

    return filtered


def wrap(policy: Policy) -> None:
    """Make ``policy`` skip the violations a current waiver covers."""
    validate = policy.validate  # type: ignore[attr-defined]

    def waived(args: Any, report: ReportViolation) -> Any:
        return validate(args, _filtered(policy.name, getattr(args, "urn", None), report))

    setattr(policy, "validate", waived)  # noqa: B010 (the method is shadowed on purpose)


def _not_expired(args: StackValidationArgs, report: ReportViolation) -> None:
    urns = {r.urn for r in args.resources}
    stacks = {urn.split("::", 1)[0] for urn in urns}
    for waiver in _ACTIVE:
        in_stack = waiver.urn in urns or waiver.urn.split("::", 1)[0] in stacks
        if in_stack and waiver.expired():
            report(
                f"The {waiver.describe()} has expired: fix the resource and delete the waiver, "
                f"or renew it in policies/{WAIVERS_FILE.name} with a new expiry and approver.",
                waiver.urn if waiver.urn in urns else None,
            )


EXPIRY = StackValidationPolicy(
    name="waivers-not-expired",
    description="Every waiver of policies/waivers.yaml that names this stack is unexpired.",
    validate=_not_expired,
    enforcement_level=EnforcementLevel.MANDATORY,
)


def apply(policies: Iterable[Policy], path: Path = WAIVERS_FILE) -> None:
    """Check the waivers file against the pack and make every policy honour it."""
    policies = list(policies)
    install(load(path, (p.name for p in policies)))
    for policy in policies:
        if policy is not EXPIRY:
            wrap(policy)
