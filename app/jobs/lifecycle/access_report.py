"""Who accessed a student's records (FERPA, 34 CFR 99.32): `python -m app access-report` and
GET /v1/students/{ref}/accesses.

The live partitions answer through student_accesses() (migration 0021), whose two index scans
find single reads (audit_log.student_id) and list reads (detail.student_ids, a GIN index) of
one student; the archived months are read from the archive store (app/jobs/archive.py), one
gzip'd CSV per month, and filtered here."""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from app.jobs.archive import COLUMNS
from app.model.artifacts import Backend

ARCHIVE_PREFIX = "audit_log/"
# What each audited action was, in the report's words.
WHAT = {
    "read_student_risk": "single read",
    "read_at_risk_list": "list",
    "read_school_alerts": "list",
    "post_event": "record written (event)",
    "read_access_report": "access report",
    "predict": "prediction",
    "export": "export",
}
FIELDS = (
    "occurred_at",
    "what",
    "action",
    "client_id",
    "key_name",
    "key_prefix",
    "key_class",
    "school_id",
    "source",
)


@dataclass(frozen=True)
class Access:
    occurred_at: str
    what: str
    action: str
    client_id: int | None
    key_name: str | None
    key_prefix: str | None
    key_class: str | None
    school_id: int | None
    source: str  # "live" or the archive object's key


def live_accesses(conn: psycopg.Connection[Any], ref: str) -> tuple[int | None, list[Access]]:
    """(student id, accesses) from the live partitions: (None, []) when no access to a
    student `ref` names, visible to the caller, is recorded there."""
    rows = conn.execute("SELECT * FROM student_accesses(%s)", (ref,)).fetchall()
    student = int(rows[0][0]) if rows else None
    return student, [
        Access(r[1].isoformat(), WHAT.get(r[7], r[7]), r[7], r[2], r[3], r[4], r[5], r[6], "live")
        for r in rows
    ]


def key_names(
    conn: psycopg.Connection[Any],
) -> dict[int, tuple[str | None, str | None, str | None]]:
    """Every API key's (name, prefix, class) by client id: archived rows name only the id."""
    rows = conn.execute("SELECT * FROM api_key_names()").fetchall()
    return {int(r[0]): (r[1], r[2], r[3]) for r in rows}


def archived_accesses(
    backend: Backend, student: int, keys: dict[int, tuple[str | None, str | None, str | None]]
) -> list[Access]:
    """The student's accesses in every archived month. `keys`: client id -> (name, prefix,
    class) of the API keys, to name the keys of archived rows."""
    found: list[Access] = []
    for key in backend.list_keys(ARCHIVE_PREFIX):
        data = backend.read(key)
        if data is None or not key.endswith(".csv.gz"):
            continue
        reader = csv.reader(io.StringIO(gzip.decompress(data).decode()))
        if tuple(next(reader, ())) != COLUMNS:
            continue  # not an export of the audit log
        for _, occurred, client, school, sid, action, detail in reader:
            listed = student in json.loads(detail or "{}").get("student_ids", [])
            if sid != str(student) and not listed:
                continue
            cid = int(client) if client else None
            name, prefix, klass = keys.get(cid or -1, (None, None, None))
            found.append(
                Access(
                    occurred,
                    WHAT.get(action, action),
                    action,
                    cid,
                    name,
                    prefix,
                    klass,
                    int(school) if school else None,
                    key,
                )
            )
    return found


def report(accesses: list[Access], fmt: str) -> str:
    """The report as CSV (a header and a row per access) or JSON (a list of objects)."""
    ordered = sorted(accesses, key=lambda a: (a.occurred_at, a.action))
    if fmt == "json":
        return json.dumps([asdict(a) for a in ordered], indent=1)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(FIELDS)
    writer.writerows([getattr(a, f) for f in FIELDS] for a in ordered)
    return buf.getvalue()
