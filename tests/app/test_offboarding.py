"""A district leaves: its data is exported in the import layout, then every row, object and
object version of it is destroyed, other districts untouched, with a signed report; an
interrupted offboarding resumes to completion."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from moto import mock_aws
from pydantic import SecretStr

from app.jobs.lifecycle import offboard as offboarding
from app.jobs.lifecycle.offboard import Offboarding, offboard
from tests.app.conftest import District
from tests.app.test_district_move import contents

KEY = "report-signing-key-for-tests"


def _buckets() -> Any:
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in ("drop", "models-2"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for night in range(3):  # three nights' exports: three versions of each file
        for district in (1, 2):
            s3.put_object(
                Bucket="drop", Key=f"districts/{district}/students.csv", Body=b"n%d" % night
            )
    s3.put_object(Bucket="models-2", Key="versions/v1/model.pkl", Body=b"m")
    s3.delete_object(Bucket="models-2", Key="versions/v1/model.pkl")  # a delete marker too
    s3.put_object(Bucket="models-2", Key="versions/v2/model.pkl", Body=b"m")
    return s3


def _versions(s3: Any, bucket: str, prefix: str) -> int:
    page = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))


def _job(tmp: Path) -> Offboarding:
    return Offboarding(
        district=2,
        export_to=str(tmp / "export"),
        drop_prefix="s3://drop/districts/2",
        model_stores=("s3://models-2/versions",),
        audit_policy="destroy",
    )


def test_offboarding_exports_then_destroys_everything_of_the_district_only(
    untrained_district: District, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = untrained_district
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    settings = d.owner.model_copy(update={"destruction_report_key": SecretStr(KEY)})
    other_before, mine_before = contents(d.url, 1), contents(d.url, 2)
    assert mine_before["students"][0] == 60
    with mock_aws():
        s3 = _buckets()
        calls = {"n": 0}
        real = offboarding._destroy

        def interrupted(url: str | None) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("the Job's pod was evicted")
            return real(url)

        monkeypatch.setattr(offboarding, "_destroy", interrupted)
        with pytest.raises(RuntimeError, match="evicted"):
            offboard(settings, _job(tmp_path), d.master_url)
        # The export and the database step were done: the rows are gone, the objects not yet.
        assert contents(d.url, 2)["students"][0] == 0
        assert _versions(s3, "drop", "districts/2/") == 3

        signed = offboard(settings, _job(tmp_path), d.master_url)

        assert _versions(s3, "drop", "districts/2/") == 0
        assert _versions(s3, "drop", "districts/1/") == 3
        assert _versions(s3, "models-2", "") == 0
    assert all(rows == 0 for rows, _ in contents(d.url, 2).values())
    assert contents(d.url, 1) == other_before
    report = signed["report"]
    body = json.dumps(report, sort_keys=True, separators=(",", ":")).encode()
    assert signed["hmac_sha256"] == hmac.new(KEY.encode(), body, hashlib.sha256).hexdigest()
    tables = report["database"]["tables"]
    assert {t: (v["rows"], v["deleted"]) for t, v in tables.items()} == {
        t: (rows, rows) for t, (rows, _) in mine_before.items()
    }
    assert report["drop_bucket"] == {"prefix": "s3://drop/districts/2", "objects": 1, "versions": 3}
    assert report["models"]["s3://models-2/versions"]["versions"] == 3
    # The export is the import layout, every student in it.
    students = (tmp_path / "export" / "students.csv").read_text()
    rows = list(csv.reader(io.StringIO(students)))
    assert rows[0][:3] == ["sourced_id", "school_sourced_id", "first_name"] and len(rows) == 61
    assert report["export"]["files"]["students.csv"]["rows"] == 60
    with psycopg.connect(d.url, autocommit=True) as conn:
        stored = conn.execute("SELECT report FROM district_offboardings").fetchone()
    assert stored is not None and stored[0] == signed


def test_the_job_templates_empty_options_mean_none_and_a_whole_bucket_is_refused_first(
    untrained_district: District, tmp_path: Path
) -> None:
    from app.cli.main import build_parser, run

    d = untrained_district
    owner = d.owner.model_copy(update={"destruction_report_key": SecretStr(KEY)})
    argv = ["offboard-district", "--district", "2", "--export-to", str(tmp_path / "x")]
    whole = build_parser().parse_args([*argv, "--drop-prefix", "s3://drop/", "--model-store", ""])
    assert run(whole, owner) == 2
    with psycopg.connect(d.url, autocommit=True) as conn:  # refused before any step
        assert conn.execute("SELECT count(*) FROM district_offboardings").fetchone() == (0,)
    empty = build_parser().parse_args([*argv, "--drop-prefix", "", "--model-store", ""])
    assert run(empty, owner) == 0
    with psycopg.connect(d.url, autocommit=True) as conn:
        steps = conn.execute("SELECT steps FROM district_offboardings").fetchone()
    assert steps is not None and steps[0]["drop_bucket"] is None and steps[0]["models"] == {}
