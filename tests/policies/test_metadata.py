"""Every policy carries the metadata the ecosystem reads (severity, remediation, controls) on
its native fields; ``tools.policy --format sarif`` is valid SARIF 2.1.0 carrying it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
import yaml
from pulumi_policy import ResourceValidationPolicy, Severity

from policies.rules import ALL_POLICIES, metadata
from tools import sarif
from tools.harness import ROOT
from tools.policy import Violation, main

SCHEMA = json.loads((ROOT / "tests" / "fixtures" / "sarif-schema-2.1.0.json").read_text())
NIST_ID = re.compile(r"^NIST SP 800-53 Rev\. 5 [A-Z]{2}-\d{1,2}(\(\d{1,2}\))?$")
# The CIS AWS Foundations v3.0.0 recommendations the pack enforces a part of; no other
# number may be cited (see policies/controls.yaml).
CIS_CITED = {"1.16", "2.1.1", "2.1.4", "2.3.1", "2.3.3", "3.6", "5.2", "5.3", "5.6"}
FERPA = {"FERPA 34 CFR 99.31(a)(1)(ii)", "FERPA 34 CFR 99.32"}


@pytest.mark.parametrize("policy", ALL_POLICIES, ids=lambda p: p.name)
def test_every_policy_has_severity_remediation_and_controls(
    policy: ResourceValidationPolicy,
) -> None:
    assert isinstance(policy.severity, Severity)
    assert policy.remediation_steps and len(policy.remediation_steps) > 20
    assert policy.tags, f"{policy.name} supports no control"
    for tag in policy.tags:
        if tag.startswith("CIS "):
            assert tag.removeprefix(f"{metadata.CIS} ") in CIS_CITED, tag
        elif tag.startswith("FERPA"):
            assert tag in FERPA, tag
        else:
            assert NIST_ID.match(tag), tag
    assert policy.framework is not None
    assert (policy.framework.name, policy.framework.version) == metadata.NIST


def test_the_controls_file_and_the_pack_cannot_drift_apart(tmp_path: Path) -> None:
    table = yaml.safe_load(metadata.CONTROLS_FILE.read_text())
    dropped = dict(table)
    del dropped["rds-multi-az"]
    path = tmp_path / "controls.yaml"
    path.write_text(yaml.safe_dump(dropped))
    with pytest.raises(ValueError, match="no entry for rds-multi-az"):
        metadata.apply(ALL_POLICIES, path)
    path.write_text(yaml.safe_dump({**table, "rds-no-such-rule": table["rds-multi-az"]}))
    with pytest.raises(ValueError, match="entries naming no policy: rds-no-such-rule"):
        metadata.apply(ALL_POLICIES, path)
    path.write_text(
        yaml.safe_dump({**table, "rds-multi-az": {**table["rds-multi-az"], "severity": "severe"}})
    )
    with pytest.raises(ValueError, match="'rds-multi-az' severity 'severe' is not one of"):
        metadata.apply(ALL_POLICIES, path)


def test_sarif_is_valid_and_carries_the_metadata() -> None:
    urn = "urn:pulumi:tier3::student-success::aws:kms/key:Key::data-key"
    findings = {
        "tier3": [
            Violation(
                "kms-key-rotation", "mandatory", "no rotation", urn, "aws:kms/key:Key", "data-key"
            ),
            Violation("waf-logging", "advisory", "no logging", None, None, None),
        ]
    }
    log = sarif.document(findings)
    jsonschema_rs.validate(SCHEMA, log)
    [run] = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [p.name for p in ALL_POLICIES]
    rotation = next(r for r in rules if r["id"] == "kms-key-rotation")
    assert rotation["properties"]["security-severity"] == "5.5"
    assert "CIS AWS Foundations v3.0.0 3.6" in rotation["properties"]["tags"]
    assert "enable_key_rotation=True" in rotation["help"]["text"]
    first, second = run["results"]
    assert rules[first["ruleIndex"]]["id"] == "kms-key-rotation" and first["level"] == "error"
    location = first["locations"][0]
    assert location["logicalLocations"][0]["fullyQualifiedName"] == urn
    assert location["physicalLocation"]["artifactLocation"]["uri"] == "Pulumi.tier3.yaml"
    assert second["level"] == "warning"


def test_a_document_that_breaks_the_schema_is_caught() -> None:
    """The schema check is not vacuous: a result without its message fails it."""
    log = sarif.document({"tier3": [Violation("waf-logging", "advisory", "x", None, None, None)]})
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema_rs.ValidationError):
        jsonschema_rs.validate(SCHEMA, log)


def test_the_cli_prints_sarif_for_a_stack(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["dev", "--format", "sarif"])
    log = json.loads(capsys.readouterr().out)
    jsonschema_rs.validate(SCHEMA, log)
    assert code == (1 if any(r["level"] == "error" for r in log["runs"][0]["results"]) else 0)
