"""Prediction serving: our image's SageMaker contract against MLServer, same model, same load.

One run, one machine: a district of 50 schools x 1,000 students is generated and trained on an
embedded PostgreSQL; school 1's model file is then served twice:

- by `python -m app serve` (POST /invocations, the image's SageMaker contract), with one worker
  and with one worker per vCPU (what the image runs on a SageMaker instance);
- by MLServer 1.7 with mlserver-sklearn and its default settings (POST /v2/models/../infer,
  V2 protocol, `predict_proba` output), from its own virtualenv
  (benchmarks/requirements-mlserver.txt).

Both are driven by wrk over loopback at 32 and 256 keep-alive connections (closed loop), one
row per request. Both answers are checked to be the same probability first. Also reported: the
compute of one prediction in-process (sklearn's predict_proba against the served numpy twin),
and GET /v1/students/{id}/risk, which authenticates, reads the student's features from
PostgreSQL, predicts and writes the audit row, each request for a different student.

GET /v1/students/{id}/risk (with its RISK_REASONS=3 main reasons) is also measured beside the
same without reasons (RISK_REASONS=0), and side by side with its reference, a bare ASGI app
running the same SQL with the same audit write through the same driver
(benchmarks/raw_asgi.py), one worker each, 32 connections, uncached, with server-side
prepared statements (psycopg's prepare_threshold 5, tiers without RDS Proxy) and without
(none, proxy tiers), and beside ours with Python's default garbage collector settings (the
API before app.api.main.tune_gc). `--only student-risk` runs that part alone (no MLServer
needed).

What the cache costs and saves (`--only cache`, also part of the whole run): the same read as
deployed (the API's own login, tier1's pool per pod, access log at WARNING), one worker, 32
connections, with no Redis and with Redis (a local redis-server, emptied before each server),
each uncached (every request a student not asked before) and cached (a set of students read
once before the measured run), side by side in one run. `--baseline REF` runs the app of a
git revision beside it with the same load (the change's before and after in one run).

    python -m benchmarks.serving [--seconds 15] [--mlserver venv-mlserver/bin/mlserver]
    python -m benchmarks.serving --only student-risk [--seconds 10]
    python -m benchmarks.serving --only cache [--seconds 10] [--baseline main]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np

from app.core import db
from app.core.auth import create_key
from app.core.logins import API_LOGIN
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import FEATURES, pad_raw
from app.model.risk_model import fast_model
from benchmarks.common import (
    ROOT,
    ROW,
    WrkResult,
    api_env,
    api_server,
    app_at_revision,
    bench_settings,
    free_port,
    load_district,
    post_script,
    redis_server,
    require_wrk,
    running,
    workdir,
    write_result,
    wrk,
)
from components.config.capacity import pod_pool
from components.config.catalog import TIERS

SCHOOLS, STUDENTS = 50, 1000
CONNECTIONS = (32, 256)
MODEL = "dropout-risk"
# Targets of the benchmark issue (32 connections): throughput against MLServer, and p99.
TARGET_RATIO, TARGET_P99_MS = 3.0, 20.0
# Targets of GET /v1/students/{id}/risk (32 connections, one worker, uncached, audited).
RISK_TARGET_RPS, RISK_TARGET_P99_MS, RISK_TARGET_RATIO = 1000.0, 50.0, 0.6
PREPARE_THRESHOLDS = ("5", "none")  # DB_PREPARE_THRESHOLD: direct to PostgreSQL, RDS Proxy
# Ours as before the collector was tuned (app.api.main.tune_gc), run beside it: the change's
# before and after in one run.
GC_UNTUNED = {"GC_FREEZE": "false", "GC_YOUNG_THRESHOLD": "700"}
# What the cache must pay for (32 connections, one worker): uncached with Redis within 10 % of
# uncached without it, and cached at least 3x uncached.
CACHE_MISS_RATIO, CACHE_HIT_SPEEDUP = 0.9, 3.0
CACHED_STUDENTS = 1_000  # the cached runs ask for these, each read once before
DEPLOYED_TIER = "tier1"  # whose pool a pod gets (the measurement)


def prediction_compute(model: Any) -> dict[str, float]:
    """Microseconds for one row's probability: sklearn's model against its served twin."""
    x = pad_raw(np.array([[float(ROW[f]) for f in FEATURES]]))
    twin = fast_model(model)
    np.testing.assert_allclose(twin.predict_proba(x), model.predict_proba(x), atol=1e-12)

    def per_call(fn: Any, number: int) -> float:
        return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6

    return {
        "sklearn_predict_proba_us": round(per_call(lambda: model.predict_proba(x), 200), 1),
        "served_twin_predict_proba_us": round(per_call(lambda: twin.predict_proba(x), 20000), 2),
    }


def mlserver_repository(work: Path, model_file: Path) -> tuple[Path, int]:
    """A model repository for `mlserver start`, on free ports; settings left at defaults."""
    repo = work / "mlserver"
    (repo / MODEL).mkdir(parents=True)
    shutil.copy(model_file, repo / MODEL / "model.joblib")
    (repo / MODEL / "model-settings.json").write_text(
        json.dumps(
            {
                "name": MODEL,
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib", "version": "v1"},
            }
        )
    )
    port = free_port()
    ports = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}
    (repo / "settings.json").write_text(json.dumps(ports))
    return repo, port


def drive(url: str, script_for: Callable[[int], str], seconds: int) -> list[WrkResult]:
    """A 3 s warm-up (connections, caches, lazy imports), then one run per load level; run i
    uses script_for(i), warm-up being 0."""
    wrk(url, script_for(0), CONNECTIONS[0], 3)
    return [wrk(url, script_for(i), c, seconds) for i, c in enumerate(CONNECTIONS, 1)]


def risk_script(api_key: str, first_student: int, students: int, start: int) -> str:
    """GET /v1/students/{id}/risk, each request for the next student from `start` on, so that
    runs given starts far enough apart never ask for a cached student."""
    return f"""
