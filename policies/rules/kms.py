"""KMS keys rotate; secrets are encrypted with a customer-managed key."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import present, rule

KEY = "aws:kms/key:Key"
SECRET = "aws:secretsmanager/secret:Secret"


def _rotation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = args.props.get("customerMasterKeySpec") or args.props.get("keySpec")
    if spec not in (None, "SYMMETRIC_DEFAULT"):
        return  # AWS rotates only symmetric encryption keys
    if args.props.get("enableKeyRotation") is not True:
        report(
            f"KMS key '{args.name}' does not rotate its key material; set "
            "enable_key_rotation=True.",
            None,
        )


def _explicit_policy(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "policy"):
        report(
            f"KMS key '{args.name}' relies on the implicit default key policy; set policy "
            "explicitly (components.shared.kms.key_policy: the account administers, plus the "
            "grants a service needs), so that reviewers see who may use the key.",
            None,
        )


def _secret_cmk(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "kmsKeyId"):
        report(
            f"Secret '{args.name}' is encrypted with the account's default aws/secretsmanager "
            "key; set kms_key_id to the stack's customer-managed key so access is auditable "
            "and revocable per stack.",
            None,
        )


POLICIES = [
    rule(
        "kms-key-rotation",
        "Symmetric KMS keys rotate their key material yearly.",
        [KEY],
        _rotation,
        EnforcementLevel.MANDATORY,
    ),
    rule(
        "kms-key-explicit-policy",
        "KMS keys carry an explicit key policy.",
        [KEY],
        _explicit_policy,
        EnforcementLevel.MANDATORY,
    ),
    rule(
        "secrets-customer-managed-key",
        "Secrets Manager secrets are encrypted with a customer-managed KMS key.",
        [SECRET],
        _secret_cmk,
        EnforcementLevel.ADVISORY,
    ),
]
