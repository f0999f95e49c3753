"""Training time, held-out AUC and memory as the number of schools grows (1,000 students each).

For each size (10, 50 and 200 schools by default), in a fresh temp directory with its own
embedded PostgreSQL:

1. generates the district (timed; not part of training);
2. runs `python -m app train` as a child process, exactly as the image runs it (features
   refresh -> district + per-school models -> artifacts and manifest -> scoring of every
   student -> promotion), and records its wall time, its CPU time and its peak resident memory
   (`wait4` rusage of that one child, so nothing else on the machine is counted). AUC per
   school (median, min) and the district's AUC come from the store's manifest of the trained
   version, i.e. from the held-out split. The features refresh and the scoring step are timed
   again after the run (same queries, same data) to split the training time;
3. starts one API worker (`python -m app serve`) on the trained store and reads its resident
   memory with every school's model loaded (the registry loads every scope of the pointer at
   startup), after one POST /invocations with one instance per school (every model used),
   and after 200 more requests (steady state). A worker started on an empty store gives the
   baseline without models.

    venv/bin/python -m benchmarks.training [--schools 10 50 200]

Records benchmarks/results/training.json. Targets (issue): training of 50 x 1,000 <= 60 s on
2 cores, one API worker with 50 schools' models <= 300 MB, training peak <= 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.core import db
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.scoring import score_students
from benchmarks.common import (
    ROOT,
    ROW,
    api_env,
    api_server,
    bench_settings,
    load_district,
    rss_mib,
    workdir,
    write_result,
)

SIZES = (10, 50, 200)
STUDENTS = 1000
STEADY_REQUESTS = 200
# What bounds each number (measured 10/50/200 schools on 2 shared cores; see the rows).
LIMITS = {
    "train_wall_seconds": (
        "About 2 s of interpreter start and imports (sklearn, scipy), then three parts that"
        " grow linearly with students: the student_features refresh (PostgreSQL aggregating 60"
        " attendance rows per student; its hash aggregate spills to disk at the default"
        " work_mem: ~9 s at 200 schools), the fits (one CalibratedClassifierCV of 3 folds per"
        " school plus the district's, sequential, 40-90 ms per school with one BLAS thread)"
        " and scoring every student (model loads, then COPY of one risk row per student,"
        " mostly server time). Wall exceeds CPU by the time spent in PostgreSQL."
    ),
    "train_peak_rss_mib": (
        "~165 MiB of interpreter, numpy, scipy, sklearn and psycopg, plus ~0.7 MiB per school"
        " of 1,000 students: the training rows fetched as Python tuples then as a float array,"
        " and the scoring rows kept for the COPY. PostgreSQL's own memory (the refresh runs in"
        " the server) is not counted."
    ),
    "auc": (
        "The synthetic data: the label is drawn from a latent risk the features observe only"
        " through noise, so the district model (most test rows) reaches ~0.83. A school's"
        " held-out split is 250 students with ~40 dropouts, so its AUC varies by a few"
        " hundredths from sampling alone; the minimum over 200 schools is that tail."
    ),
    "api_rss_mib": (
        "~85 MiB for the app without models; unpickling the first model imports sklearn and"
        " scipy (+83 MiB). Each model is then held as a FastCalibratedLogit of a few arrays of"
        " 9 x 3 floats, so the RSS hardly moves with schools (under 0.01 MiB per model) and"
        " does not grow with requests."
    ),
    "generate_seconds": (
        "Not training: app/jobs/generate.py writes every row through COPY one Python call at a"
        " time (60 attendance rows per student), single threaded."
    ),
}


def train_child(settings: Settings) -> dict[str, Any]:
    """`python -m app train` as a child: its JSON summary, wall and CPU time, peak RSS."""
    env = api_env(settings, port=0, LOG_LEVEL="INFO")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "train"], cwd=ROOT, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise RuntimeError(f"train exited with {proc.returncode}:\n{stderr[-3000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {
        "summary": summary,
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
    }


def retime_stages(settings: Settings) -> dict[str, float]:
    """The features refresh and the scoring step of the run just done, timed again on the
    same data (scoring rewrites the same generation's risk_scores: idempotent)."""
    store = ModelStore(settings.model_store_url)
    with db.connect_owner(settings) as conn:
        conn.autocommit = True
        started = time.perf_counter()
        db.refresh_features(conn, None)
        refresh = time.perf_counter() - started
        conn.autocommit = False
        started = time.perf_counter()
        # Scoring includes loading every model of the pointer, as in the run.
        score_students(conn, store, settings, store.pointer())
        score = time.perf_counter() - started
    return {"refresh_features_seconds": refresh, "score_students_seconds": score}


def auc_summary(settings: Settings, version: str) -> dict[str, Any]:
    manifest = ModelStore(settings.model_store_url).manifest(version)
    assert manifest is not None, f"no manifest for {version}"
    metrics: dict[str, dict[str, float]] = manifest["metrics"]
    schools = [m["auc"] for scope, m in metrics.items() if scope.startswith("school-")]
    tests = [m["n_test"] for scope, m in metrics.items() if scope.startswith("school-")]
    positives = [m["positives_test"] for s, m in metrics.items() if s.startswith("school-")]
    return {
        "school_models": len(schools),
        "fallback_schools": len(manifest["fallback_schools"]),
        "auc_school_median": round(statistics.median(schools), 4) if schools else None,
        "auc_school_min": round(min(schools), 4) if schools else None,
        "auc_school_max": round(max(schools), 4) if schools else None,
        "auc_district": metrics["district"]["auc"],
        "n_test_per_school": int(statistics.median(tests)) if tests else None,
        "positives_test_per_school_median": int(statistics.median(positives)) if tests else None,
        "n_test_district": int(metrics["district"]["n_test"]),
    }


def store_size_kib(settings: Settings) -> float:
    root = Path(settings.model_store_url)
    return sum(p.stat().st_size for p in root.rglob("*.joblib")) / 1024


def api_baseline(settings: Settings, work: Path) -> dict[str, float]:
    """One worker on an empty model store: the process without any model (nor sklearn,
    which only unpickling a model imports). Ready on /health: /ping is 503 without a model."""
    empty = work / "empty-models"
    empty.mkdir()
    url, server = api_server(settings, "/health", MODEL_STORE_URL=str(empty))
    with server as proc:
        ping = httpx.get(f"{url}/ping", timeout=10)
        assert ping.status_code == 503, ping.text
        return {"rss_mib": rss_mib(proc.pid)}


def api_memory(settings: Settings, schools: int) -> dict[str, float]:
    """RSS of one worker serving every school's model: after /ping (models are loaded at
    startup), after one request using every model, after STEADY_REQUESTS more."""
    school_ids = sorted(
        int(s.removeprefix("school-"))
        for s in ModelStore(settings.model_store_url).pointer().scopes
        if s.startswith("school-")
    )
    every = json.dumps({"instances": [{**ROW, "school_id": s} for s in school_ids]})
    headers = {"Content-Type": "application/json"}
    url, server = api_server(settings)
    with server as proc, httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        client.get("/ping").raise_for_status()
        after_ping = rss_mib(proc.pid)
        answer = client.post("/invocations", content=every)
        answer.raise_for_status()
        scopes = {p["model_scope"] for p in answer.json()["predictions"]}
        assert len(scopes) == len(school_ids), (len(scopes), len(school_ids))
        after_all = rss_mib(proc.pid)
        for i in range(STEADY_REQUESTS):
            if i % 4 == 0:  # a mix of every-school batches and one-student requests
                body = every
            else:
                sid = school_ids[i % len(school_ids)]
                body = json.dumps({"instances": [{**ROW, "school_id": sid}]})
            client.post("/invocations", content=body).raise_for_status()
        steady = rss_mib(proc.pid)
        peak = rss_mib(proc.pid, "VmHWM")
    return {
        "rss_after_ping_mib": after_ping,
        "rss_after_all_models_used_mib": after_all,
        "rss_steady_mib": steady,
        "peak_rss_mib": peak,
        "models_loaded": len(school_ids) + 1,
    }


def measure(schools: int) -> dict[str, Any]:
    with workdir(f"training-{schools}") as work:
        settings = bench_settings(work)
        started = time.perf_counter()
        load_district(settings, schools, STUDENTS, train=False)
        generate_seconds = time.perf_counter() - started
        print(f"[{schools} schools] generated in {generate_seconds:.1f}s", flush=True)

        trained = train_child(settings)
        summary = trained["summary"]
        print(
            f"[{schools} schools] trained in {trained['wall_seconds']:.1f}s,"
            f" peak {trained['peak_rss_mib']:.0f} MiB",
            flush=True,
        )
        aucs = auc_summary(settings, summary["version"])
        stages = retime_stages(settings)
        baseline = api_baseline(settings, work)
        api = api_memory(settings, schools)
        artifacts = store_size_kib(settings)
        print(f"[{schools} schools] API steady RSS {api['rss_steady_mib']:.0f} MiB", flush=True)

    in_run = summary["seconds"]
    fit_and_rest = in_run - stages["refresh_features_seconds"] - stages["score_students_seconds"]
    # Unpickling the first model imports sklearn and scipy: most of this is that, not models.
    over_baseline = api["rss_steady_mib"] - baseline["rss_mib"]
    return {
        "schools": schools,
        "students": schools * STUDENTS,
        "generate_seconds": round(generate_seconds, 1),
        "train_wall_seconds": round(trained["wall_seconds"], 1),
        "train_cpu_seconds": round(trained["cpu_seconds"], 1),
        "train_peak_rss_mib": round(trained["peak_rss_mib"], 1),
        "train_split_seconds": {
            "process_start_imports_exit": round(trained["wall_seconds"] - in_run, 1),
            "run_training": in_run,
            "refresh_features_retimed": round(stages["refresh_features_seconds"], 1),
            "score_students_retimed": round(stages["score_students_seconds"], 1),
            "fit_write_promote_by_difference": round(fit_and_rest, 1),
        },
        "promoted_scopes": len(summary["promoted"]),
        **aucs,
        "model_artifacts_kib": round(artifacts, 1),
        "api_rss_no_models_mib": round(baseline["rss_mib"], 1),
        "api_rss_after_ping_mib": round(api["rss_after_ping_mib"], 1),
        "api_rss_after_all_models_used_mib": round(api["rss_after_all_models_used_mib"], 1),
        "api_rss_steady_mib": round(api["rss_steady_mib"], 1),
        "api_peak_rss_mib": round(api["peak_rss_mib"], 1),
        "api_models_loaded": api["models_loaded"],
        "api_rss_models_and_sklearn_over_no_models_mib": round(over_baseline, 1),
    }


def growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """What each extra school costs, from the smallest and the largest size measured."""
    extra = large["schools"] - small["schools"]

    def per_school(key: str) -> float:
        return round((large[key] - small[key]) / extra, 3)

    return {
        "between_schools": [small["schools"], large["schools"]],
        "train_wall_seconds_per_school": per_school("train_wall_seconds"),
        "train_peak_rss_mib_per_school": per_school("train_peak_rss_mib"),
        "api_steady_rss_mib_per_school_model": per_school("api_rss_steady_mib"),
        "model_artifact_kib_per_school": per_school("model_artifacts_kib"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schools", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    rows = [measure(n) for n in sorted(set(args.schools))]
    result: dict[str, Any] = {"students_per_school": STUDENTS, "rows": rows}
    if len(rows) > 1:
        result["growth"] = growth(rows[0], rows[-1])
    result["limits"] = LIMITS
    write_result("training", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
