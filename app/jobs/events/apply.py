"""The write of POST /v1/events, in the tenant's one transaction: the checks that need the
database, the events' keys, the facts, the audit rows and (on the PostgreSQL queue) the
students to rescore. Set-based: a few statements per batch, whatever its size."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import psycopg

from app.jobs.events.validate import AttendanceMarked, Event, IncidentLogged, MarkRecorded

AUDIT_ACTION = "post_event"


@dataclass
class Outcome:
    """Per posted event (by index): accepted (new or duplicate) or rejected with problems."""

    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # (student id, school id) of every accepted event, duplicates included: a retried batch
    # whose first answer was lost enqueues its students again (rescoring is idempotent).
    students: set[tuple[int, int]] = field(default_factory=set)

    def reject(self, index: int, key: str | None, problems: list[dict[str, str]]) -> None:
        self.rejected.append({"index": index, "idempotency_key": key, "problems": problems})


async def apply_events(
    cur: psycopg.AsyncCursor[Any],
    events: list[tuple[int, Event]],
    client_id: int,
    outcome: Outcome,
    enqueue_in_db: bool,
) -> None:
    """Check, record and apply `events` (index, event); every outcome goes into `outcome`."""
    students = await _students(cur, sorted({e.student_id for _, e in events}))
    exams = await _exams(cur, sorted({e.exam_id for _, e in events if isinstance(e, MarkRecorded)}))
    valid: list[tuple[int, Event, int]] = []  # with the student's school
    seen: set[tuple[int, str]] = set()
    for index, event in events:
        school = students.get(event.student_id)
        if school is None:
            outcome.reject(index, event.idempotency_key, [_problem("student_id", "unknown")])
            continue
        if isinstance(event, MarkRecorded):
            exam = exams.get(event.exam_id)
            if exam is None or exam[0] != school:
                why = "unknown" if exam is None else "not an exam of the student's school"
                outcome.reject(index, event.idempotency_key, [_problem("exam_id", why)])
                continue
            if event.marks_obtained > exam[1]:
                why = f"above the exam's max_marks ({exam[1]:g})"
                outcome.reject(index, event.idempotency_key, [_problem("marks_obtained", why)])
                continue
        outcome.students.add((event.student_id, school))
        if (school, event.idempotency_key) in seen:  # twice in this batch: applied once
            outcome.accepted.append(_accepted(index, event, duplicate=True))
            continue
        seen.add((school, event.idempotency_key))
        valid.append((index, event, school))
    new = await _record_keys(cur, valid, client_id)
    fresh = [(i, e, s) for i, e, s in valid if (s, e.idempotency_key) in new]
    for index, event, school in valid:
        outcome.accepted.append(_accepted(index, event, (school, event.idempotency_key) not in new))
    await _write_facts(cur, fresh)
    await _audit(cur, fresh, client_id)
    if enqueue_in_db and outcome.students:
        await cur.execute(ENQUEUE, enqueue_params(outcome.students))
    outcome.accepted.sort(key=lambda a: int(a["index"]))


# The PostgreSQL queue: one waiting message per student (a waiting one absorbs the rest).
ENQUEUE = (
    "INSERT INTO event_queue (student_id, school_id)"
    " SELECT * FROM unnest(%s::bigint[], %s::integer[])"
    " ON CONFLICT (student_id) WHERE receives = 0 AND dead_at IS NULL DO NOTHING"
)


def enqueue_params(students: set[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """ENQUEUE's parameters for (student id, school id) pairs."""
    ids, schools = zip(*sorted(students), strict=True)
    return list(ids), list(schools)


def _problem(field_name: str, problem: str) -> dict[str, str]:
    return {"field": field_name, "problem": problem}


def _accepted(index: int, event: Event, duplicate: bool) -> dict[str, Any]:
    return {"index": index, "idempotency_key": event.idempotency_key, "duplicate": duplicate}


async def _students(cur: psycopg.AsyncCursor[Any], ids: list[int]) -> dict[int, int]:
    """Student -> school, of the students the tenant can see (row-level security)."""
    await cur.execute("SELECT id, school_id FROM students WHERE id = ANY(%s)", (ids,))
    return {int(r["id"]): int(r["school_id"]) for r in await cur.fetchall()}


