"""POST /v1/events: validation per event with the import's rules, idempotency keys, the facts,
the audit rows and the PostgreSQL queue; GET /v1/schools/{id}/alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core.text import NOT_UTF8_PROBLEM, NUL_PROBLEM
from app.jobs.events.validate import AttendanceMarked, IncidentLogged, MarkRecorded
from tests.app.conftest import District
from tests.app.helpers import auth, failing_audit, scalar


@pytest.fixture(scope="module")
def events_district(new_district: Any, tmp_path_factory: pytest.TempPathFactory) -> District:
    """A district of its own: these tests write facts."""
    district: District = new_district(tmp_path_factory.mktemp("events"), True)
    return district


@pytest.fixture(scope="module")
def api(events_district: District) -> Iterator[TestClient]:
    with TestClient(create_app(events_district.settings)) as c:
        yield c


def student_of(d: District, school: int, offset: int = 0) -> int:
    return int(
        scalar(
            d.url,
            "SELECT id FROM students WHERE school_id = %s AND is_active"
            " ORDER BY id OFFSET %s LIMIT 1",
            (school, offset),
        )
    )


def attendance(key: str, student: int, day: str, status: str = "absent") -> dict[str, Any]:
    return {
        "type": "attendance_marked",
        "idempotency_key": key,
        "student_id": student,
        "date": day,
        "status": status,
    }


def test_events_write_the_facts_queue_the_students_and_are_audited(
    api: TestClient, events_district: District
) -> None:
    d = events_district
    student = student_of(d, 1)
    exam, max_marks = scalar(
        d.url, "SELECT ARRAY[id, max_marks]::numeric[] FROM exams WHERE school_id = 1 LIMIT 1"
    )
    events = [
        attendance("a-1", student, "2026-11-30"),
        {
            "type": "mark_recorded",
            "idempotency_key": "m-1",
            "student_id": student,
            "exam_id": int(exam),
            "marks_obtained": float(max_marks) / 4,
        },
        {
            "type": "incident_logged",
            "idempotency_key": "i-1",
            "student_id": student,
            "occurred_at": "2026-11-30T10:00:00Z",
            "severity": 3,
            "category": "fight",
        },
    ]
    r = api.post("/v1/events", json={"events": events}, headers=auth(d.keys["school1"]))
    assert r.status_code == 202, r.text
    assert r.json() == {
        "accepted": [
            {"index": 0, "idempotency_key": "a-1", "duplicate": False},
            {"index": 1, "idempotency_key": "m-1", "duplicate": False},
            {"index": 2, "idempotency_key": "i-1", "duplicate": False},
        ],
        "rejected": [],
    }
    q = "SELECT count(*) FROM {} WHERE student_id = %s AND {}"
    assert (
        scalar(
            d.url, q.format("attendance", "date = '2026-11-30' AND status = 'absent'"), (student,)
        )
        == 1
    )
    assert scalar(d.url, q.format("marks", f"exam_id = {int(exam)}"), (student,)) == 1
    assert scalar(d.url, q.format("behaviour_incidents", "category = 'fight'"), (student,)) == 1
    assert scalar(d.url, q.format("event_queue", "receives = 0"), (student,)) == 1
    audited = scalar(d.url, q.format("audit_log", "action = 'post_event'"), (student,))
    assert audited == 3

    # The same batch again: nothing applied twice, nothing audited twice, one waiting message.
    again = api.post("/v1/events", json={"events": events}, headers=auth(d.keys["school1"]))
    assert [a["duplicate"] for a in again.json()["accepted"]] == [True, True, True]
    assert scalar(d.url, q.format("behaviour_incidents", "category = 'fight'"), (student,)) == 1
    assert scalar(d.url, q.format("audit_log", "action = 'post_event'"), (student,)) == 3
    assert scalar(d.url, q.format("event_queue", "true"), (student,)) == 1


def test_bad_events_are_rejected_one_by_one_naming_the_problem(
    api: TestClient, events_district: District
) -> None:
    d = events_district
    mine, theirs = student_of(d, 1, 1), student_of(d, 2)
    exam_of_school_2 = scalar(d.url, "SELECT id FROM exams WHERE school_id = 2 LIMIT 1")
    events = [
        attendance("ok", mine, "2026-11-29"),
        attendance("bad-status", mine, "2026-11-28", "asleep"),
        attendance("bad-date", mine, "1900-01-01"),
        attendance("other-school", theirs, "2026-11-28"),
        {
            "type": "mark_recorded",
            "idempotency_key": "exam",
            "student_id": mine,
            "exam_id": exam_of_school_2,
            "marks_obtained": 1,
        },
        {
            "type": "mark_recorded",
            "idempotency_key": "nan",
            "student_id": mine,
            "exam_id": 1,
            "marks_obtained": float("nan"),
        },
        {
            "type": "incident_logged",
            "idempotency_key": "sev",
            "student_id": mine,
            "occurred_at": "2026-11-30T10:00:00",
            "severity": 4,
            "category": "x",
        },
        {"type": "holiday", "idempotency_key": "what"},
        "not an object",
        attendance("ok", mine, "2026-11-29"),  # the same key twice in one batch
    ]
    # NaN is no JSON, but Python's encoder writes it: sent as such.
    r = api.post(
        "/v1/events",
        content=json.dumps({"events": events}),
        headers={**auth(d.keys["school1"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == [
        {"index": 0, "idempotency_key": "ok", "duplicate": False},
        {"index": 9, "idempotency_key": "ok", "duplicate": True},
    ]
    problems = {
        x["index"]: {(p["field"], p["problem"]) for p in x["problems"]} for x in body["rejected"]
    }
    assert set(problems) == {1, 2, 3, 4, 5, 6, 7, 8}
    assert {f for f, _ in problems[1]} == {"status"}
    assert problems[2] == {("date", "Value error, date out of range (1990-01-01 to 2100-12-31)")}
    assert problems[3] == {("student_id", "unknown")}  # another school's student: not visible
    assert problems[4] == {("exam_id", "unknown")}  # another school's exam: not visible either
    assert {f for f, _ in problems[5]} == {"marks_obtained"}
    assert {f for f, _ in problems[6]} == {"occurred_at", "severity"}
    assert {f for f, _ in problems[7]} == {"event"}
    assert body["rejected"][0]["idempotency_key"] == "bad-status"
    assert (
        scalar(
            d.url,
            "SELECT count(*) FROM attendance WHERE student_id = %s AND date = '2026-11-28'",
            (theirs,),
        )
        == 0
    )


def test_a_mark_above_the_exams_maximum_and_oversized_batches_are_refused(
    api: TestClient, events_district: District
) -> None:
    d = events_district
    student = student_of(d, 1, 2)
    exam, max_marks = scalar(
        d.url, "SELECT ARRAY[id, max_marks]::numeric[] FROM exams WHERE school_id = 1 LIMIT 1"
    )
    over = {
        "type": "mark_recorded",
        "idempotency_key": "over",
        "student_id": student,
        "exam_id": int(exam),
        "marks_obtained": float(max_marks) + 1,
    }
    r = api.post("/v1/events", json={"events": [over]}, headers=auth(d.keys["school1"]))
    assert r.json()["rejected"][0]["problems"] == [
        {"field": "marks_obtained", "problem": f"above the exam's max_marks ({float(max_marks):g})"}
    ]
    many = [attendance(f"k{i}", student, "2026-11-27") for i in range(1001)]
    r = api.post("/v1/events", json={"events": many}, headers=auth(d.keys["school1"]))
    assert r.status_code == 422
    assert r.json()["detail"] == "events: at most 1000 events per request"
    assert (
        api.post("/v1/events", json={"events": []}, headers=auth(d.keys["school1"])).status_code
        == 422
    )
    assert api.post("/v1/events", json={"events": [over]}).status_code == 401


def test_alerts_are_read_per_school_and_audited(api: TestClient, events_district: District) -> None:
    d = events_district
    with d.connect() as conn:
        conn.execute(
            "INSERT INTO alerts (school_id, student_id, status, risk, model_version)"
            " SELECT school_id, id, 'open', 0.9, 'v-test' FROM students WHERE school_id = 1"
            " ORDER BY id LIMIT 1"
        )
    r = api.get("/v1/schools/1/alerts", headers=auth(d.keys["school1"]))
    assert r.status_code == 200
    assert any(a["model_version"] == "v-test" for a in r.json()["items"])
    assert api.get("/v1/schools/1/alerts", headers=auth(d.keys["school2"])).status_code == 403
    assert scalar(d.url, "SELECT count(*) FROM audit_log WHERE action = 'read_school_alerts'") == 1


def test_a_batch_whose_write_fails_is_refused_whole_with_a_503(
    api: TestClient, events_district: District
) -> None:
    """The audit rows are written with the facts: when they cannot be, nothing of the batch is
    stored and the client is told to post it again (never a 500)."""
    d = events_district
    student = student_of(d, 1, offset=7)
    events = [attendance("audit-refused-1", student, "2026-10-05")]
    stored = "SELECT count(*) FROM student_events WHERE idempotency_key = 'audit-refused-1'"
    with failing_audit(d.url, student, "post_event"):
        r = api.post("/v1/events", json={"events": events}, headers=auth(d.keys["school1"]))
    assert r.status_code == 503, r.text
    assert "post the same batch again" in r.json()["detail"]
    assert r.headers["Retry-After"]
    assert scalar(d.url, stored) == 0
    again = api.post("/v1/events", json={"events": events}, headers=auth(d.keys["school1"]))
    assert again.status_code == 202
    assert again.json()["accepted"][0]["duplicate"] is False
    assert scalar(d.url, stored) == 1


# What a PostgreSQL text column cannot hold: a NUL character, and a lone surrogate (a JSON
# string spells one as \ud800; it is no UTF-8).
UNSTORABLE = {"NUL": "\x00", "lone surrogate": "\ud800"}
EVENT_MODELS = (AttendanceMarked, MarkRecorded, IncidentLogged)


def text_fields() -> list[tuple[str, str]]:
    """(event type, field) for every field an event takes as a JSON string."""
    out = []
    for model in EVENT_MODELS:
        kind = model.model_fields["type"].annotation.__args__[0]
        props = model.model_json_schema()["properties"]
        out += [(kind, name) for name, p in props.items() if p.get("type") == "string"]
    return out


def test_text_that_cannot_be_stored_is_refused_alone_naming_the_field(
    api: TestClient, events_district: District
) -> None:
    """In every text field of every event type, a NUL or a lone surrogate refuses that event
    (202, the field named, the key not echoed when it is the key) and the rest apply."""
    d = events_district
    student = student_of(d, 1, offset=9)
    exam = int(scalar(d.url, "SELECT id FROM exams WHERE school_id = 1 ORDER BY id LIMIT 1"))
    fields = text_fields()
    assert {f for _, f in fields} >= {"idempotency_key", "category", "date", "status", "type"}
    valid = {
        "attendance_marked": attendance("", student, "2026-10-06"),
        "mark_recorded": {
            "type": "mark_recorded", "student_id": student, "exam_id": exam, "marks_obtained": 1,
        },
        "incident_logged": {
            "type": "incident_logged", "student_id": student,
            "occurred_at": "2026-10-06T10:00:00Z", "severity": 1, "category": "late to class",
        },
    }  # fmt: skip
    events: list[dict[str, Any]] = []
    expected: dict[int, tuple[str, str]] = {}  # index: (field named, key answered)
    for n, (kind, field) in enumerate(fields):
        for what, bad in UNSTORABLE.items():
            key = f"text-{n}-{what}"
            event = {**valid[kind], "idempotency_key": key}
            event[field] = str(event[field]) + bad
            expected[len(events)] = (field, key)
            events.append(event)
        # An unknown field's name: with a NUL it is named; a lone surrogate refuses the event.
        for name, named in (("a\x00", "a\x00"), ("a\ud800", "event")):
            key = f"text-{n}-name-{len(events)}"
            expected[len(events)] = (named, key)
            events.append({**valid[kind], "idempotency_key": key, name: 1})
    good = {**valid["incident_logged"], "idempotency_key": "text-good"}
    events.append(good)
    # Sent as JSON escapes: \u0000 and \ud800, as a client's encoder writes them.
    r = api.post(
        "/v1/events",
        content=json.dumps({"events": events}),
        headers={**auth(d.keys["school1"]), "Content-Type": "application/json"},
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == [
        {"index": len(events) - 1, "idempotency_key": "text-good", "duplicate": False}
    ]
    rejected = {x["index"]: x for x in body["rejected"]}
    assert set(rejected) == set(expected)
    for index, (field, key) in expected.items():
        named = {p["field"] for p in rejected[index]["problems"]}
        # The type decides the event's other fields: an unknown one refuses the whole event.
        assert named == ({"event"} if field == "type" else {field}), (field, rejected[index])
        if field in ("idempotency_key", "category"):  # free text: the reason is the storage's
            (problem,) = (p["problem"] for p in rejected[index]["problems"])
            assert problem.endswith((NUL_PROBLEM, NOT_UTF8_PROBLEM)), problem
        answered_key = None if field == "idempotency_key" else key
        assert rejected[index]["idempotency_key"] == answered_key, field
    stored = "SELECT count(*) FROM student_events WHERE idempotency_key LIKE 'text-%%'"
    assert scalar(d.url, stored) == 1
