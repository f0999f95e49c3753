"""Stack rules for the internet-facing entries and their records: every entry has a WAF,
every web ACL logs, every FERPA bucket keeps S3 server access logs, the audit archive is
write-once (S3 Object Lock).

Joins go by ARN or bucket name where they are known, and fall back to the component tree
(a resource and its companions share a parent) on a first preview, when they are not.
"""

from __future__ import annotations

import re

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from . import s3
from ._stack_util import of_type, parent_urn, report_each, resource_id, val
from ._util import present, setting

LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WEB_ACL_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
WEB_ACL_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
BUCKET_LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")


def _joined(
    owner: PolicyResource, candidates: list[PolicyResource], path: str
) -> list[PolicyResource]:
    """Candidates whose ``path`` names the owner's ARN, or (unknown yet) share its parent."""
    arn = val(owner, "arn")
    found = []
    for c in candidates:
        ref = val(c, path)
        if ref is not None:
            if arn and str(ref) == str(arn):
                found.append(c)
        elif parent_urn(c) == parent_urn(owner):
            found.append(c)
    return found


def _only_cloudfront(lb: PolicyResource, resources: list[PolicyResource]) -> bool:
    """The load balancer's component admits nothing from a CIDR (only CloudFront's prefix
    list), and a distribution with a web ACL exists: CloudFront's WAF is the only way in."""
    rules = [r for r in of_type(resources, INGRESS_RULE) if parent_urn(r) == parent_urn(lb)]
    open_to_cidrs = any(present(r.props, "cidrIpv4") or present(r.props, "cidrIpv6") for r in rules)
    guarded = any(present(d.props, "webAclId") for d in of_type(resources, DISTRIBUTION))
    return bool(rules) and not open_to_cidrs and guarded


def _entry_has_waf(args: StackValidationArgs, report: ReportViolation) -> None:
    resources, at = args.resources, report_each(report)
    associations = of_type(resources, WEB_ACL_ASSOCIATION)
    for lb in of_type(resources, LOAD_BALANCER):
        if val(lb, "internal") is True:
            continue
        if _joined(lb, associations, "resourceArn") or _only_cloudfront(lb, resources):
            continue
        at(
            f"Load balancer '{lb.name}' is internet-facing without a WAF: associate a "
            "REGIONAL aws.wafv2.WebAcl (aws.wafv2.WebAclAssociation), or admit CloudFront's "
            "origin-facing prefix list only, behind a distribution with a web ACL.",
            lb,
        )


def _waf_logging(args: StackValidationArgs, report: ReportViolation) -> None:
    resources, at = args.resources, report_each(report)
    configs = of_type(resources, WEB_ACL_LOGGING)
    for acl in of_type(resources, WEB_ACL):
        found = _joined(acl, configs, "resourceArn")
        if not found:
            at(
                f"WAF web ACL '{acl.name}' logs nothing; add an "
                "aws.wafv2.WebAclLoggingConfiguration to an aws-waf-logs-* log group "
                "(components.shared.waf.waf_logging, the API key redacted).",
                acl,
            )


def _s3_access_logging(args: StackValidationArgs, report: ReportViolation) -> None:
    resources, at = args.resources, report_each(report)
    pattern = str(setting(args, s3.ACCESS_LOG_SCHEMA, "accessLogBucketPattern"))
    configs = of_type(resources, *BUCKET_LOGGING)
    for bucket in of_type(resources, *s3.BUCKETS):
        if val(bucket, "tags.data-classification") != "ferpa" or re.search(pattern, bucket.name):
            continue
        keys = {str(k) for k in (resource_id(bucket), val(bucket, "bucket")) if k}
        logged = [
            c
            for c in configs
            if (str(val(c, "bucket")) in keys)
            or (val(c, "bucket") is None and parent_urn(c) == parent_urn(bucket))
        ]
        if not logged:
            at(
                f"S3 bucket '{bucket.name}' holds student records without server access logs; "
                "add an aws.s3.BucketLogging into the stack's access-log bucket "
                "(SecureBucketArgs.access_log_bucket).",
                bucket,
            )


def _audit_archive_locked(args: StackValidationArgs, report: ReportViolation) -> None:
    resources, at = args.resources, report_each(report)
    pattern = str(setting(args, s3.AUDIT_BUCKET_SCHEMA, "auditBucketPattern"))
    locks = of_type(resources, *s3.OBJECT_LOCK)
    for bucket in of_type(resources, *s3.BUCKETS):
        if not re.search(pattern, bucket.name):
            continue
        keys = {str(k) for k in (resource_id(bucket), val(bucket, "bucket")) if k}
        mine = [
            c
            for c in locks
            if str(val(c, "bucket")) in keys
            or (val(c, "bucket") is None and parent_urn(c) == parent_urn(bucket))
        ]
        inline = val(bucket, "objectLockConfiguration")
        if not mine and not (inline and s3.lock_problem(inline) is None):
            at(
                f"S3 bucket '{bucket.name}' archives the audit log without Object Lock: "
                "whoever may write to it could rewrite the audit trail. Add an "
                "aws.s3.BucketObjectLockConfiguration (SecureBucketArgs.object_lock).",
                bucket,
            )


M = EnforcementLevel.MANDATORY

POLICIES = [
    StackValidationPolicy(
        name="internet-entry-has-waf",
        description="Every internet-facing load balancer is behind a WAF web ACL.",
        validate=_entry_has_waf,
        enforcement_level=M,
    ),
    StackValidationPolicy(
        name="waf-logging",
        description="Every WAF web ACL logs its requests.",
        validate=_waf_logging,
        enforcement_level=M,
    ),
    StackValidationPolicy(
        name="s3-access-logging",
        description="FERPA buckets keep S3 server access logs.",
        validate=_s3_access_logging,
        enforcement_level=M,
        config_schema=s3.ACCESS_LOG_SCHEMA,
    ),
    StackValidationPolicy(
        name="s3-audit-archive-object-lock",
        description="The audit archive bucket is write-once (S3 Object Lock).",
        validate=_audit_archive_locked,
        enforcement_level=M,
        config_schema=s3.AUDIT_BUCKET_SCHEMA,
    ),
]
