"""The policy pack `pulumi preview --policy-pack policies` runs. Only builds the pack:
constructing PolicyPack starts the analyzer's gRPC server and blocks, so nothing imports this."""

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import ALL_POLICIES

PolicyPack(
    name="student-success-policies",
    policies=ALL_POLICIES,
    enforcement_level=EnforcementLevel.ADVISORY,
    description="Security, durability, tagging and capacity guardrails of the Student Success "
    "Prediction System (FERPA data on AWS).",
)
