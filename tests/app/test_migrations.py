"""Migrations from an empty database: tables, indexes, partitions, feature view, policies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
from psycopg.conninfo import make_conninfo

from app.core import db
from app.core.logins import WORKLOAD_LOGINS
from app.core.settings import Settings
from tests.app.conftest import create_master, start_pgserver
from tests.app.helpers import MASTER, MASTER_PASSWORD, PEPPER, scalar

EXPECTED = [
    "0001_core",
    "0002_indexes",
    "0003_audit_log",
    "0004_student_features",
    "0005_row_level_security",
    "0006_audit_log_insert_policy",
    "0007_workload_logins",
    "0009_district_import",
    "0010_api_client_class",
    "0011_events",
    "0012_training_runs",
    "0013_rescore_in_place",
    "0014_promotion_generation",
    "0015_school_years_and_district_features",
    "0016_indicators",
    "0017_risk_history",
    "0018_alert_workflow",
    "0019_interventions",
    "0020_student_lifecycle",
    "0021_access_report",
    "0022_risk_baseline",
    "0023_purger_login",
    "0024_purger_rights_from_the_catalog_walk",
    "0025_tenant_lookup_in_plpgsql",
]


def test_migrate_from_empty_then_noop(make_database: Callable[[], str]) -> None:
    url = make_database()
    settings = Settings(environment="test", database_url=url, api_key_pepper=PEPPER)
    assert db.migrate(settings) == EXPECTED
    assert db.migrate(settings) == []  # idempotent: recorded in schema_migrations
    assert scalar(url, "SELECT array_agg(version ORDER BY version) FROM schema_migrations") == (
        EXPECTED
    )

    tables = set(
        scalar(url, "SELECT array_agg(tablename::text) FROM pg_tables WHERE schemaname = 'public'")
    )
    for table in (
        "districts",
        "schools",
        "classrooms",
        "students",
        "attendance",
        "exams",
        "marks",
        "behaviour_incidents",
        "interventions",
        "alerts",
        "staff",
        "api_clients",
        "model_versions",
        "risk_scores",
        "audit_log",
    ):
        assert table in tables, table

    # The audit log is range-partitioned by month, with this month and the next two created.
    assert (
        scalar(
            url,
            "SELECT partstrat FROM pg_partitioned_table WHERE partrelid = 'audit_log'::regclass",
        )
        == "r"
    )
    now = datetime.now(UTC)
    parts = set(
        scalar(
            url,
            "SELECT array_agg(c.relname::text) FROM pg_inherits i JOIN pg_class c"
            " ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_log'::regclass",
        )
    )
    assert f"audit_log_p{now:%Y_%m}" in parts
    assert len(parts) == 3

    indexes = dict(
        scalar(
            url,
            "SELECT array_agg(ARRAY[indexname::text, indexdef])"
            " FROM pg_indexes WHERE schemaname = 'public'",
        )
    )
    assert "(assigned_to, status, created_at)" in indexes["interventions_assigned_status_idx"]
    assert "(assigned_to, status, alert_date)" in indexes["alerts_assigned_status_idx"]
    assert "UNIQUE" in indexes["attendance_student_date_idx"]
    assert "(student_id, date)" in indexes["attendance_student_date_idx"]
    assert "WHERE is_active" in indexes["students_active_idx"]
    assert "WHERE (status = 'open'::text)" in indexes["alerts_open_idx"]
    # The feature view has the unique index that REFRESH ... CONCURRENTLY needs.
    assert "UNIQUE" in indexes["student_features_pk"]
    with db.connect_owner(settings, autocommit=True) as conn:
        db.refresh_features(conn, None)

    rls = dict(
        scalar(
            url,
            "SELECT array_agg(ARRAY[relname::text, relrowsecurity::text]) FROM pg_class"
            " WHERE relname IN ('students', 'attendance', 'risk_scores', 'schools')",
        )
    )
    assert rls == {
        "students": "true",
        "attendance": "true",
        "risk_scores": "true",
        "schools": "true",
    }
    # 0005's twelve, 0011's on the events' keys and the queue, 0017's on the risk history.
    assert (
        scalar(url, "SELECT count(*) FROM pg_policies WHERE policyname = 'tenant_isolation'") == 15
    )


def test_migrations_create_exactly_the_workload_logins() -> None:
    """A server of its own: roles belong to the server, and the shared one's tests add some."""
    server = start_pgserver()
    try:
        admin = str(server.get_uri())
        create_master(admin)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE ssp OWNER "{MASTER}"')
        master = make_conninfo(admin, dbname="ssp", user=MASTER, password=MASTER_PASSWORD)
        db.migrate(Settings(environment="test", database_url=master, api_key_pepper=PEPPER))
        logins = scalar(
            admin,
            "SELECT array_agg(rolname::text ORDER BY rolname) FROM pg_roles"
            " WHERE rolcanlogin AND NOT rolsuper AND rolname <> %s",
            (MASTER,),
        )
        assert logins == sorted(WORKLOAD_LOGINS.values())
    finally:
        server.cleanup()
