"""A student's data to its deletion: the catalog walk covers every student column, a purge
leaves no trace of the student anywhere a student can be named, a re-import does not bring them
back, and the access report finds single reads, list reads and archived months."""

from __future__ import annotations

import gzip
import json
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core import db
from app.core.student_records import covered_columns, student_reference_columns, student_tables
from app.jobs.archive import COLUMNS, export_csv
from app.jobs.importer import run_import
from app.jobs.lifecycle.purge import purge_on_request
from app.model.artifacts import backend_for
from tests.app.bundles import native_rows, write_native
from tests.app.conftest import District
from tests.app.helpers import auth, scalar

# Every table and partition of the schema.
_TABLES = (
    "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
    " AND relkind IN ('r', 'p') ORDER BY 1"
)


def _rls_and_logins(url: str) -> list[Any]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT 'table', relname, relrowsecurity::text, relforcerowsecurity::text FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
            " UNION ALL SELECT 'policy', tablename, policyname, qual FROM pg_policies"
            " UNION ALL SELECT 'role', rolname, rolcanlogin::text, rolbypassrls::text"
            " FROM pg_roles WHERE rolname LIKE 'ssp_%' ORDER BY 1, 2, 3"
        ).fetchall()


def test_every_column_naming_a_student_is_covered_by_the_catalog_walk(
    untrained_district: District,
) -> None:
    """A migration adding a table with a student column without a foreign key to students
    must add it to NO_FK_COLUMNS: otherwise a purge would leave its rows behind."""
    with psycopg.connect(untrained_district.url, autocommit=True) as conn:
        covered = covered_columns(student_tables(conn))
        named = student_reference_columns(conn)
        assert named - covered == set()
        # The test can fail: a new table naming students without a key is found uncovered.
        conn.execute("CREATE TABLE notes_probe (id int, student_id bigint)")
        assert ("notes_probe", "student_id") in student_reference_columns(conn) - covered_columns(
            student_tables(conn)
        )
        conn.execute("DROP TABLE notes_probe")


def _traces(url: str, student: int) -> dict[str, int]:
    """Rows naming `student` in every column that can hold a student reference, and in the
    audit log's list reads (as the superuser, who sees every row)."""
    found: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        columns = covered_columns(student_tables(conn)) | student_reference_columns(conn)
        for table, column in sorted(columns):
            row = conn.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text = %s', (str(student),)
            ).fetchone()
            if row and row[0]:
                found[f"{table}.{column}"] = int(row[0])
        row = conn.execute(
            "SELECT count(*) FROM audit_log WHERE detail -> 'student_ids' @> %s::jsonb",
            (json.dumps([student]),),
        ).fetchone()
        if row and row[0]:
            found["audit_log.detail"] = int(row[0])
        row = conn.execute(
            "SELECT count(*) FROM student_features WHERE student_id = %s", (student,)
        ).fetchone()
        if row and row[0]:
            found["student_features"] = int(row[0])
    return found


def test_a_purge_leaves_no_trace_of_the_student_and_keeps_security_unchanged(
    fresh_district: District,
) -> None:
    d = fresh_district
    settings = d.settings
    with TestClient(create_app(settings)) as api:
        page = api.get("/v1/schools/1/at-risk?limit=5", headers=auth(d.keys["district1"]))
        assert page.status_code == 200, page.text
        student = page.json()["items"][0]["student_id"]
        assert api.get(f"/v1/students/{student}/risk", headers=auth(d.keys["school1"])).is_success
    cache = redis.Redis.from_url(str(settings.redis_url))
    assert list(cache.scan_iter(match=f"{settings.cache_prefix}:risk:*:{student}"))
    with psycopg.connect(d.url, autocommit=True) as conn:
        conn.execute(  # a rescoring message and an event for the student too
            "INSERT INTO event_queue (school_id, student_id) VALUES (1, %s)", (student,)
        )
        others = conn.execute("SELECT count(*) FROM students").fetchone()
    before = _traces(d.url, student)
    assert {"students.id", "risk_scores.student_id", "attendance.student_id"} <= set(before)
    assert {"audit_log.student_id", "audit_log.detail", "event_queue.student_id"} <= set(before)
    security = _rls_and_logins(d.url)

    # As the purge Job runs it: the purge login, not the master.
    as_purger = d.settings.model_copy(update={"database_url": d.login_url("ssp_purger")})
    result = purge_on_request(as_purger, str(student), "parent request 2026-12-07", ["v1"])

    assert _traces(d.url, student) == {}
    assert _rls_and_logins(d.url) == security
    assert result.rows["students"] == 1 and result.rows["attendance"] > 0
    assert result.cache_keys_dropped >= 1
    assert not list(cache.scan_iter(match=f"{settings.cache_prefix}:risk:*:{student}"))
    with psycopg.connect(d.url, autocommit=True) as conn:
        after = conn.execute("SELECT count(*) FROM students").fetchone()
        record = conn.execute(
            "SELECT detail FROM audit_log WHERE action = 'purge_request'"
        ).fetchone()
        tomb = conn.execute("SELECT reason, models_retrained_in FROM student_tombstones").fetchall()
    assert others is not None and after is not None and after[0] == others[0] - 1
    assert record is not None and record[0]["requested_by"] == "parent request 2026-12-07"
    assert record[0]["rows_deleted"]["students"] == 1 and "next training run" in record[0]["models"]
    assert tomb == [("request", None)]
    assert result.summary()["models"]["trained_on_them"] == ["v1"]


