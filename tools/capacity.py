"""When a district should move to the next tier: ``python -m tools.capacity STACK`` reads what the
running stack sees, compares it with the catalog's limits of every tier and the scaling
triggers, and says which tier fits, which trigger is nearest and, with ``--growth``, in how many
months the next move is due::

    DATABASE_URL=... python -m tools.capacity tier2 \\
        --metrics http://127.0.0.1:9101/metrics --metrics http://127.0.0.1:9102/metrics \\
        --growth 4

- the database (``DATABASE_URL`` in the environment, never an argument: argv is visible to
  every user of the machine; the bootstrap Secret's master login, through a tunnel or a pod):
  active students, schools, the database's size and the connections open on the server.
  Counts and sizes only: no student row is read, so nothing is audited;
- the API pods' ``/metrics`` (``--metrics``, one per pod, e.g. ``kubectl port-forward``), scraped
  twice ``--window`` seconds apart: requests per minute and their p95, the routes the latency
  alarm times (health checks and ``/metrics`` left out);
- or, on stacks with Managed Prometheus (tier3 on), ``--prometheus`` with the stack's
  ``prometheus_query_endpoint`` output: the same two over the last 5 minutes of every pod,
  signed with the caller's AWS credentials (SigV4, service ``aps``).

A tier fits when the students, schools, database size and connections are within its limits:
its ``expected_students`` and ``expected_schools``, its ``db.max_storage_gib`` less the free
storage its alarm keeps, and ``db_connections_percent`` of its ``db.max_connections`` (the
stack's own overrides apply to its tier). The p95 is a trigger of the stack's tier only (its
``alarms.latency_p95_ms``): over it, the move is due now unless the bottleneck is elsewhere.
Requests per minute have no limit of their own: the load shows in p95 and connections.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from components.config.catalog import TIERS
from components.config.overrides import with_overrides
from components.config.tier import Tier
from components.monitoring.rules import UNTIMED_ROUTES
from tools.moves import TIER_ORDER, next_tier, stack_config, tier_of

GIB = 1024**3
STUDENTS, SCHOOLS, SIZE, CONNECTIONS = (
    "students",
    "schools",
    "database size (GiB)",
    "database connections",
)
REQUESTS_SERIES, LATENCY_SERIES = "ssp_http_requests", "ssp_http_request_duration_seconds"
# The expressions of the API's dashboard and latency alert, over every pod.
RPM_QUERY = f'sum(rate(ssp_http_requests_total{{route!~"{UNTIMED_ROUTES}"}}[5m])) * 60'
P95_QUERY = (
    "histogram_quantile(0.95, sum by (le) (rate("
    f'{LATENCY_SERIES}_bucket{{route!~"{UNTIMED_ROUTES}"}}[5m])))'
)


@dataclass(frozen=True)
class Observed:
    """What a running stack sees (None: not measured)."""

    students: int
    schools: int
    database_gib: float
    connections: int
    requests_per_minute: float | None = None
    p95_ms: float | None = None
    sources: tuple[str, ...] = ()


def limits(tier: Tier) -> dict[str, float]:
    """What a tier holds, per measure that grows with the district."""
    free = tier.alarms.free_storage_percent / 100
    return {
        STUDENTS: tier.expected_students,
        SCHOOLS: tier.expected_schools,
        SIZE: tier.db.max_storage_gib * (1 - free),
        CONNECTIONS: tier.db.max_connections * tier.alarms.db_connections_percent / 100,
    }


def measures(observed: Observed) -> dict[str, float]:
    return {
        STUDENTS: observed.students,
        SCHOOLS: observed.schools,
        SIZE: observed.database_gib,
        CONNECTIONS: observed.connections,
    }


@dataclass(frozen=True)
class Row:
    measure: str
    observed: float
    limit: float
    months: float | None  # until it reaches the limit at the growth rate (0: reached)

    @property
    def share(self) -> float:
        return self.observed / self.limit if self.limit else math.inf


@dataclass(frozen=True)
class Assessment:
    stack_tier: str
    fits: str | None  # None: beyond the top tier's limits
    beyond: dict[str, str]  # tier the district outgrew -> the measure over its limit
    rows: list[Row]
    nearest: Row
    latency_trigger_ms: int  # the stack tier's p95 trigger
    latency_over: bool
    next_tier: str | None
    due_months: float | None  # None: no growth rate given, or no tier above
    observed: Observed
    growth_percent: float | None = None


def months_to(limit: float, value: float, growth: float) -> float | None:
    """Months until ``value`` growing ``growth`` (0.05: 5 %) a month reaches ``limit``."""
    if value >= limit:
        return 0.0
    if value <= 0 or growth <= 0:
        return None
    return math.log(limit / value) / math.log(1 + growth)


def assess(observed: Observed, stack_tier: Tier, growth_percent: float | None = None) -> Assessment:
    """Which tier fits what the stack sees; the stack tier's nearest trigger; when the move
    from it is due. ``stack_tier``: the stack's tier row with its overrides."""
    growth = (growth_percent or 0) / 100
    seen = measures(observed)
    beyond: dict[str, str] = {}
    fits = None
    for name in TIER_ORDER:
        tier = stack_tier if name == stack_tier.name else TIERS[name]
        over = [m for m, limit in limits(tier).items() if seen[m] > limit]
        if not over:
            fits = name
            break
        beyond[name] = over[0]
    rows = [
        Row(m, seen[m], limit, months_to(limit, seen[m], growth))
        for m, limit in limits(stack_tier).items()
    ]
    latency_over = (
        observed.p95_ms is not None and observed.p95_ms > stack_tier.alarms.latency_p95_ms
    )
    due: float | None = None
    if latency_over or any(r.months == 0 for r in rows):
        due = 0.0
    elif growth > 0:
        due = min((r.months for r in rows if r.months is not None), default=None)
    return Assessment(
        stack_tier=stack_tier.name,
        fits=fits,
        beyond=beyond,
        rows=rows,
        nearest=max(rows, key=lambda r: r.share),
        latency_trigger_ms=stack_tier.alarms.latency_p95_ms,
        latency_over=latency_over,
        next_tier=next_tier(stack_tier.name),
        due_months=due,
        observed=observed,
        growth_percent=growth_percent,
    )


