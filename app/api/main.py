"""The app factory: lifespan (pools, audit partitions, first model load), the exception
handlers that turn outages into 503s with Retry-After, the middleware and the routers.

    uvicorn --factory app.api.main:create_app
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.api.deps import AuditUnavailableError, Services
from app.api.limits import AdmissionMiddleware, BodyLimitMiddleware
from app.api.middleware import ObservabilityMiddleware
from app.api.responses import validation_errors
from app.api.routes import operations, predictions, sagemaker, schools, students
from app.config import Settings, get_settings
from app.db import API_LOGIN, DatabaseUnavailableError, ensure_audit_partitions, primary_url
from app.model_registry import NoModelError

log = logging.getLogger("app.api")  # the whole API logs as one logger, as before the split


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
    # Added innermost first: metrics and the access log see the requests the limits refuse.
    app.add_middleware(
        BodyLimitMiddleware,
        default_limit=settings.max_body_bytes,
        limits={"/invocations": settings.max_invocation_bytes},
    )
    app.add_middleware(AdmissionMiddleware, limit=settings.max_in_flight)
    app.add_middleware(ObservabilityMiddleware)

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

    @app.exception_handler(NoModelError)
    async def no_model(_: Request, exc: NoModelError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, 503, {"Retry-After": "60"})

    # In the order of the paths in the OpenAPI document. No prefix here: each router carries
    # its full one, as the route path the middleware labels metrics with is the router's own.
    for module in (operations, sagemaker, students, predictions, schools):
        app.include_router(module.router)
    return app


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
        log.warning("could not ensure audit partitions", extra={"error": str(exc)[:300]})