@pytest.mark.parametrize("with_redis", [False, True], ids=["in-process cache", "redis"])
def test_a_purged_students_cached_answer_is_never_served(
    fresh_district: District, with_redis: bool
) -> None:
    """Without Redis each API process caches answers itself and no purge reaches it; with
    Redis, an answer's fill queued before the purge can land after it (put back here by hand).
    Either way the hit's audit row finds no student: nothing is recorded, the answer is
    forgotten and the request is a 404."""
    d = fresh_district
    settings = d.settings.model_copy(
        update={"redis_url": d.settings.redis_url if with_redis else None}
    )
    key = auth(d.keys["school1"])
    with TestClient(create_app(settings)) as api:
        page = api.get("/v1/schools/1/at-risk?limit=1", headers=auth(d.keys["district1"]))
        student = page.json()["items"][0]["student_id"]
        url = f"/v1/students/{student}/risk"
        assert api.get(url, headers=key).headers["X-Cache"] == "miss"
        assert api.get(url, headers=key).headers["X-Cache"] == "hit"
        if with_redis:
            cache = redis.Redis.from_url(str(settings.redis_url))
            (name,) = cache.scan_iter(match=f"{settings.cache_prefix}:risk:*:{student}")
            late_fill = cache.get(name)
        purge_on_request(d.owner, str(student), "parent request", [])
        if with_redis:
            assert cache.get(name) is None  # dropped by the purge
            cache.set(name, late_fill or b"", ex=900)

        gone = api.get(url, headers=key)

        assert gone.status_code == 404, gone.text
        assert gone.json()["detail"] == f"student {student} not found"
        if with_redis:
            assert cache.get(name) is None  # forgotten
        assert api.get(url, headers=key).status_code == 404
    reads = scalar(d.url, "SELECT count(*) FROM audit_log WHERE student_id = %s", (student,))
    assert reads == 0  # the purge pseudonymised the earlier ones; none was added after it


def test_a_reimport_skips_a_purged_student_unless_readmitted(
    untrained_district: District, tmp_path: Path
) -> None:
    d = untrained_district
    bundle = write_native(tmp_path / "night", native_rows(schools=1, students=6, days=3, exams=1))
    assert run_import(d.importer, str(bundle), progress=False).written
    purge_on_request(d.owner, "SCH-1-ST-0", "district request", [])

    again = run_import(d.importer, str(bundle), progress=False)

    assert again.written and again.skipped_purged["students.csv"] == 1
    assert again.skipped_purged["attendance.csv"] == 3
    with psycopg.connect(d.url, autocommit=True) as conn:
        gone = conn.execute("SELECT count(*) FROM students WHERE sourced_id = 'SCH-1-ST-0'")
        assert gone.fetchone() == (0,)
    back = run_import(d.importer, str(bundle), progress=False, readmit_purged=True)
    assert back.written and back.skipped_purged == {}
    with psycopg.connect(d.url, autocommit=True) as conn:
        found = conn.execute("SELECT count(*) FROM students WHERE sourced_id = 'SCH-1-ST-0'")
        assert found.fetchone() == (1,)