async def _exams(cur: psycopg.AsyncCursor[Any], ids: list[int]) -> dict[int, tuple[int, float]]:
    if not ids:
        return {}
    await cur.execute("SELECT id, school_id, max_marks FROM exams WHERE id = ANY(%s)", (ids,))
    return {
        int(r["id"]): (int(r["school_id"]), float(r["max_marks"])) for r in await cur.fetchall()
    }


async def _record_keys(
    cur: psycopg.AsyncCursor[Any], valid: list[tuple[int, Event, int]], client_id: int
) -> set[tuple[int, str]]:
    """Insert the events' keys; returns those that were new (the others are duplicates)."""
    if not valid:
        return set()
    await cur.execute(
        "INSERT INTO student_events (school_id, idempotency_key, student_id, kind, client_id)"
        " SELECT s, k, st, kd, %s FROM unnest(%s::integer[], %s::text[], %s::bigint[],"
        " %s::text[]) AS t(s, k, st, kd)"
        " ON CONFLICT (school_id, idempotency_key) DO NOTHING"
        " RETURNING school_id, idempotency_key",
        (
            client_id,
            [s for _, _, s in valid],
            [e.idempotency_key for _, e, _ in valid],
            [e.student_id for _, e, _ in valid],
            [e.type for _, e, _ in valid],
        ),
    )
    return {(int(r["school_id"]), str(r["idempotency_key"])) for r in await cur.fetchall()}


async def _write_facts(cur: psycopg.AsyncCursor[Any], fresh: list[tuple[int, Event, int]]) -> None:
    # The last event of a batch wins where two set the same fact (a day's status, a mark).
    attendance = {
        (e.student_id, e.date): (s, e.status)
        for _, e, s in fresh
        if isinstance(e, AttendanceMarked)
    }
    if attendance:
        keys = list(attendance)
        await cur.execute(
            "INSERT INTO attendance (student_id, date, school_id, status)"
            " SELECT * FROM unnest(%s::bigint[], %s::date[], %s::integer[], %s::text[])"
            " ON CONFLICT (student_id, date) DO UPDATE SET status = excluded.status"
            " WHERE attendance.status IS DISTINCT FROM excluded.status",
            (
                [k[0] for k in keys],
                [k[1] for k in keys],
                [attendance[k][0] for k in keys],
                [attendance[k][1] for k in keys],
            ),
        )
    marks = {
        (e.student_id, e.exam_id): (s, e.marks_obtained)
        for _, e, s in fresh
        if isinstance(e, MarkRecorded)
    }
    if marks:
        pairs = list(marks)
        await cur.execute(
            "INSERT INTO marks (student_id, exam_id, school_id, marks_obtained)"
            " SELECT * FROM unnest(%s::bigint[], %s::integer[], %s::integer[], %s::numeric[])"
            " ON CONFLICT (student_id, exam_id) DO UPDATE"
            " SET marks_obtained = excluded.marks_obtained"
            " WHERE marks.marks_obtained IS DISTINCT FROM excluded.marks_obtained",
            (
                [k[0] for k in pairs],
                [k[1] for k in pairs],
                [marks[k][0] for k in pairs],
                [marks[k][1] for k in pairs],
            ),
        )
    incidents = [(e, s) for _, e, s in fresh if isinstance(e, IncidentLogged)]
    if incidents:
        await cur.execute(
            "INSERT INTO behaviour_incidents (student_id, school_id, occurred_at, severity,"
            " category) SELECT * FROM unnest(%s::bigint[], %s::integer[], %s::timestamptz[],"
            " %s::smallint[], %s::text[])",
            (
                [e.student_id for e, _ in incidents],
                [s for _, s in incidents],
                [e.occurred_at for e, _ in incidents],
                [e.severity for e, _ in incidents],
                [e.category for e, _ in incidents],
            ),
        )


async def _audit(
    cur: psycopg.AsyncCursor[Any], fresh: list[tuple[int, Event, int]], client_id: int
) -> None:
    """One audit row per applied event, in the same transaction as the write (FERPA)."""
    if not fresh:
        return
    await cur.execute(
        "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
        " SELECT %s, * FROM unnest(%s::integer[], %s::bigint[], %s::text[], %s::jsonb[])",
        (
            client_id,
            [s for _, _, s in fresh],
            [e.student_id for _, e, _ in fresh],
            [AUDIT_ACTION] * len(fresh),
            [json.dumps({"type": e.type, "key": e.idempotency_key}) for _, e, _ in fresh],
        ),
    )