wrk.headers["X-API-Key"] = "{api_key}"
n = {start}
function request()
  n = n + 1
  return wrk.format("GET", "/v1/students/" .. ({first_student} + n % {students}) .. "/risk")
end
"""


def raw_server(settings: Settings, **extra_env: str) -> tuple[str, Any]:
    """The reference (benchmarks/raw_asgi.py) under the same server as `serve` runs."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.raw_asgi:create_app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools"]
    cmd += ["--no-access-log", "--log-level", "warning"]
    return url, running(cmd, api_env(settings, port, **extra_env), f"{url}/ping")


def ok_per_second(row: dict[str, Any]) -> float:
    return round(row["requests_per_second"] * (1 - row["errors"] / max(1, row["requests"])), 1)


def student_risk_side_by_side(
    settings: Settings, key: str, first: int, count: int, seconds: int
) -> dict[str, Any]:
    """Ours and the reference, one worker each, 32 connections, per prepare_threshold: a 3 s
    warm-up, then the measured run, each server asked for students it has not served yet."""
    rows: dict[str, dict[str, Any]] = {}
    for threshold in PREPARE_THRESHOLDS:
        env = {"DB_PREPARE_THRESHOLD": threshold, "RATE_LIMIT_INTERACTIVE_REQUESTS": "1000000000"}
        for name, (url, server) in (
            ("ours", api_server(settings, WORKERS="1", **env)),
            # The same without reasons (RISK_REASONS=0): what the reasons cost.
            ("ours_no_reasons", api_server(settings, WORKERS="1", RISK_REASONS="0", **env)),
            ("ours_gc_untuned", api_server(settings, WORKERS="1", **env, **GC_UNTUNED)),
            ("raw_asgi", raw_server(settings, **env)),
        ):
            # Each server starts with the earlier writes on disk (the district's bulk load,
            # the last server's audit rows): a checkpoint's flush then falls in nobody's run.
            with db.connect_owner(settings, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            with server:
                target = f"{url}/v1/students/{first}/risk"
                wrk(target, risk_script(key, first, count, start=0), CONNECTIONS[0], 3)
                script = risk_script(key, first, count, start=count // 2)
                rows[f"{name}_prepare_{threshold}"] = wrk(
                    target, script, CONNECTIONS[0], seconds
                ).row()
    summary: dict[str, Any] = {}
    for threshold in PREPARE_THRESHOLDS:
        ours, raw = rows[f"ours_prepare_{threshold}"], rows[f"raw_asgi_prepare_{threshold}"]
        untuned = rows[f"ours_gc_untuned_prepare_{threshold}"]
        bare = rows[f"ours_no_reasons_prepare_{threshold}"]
        # Answered with a 200: a 503 (e.g. the pool timed out under load) is not served.
        rps, raw_rps = ok_per_second(ours), ok_per_second(raw)
        summary[f"prepare_{threshold}"] = {
            "ours_ok_requests_per_second": rps,
            "ours_errors": ours["errors"],
            "ours_p99_ms": ours["p99_ms"],
            "ours_no_reasons_ok_requests_per_second": ok_per_second(bare),
            "ours_no_reasons_p99_ms": bare["p99_ms"],
            "ours_gc_untuned_ok_requests_per_second": ok_per_second(untuned),
            "ours_gc_untuned_p99_ms": untuned["p99_ms"],
            "raw_asgi_ok_requests_per_second": raw_rps,
            "raw_asgi_p99_ms": raw["p99_ms"],
            "ratio_vs_raw_asgi": round(rps / raw_rps, 2),
            "meets_1000_rps_p99_50ms": rps >= RISK_TARGET_RPS
            and ours["p99_ms"] <= RISK_TARGET_P99_MS
            and ours["errors"] == 0,
            "meets_ratio_0_6": rps >= RISK_TARGET_RATIO * raw_rps,
        }
    return {"load_32_connections": rows, "summary": summary}


def cache_counts(url: str) -> dict[str, float]:
    """The server's ssp_cache_events_total by result (hit, miss, error), from /metrics."""
    counts: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("ssp_cache_events_total{"):
            labels, value = line.rsplit(" ", 1)
            counts[labels.split('result="')[1].split('"')[0]] = float(value)
    return counts


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(url: str, script: str, seconds: int, pid: int) -> dict[str, Any]:
    """One wrk run at 32 connections, with the load average at its start and the server's CPU
    per request (which, unlike the rate, holds on a machine shared with other work)."""
    load, cpu = load_average(), cpu_seconds(pid)
    run = wrk(url, script, CONNECTIONS[0], seconds).row()
    used = cpu_seconds(pid) - cpu
    return {
        **run,
        "load_average_1min": load,
        "server_cpu_us_per_request": round(used / max(1, run["requests"]) * 1e6),
    }


def measured_lookups(url: str, target: str, script: str, seconds: int, pid: int) -> dict[str, Any]:
    """`measured`, with the share of the run's cache lookups that hit (`hit_share`, from the
    server's counts): an uncached run that wrapped around to students its server has cached
    counts hits, and its rate is then not a miss's."""
    before = cache_counts(url)
    run = measured(target, script, seconds, pid)
    after = cache_counts(url)
    found = {r: after.get(r, 0) - before.get(r, 0) for r in ("hit", "miss")}
    run["hit_share"] = round(found["hit"] / max(1, sum(found.values())), 4)
    return run


def cache_side_by_side(
    settings: Settings, key: str, first: int, count: int, seconds: int, baseline: str | None
) -> dict[str, Any]:
    """The audited read as deployed, one worker, 32 connections, per server: without Redis,
    with Redis (and, with a baseline revision, that revision's app with Redis): a 3 s warm-up,
    a measured uncached run (students that server has not served), then CACHED_STUDENTS read
    once each and a measured run over them (every request a hit). Redis is emptied before each
    server, and the database checkpointed."""
    pool, overflow = pod_pool(TIERS[DEPLOYED_TIER].api)
    deployed = {
        "DATABASE_URL": db.primary_url(settings, API_LOGIN),
        "DB_POOL_MIN": str(pool),
        "DB_POOL_MAX": str(pool + overflow),
        "DB_PREPARE_THRESHOLD": "5",  # tier1 connects straight to PostgreSQL
        "RATE_LIMIT_INTERACTIVE_REQUESTS": "1000000000",
    }
    rows: dict[str, dict[str, Any]] = {}
    with redis_server() as redis_url, app_at_revision(baseline or "HEAD") as old_app:
        import redis

        servers: list[tuple[str, dict[str, str], Path]] = [
            ("no_redis", {}, ROOT),
            ("redis", {"REDIS_URL": redis_url}, ROOT),
        ]
        if baseline:
            servers.append(("baseline_redis", {"REDIS_URL": redis_url}, old_app))
        for name, env, cwd in servers:
            redis.Redis.from_url(redis_url).flushall()
            with db.connect_owner(settings, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            url, server = api_server(settings, "/ping", cwd, WORKERS="1", **deployed, **env)
            with server as proc:
                target = f"{url}/v1/students/{first}/risk"
                wrk(target, risk_script(key, first, count, start=0), CONNECTIONS[0], 3)
                script = risk_script(key, first, count, start=count // 2)
                rows[f"{name}_uncached"] = measured_lookups(url, target, script, seconds, proc.pid)
                # The cached set: students neither run asked for (they are far from both).
                cached_first = first + count // 4
                with httpx.Client(headers={"X-API-Key": key}) as client:
                    for i in range(CACHED_STUDENTS):
                        client.get(f"{url}/v1/students/{cached_first + i}/risk").raise_for_status()
                script = risk_script(key, cached_first, CACHED_STUDENTS, start=0)
                rows[f"{name}_cached"] = measured_lookups(url, target, script, seconds, proc.pid)
    summary: dict[str, Any] = {}
    for name, *_ in servers:
        uncached, cached = (
            ok_per_second(rows[f"{name}_uncached"]),
            ok_per_second(rows[f"{name}_cached"]),
        )
        summary[name] = {
            "uncached_ok_requests_per_second": uncached,
            "uncached_p99_ms": rows[f"{name}_uncached"]["p99_ms"],
            "cached_ok_requests_per_second": cached,
            "cached_p99_ms": rows[f"{name}_cached"]["p99_ms"],
            "cached_over_uncached": round(cached / uncached, 2),
            "uncached_cpu_us_per_request": rows[f"{name}_uncached"]["server_cpu_us_per_request"],
            "cached_cpu_us_per_request": rows[f"{name}_cached"]["server_cpu_us_per_request"],
            # 0 and 1 unless a run met students outside its set (too few for its length).
            "uncached_hit_share": rows[f"{name}_uncached"]["hit_share"],
            "cached_hit_share": rows[f"{name}_cached"]["hit_share"],
        }
    plain = summary["no_redis"]["uncached_ok_requests_per_second"]
    for name, figures in summary.items():
        if name == "no_redis":
            continue
        rps = figures["uncached_ok_requests_per_second"]
        figures["uncached_over_no_redis"] = round(rps / plain, 2)
        figures["meets_uncached_1000_rps_p99_50ms"] = (
            rps >= RISK_TARGET_RPS
            and figures["uncached_p99_ms"] <= RISK_TARGET_P99_MS
            and rows[f"{name}_uncached"]["errors"] == 0
        )
        figures["meets_uncached_within_10_percent"] = rps >= CACHE_MISS_RATIO * plain
        figures["meets_cached_3x"] = figures["cached_over_uncached"] >= CACHE_HIT_SPEEDUP
    return {
        "deployed_as": {
            "tier_pool": DEPLOYED_TIER,
            "db_pool_min": pool,
            "db_pool_max": pool + overflow,
            "login": API_LOGIN,
            "log_level": "WARNING",
            "baseline": baseline,
        },
        "load_32_connections": rows,
        "summary": summary,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=15, help="per load level")
    parser.add_argument("--mlserver", default=str(ROOT / "venv-mlserver" / "bin" / "mlserver"))
    parser.add_argument("--only", choices=["all", "student-risk", "cache"], default="all")
    parser.add_argument(
        "--baseline", help="a git revision whose app runs beside (with Redis) in the cache part"
    )
    args = parser.parse_args()
    require_wrk()
    if args.only == "student-risk":
        return student_risk_main(args.seconds)
    if args.only == "cache":
        return cache_main(args.seconds, args.baseline)
    if not Path(args.mlserver).exists():
        raise SystemExit(f"{args.mlserver} not found; `make bench` creates it")

    with workdir("serving") as work:
        settings = bench_settings(work)
        load_district(settings, SCHOOLS, STUDENTS)
        store = ModelStore(settings.model_store_url)
        version = store.pointer().scopes["school-1"]
        model = store.load_model(version, "school-1")
        compute = prediction_compute(model)
        # MLServer serves the model's sklearn estimator, on the same row as the model's input
        # (the prior year missing: imputed, with its indicators).
        model_file = work / "school-1-estimator.joblib"
        joblib.dump(model.estimator, model_file)
        design = model.spec.design(pad_raw(np.array([[float(ROW[f]) for f in FEATURES]])), None)
        with db.connect_owner(settings) as conn:
            _, key = create_key(conn, settings.api_key_pepper, "benchmark", district_id=1)
            row = conn.execute("SELECT min(id), count(*) FROM students").fetchone()
            assert row is not None
            first, count = row

        ours_body = json.dumps({"instances": [{**ROW, "school_id": 1}]}).encode()
        peer_body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": list(design.shape),
                        "datatype": "FP64",
                        "data": design[0].tolist(),
                    }
                ],
                "outputs": [{"name": "predict_proba"}],
            }
        ).encode()

        results: dict[str, list[WrkResult]] = {}
        answers: dict[str, float] = {}

        def same_model(name: str, risk: float) -> None:
            """Both servers must answer the same probability before any load is measured."""
            answers[name] = risk
            if abs(risk - answers["mlserver"]) > 1e-6:
                raise SystemExit(f"{name} answered {risk}, MLServer {answers['mlserver']}")

        repo, port = mlserver_repository(work, model_file)
        peer = f"http://127.0.0.1:{port}/v2/models/{MODEL}"
        with running([args.mlserver, "start", str(repo)], os.environ, f"{peer}/ready", timeout=120):
            reply = httpx.post(
                f"{peer}/infer", content=peer_body, headers={"Content-Type": "application/json"}
            ).json()
            answers["mlserver"] = reply["outputs"][0]["data"][1]
            peer_script = post_script(peer_body)
            results["mlserver"] = drive(f"{peer}/infer", lambda _: peer_script, args.seconds)

        ours_script = post_script(ours_body)
        for workers in (1, 2):
            url, server = api_server(
                settings, WORKERS=str(workers), RATE_LIMIT_INTERACTIVE_REQUESTS="1000000000"
            )
            with server:
                reply = httpx.post(
                    f"{url}/invocations",
                    content=ours_body,
                    headers={"Content-Type": "application/json"},
                ).json()
                same_model(f"ours_{workers}w", reply["predictions"][0]["risk"])
                name = f"invocations_{workers}_worker" + ("s" if workers > 1 else "")
                results[name] = drive(f"{url}/invocations", lambda _: ours_script, args.seconds)
                if workers == 1:
                    # Runs 15,000 students apart: each serves well under that many requests.
                    results["student_risk_1_worker"] = drive(
                        f"{url}/v1/students/{first}/risk",
                        lambda i: risk_script(key, first, count, start=i * 15_000),
                        args.seconds,
                    )
        reference = student_risk_side_by_side(settings, key, first, count, args.seconds)
        cache = cache_side_by_side(settings, key, first, count, args.seconds, args.baseline)

    peer32 = results["mlserver"][0]
    summary = {}
    for name in ("invocations_1_worker", "invocations_2_workers"):
        ours32 = results[name][0]
        summary[name] = {
            "throughput_ratio_vs_mlserver_at_32": round(
                ours32.requests_per_second / peer32.requests_per_second, 1
            ),
            "throughput_ratio_vs_mlserver_at_256": round(
                results[name][1].requests_per_second / results["mlserver"][1].requests_per_second, 1
            ),
            "meets_3x_and_p99_20ms_at_32": (
                ours32.requests_per_second >= TARGET_RATIO * peer32.requests_per_second
                and ours32.p99_ms <= TARGET_P99_MS
            ),
        }
    write_result(
        "serving",
        {
            "district": f"{SCHOOLS} schools x {STUDENTS} students",
            "seconds_per_level": args.seconds,
            "same_answer": answers,
            "prediction_compute": compute,
            "load": {name: [r.row() for r in rows] for name, rows in results.items()},
            "summary": summary,
            "student_risk_vs_raw_asgi": reference,
            "student_risk_cache": cache,
        },
    )
    return 0