# -- reading a running stack ---------------------------------------------------------------


def from_database(url: str) -> tuple[int, int, float, int]:
    """Active students, schools, the database's size (GiB) and the client connections open on
    the server (this one not counted)."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM students WHERE is_active),"
            " (SELECT count(*) FROM schools),"
            " pg_database_size(current_database()),"
            " (SELECT count(*) FROM pg_stat_activity"
            "  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid())"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]) / GIB, int(row[3])


def _samples(text: str) -> tuple[float, dict[float, float]]:
    """Timed requests, and the cumulative latency histogram by upper bound, of one scrape."""
    requests, buckets = 0.0, dict[float, float]()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("route", "") in UNTIMED_ROUTES.split("|"):
                continue
            if s.name == f"{REQUESTS_SERIES}_total":
                requests += s.value
            elif s.name == f"{LATENCY_SERIES}_bucket":
                bound = float(s.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + s.value
    return requests, buckets


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``q`` of a cumulative histogram, interpolated in its bucket as Prometheus's
    ``histogram_quantile`` does; None without observations."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank, below, lower = q * buckets[bounds[-1]], 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound, as Prometheus
            return lower + (bound - lower) * (rank - below) / (count - below)
        below, lower = count, bound
    return lower


def from_metrics(
    urls: list[str], window: float, get: Callable[[str], str] | None = None
) -> tuple[float, float | None]:
    """Requests per minute and their p95 (ms) over ``window`` seconds, from every pod's
    ``/metrics`` scraped at its start and end (counters of a pod that restarted in between
    are read from zero)."""
    fetch = get or (lambda url: httpx.get(url, timeout=10).raise_for_status().text)
    first = [_samples(fetch(u)) for u in urls]
    time.sleep(window)
    last = [_samples(fetch(u)) for u in urls]
    requests, buckets = 0.0, dict[float, float]()
    for (r0, b0), (r1, b1) in zip(first, last, strict=True):
        restarted = r1 < r0
        requests += r1 - (0 if restarted else r0)
        for bound, count in b1.items():
            buckets[bound] = (
                buckets.get(bound, 0.0) + count - (0 if restarted else b0.get(bound, 0.0))
            )
    p95 = quantile(0.95, buckets)
    return requests * 60 / window, None if p95 is None else p95 * 1000


def _aws_headers(url: str) -> dict[str, str]:
    """SigV4 headers for Managed Prometheus (its host names the region)."""
    import botocore.session
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    credentials = botocore.session.Session().get_credentials()
    if credentials is None:
        raise RuntimeError("--prometheus: Managed Prometheus needs AWS credentials; none found")
    region = urlsplit(url).hostname.split(".")[1]  # type: ignore[union-attr]
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(credentials, "aps", region).add_auth(request)
    return dict(request.headers.items())


def from_prometheus(endpoint: str) -> tuple[float | None, float | None]:
    """Requests per minute and their p95 (ms) over the last 5 minutes of every pod."""
    found: list[float | None] = []
    for query in (RPM_QUERY, P95_QUERY):
        request = httpx.Request(
            "GET", endpoint.rstrip("/") + "/api/v1/query", params={"query": query}
        )
        url = str(request.url)
        headers = _aws_headers(url) if url.startswith("https://aps-workspaces.") else {}
        answer = httpx.get(url, headers=headers, timeout=30).raise_for_status().json()
        result = answer["data"]["result"]
        value = float(result[0]["value"][1]) if result else None
        found.append(None if value is None or math.isnan(value) else value)
    rpm, p95 = found
    return rpm, None if p95 is None else p95 * 1000


# -- the report ----------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 or value == int(value) else f"{value:,.2f}"


def render(a: Assessment) -> Iterable[str]:
    o, per_month = a.observed, f"{a.growth_percent:g} %/month" if a.growth_percent else ""
    yield f"what the stack sees ({'; '.join(o.sources)}), against {a.stack_tier}'s limits:"
    yield f"  {'measure':<22}{'observed':>12}{'limit':>12}{'used':>7}  {per_month}".rstrip()
    for r in a.rows:
        when = "" if r.months is None else f"in {r.months:.1f} months" if r.months else "reached"
        yield (
            f"  {r.measure:<22}{_number(r.observed):>12}{_number(r.limit):>12}"
            f"{r.share:>7.0%}  {when}"
        ).rstrip()
    if o.requests_per_minute is not None:
        yield f"  {'requests/min':<22}{_number(o.requests_per_minute):>12}{'-':>12}"
    if o.p95_ms is not None:
        trigger = a.latency_trigger_ms
        yield (
            f"  {'API p95 (ms)':<22}{_number(o.p95_ms):>12}{trigger:>12}"
            f"{o.p95_ms / trigger:>7.0%}  a trigger now, not a size"
        )
    outgrown = "; ".join(f"{t}: {m} over its limit" for t, m in a.beyond.items())
    if a.fits is None:
        yield f"fits: no tier ({outgrown}): split the district over tier4 regions"
    else:
        yield f"fits: {a.fits}" + (f" ({outgrown})" if outgrown else "")
    n = a.nearest
    yield (
        f"nearest trigger: {n.measure} {_number(n.observed)} of {a.stack_tier}'s "
        f"{_number(n.limit)} ({n.share:.0%})"
    )
    if a.latency_over:
        yield (
            f"trigger reached: API p95 {o.p95_ms:.0f} ms over {a.stack_tier}'s "
            f"{a.latency_trigger_ms} ms (unless the bottleneck is "
            "elsewhere: the HPA's maximum, a slow query, the model)"
        )
    if a.next_tier is None:
        yield f"next move: none ({a.stack_tier} is the top tier: add a region instead)"
    elif a.due_months == 0:
        yield f"next move: {a.next_tier}, due now"
    elif a.due_months is None:
        yield f"next move: {a.next_tier}; give --growth (percent a month) for when it is due"
    else:
        first = next(r for r in a.rows if r.months == a.due_months)
        yield (
            f"next move: {a.next_tier}, due in {a.due_months:.1f} months at {per_month} "
            f"({first.measure} reach {_number(first.limit)})"
        )


def stack_tier(stack: str) -> Tier:
    """The stack file's tier row with its overrides."""
    name = tier_of(stack)
    if name is None:
        raise ValueError(f"{stack}: picks no tier (tier 4's global stack holds no district)")
    return with_overrides(TIERS[name], *(stack_config(stack).get("overrides") or []))


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "the local socket"
    except ValueError:
        return "an unreadable URL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stack", help="the stack file the district runs (Pulumi.<stack>.yaml)")
    parser.add_argument("--metrics", action="append", default=[], help="an API pod's /metrics")
    parser.add_argument("--window", type=float, default=60, help="seconds between scrapes")
    parser.add_argument("--prometheus", help="the stack's prometheus_query_endpoint output")
    parser.add_argument("--growth", type=float, help="growth of the district, percent a month")
    parser.add_argument("--json", action="store_true", help="the assessment as JSON")
    args = parser.parse_args(argv)
    try:
        tier = stack_tier(args.stack)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    if args.growth is not None and args.growth <= 0:
        parser.error(f"--growth {args.growth}: a percentage a month above 0")
    if args.window <= 0:
        parser.error(f"--window {args.window}: seconds above 0")
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        parser.error("DATABASE_URL: set it in the environment to the database's URL")
    try:
        students, schools, gib, connections = from_database(url)
    except psycopg.Error as exc:
        # libpq's message can quote the whole URL (one it cannot parse): only its type and host.
        print(f"DATABASE_URL: {type(exc).__name__} connecting to {_host(url)}", file=sys.stderr)
        return 1
    sources, rpm, p95 = ["database"], None, None
    try:
        if args.prometheus:
            rpm, p95 = from_prometheus(args.prometheus)
            sources.append("Prometheus, last 5 min")
        elif args.metrics:
            rpm, p95 = from_metrics(args.metrics, args.window)
            sources.append(f"/metrics of {len(args.metrics)} pod(s) over {args.window:g} s")
    except (httpx.HTTPError, RuntimeError, KeyError, ValueError) as exc:
        option = "--prometheus" if args.prometheus else "--metrics"
        print(f"{option}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    observed = Observed(students, schools, gib, connections, rpm, p95, tuple(sources))
    assessment = assess(observed, tier, args.growth)
    if args.json:
        print(json.dumps(asdict(assessment), indent=2, default=str))
    else:
        for line in render(assessment):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
