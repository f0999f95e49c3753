"""Row-level security: a tenant's transaction sees only its schools, whatever the query says."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from app.core.db import Database, Tenant
from tests.app.conftest import District
from tests.app.helpers import SyncDatabase, scalar


@pytest.fixture(scope="module")
def database(district: District) -> Iterator[SyncDatabase]:
    database = SyncDatabase(district.settings)
    yield database
    database.close()


def rows(database: SyncDatabase, tenant: Tenant | None, query: str) -> list[dict[str, object]]:
    return database.fetch(tenant, query)


def test_school_tenant_sees_only_its_rows(database: SyncDatabase, district: District) -> None:
    tenant = Tenant(school_id=1)
    assert rows(database, tenant, "SELECT DISTINCT school_id FROM students") == [{"school_id": 1}]
    assert rows(database, tenant, "SELECT count(*) AS n FROM students WHERE school_id = 2") == [
        {"n": 0}
    ]
    own = scalar(district.url, "SELECT count(*) FROM attendance WHERE school_id = 1")
    assert rows(database, tenant, "SELECT count(*) AS n FROM attendance") == [{"n": own}]
    assert rows(database, tenant, "SELECT DISTINCT school_id FROM student_features_visible") == [
        {"school_id": 1}
    ]
    assert rows(database, tenant, "SELECT id FROM schools") == [{"id": 1}]


def test_district_tenant_sees_its_schools_only(database: SyncDatabase) -> None:
    found = rows(database, Tenant(district_id=1), "SELECT DISTINCT school_id FROM marks ORDER BY 1")
    assert [r["school_id"] for r in found] == [1, 2, 3, 4]
    other = rows(database, Tenant(district_id=2), "SELECT DISTINCT school_id FROM marks")
    assert other == [{"school_id": 5}]


def test_no_tenant_sees_nothing_and_setting_does_not_leak(database: SyncDatabase) -> None:
    assert rows(database, None, "SELECT count(*) AS n FROM students") == [{"n": 0}]
    # The pool reuses connections: a tenant set in one transaction is gone in the next.
    rows(database, Tenant(school_id=1), "SELECT 1 AS x")
    assert rows(database, None, "SELECT count(*) AS n FROM students") == [{"n": 0}]


def test_app_role_cannot_read_raw_views_or_audit_log(database: SyncDatabase) -> None:
    for query in ("SELECT * FROM student_features", "SELECT * FROM audit_log"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rows(database, Tenant(school_id=1), query)


def test_login_role_in_app_role_cannot_escape(district: District) -> None:
    """A real login that is only a member of ssp_app: RESET ROLE does not lift the policy."""
    with psycopg.connect(district.url, autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS rls_probe")
        owner.execute("CREATE ROLE rls_probe LOGIN PASSWORD 'rls-probe-password' IN ROLE ssp_app")
    try:
        url = make_conninfo(district.url, user="rls_probe", password="rls-probe-password")
        with psycopg.connect(url) as conn:
            conn.execute("RESET ROLE")
            conn.execute("SELECT set_config('app.school_id', '2', true)")
            schools = conn.execute("SELECT DISTINCT school_id FROM students").fetchall()
            assert schools == [(2,)]
            hidden = conn.execute("SELECT count(*) FROM students WHERE school_id <> 2").fetchone()
            assert hidden == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("UPDATE students SET is_active = false")
    finally:
        with psycopg.connect(district.url, autocommit=True) as owner:
            owner.execute("DROP ROLE rls_probe")


def test_reads_go_to_the_replica_url_and_writes_to_the_primary(district: District) -> None:
    # Same server, but the replica URL carries a setting the primary URL does not.
    replica_url = make_conninfo(
        district.settings.database_url or "", options="-c statement_timeout=12345"
    )
    split = SyncDatabase(district.settings_with(database_read_url=replica_url))
    try:
        assert split.db.replica is not split.db.primary
        query = (
            "SELECT current_setting('statement_timeout') AS timeout,"
            " current_setting('application_name') AS app"
        )
        assert rows(split, None, query) == [{"timeout": "12345ms", "app": "ssp-api-replica"}]
        (written,) = split.fetch(None, query, write=True)
        assert written["timeout"] != "12345ms"
        assert written["app"] == "ssp-api-primary"  # pg_stat_activity tells the pools apart
    finally:
        split.close()
    same = Database(district.settings)
    assert same.replica is same.primary  # no DATABASE_READ_URL: reads use the primary


def audit_insert(database: SyncDatabase, tenant: Tenant, school_id: int | None) -> None:
    database.fetch(
        tenant,
        "INSERT INTO audit_log (client_id, school_id, student_id, action)"
        " VALUES (1, %s, NULL, 'probe')",
        (school_id,),
        write=True,
    )


def test_tenant_cannot_write_audit_rows_for_other_schools(database: SyncDatabase) -> None:
    audit_insert(database, Tenant(school_id=1), 1)
    audit_insert(database, Tenant(school_id=1), None)  # rows about no school stay allowed
    audit_insert(database, Tenant(district_id=1), 3)  # a school of its district
    for tenant, other in ((Tenant(school_id=1), 2), (Tenant(district_id=1), 5)):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            audit_insert(database, tenant, other)
