"""Least privilege (migration 0007): the migrations run as an RDS-like master that is not a
superuser, and the API, the trainer and the archiver each log in as their own role, which can
do what its commands need and nothing more, whatever SQL runs on its connection. Each escape
below was possible before: the API logged in as the master and only `SET ROLE ssp_app`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr, ValidationError

from app.core import db
from app.core.db import SET_TENANT, Tenant
from app.core.logins import (
    API_LOGIN,
    ARCHIVER_LOGIN,
    TRAINER_LOGIN,
    WORKER_LOGIN,
    WORKLOAD_LOGINS,
    password_setting,
)
from app.core.settings import Settings
from tests.app.conftest import District, create_master, start_pgserver
from tests.app.helpers import (
    LOGIN_PASSWORDS,
    MASTER,
    MASTER_PASSWORD,
    PEPPER,
    SyncDatabase,
    scalar,
)

ROOT = Path(__file__).resolve().parents[2]
LOGINS = tuple(WORKLOAD_LOGINS.values())
FEATURES_OWNER = "ssp_features_owner"
TENANT_LOOKUP = "ssp_tenant_lookup"
ALERT_COUNTER = "ssp_alert_counter"
AUDIT_READER = "ssp_audit_reader"
# NOLOGIN owners of one object each
GROUP_ROLES = (FEATURES_OWNER, TENANT_LOOKUP, ALERT_COUNTER, AUDIT_READER)
# Every table with row-level security; migration 0007 forces it on each.
RLS_TABLES = (
    "classrooms",
    "staff",
    "students",
    "attendance",
    "exams",
    "marks",
    "behaviour_incidents",
    "interventions",
    "alerts",
    "risk_scores",
    "risk_history",
    "schools",
    "model_versions",
    "audit_log",
    "student_events",
    "event_queue",
    "student_demographics",
)
OWN_PASSWORDS = os.environ.get("DATABASE_URL") is None  # our pgserver checks passwords


def current_partition() -> str:
    return f"audit_log_p{datetime.now(UTC):%Y_%m}"


@pytest.fixture(scope="module")
def api(district: District) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(district.login_url(API_LOGIN), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def trainer(district: District) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(district.login_url(TRAINER_LOGIN), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def archiver(district: District) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(district.login_url(ARCHIVER_LOGIN), autocommit=True) as conn:
        yield conn


def refused(conn: psycopg.Connection[Any], query: str, params: tuple[Any, ...] = ()) -> None:
    """`query` fails for lack of privilege (42501), in a transaction rolled back after."""
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute(query, params)


def as_tenant(conn: psycopg.Connection[Any], school_id: int, query: str) -> list[tuple[Any, ...]]:
    """`query` in a transaction whose tenant is `school_id`, set as Database.fetch does."""
    with conn.transaction():
        conn.execute("SELECT set_config('app.school_id', %s, true)", (str(school_id),))
        return conn.execute(query).fetchall()


def test_migrations_ran_as_a_master_that_is_not_a_superuser(district: District) -> None:
    row = scalar(
        district.url,
        "SELECT ARRAY[rolsuper, rolcreaterole, rolcreatedb, rolbypassrls] FROM pg_roles"
        " WHERE rolname = %s",
        (MASTER,),
    )
    assert row == [False, True, True, False]
    owners = scalar(
        district.url,
        "SELECT array_agg(DISTINCT relowner::regrole::text) FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace"
        " AND relname NOT IN ('student_features', 'student_indicators')"
        " AND relname NOT LIKE 'student_features_%%' AND relname NOT LIKE 'student_indicators_%%'",
    )
    assert owners == [MASTER]
    # The feature views' own NOLOGIN owner, so that REFRESH reads every school as it alone.
    matview_owner = "SELECT relowner::regrole::text FROM pg_class WHERE relname = %s"
    for view in ("student_features", "student_indicators"):
        assert scalar(district.url, matview_owner, (view,)) == FEATURES_OWNER
    functions = scalar(
        district.url,
        "SELECT array_agg(DISTINCT ARRAY[proname::text, proowner::regrole::text]) FROM pg_proc"
        " WHERE pronamespace = 'public'::regnamespace AND proowner <> %s::regrole",
        (MASTER,),
    )
    # Each reads as its owner alone: the schools, (live features) the facts, and (the access
    # report) the audit log.
    assert functions == [
        ["api_key_names", AUDIT_READER],
        ["app_visible_schools", TENANT_LOOKUP],
        ["overdue_alert_counts", ALERT_COUNTER],
        ["refresh_live_features", FEATURES_OWNER],
        ["student_accesses", AUDIT_READER],
    ]


@pytest.mark.parametrize("login", [*LOGINS, *GROUP_ROLES])
def test_logins_have_no_power_and_own_nothing(district: District, login: str) -> None:
    attributes = scalar(
        district.url,
        "SELECT ARRAY[rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb,"
        " rolreplication] FROM pg_roles WHERE rolname = %s",
        (login,),
    )
    assert attributes == [login not in GROUP_ROLES, False, False, False, False, False]
    if login not in GROUP_ROLES:  # owns nothing in any database of the server
        owned = scalar(
            district.url,
            "SELECT count(*) FROM pg_shdepend WHERE deptype = 'o' AND refobjid = %s::regrole",
            (login,),
        )
        assert owned == 0
    memberships = scalar(
        district.url,
        "SELECT coalesce(array_agg(ARRAY[roleid::regrole::text, inherit_option::text,"
        " set_option::text]), '{}') FROM pg_auth_members WHERE member = %s::regrole",
        (login,),
    )
    # The API inherits the policies' role but cannot SET ROLE to it; the others are in none.
    assert memberships == ([["ssp_app", "true", "false"]] if login == API_LOGIN else [])
    for privileged in (MASTER, *GROUP_ROLES):
        member = "SELECT pg_has_role(%s, %s, 'MEMBER')"
        assert scalar(district.url, member, (login, privileged)) is (login == privileged)


@pytest.mark.skipif(not OWN_PASSWORDS, reason="the server's pg_hba.conf is not the tests'")
def test_logins_need_the_password_migrate_set(district: District) -> None:
    for login in LOGINS:
        for wrong in ("", "not-the-password"):
            with pytest.raises(psycopg.OperationalError, match="password"):
                psycopg.connect(make_conninfo(district.master_url, user=login, password=wrong))
        with psycopg.connect(district.login_url(login)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (login,)
        # Stored as a SCRAM verifier, computed by the client: the plain text never left it.
        stored = "SELECT rolpassword FROM pg_authid WHERE rolname = %s"
        assert scalar(district.url, stored, (login,)).startswith("SCRAM-SHA-256$4096:")


def test_api_reset_role_is_harmless(api: psycopg.Connection[Any]) -> None:
    """The old escape: RESET ROLE went back to the master and read 1,500 of 1,500 students."""
    api.execute("RESET ROLE")
    assert api.execute("SELECT current_user, session_user").fetchone() == (API_LOGIN, API_LOGIN)
    assert api.execute("SELECT count(*) FROM students").fetchone() == (0,)  # no tenant
    assert as_tenant(api, 1, "SELECT count(*) FROM students WHERE school_id <> 1") == [(0,)]
    assert as_tenant(api, 1, "SELECT count(*) FROM students") == [(150,)]


def test_api_cannot_set_role_to_a_privileged_role(
    api: psycopg.Connection[Any], district: District
) -> None:
    table_owner = scalar(district.url, "SELECT relowner::regrole::text FROM pg_class"
                         " WHERE oid = 'students'::regclass")  # fmt: skip
    superusers = scalar(
        district.url, "SELECT array_agg(rolname::text) FROM pg_roles WHERE rolsuper"
    )
    for role in {table_owner, MASTER, *GROUP_ROLES, "ssp_app", TRAINER_LOGIN, ARCHIVER_LOGIN,
                 *superusers}:  # fmt: skip
        refused(api, sql.SQL("SET ROLE {}").format(sql.Identifier(role)).as_string(api))
        refused(api, "SELECT set_config('role', %s, false)", (role,))
    assert api.execute("SELECT current_user").fetchone() == (API_LOGIN,)


def test_api_audit_log_is_insert_only(api: psycopg.Connection[Any]) -> None:
    with api.transaction():
        api.execute("SELECT set_config('app.school_id', '1', true)")
        api.execute("INSERT INTO audit_log (client_id, school_id, action) VALUES (1, 1, 'probe')")
    part = current_partition()
    for query in (
        "SELECT count(*) FROM audit_log",
        "DELETE FROM audit_log",
        "UPDATE audit_log SET action = 'forged'",
        "TRUNCATE audit_log",
        f"SELECT count(*) FROM {part}",
        f"DELETE FROM {part}",
        f"INSERT INTO {part} (occurred_at, action) VALUES (now(), 'probe')",
        f"DROP TABLE {part}",
        f"ALTER TABLE audit_log DETACH PARTITION {part}",
        "ALTER TABLE audit_log DISABLE ROW LEVEL SECURITY",
        "SELECT audit_log_drop_partition(%s, 0)",
        "SELECT audit_log_lock_partition(%s)",
        "SELECT audit_log_create_partitions('2030-01-01', '2030-02-01')",
        "SELECT audit_log_ensure_partitions('2030-01-01', '2030-02-01')",
    ):
        refused(api, query, (part,) if "%s" in query else ())


def test_api_tenant_cannot_reach_other_schools(api: psycopg.Connection[Any]) -> None:
    for table in ("students", "attendance", "marks", "risk_scores", "alerts",
                  "student_features_visible"):  # fmt: skip
        assert as_tenant(api, 1, f"SELECT count(*) FROM {table} WHERE school_id = 2") == [(0,)]
    assert as_tenant(api, 1, "SELECT count(*) FROM schools WHERE id <> 1") == [(0,)]
    for query in (
        "SELECT count(*) FROM student_features",  # the raw view holds every school
        "UPDATE students SET is_active = false",
        "INSERT INTO students (school_id, first_name, last_name, grade, enrolled_on)"
        " VALUES (2, 'x', 'y', 9, now())",
        "DELETE FROM risk_scores",
        "UPDATE api_clients SET school_id = 2",
        "ALTER TABLE students NO FORCE ROW LEVEL SECURITY",
        "ALTER TABLE students DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON students",
        "REFRESH MATERIALIZED VIEW student_features",
        "SELECT refresh_student_features()",
        "SELECT analyze_risk_scores()",
        "CREATE TABLE stash (x int)",
        "CREATE FUNCTION app_visible_schools(x int) RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ):
        refused(api, query)
    # Turning row security off does not lift it: the query is refused instead.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), api.transaction():
        api.execute("SET LOCAL row_security = off")
        api.execute("SELECT count(*) FROM students")


def test_tenant_setting_is_trusted_only_as_far_as_the_code_that_sets_it(
    api: psycopg.Connection[Any], district: District
) -> None:
    """What the logins do and do not protect. The policies read the tenant from the
    app.school_id / app.district_id settings, and any SQL on a connection can set those
    (set_config): the database trusts them, as it must (one pool serves every tenant). So they
    are set in one place, Database.fetch, from the API key's tenant, transaction-scoped,
    and request data reaches SQL only as bound parameters: an injection that could run
    set_config could read another school's rows. The least-privileged login bounds what such
    SQL can do beyond that: no other tenant's writes, no audit log read or tampering, no owner,
    no other workload's privileges, nothing that outlives the connection (all tested above)."""
    api.execute("SELECT set_config('app.school_id', '2', false)")  # session-wide, not local
    try:
        assert api.execute("SELECT DISTINCT school_id FROM students").fetchall() == [(2,)]
    finally:
        api.execute("RESET app.school_id")
    # A session-wide value left on a pooled connection does not decide the next tenant
    # transaction: Database.fetch sets both settings itself, transaction-scoped.
    database = SyncDatabase(district.settings_with(db_pool_min=1, db_pool_max=1))
    try:
        database.fetch(None, "SELECT set_config('app.school_id', '2', false)")
        for tenant, schools in ((Tenant(school_id=1), [1]), (Tenant(district_id=2), [5])):
            found = database.fetch(tenant, "SELECT DISTINCT school_id FROM students ORDER BY 1")
            assert [r["school_id"] for r in found] == schools
    finally:
        database.close()


