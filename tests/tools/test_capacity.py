"""When to move: which tier fits what a running stack sees, the nearest trigger and when the
next move is due, on the demo's district and on a synthetic 100,000-student one."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import promql_parser
import psycopg
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from components.config.catalog import TIERS
from tools.capacity import (
    CONNECTIONS,
    P95_QUERY,
    RPM_QUERY,
    SCHOOLS,
    SIZE,
    STUDENTS,
    Observed,
    _aws_headers,
    assess,
    from_metrics,
    from_prometheus,
    main,
    quantile,
    stack_tier,
)

SMALL = {"database_gib": 1.0, "connections": 5}


def test_a_synthetic_100000_student_district_has_reached_tier3s_students_trigger() -> None:
    at_limit = assess(Observed(100_000, 120, **SMALL), TIERS["tier3"], growth_percent=2)
    assert at_limit.fits == "tier3"
    assert (at_limit.nearest.measure, at_limit.nearest.share) == (STUDENTS, 1.0)
    assert (at_limit.next_tier, at_limit.due_months) == ("tier4", 0.0)
    one_more = assess(Observed(100_001, 120, **SMALL), TIERS["tier3"])
    assert one_more.fits == "tier4"
    assert one_more.beyond == {
        "dev": STUDENTS,
        "tier1": STUDENTS,
        "tier2": STUDENTS,
        "tier3": STUDENTS,
    }


def test_the_move_is_due_when_the_first_measure_reaches_its_limit_at_the_growth_rate() -> None:
    # tier2: 10,000 students, 25 schools. Students double in log 2 / log 1.05 = 14.2 months;
    # schools (10 -> 25) take 18.8.
    a = assess(Observed(5_000, 10, **SMALL), TIERS["tier2"], growth_percent=5)
    assert a.fits == "tier2" and a.beyond["tier1"] == STUDENTS
    months = {r.measure: r.months for r in a.rows}
    assert months[STUDENTS] == pytest.approx(14.21, abs=0.01)
    assert months[SCHOOLS] == pytest.approx(18.78, abs=0.01)
    assert a.due_months == months[STUDENTS] and a.nearest.measure == STUDENTS
    assert assess(Observed(5_000, 10, **SMALL), TIERS["tier2"]).due_months is None


def test_the_limits_are_the_catalogs_with_the_stacks_overrides() -> None:
    rows = {r.measure: r.limit for r in assess(Observed(1, 1, 0, 0), TIERS["tier1"]).rows}
    # 500 GiB less the 10 % free storage alarm; 80 % of 50 connections.
    assert rows == {STUDENTS: 1_000, SCHOOLS: 5, SIZE: 450, CONNECTIONS: 40}
    assert stack_tier("tier1") == TIERS["tier1"]
    with pytest.raises(ValueError, match="global: picks no tier"):
        stack_tier("global")


def test_connections_or_p95_over_the_trigger_make_the_move_due_now() -> None:
    busy = assess(Observed(500, 3, 1.0, 41), TIERS["tier1"], growth_percent=3)
    assert busy.fits == "tier2" and busy.beyond == {"dev": STUDENTS, "tier1": CONNECTIONS}
    assert busy.due_months == 0
    slow = assess(Observed(500, 3, 1.0, 5, 900, p95_ms=350), TIERS["tier1"], growth_percent=3)
    assert slow.fits == "tier1" and slow.latency_over and slow.due_months == 0


def test_p95_is_interpolated_in_its_bucket_as_prometheus_does() -> None:
    # 100 requests: 50 under 10 ms, 40 more under 100 ms, 10 more under 200 ms. The 95th is
    # the 5th of the 10 in (100, 200]: 150 ms.
    assert quantile(0.95, {0.01: 50, 0.1: 90, 0.2: 100, float("inf"): 100}) == pytest.approx(0.15)
    assert quantile(0.95, {0.01: 0, float("inf"): 0}) is None


def scrape(requests: list[tuple[str, float]]) -> str:
    """An API pod's /metrics after ``requests`` (route, seconds)."""
    registry = CollectorRegistry()
    count = Counter("ssp_http_requests", "", ["method", "route", "status"], registry=registry)
    latency = Histogram(
        "ssp_http_request_duration_seconds",
        "",
        ["route"],
        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
        registry=registry,
    )
    for route, seconds in requests:
        count.labels("GET", route, "200").inc()
        latency.labels(route).observe(seconds)
    return generate_latest(registry).decode()


def test_requests_and_p95_come_from_two_scrapes_of_every_pod_without_probes() -> None:
    risk, probe = "/v1/students/{student_id}/risk", "/ready"
    early = [(risk, 0.004)] * 10 + [(probe, 3.0)] * 50
    late = early + [(risk, 0.004)] * 90 + [(risk, 0.15)] * 10 + [(probe, 3.0)] * 50
    texts = {"a1": scrape(early), "a2": scrape(late), "b1": scrape([]), "b2": scrape(early)}
    calls: list[str] = []

    def get(url: str) -> str:
        calls.append(url)
        return texts[url + str(calls.count(url))]

    rpm, p95 = from_metrics(["a", "b"], 0.5, get)
    # 100 + 10 timed requests in 0.5 s; the 95th of 110 is in the (100, 200] ms bucket.
    assert rpm == pytest.approx(110 / 0.5 * 60)
    assert p95 == pytest.approx(145)  # the probes' 3 s left out


