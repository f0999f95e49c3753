"""Sharded training at national scale: 1,000 schools x 1,000 students (1M students) by default.

In a fresh temp directory with its own embedded PostgreSQL:

1. generates the district in SQL (generate_series, INSERT ... SELECT: no row goes through
   Python): every student with a latent risk that drives absences, low marks, incidents and
   the dropout label (labelled: 4 students in 5), ATTENDANCE_DAYS days of attendance,
   EXAMS exams per school, an incident for some; timed, not part of training;
2. trains it as the nightly Indexed Job does: ``python -m app train --shard i/N --run bench``
   child processes with N = schools / SCHOOLS_PER_SHARD (the catalog's default), shard 0 first
   (it refreshes the features, fits the district model and opens the run), then the others,
   PARALLEL at a time (this machine's cores); the last publishes. Per shard: wall and CPU time
   and peak resident memory (``wait4`` rusage of that child alone), schools and students;
3. models tier4: 10,000 schools over its N = 40 shards of 250 schools, each shard on its own
   vCPU: opening (features refresh, district sample: linear in students) and publishing
   (scoring every student, the manifest: linear in students) scaled by 10,000 / schools, plus
   the wall time of one shard of 250 schools (measured here, at any size: a shard's work
   depends on its schools only).

    venv/bin/python -m benchmarks.training_scale [--schools 1000] [--students 1000]

Records benchmarks/results/training_scale.json. Targets (issue 17): 1,000 x 1,000 end to end
within 3 minutes on this machine, one shard's peak memory at most 1 GiB at any number of
schools, the modelled 10,000 schools under 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.core import db
from app.core.settings import Settings
from benchmarks.common import ROOT, api_env, bench_settings, workdir, write_result
from components.config.catalog import TIERS
from components.config.tier import TrainingSize

SCHOOLS_PER_SHARD = TrainingSize().schools_per_shard
PARALLEL = 2  # shards at once: this machine's cores
ATTENDANCE_DAYS = 5
EXAMS = 3
TIER4 = TIERS["tier4"]

# Each statement runs as the owner with FORCE ROW LEVEL SECURITY lifted inside the load's
# transaction (as app/jobs/generate.py does), foreign-key triggers skipped (ids are consistent by
# construction). risk(id) is a deterministic latent risk in [0, 1).
RISK = "((hashint8(id) & 1048575)::float8 / 1048576)"
LOAD = (
    "INSERT INTO districts (id, name) VALUES (1, 'Scale district')",
    "INSERT INTO schools (id, district_id, name)"
    " SELECT g, 1, 'School ' || g FROM generate_series(1, %(schools)s) g",
    "INSERT INTO students (id, school_id, first_name, last_name, grade, enrolled_on,"
    " is_active, dropped_out)"
    " SELECT id, (id - 1) / %(students)s + 1, 'Student', 'No ' || id, 1 + id %% 12,"
    " date '2025-09-01', true,"
    f" CASE WHEN id %% 5 = 0 THEN NULL ELSE random() < 0.03 + 0.5 * {RISK} ^ 3 END"
    " FROM generate_series(1, %(schools)s::bigint * %(students)s) id",
    "INSERT INTO attendance (school_id, student_id, date, status)"
    " SELECT s.school_id, s.id, date '2025-09-01' + d,"
    f" CASE WHEN random() < 0.02 + 0.3 * {RISK.replace('id', 's.id')} THEN 'absent'"
    " WHEN random() < 0.05 THEN 'late' ELSE 'present' END"
    f" FROM students s, generate_series(1, {ATTENDANCE_DAYS}) d",
    "INSERT INTO exams (id, school_id, subject, held_on, max_marks)"
    f" SELECT (sc.id - 1) * {EXAMS} + e, sc.id, 'maths', date '2025-10-01' + e, 100"
    f" FROM schools sc, generate_series(1, {EXAMS}) e",
    "INSERT INTO marks (school_id, student_id, exam_id, marks_obtained)"
    f" SELECT s.school_id, s.id, (s.school_id - 1) * {EXAMS} + e,"
    f" greatest(0, least(100, round((85 - 60 * {RISK.replace('id', 's.id')}"
    " + 15 * (random() - 0.5))::numeric, 2)))"
    f" FROM students s, generate_series(1, {EXAMS}) e",
    "INSERT INTO behaviour_incidents (school_id, student_id, occurred_at, severity, category)"
    " SELECT s.school_id, s.id, timestamptz '2025-10-15', 1 + (s.id %% 3)::int, 'disruption'"
    f" FROM students s WHERE random() < 0.6 * {RISK.replace('id', 's.id')}",
)
TABLES = ("schools", "students", "attendance", "exams", "marks", "behaviour_incidents")


def generate_sql(settings: Settings, schools: int, students: int) -> dict[str, Any]:
    started = time.perf_counter()
    with db.connect_owner(settings) as conn:
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute("SET LOCAL synchronous_commit = off")
        for table in TABLES:
            conn.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        for statement in LOAD:
            conn.execute(statement, {"schools": schools, "students": students})
        for table in TABLES:
            conn.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
    with db.connect_owner(settings) as conn:
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        rows = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]
    return {"seconds": round(time.perf_counter() - started, 1), "rows": rows}


def shard_child(settings: Settings, index: int, count: int) -> dict[str, Any]:
    """`python -m app train --shard index/count --run bench` as a child: its summary, wall
    and CPU time, peak RSS."""
    env = api_env(settings, port=0, LOG_LEVEL="WARNING")
    args = ["-m", "app", "train", "--shard", f"{index}/{count}", "--run", "bench"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"shard {index}/{count} failed:\n{stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {
        "shard": index,
        "schools": summary["schools"],
        "students": summary["students"],
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "open_seconds": summary["open_seconds"],
        "publish_seconds": (summary.get("published") or {}).get("seconds"),
        "published": summary.get("published"),
    }


def train_sharded(settings: Settings, count: int) -> dict[str, Any]:
    started = time.perf_counter()
    shards = [shard_child(settings, 0, count)]
    with ThreadPoolExecutor(PARALLEL) as pool:
        shards += list(pool.map(lambda i: shard_child(settings, i, count), range(1, count)))
    wall = time.perf_counter() - started
    (publisher,) = [s for s in shards if s["published"]]
    trained = [s for s in shards if s["schools"]]
    # One shard's own training: its wall time less opening (shard 0) and publishing (the last).
    own = [s["wall_seconds"] - s["open_seconds"] - (s["publish_seconds"] or 0) for s in trained]
    schools = sum(s["schools"] for s in trained)
    return {
        "shards": count,
        "end_to_end_seconds": round(wall, 1),
        "open_seconds": shards[0]["open_seconds"],
        "publish_seconds": publisher["publish_seconds"],
        "shard_train_seconds_max": round(max(own), 2),
        "seconds_per_school": round(sum(own) / schools, 4),
        "cpu_seconds_per_school": round(sum(s["cpu_seconds"] for s in shards) / schools, 4),
        "peak_rss_mib_max": max(s["peak_rss_mib"] for s in shards),
        "per_shard": [{k: v for k, v in s.items() if k != "published"} for s in shards],
        "published": publisher["published"],
    }


def model_tier4(run: dict[str, Any], schools: int) -> dict[str, Any]:
    """10,000 schools over tier4's N shards, each on its own vCPU (modelled, see above)."""
    target = TIER4.expected_schools
    n = TIER4.training.shards(target)
    per_shard = -(-target // n)
    scale = target / schools
    shard = run["seconds_per_school"] * per_shard
    total = scale * (run["open_seconds"] + run["publish_seconds"]) + shard
    return {
        "schools": target,
        "shards": n,
        "schools_per_shard": per_shard,
        "open_seconds": round(scale * run["open_seconds"], 1),
        "shard_seconds": round(shard, 1),
        "publish_seconds": round(scale * run["publish_seconds"], 1),
        "wall_minutes": round(total / 60, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=1000)
    parser.add_argument("--students", type=int, default=1000, help="students per school")
    args = parser.parse_args()
    count = max(1, -(-args.schools // SCHOOLS_PER_SHARD))
    with workdir("training-scale") as work:
        settings = bench_settings(work)
        db.migrate(settings)
        generated = generate_sql(settings, args.schools, args.students)
        print(f"generated in {generated['seconds']} s: {generated['rows']}", flush=True)
        run = train_sharded(settings, count)
    result = {
        "schools": args.schools,
        "students_per_school": args.students,
        "generate": generated,
        "training": run,
        "modelled_tier4": model_tier4(run, args.schools),
    }
    write_result("training_scale", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