def test_the_tenant_lookup_answers_each_setting(
    api: psycopg.Connection[Any], district: District
) -> None:
    """app_visible_schools(), which every tenant policy calls: a school key's school, a
    district key's schools, and none without a tenant or for a district that does not exist
    (migration 0025 rewrote it in PL/pgSQL with these answers)."""
    with psycopg.connect(district.url) as owner:
        rows = owner.execute("SELECT id FROM schools WHERE district_id = 2 ORDER BY id").fetchall()
    district_2 = [int(r[0]) for r in rows]
    assert district_2
    for school, district_id, schools in (
        ("1", "", [1]),
        ("3", "1", [3]),  # a school key's school only, whatever the district says
        ("", "2", district_2),
        ("", "", []),
        ("", "999999", []),
    ):
        with api.transaction():
            api.execute(SET_TENANT, (school, district_id))
            row = api.execute("SELECT app_visible_schools()").fetchone()
        assert row is not None and sorted(row[0]) == schools, (school, district_id)


def test_trainer_reads_features_and_writes_scores_only(
    trainer: psycopg.Connection[Any], district: District
) -> None:
    # The district fixture trained as ssp_trainer (run_training), so did test_training.
    everyone = scalar(district.url, "SELECT count(*) FROM students")
    assert trainer.execute("SELECT count(*) FROM student_features").fetchone() == (everyone,)
    active = scalar(district.url, "SELECT count(*) FROM students WHERE is_active")
    scored = trainer.execute("SELECT count(*) FROM risk_scores WHERE generation = 1").fetchone()
    assert scored == (active,)  # every school's: the trainer scores them all
    trainer.execute("SELECT refresh_student_features()")
    with trainer.transaction():  # what promotion does
        trainer.execute(
            "UPDATE model_versions SET promoted_generation = promoted_generation"
            " WHERE scope = 'district'"
        )
    with trainer.transaction():  # what a run that promotes nothing does: scores in place
        trainer.execute("UPDATE risk_scores SET risk = risk, scored_at = now() WHERE false")
    part = current_partition()
    for query in (
        "SELECT count(*) FROM api_clients",
        "SELECT key_hash FROM api_clients",
        "UPDATE api_clients SET is_active = false",
        "SELECT count(*) FROM students",
        "SELECT count(*) FROM attendance",
        "INSERT INTO students (school_id, first_name, last_name, grade, enrolled_on)"
        " VALUES (1, 'x', 'y', 9, now())",
        "SELECT count(*) FROM audit_log",
        "DELETE FROM audit_log",
        "INSERT INTO audit_log (action) VALUES ('forged')",
        f"DELETE FROM {part}",
        "UPDATE model_versions SET metrics = '{}'",
        "DELETE FROM model_versions",
        "TRUNCATE risk_scores",
        "UPDATE risk_scores SET generation = generation + 1",
        "DROP TABLE risk_scores",
        "ALTER TABLE risk_scores NO FORCE ROW LEVEL SECURITY",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY student_features",
        "SELECT audit_log_drop_partition('audit_log_p2020_01', 0)",
        "SELECT audit_log_ensure_current_partitions()",
        "CREATE TABLE stash (x int)",
        f'SET ROLE "{FEATURES_OWNER}"',
        f'SET ROLE "{TENANT_LOOKUP}"',
        f'SET ROLE "{MASTER}"',
        f'SET ROLE "{API_LOGIN}"',
    ):
        refused(trainer, query)


