"""Audit-log archival: export, re-read and count, and only then drop; nothing is lost."""

from __future__ import annotations

import csv
import gzip
import io
from datetime import UTC, date, datetime

import boto3
import psycopg
import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient
from moto import mock_aws

from app.api.main import create_app
from app.core.db import migrate
from app.jobs.archive import ArchiveMismatchError, export_csv, run_archive
from app.model.artifacts import LocalBackend, backend_for
from tests.app.conftest import District
from tests.app.helpers import auth, scalar

TODAY = date(2026, 11, 23)


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


def seed_audit(url: str) -> dict[str, int]:
    """Rows in June and July (past retention) and in October and November (kept), written as
    the master (`url`), so that the partitions are the schema owner's as in production."""
    counts = {"2026-06-15": 7, "2026-07-03": 5, "2026-10-10": 4, "2026-11-20": 3}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT audit_log_ensure_partitions('2026-06-01', '2026-11-01')")
        for day, n in counts.items():
            for i in range(n):
                conn.execute(
                    "INSERT INTO audit_log (occurred_at, client_id, student_id, action, detail)"
                    " VALUES (%s, 1, %s, 'read_student_risk', %s)",
                    (f"{day} 10:00:00+00", i + 1, '{"cache": "miss"}'),
                )
    return counts


def partitions(url: str) -> set[str]:
    return set(
        scalar(
            url,
            "SELECT coalesce(array_agg(c.relname::text), '{}') FROM pg_inherits i"
            " JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit_log'::regclass",
        )
    )


def read_export(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(gzip.decompress(data).decode())))


def test_archive_exports_then_drops_old_partitions(untrained_district: District) -> None:
    url = untrained_district.url
    seed_audit(untrained_district.master_url)
    june_ids = scalar(url, "SELECT array_agg(id ORDER BY id) FROM audit_log_p2026_06")
    done = run_archive(untrained_district.archiver, today=TODAY)  # cutoff: 2026-08-25
    assert [(d.partition, d.rows) for d in done] == [
        ("audit_log_p2026_06", 7),
        ("audit_log_p2026_07", 5),
    ]
    assert "audit_log_p2026_06" not in partitions(url)
    assert "audit_log_p2026_08" in partitions(url)  # ends after the cutoff: kept
    assert scalar(url, "SELECT count(*) FROM audit_log") == 4 + 3
    # Partitions up to two months ahead of "today" exist after a run.
    assert "audit_log_p2027_01" in partitions(url)

    store = LocalBackend(untrained_district.tmp_root / "archive")
    exported = read_export(store.read("audit_log/2026/audit_log_p2026_06.csv.gz") or b"")
    assert [int(r["id"]) for r in exported] == june_ids
    assert {r["action"] for r in exported} == {"read_student_risk"}
    assert exported[0]["detail"] == '{"cache": "miss"}'
    assert len(read_export(store.read("audit_log/2026/audit_log_p2026_07.csv.gz") or b"")) == 5
    assert run_archive(untrained_district.archiver, today=TODAY) == []  # nothing left to archive


class LossyBackend(LocalBackend):
    """Drops the last row of every export: archival must notice and keep the partition."""

    def write(self, key: str, data: bytes) -> None:
        rows = read_export(data)[:-1]
        super().write(key, export_csv([tuple(r.values()) for r in rows]))


def test_archive_keeps_partition_when_export_is_short(
    untrained_district: District, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = untrained_district.url
    seed_audit(untrained_district.master_url)
    monkeypatch.setattr(
        "app.jobs.archive.backend_for", lambda u: LossyBackend(untrained_district.tmp_root)
    )
    with pytest.raises(ArchiveMismatchError, match="database has 7 rows"):
        run_archive(untrained_district.archiver, today=TODAY)
    assert "audit_log_p2026_06" in partitions(url)
    assert scalar(url, "SELECT count(*) FROM audit_log_p2026_06") == 7


def test_archive_to_s3(untrained_district: District) -> None:
    seed_audit(untrained_district.master_url)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="ssp-archive")
        settings = untrained_district.archiver.model_copy(
            update={"archive_store_url": "s3://ssp-archive/audit"}
        )
        done = run_archive(settings, today=TODAY)
        assert [d.key for d in done] == [
            "audit_log/2026/audit_log_p2026_06.csv.gz",
            "audit_log/2026/audit_log_p2026_07.csv.gz",
        ]
        obj = boto3.client("s3", region_name="us-east-1").get_object(
            Bucket="ssp-archive", Key="audit/audit_log/2026/audit_log_p2026_06.csv.gz"
        )
        assert len(read_export(obj["Body"].read())) == 7


