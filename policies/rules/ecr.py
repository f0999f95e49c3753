"""ECR: immutable tags (a deployed tag always means the same image), scanning, KMS."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import as_list, get, label, rule

REPOSITORY = "aws:ecr/repository:Repository"
IMMUTABLE = frozenset({"IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION"})


def _repo(args: ResourceValidationArgs) -> str:
    return label("ECR repository", args.name)


def _immutable(args: ResourceValidationArgs, report: ReportViolation) -> None:
    mutability = args.props.get("imageTagMutability") or "MUTABLE"
    if mutability not in IMMUTABLE:
        report(
            f"{_repo(args)} has {mutability} tags, so a pushed tag can silently change the "
            "running image; set image_tag_mutability='IMMUTABLE'.",
            None,
        )


def _scan_on_push(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if get(args.props, "imageScanningConfiguration.scanOnPush") is not True:
        report(
            f"{_repo(args)} does not scan images on push; set "
            "image_scanning_configuration={'scan_on_push': True}.",
            None,
        )


def _kms(args: ResourceValidationArgs, report: ReportViolation) -> None:
    types = [get(c, "encryptionType") for c in as_list(args.props.get("encryptionConfigurations"))]
    if "KMS" not in types:
        report(
            f"{_repo(args)} encrypts images with the AES256 default; set "
            "encryption_configurations=[{'encryption_type': 'KMS', 'kms_key': <key arn>}] to "
            "control and audit access to the key.",
            None,
        )


M, A = EnforcementLevel.MANDATORY, EnforcementLevel.ADVISORY

POLICIES = [
    rule("ecr-immutable-tags", "ECR repositories use immutable tags.", [REPOSITORY], _immutable, M),
    rule(
        "ecr-scan-on-push", "ECR repositories scan images on push.", [REPOSITORY], _scan_on_push, M
    ),
    rule("ecr-kms-encryption", "ECR repositories encrypt with a KMS key.", [REPOSITORY], _kms, A),
]