def test_the_access_report_finds_single_reads_list_reads_and_archived_months(
    fresh_district: District, capsys: Any
) -> None:
    d = fresh_district
    with TestClient(create_app(d.settings)) as api:
        page = api.get("/v1/schools/1/at-risk?limit=3", headers=auth(d.keys["school1"]))
        student = page.json()["items"][0]["student_id"]
        assert api.get(f"/v1/students/{student}/risk", headers=auth(d.keys["district1"])).is_success
    # A month archived before: the export the archive job writes (app/jobs/archive.py).
    listed = {"student_ids": [student]}
    archived = [
        (7, "2025-01-15 10:00:00+00", 1, 1, student, "read_student_risk", "{}"),
        (8, "2025-01-16 10:00:00+00", 2, 1, None, "read_at_risk_list", json.dumps(listed)),
        (9, "2025-01-17 10:00:00+00", 2, 1, student + 1, "read_student_risk", "{}"),
    ]  # fmt: skip
    backend_for(d.archiver.archive_store_url).write(
        "audit_log/2025/audit_log_p2025_01.csv.gz", export_csv(archived)
    )
    assert COLUMNS[4] == "student_id"

    code = _run_report(d, student, capsys)

    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    kinds = {(r["what"], r["source"] == "live") for r in rows}
    assert ("single read", True) in kinds and ("list", True) in kinds
    assert ("single read", False) in kinds and ("list", False) in kinds
    assert all(r["occurred_at"] for r in rows) and len(rows) == 4
    live_single = next(r for r in rows if r["what"] == "single read" and r["source"] == "live")
    assert live_single["key_name"] == "district 1" and live_single["key_class"] == "interactive"
    archived_list = next(r for r in rows if r["what"] == "list" and r["source"] != "live")
    assert archived_list["key_name"] == "school 2" and date.fromisoformat(
        archived_list["occurred_at"][:10]
    )
    # The Job's way: the report into the district's store, only a summary on stdout (its log).
    from app.cli.main import build_parser, run

    out = d.tmp_root / "reports"
    argv = ["access-report", "--student", str(student), "--format", "csv", "--output", str(out)]
    assert run(build_parser().parse_args(argv), d.archiver) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"student": student, "accesses": 4, "written": f"access-report-{student}.csv"}
    written = (out / summary["written"]).read_text().splitlines()
    assert written[0].startswith("occurred_at,what") and len(written) == 5


def _run_report(d: District, student: int, capsys: Any) -> int:
    from app.cli.main import build_parser, run

    capsys.readouterr()
    args = build_parser().parse_args(
        ["access-report", "--student", str(student), "--format", "json"]
    )
    return run(args, d.archiver)


def test_the_api_login_cannot_delete_and_the_report_hides_other_tenants(
    fresh_district: District,
) -> None:
    with psycopg.connect(fresh_district.login_url("ssp_api"), autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(_TABLES).fetchall()]
        assert {"students", "audit_log", "student_tombstones", "risk_scores"} <= set(tables)
        for table in tables:
            for right in ("DELETE", "TRUNCATE"):
                row = conn.execute("SELECT has_table_privilege(%s, %s)", (table, right)).fetchone()
                assert row == (False,), (table, right)
        for statement in (
            "DELETE FROM students",
            "DELETE FROM audit_log",
            "TRUNCATE risk_scores",
            "UPDATE audit_log SET student_id = NULL",
        ):
            with pytest.raises(psycopg.Error, match=r"permission denied|does not exist"):
                conn.execute(statement)
        # No tenant set: the report function shows the API nothing.
        assert conn.execute("SELECT count(*) FROM student_accesses('1')").fetchone() == (0,)
    _ = gzip  # the archive format is gzip'd CSV


