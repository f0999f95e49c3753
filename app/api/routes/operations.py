"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from app.api import queries
from app.api.deps import ServicesDep
from app.api.metrics import exposition, record_models, record_overdue, record_pools
from app.api.schemas import Status
from app.core.db import DatabaseUnavailableError

log = logging.getLogger("app.api")  # the whole API logs as one logger, as before the split

router = APIRouter(tags=["ops"])


@router.get("/health", response_model=Status)
def health() -> Status:
    """Liveness: the process answers. Does not touch the database."""
    return Status(status="ok")


@router.get("/ready", response_model=Status, responses={503: {"model": Status}})
async def ready(svc: ServicesDep) -> Any:
    """Readiness: the database answers (and a model is loaded, reported in detail)."""
    pinged = await run_in_threadpool(svc.cache.ping)  # a Redis round trip, blocking client
    detail: dict[str, Any] = {"cache": svc.cache.backend if pinged else "degraded"}
    try:
        await svc.db.fetch(None, queries.PING)
        detail["database"] = "ok"
    except DatabaseUnavailableError:
        detail["database"] = "unavailable"
        return JSONResponse(
            {"status": "unavailable", "detail": detail},
            503,
            {"Retry-After": str(svc.settings.db_retry_after_seconds)},
        )
    try:
        detail["model_generation"] = (await svc.pointer()).generation
    except Exception:
        detail["model_generation"] = None
    return Status(status="ready", detail=detail)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(svc: ServicesDep) -> Response:
    """Prometheus metrics (every worker's, in multiprocess mode)."""
    try:
        days = svc.settings.alert_overdue_days
        record_overdue(await svc.db.fetch(None, queries.OVERDUE_ALERT_COUNTS, (days,)))
    except (DatabaseUnavailableError, psycopg.Error):
        log.warning("overdue alerts not counted: database unavailable")
    return await run_in_threadpool(_exposition, svc)


def _exposition(svc: ServicesDep) -> Response:
    record_pools(svc.db.stats())
    try:
        record_models(svc.registry.generation, svc.registry.served_figures())
    except Exception:
        log.warning("model store unreadable for metrics")
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
