"""Events end to end on the PostgreSQL queue: `python -m benchmarks.events [--schools 20
--students 500 --workers 1]`. A trained district on the embedded PostgreSQL, the API (`python
-m app serve`, as ssp_api) and the worker (`python -m app worker`, as ssp_worker) as their own
processes, and a client posting batches of attendance events (one event per student and batch,
as a teacher marks a class; an integration key).

1. Throughput: as many events as the client can post, with the worker running; events per
   second from the first POST until the last student's risk is updated (the queue empty).
2. Lag at half that rate: batches paced at half the measured throughput, each student once,
   so each event's lag is exact: from just before its POST (client clock) to its student's
   risk_scores.scored_at (the worker's clock_timestamp at the update; same machine clock).

Records benchmarks/results/events.json. Prints numbers; asserts nothing about time."""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from app.core import db
from app.core.auth import create_key
from app.core.logins import API_LOGIN, WORKER_LOGIN
from app.core.settings import Settings
from app.demo import free_port
from benchmarks.common import (
    PEPPER,
    api_server,
    bench_settings,
    load_district,
    running,
    workdir,
    write_result,
)

BATCH = 500  # events per POST
TARGET_EVENTS_PER_SECOND = 2000
TARGET_P95_LAG_SECONDS = 2.0


def post_batches(url: str, key: str, batches: list[list[dict[str, Any]]], clients: int) -> None:
    def post(batch: list[dict[str, Any]]) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            r = http.post("/v1/events", json={"events": batch}, headers={"X-API-Key": key})
            assert r.status_code == 202 and not r.json()["rejected"], r.text[:300]

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post, batches))


def events_for(students: list[int], day: str, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "attendance_marked",
            "idempotency_key": f"{tag}-{s}-{day}",
            "student_id": s,
            "date": day,
            "status": "absent" if s % 7 == 0 else "present",
        }
        for s in students
    ]


def queue_empty(settings: Settings) -> bool:
    with db.connect_owner(settings, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM event_queue").fetchone()
    return row is not None and row[0] == 0


def wait_drained(settings: Settings, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while not queue_empty(settings):
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not drain the queue")
        time.sleep(0.02)
    return time.time()


def throughput(settings: Settings, url: str, key: str, students: list[int]) -> dict[str, Any]:
    days = [f"2026-10-{d:02d}" for d in range(1, 7)]  # every student, six school days
    batches = [
        events_for(students[i : i + BATCH], day, "t")
        for day in days
        for i in range(0, len(students), BATCH)
    ]
    total = sum(len(b) for b in batches)
    started = time.time()
    post_batches(url, key, batches, clients=4)
    posted = time.time()
    drained = wait_drained(settings)
    return {
        "events": total,
        "batch": BATCH,
        "post_seconds": round(posted - started, 2),
        "posted_events_per_second": round(total / (posted - started)),
        "end_to_end_seconds": round(drained - started, 2),
        "events_per_second": round(total / (drained - started)),
    }


def lag(settings: Settings, url: str, key: str, students: list[int], rate: float) -> dict[str, Any]:
    """Batches of 100 at `rate` events per second, each student once."""
    size = 100
    batches = [students[i : i + size] for i in range(0, len(students), size)]
    posted_at: dict[int, float] = {}
    interval = size / rate
    with httpx.Client(base_url=url, timeout=30) as http:
        start = time.monotonic()
        for n, batch in enumerate(batches):
            time.sleep(max(0.0, start + n * interval - time.monotonic()))
            sent = time.time()
            r = http.post(
                "/v1/events",
                json={"events": events_for(batch, "2026-10-20", "lag")},
                headers={"X-API-Key": key},
            )
            assert r.status_code == 202 and not r.json()["rejected"], r.text[:300]
            posted_at.update(dict.fromkeys(batch, sent))
        seconds = time.monotonic() - start
    wait_drained(settings)
    with db.connect_owner(settings, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT student_id, extract(epoch FROM scored_at) FROM risk_scores"
            " WHERE student_id = ANY(%s)"
            " AND generation = (SELECT max(generation) FROM risk_scores)",
            (list(posted_at),),
        ).fetchall()
    lags = np.array([float(t) - posted_at[int(s)] for s, t in rows])
    return {
        "events": len(posted_at),
        "rate_asked": round(rate),
        "rate_sent": round(len(posted_at) / seconds),
        "p50_lag_seconds": round(float(np.percentile(lags, 50)), 3),
        "p95_lag_seconds": round(float(np.percentile(lags, 95)), 3),
        "max_lag_seconds": round(float(lags.max()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--students", type=int, default=500, help="students per school")
    args = parser.parse_args()
    with workdir("events") as work:
        settings = bench_settings(work)
        started = time.perf_counter()
        load_district(settings, args.schools, args.students)
        setup_seconds = time.perf_counter() - started
        with db.connect_owner(settings) as conn:
            _, key = create_key(conn, PEPPER, "bench", district_id=1, key_class="integration")
            students = [int(r[0]) for r in conn.execute("SELECT id FROM students ORDER BY id")]
        print(f"district ready in {setup_seconds:.0f} s: {len(students)} students", flush=True)
        limits = {"RATE_LIMIT_INTEGRATION_REQUESTS": "1000000"}
        api_url, api = api_server(
            settings, "/ready", DATABASE_URL=db.primary_url(settings, API_LOGIN), **limits
        )
        metrics_port = free_port()
        worker_env = {
            "DATABASE_URL": db.primary_url(settings, WORKER_LOGIN),
            "MODEL_STORE_URL": settings.model_store_url,
            "WORKER_METRICS_PORT": str(metrics_port),
            "WORKER_POLL_SECONDS": "0.05",
            "LOG_LEVEL": "WARNING",
        }
        worker = running(
            [sys.executable, "-m", "app", "worker"],
            {**os.environ, **worker_env},
            f"http://127.0.0.1:{metrics_port}/healthz",
        )
        with api, worker:
            measured = throughput(settings, api_url, key, students)
            print(f"throughput: {measured}", flush=True)
            half = measured["events_per_second"] / 2
            lagged = lag(settings, api_url, key, students, half)
            print(f"lag at half rate: {lagged}", flush=True)
    write_result(
        "events",
        {
            "setup": {
                "schools": args.schools,
                "students_per_school": args.students,
                "district_and_training_seconds": round(setup_seconds, 1),
                "processes": "API (1 uvicorn worker), queue worker (1), client, PostgreSQL",
            },
            "targets": {
                "events_per_second": TARGET_EVENTS_PER_SECOND,
                "p95_lag_seconds": TARGET_P95_LAG_SECONDS,
            },
            "throughput": measured,
            "lag_at_half_rate": lagged,
        },
    )


if __name__ == "__main__":
    main()
