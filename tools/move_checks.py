"""What the rehearsal of a move (``tools.rehearse_growth``) compares before and after it: the
digests of what must survive, read as the embedded superuser (row-level security does not
filter it), the messages a queue holds, a worker's counters, and what the move changes in the
ConfigMap and the Secrets the workloads read."""

from __future__ import annotations

from typing import Any, NamedTuple

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from tools.harness import StackRun
from tools.manifests import CONFIG_MAP, SECRET, source_data
from tools.standins import LOOPBACK, sqs_client


class Kept(NamedTuple):  # what must survive, per table: (rows, md5 of the rows in order)
    rows: int
    digest: str


# Each table that must survive a move, with the order its rows are digested in.
SURVIVES = {
    "students": ("students", "id"),
    "schools": ("schools", "id"),
    "risk scores": ("risk_scores", "generation, student_id"),
    "audit rows": ("audit_log", "id"),
    "events": ("student_events", "school_id, idempotency_key"),
    "API keys": ("api_clients", "id"),
    "table queue": ("event_queue", "id"),
}
# After the move some tables legitimately grow (new events, audited reads) or change (the
# pending students rescored): what existed before is compared, by this filter.
STILL_THERE = {
    "students": "",
    "schools": "",
    "API keys": "",
    "audit rows": "t.id <= %(audit_max)s",
    "events": "t.received_at <= %(before)s",
}


def digests(url: str, names: dict[str, str] | None = None, **params: Any) -> dict[str, Kept]:
    """Rows and digest of each table of ``SURVIVES`` (or of ``names``, with their filters)."""
    wanted = names if names is not None else dict.fromkeys(SURVIVES, "")
    found: dict[str, Kept] = {}
    with psycopg.connect(url) as conn:
        for name, where in wanted.items():
            table, order = SURVIVES[name]
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY {}), ''))"
                " FROM {} t {}"
            ).format(
                sql.SQL(order), sql.Identifier(table), sql.SQL(f"WHERE {where}" if where else "")
            )
            row = conn.execute(query, params).fetchone()
            assert row is not None
            found[name] = Kept(int(row[0]), str(row[1]))
    return found


def lost(before: dict[str, Kept], after: dict[str, Kept]) -> list[str]:
    """What differs, one text per table."""
    return [
        f"{name}: {before[name].rows} rows -> {after[name].rows}"
        + ("" if before[name].rows != after[name].rows else " (their content changed)")
        for name in before
        if after.get(name) != before[name]
    ]


def marks(url: str) -> dict[str, Any]:
    """The markers ``STILL_THERE``'s filters read: the last audit row, the database's now."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0), now() FROM audit_log").fetchone()
    assert row is not None
    return {"audit_max": row[0], "before": row[1]}


def pending(url: str, backend: str, queue_url: str | None) -> int:
    """Messages not yet processed: in the table queue (dead letters aside) or in SQS (waiting
    and in flight)."""
    if backend == "postgres":
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM event_queue WHERE dead_at IS NULL").fetchone()
        return int(row[0]) if row else 0
    assert queue_url, "QUEUE_BACKEND=sqs without EVENTS_QUEUE_URL"
    endpoint = queue_url.rsplit("/", 2)[0]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = sqs_client(endpoint).get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(got["Attributes"][n]) for n in names)


def counter(port: int, name: str) -> float:
    """A worker's counter (``<name>_total``) on its /metrics; 0 while it has none."""
    text = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_total":
                return float(sample.value)
    return 0.0


def changed_keys(lower: StackRun, higher: StackRun) -> list[str]:
    """What the move changes in each ConfigMap and Secret, by key (a Secret's values are never
    shown): ``workloads-config: QUEUE_BACKEND postgres->sqs, +EVENTS_QUEUE_URL``."""
    found = []
    for type_ in (CONFIG_MAP, SECRET):
        old = {r.name: source_data(r) for r in lower.of_type(type_)}
        new = {r.name: source_data(r) for r in higher.of_type(type_)}
        for name in sorted(set(old) | set(new)):
            a, b = old.get(name, {}), new.get(name, {})
            if name not in old or name not in new:
                found.append(f"{name} {'created' if name in new else 'deleted'}")
                continue
            keys = []
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    keys.append(f"{'+' if key in b else '-'}{key}")
                elif a[key] != b[key]:
                    shown = (
                        f" {a[key]}->{b[key]}" if type_ == CONFIG_MAP and len(a[key]) < 20 else ""
                    )
                    keys.append(f"{key}{shown}")
            if keys:
                found.append(f"{name}: {', '.join(keys)}")
    return found
