"""End-to-end demo: embedded PostgreSQL, migrate, generate a district, train, serve the API on a
free localhost port, call it over HTTP, print answers and latencies, then shut everything down.

    python -m app.demo [--schools 50 --students 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.api.main import create_app
from app.core import db
from app.core.auth import create_key
from app.core.logins import API_LOGIN, TRAINER_LOGIN, WORKER_LOGIN
from app.core.logs import setup_logging
from app.core.settings import Settings
from app.jobs.events.queue import PostgresQueue
from app.jobs.events.rescoring import InProcessScorer
from app.jobs.events.worker import Worker
from app.jobs.generate import generate
from app.model.features import FEATURES
from app.model.training import run_training


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def done(started: float) -> None:
    print(f"   ({time.perf_counter() - started:.1f}s)", flush=True)


def call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    started = time.perf_counter()
    response = client.request(method, url, **kwargs)
    ms = (time.perf_counter() - started) * 1000
    print(f"   {method} {url} -> {response.status_code} in {ms:.1f} ms")
    return response


def show(data: Any) -> None:
    print("   " + json.dumps(data, indent=2).replace("\n", "\n   "))


def show_event_rescoring(http: httpx.Client, headers: dict[str, str], settings: Settings) -> int:
    """Post a month of absences for the school-1 student closest under the alert threshold,
    with the worker running, and wait for their risk to change and an alert to appear.
    Returns the student."""
    with db.connect_owner(settings) as conn:
        row = conn.execute(
            "SELECT student_id, risk FROM risk_scores WHERE school_id = 1 AND risk < %s"
            " AND generation = (SELECT max(generation) FROM risk_scores)"
            " ORDER BY risk DESC LIMIT 1",
            (settings.alert_threshold,),
        ).fetchone()
    assert row is not None, "no student of school 1 under the threshold"
    student, before = int(row[0]), float(row[1])
    print(f"   student {student}: risk {before:.3f} (threshold {settings.alert_threshold})")
    worker_settings = settings.model_copy(update={"worker_poll_seconds": 0.1})
    connect = partial(db.connect_as, worker_settings, WORKER_LOGIN, autocommit=True)
    worker = Worker(
        worker_settings,
        PostgresQueue(connect, worker_settings),
        InProcessScorer(worker_settings),
        connect,
    )
    stop = threading.Event()
    running = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    running.start()
    try:
        events = [
            {
                "type": "attendance_marked",
                "idempotency_key": f"demo-{student}-{day}",
                "student_id": student,
                "date": f"2026-11-{day:02d}",
                "status": "absent",
            }
            for day in range(1, 31)
        ]
        posted_at = time.perf_counter()
        posted = call(http, "POST", "/v1/events", json={"events": events}, headers=headers)
        print(f"   {len(posted.json()['accepted'])} absences accepted")
        alert = None
        while alert is None and time.perf_counter() - posted_at < 10:
            time.sleep(0.1)
            alerts = http.get("/v1/schools/1/alerts", headers=headers).json()["items"]
            alert = next((a for a in alerts if a["student_id"] == student), None)
        waited = time.perf_counter() - posted_at
        risk = call(http, "GET", f"/v1/students/{student}/risk", headers=headers).json()
        print(f"   risk now {risk['risk']:.3f} (absences {risk['features']['absences']:g})")
        if alert is not None:
            print(
                f"   alert {alert['id']} raised {waited:.2f}s after the POST"
                f" (risk {alert['risk']:.3f})"
            )
        else:
            print("   no threshold crossing for this student: no alert")
    finally:
        stop.set()
        running.join(timeout=10)
        worker.close()
        worker.queue.close()
    return student


def show_casework(
    http: httpx.Client, headers: dict[str, str], settings: Settings, student: int
) -> None:
    """The student's risk history, their alert acknowledged and assigned to the school's
    counsellor, an intervention recorded for them, and the at-risk list's open-case flag."""
    history = call(http, "GET", f"/v1/students/{student}/risk/history", headers=headers).json()
    # One day's point here: the worker's rescoring replaced the nightly snapshot of today (and
    # its reasons: the worker records none). A point is added on each later day that changes.
    print(f"   risk history of student {student} (one point per day it changed):")
    show(history["items"][:3])
    with db.connect_owner(settings) as conn:
        conn.execute("SELECT set_config('app.school_id', '1', false)")  # the owner is filtered
        row = conn.execute(
            "SELECT id, name FROM staff WHERE school_id = 1 AND role = 'counsellor' LIMIT 1"
        ).fetchone()
    assert row is not None, "school 1 has no counsellor"
    counsellor, name = int(row[0]), str(row[1])
    alerts = http.get("/v1/schools/1/alerts", headers=headers).json()["items"]
    alert = next((a for a in alerts if a["student_id"] == student), alerts[0] if alerts else None)
    if alert is not None:
        url = f"/v1/alerts/{alert['id']}"
        acked = call(http, "PATCH", url, json={"action": "acknowledge"}, headers=headers).json()
        print(f"   alert {alert['id']} acknowledged by {acked['acknowledged_by']!r}"
              f" at {acked['acknowledged_at']}")  # fmt: skip
        body = {"action": "assign", "assignee_id": counsellor}
        assigned = call(http, "PATCH", url, json=body, headers=headers).json()
        print(f"   assigned to {name} (staff {assigned['assigned_to']})")
    case = {
        "type": "attendance_plan",
        "owner_id": counsellor,
        "started_on": time.strftime("%Y-%m-%d"),
        "notes": "daily check-in with the counsellor; call home after a second absence",
    }
    made = call(http, "POST", f"/v1/students/{student}/interventions", json=case, headers=headers)
    made.raise_for_status()
    print("   intervention recorded:")
    show(made.json())
    flagged = call(
        http, "GET", "/v1/schools/1/at-risk?min_risk=0&open_intervention=true&limit=100",
        headers=headers,
    ).json()["items"]  # fmt: skip
    item = next((i for i in flagged if i["student_id"] == student), None)
    if item is not None:
        print(f"   on the at-risk list: open_intervention={item['open_intervention']},"
              f" 30-day change {item['risk_change_30d']}, indicators:")  # fmt: skip
        show(item["indicators"])


