"""The customer-managed keys' policy document."""

from __future__ import annotations

import json

from components.kms import key_policy


def test_key_policy_keeps_account_admin_and_adds_extras() -> None:
    extra = {"Sid": "CloudFrontDecrypts", "Effect": "Allow", "Action": "kms:Decrypt"}
    doc = json.loads(key_policy("123456789012", [extra]))
    assert doc["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert doc["Statement"][1] == extra
