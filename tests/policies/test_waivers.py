"""Per-resource waivers: a current waiver silences one policy on one resource, in the pack
and in ``tools.policy``; an expired one reports the violation again and fails the stack; a
malformed file stops the pack with a message naming the entry."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import StackValidationArgs

from policies.rules import ALL_POLICIES, waivers
from tests.policies.helpers import policy, stack_resource, urn
from tools.harness import Options, Resource
from tools.policy import check_resources, waived

KEY = "aws:kms/key:Key"
KEY_URN = urn(KEY, "data-key")
NAMES = [p.name for p in ALL_POLICIES]
TODAY = datetime.datetime.now(datetime.UTC).date()


def entry(**changes: Any) -> dict[str, Any]:
    return {
        "urn": KEY_URN,
        "policy": "kms-key-rotation",
        "reason": "an asymmetric signing key is imported next month",
        "expires": TODAY + datetime.timedelta(days=30),
        "approved_by": "security@district.example",
        **changes,
    }


def write(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(yaml.safe_dump({"waivers": list(entries)}))
    return path


@pytest.fixture
def installed() -> Iterator[None]:
    before = waivers.active()
    yield
    waivers.install(before)


def key() -> Resource:
    inputs = {"policy": "{}", "enableKeyRotation": False}
    return Resource(KEY, "data-key", KEY_URN, "key-id", "", True, inputs, frozenset(), Options())


def rotation_findings() -> list[str]:
    found = check_resources([key()], policies=[policy("kms-key-rotation"), waivers.EXPIRY])
    return [f"{v.policy}: {v.message}" for v in found]


def test_the_repository_waivers_file_is_valid() -> None:
    waivers.load(waivers.WAIVERS_FILE, NAMES)


def test_a_current_waiver_silences_the_policy_on_that_resource(
    tmp_path: Path, installed: None
) -> None:
    assert [f for f in rotation_findings() if f.startswith("kms-key-rotation")]
    waivers.install(waivers.load(write(tmp_path, entry()), NAMES))
    assert rotation_findings() == []
    other = entry(urn=urn(KEY, "other-key"))
    waivers.install(waivers.load(write(tmp_path, other), NAMES))
    assert [f for f in rotation_findings() if f.startswith("kms-key-rotation")]


def test_an_expired_waiver_fails_with_a_clear_message(tmp_path: Path, installed: None) -> None:
    expired = entry(expires=TODAY - datetime.timedelta(days=1))
    waivers.install(waivers.load(write(tmp_path, expired), NAMES))
    findings = rotation_findings()
    assert any(f.startswith("kms-key-rotation") and "has expired" in f for f in findings)
    [stale] = [f for f in findings if f.startswith("waivers-not-expired")]
    assert f"expires {expired['expires'].isoformat()}" in stale
    assert "renew it in policies/waivers.yaml" in stale
    assert "EXPIRED" in waived("tier3")


def test_a_waiver_expiring_today_still_applies(tmp_path: Path, installed: None) -> None:
    waivers.install(waivers.load(write(tmp_path, entry(expires=TODAY)), NAMES))
    assert rotation_findings() == []


def test_the_waiver_applies_to_stack_policies_by_the_reported_urn(installed: None) -> None:
    rule = policy("s3-bucket-controls-present")
    bucket = stack_resource("aws:s3/bucketV2:BucketV2", "models", {"bucket": "models"})
    found: list[str | None] = []
    rule.validate(
        StackValidationArgs([bucket], {}),
        lambda message, at=None: found.append(at),
    )
    assert bucket.urn in found
    waiver = waivers.Waiver(bucket.urn, rule.name, "r", TODAY, "a")
    waivers.install([waiver])
    found.clear()
    rule.validate(
        StackValidationArgs([bucket], {}),
        lambda message, at=None: found.append(at),
    )
    assert bucket.urn not in found


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (entry(policy="kms-key-rotaton"), "the pack has no policy 'kms-key-rotaton'"),
        ({k: v for k, v in entry().items() if k != "approved_by"}, "missing approved_by"),
        (entry(owner="me"), "unknown fields owner"),
        (entry(urn="data-key"), "urn 'data-key' is not a resource URN"),
        (entry(expires="next month"), "expires 'next month' is not a date"),
        (entry(reason=""), "missing reason"),
        ("kms-key-rotation", "a waiver is a mapping"),
    ],
)
def test_a_malformed_waiver_stops_the_pack(tmp_path: Path, bad: Any, message: str) -> None:
    with pytest.raises(ValueError, match="waiver 2: " + message.replace("(", r"\(")):
        waivers.load(write(tmp_path, entry(urn=urn(KEY, "x")), bad), NAMES)


def test_two_waivers_of_one_policy_on_one_resource_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a second waiver of kms-key-rotation"):
        waivers.load(write(tmp_path, entry(), entry(reason="again")), NAMES)


def test_the_file_holds_a_list_of_waivers(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text("- urn: x\n")
    with pytest.raises(ValueError, match="one key, 'waivers'"):
        waivers.load(path, NAMES)