def test_the_purge_login_may_delete_student_records_only_and_reads_no_content(
    untrained_district: District,
) -> None:
    d = untrained_district
    with psycopg.connect(d.url, autocommit=True) as conn:
        tables = {t.table for t in student_tables(conn)}
    with psycopg.connect(d.login_url("ssp_purger"), autocommit=True) as conn:
        for table in sorted(tables):
            row = conn.execute("SELECT has_table_privilege(%s, 'DELETE')", (table,)).fetchone()
            assert row == (True,), table
        others = [r[0] for r in conn.execute(_TABLES).fetchall()]
        for table in sorted(set(others) - tables):
            row = conn.execute(
                "SELECT has_table_privilege(%s, 'DELETE') OR has_table_privilege(%s, 'TRUNCATE')",
                (table, table),
            ).fetchone()
            assert row == (False,), table
        for statement in (
            "SELECT risk FROM risk_scores",  # a record's content
            "SELECT marks_obtained FROM marks",
            "SELECT first_name FROM students",
            "SELECT key_hash FROM api_clients",
            "DELETE FROM api_clients",
            "DELETE FROM schools",
            "TRUNCATE students",
            "INSERT INTO audit_log (action) VALUES ('read_student_risk')",
            "ALTER TABLE students NO FORCE ROW LEVEL SECURITY",
        ):
            with pytest.raises(psycopg.Error, match=r"permission denied|violates row-level|owner"):
                conn.execute(statement)
        # Every school's key columns are visible to it (its policies), FORCE notwithstanding.
        row = conn.execute("SELECT count(DISTINCT school_id) FROM students").fetchone()
        assert row is not None and row[0] == 5


def test_a_table_a_later_migration_adds_is_deletable_by_the_purge_login(
    untrained_district: District,
) -> None:
    d = untrained_district
    with psycopg.connect(d.master_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE student_notes_later (id bigint PRIMARY KEY,"
            " student_id bigint NOT NULL REFERENCES students (id))"
        )
    try:
        with psycopg.connect(d.login_url("ssp_purger"), autocommit=True) as conn:
            query = "SELECT has_table_privilege('student_notes_later', 'DELETE')"
            assert conn.execute(query).fetchone() == (False,)

            db.migrate(d.owner)
            assert conn.execute(query).fetchone() == (True,)
    finally:
        with psycopg.connect(d.master_url, autocommit=True) as conn:
            conn.execute("DROP TABLE student_notes_later")


def test_the_api_access_report_is_for_the_districts_own_staff(district: District) -> None:
    with TestClient(create_app(district.settings)) as api:
        page = api.get("/v1/schools/1/at-risk?limit=2", headers=auth(district.keys["school1"]))
        student = page.json()["items"][0]["student_id"]
        url = f"/v1/students/{student}/accesses"
        mine = api.get(url, headers=auth(district.keys["district1"]))
        assert mine.status_code == 200, mine.text
        body = mine.json()
        assert body["student_id"] == student
        assert {"list"} <= {r["what"] for r in body["accesses"]}
        # It says where the live audit log begins and that archived months are not in it.
        with psycopg.connect(district.url, autocommit=True) as conn:
            oldest = conn.execute(
                "SELECT min(relname) FROM pg_class WHERE relname ~ '^audit_log_p[0-9_]+$'"
            ).fetchone()
        assert oldest is not None
        assert body["live_since"].startswith(f"{oldest[0][11:15]}-{oldest[0][16:18]}-01")
        assert body["archived_months"].startswith("not included")
        assert "access-report" in body["archived_months"]
        as_csv = api.get(f"{url}?format=csv", headers=auth(district.keys["district1"]))
        assert as_csv.text.splitlines()[0].startswith("occurred_at,what,action")
        assert as_csv.headers["Audit-Live-Since"] == body["live_since"]
        assert as_csv.headers["Audit-Archived-Months"] == "not-included"
        # Another district's key, and a school's key, get nothing.
        other = api.get(url, headers=auth(district.keys["district2"]))
        assert other.status_code == 404
        assert api.get(url, headers=auth(district.keys["school1"])).status_code == 403
    with psycopg.connect(district.url, autocommit=True) as conn:
        audited = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'read_access_report'"
            " AND student_id = %s",
            (student,),
        ).fetchone()
    assert audited is not None and audited[0] == 2


def test_the_next_training_run_retrains_without_the_purged_student(
    fresh_district: District,
) -> None:
    from app.model.training import run_training

    d = fresh_district
    with psycopg.connect(d.url, autocommit=True) as conn:
        row = conn.execute("SELECT min(id) FROM students WHERE school_id = 1").fetchone()
    assert row is not None
    purge_on_request(d.owner, str(row[0]), "parent request", [])

    result = run_training(d.trainer)

    with psycopg.connect(d.url, autocommit=True) as conn:
        stamped = conn.execute("SELECT models_retrained_in FROM student_tombstones").fetchone()
    assert stamped is not None
    # Stamped with this run when no scope kept an older model; pending otherwise.
    assert stamped[0] == (None if result.kept else result.version)