def drop_all_audit_partitions(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name in partitions(url):
            conn.execute(f'DROP TABLE "{name}"')


def current_month_partition() -> str:
    return f"audit_log_p{datetime.now(UTC):%Y_%m}"


def test_missing_audit_partition_is_503_and_startup_recreates_it(
    fresh_district: District,
) -> None:
    key = auth(fresh_district.keys["school1"])
    with TestClient(create_app(fresh_district.settings)) as api:
        assert api.get("/v1/students/1/risk", headers=key).status_code == 200
        drop_all_audit_partitions(fresh_district.url)
        for path in ("/v1/students/1/risk", "/v1/schools/1/at-risk"):
            resp = api.get(path, headers=key)
            assert resp.status_code == 503, resp.text  # never data it cannot audit
            assert resp.headers["Retry-After"] == "5"
            assert "student_id" not in resp.text
    # Startup of the next API process creates this month's and the next two months'.
    with TestClient(create_app(fresh_district.settings)) as api:
        assert current_month_partition() in partitions(fresh_district.url)
        assert len(partitions(fresh_district.url)) == 3
        assert api.get("/v1/students/1/risk", headers=key).status_code == 200


def test_migrate_creates_missing_audit_partitions(untrained_district: District) -> None:
    drop_all_audit_partitions(untrained_district.url)
    assert migrate(untrained_district.owner) == []  # nothing new to apply, still ensures
    assert current_month_partition() in partitions(untrained_district.url)
    assert len(partitions(untrained_district.url)) == 3


def test_risk_history_before_the_previous_school_year_is_archived_then_dropped(
    untrained_district: District,
) -> None:
    url = untrained_district.url
    kept_from = scalar(url, "SELECT risk_history_kept_from()")
    old_month = date(kept_from.year - 1, kept_from.month, 1)
    old_part = f"risk_history_p{old_month:%Y_%m}"
    kept_part = f"risk_history_p{kept_from:%Y_%m}"
    student = scalar(url, "SELECT min(id) FROM students WHERE school_id = 1")
    with psycopg.connect(untrained_district.master_url, autocommit=True) as conn:
        conn.execute("SELECT risk_history_ensure_partitions(%s, %s)", (old_month, old_month))
    with psycopg.connect(url, autocommit=True) as conn:
        for day in (old_month, kept_from):
            conn.execute(
                "INSERT INTO risk_history (student_id, school_id, day, risk, generation,"
                " model_version, reasons) VALUES (%s, 1, %s, 0.4, 1, 'v', '[]')",
                (student, day),
            )
    done = run_archive(untrained_district.archiver, today=TODAY)
    history = [d for d in done if d.partition.startswith("risk_history_")]
    assert [(d.partition, d.rows) for d in history] == [(old_part, 1)]
    names = set(scalar(url, "SELECT array_agg(c.relname::text) FROM pg_inherits i"
                            " JOIN pg_class c ON c.oid = i.inhrelid"
                            " WHERE i.inhparent = 'risk_history'::regclass"))  # fmt: skip
    assert old_part not in names and kept_part in names
    data = backend_for(untrained_district.archiver.archive_store_url).read(history[0].key)
    assert data is not None
    rows = read_export(data)
    assert [(r["student_id"], r["day"], r["reasons"]) for r in rows] == [
        (str(student), old_month.isoformat(), "[]")
    ]
    assert scalar(url, "SELECT count(*) FROM risk_history WHERE day = %s", (kept_from,)) == 1


def test_archive_to_an_object_locked_bucket_writes_locked_months(
    untrained_district: District,
) -> None:
    """The audit archive bucket has S3 Object Lock (components/storage.py): the job's writes
    work with it, and an archived month cannot be deleted by the archiver's credentials."""
    seed_audit(untrained_district.master_url)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="ssp-archive", ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket="ssp-archive",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}},
            },
        )
        settings = untrained_district.archiver.model_copy(
            update={"archive_store_url": "s3://ssp-archive/audit"}
        )
        done = run_archive(settings, today=TODAY)
        key = "audit/audit_log/2026/audit_log_p2026_06.csv.gz"
        assert len(done) == 2
        head = s3.head_object(Bucket="ssp-archive", Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        with pytest.raises(ClientError, match="AccessDenied"):
            s3.delete_object(Bucket="ssp-archive", Key=key, VersionId=head["VersionId"])
        assert len(read_export(s3.get_object(Bucket="ssp-archive", Key=key)["Body"].read())) == 7
