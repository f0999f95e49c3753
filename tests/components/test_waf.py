"""The WAF rules both entries share, read as WAF reads them: a small evaluator of the rule
statements decides what happens to a request (which rule blocks it, which rate rules count
it), so the tests state behaviour rather than the shape of the configuration."""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

import pytest

from app.api.schemas import PredictIn
from app.core.settings import Settings
from app.model.features import FEATURES
from components.config.catalog import TIERS
from components.config.tier import WafSize
from components.shared import waf

# What AWSManagedRulesCommonRuleSet's SizeRestrictions_BODY matches: bodies over 8 KB.
BODY_SIZE_LIMIT = 8 * 1024
RULES = waf.waf_rules(WafSize(), metric_prefix="t")


@dataclasses.dataclass
class Request:
    method: str
    path: str
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    body_size: int = 0


def _transform(value: str, transformations: list[dict[str, Any]]) -> str:
    for t in sorted(transformations, key=lambda t: t["priority"]):
        if t["type"] == "URL_DECODE":
            value = unquote(value)
        elif t["type"] == "NORMALIZE_PATH":
            value = posixpath.normpath(re.sub("/+", "/", value)) + (
                "/" if value.endswith("/") else ""
            )
        elif t["type"] == "LOWERCASE":
            value = value.lower()
        else:
            assert t["type"] == "NONE", t
    return value


