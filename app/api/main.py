"""The app factory: lifespan (pools, audit partitions, first model load), the exception
handlers that turn outages into 503s with Retry-After, the middleware and the routers; or, with
SERVE_MODE=inference, SageMaker's routes alone.

    uvicorn --factory app.api.main:create_app
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.api.deps import AuditUnavailableError, ModelServices, Services
from app.api.limits import AdmissionMiddleware, BodyLimitMiddleware
from app.api.metrics import record_pools, worker_exited
from app.api.middleware import ObservabilityMiddleware
from app.api.region import add_region_redirect
from app.api.responses import validation_errors
from app.api.routes import (
    alerts,
    casework,
    events,
    operations,
    predictions,
    sagemaker,
    schools,
    students,
)
from app.core.db import DatabaseUnavailableError, ensure_audit_partitions, primary_url
from app.core.logins import API_LOGIN
from app.core.logs import error_text
from app.core.settings import Settings, get_settings
from app.model.served_models import NoModelError

log = logging.getLogger("app.api")  # the whole API logs as one logger, as before the split

POOL_SAMPLE_SECONDS = 5.0


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app `serve` runs: the whole API, or with SERVE_MODE=inference only SageMaker's
    routes, which touch neither the database nor API keys."""
    settings = settings or get_settings()
    if settings.serve_mode == "inference":
        return _inference_app(settings)
    svc = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.db.open()
        await run_in_threadpool(ensure_partitions_at_startup, settings)
        load_models_at_startup(svc)
        tune_gc(settings)
        sampler = asyncio.create_task(sample_pools(svc))
        log.info("api started", extra={"cache": svc.cache.backend, "version": __version__})
        yield
        sampler.cancel()
        worker_exited()
        await svc.cache.aclose()
        await svc.db.close()

    app = _app(svc, lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each refused input, which may be a NaN or Infinity
        # (JSON accepts neither) or a whole oversized body: name the field and the problem.
        return JSONResponse({"detail": validation_errors(exc.errors())}, 422)

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

    # In the order of the paths in the OpenAPI document. No prefix here: each router carries
    # its full one, as the route path the middleware labels metrics with is the router's own.
    for module in (operations, sagemaker, students, predictions, schools, alerts, events, casework):
        app.include_router(module.router)
    return app


def _inference_app(settings: Settings) -> FastAPI:
    """/ping and /invocations, scored from the model store alone (a SageMaker endpoint)."""
    svc = ModelServices(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        load_models_at_startup(svc)
        tune_gc(settings)
        log.info("inference started", extra={"version": __version__})
        yield

    app = _app(svc, lifespan)
    app.include_router(sagemaker.router)
    return app


def _app(svc: ModelServices, lifespan: Callable[[FastAPI], Any]) -> FastAPI:
    """What both apps share: the document's header, the middleware, the 503 without a model."""
    app = FastAPI(
        title="Student Success Prediction API",
        version=__version__,
        description="Dropout risk per student, at-risk lists per school, model versions.",
        lifespan=lifespan,
    )
    app.state.services = svc
    settings = svc.settings
    # Added innermost first: metrics and the access log see the requests the limits refuse.
    # Admission inside the body's limits: a request takes a slot only once its body is in.
    app.add_middleware(AdmissionMiddleware, limit=settings.max_in_flight)
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        limits={"/invocations": settings.max_invocation_bytes},
        timeout=settings.body_read_timeout_seconds,
    )
    if settings.serve_mode == "api":  # before the key is checked: api/region.py
        add_region_redirect(app, settings)
    app.add_middleware(ObservabilityMiddleware)

    @app.exception_handler(NoModelError)
    async def no_model(_: Request, exc: NoModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503, {"Retry-After": "60"})

    return app


async def sample_pools(svc: Services) -> None:
    """Record this worker's pool figures every POOL_SAMPLE_SECONDS: in multiprocess mode the
    worker answering /metrics reports every worker's last sample."""
    while True:
        record_pools(svc.db.stats())
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


def load_models_at_startup(svc: ModelServices) -> None:
    """Read the served models' pointer once; unreadable, requests retry it (and answer 503)."""
    try:
        svc.registry.pointer()
    except Exception:
        log.exception("model store unreadable at startup")


def tune_gc(settings: Settings) -> None:
    """Once the worker has started: freeze what startup built (GC_FREEZE) and raise the young
    generation's threshold (GC_YOUNG_THRESHOLD), so that a collection seldom stops the event
    loop and never walks the models (app/core/settings.py says why)."""
    if settings.gc_freeze:
        gc.collect()  # what startup left as garbage is freed, not frozen
        gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(settings.gc_young_threshold, older, oldest)


def ensure_partitions_at_startup(settings: Settings) -> None:
    """Create missing audit-log partitions: this month's and the next two, through the one
    partition function the API's login may call. Best effort: the API still starts while the
    database is down; `archive` and `migrate` do it too."""
    try:
        with psycopg.connect(
            primary_url(settings, API_LOGIN),
            autocommit=True,
            connect_timeout=settings.db_connect_timeout,
        ) as conn:
            created = ensure_audit_partitions(conn)
        if created:
            log.warning("audit partitions were missing; created", extra={"partitions": created})
    except psycopg.Error as exc:
        log.warning("could not ensure audit partitions", extra={"error": error_text(exc)})
