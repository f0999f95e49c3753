"""Throughput and latency of POST /invocations for one API instance (one uvicorn worker).

Sets up its own embedded PostgreSQL and a small trained district in a temp directory, starts
`python -m app serve` on a free localhost port, then drives it with a fixed number of
concurrent HTTP/1.1 keep-alive clients for a bounded time, and prints requests/s, p50, p95.

    python benchmarks/app_invocations.py [--seconds 20] [--concurrency 8] [--rows 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import db  # noqa: E402
from app.config import Settings  # noqa: E402
from app.demo import free_port  # noqa: E402
from app.generate import generate  # noqa: E402
from app.train import run_training  # noqa: E402

ROW = {"grade": 9, "attendance_rate": 0.7, "absences": 18, "lates": 4, "avg_mark": 48.0,
       "min_mark": 22.0, "failed_exams": 2, "incidents": 3, "severe_incidents": 1}  # fmt: skip


async def drive(port: int, body: bytes, seconds: float, concurrency: int) -> list[float]:
    """`concurrency` keep-alive connections, each sending one request after the other. A bare
    asyncio HTTP/1.1 client: a full HTTP library would use more of the 2 cores than the server."""
    request = (
        f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                payload = await reader.readexactly(length)
                if status != b"200":
                    raise RuntimeError(f"{status!r}: {payload[:200]!r}")
                latencies.append(time.perf_counter() - started)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1, help="instances per request")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ssp-bench-"))
    settings = Settings(embedded_pg_dir=work / "pg", model_store_url=str(work / "models"),
                        api_key_pepper="bench-only-pepper", redis_url=None)  # fmt: skip
    proc = None
    try:
        db.migrate(settings)
        with db.connect_owner(settings) as conn:
            generate(conn, schools=10, students_per_school=300, progress=False)
        run_training(settings)
        port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": db.primary_url(settings),
            "PORT": str(port),
            "MODEL_STORE_URL": settings.model_store_url,
            "LOG_LEVEL": "WARNING",
            "API_KEY_PEPPER": "bench-only-pepper",
            "SAGEMAKER_DIR": str(work / "no-ml"),
        }
        proc = subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=ROOT, env=env)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ping").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        body = json.dumps({"instances": [{**ROW, "school_id": 1 + i % 10}
                                         for i in range(args.rows)]}).encode()  # fmt: skip
        asyncio.run(drive(port, body, 2, args.concurrency))  # warm-up
        started = time.perf_counter()
        lat = asyncio.run(drive(port, body, args.seconds, args.concurrency))
        elapsed = time.perf_counter() - started
        lat.sort()
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}",
            "rows_per_request": args.rows,
            "concurrency": args.concurrency,
            "requests": len(lat),
            "seconds": round(elapsed, 1),
            "requests_per_second": round(len(lat) / elapsed, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 2),
            "p95_ms": round(lat[int(len(lat) * 0.95) - 1] * 1000, 2),
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2),
        }
        print(json.dumps(result, indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        db.stop_embedded()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
