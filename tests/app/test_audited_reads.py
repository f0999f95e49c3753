"""The audited read path: each read of student data writes its own audit row in the same
statement, in one round trip, under row-level security; no data without its audit row, no
audit row for what the tenant cannot see; prepared statements only where configured."""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import pq
from psycopg.conninfo import make_conninfo

from app.api import queries
from app.api.main import create_app
from app.core.db import Tenant
from tests.app.conftest import District
from tests.app.helpers import SyncDatabase, auth, failing_audit, scalar


def students_of(d: District, school_id: int) -> list[int]:
    found = scalar(
        d.url, "SELECT array_agg(id ORDER BY id) FROM students WHERE school_id = %s", (school_id,)
    )
    return list(found)


def audit_rows(d: District, where: str, params: tuple[Any, ...]) -> int:
    return int(scalar(d.url, f"SELECT count(*) FROM audit_log WHERE {where}", params))


@pytest.fixture
def api(district: District) -> Iterator[TestClient]:
    settings = district.settings_with(cache_prefix=f"audited-{secrets.token_hex(4)}")
    with TestClient(create_app(settings)) as client:
        yield client


def test_no_student_data_without_its_audit_row(
    api: TestClient, district: District, caplog: pytest.LogCaptureFixture
) -> None:
    student = students_of(district, 1)[3]
    key = auth(district.keys["school1"])
    before = audit_rows(district, "student_id = %s", (student,))
    with failing_audit(district.url, student, "read_student_risk"):
        with caplog.at_level(logging.ERROR, logger="app.api"):
            refused = api.get(f"/v1/students/{student}/risk", headers=key)
        assert refused.status_code == 503
        assert refused.json() == {"detail": "audit log unavailable, retry later"}
        assert "features" not in refused.text
        # The log says why, never which row: the error's DETAIL names the student.
        [failure] = [r for r in caplog.records if r.getMessage() == "audited read failed"]
        assert failure.__dict__["error"] == "RaiseException P0001: audit refused by the test"
        # Nothing of the failed read was kept (one statement, one transaction).
        assert audit_rows(district, "student_id = %s", (student,)) == before
        other = students_of(district, 1)[4]
        assert api.get(f"/v1/students/{other}/risk", headers=key).status_code == 200
    served = api.get(f"/v1/students/{student}/risk", headers=key)
    assert served.status_code == 200 and served.headers["X-Cache"] == "miss"
    assert audit_rows(district, "student_id = %s AND detail->>'cache' = 'miss'", (student,)) == 1
    assert audit_rows(district, "student_id = %s", (student,)) == before + 1
    # A cached answer is audited too, and refused as well when its audit row cannot be written.
    with failing_audit(district.url, student, "read_student_risk"):
        assert api.get(f"/v1/students/{student}/risk", headers=key).status_code == 503
    hit = api.get(f"/v1/students/{student}/risk", headers=key)
    assert hit.headers["X-Cache"] == "hit"
    assert audit_rows(district, "student_id = %s AND detail->>'cache' = 'hit'", (student,)) == 1


def test_a_district_keys_reads_of_a_student_cached_or_not_are_audited_under_the_students_school(
    api: TestClient, district: District
) -> None:
    student = students_of(district, 5)[0]
    where = "action = 'read_student_risk' AND student_id = %s AND school_id = 5"
    before = audit_rows(district, where, (student,))
    key = auth(district.keys["district2"])
    served = [api.get(f"/v1/students/{student}/risk", headers=key)]
    while served[-1].headers["X-Cache"] != "hit" and len(served) < 50:  # cached after a miss
        time.sleep(0.05)
        served.append(api.get(f"/v1/students/{student}/risk", headers=key))
    assert served[-1].headers["X-Cache"] == "hit"
    assert {r.status_code for r in served} == {200}
    assert audit_rows(district, where, (student,)) == before + len(served)