def _field(request: Request, field: Mapping[str, Any]) -> str | None:
    if "uri_path" in field:
        return request.path
    if "method" in field:
        return request.method
    header = field["single_header"]["name"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    return headers.get(header)


def matches(statement: Mapping[str, Any], request: Request, labels: set[str]) -> bool:
    ((kind, body),) = statement.items()
    if kind == "and_statement":
        return all(matches(s, request, labels) for s in body["statements"])
    if kind == "or_statement":
        return any(matches(s, request, labels) for s in body["statements"])
    if kind == "not_statement":
        return not matches(body["statement"], request, labels)
    if kind == "label_match_statement":
        assert body["scope"] == "LABEL"
        return body["key"] in labels
    value = _field(request, body["field_to_match"])
    if value is None:
        return False  # WAF: a missing header matches no byte or size constraint
    value = _transform(value, body["text_transformations"])
    if kind == "byte_match_statement":
        constraint, search = body["positional_constraint"], body["search_string"]
        if constraint == "EXACTLY":
            return value == search
        assert constraint == "STARTS_WITH", constraint
        return value.startswith(search)
    assert kind == "size_constraint_statement", kind
    assert body["comparison_operator"] == "GT"
    return len(value) > body["size"]


def verdict(request: Request) -> str:
    """The rule that blocks the request, or "allow" (rate limits not reached)."""
    labels: set[str] = set()
    for rule in sorted(RULES, key=lambda r: r["priority"]):
        statement = rule["statement"]
        if "rate_based_statement" in statement:
            continue  # counts, blocks only past its limit (see counted_by)
        if "managed_rule_group_statement" in statement:
            group = statement["managed_rule_group_statement"]
            if group["name"] == waf.COMMON_RULE_SET and request.body_size > BODY_SIZE_LIMIT:
                overrides = {
                    o["name"]: o["action_to_use"] for o in group.get("rule_action_overrides", [])
                }
                if overrides.get(waf.BODY_SIZE_RULE) != {"count": {}}:
                    return rule["name"]
                labels.add(waf.BODY_SIZE_LABEL)
            continue
        if matches(statement, request, labels):
            labels.update(label["name"] for label in rule.get("rule_labels", []))
            if rule["action"] == {"block": {}}:
                return rule["name"]
            assert rule["action"] == {"count": {}}
    return "allow"


def counted_by(request: Request) -> dict[str, str]:
    """Rate rules that count the request, with the key they count it under."""
    labels: set[str] = set()
    for rule in sorted(RULES, key=lambda r: r["priority"]):
        if "rule_labels" in rule and matches(rule["statement"], request, labels):
            labels.update(label["name"] for label in rule["rule_labels"])
    counted = {}
    for rule in RULES:
        rate = rule["statement"].get("rate_based_statement")
        if rate and matches(rate["scope_down_statement"], request, labels):
            if rate["aggregate_key_type"] == "IP":
                counted[rule["name"]] = "ip"
            else:
                (key,) = rate["custom_keys"]
                counted[rule["name"]] = _field(request, {"single_header": key["header"]}) or ""
    return counted


KEY = {"X-API-Key": "ssp_abcd1234_secret"}


def predict_body(rows: int) -> bytes:
    """A /v1/predict batch as a client sends it, with realistic (non-trivial) values."""
    row = {f: 0.875 for f in FEATURES} | {"grade": 9}
    body = json.dumps({"school_id": 1, "instances": [row] * rows}).encode()
    PredictIn.model_validate_json(body)  # the app accepts it
    return body


def test_a_1000_row_predict_batch_is_allowed() -> None:
    size = len(predict_body(1000))
    assert size > 20 * BODY_SIZE_LIMIT  # far past the managed rule's 8 KB
    assert verdict(Request("POST", "/v1/predict", KEY, size)) == "allow"


@pytest.mark.parametrize(
    "request_",
    [
        Request("POST", "/v1/schools/1/models", KEY, 9_000),
        Request("PUT", "/v1/predict", KEY, 9_000),  # only POST is the batch route
        Request("POST", "/v1/predict/extra", KEY, 9_000),
        Request("POST", "/v1/events", {}, 200_000),
    ],
    ids=["other-route", "other-method", "longer-path", "anonymous"],
)
def test_an_oversized_body_elsewhere_is_blocked(request_: Request) -> None:
    assert verdict(request_) == "block-oversized-bodies"


def test_small_bodies_pass_everywhere() -> None:
    assert verdict(Request("POST", "/v1/events", KEY, 2_000)) == "allow"
    assert verdict(Request("GET", "/v1/students/1/risk", KEY)) == "allow"


@pytest.mark.parametrize("path", ["/invocations", "/%69nvocations", "//metrics", "/PING"])
def test_internal_paths_are_blocked_first(path: str) -> None:
    assert verdict(Request("POST", path, KEY, 100_000)) == "block-internal-paths"


def test_rate_rules_count_by_ip_or_by_key() -> None:
    keyed = counted_by(Request("GET", "/v1/students/1/risk", KEY))
    assert keyed == {"rate-limit-ip": "ip", "rate-limit-key": KEY["X-API-Key"]}
    anonymous = counted_by(Request("GET", "/v1/students/1/risk"))
    assert anonymous == {"rate-limit-ip": "ip", "rate-limit-anonymous": "ip"}
    auth = counted_by(Request("POST", "/auth/login"))
    assert auth == {"rate-limit-ip": "ip", "rate-limit-anonymous": "ip", "rate-limit-auth": "ip"}
    # Static assets count nowhere: one page load fetches many.
    assert counted_by(Request("GET", "/static/app.js")) == {}


def test_limits_fit_a_school_and_sit_above_the_apps() -> None:
    app = Settings()
    for tier in TIERS.values():
        size = tier.waf
        windows = size.window_seconds / app.rate_limit_window_seconds
        # A whole school behind one NAT: 100 teachers, one request each every 10 s.
        assert size.per_ip_limit >= 100 * size.window_seconds / 10
        # The app's per-class limit answers first (429 with Retry-After), WAF only floods.
        assert size.per_key_limit >= 2 * windows * app.rate_limit_interactive_requests
        assert size.per_key_limit >= 2 * windows * app.rate_limit_integration_requests
        rates = {
            r["name"]: r["statement"].get("rate_based_statement")
            for r in waf.waf_rules(size, metric_prefix="t")
        }
        assert rates["rate-limit-key"]["limit"] == size.per_key_limit
        assert rates["rate-limit-ip"]["limit"] == size.per_ip_limit
        assert rates["rate-limit-anonymous"]["limit"] == size.anonymous_limit
        assert rates["rate-limit-auth"]["limit"] == size.auth_limit


def _depth(statement: Mapping[str, Any]) -> int:
    ((kind, body),) = statement.items()
    children = {
        "and_statement": lambda: body["statements"],
        "or_statement": lambda: body["statements"],
        "not_statement": lambda: [body["statement"]],
        "rate_based_statement": lambda: [body["scope_down_statement"]],
    }.get(kind, lambda: [])()
    return 1 + max((_depth(c) for c in children), default=0)


def test_rules_nest_at_most_three_deep_and_have_their_own_metrics() -> None:
    # pulumi-aws's typed rules (and Terraform's) take three levels of statements at most.
    for rule in RULES:
        assert _depth(rule["statement"]) <= 3, rule["name"]
    names = [r["visibility_config"]["metric_name"] for r in RULES]
    assert len(set(names)) == len(names) == len({r["priority"] for r in RULES})


@pytest.mark.parametrize("bad", [{"window_seconds": 900}, {"auth_limit": 3}, {"per_key_limit": 0}])
def test_limits_waf_refuses_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        waf.waf_rules(dataclasses.replace(WafSize(), **bad), metric_prefix="t")
