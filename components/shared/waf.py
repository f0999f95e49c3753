"""The WAF rules in front of the API, one set for both entries: the CloudFront web ACL (edge
tiers) and the regional web ACL on the load balancer (every other tier).

Tuned for an API used by whole schools (docs/operate.md, "Limits"): the per-IP limits cover
unauthenticated and auth traffic and are generous enough for one school behind one NAT
address; authenticated traffic is limited per API key (the header), which the app then
limits more finely per key class. AWS's common rule set blocks bodies over 8 KB
(``SizeRestrictions_BODY``): that rule only counts here, and a rule of ours blocks what it
labels unless it is a POST to a route whose body the app limits itself
(``contract.API_BODY_ROUTES``), so a 1,000-student ``/v1/predict`` batch passes while an
oversized body anywhere else is still refused.
"""

from __future__ import annotations

from typing import cast

import pulumi
import pulumi_aws as aws

from components.config.tier import WafSize
from components.shared.contract import API_BODY_ROUTES, API_KEY_HEADER, INTERNAL_PATHS

AUTH_PATH_PREFIXES = ("/auth", "/api/v1/auth")
STATIC_PREFIX = "/static/"
# Paths are decoded, normalized (// and /./) and lower-cased first, so /%69nvocations,
# //metrics or /AUTH cannot step around a path rule.
PATH_TRANSFORMATIONS = ("URL_DECODE", "NORMALIZE_PATH", "LOWERCASE")
WAF_WINDOWS = (60, 120, 300, 600)
COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
KNOWN_BAD_INPUTS = "AWSManagedRulesKnownBadInputsRuleSet"
BODY_SIZE_RULE = "SizeRestrictions_BODY"
# The label the common rule set adds when BODY_SIZE_RULE matches (also when it only counts).
BODY_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"


def check_limits(size: WafSize) -> None:
    """Raise a ValueError naming a limit or window WAF would refuse."""
    if size.window_seconds not in WAF_WINDOWS:
        raise ValueError(f"window_seconds={size.window_seconds}: WAF allows {WAF_WINDOWS}")
    for label in ("per_ip_limit", "anonymous_limit", "auth_limit", "per_key_limit"):
        limit = getattr(size, label)
        if not 10 <= limit <= 2_000_000_000:
            raise ValueError(f"{label}={limit}: WAF rate limits are 10-2,000,000,000")


# Labels our counting rules add, matched by the rules after them. WAF nests statements three
# deep at most, so "no key and not static" or "not a batch route" is a label, not a tree.
ANONYMOUS_LABEL = "ssp:anonymous"
BODY_ROUTE_LABEL = "ssp:api-body-route"

Statement = aws.wafv2.WebAclRuleStatementArgsDict
ScopeDown = aws.wafv2.WebAclRuleStatementRateBasedStatementScopeDownStatementArgsDict
Rule = aws.wafv2.WebAclRuleArgsDict


def _visibility(metric: str) -> aws.wafv2.WebAclRuleVisibilityConfigArgsDict:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


def web_acl_visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


def _path(prefix: str, constraint: str = "STARTS_WITH") -> Statement:
    """A match on the URI path, after PATH_TRANSFORMATIONS."""
    return {
        "byte_match_statement": {
            "positional_constraint": constraint,
            "search_string": prefix,
            "field_to_match": {"uri_path": {}},
            "text_transformations": [
                {"priority": i, "type": kind} for i, kind in enumerate(PATH_TRANSFORMATIONS)
            ],
        }
    }


def _any(statements: list[Statement]) -> Statement:
    return statements[0] if len(statements) == 1 else {"or_statement": {"statements": statements}}


def _has_api_key() -> Statement:
    # A missing header does not match a size constraint.
    return {
        "size_constraint_statement": {
            "comparison_operator": "GT",
            "size": 0,
            "field_to_match": {"single_header": {"name": API_KEY_HEADER.lower()}},
            "text_transformations": [{"priority": 0, "type": "NONE"}],
        }
    }


def _label(key: str) -> Statement:
    return {"label_match_statement": {"scope": "LABEL", "key": key}}


def _labelling(name: str, priority: int, label: str, statement: Statement, prefix: str) -> Rule:
    """A rule that only adds ``label`` to the requests ``statement`` matches."""
    return {
        "name": name,
        "priority": priority,
        "action": {"count": {}},
        "rule_labels": [{"name": label}],
        "statement": statement,
        "visibility_config": _visibility(f"{prefix}-{name}"),
    }


