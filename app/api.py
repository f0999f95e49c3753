"""Prediction API (FastAPI) and the SageMaker container contract (/ping, /invocations)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import psycopg
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from psycopg_pool import PoolTimeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.auth import Authenticator, Client, FailureLimiter, TooManyFailuresError
from app.cache import Cache
from app.config import Settings, get_settings
from app.db import Database, Tenant, ensure_audit_partitions, primary_url
from app.features import FEATURES, StudentFeatures, to_matrix
from app.models import ModelRegistry, NoModelError
from app.store import ModelStore

log = logging.getLogger(__name__)

MAX_INT = 2**31 - 1
MAX_BIGINT = 2**63 - 1
MAX_INVOCATION_ROWS = 10_000
# Bodies up to this size are scored on the event loop (no thread hop): about 20 JSON rows or
# 100 CSV rows, well under a millisecond of parsing and scoring.
INLINE_INVOCATION_BYTES = 4 * 1024
StudentId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="Student id")]
SchoolId = Annotated[int, Path(ge=1, le=MAX_INT, description="School id")]

REQUESTS = Counter("ssp_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "ssp_http_request_duration_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5),
)
PREDICTIONS = Counter("ssp_predictions_total", "Rows scored", ["endpoint"])
GENERATION = Gauge("ssp_model_generation", "Generation of the model pointer being served")


class DatabaseUnavailableError(RuntimeError):
    pass


class AuditUnavailableError(RuntimeError):
    """The audit row could not be written, so the data must not be returned (FERPA)."""


# ---- response and request bodies -------------------------------------------------------


class RiskOut(BaseModel):
    student_id: int
    school_id: int
    risk: float = Field(description="Calibrated probability of dropping out")
    at_risk: bool = Field(description="risk >= threshold")
    threshold: float
    model_scope: str = Field(description="'school-<id>' or 'district' (fallback)")
    model_version: str
    generation: int
    features: dict[str, float]


class AtRiskItem(BaseModel):
    student_id: int
    first_name: str
    last_name: str
    grade: int
    risk: float
    model_version: str


class AtRiskPage(BaseModel):
    school_id: int
    min_risk: float
    generation: int
    limit: int
    items: list[AtRiskItem]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class PredictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    school_id: int | None = Field(default=None, ge=1, le=MAX_INT, description="Model of school")
    instances: list[StudentFeatures] = Field(min_length=1, max_length=1000)


class PredictionOut(BaseModel):
    risk: float
    at_risk: bool
    model_scope: str
    model_version: str


class PredictOut(BaseModel):
    threshold: float
    predictions: list[PredictionOut]


class InvocationInstance(StudentFeatures):
    school_id: int | None = Field(default=None, ge=1, le=MAX_INT)


class InvocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[InvocationInstance] = Field(min_length=1, max_length=MAX_INVOCATION_ROWS)


# Written out so the OpenAPI document has no dangling $defs reference.
INVOCATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["instances"],
    "additionalProperties": False,
    "properties": {
        "instances": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_INVOCATION_ROWS,
            "items": InvocationInstance.model_json_schema(),
        }
    },
}


class InvocationOut(BaseModel):
    predictions: list[PredictionOut]


class ModelVersionOut(BaseModel):
    version: str
    scope: str
    school_id: int | None
    promoted: bool
    is_current: bool
    created_at: datetime
    metrics: dict[str, float]


class ModelsOut(BaseModel):
    school_id: int
    current_scope: str | None
    current_version: str | None
    versions: list[ModelVersionOut]


class Status(BaseModel):
    status: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    detail: Any


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Missing or invalid API key"},
    403: {"model": ErrorOut, "description": "Key not scoped to this school"},
    429: {"model": ErrorOut, "description": "Rate limit exceeded; see Retry-After"},
    503: {"model": ErrorOut, "description": "Database or model unavailable; see Retry-After"},
}


# ---- services ------------------------------------------------------------------------------


class Services:
    """Everything a request needs, built once per app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.cache = Cache(settings.redis_url, settings.cache_prefix)
        self.registry = ModelRegistry(
            ModelStore(settings.model_store_url), settings.model_refresh_seconds
        )
        self.auth = Authenticator(
            self.tx,
            settings.api_key_pepper,
            FailureLimiter(self.cache, settings.auth_failures_per_minute),
        )
        self._db_down_until = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def tx(self, tenant: Tenant | None, write: bool = False) -> Iterator[psycopg.Cursor[Any]]:
        """A DB transaction that fails fast with DatabaseUnavailableError while the DB is down:
        after one failure, requests get 503 at once for a second instead of each waiting for
        the pool timeout, then the next one probes the DB again."""
        if time.monotonic() < self._db_down_until:
            raise DatabaseUnavailableError("database unavailable")
        try:
            with self.db.transaction(tenant, write=write) as cur:
                yield cur
        except (psycopg.OperationalError, PoolTimeout) as exc:
            with self._lock:
                self._db_down_until = time.monotonic() + 1.0
            log.warning("database unavailable", extra={"error": str(exc)[:200]})
            raise DatabaseUnavailableError("database unavailable") from exc

    def audit(
        self,
        client: Client,
        action: str,
        student_id: int | None,
        detail: dict[str, Any],
        school_id: int | None = None,
    ) -> None:
        """FERPA: every read of student data is recorded before the data is returned."""
        try:
            with self.tx(client.tenant, write=True) as cur:
                cur.execute(
                    "INSERT INTO audit_log (client_id, school_id, student_id, action, detail)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (
                        client.id,
                        school_id or client.school_id,
                        student_id,
                        action,
                        json.dumps(detail),
                    ),
                )
        except psycopg.Error as exc:
            # E.g. no partition for this month: an operational fault (503), not a bug (500).
            log.error("audit insert failed", extra={"action": action, "error": str(exc)[:300]})
            raise AuditUnavailableError("audit log unavailable") from exc

    def check_school(self, client: Client, school_id: int) -> None:
        if client.school_id is not None:
            if client.school_id != school_id:
                raise HTTPException(403, f"this key is scoped to school {client.school_id}")
            return
        with self.tx(client.tenant) as cur:
            cur.execute("SELECT 1 FROM schools WHERE id = %s", (school_id,))
            if cur.fetchone() is None:
                raise HTTPException(403, f"school {school_id} is not in this key's district")