def test_refresh_features_command_runs_as_the_trainer(district: District) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DB_")},
        "DATABASE_URL": district.trainer.database_url or "",
        "API_KEY_PEPPER": PEPPER,
        "ENVIRONMENT": "test",
        "DB_WAIT_SECONDS": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "app", "refresh-features"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def seed_old_audit_month(district: District) -> str:
    """Two rows in June 2026 (past retention whenever the tests run after it), as the master."""
    with psycopg.connect(district.master_url, autocommit=True) as conn:
        conn.execute("SELECT audit_log_ensure_partitions('2026-06-01', '2026-06-01')")
        for _ in range(2):
            conn.execute(
                "INSERT INTO audit_log (occurred_at, action) VALUES ('2026-06-10', 'probe')"
            )
    return "audit_log_p2026_06"


def test_archiver_deletes_only_through_the_archival_functions(
    untrained_district: District,
) -> None:
    old = seed_old_audit_month(untrained_district)
    part = current_partition()
    with psycopg.connect(untrained_district.login_url(ARCHIVER_LOGIN), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (2,)
        for query in (
            "DELETE FROM audit_log",
            "UPDATE audit_log SET action = 'forged'",
            "TRUNCATE audit_log",
            "INSERT INTO audit_log (action) VALUES ('forged')",
            f"DELETE FROM {old}",
            f"SELECT count(*) FROM {old}",
            f"DROP TABLE {old}",
            f"ALTER TABLE audit_log DETACH PARTITION {old}",
            "SELECT count(*) FROM api_clients",
            "SELECT count(*) FROM students",
            "SELECT count(*) FROM student_features",
            "SELECT refresh_student_features()",
            "SELECT audit_log_ensure_partitions('2030-01-01', '2030-02-01')",
            "CREATE TABLE stash (x int)",
            f'SET ROLE "{MASTER}"',
        ):
            refused(conn, query)
        # The functions act on old audit-log partitions only, and drop only what was counted.
        for query, params, message in (
            ("SELECT audit_log_drop_partition(%s, 0)", ("students",), "not a partition"),
            ("SELECT audit_log_drop_partition(%s, 0)", ("audit_log",), "not a partition"),
            ("SELECT audit_log_drop_partition(%s, 0)", (part,), "has not ended"),
            ("SELECT audit_log_lock_partition(%s)", ("api_clients",), "not a partition"),
            ("SELECT audit_log_drop_partition(%s, 1)", (old,), "holds 2 rows, not 1"),
            (
                "SELECT audit_log_create_partitions('2000-01-01', '2100-01-01')",
                (),
                "at most 24 months",
            ),
        ):
            with pytest.raises(psycopg.errors.RaiseException, match=message):
                conn.execute(query, params)
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (2,)
        with conn.transaction():
            conn.execute("SELECT audit_log_lock_partition(%s)", (old,))
            conn.execute("SELECT audit_log_drop_partition(%s, 2)", (old,))
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
        assert conn.execute("SELECT to_regclass(%s)", (old,)).fetchone() == (None,)


def test_force_row_level_security_filters_the_owner_too(district: District) -> None:
    forced = scalar(
        district.url,
        "SELECT array_agg(relname::text ORDER BY relname) FROM pg_class"
        " WHERE relforcerowsecurity AND relnamespace = 'public'::regnamespace",
    )
    assert forced == sorted(RLS_TABLES)
    with psycopg.connect(district.master_url, autocommit=True) as master:
        # A workload misconfigured with the master's URL sees no school's rows (the master is
        # a member of ssp_app since 0005, so it gets the tenant's rows once one is set)...
        assert master.execute("SELECT count(*) FROM students").fetchone() == (0,)
        assert as_tenant(master, 1, "SELECT count(DISTINCT school_id) FROM students") == [(1,)]
        # ...and is not let in by the refresh policy, which holds only inside REFRESH.
        assert master.execute("SELECT count(*) FROM marks").fetchone() == (0,)


def test_migration_0007_is_rerunnable(untrained_district: District) -> None:
    text = (db.MIGRATIONS_DIR / "0007_workload_logins.sql").read_text()
    assert "PASSWORD '" not in text.upper()  # static SQL: passwords are set by `migrate`
    # 0014 replaced the column 0007 lets the trainer update: re-run against today's schema.
    assert text.count("UPDATE (promoted)") == 2  # the comment and the grant
    text = text.replace("UPDATE (promoted)", "UPDATE (promoted_generation)")
    with psycopg.connect(untrained_district.master_url) as conn:
        conn.execute(text.encode())  # roles, grants, policies, functions all exist already
        conn.commit()
    assert db.migrate(untrained_district.owner) == []
    with psycopg.connect(untrained_district.login_url(API_LOGIN), autocommit=True) as api:
        assert as_tenant(api, 1, "SELECT count(DISTINCT school_id) FROM students") == [(1,)]
        refused(api, "SELECT count(*) FROM audit_log")


def test_migrate_sends_only_a_scram_verifier(
    untrained_district: District, caplog: pytest.LogCaptureFixture
) -> None:
    d = untrained_district
    none = d.owner.model_copy(
        update={password_setting(workload): None for workload in WORKLOAD_LOGINS}
    )
    with db.connect_owner(none, autocommit=True) as conn:
        assert db.set_login_passwords(conn, none) == []
    dbname = scalar(d.url, "SELECT current_database()")
    logged = OWN_PASSWORDS  # our pgserver's log is readable by its superuser
    if logged:
        with psycopg.connect(d.url, autocommit=True) as admin:
            admin.execute(sql.SQL("ALTER DATABASE {} SET log_statement = 'all'").format(
                sql.Identifier(dbname)))  # fmt: skip
        start = scalar(d.url, "SELECT (pg_stat_file('log')).size")
    try:
        with caplog.at_level(logging.DEBUG), db.connect_owner(d.owner, autocommit=True) as conn:
            assert db.set_login_passwords(conn, d.owner) == list(LOGINS)
    finally:
        if logged:
            with psycopg.connect(d.url, autocommit=True) as admin:
                admin.execute(sql.SQL("ALTER DATABASE {} RESET log_statement").format(
                    sql.Identifier(dbname)))  # fmt: skip
    for password in LOGIN_PASSWORDS.values():
        assert password not in caplog.text
    if logged:
        server_log = scalar(d.url, "SELECT pg_read_file('log', %s, 1000000)", (start,))
        assert 'ALTER ROLE "ssp_api" PASSWORD \'SCRAM-SHA-256$4096:' in server_log
        for password in LOGIN_PASSWORDS.values():
            assert password not in server_log


def test_without_passwords_the_logins_stay_passwordless(tmp_path: Path) -> None:
    """A server of its own: the roles are the server's, and the shared one has passwords."""
    server = start_pgserver()
    try:
        admin = str(server.get_uri())
        create_master(admin)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE ssp OWNER "{MASTER}"')
        master = make_conninfo(admin, dbname="ssp", user=MASTER, password=MASTER_PASSWORD)
        settings = Settings(environment="test", database_url=master, api_key_pepper=PEPPER)
        assert "0007_workload_logins" in db.migrate(settings)
        stored = scalar(
            admin,
            "SELECT array_agg(rolpassword IS NULL) FROM pg_authid WHERE rolname = ANY(%s)",
            (list(LOGINS),),
        )
        assert stored == [True] * len(LOGINS)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(make_conninfo(master, user=API_LOGIN, password="anything"))
        # And once a password is given, the next migrate sets it.
        given = settings.model_copy(update={"db_api_password": SecretStr("x" * 20)})
        assert db.migrate(given) == []
        with psycopg.connect(make_conninfo(master, user=API_LOGIN, password="x" * 20)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (API_LOGIN,)
    finally:
        server.cleanup()


def test_login_password_settings() -> None:
    assert Settings(db_api_password="").db_api_password is None  # an empty variable: unset
    given = Settings(db_trainer_password="a-long-enough-password")
    assert given.db_trainer_password is not None
    assert "a-long-enough-password" not in repr(given)
    for weak in ("changeme", "too-short-pw"):
        with pytest.raises(ValidationError, match="DB_ARCHIVER_PASSWORD must be a real") as err:
            Settings(db_archiver_password=weak)
        assert weak not in str(err.value)  # a refused secret is named, never echoed


def test_worker_consumes_the_queue_and_writes_scores_and_alerts_only(district: District) -> None:
    with psycopg.connect(district.login_url(WORKER_LOGIN), autocommit=True) as worker:
        with worker.transaction(force_rollback=True):  # what the worker does
            worker.execute("SELECT count(*) FROM refresh_live_features(ARRAY[1, 2]::bigint[])")
            worker.execute("SELECT count(*) FROM event_queue")
            worker.execute("UPDATE event_queue SET receives = receives WHERE false")
            worker.execute("SELECT risk FROM risk_scores WHERE student_id = 1 FOR UPDATE")
            worker.execute(
                "INSERT INTO alerts (school_id, student_id, status, risk)"
                " VALUES (1, 1, 'open', 0.5)"
            )
        for query in (
            "SELECT count(*) FROM students",
            "SELECT count(*) FROM attendance",
            "INSERT INTO attendance (school_id, student_id, date, status)"
            " VALUES (1, 1, '2025-01-01', 'absent')",
            "SELECT count(*) FROM student_features",
            "SELECT count(*) FROM student_features_live",
            "SELECT count(*) FROM student_events",
            "INSERT INTO event_queue (school_id, student_id) VALUES (1, 1)",
            "DELETE FROM risk_scores",
            "DELETE FROM alerts",
            "UPDATE alerts SET status = 'resolved'",
            "SELECT count(*) FROM audit_log",
            "SELECT count(*) FROM api_clients",
            "SELECT count(*) FROM model_versions",
            "SELECT refresh_student_features()",
            f'SET ROLE "{FEATURES_OWNER}"',
        ):
            refused(worker, query)