def _rate(
    name: str,
    priority: int,
    limit: int,
    window: int,
    scope_down: Statement,
    prefix: str,
    *,
    per_key: bool = False,
) -> Rule:
    statement: aws.wafv2.WebAclRuleStatementRateBasedStatementArgsDict = {
        "aggregate_key_type": "CUSTOM_KEYS" if per_key else "IP",
        "limit": limit,
        "evaluation_window_sec": window,
        # The same statement shape; pulumi-aws generates a type per context.
        "scope_down_statement": cast(ScopeDown, scope_down),
    }
    if per_key:
        # Requests without the header are not counted here (the anonymous rule has them).
        statement["custom_keys"] = [
            {
                "header": {
                    "name": API_KEY_HEADER.lower(),
                    "text_transformations": [{"priority": 0, "type": "NONE"}],
                }
            }
        ]
    return {
        "name": name,
        "priority": priority,
        "action": {"block": {}},
        "statement": {"rate_based_statement": statement},
        "visibility_config": _visibility(f"{prefix}-{name}"),
    }


def _managed(name: str, priority: int, prefix: str, *, count: tuple[str, ...] = ()) -> Rule:
    """An AWS managed rule group whose own actions (block) apply, but for the rules in
    ``count``, which only count (and label)."""
    group: aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementArgsDict = {
        "vendor_name": "AWS",
        "name": name,
    }
    if count:
        group["rule_action_overrides"] = [
            {"name": rule, "action_to_use": {"count": {}}} for rule in count
        ]
    return {
        "name": name,
        "priority": priority,
        "override_action": {"none": {}},
        "statement": {"managed_rule_group_statement": group},
        "visibility_config": _visibility(f"{prefix}-{name}"),
    }


def waf_rules(limits: WafSize, *, metric_prefix: str) -> list[Rule]:
    """Rules of a web ACL, in priority order: block the image's internal paths, label the
    requests later rules single out, the per-IP limits (auth paths, unauthenticated
    requests, everything but static assets), the per-key limit, then AWS's managed rule
    groups with the body-size rule handled for the API's batch routes."""
    check_limits(limits)
    p, window = metric_prefix, limits.window_seconds
    post: Statement = {
        "byte_match_statement": {
            "positional_constraint": "EXACTLY",
            "search_string": "POST",
            "field_to_match": {"method": {}},
            "text_transformations": [{"priority": 0, "type": "NONE"}],
        }
    }
    not_static: Statement = {"not_statement": {"statement": _path(STATIC_PREFIX)}}
    body_routes = _any([_path(route, "EXACTLY") for route in API_BODY_ROUTES])
    no_key: Statement = {"not_statement": {"statement": _has_api_key()}}
    return [
        {
            "name": "block-internal-paths",
            "priority": 0,
            "action": {"block": {}},
            "statement": _any([_path(path) for path in INTERNAL_PATHS]),
            "visibility_config": _visibility(f"{p}-block-internal-paths"),
        },
        _labelling(
            "label-anonymous",
            1,
            ANONYMOUS_LABEL,
            {"and_statement": {"statements": [no_key, not_static]}},
            p,
        ),
        _labelling(
            "label-api-body-route",
            2,
            BODY_ROUTE_LABEL,
            {"and_statement": {"statements": [post, body_routes]}},
            p,
        ),
        _rate(
            "rate-limit-auth",
            3,
            limits.auth_limit,
            window,
            _any([_path(a) for a in AUTH_PATH_PREFIXES]),
            p,
        ),
        _rate(
            "rate-limit-anonymous", 4, limits.anonymous_limit, window, _label(ANONYMOUS_LABEL), p
        ),
        # Static assets don't count: one page load fetches many.
        _rate("rate-limit-ip", 5, limits.per_ip_limit, window, not_static, p),
        _rate("rate-limit-key", 6, limits.per_key_limit, window, _has_api_key(), p, per_key=True),
        _managed(COMMON_RULE_SET, 10, p, count=(BODY_SIZE_RULE,)),
        {
            "name": "block-oversized-bodies",
            "priority": 11,
            "action": {"block": {}},
            "statement": {
                "and_statement": {
                    "statements": [
                        _label(BODY_SIZE_LABEL),
                        {"not_statement": {"statement": _label(BODY_ROUTE_LABEL)}},
                    ]
                }
            },
            "visibility_config": _visibility(f"{p}-block-oversized-bodies"),
        },
        _managed(KNOWN_BAD_INPUTS, 12, p),
    ]


# WAF logs only to log groups named so.
LOG_GROUP_PREFIX = "aws-waf-logs-"


def waf_logging(
    name: str,
    *,
    web_acl: aws.wafv2.WebAcl,
    log_group: aws.cloudwatch.LogGroup,
    opts: pulumi.ResourceOptions,
) -> aws.wafv2.WebAclLoggingConfiguration:
    """Every request the web ACL sees, logged to ``log_group`` (named LOG_GROUP_PREFIX...)
    with the API key redacted: a log reader must not be able to call the API."""
    return aws.wafv2.WebAclLoggingConfiguration(
        f"{name}-waf-logging",
        resource_arn=web_acl.arn,
        log_destination_configs=[log_group.arn],
        redacted_fields=[{"single_header": {"name": API_KEY_HEADER.lower()}}],
        opts=opts,
    )