async def services(request: Request) -> Services:
    # async: no I/O, so FastAPI runs it on the event loop instead of a thread-pool hop.
    svc: Services = request.app.state.services
    return svc


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def require_client(
    request: Request,
    key: Annotated[str | None, Depends(api_key_header)],
    svc: Annotated[Services, Depends(services)],
) -> Client:
    if not key:
        raise HTTPException(
            401, "missing API key (X-API-Key header)", {"WWW-Authenticate": "ApiKey"}
        )
    # The peer address: the app has no trusted-proxy setting, so X-Forwarded-For is ignored.
    ip = request.client.host if request.client is not None else "unknown"
    try:
        client = svc.auth.authenticate(key, ip)
    except TooManyFailuresError as exc:
        raise HTTPException(
            429,
            f"too many failed authentications from this address, retry in {exc.retry_after}s",
            {"Retry-After": str(exc.retry_after)},
        ) from exc
    if client is None:
        raise HTTPException(401, "invalid API key", {"WWW-Authenticate": "ApiKey"})
    s = svc.settings
    decision = svc.cache.rate_limit(
        f"client:{client.id}", s.rate_limit_requests, s.rate_limit_window_seconds
    )
    if not decision.allowed:
        raise HTTPException(
            429,
            f"rate limit of {s.rate_limit_requests} requests"
            f" per {s.rate_limit_window_seconds}s exceeded",
            {"Retry-After": str(decision.retry_after)},
        )
    # Added to the response by ObservabilityMiddleware (handlers may return a raw Response).
    request.state.extra_headers = {
        "X-RateLimit-Limit": str(s.rate_limit_requests),
        "X-RateLimit-Remaining": str(decision.remaining),
    }
    request.state.client_id = client.id
    return client


ClientDep = Annotated[Client, Depends(require_client)]
ServicesDep = Annotated[Services, Depends(services)]


def json_response(body: bytes, cache: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body, media_type="application/json", headers={"X-Cache": cache, **(headers or {})}
    )


