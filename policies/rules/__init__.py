"""Every rule of the pack, grouped by concern. Importable without starting the policy server:
``policies/__main__.py`` imports it as ``rules`` (the CLI runs the pack from policies/), tests
and tools/policy.py as ``policies.rules``; the modules import each other relatively.

The stack's tier (backups outside dev, Multi-AZ on tier3/tier4, instance classes per tier) is
read from each resource's ``tier`` tag: a policy pack cannot read the program's config, every
taggable resource carries the tag (``tagging-required-tags`` enforces it), and the tag is the
catalog row the program actually deployed, overrides included.

Enforcement levels and config are set per policy with ``--policy-pack-config <file>`` (see
``policy-config.sample.json``): ``{"<policy>": "advisory" | "mandatory" | "disabled"}`` or
``{"<policy>": {"enforcementLevel": ..., "<property>": ...}}``, and ``"all"`` for every policy.
The engine fills in each schema's defaults; rules fall back to the same defaults when a
property is absent (tests and the offline runner).

Each policy's severity, remediation and controls come from ``policies/controls.yaml``
(``metadata``); a resource the policy must not judge is waived in ``policies/waivers.yaml``
(``waivers``), never by turning the policy off for a stack.
"""

from __future__ import annotations

from pulumi_policy import Policy, ResourceValidationPolicy, StackValidationPolicy

from . import (
    cache,
    ecr,
    edge,
    eks,
    elb,
    iam,
    kms,
    kubernetes,
    logs,
    metadata,
    network,
    rds,
    s3,
    sagemaker,
    sqs,
    stack_capacity,
    stack_consistency,
    stack_deployability,
    stack_logging,
    tagging,
    waivers,
)

CONCERNS: dict[str, list[ResourceValidationPolicy]] = {
    "rds": rds.POLICIES,
    "cache": cache.POLICIES,
    "s3": s3.POLICIES,
    "eks": eks.POLICIES,
    "network": network.POLICIES,
    "edge": edge.POLICIES,
    "elb": elb.POLICIES,
    "sagemaker": sagemaker.POLICIES,
    "sqs": sqs.POLICIES,
    "ecr": ecr.POLICIES,
    "kms": kms.POLICIES,
    "iam": iam.POLICIES,
    "kubernetes": kubernetes.POLICIES,
    "logs": logs.POLICIES,
    "tagging": tagging.POLICIES,
}
RESOURCE_POLICIES: list[ResourceValidationPolicy] = [p for ps in CONCERNS.values() for p in ps]
STACK_POLICIES: list[StackValidationPolicy] = [
    *stack_capacity.POLICIES,
    *stack_consistency.POLICIES,
    *stack_deployability.POLICIES,
    *stack_logging.POLICIES,
]
ALL_POLICIES: list[Policy] = [*RESOURCE_POLICIES, *STACK_POLICIES, waivers.EXPIRY]
metadata.apply(ALL_POLICIES)
waivers.apply(ALL_POLICIES)

__all__ = ["ALL_POLICIES", "CONCERNS", "RESOURCE_POLICIES", "STACK_POLICIES"]
