"""Policy findings as SARIF 2.1.0, the format GitHub code scanning reads
(``github/codeql-action/upload-sarif``): one run of the pack, a rule per policy with its
severity, remediation and controls, a result per violation located at the stack's file and,
logically, at the resource's URN.

GitHub shows a result only at a file of the repository: the stack file
``Pulumi.<stack>.yaml`` is where the finding's stack is configured; the URN names the
resource. ``security-severity`` (0-10) is what code scanning sorts security alerts by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, Policy, Severity

from policies.rules import ALL_POLICIES

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
TOOL = "student-success-policies"
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "3.0",
}
_LEVEL = {"mandatory": "error", "advisory": "warning"}


def _rule(policy: Policy) -> dict[str, Any]:
    tags = list(policy.tags or [])
    severity = policy.severity or Severity.MEDIUM
    mandatory = policy.enforcement_level in (EnforcementLevel.MANDATORY, EnforcementLevel.REMEDIATE)
    remediation = policy.remediation_steps or ""
    controls = "\n".join(f"- {t}" for t in tags)
    return {
        "id": policy.name,
        "name": policy.name,
        "shortDescription": {"text": policy.description},
        "fullDescription": {"text": policy.description},
        "help": {
            "text": f"{remediation}\n\nControls: {', '.join(tags)}",
            "markdown": f"**Remediation:** {remediation}\n\n**Controls**\n\n{controls}",
        },
        "defaultConfiguration": {"level": "error" if mandatory else "warning"},
        "properties": {
            "tags": ["security", "infrastructure", *tags],
            "security-severity": _SECURITY_SEVERITY[severity],
            "severity": severity.value,
            "precision": "high",
        },
    }


def _result(stack: str, violation: Any, index: Mapping[str, int]) -> dict[str, Any]:
    where = violation.urn or f"stack {stack}"
    fingerprint = hashlib.sha256(f"{stack}|{violation.policy}|{where}".encode()).hexdigest()
    return {
        "ruleId": violation.policy,
        "ruleIndex": index[violation.policy],
        "level": _LEVEL.get(violation.level, "note"),
        "message": {"text": violation.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": f"Pulumi.{stack}.yaml"},
                    "region": {"startLine": 1},
                },
                "logicalLocations": [
                    {
                        "fullyQualifiedName": where,
                        "kind": "resource" if violation.urn else "module",
                    }
                ],
            }
        ],
        "partialFingerprints": {"policyFinding/v1": fingerprint},
        "properties": {"stack": stack, "enforcementLevel": violation.level},
    }


def document(
    findings: Mapping[str, Sequence[Any]], policies: Sequence[Policy] = ALL_POLICIES
) -> dict[str, Any]:
    """The SARIF log of ``findings`` (stack -> ``tools.policy.Violation`` list)."""
    index = {p.name: i for i, p in enumerate(policies)}
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": TOOL, "rules": [_rule(p) for p in policies]}},
                "automationDetails": {"id": "policy-pack/"},
                "results": [
                    _result(stack, v, index)
                    for stack, violations in findings.items()
                    for v in violations
                ],
            }
        ],
    }
