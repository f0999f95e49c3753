"""5,000 concurrent sessions on at most 30 database connections: whether the API serves a
50-school district's users at once through a small pool rather than a connection per session.

A district of 50 schools x 1,000 students is generated and trained on an embedded PostgreSQL;
each school gets its own API key. The API runs as the image runs it on a 2-vCPU node (two
workers) with a database pool of 15 per worker: 30 connections at most.

5,000 sessions each hold one keep-alive connection open for the whole run and ask for one
student's risk (GET /v1/students/{id}/risk: key check, features read under row-level
security, prediction, audit row written) every `--intervals` seconds, starting at random
offsets: an open loop, so a slow server cannot slow the offered load down, and latency is
measured from the moment a request was due, not from when it could be sent. Each request is
for a student the session has not asked about before, so the risk cache never answers it.
While the load runs, pg_stat_activity is sampled for the API's connections (open, in use).

A run per interval, each for students no earlier run asked about: by default 5 s (1,000
requests per second: every one of the 5,000 users clicking every 5 s at once) for 30 s;
earlier reports ran 30 s and 15 s for 60 s (`--intervals 30 15 --seconds 60`).

    python -m benchmarks.concurrency [--sessions 5000] [--intervals 5] [--seconds 30]
        [--compare KEY=VALUE ...]   # the same runs beside a server with other settings
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from app.core import db
from app.core.auth import create_key
from app.core.settings import Settings
from benchmarks.common import (
    api_server,
    bench_settings,
    load_district,
    rss_mib,
    workdir,
    write_result,
)

SCHOOLS, STUDENTS = 50, 1000
WORKERS, POOL_PER_WORKER = 2, 15
CONNECT_AT_ONCE = 100  # connections opened concurrently while the sessions ramp up
P95_TARGET_MS = 200.0


@dataclass
class Run:
    """Shared by the sessions of one run."""

    port: int
    interval: float
    seconds: float
    go: asyncio.Event = field(default_factory=asyncio.Event)
    opening: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONNECT_AT_ONCE))
    t0: float = 0.0
    connected: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # Refusals by cause: the body's detail names it (admission control: "server busy"; the
    # pool's wait timeout and the breaker after it: "database unavailable"; ...).
    refusals: dict[str, int] = field(default_factory=dict)
    dropped: int = 0  # connections closed or reset by the server mid-run


async def session(run: Run, key: str, students: list[int], offset: float) -> None:
    async with run.opening:
        reader, writer = await asyncio.open_connection("127.0.0.1", run.port)
    run.connected += 1
    await run.go.wait()
    due, deadline = run.t0 + offset, run.t0 + run.seconds
    try:
        for student in students:
            if due >= deadline:
                break
            await asyncio.sleep(due - time.perf_counter())
            writer.write(
                f"GET /v1/students/{student}/risk HTTP/1.1\r\nHost: api\r\n"
                f"X-API-Key: {key}\r\n\r\n".encode()
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            run.latencies.append(time.perf_counter() - due)
            run.statuses[status] = run.statuses.get(status, 0) + 1
            if status != 200:
                cause = f"{status} {json.loads(body).get('detail')}"
                run.refusals[cause] = run.refusals.get(cause, 0) + 1
            due += run.interval
    except (ConnectionError, asyncio.IncompleteReadError):
        run.dropped += 1
    finally:
        writer.close()


async def drive(
    run: Run, sessions: int, keys: dict[int, str], first_student: dict[int, int], skip: int
) -> float:
    """Open every session's connection, then start the clock; returns the ramp-up seconds.
    The first `skip` students of each school (asked by earlier runs) are not asked again."""
    rng = random.Random(7)
    per_session = int(run.seconds / run.interval) + 1
    tasks = []
    ramp = time.perf_counter()
    for i in range(sessions):
        school = 1 + i % SCHOOLS
        # The sessions of a school ask about different students.
        base = skip + (i // SCHOOLS) * per_session
        students = [first_student[school] + (base + j) % STUDENTS for j in range(per_session)]
        offset = rng.uniform(0, run.interval)
        tasks.append(asyncio.create_task(session(run, keys[school], students, offset)))
    while run.connected < sessions:
        failed = next((t for t in tasks if t.done() and t.exception()), None)
        if failed is not None:
            raise RuntimeError(f"a session could not connect: {failed.exception()!r}")
        await asyncio.sleep(0.05)
    ramp_seconds = time.perf_counter() - ramp
    run.t0 = time.perf_counter() + 0.5
    run.go.set()
    await asyncio.gather(*tasks)
    return ramp_seconds


class PoolWatch(threading.Thread):
    """Samples the API's connections in pg_stat_activity (they are named ssp-api-*)."""

    def __init__(self, settings: Settings, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.settings, self.every = settings, every
        self.samples: list[tuple[int, int]] = []  # (open, in use)
        self.stop = threading.Event()

    def run(self) -> None:
        with db.connect_owner(self.settings, autocommit=True) as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state <> 'idle')"
                    " FROM pg_stat_activity WHERE application_name LIKE 'ssp-api-%'"
                ).fetchone()
                assert row is not None
                self.samples.append((int(row[0]), int(row[1])))
                time.sleep(self.every)


