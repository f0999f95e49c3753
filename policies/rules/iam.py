"""IAM: no administrator-equivalent permissions (Action "*" on Resource "*"), inline or managed;
every action of a permission policy granted as AWS's Service Authorization Reference says it
can be (``iam_actions``); no permission policy may bypass S3 Object Lock's governance mode."""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import partial
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs

from ._util import as_list, get, known, rule, statements
from .iam_actions import statement_problems

ROLE = "aws:iam/role:Role"
INLINE = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
MANAGED = "aws:iam/policy:Policy"
ATTACHMENTS = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
ADMIN_POLICIES = frozenset({"AdministratorAccess", "IAMFullAccess", "PowerUserAccess"})
FIX = (
    "grant the specific actions on the specific ARNs the workload needs "
    "(build the document with a pure function and json.dumps)."
)


def admin_statements(document: Any) -> list[str]:
    """Sids (or indexes) of Allow statements granting every action on every resource."""
    found = []
    for i, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        actions = {str(a) for a in as_list(statement.get("Action"))}
        resources = {str(r) for r in as_list(statement.get("Resource"))}
        if actions & {"*", "*:*"} and "*" in resources:
            found.append(str(statement.get("Sid") or f"#{i}"))
    return found


def _inline(args: ResourceValidationArgs, report: ReportViolation) -> None:
    documents = (
        [
            (get(p, "name") or "inline", get(p, "policy"))
            for p in as_list(args.props.get("inlinePolicies"))
        ]
        if args.resource_type == ROLE
        else [(args.name, args.props.get("policy"))]
    )
    for policy_name, document in documents:
        bad = admin_statements(document)
        if bad:
            report(
                f"Inline IAM policy '{policy_name}' of '{args.name}' allows Action '*' on "
                f"Resource '*' (statement {', '.join(bad)}); {FIX}",
                None,
            )


def _managed(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == MANAGED:
        bad = admin_statements(args.props.get("policy"))
        if bad:
            report(
                f"Managed IAM policy '{args.name}' allows Action '*' on Resource '*' (statement "
                f"{', '.join(bad)}); {FIX}",
                None,
            )
        return
    arns = (
        as_list(args.props.get("managedPolicyArns"))
        if args.resource_type == ROLE
        else [args.props.get("policyArn")]
    )
    for arn in arns:
        if str(arn or "").rsplit("/", 1)[-1] in ADMIN_POLICIES and ":aws:policy/" in str(arn):
            report(
                f"IAM '{args.name}' attaches the AWS managed policy {arn}, which is "
                f"administrator-equivalent; {FIX}",
                None,
            )


def _documents(args: ResourceValidationArgs) -> list[tuple[str, Any]]:
    """The permission policies of a role, an inline policy or a managed policy, by name;
    those unknown during a preview (built from ARNs made in the same update) left out."""
    if args.resource_type == ROLE:
        inline = known(lambda: as_list(args.props.get("inlinePolicies")), []) or []
        return [
            (
                f"{args.name}/{known(partial(get, p, 'name')) or 'inline'}",
                known(partial(get, p, "policy")),
            )
            for p in inline
        ]
    return [(args.name, known(lambda: args.props.get("policy")))]


def _authorized_as_documented(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for policy_name, document in _documents(args):
        for i, statement in enumerate(statements(document)):
            sid = str(statement.get("Sid") or f"#{i}")
            for problem in statement_problems(statement):
                report(f"IAM policy '{policy_name}', statement {sid}: {problem}.", None)


# Deletes or overwrites a version under a governance-mode Object Lock before its retention
# ends: whoever holds it can rewrite the audit archive (no workload needs it; an operator who
# must, e.g. at a district's written request, holds it outside the stack).
LOCK_BYPASS = "s3:bypassgovernanceretention"


def lock_bypass_statements(document: Any) -> list[str]:
    """Sids (or indexes) of Allow statements whose actions (wildcards too) include
    s3:BypassGovernanceRetention."""
    found = []
    for i, statement in enumerate(statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        actions = [str(a).lower() for a in as_list(statement.get("Action"))]
        if any(fnmatchcase(LOCK_BYPASS, a) for a in actions):
            found.append(str(statement.get("Sid") or f"#{i}"))
    return found


def _no_lock_bypass(args: ResourceValidationArgs, report: ReportViolation) -> None:
    for policy_name, document in _documents(args):
        bad = lock_bypass_statements(document)
        if bad:
            report(
                f"IAM policy '{policy_name}' allows s3:BypassGovernanceRetention (statement "
                f"{', '.join(bad)}): its holder can delete or overwrite a version under the "
                "audit archive's Object Lock; grant the S3 actions by name instead.",
                None,
            )


M = EnforcementLevel.MANDATORY

POLICIES = [
    rule(
        "iam-no-admin-inline-policy",
        "Inline IAM policies never allow every action on every resource.",
        [ROLE, *INLINE],
        _inline,
        M,
    ),
    rule(
        "iam-actions-as-authorized",
        "Permission policies grant real actions on the resource types AWS authorizes them on.",
        [ROLE, MANAGED, *INLINE],
        _authorized_as_documented,
        M,
    ),
    rule(
        "iam-no-object-lock-bypass",
        "Permission policies never allow bypassing S3 Object Lock's governance mode.",
        [ROLE, MANAGED, *INLINE],
        _no_lock_bypass,
        M,
    ),
    rule(
        "iam-no-admin-managed-policy",
        "Managed IAM policies (ours or AWS's) never grant administrator access.",
        [ROLE, MANAGED, *ATTACHMENTS],
        _managed,
        M,
    ),
]