def tenant_key(client: Client) -> str:
    return f"s{client.school_id}" if client.school_id is not None else f"d{client.district_id}"


def encode_cursor(risk: float, student_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"r": risk, "i": student_id}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        risk, sid = float(data["r"]), int(data["i"])
        if not (0 <= risk <= 1 and 1 <= sid <= MAX_BIGINT):
            raise ValueError
        return risk, sid
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise HTTPException(
            422, [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}]
        ) from None


def at_risk_query(
    gen: int, school_id: int, floor: float, limit: int, after: tuple[float, int] | None = None
) -> tuple[str, list[Any]]:
    """SQL and parameters of one at-risk page: one row more than `limit`, to tell whether a next
    page exists; `after` is the decoded keyset cursor. Also timed by benchmarks/queries.py."""
    where = "r.generation = %s AND r.school_id = %s AND r.risk >= %s::real"
    params: list[Any] = [gen, school_id, floor]
    if after is not None:
        where += " AND (r.risk, r.student_id) < (%s::real, %s)"
        params += list(after)
    # The page is cut from risk_scores before students are joined: under row-level security
    # PostgreSQL 16 cannot walk the index in order (the policy's school_id = ANY(...) sits on
    # its second column), so it sorts every qualifying score; joining only the page's rows
    # keeps a school with thousands of students over the floor cheap. A LEFT JOIN keeps the
    # page's length (and so the next cursor) right when a student is no longer visible (moved
    # school since scoring): such rows come back with a NULL name for the caller to drop.
    return (
        "SELECT r.student_id, s.first_name, s.last_name, s.grade, r.risk, r.model_version"
        " FROM (SELECT r.student_id, r.risk, r.model_version FROM risk_scores r"
        f" WHERE {where} ORDER BY r.risk DESC, r.student_id DESC LIMIT %s) r"
        " LEFT JOIN students s ON s.id = r.student_id"
        " ORDER BY r.risk DESC, r.student_id DESC",
        [*params, limit + 1],
    )


def prediction_out(risk: float, scope: str, version: str, threshold: float) -> dict[str, Any]:
    return {
        "risk": risk,
        "at_risk": risk >= threshold,
        "model_scope": scope,
        "model_version": version,
    }


