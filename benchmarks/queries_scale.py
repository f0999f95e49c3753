"""The form-master screens' queries and the at-risk page at national scale: 1,000 schools x
1,000 students (1M students) and 20M audit-log rows by default, with EXPLAIN plans.

The same five queries, timing and EXPLAIN as ``benchmarks.queries`` (imported from there, and
the at-risk page's SQL from app/api/queries.py), on a district generated in SQL
(``benchmarks.training_scale``: generate_series, no row through Python) plus a form master and
a counsellor per school, every active student scored in the served generation (in SQL: these
are query timings, not a training run) and the history of ``benchmarks.queries`` scaled with
the schools: 4 API clients, 500 intervention cases, 1,000 alerts and 20,000 audit-log rows
(180 days) per school.

    venv/bin/python -m benchmarks.queries_scale [--schools 1000] [--runs 300] [--keep DIR]

Building the district and its history takes most of an hour on 2 vCPU; `--keep DIR` keeps it
in DIR (its database stopped, not deleted) and a later run with the same DIR measures it again
after migrating it to the current schema (new indexes included), as an upgrade would.

Records benchmarks/results/queries_scale.json. Target (issue 17): p95 at most 10 ms each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.core import db
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from benchmarks.common import bench_settings, workdir, write_result
from benchmarks.queries import (
    BASELINE_SQL,
    TABLES_READ,
    TARGET_P95_MS,
    load_history,
    measure,
    scalar,
)
from benchmarks.training_scale import generate_sql

PER_SCHOOL = {"clients": 4, "cases": 500, "alerts": 1_000, "audit_rows": 20_000}
AUDIT_DAYS = 180

STAFF_AND_SCORES = (
    "INSERT INTO staff (school_id, name, email, role)"
    " SELECT sc.id, r || ' ' || sc.id, r || '.' || sc.id || '@scale.example', r"
    " FROM schools sc, unnest(ARRAY['form_master', 'counsellor']) r",
    # The served generation's scores: what the training run writes (app/model/scoring.py).
    "INSERT INTO risk_scores (generation, student_id, school_id, risk, model_version)"
    " SELECT %(gen)s, id, school_id, random(), 'scale' FROM students WHERE is_active",
)


# The features every page looks up for its reasons (the nightly job's refresh).
REFRESH_FEATURES = "REFRESH MATERIALIZED VIEW student_features"
BUILT = "built.json"  # in a kept directory: the setup its district was built with


@contextlib.contextmanager
def kept(directory: str | None) -> Iterator[Path]:
    """A temporary work directory, or `directory` kept after the run (its database stopped)."""
    if directory is None:
        with workdir("queries-scale") as work:
            yield work
        return
    work = Path(directory).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        yield work
    finally:
        db.stop_embedded()


def build(settings: Settings, schools: int, students: int) -> dict[str, Any]:
    """The district, its staff and scores, and its history: the setup recorded."""
    started = time.perf_counter()
    generated = generate_sql(settings, schools, students)
    gen = ModelStore(settings.model_store_url).pointer().generation
    with db.connect_owner(settings) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        for table in ("staff", "risk_scores"):
            conn.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        for statement in STAFF_AND_SCORES:
            conn.execute(statement, {"gen": gen})
        for table in ("staff", "risk_scores"):
            conn.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        conn.execute(REFRESH_FEATURES)
    district_seconds = time.perf_counter() - started
    print(f"district generated in {district_seconds:.0f} s", flush=True)
    started = time.perf_counter()
    history = {k: v * schools for k, v in PER_SCHOOL.items()} | {"days": AUDIT_DAYS}
    counts = load_history(settings, history)
    history_seconds = time.perf_counter() - started
    print(f"history loaded and vacuumed in {history_seconds:.0f} s: {counts}", flush=True)
    return {
        "schools": schools,
        "students_per_school": students,
        "district_seconds": round(district_seconds, 1),
        "generated_rows": generated["rows"],
        "history_seconds": round(history_seconds, 1),
        "counts": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=1000)
    parser.add_argument("--students", type=int, default=1000, help="students per school")
    parser.add_argument("--runs", type=int, default=300, help="timed runs per query")
    parser.add_argument("--runs-without", type=int, default=0, help="runs without indexes")
    parser.add_argument("--keep", metavar="DIR", help="keep the district in DIR; reuse it if built")
    args = parser.parse_args()
    with kept(args.keep) as work:
        settings = bench_settings(work)
        db.migrate(settings)  # a kept district: brought to the current schema
        built = work / BUILT
        if built.exists():
            setup = json.loads(built.read_text())
            print(f"reusing the district built in {work}", flush=True)
            with db.connect_owner(settings) as conn:
                # Built before the scores stored their 30-day baseline (migration 0022).
                for statement in BASELINE_SQL:
                    conn.execute(statement)
                # Built before the features were refreshed: the page looks them up.
                if not scalar(conn, "SELECT EXISTS (SELECT 1 FROM student_features)"):
                    conn.execute(REFRESH_FEATURES)
            with db.connect_owner(settings, autocommit=True) as conn:
                conn.execute(f"VACUUM (ANALYZE) {', '.join(TABLES_READ)}")
        else:
            setup = build(settings, args.schools, args.students)
            if args.keep:
                built.write_text(json.dumps(setup))
        measured = measure(settings, args.runs, args.runs_without)
        with db.connect_owner(settings, autocommit=True) as conn:
            server = scalar(conn, "SHOW server_version")
            shared_buffers = scalar(conn, "SHOW shared_buffers")
    write_result(
        "queries_scale",
        {
            "postgres": server,
            "shared_buffers": shared_buffers,
            "target_p95_ms": TARGET_P95_MS,
            "setup": setup,
            "timing": "client side, execute + fetchall, one client, warm cache, loopback",
            **measured,
        },
    )


if __name__ == "__main__":
    main()