def district_with_key(settings: Settings) -> tuple[str, int, int]:
    """The benchmark's district loaded, and (a district key, the first student id, the number
    of students)."""
    load_district(settings, SCHOOLS, STUDENTS)
    with db.connect_owner(settings) as conn:
        _, key = create_key(conn, settings.api_key_pepper, "benchmark", district_id=1)
        row = conn.execute("SELECT min(id), count(*) FROM students").fetchone()
        assert row is not None
    return key, int(row[0]), int(row[1])


def student_risk_main(seconds: int) -> int:
    """`--only student-risk`: the district, then the side-by-side runs alone."""
    with workdir("serving-risk") as work:
        settings = bench_settings(work)
        result = student_risk_side_by_side(settings, *district_with_key(settings), seconds)
    write_result(
        "serving_student_risk",
        {"district": f"{SCHOOLS} schools x {STUDENTS} students", "seconds": seconds, **result},
    )
    return 0


def cache_main(seconds: int, baseline: str | None) -> int:
    """`--only cache`: the district, then the cache's side-by-side runs alone."""
    with workdir("serving-cache") as work:
        settings = bench_settings(work)
        result = cache_side_by_side(settings, *district_with_key(settings), seconds, baseline)
    write_result(
        "serving_cache",
        {"district": f"{SCHOOLS} schools x {STUDENTS} students", "seconds": seconds, **result},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