@pytest.fixture
def prometheus() -> Iterator[tuple[str, list[str]]]:
    """A Prometheus query API answering the capacity's two queries."""
    queries: list[str] = []
    answers = {RPM_QUERY: "1260", P95_QUERY: "0.087"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)["query"][0]
            queries.append(query)
            value = [1765000000, answers[query]]
            body = {
                "status": "success",
                "data": {"resultType": "vector", "result": [{"value": value}]},
            }
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/workspaces/ws-1/", queries
    server.shutdown()


def test_prometheus_answers_with_the_dashboards_expressions(
    prometheus: tuple[str, list[str]],
) -> None:
    endpoint, queries = prometheus
    assert from_prometheus(endpoint) == (1260.0, 87.0)
    assert queries == [RPM_QUERY, P95_QUERY]
    for query in queries:
        promql_parser.parse(query)  # valid PromQL


def test_managed_prometheus_is_signed_for_its_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    url = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1/api/v1/query?query=up"
    auth = _aws_headers(url)["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/aps/aws4_request" in auth


@pytest.fixture(scope="module")
def demo_district() -> Iterator[str]:
    """The demo's district (50 schools x 1,000 students; 5 school days of attendance, not 60:
    the capacity counts students, not days) on the embedded PostgreSQL; its superuser's URL."""
    from app.core import db
    from app.demo import demo_settings
    from app.jobs.generate import generate

    workdir = Path(tempfile.mkdtemp(prefix="ssp-capacity-"))
    settings = demo_settings(workdir)
    try:
        db.migrate(settings)
        with db.connect_owner(settings) as conn:
            generate(conn, 50, 1000, days=5, progress=False)
        yield db.primary_url(settings)
    finally:
        db.stop_embedded()
        shutil.rmtree(workdir, ignore_errors=True)


def active_students(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM students WHERE is_active").fetchone()
    assert row is not None
    return int(row[0])


def test_the_demos_district_fits_tier3_and_outgrew_tier1(
    demo_district: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", demo_district)
    # Its 50,000 students less the past cohorts (graduated or dropped out): about 41,000.
    active = active_students(demo_district)
    assert 35_000 < active < 50_000
    assert main(["tier1", "--growth", "3"]) == 0
    out = capsys.readouterr().out
    assert "fits: tier3 (dev: students over its limit; tier1: students over its limit;" in out
    assert "tier2: students over its limit)" in out
    assert f"nearest trigger: students {active:,} of tier1's 1,000 ({active / 10:.0f}%)" in out
    assert "next move: tier2, due now" in out
    assert main(["tier3", "--growth", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["observed"]["students"] == active and answer["observed"]["schools"] == 50
    assert answer["fits"] == "tier3" and answer["nearest"]["measure"] == STUDENTS
    # The active students reach 100,000 at 3 % a month.
    assert answer["due_months"] == pytest.approx(math.log(100_000 / active) / math.log(1.03))


def test_the_demos_district_grown_to_100000_students_names_the_trigger(
    demo_district: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", demo_district)
    more = 100_000 - active_students(demo_district)
    with psycopg.connect(demo_district, autocommit=True) as conn:
        last = conn.execute("SELECT max(id) FROM students").fetchone()
        conn.execute(
            "INSERT INTO students (school_id, first_name, last_name, grade, enrolled_on)"
            " SELECT 1 + n %% 50, 'Synthetic', 'Student', 9, current_date"
            " FROM generate_series(1, %s) n",
            (more,),
        )
        try:
            assert main(["tier3"]) == 0
        finally:
            conn.execute("DELETE FROM students WHERE id > %s", last)
    out = capsys.readouterr().out
    assert "fits: tier3" in out
    assert "nearest trigger: students 100,000 of tier3's 100,000 (100%)" in out
    assert "next move: tier4, due now" in out


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["global"], "global: picks no tier"),
        (["nowhere"], "Pulumi.nowhere.yaml"),
        (["tier1", "--growth", "0"], "--growth 0.0: a percentage"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    argv: list[str],
    problem: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://ssp@127.0.0.1:1/x")
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2 and problem in capsys.readouterr().err


def test_the_database_url_comes_from_the_environment_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["tier1"])
    assert exited.value.code == 2 and "DATABASE_URL: set it" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an argument would show the password to `ps`
        main(["tier1", "--database-url", "postgresql://ssp:pw@db/x"])


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://ssp_master:secret-pw@127.0.0.1:1/student_success?connect_timeout=2",
        # A URL libpq cannot parse: its own message quotes it whole.
        "postgresq://ssp_master:secret-pw@127.0.0.1:1/student_success",
    ],
)
def test_an_unreachable_database_is_named_without_its_password(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["tier1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("DATABASE_URL: ") and "secret-pw" not in err


def test_an_unreachable_metrics_source_is_named_without_a_traceback(
    demo_district: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", demo_district)
    metrics = ["--metrics", "http://127.0.0.1:1/metrics", "--window", "0.1"]
    assert main(["tier1", *metrics]) == 1
    assert capsys.readouterr().err.startswith("--metrics: ConnectError")