def test_with_a_read_replica_the_audited_reads_run_on_the_primary(district: District) -> None:
    """A replica refuses writes (here: read-only transactions on the same database), and a
    read of student data writes its audit row: it must run on the primary."""
    primary = district.settings.database_url or ""
    replica = make_conninfo(primary, options="-c default_transaction_read_only=on")
    settings = district.settings_with(
        database_read_url=replica, cache_prefix=f"replica-{secrets.token_hex(4)}"
    )
    student = students_of(district, 1)[6]
    before = audit_rows(district, "student_id = %s", (student,))
    with TestClient(create_app(settings)) as api:
        key = auth(district.keys["school1"])
        read = api.get(f"/v1/students/{student}/risk", headers=key)
        assert read.status_code == 200, read.text
        page = api.get("/v1/schools/1/at-risk?limit=2", headers=key)
        assert page.status_code == 200, page.text
    assert audit_rows(district, "student_id = %s", (student,)) == before + 1


def test_another_tenants_student_is_neither_returned_nor_audited(
    api: TestClient, district: District
) -> None:
    for key, student in (
        ("school1", students_of(district, 2)[0]),  # another school of the same district
        ("district1", students_of(district, 5)[0]),  # a school of another district
    ):
        before = audit_rows(district, "student_id = %s", (student,))
        resp = api.get(f"/v1/students/{student}/risk", headers=auth(district.keys[key]))
        assert resp.status_code == 404, key
        assert resp.json() == {"detail": f"student {student} not found"}
        assert audit_rows(district, "student_id = %s", (student,)) == before, key


def test_at_risk_page_is_audited_by_its_own_statement(api: TestClient, district: District) -> None:
    key = auth(district.keys["district1"])
    params = {"min_risk": 0.05, "limit": 7}
    where = "action = 'read_at_risk_list' AND school_id = %s"
    before = audit_rows(district, where, (3,))
    page = api.get("/v1/schools/3/at-risk", params=params, headers=key)
    assert page.status_code == 200 and page.headers["X-Cache"] == "miss"
    shown = [item["student_id"] for item in page.json()["items"]]
    assert len(shown) == 7
    assert audit_rows(district, where, (3,)) == before + 1
    logged = scalar(
        district.url,
        f"SELECT detail->'student_ids' FROM audit_log WHERE {where} ORDER BY id DESC LIMIT 1",
        (3,),
    )
    assert logged == shown  # exactly the students returned, in their order
    with failing_audit(district.url, None, "read_at_risk_list"):
        refused = api.get("/v1/schools/3/at-risk", params={"min_risk": 0.06}, headers=key)
        assert refused.status_code == 503
        assert "items" not in refused.text
        assert audit_rows(district, where, (3,)) == before + 1


def test_at_risk_page_of_an_unseen_school_is_refused_cached_or_not(
    api: TestClient, district: District
) -> None:
    params = {"min_risk": 0.07}
    where = "action = 'read_at_risk_list' AND school_id = 5"
    before = audit_rows(district, where, ())
    outsider = auth(district.keys["district1"])
    refused = api.get("/v1/schools/5/at-risk", params=params, headers=outsider)
    assert refused.status_code == 403
    assert refused.json() == {"detail": "school 5 is not in this key's district"}
    # Its own district caches the page; the outsider still gets no page and no audit row.
    owner = api.get(
        "/v1/schools/5/at-risk", params=params, headers=auth(district.keys["district2"])
    )
    assert owner.status_code == 200
    assert audit_rows(district, where, ()) == before + 1
    refused = api.get("/v1/schools/5/at-risk", params=params, headers=outsider)
    assert refused.status_code == 403
    assert audit_rows(district, where, ()) == before + 1
    models = api.get("/v1/schools/5/models", headers=outsider)
    assert models.status_code == 403
    assert models.json() == {"detail": "school 5 is not in this key's district"}


@pytest.fixture
def one_connection(district: District) -> Iterator[SyncDatabase]:
    database = SyncDatabase(district.settings_with(db_pool_min=1, db_pool_max=1))
    yield database
    database.close()


