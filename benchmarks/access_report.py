"""The access report (FERPA: who accessed a student's records) at scale: 20M audit-log rows
over 12 monthly partitions by default, 70 % single reads (audit_log.student_id), 30 % at-risk
list reads naming 20 students each (detail.student_ids), over 100,000 students.

Times student_accesses() (migration 0021), as `python -m app access-report` calls it (the
archiver's login), for random students, and prints the plans of its two scans.

    venv/bin/python -m benchmarks.access_report [--rows 20000000] [--runs 50]

Records benchmarks/results/access_report.json. Target: under a second per report.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from app.core import db
from app.core.logins import ARCHIVER_LOGIN
from benchmarks.common import bench_settings, workdir, write_result
from benchmarks.training_scale import generate_sql

BATCH = 1_000_000
LIST_SIZE = 20
# One batch of rows; %(n)s rows, %(students)s students, spread over 12 months before now.
ROWS = f"""
INSERT INTO audit_log (occurred_at, client_id, school_id, student_id, action, detail)
SELECT now() - (random() * interval '360 days'), 1 + (g %% 8), 1 + (g %% 100),
       CASE WHEN g %% 10 < 7 THEN 1 + (random() * (%(students)s - 1))::bigint END,
       CASE WHEN g %% 10 < 7 THEN 'read_student_risk' ELSE 'read_at_risk_list' END,
       CASE WHEN g %% 10 < 7 THEN '{{"cache": "miss"}}'::jsonb
            ELSE jsonb_build_object('student_ids', (
                SELECT jsonb_agg(x) FROM (
                    SELECT 1 + (random() * (%(students)s - 1))::bigint + 0 * g AS x
                    FROM generate_series(1, {LIST_SIZE})) ids)) END
FROM generate_series(1, %(n)s) g
"""


def load(settings: object, rows: int, students: int) -> float:
    started = time.perf_counter()
    with db.connect_owner(settings) as conn:  # type: ignore[arg-type]
        conn.execute(
            "SELECT audit_log_ensure_partitions((now() - interval '13 months')::date, now()::date)"
        )
        conn.commit()
        done = 0
        while done < rows:
            n = min(BATCH, rows - done)
            conn.execute(ROWS, {"n": n, "students": students})
            conn.commit()
            done += n
            print(f"  {done:,} audit rows", flush=True)
        conn.execute("ANALYZE audit_log")
        conn.commit()
    return time.perf_counter() - started


def plans(settings: object, student: int) -> dict[str, str]:
    found = {}
    with db.connect_owner(settings, autocommit=True) as conn:  # type: ignore[arg-type]
        for name, where in (
            ("single reads", "student_id = %s"),
            ("list reads", "detail -> 'student_ids' @> jsonb_build_array(%s::bigint)"),
        ):
            rows = conn.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT occurred_at, client_id, action"
                f" FROM audit_log WHERE {where}",
                (student,),
            ).fetchall()
            found[name] = "\n".join(r[0] for r in rows)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--schools", type=int, default=100)
    parser.add_argument("--students", type=int, default=1000, help="students per school")
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    students = args.schools * args.students
    with workdir("access-report") as work:
        settings = bench_settings(work)
        db.migrate(settings)
        generate_sql(settings, args.schools, args.students)
        load_seconds = load(settings, args.rows, students)
        rng = random.Random(7)
        timings, found = [], []
        with db.connect_as(settings, ARCHIVER_LOGIN, autocommit=True) as conn:
            for _ in range(args.runs):
                sid = str(rng.randint(1, students))
                started = time.perf_counter()
                n = len(conn.execute("SELECT * FROM student_accesses(%s)", (sid,)).fetchall())
                timings.append((time.perf_counter() - started) * 1000)
                found.append(n)
        explained = plans(settings, rng.randint(1, students))
    timings.sort()
    result = {
        "audit_rows": args.rows,
        "students": students,
        "load_seconds": round(load_seconds, 1),
        "runs": args.runs,
        "accesses_per_report_median": statistics.median(found),
        "ms_p50": round(statistics.median(timings), 1),
        "ms_p95": round(timings[int(0.95 * (len(timings) - 1))], 1),
        "ms_max": round(timings[-1], 1),
        "target_ms": 1000,
        "plans": explained,
    }
    for name, plan in explained.items():
        print(f"--- {name}\n{plan}")
    print({k: v for k, v in result.items() if k != "plans"})
    write_result("access_report", result)


if __name__ == "__main__":
    main()