def measure(
    settings: Settings,
    server_pid: int,
    url: str,
    interval: float,
    args: argparse.Namespace,
    keys: dict[int, str],
    first_student: dict[int, int],
    skip: int,
) -> dict[str, Any]:
    """One run: every session opens its connection, then asks every `interval` seconds."""
    watch = PoolWatch(settings)
    watch.start()
    run = Run(port=int(url.rsplit(":", 1)[1]), interval=interval, seconds=args.seconds)
    started = time.perf_counter()
    ramp = uvloop.run(drive(run, args.sessions, keys, first_student, skip))
    elapsed = time.perf_counter() - started - ramp
    watch.stop.set()
    watch.join()
    children = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    workers = [
        p for p in children if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()
    ]
    lat_ms = [x * 1000 for x in run.latencies]
    # Interpolated percentiles, as benchmarks/queries.py computes them.
    p50, p95, p99 = (float(v) for v in np.percentile(lat_ms, [50, 95, 99]))
    errors = sum(n for status, n in run.statuses.items() if status != 200) + run.dropped
    return {
        "interval_seconds": interval,
        "offered_requests_per_second": round(args.sessions / interval, 1),
        "measured_seconds": round(elapsed, 1),
        "connect_ramp_seconds": round(ramp, 1),
        "requests": len(lat_ms),
        "requests_per_second": round(len(lat_ms) / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
        "refusals_by_cause": dict(sorted(run.refusals.items())),
        "connections_dropped": run.dropped,
        "errors": errors,
        "p50_ms": round(p50, 2),
        "p95_ms": round(p95, 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(max(lat_ms), 2),
        "db_connections_open_peak": max(s[0] for s in watch.samples),
        "db_connections_in_use_peak": max(s[1] for s in watch.samples),
        "db_connections_in_use_mean": round(statistics.mean(s[1] for s in watch.samples), 1),
        "pool_samples": len(watch.samples),
        "worker_rss_mib": [round(rss_mib(int(p)), 1) for p in workers],
        "meets_target": errors == 0 and p95 <= P95_TARGET_MS,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument(
        "--intervals",
        type=float,
        nargs="+",
        default=[5.0],
        help="seconds between a session's requests; one run per value",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured duration")
    parser.add_argument(
        "--compare",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="then the same runs on a server with these settings (e.g. the previous defaults)",
    )
    args = parser.parse_args()
    args.compare = dict(pair.split("=", 1) for pair in args.compare)

    with workdir("concurrency") as work:
        settings = bench_settings(work)
        load_district(settings, SCHOOLS, STUDENTS)
        keys: dict[int, str] = {}
        with db.connect_owner(settings) as conn:
            for school in range(1, SCHOOLS + 1):
                _, keys[school] = create_key(
                    conn, settings.api_key_pepper, f"school {school}", school_id=school
                )
            first_student = dict(
                conn.execute("SELECT school_id, min(id) FROM students GROUP BY school_id")
            )
        asked = sum(args.sessions // SCHOOLS * (int(args.seconds / i) + 1) for i in args.intervals)
        if asked > STUDENTS:  # else later runs would ask for students earlier runs cached
            raise SystemExit(
                f"the runs would ask for {asked} students per school; {STUDENTS} exist"
            )
        # Each server starts with an empty risk cache (in process: no Redis here), so the
        # compared server may ask for the same students again.
        variants = {"ours": {}, **({"compared": args.compare} if args.compare else {})}
        runs: dict[str, list[dict[str, Any]]] = {}
        for name, env in variants.items():
            url, server = api_server(
                settings,
                WORKERS=str(WORKERS),
                DB_POOL_MAX=str(POOL_PER_WORKER),
                # The per-key limit would answer 429 here: 100 sessions share each school's
                # key.
                RATE_LIMIT_INTERACTIVE_REQUESTS="1000000000",
                **env,
            )
            runs[name], skip = [], 0
            # Each server starts with the earlier writes on disk (the district's bulk load,
            # the last server's audit rows): a checkpoint's flush then falls in nobody's run.
            with db.connect_owner(settings, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            with server as proc:
                for interval in args.intervals:
                    runs[name].append(
                        measure(settings, proc.pid, url, interval, args, keys, first_student, skip)
                    )
                    skip += (args.sessions // SCHOOLS) * (int(args.seconds / interval) + 1)
                    print(name, runs[name][-1], flush=True)
    result = {
        "sessions": args.sessions,
        "api_workers": WORKERS,
        "db_pool_max_total": WORKERS * POOL_PER_WORKER,
        "runs": runs["ours"],
        **({"compared": {"env": args.compare, "runs": runs["compared"]}} if args.compare else {}),
    }
    write_result("concurrency", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