def start_api(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, int]:
    """The API on a free localhost port, in a thread; returns once it listens."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_config=None, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the API server failed to start")
        time.sleep(0.05)
    return server, thread, port


def show_api_calls(http: httpx.Client, headers: dict[str, str]) -> None:
    """An at-risk page and the next, a student's risk (cached the second time), and the
    SageMaker contract's /invocations in JSON and CSV."""
    call(http, "GET", "/ready").raise_for_status()
    page = call(http, "GET", "/v1/schools/1/at-risk?limit=5", headers=headers)
    page.raise_for_status()
    print("   at-risk page of school 1:")
    show(page.json())
    cursor = page.json()["next_cursor"]
    if cursor:
        nxt = call(http, "GET", f"/v1/schools/1/at-risk?limit=5&cursor={cursor}", headers=headers)
        print(f"   next page: {[i['student_id'] for i in nxt.json()['items']]}")
    student = page.json()["items"][0]["student_id"]
    risk = call(http, "GET", f"/v1/students/{student}/risk", headers=headers)
    risk.raise_for_status()
    print(f"   risk of student {student} (cache {risk.headers['X-Cache']}):")
    show(risk.json())
    again = call(http, "GET", f"/v1/students/{student}/risk", headers=headers)
    print(f"   same again: cache {again.headers['X-Cache']}")
    features = risk.json()["features"]
    inv = call(
        http,
        "POST",
        "/invocations",
        json={"instances": [{**features, "school_id": 1}, {**features, "absences": 0}]},
    )
    inv.raise_for_status()
    print("   SageMaker /invocations (JSON):")
    show(inv.json())
    csv_row = ",".join(str(features[f]) for f in FEATURES)
    inv_csv = call(
        http,
        "POST",
        "/invocations",
        content=csv_row,
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )
    inv_csv.raise_for_status()
    print(f"   SageMaker /invocations (CSV): {inv_csv.text.strip()}")


def demo_settings(workdir: Path) -> Settings:
    """Everything under `workdir`: the embedded PostgreSQL, the model and archive stores."""
    return Settings(
        environment="development",
        database_url=None,
        database_read_url=None,
        redis_url=None,
        embedded_pg_dir=workdir / "pg",
        model_store_url=str(workdir / "models"),
        archive_store_url=str(workdir / "archive"),
        api_key_pepper="demo-only-pepper-not-a-secret",
        model_refresh_seconds=30,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.demo", description=__doc__)
    parser.add_argument("--schools", type=int, default=50)
    parser.add_argument("--students", type=int, default=1000, help="students per school")
    args = parser.parse_args(argv)
    setup_logging("WARNING")
    total = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="ssp-demo-"))
    settings = demo_settings(workdir)
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    try:
        t = step("embedded PostgreSQL + migrations")
        print(f"   applied: {db.migrate(settings)}")
        print(
            f"   logins: the API as {API_LOGIN}, training as {TRAINER_LOGIN}"
            " (least-privileged roles); migrate and generate as the owner"
        )
        done(t)

        t = step(f"generate district: {args.schools} schools x {args.students} students")
        with db.connect_owner(settings) as conn:
            result = generate(conn, args.schools, args.students)
            _, school_key = create_key(conn, settings.api_key_pepper, "demo school 1", school_id=1)
        print(
            f"   {result.students} students, {result.attendance_rows} attendance rows,"
            f" {result.marks_rows} marks, {result.incidents} incidents in {result.seconds:.1f}s"
        )
        done(t)

        t = step("train per-school models (district fallback)")
        trained = run_training(settings)
        print(
            f"   version {trained.version}: {len(trained.promoted)} scopes promoted,"
            f" {len(trained.fallback_schools)} schools on the district model"
        )
        print(f"   district held-out metrics: {trained.metrics['district']}")
        done(t)

        t = step("serve the API")
        server, thread, port = start_api(settings)
        print(f"   listening on http://127.0.0.1:{port} (docs at /docs)")
        done(t)

        t = step("call it over HTTP")
        headers = {"X-API-Key": school_key}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            show_api_calls(http, headers)
        done(t)

        t = step("an attendance event rescores a student (the worker, on the PostgreSQL queue)")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            student = show_event_rescoring(http, headers, settings)
        done(t)

        t = step("follow-up: the student's history, the alert acknowledged, a case recorded")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            show_casework(http, headers, settings, student)
        done(t)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=10)
        db.stop_embedded()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\ndemo finished in {time.perf_counter() - total:.1f}s; server and database stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
