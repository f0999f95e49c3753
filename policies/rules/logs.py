"""CloudWatch log groups: encrypted with a customer-managed key, and not kept forever."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import label, num, present, rule

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def _encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "kmsKeyId"):
        report(
            f"{label('Log group', args.name)} is encrypted with CloudWatch's own key only; "
            "set kms_key_id to a customer-managed key whose policy admits "
            "logs.<region>.amazonaws.com for this group "
            "(components.shared.log_groups.encrypted_logs).",
            None,
        )


def _retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not present(args.props, "retentionInDays"):
        report(
            f"{label('Log group', args.name)} keeps its logs forever; set retention_in_days "
            "(the tier's log_retention_days).",
            None,
        )
    elif (days := num(args.props.get("retentionInDays"))) is not None and days < 1:
        report(f"{label('Log group', args.name)} has retention_in_days={days}.", None)


POLICIES = [
    rule(
        "log-group-encrypted",
        "Log groups are encrypted with a customer-managed KMS key.",
        [LOG_GROUP],
        _encrypted,
        EnforcementLevel.MANDATORY,
    ),
    rule(
        "log-group-retention",
        "Log groups expire their logs after the tier's retention.",
        [LOG_GROUP],
        _retention,
        EnforcementLevel.MANDATORY,
    ),
]