def traced(database: SyncDatabase, call: Callable[[], None], idle: bool = False) -> list[str]:
    """The protocol messages the one pooled connection exchanges during `call()`; with
    `idle`, the connection looks idle for long to the pool when `call()` starts."""
    pool = database.db.primary
    with tempfile.TemporaryDirectory() as tmp, open(Path(tmp) / "trace", "w") as out:

        async def trace(on: bool) -> None:
            async with pool.connection() as conn:
                if on:
                    conn.pgconn.trace(out.fileno())
                    conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
                else:
                    conn.pgconn.untrace()
            pool.used(conn)
            if on and idle:
                pool._last_used[conn] = 0.0

        database.run(trace(True))
        call()
        database.run(trace(False))
        return (Path(tmp) / "trace").read_text().splitlines()


def frontend(messages: list[str]) -> list[str]:
    """The kinds of the messages the client sent (Parse, Bind, Sync, Query...)."""
    return [m.split("\t")[2].split()[0] for m in messages if m.startswith("F")]


def test_an_audited_read_is_one_round_trip_without_liveness_query(
    one_connection: SyncDatabase, district: District
) -> None:
    student = students_of(district, 1)[5]

    def read() -> None:
        rows = one_connection.fetch(
            Tenant(school_id=1), queries.STUDENT_FEATURES_AUDITED, (student, 1, "{}"), write=True
        )
        assert [r["student_id"] for r in rows] == [student]

    read()  # the connection is hot now
    messages = traced(one_connection, read)
    sent = frontend(messages)
    # set_config and the statement, each Parse/Bind/Describe/Execute, then ONE Sync: no
    # BEGIN, no COMMIT, no check of the connection before use.
    assert sent.count("Sync") == 1, messages
    assert "Query" not in sent
    assert sum("ReadyForQuery" in m for m in messages if m.startswith("B")) == 1
    assert not any("BEGIN" in m or "COMMIT" in m for m in messages)
    # A connection idle for longer is checked first (one empty query), then used.
    sent = frontend(traced(one_connection, read, idle=True))
    assert sent.count("Query") == 1 and sent.count("Sync") == 1


def test_a_failed_statement_leaves_nothing(
    one_connection: SyncDatabase, district: District
) -> None:
    """Everything up to the pipeline's sync is one implicit transaction."""
    action = f"probe-{secrets.token_hex(4)}"
    with pytest.raises(psycopg.errors.DivisionByZero):
        one_connection.fetch(
            Tenant(school_id=1),
            "WITH a AS (INSERT INTO audit_log (client_id, school_id, action)"
            " VALUES (1, 1, %s)) SELECT 1 / 0 AS x",
            (action,),
            write=True,
        )
    assert audit_rows(district, "action = %s", (action,)) == 0
    # The connection serves the next query, with no tenant left over.
    assert one_connection.fetch(None, "SELECT count(*) AS n FROM students") == [{"n": 0}]


@pytest.mark.parametrize(("threshold", "prepared"), [(None, False), (5, True)])
def test_statements_are_prepared_only_when_configured(
    district: District, threshold: int | None, prepared: bool
) -> None:
    database = SyncDatabase(
        district.settings_with(db_pool_min=1, db_pool_max=1, db_prepare_threshold=threshold)
    )
    try:
        for _ in range(7):
            database.fetch(Tenant(school_id=1), queries.STUDENT_FEATURES, (1,))
        (row,) = database.fetch(None, "SELECT count(*) AS n FROM pg_prepared_statements")
        assert (row["n"] > 0) is prepared
    finally:
        database.close()


def test_an_unseen_school_is_a_403_before_a_bad_cursor(api: TestClient, district: District) -> None:
    outsider = auth(district.keys["district1"])
    params = {"cursor": "not-a-cursor"}
    assert api.get("/v1/schools/5/at-risk", params=params, headers=outsider).status_code == 403
    assert api.get("/v1/schools/3/at-risk", params=params, headers=outsider).status_code == 422