# ---- application ---------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    svc = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.db.open()
        await run_in_threadpool(ensure_partitions_at_startup, settings)
        try:
            svc.registry.pointer()
        except Exception:
            log.exception("model store unreadable at startup")
        log.info("api started", extra={"cache": svc.cache.backend, "version": __version__})
        yield
        svc.db.close()

    app = FastAPI(
        title="Student Success Prediction API",
        version=__version__,
        description="Dropout risk per student, at-risk lists per school, model versions.",
        lifespan=lifespan,
    )
    app.state.services = svc
    app.add_middleware(ObservabilityMiddleware)

    @app.exception_handler(DatabaseUnavailableError)
    async def db_unavailable(_: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        return JSONResponse(
            {"detail": "database unavailable, retry later"},
            503,
            {"Retry-After": str(settings.db_retry_after_seconds)},
        )

    @app.exception_handler(AuditUnavailableError)
    async def audit_unavailable(_: Request, exc: AuditUnavailableError) -> JSONResponse:
        return JSONResponse(
            {"detail": "audit log unavailable, retry later"},
            503,
            {"Retry-After": str(settings.db_retry_after_seconds)},
        )

    @app.exception_handler(NoModelError)
    async def no_model(_: Request, exc: NoModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503, {"Retry-After": "60"})

    # ---- operations ----

    @app.get("/health", response_model=Status, tags=["ops"])
    def health() -> Status:
        """Liveness: the process answers. Does not touch the database."""
        return Status(status="ok")

    @app.get("/ready", response_model=Status, tags=["ops"], responses={503: {"model": Status}})
    def ready(svc: ServicesDep) -> Any:
        """Readiness: the database answers (and a model is loaded, reported in detail)."""
        detail: dict[str, Any] = {"cache": svc.cache.backend if svc.cache.ping() else "degraded"}
        try:
            with svc.tx(None) as cur:
                cur.execute("SELECT 1")
            detail["database"] = "ok"
        except DatabaseUnavailableError:
            detail["database"] = "unavailable"
            return JSONResponse(
                {"status": "unavailable", "detail": detail},
                503,
                {"Retry-After": str(settings.db_retry_after_seconds)},
            )
        try:
            detail["model_generation"] = svc.registry.generation
        except Exception:
            detail["model_generation"] = None
        return Status(status="ready", detail=detail)

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics(svc: ServicesDep) -> Response:
        """Prometheus metrics."""
        try:
            GENERATION.set(svc.registry.generation)
        except Exception:
            log.warning("model store unreadable for metrics")
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # ---- SageMaker container contract ----

    @app.get(
        "/ping", response_model=Status, tags=["sagemaker"], responses={503: {"model": ErrorOut}}
    )
    def ping(svc: ServicesDep) -> Status:
        """SageMaker health check: 200 once a model is loaded."""
        _, version = svc.registry.scope_for(None)
        return Status(
            status="ok", detail={"generation": svc.registry.generation, "district_version": version}
        )

    @app.post(
        "/invocations",
        response_model=InvocationOut,
        tags=["sagemaker"],
        responses={
            400: {"model": ErrorOut},
            413: {"model": ErrorOut},
            415: {"model": ErrorOut},
            503: {"model": ErrorOut},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": INVOCATION_SCHEMA},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        },
    )
    async def invocations(request: Request) -> Response:
        """SageMaker inference. JSON: {"instances": [{features..., "school_id"?}]}.
        CSV: one row per student, the features in order (optionally school_id first)."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/json", "text/csv"):
            raise HTTPException(415, "content type must be application/json or text/csv")
        body = await read_capped(request, settings.max_invocation_bytes)
        accept = request.headers.get("accept", "")
        # A small body with the models in memory costs tens of microseconds: scored on the
        # event loop, as a hop to the thread pool would cost more than the work. Large bodies
        # and model (re)loads from the store go to the pool so other requests keep flowing.
        if len(body) <= INLINE_INVOCATION_BYTES and svc.registry.fresh:
            return invoke(svc, ctype, body, accept, refresh=False)
        return await run_in_threadpool(invoke, svc, ctype, body, accept)

    # ---- prediction API ----

    @app.get(
        "/v1/students/{student_id}/risk",
        response_model=RiskOut,
        tags=["predictions"],
        responses={**ERRORS, 404: {"model": ErrorOut}},
    )
    def student_risk(student_id: StudentId, client: ClientDep, svc: ServicesDep) -> Response:
        """Dropout risk of one student, from the features in the database and the model of the
        student's school. Every call is written to the audit log."""
        gen = svc.registry.generation
        key = f"risk:g{gen}:{tenant_key(client)}:{student_id}"
        cached = svc.cache.get(key)
        if cached is not None:
            school = json.loads(cached)["school_id"]
            svc.audit(client, "read_student_risk", student_id, {"cache": "hit"}, school)
            return json_response(cached, "hit")
        with svc.tx(client.tenant) as cur:
            cur.execute(
                f"SELECT student_id, school_id, {', '.join(FEATURES)}"
                " FROM student_features_visible WHERE student_id = %s",
                (student_id,),
            )
            row = cur.fetchone()
        if row is None:
            raise HTTPException(404, f"student {student_id} not found")
        pred = svc.registry.predict([row["school_id"]], to_matrix([row]))[0]
        PREDICTIONS.labels("student_risk").inc()
        t = svc.settings.alert_threshold
        out = RiskOut(
            student_id=row["student_id"],
            school_id=row["school_id"],
            risk=pred.risk,
            at_risk=pred.risk >= t,
            threshold=t,
            model_scope=pred.scope,
            model_version=pred.version,
            generation=gen,
            features={f: float(row[f]) for f in FEATURES},
        )
        body = out.model_dump_json().encode()
        svc.audit(client, "read_student_risk", student_id, {"cache": "miss"}, row["school_id"])
        svc.cache.set(key, body, svc.settings.cache_ttl_risk_seconds)
        return json_response(body, "miss")

    @app.post("/v1/predict", response_model=PredictOut, tags=["predictions"], responses=ERRORS)
    def predict(body: PredictIn, client: ClientDep, svc: ServicesDep) -> PredictOut:
        """Risk for posted features (no student data is read), with the model of `school_id`
        or the district model."""
        if body.school_id is not None:
            svc.check_school(client, body.school_id)
        x = to_matrix([i.model_dump() for i in body.instances])
        preds = svc.registry.predict([body.school_id] * len(body.instances), x)
        PREDICTIONS.labels("predict").inc(len(preds))
        t = svc.settings.alert_threshold
        return PredictOut(
            threshold=t,
            predictions=[
                PredictionOut(**prediction_out(p.risk, p.scope, p.version, t)) for p in preds
            ],
        )

    @app.get(
        "/v1/schools/{school_id}/at-risk",
        response_model=AtRiskPage,
        tags=["predictions"],
        responses={**ERRORS, 422: {"model": ErrorOut}},
    )
    def at_risk(
        school_id: SchoolId,
        client: ClientDep,
        svc: ServicesDep,
        limit: Annotated[int, Query(ge=1, le=100, description="Page size, at most 100")] = 50,
        min_risk: Annotated[
            float | None, Query(ge=0, le=1, description="Default: alert threshold")
        ] = None,
        cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor")] = None,
    ) -> Response:
        """Students of a school at or above a risk, highest first, with keyset pagination."""
        svc.check_school(client, school_id)
        floor = svc.settings.alert_threshold if min_risk is None else min_risk
        after = decode_cursor(cursor) if cursor else None
        gen = svc.registry.generation
        key = f"atrisk:g{gen}:{school_id}:{floor}:{limit}:{cursor}"
        body = svc.cache.get(key)
        hit = body is not None
        if body is None:
            with svc.tx(client.tenant) as cur:
                cur.execute(*at_risk_query(gen, school_id, floor, limit, after))
                rows = cur.fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            page = AtRiskPage(
                school_id=school_id,
                min_risk=floor,
                generation=gen,
                limit=limit,
                items=[AtRiskItem(**r) for r in rows if r["first_name"] is not None],
                next_cursor=(
                    encode_cursor(rows[-1]["risk"], rows[-1]["student_id"]) if more else None
                ),
            )
            body = page.model_dump_json().encode()
            svc.cache.set(key, body, svc.settings.cache_ttl_at_risk_seconds)
        ids = [i["student_id"] for i in json.loads(body)["items"]]
        svc.audit(client, "read_at_risk_list", None, {"student_ids": ids}, school_id)
        return json_response(body, "hit" if hit else "miss")

    @app.get(
        "/v1/schools/{school_id}/models",
        response_model=ModelsOut,
        tags=["models"],
        responses=ERRORS,
    )
    def school_models(school_id: SchoolId, client: ClientDep, svc: ServicesDep) -> Response:
        """Model versions that can serve this school (its own and the district's), newest first."""
        svc.check_school(client, school_id)
        pointer = svc.registry.pointer()
        key = f"models:g{pointer.generation}:{school_id}"
        cached = svc.cache.get(key)
        if cached is not None:
            return json_response(cached, "hit")
        with svc.tx(client.tenant) as cur:
            cur.execute(
                "SELECT version, scope, school_id, promoted, created_at, metrics"
                " FROM model_versions WHERE school_id = %s OR school_id IS NULL"
                " ORDER BY created_at DESC, scope LIMIT 50",
                (school_id,),
            )
            rows = cur.fetchall()
        try:
            scope, version = svc.registry.scope_for(school_id)
            current: tuple[str | None, str | None] = (scope, version)
        except NoModelError:
            current = (None, None)
        out = ModelsOut(
            school_id=school_id,
            current_scope=current[0],
            current_version=current[1],
            versions=[
                ModelVersionOut(**r, is_current=pointer.scopes.get(r["scope"]) == r["version"])
                for r in rows
            ],
        )
        body = out.model_dump_json().encode()
        svc.cache.set(key, body, svc.settings.cache_ttl_models_seconds)
        return json_response(body, "miss")

    return app


def ensure_partitions_at_startup(settings: Settings) -> None:
    """Create missing audit-log partitions (as the owner: the app role may not). Best effort:
    the API still starts while the database is down; `archive` and `migrate` do it too."""
    try:
        with psycopg.connect(
            primary_url(settings), autocommit=True, connect_timeout=settings.db_connect_timeout
        ) as conn:
            created = ensure_audit_partitions(conn)
        if created:
            log.warning("audit partitions were missing; created", extra={"partitions": created})
    except psycopg.Error as exc:
        log.warning("could not ensure audit partitions", extra={"error": str(exc)[:300]})


async def read_capped(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` bytes
    (from Content-Length, or while streaming a chunked body) rather than after reading it."""
    too_large = HTTPException(413, f"request body exceeds the limit of {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def invoke(svc: Services, ctype: str, body: bytes, accept: str, refresh: bool = True) -> Response:
    if ctype == "application/json":
        try:
            parsed = InvocationIn.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(400, _errors(exc)) from None
        schools: list[int | None] = [i.school_id for i in parsed.instances]
        x = to_matrix([i.model_dump() for i in parsed.instances])
    else:
        schools, x = parse_csv(body)
    preds = svc.registry.predict(schools, x, refresh=refresh)
    PREDICTIONS.labels("invocations").inc(len(preds))
    t = svc.settings.alert_threshold
    if "text/csv" in accept:
        return PlainTextResponse(
            "\n".join(str(p.risk) for p in preds) + "\n", media_type="text/csv"
        )
    out = {"predictions": [prediction_out(p.risk, p.scope, p.version, t) for p in preds]}
    return Response(json.dumps(out).encode(), media_type="application/json")


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]


def parse_csv(body: bytes) -> tuple[list[int | None], np.ndarray]:
    """CSV rows of len(FEATURES) numbers, or school_id followed by them. A header is skipped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "CSV body must be UTF-8") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if rows and rows[0] and not _is_number(rows[0][0]):
        rows = rows[1:]
    if not rows:
        raise HTTPException(400, "CSV body has no rows")
    if len(rows) > MAX_INVOCATION_ROWS:
        raise HTTPException(400, f"at most {MAX_INVOCATION_ROWS} rows per request")
    schools: list[int | None] = []
    values: list[list[float]] = []
    n = len(FEATURES)
    for line, row in enumerate(rows, 1):
        if len(row) not in (n, n + 1):
            raise HTTPException(
                400, f"row {line}: expected {n} columns ({', '.join(FEATURES)}), got {len(row)}"
            )
        try:
            nums = [float(c) for c in row]
        except ValueError:
            raise HTTPException(400, f"row {line}: every column must be a number") from None
        sid: int | None = None
        if len(nums) == n + 1:
            # float() accepts nan, inf and 1e400 (inf); int() would raise on those (a 500)
            # and silently truncate 5.7 to school 5.
            first = nums.pop(0)
            if not (math.isfinite(first) and first.is_integer() and 1 <= first <= MAX_INT):
                raise HTTPException(
                    400, f"row {line}: school_id must be an integer from 1 to {MAX_INT}"
                )
            sid = int(first)
        try:
            StudentFeatures(**dict(zip(FEATURES, nums, strict=True)))
        except ValidationError as exc:
            field = exc.errors()[0]["loc"][0]
            raise HTTPException(400, f"row {line}: {field}: {exc.errors()[0]['msg']}") from None
        schools.append(sid)
        values.append(nums)
    return schools, np.array(values, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


class ObservabilityMiddleware:
    """Prometheus metrics and one JSON access-log line per request (plain ASGI, low overhead)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                extra = (scope.get("state") or {}).get("extra_headers")
                if extra:
                    message = {
                        **message,
                        "headers": [
                            *message.get("headers", []),
                            *((k.lower().encode(), v.encode()) for k, v in extra.items()),
                        ],
                    }
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], path, str(status["code"])).inc()
            LATENCY.labels(path).observe(elapsed)
            if path not in ("/invocations", "/ping", "/metrics", "/health"):
                state = scope.get("state") or {}
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "route": path,
                        "status": status["code"],
                        "ms": round(elapsed * 1000, 2),
                        "client_id": state.get("client_id"),
                    },
                )
