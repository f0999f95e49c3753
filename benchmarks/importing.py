"""Import throughput and memory: `python -m benchmarks.importing [--schools 50 --students 1000
--days 180]` writes a native bundle of a district with a school year of daily attendance
(50 x 1,000 x 180 = 9 million attendance rows), then times `python -m app import` on it as
its own process: a first import (every row new), an unchanged re-import (the nightly delta of
a quiet night), and a first import of a fifth of the district, whose peak memory shows that
memory does not grow with file size. Each method of the write runs on a database of its own,
one after the other in the same run: rows equal to the stored ones left out by one set-based
comparison before the upsert (the default), and the upsert alone comparing every row
(IMPORT_SKIP_UNCHANGED=false, the method before). Rows per second count every staged row of
every file, through staging and validation (`validated_rows_per_second`) and end to end with
the write (`rows_per_second`); peak memory is the import process's own (VmHWM; the server's
is bounded by its own settings), read from /proc while it runs; the load average before and
after each import says what else the machine ran. Records benchmarks/results/importing.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from app.core import db
from app.core.logins import IMPORTER_LOGIN
from benchmarks.common import ROOT, bench_settings, rss_mib, workdir, write_result

STATUSES = np.array(["present", "absent", "late", "excused"])


def write_bundle(root: Path, prefix: str, schools: int, students: int, days: int) -> int:
    """The district as its system would export it; the bundle's size in bytes."""
    rng = np.random.default_rng(11)
    root.mkdir(parents=True)
    day0 = date(2025, 9, 1)
    school_days = [d for d in (day0 + timedelta(i) for i in range(days * 2)) if d.weekday() < 5]
    dates = [d.isoformat() for d in school_days[:days]]
    names = ("districts", "schools", "students", "exams", "results", "attendance", "incidents")
    files = {n: (root / f"{n}.csv").open("w") for n in names}
    files["districts"].write("sourced_id,name\nD,Benchmark district\n")
    files["schools"].write("sourced_id,district_sourced_id,name\n")
    files["students"].write(
        "sourced_id,school_sourced_id,first_name,last_name,grade,enrolled_on,is_active,dropped_out\n"
    )
    files["exams"].write("sourced_id,school_sourced_id,subject,held_on,max_marks\n")
    files["results"].write("student_sourced_id,exam_sourced_id,marks_obtained\n")
    files["attendance"].write("student_sourced_id,date,status\n")
    files["incidents"].write("sourced_id,student_sourced_id,occurred_at,severity,category\n")
    for s in range(schools):
        school = f"{prefix}{s:03d}"
        files["schools"].write(f"{school},D,School {s}\n")
        exams = [f"{school}-E{e}" for e in range(6)]
        held = [dates[(i + 1) * len(dates) // 7] for i in range(6)]
        files["exams"].writelines(
            f"{e},{school},maths,{d},100\n" for e, d in zip(exams, held, strict=True)
        )
        status = rng.choice(4, size=(students, days), p=[0.9, 0.06, 0.03, 0.01])
        marks = rng.integers(0, 101, size=(students, 6))
        for k in range(students):
            sid = f"{school}-{k:05d}"
            dropped = "true" if rng.random() < 0.15 else "false"
            files["students"].write(f"{sid},{school},Ana,Silva,{6 + k % 7},2025-09-01,,{dropped}\n")
            row = STATUSES[status[k]]
            files["attendance"].write(
                "".join(f"{sid},{d},{st}\n" for d, st in zip(dates, row, strict=True))
            )
            files["results"].write(
                "".join(f"{sid},{e},{m}\n" for e, m in zip(exams, marks[k], strict=True))
            )
            if k % 4 == 0:
                files["incidents"].write(f"{sid}-I,{sid},2025-10-01T10:00:00Z,2,disruption\n")
    for f in files.values():
        f.close()
    return sum(p.stat().st_size for p in root.iterdir())


def run_import(settings_env: dict[str, str], bundle: Path) -> dict[str, Any]:
    """`python -m app import` as its own process: its summary, seconds and peak memory."""
    load_before = os.getloadavg()[0]  # the machine is shared: what else ran beside it
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "import", str(bundle)],
        cwd=ROOT, env=settings_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    peak = 0.0
    while proc.poll() is None:  # its own high-water mark, read until it exits
        with contextlib.suppress(OSError, IndexError):
            peak = max(peak, rss_mib(proc.pid, "VmHWM"))
        time.sleep(0.2)
    stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"import exited with {proc.returncode}: {stderr[-2000:]}")
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    rows = int(summary["rows"])
    return {
        "rows": rows,
        "seconds": round(seconds, 1),
        "rows_per_second": round(rows / seconds),
        # Staged and validated (COPY, every check), before the write: the import's own work.
        "validated_rows_per_second": round(
            rows / (summary["phases"]["stage"] + summary["phases"]["validate"])
        ),
        "phases_seconds": summary["phases"],
        "peak_rss_mib": round(peak, 1),
        "load_average_1min": {
            "before": round(load_before, 2),
            "after": round(os.getloadavg()[0], 2),
        },
        "tables": {
            k: {x: v[x] for x in ("new", "updated", "unchanged")}
            for k, v in summary["tables"].items()
        },
    }


# IMPORT_SKIP_UNCHANGED of each method.
METHODS = {"unchanged_left_out_first": "true", "upsert_alone": "false"}


def imports(work: Path, method: str, skip_unchanged: str) -> dict[str, Any]:
    """The small district's first import, then the full one's first import and its unchanged
    re-import, on a database of their own, with the method's setting."""
    settings = bench_settings(work / method)
    db.migrate(settings)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "DATABASE_URL": db.primary_url(settings, IMPORTER_LOGIN),
        "LOG_LEVEL": "WARNING",
        "IMPORT_SKIP_UNCHANGED": skip_unchanged,
    }
    done = {}
    for name, bundle in (
        ("small_first_import", "small"),
        ("first_import", "full"),
        ("unchanged_reimport", "full"),
    ):
        done[name] = run_import(env, work / bundle)
        print(f"{method}, {name}: {done[name]}", flush=True)
    db.stop_embedded()  # one server at a time on the machine
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.importing", description=__doc__)
    parser.add_argument("--schools", type=int, default=50)
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--days", type=int, default=180)
    args = parser.parse_args(argv)
    with workdir("import") as work:
        small_schools = max(1, args.schools // 5)
        bundles = {}
        for label, schools in (("small", small_schools), ("full", args.schools)):
            size = write_bundle(work / label, label[0].upper(), schools, args.students, args.days)
            bundles[label] = (schools, size)
            print(f"{label} bundle: {schools} schools, {size / 2**20:.0f} MiB", flush=True)
        runs = {method: imports(work, method, skip) for method, skip in METHODS.items()}
        ours = runs["unchanged_left_out_first"]
        write_result(
            "importing",
            {
                "district": {
                    "schools": args.schools,
                    "students_per_school": args.students,
                    "school_days": args.days,
                },
                "bundle_mib": round(bundles["full"][1] / 2**20, 1),
                # Each method on a database of its own, one after the other in this run.
                "first_import": ours["first_import"],
                "unchanged_reimport": ours["unchanged_reimport"],
                "upsert_alone": runs["upsert_alone"],
                "small_first_import": {
                    "schools": small_schools,
                    "bundle_mib": round(bundles["small"][1] / 2**20, 1),
                    **ours["small_first_import"],
                },
                "target_rows_per_second": {"first_import": 200_000, "unchanged_reimport": 150_000},
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
