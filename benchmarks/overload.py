"""Overload: GET /v1/students/{id}/risk at twice its measured capacity, with and without
admission control (MAX_IN_FLIGHT).

A district of 10 schools x 1,000 students is generated and trained on an embedded PostgreSQL.
The API runs as the image runs it (two workers, no Redis, the risk cache off so every request
reads the database and writes its audit row). First the capacity: a closed loop of
`--concurrency` connections for `--seconds`, requests per second served. Then an open loop at
`--factor` times that rate for `--seconds` on `--connections` keep-alive connections, each
request timed from the moment it was due (a slow server cannot slow the offered load down):
the p50/p99 of the requests served (200) and of the time to refuse the rest (503 with
Retry-After), once per MAX_IN_FLIGHT value (a huge one is no admission control).

    python -m benchmarks.overload [--factor 2] [--seconds 20] [--max-in-flight 64 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from typing import Any

import numpy as np
import uvloop

from app.core import db
from app.core.auth import create_key
from benchmarks.common import api_server, bench_settings, load_district, workdir, write_result

SCHOOLS, STUDENTS = 10, 1000
WORKERS = 2


async def request(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], key: str, student: int
) -> int:
    reader, writer = conn
    path = f"/v1/students/{student}/risk"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: api\r\nX-API-Key: {key}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return int(head.split(b" ", 2)[1])


async def closed_loop(port: int, key: str, students: list[int], n: int, seconds: float) -> float:
    """Requests per second served by `n` connections asking back to back."""
    done = 0
    ids = itertools.cycle(students)
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        conn = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            if await request(conn, key, next(ids)) == 200:
                done += 1
        conn[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n)))
    return done / (time.perf_counter() - started)


async def open_loop(
    port: int, key: str, students: list[int], rate: float, seconds: float, connections: int
) -> dict[int, list[float]]:
    """Requests due at `rate` per second; latencies (from due) per status."""
    conns: asyncio.Queue[Any] = asyncio.Queue()
    for _ in range(connections):
        conns.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    out: dict[int, list[float]] = {}
    ids = itertools.cycle(students)
    t0 = time.perf_counter() + 0.2

    async def one(due: float, student: int) -> None:
        conn = await conns.get()  # waiting for a free connection counts as latency
        status = await request(conn, key, student)
        out.setdefault(status, []).append(time.perf_counter() - due)
        conns.put_nowait(conn)

    tasks = []
    for i in range(int(rate * seconds)):
        due = t0 + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(due, next(ids))))
    await asyncio.gather(*tasks)
    while not conns.empty():
        conns.get_nowait()[1].close()
    return out


def summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"count": 0}
    ms = [x * 1000 for x in latencies]
    p50, p99 = (float(v) for v in np.percentile(ms, [50, 99]))
    return {"count": len(ms), "p50_ms": round(p50, 1), "p99_ms": round(p99, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=32, help="of the capacity run")
    parser.add_argument("--connections", type=int, default=400, help="of the overload run")
    parser.add_argument("--max-in-flight", type=int, nargs="+", default=[64, 1_000_000])
    args = parser.parse_args()

    runs = []
    with workdir("overload") as work:
        settings = bench_settings(work)
        load_district(settings, SCHOOLS, STUDENTS)
        with db.connect_owner(settings) as conn:
            _, key = create_key(conn, settings.api_key_pepper, "district", district_id=1)
            students = [int(r[0]) for r in conn.execute("SELECT id FROM students ORDER BY id")]
        for limit in args.max_in_flight:
            url, server = api_server(
                settings,
                WORKERS=str(WORKERS),
                MAX_IN_FLIGHT=str(limit),
                CACHE_TTL_RISK_SECONDS="0",  # every request reads the database
                RATE_LIMIT_INTERACTIVE_REQUESTS="1000000000",
            )
            port = int(url.rsplit(":", 1)[1])
            with server:
                capacity = uvloop.run(
                    closed_loop(port, key, students, args.concurrency, args.seconds / 2)
                )
                rate = capacity * args.factor
                by_status = uvloop.run(
                    open_loop(port, key, students, rate, args.seconds, args.connections)
                )
            offered = int(rate * args.seconds)
            run = {
                "max_in_flight_per_worker": limit,
                "capacity_requests_per_second": round(capacity, 1),
                "offered_requests_per_second": round(rate, 1),
                "offered_requests": offered,
                "statuses": {str(k): len(v) for k, v in sorted(by_status.items())},
                "served_200": summary(by_status.get(200, [])),
                "shed_503": summary(by_status.get(503, [])),
            }
            print(run, flush=True)
            runs.append(run)
    write_result("overload", {"api_workers": WORKERS, "factor": args.factor, "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
