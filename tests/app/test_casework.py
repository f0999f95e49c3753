"""A student's casework through the API: the risk history, alerts acted on (acknowledge,
assign, resolve), interventions recorded and updated; every success and failure path, the
audit rows written with each, and what the API's login (ssp_api) can and cannot do to
another school's rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.rows import dict_row

from app.api import queries
from app.core.db import connect_as
from app.core.logins import API_LOGIN, TRAINER_LOGIN
from app.model import history
from app.model.artifacts import ModelStore
from app.model.outcomes import intervention_outcomes
from app.model.report_sections import interventions_section
from app.model.scoring import rescore_students
from tests.app.conftest import District
from tests.app.helpers import auth, scalar


def student_of(d: District, school_id: int, offset: int = 0) -> int:
    return int(
        scalar(d.url, "SELECT id FROM students WHERE school_id = %s ORDER BY id OFFSET %s LIMIT 1",
               (school_id, offset))
    )  # fmt: skip


def staff_of(d: District, school_id: int) -> int:
    return int(scalar(d.url, "SELECT min(id) FROM staff WHERE school_id = %s", (school_id,)))


def last_audit(d: District, action: str) -> tuple[Any, ...]:
    with psycopg.connect(d.url) as conn:
        row = conn.execute(
            "SELECT client_id, school_id, student_id, detail FROM audit_log WHERE action = %s"
            " ORDER BY id DESC LIMIT 1",
            (action,),
        ).fetchone()
    assert row is not None, f"no {action} audit row"
    return tuple(row)


def new_alert(d: District, student: int, days_ago: int = 0) -> int:
    return int(
        scalar(
            d.url,
            "INSERT INTO alerts (school_id, student_id, status, risk, raised_at)"
            " SELECT school_id, id, 'open', 0.9, now() - make_interval(days => %s)"
            " FROM students WHERE id = %s RETURNING id",
            (days_ago, student),
        )
    )


# ---------------------------------------------------------------------------- risk history
def test_history_shows_the_days_the_risk_changed(client: TestClient, district: District) -> None:
    student = student_of(district, 1)
    resp = client.get(
        f"/v1/students/{student}/risk/history", headers=auth(district.keys["school1"])
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["student_id"] == student and body["school_id"] == 1
    # Training scored every active student and wrote today's snapshot with its reasons.
    assert len(body["items"]) >= 1
    point = body["items"][0]
    assert 0 <= point["risk"] <= 1 and point["generation"] >= 1
    assert point["reasons"] and {"feature", "contribution"} <= set(point["reasons"][0])
    assert point["indicators"]["attendance"]["enrolled_days"] > 0
    assert last_audit(district, "read_risk_history")[1:3] == (1, student)


def test_history_of_another_schools_student_is_not_found(
    client: TestClient, district: District
) -> None:
    other = student_of(district, 2)
    resp = client.get(f"/v1/students/{other}/risk/history", headers=auth(district.keys["school1"]))
    assert resp.status_code == 404
    resp = client.get(
        "/v1/students/999999999/risk/history", headers=auth(district.keys["district1"])
    )
    assert resp.status_code == 404
    resp = client.get(f"/v1/students/{other}/risk/history?days=0",
                      headers=auth(district.keys["school1"]))  # fmt: skip
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["query", "days"]


def test_a_snapshot_is_written_only_when_something_changed(district: District) -> None:
    student = student_of(district, 3)
    with psycopg.connect(district.login_url(TRAINER_LOGIN)) as conn:
        last = conn.execute(
            "SELECT risk, model_version, generation FROM risk_history WHERE student_id = %s"
            " ORDER BY day DESC LIMIT 1",
            (student,),
        ).fetchone()
        assert last is not None
        risk, version, gen = last
        same = history.record(conn, gen, [student], [3], [risk], [version], [None])
        assert same == 0
        changed = history.record(conn, gen, [student], [3], [min(1.0, risk + 0.01)], [version],
                                 ["[]"])  # fmt: skip
        assert changed == 1
        # The same day: that day's row is replaced, not a second one added.
        days = conn.execute(
            "SELECT count(*), count(DISTINCT day) FROM risk_history WHERE student_id = %s",
            (student,),
        ).fetchone()
        conn.rollback()
    assert days is not None and days[0] == days[1]


# ---------------------------------------------------------------------------------- alerts
def test_alert_is_acknowledged_assigned_and_resolved_with_who_and_when(
    client: TestClient, district: District
) -> None:
    key = auth(district.keys["school1"])
    alert = new_alert(district, student_of(district, 1, 5))
    resp = client.patch(f"/v1/alerts/{alert}", json={"action": "acknowledge"}, headers=key)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "school 1"
    assert body["acknowledged_at"] is not None
    assert last_audit(district, "acknowledge_alert")[3] == {"alert_id": alert}
    again = client.patch(f"/v1/alerts/{alert}", json={"action": "acknowledge"}, headers=key)
    assert again.status_code == 409 and "acknowledged" in again.json()["detail"]
    staff = staff_of(district, 1)
    resp = client.patch(f"/v1/alerts/{alert}", json={"action": "assign", "assignee_id": staff},
                        headers=key)  # fmt: skip
    assert resp.status_code == 200 and resp.json()["assigned_to"] == staff
    assert resp.json()["assigned_by"] == "school 1"
    resp = client.patch(f"/v1/alerts/{alert}",
                        json={"action": "resolve", "resolution": "met the family"},
                        headers=key)  # fmt: skip
    assert resp.status_code == 200
    assert (resp.json()["status"], resp.json()["resolution"]) == ("resolved", "met the family")
    assert resp.json()["resolved_by"] == "school 1"
    late = client.patch(f"/v1/alerts/{alert}", json={"action": "assign", "assignee_id": staff},
                        headers=key)  # fmt: skip
    assert late.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "assign"}, "assignee_id"),
        ({"action": "resolve"}, "resolution"),
        ({"action": "resolve", "resolution": "  "}, "resolution"),
        ({"action": "acknowledge", "resolution": "x"}, "resolution"),
        ({"action": "close"}, "action"),
        ({"action": "resolve", "resolution": "x" * 1001}, "resolution"),
        ({"action": "assign", "assignee_id": "7"}, "assignee_id"),
    ],
)
def test_alert_changes_are_validated(
    client: TestClient, district: District, body: dict[str, Any], field: str
) -> None:
    alert = new_alert(district, student_of(district, 1, 6))
    resp = client.patch(f"/v1/alerts/{alert}", json=body, headers=auth(district.keys["school1"]))
    assert resp.status_code == 422
    assert field in str(resp.json()["detail"])


def test_alert_is_assigned_only_to_staff_of_its_school(
    client: TestClient, district: District
) -> None:
    alert = new_alert(district, student_of(district, 1, 7))
    resp = client.patch(
        f"/v1/alerts/{alert}",
        json={"action": "assign", "assignee_id": staff_of(district, 2)},
        headers=auth(district.keys["district1"]),
    )
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"] == ["body", "assignee_id"]
    assert scalar(district.url, "SELECT assigned_to FROM alerts WHERE id = %s", (alert,)) is None


def test_another_schools_alert_is_not_found_and_unchanged(
    client: TestClient, district: District
) -> None:
    alert = new_alert(district, student_of(district, 1, 8))
    for key in ("school2", "district2"):
        resp = client.patch(f"/v1/alerts/{alert}", json={"action": "acknowledge"},
                            headers=auth(district.keys[key]))  # fmt: skip
        assert resp.status_code == 404
    assert scalar(district.url, "SELECT status FROM alerts WHERE id = %s", (alert,)) == "open"
    assert client.patch("/v1/alerts/0", json={"action": "acknowledge"},
                        headers=auth(district.keys["school1"])).status_code == 422  # fmt: skip


def test_overdue_alerts_are_listed_and_counted(client: TestClient, district: District) -> None:
    old = new_alert(district, student_of(district, 1, 9), days_ago=30)
    fresh = new_alert(district, student_of(district, 1, 10))
    key = auth(district.keys["school1"])
    resp = client.get("/v1/schools/1/alerts?overdue=true&limit=500", headers=key)
    assert resp.status_code == 200
    items = {a["id"]: a for a in resp.json()["items"]}
    assert old in items and fresh not in items and items[old]["overdue"] is True
    everything = client.get("/v1/schools/1/alerts?limit=500", headers=key).json()["items"]
    assert {a["id"]: a["overdue"] for a in everything}[fresh] is False
    metrics = client.get("/metrics").text
    assert 'ssp_alerts_overdue{school="1"}' in metrics


# --------------------------------------------------------------------------- interventions
def case(district: District, **changes: Any) -> dict[str, Any]:
    return {"type": "tutoring", "owner_id": staff_of(district, 1), "started_on": "2026-01-05",
            **changes}  # fmt: skip


def test_intervention_is_recorded_listed_and_updated(
    client: TestClient, district: District
) -> None:
    student = student_of(district, 1, 11)
    key = auth(district.keys["school1"])
    resp = client.post(f"/v1/students/{student}/interventions",
                       json=case(district, notes="weekly maths"), headers=key)  # fmt: skip
    assert resp.status_code == 201, resp.text
    made = resp.json()
    assert (made["status"], made["created_by"], made["school_id"]) == ("open", "school 1", 1)
    assert last_audit(district, "create_intervention")[2] == student
    listed = client.get(f"/v1/students/{student}/interventions", headers=key).json()["items"]
    assert made["id"] in [i["id"] for i in listed]
    resp = client.patch(f"/v1/students/{student}/interventions/{made['id']}",
                        json={"status": "closed", "ended_on": "2026-03-01",
                              "outcome": "attendance back to 95 %"}, headers=key)  # fmt: skip
    assert resp.status_code == 200, resp.text
    done = resp.json()
    assert (done["status"], done["updated_by"]) == ("closed", "school 1")
    assert done["notes"] == "weekly maths"  # unchanged: not sent
    detail = last_audit(district, "update_intervention")[3]
    assert detail == {"intervention_id": made["id"], "fields": ["ended_on", "outcome", "status"]}


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"type": "detention"}, ["body", "type"]),
        ({"ended_on": "2026-01-01"}, ["body"]),
        ({"notes": "x" * 2001}, ["body", "notes"]),
        ({"outcome": "x" * 2001}, ["body", "outcome"]),
        ({"status": "done"}, ["body", "status"]),
        ({"started_on": "yesterday"}, ["body", "started_on"]),
        ({"extra": 1}, ["body", "extra"]),
    ],
)
def test_intervention_input_is_validated(
    client: TestClient, district: District, changes: dict[str, Any], loc: list[str]
) -> None:
    student = student_of(district, 1, 12)
    resp = client.post(f"/v1/students/{student}/interventions", json=case(district, **changes),
                       headers=auth(district.keys["school1"]))  # fmt: skip
    assert resp.status_code == 422
    assert resp.json()["detail"][0]["loc"][: len(loc)] == loc


def test_intervention_owner_is_staff_of_the_students_school(
    client: TestClient, district: District
) -> None:
    student = student_of(district, 1, 13)
    resp = client.post(f"/v1/students/{student}/interventions",
                       json=case(district, owner_id=staff_of(district, 2)),
                       headers=auth(district.keys["district1"]))  # fmt: skip
    assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "owner_id"]


def test_intervention_update_paths(client: TestClient, district: District) -> None:
    student = student_of(district, 1, 14)
    key = auth(district.keys["school1"])
    made = client.post(f"/v1/students/{student}/interventions", json=case(district),
                       headers=key).json()  # fmt: skip
    url = f"/v1/students/{student}/interventions/{made['id']}"
    assert client.patch(url, json={"ended_on": "2025-12-01"}, headers=key).status_code == 422
    assert client.patch(url, json={"status": None}, headers=key).status_code == 422
    assert (
        client.patch(url, json={"owner_id": staff_of(district, 2)}, headers=key).status_code == 422
    )
    other = student_of(district, 1, 15)
    wrong = f"/v1/students/{other}/interventions/{made['id']}"
    assert client.patch(wrong, json={"status": "closed"}, headers=key).status_code == 404
    assert client.patch(url, json={"status": "closed"},
                        headers=auth(district.keys["school2"])).status_code == 404  # fmt: skip
    assert scalar(district.url, "SELECT status FROM interventions WHERE id = %s",
                  (made["id"],)) == "open"  # fmt: skip


def test_another_schools_student_has_no_interventions_for_this_key(
    client: TestClient, district: District
) -> None:
    other = student_of(district, 2, 3)
    key = auth(district.keys["school1"])
    assert client.get(f"/v1/students/{other}/interventions", headers=key).status_code == 404
    resp = client.post(f"/v1/students/{other}/interventions", json=case(district), headers=key)
    assert resp.status_code == 404
    assert scalar(district.url, "SELECT count(*) FROM interventions WHERE student_id = %s"
                  " AND created_by IS NOT NULL", (other,)) == 0  # fmt: skip


# ----------------------------------------------------------------------- the at-risk list
def test_at_risk_list_shows_indicators_trend_and_open_cases(
    client: TestClient, district: District
) -> None:
    key = auth(district.keys["school1"])
    top = client.get("/v1/schools/1/at-risk?min_risk=0&limit=1", headers=key).json()["items"][0]
    made = client.post(f"/v1/students/{top['student_id']}/interventions", json=case(district),
                       headers=key)  # fmt: skip
    assert made.status_code == 201
    resp = client.get("/v1/schools/1/at-risk?min_risk=0&limit=100&open_intervention=true",
                      headers=key)  # fmt: skip
    items = resp.json()["items"]
    assert top["student_id"] in [i["student_id"] for i in items]
    assert all(i["open_intervention"] for i in items)
    # Today's snapshot is the only one: no change over 30 days yet.
    assert all(i["risk_change_30d"] == 0 for i in items)
    flagged = client.get("/v1/schools/1/at-risk?min_risk=0&limit=100&attendance=early_warning",
                         headers=key).json()["items"]  # fmt: skip
    assert all(i["indicators"]["attendance"]["level"] in ("at_risk", "early_warning")
               for i in flagged)  # fmt: skip


def every_page(client: TestClient, key: dict[str, str], url: str) -> list[dict[str, Any]]:
    """The items of every page of a list, from `url` on, following its cursors."""
    items: list[dict[str, Any]] = []
    page_url = url
    while page_url:
        page = client.get(page_url, headers=key).json()
        items += page["items"]
        cursor = page["next_cursor"]
        page_url = f"{url}&cursor={cursor}" if cursor else ""
    return items


def test_rising_sort_orders_by_the_30_day_change_and_pages(
    client: TestClient, district: District
) -> None:
    # Three of school 4's riskiest students: each can have stood 0.3 lower.
    with psycopg.connect(district.url) as conn:
        found = conn.execute(
            "SELECT student_id FROM risk_scores WHERE school_id = 4 AND risk >= 0.31"
            " AND generation = (SELECT max(generation) FROM risk_scores)"
            " ORDER BY risk DESC LIMIT 3"
        ).fetchall()
    students = [int(r[0]) for r in found]
    assert len(students) == 3
    with psycopg.connect(district.url, autocommit=True) as conn:
        # 40 days ago these three stood lower than now by 0.3, 0.2 and 0.1.
        for k, sid in enumerate(students):
            conn.execute(
                "INSERT INTO risk_history (student_id, school_id, day, risk, generation,"
                " model_version) SELECT student_id, school_id, (now() AT TIME ZONE 'UTC')::date"
                " - 40, risk - %s, generation, model_version FROM risk_scores"
                " WHERE student_id = %s ORDER BY generation DESC LIMIT 1",
                (0.3 - 0.1 * k, sid),
            )
    # The night's scoring stores each score's 30-day baseline (migration 0022).
    store = ModelStore(district.trainer.model_store_url)
    with connect_as(district.trainer, TRAINER_LOGIN) as conn:
        rescore_students(conn, store, district.trainer, store.pointer(), lambda schools: None)
    key = auth(district.keys["district1"])
    seen = every_page(
        client, key, "/v1/schools/4/at-risk?min_risk=0&limit=2&sort=rising&min_change=0.05"
    )
    changes = [i["risk_change_30d"] for i in seen]
    assert changes == sorted(changes, reverse=True) and all(c >= 0.05 for c in changes)
    risen = [i["student_id"] for i in seen if i["student_id"] in students]
    assert risen == students  # risen by 0.3, 0.2 and 0.1: in that order
    assert [round(i["risk_change_30d"], 3) for i in seen if i["student_id"] in students] == [
        0.3, 0.2, 0.1
    ]  # fmt: skip
    # The same filter under the default order: the same students, riskiest first.
    by_risk = every_page(client, key, "/v1/schools/4/at-risk?min_risk=0&limit=2&min_change=0.05")
    assert sorted(i["student_id"] for i in by_risk) == sorted(i["student_id"] for i in seen)
    risks = [i["risk"] for i in by_risk]
    assert risks == sorted(risks, reverse=True)
    assert all(i["risk_change_30d"] >= 0.05 for i in by_risk)


def test_the_benchmarked_page_is_the_apis_without_its_audit_row(district: District) -> None:
    """benchmarks.queries times at_risk_query without `audit`: the rows the API reads, one
    more than the limit (which tells the API a next page exists)."""
    gen = int(scalar(district.url, "SELECT max(generation) FROM risk_scores"))
    client_id = int(scalar(district.url, "SELECT min(id) FROM api_clients"))
    with psycopg.connect(district.url, row_factory=dict_row) as conn:
        plain = conn.execute(*queries.at_risk_query(gen, 4, 0.0, 5)).fetchall()
        audited = conn.execute(*queries.at_risk_query(gen, 4, 0.0, 5, audit=(client_id, 3)))
        read = [r for r in audited.fetchall() if r["student_id"] is not None]
        conn.rollback()  # not the audit row
    assert len(plain) == 6
    assert [r["student_id"] for r in read] == [r["student_id"] for r in plain]


# -------------------------------------------------------- the API's login, another school
@pytest.fixture
def api(district: District) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(district.login_url(API_LOGIN), autocommit=True) as conn:
        yield conn


def in_school(conn: psycopg.Connection[Any], school: int, query: str) -> Any:
    with conn.transaction():
        conn.execute("SELECT set_config('app.school_id', %s, true)", (str(school),))
        cur = conn.execute(query)
        return cur.rowcount if cur.description is None else cur.fetchall()


def test_api_login_never_sees_or_changes_another_schools_casework(
    api: psycopg.Connection[Any], district: District
) -> None:
    student = student_of(district, 1, 16)
    new_alert(district, student)
    assert in_school(api, 2, "SELECT count(*) FROM risk_history WHERE school_id = 1") == [(0,)]
    assert in_school(api, 2, "SELECT count(*) FROM student_indicators_visible"
                             " WHERE school_id = 1") == [(0,)]  # fmt: skip
    assert (
        in_school(api, 2, f"UPDATE alerts SET status = 'resolved' WHERE student_id = {student}")
        == 0
    )
    assert in_school(api, 2, "UPDATE interventions SET status = 'closed' WHERE school_id = 1") == 0
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        in_school(api, 2, f"INSERT INTO interventions (school_id, student_id, assigned_to, status)"
                          f" VALUES (1, {student}, {staff_of(district, 1)}, 'open')")  # fmt: skip
    for query in (
        "DELETE FROM students",
        "DELETE FROM interventions",
        "DELETE FROM alerts",
        "DELETE FROM risk_history",
        "INSERT INTO risk_history (student_id, school_id, day, risk, generation, model_version)"
        f" VALUES ({student}, 2, now(), 0.5, 1, 'x')",
        "UPDATE alerts SET risk = 0",
        "UPDATE interventions SET school_id = 2",
        "SELECT * FROM student_indicators",
        "SELECT risk_history_ensure_current_partitions()",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            in_school(api, 2, query)


def test_report_describes_risk_before_and_after_interventions_as_descriptive(
    client: TestClient, district: District
) -> None:
    # A student of school 2 whom scoring recorded in the history (an active one).
    student = int(
        scalar(district.url, "SELECT min(student_id) FROM risk_history WHERE school_id = 2")
    )
    key = auth(district.keys["school2"])
    owner = staff_of(district, 2)
    body = {"type": "mentoring", "owner_id": owner, "started_on": "2026-01-05"}
    made = client.post(f"/v1/students/{student}/interventions", json=body, headers=key)
    assert made.status_code == 201
    with psycopg.connect(district.url, autocommit=True) as conn:
        # The student's risk on the start day, 0.2 above today's.
        conn.execute(
            "INSERT INTO risk_history (student_id, school_id, day, risk, generation,"
            " model_version) SELECT student_id, 2, '2026-01-04', least(risk + 0.2, 1),"
            " generation, model_version FROM risk_history WHERE student_id = %s"
            " ORDER BY day DESC LIMIT 1 ON CONFLICT DO NOTHING",
            (student,),
        )
    with psycopg.connect(district.login_url(TRAINER_LOGIN)) as conn:
        rows = {r["type"]: r for r in intervention_outcomes(conn)}
    mentoring = rows["mentoring"]
    assert mentoring["cases"] >= 1 and mentoring["mean_change"] < 0
    page = interventions_section({"interventions": list(rows.values())})
    assert "Descriptive only, not an effect" in page and "mentoring" in page
    assert "regression to the mean" in interventions_section({})


def test_a_score_without_a_stored_baseline_has_its_change_looked_up(
    client: TestClient, district: District
) -> None:
    """A score written before migration 0022 (or by the worker for a student it scores
    first) has no stored baseline: the list looks the change up in the history."""
    sid = int(
        scalar(
            district.url,
            "SELECT min(student_id) FROM risk_scores WHERE school_id = 2 AND risk >= 0.3"
            " AND generation = (SELECT max(generation) FROM risk_scores)",
        )
    )
    with psycopg.connect(district.url, autocommit=True) as conn:  # the admin: no row security
        conn.execute(
            "INSERT INTO risk_history (student_id, school_id, day, risk, generation,"
            " model_version) SELECT student_id, school_id, (now() AT TIME ZONE 'UTC')::date"
            " - 35, risk - 0.25, generation, model_version FROM risk_scores"
            " WHERE student_id = %s ORDER BY generation DESC LIMIT 1",
            (sid,),
        )
        conn.execute("UPDATE risk_scores SET risk_30_days_ago = NULL WHERE student_id = %s", (sid,))
    key = auth(district.keys["district1"])
    items = client.get("/v1/schools/2/at-risk?min_risk=0&limit=10&sort=rising", headers=key).json()[
        "items"
    ]
    (found,) = [i for i in items if i["student_id"] == sid]
    assert found["risk_change_30d"] == pytest.approx(0.25, abs=1e-6)


def test_an_indicator_filter_keeps_exactly_the_flagged_students(
    client: TestClient, district: District
) -> None:
    key = auth(district.keys["school1"])

    def every(query: str) -> list[dict[str, Any]]:
        return every_page(client, key, f"/v1/schools/1/at-risk?min_risk=0&limit=100{query}")

    listed = every("")
    for indicator in ("attendance", "course"):
        flagged = {
            i["student_id"]
            for i in listed
            if i["indicators"]
            and i["indicators"][indicator]["level"] in ("at_risk", "early_warning")
        }
        found = every(f"&{indicator}=early_warning")
        assert {i["student_id"] for i in found} == flagged
        assert [i["risk"] for i in found] == sorted((i["risk"] for i in found), reverse=True)
    assert 0 < len(flagged) < len(listed)
