"""Severity, remediation and the controls each policy supports (``policies/controls.yaml``),
set on the policies' native fields (pulumi-policy 1.21: ``severity``, ``remediation_steps``,
``framework``, ``tags``) so that ``pulumi preview --policy-pack`` and Pulumi Cloud show them,
and ``tools.policy --format sarif`` reads them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi_policy import Policy, PolicyComplianceFramework, Severity

CONTROLS_FILE = Path(__file__).resolve().parent.parent / "controls.yaml"
NIST = ("NIST SP 800-53", "Rev. 5")
CIS = "CIS AWS Foundations v3.0.0"


@dataclass(frozen=True)
class Metadata:
    severity: Severity
    controls: tuple[str, ...]
    """As written in the file: FERPA citations, NIST ids, ``CIS <number>``."""
    remediation: str

    @property
    def nist(self) -> list[str]:
        return [c for c in self.controls if not c.startswith(("FERPA", "CIS "))]

    @property
    def tags(self) -> list[str]:
        """Each control named in full: ``NIST SP 800-53 Rev. 5 SC-28``,
        ``CIS AWS Foundations v3.0.0 2.3.1``, the FERPA citation as it is."""
        named = []
        for control in self.controls:
            if control.startswith("CIS "):
                named.append(f"{CIS} {control.removeprefix('CIS ')}")
            elif control.startswith("FERPA"):
                named.append(control)
            else:
                named.append(f"{NIST[0]} {NIST[1]} {control}")
        return named


def _entry(name: str, entry: Any) -> Metadata:
    if not isinstance(entry, Mapping) or set(entry) != {"severity", "controls", "remediation"}:
        raise ValueError(
            f"{CONTROLS_FILE.name}: '{name}' needs exactly severity, controls and remediation"
        )
    try:
        severity = Severity(entry["severity"])
    except ValueError:
        raise ValueError(
            f"{CONTROLS_FILE.name}: '{name}' severity {entry['severity']!r} is not one of "
            f"{', '.join(s.value for s in Severity)}"
        ) from None
    controls = entry["controls"]
    if not isinstance(controls, list) or not controls or not str(entry["remediation"]).strip():
        raise ValueError(f"{CONTROLS_FILE.name}: '{name}' needs controls and remediation")
    return Metadata(severity, tuple(str(c) for c in controls), str(entry["remediation"]))


def load(path: Path = CONTROLS_FILE) -> dict[str, Metadata]:
    raw = yaml.safe_load(path.read_text()) or {}
    return {str(name): _entry(str(name), entry) for name, entry in raw.items()}


def apply(policies: Iterable[Policy], path: Path = CONTROLS_FILE) -> None:
    """Set each policy's native metadata fields; a policy missing from the file, or an entry
    naming no policy, is an error (the file and the pack must not drift apart)."""
    table = load(path)
    policies = list(policies)
    names = {p.name for p in policies}
    missing, unknown = sorted(names - set(table)), sorted(set(table) - names)
    if missing or unknown:
        raise ValueError(
            f"{path.name}: no entry for {', '.join(missing) or '-'}; "
            f"entries naming no policy: {', '.join(unknown) or '-'}"
        )
    for policy in policies:
        meta = table[policy.name]
        policy.severity = meta.severity
        policy.remediation_steps = meta.remediation
        policy.tags = meta.tags
        policy.framework = PolicyComplianceFramework(
            name=NIST[0], version=NIST[1], reference=", ".join(meta.nist) or None
        )
