"""What the routes depend on: the Services state object built once per app, the API-key
dependency (authentication and the per-client rate limit), and the Annotated aliases that
route signatures use.

A request pays at most one Redis round trip before its route runs (`admit`): its rate limit,
the revocation counter when due, and for a cached read (given its cache key: the student risk
read's dependency) the cached answer."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import psycopg
from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from app.api import queries
from app.api.audit_rows import AuditRows
from app.api.schemas import MAX_BIGINT, MAX_INT
from app.core.auth import (
    REVOCATIONS,
    Authenticator,
    Client,
    FailureLimiter,
    TooManyFailuresError,
)
from app.core.cache import Cache
from app.core.db import Database
from app.core.indicators import CutPoints
from app.core.logs import error_text
from app.core.settings import Settings
from app.jobs.events.queue import Queue, SqsQueue
from app.model.artifacts import ModelStore, Pointer
from app.model.inputs import DistrictFeatureError
from app.model.served_models import ModelRegistry

log = logging.getLogger("app.api")  # the whole API logs as one logger, as before the split

StudentId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="Student id")]
SchoolId = Annotated[int, Path(ge=1, le=MAX_INT, description="School id")]


class AuditUnavailableError(RuntimeError):
    """The audit row could not be written, so the data must not be returned (FERPA)."""


class ModelServices:
    """What scoring needs, built once per app: the settings and the served models. All that
    the inference app (SERVE_MODE=inference, SageMaker) has."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = ModelRegistry(
            ModelStore(settings.model_store_url), settings.model_refresh_seconds
        )

    async def pointer(self) -> Pointer:
        """The served models' pointer, for a route on the event loop: a refresh that is due
        reads the store (S3) in a thread, so the loop never waits on it."""
        if self.registry.fresh:
            return self.registry.pointer()
        return await run_in_threadpool(self.registry.pointer)


class Services(ModelServices):
    """Everything a request of the API needs. Database access goes through `db.fetch`, one
    round trip on the event loop, which fails fast (DatabaseUnavailableError, a 503) while the
    database is down."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.db = Database(settings)
        self.cut_points = CutPoints.from_settings(settings)
        self.cache = Cache(settings.redis_url, settings.cache_prefix)
        self.auth = Authenticator(
            self.db.fetch,
            settings.api_key_pepper,
            FailureLimiter(self.cache, settings.auth_failures_per_minute),
        )
        self.audit_rows = AuditRows(self.db.fetch)
        # Where POST /v1/events queues students: SQS after the commit, or (None) the
        # PostgreSQL queue in the events' own transaction.
        self.events_queue: Queue | None = (
            SqsQueue(settings) if settings.queue_backend == "sqs" else None
        )

    async def audit(
        self,
        client: Client,
        action: str,
        student_id: int | None,
        detail: dict[str, Any],
        school_id: int | None = None,
    ) -> bool:
        """FERPA: a read of student data served without a read of its own (from the cache) is
        recorded before the data is returned. Reads write theirs themselves (app.api.queries).
        The rows of concurrent requests share one statement and commit (AuditRows): a cache
        hit costs a fraction of a database round trip. False: the student no longer exists
        (purged since the answer was cached), nothing was recorded and nothing may be served."""
        row = (client.id, school_id or client.school_id, student_id, action, json.dumps(detail))
        try:
            return await self.audit_rows.write(client.tenant, row)
        except psycopg.Error as exc:
            log.error("audit write failed", extra={"error": error_text(exc)})
            raise AuditUnavailableError("audit log unavailable") from exc

    async def audited(
        self, client: Client, query: str, params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """The rows of a statement that writes an audit row, on the primary. If it fails, no
        data may be returned: a 503, whatever the cause (e.g. no partition for this month is an
        operational fault, not a bug)."""
        try:
            return await self.db.fetch(client.tenant, query, params, write=True)
        except psycopg.Error as exc:
            log.error("audited read failed", extra={"error": error_text(exc)})
            raise AuditUnavailableError("audit log unavailable") from exc

    def check_school_key(self, client: Client, school_id: int) -> None:
        """403 for a school key asking about another school (no query needed)."""
        if client.school_id is not None and client.school_id != school_id:
            raise HTTPException(403, f"this key is scoped to school {client.school_id}")

    @staticmethod
    def refuse_unseen_school(school_id: int) -> NoReturn:
        """403 for a district key's school that its district does not have."""
        raise HTTPException(403, f"school {school_id} is not in this key's district")

    async def check_school(self, client: Client, school_id: int) -> None:
        self.check_school_key(client, school_id)
        if client.school_id is None and not await self.db.fetch(
            client.tenant, queries.SCHOOL_VISIBLE, (school_id,)
        ):
            self.refuse_unseen_school(school_id)


async def services(request: Request) -> Services:
    # async: no I/O, so FastAPI runs it on the event loop instead of a thread-pool hop.
    svc: Services = request.app.state.services
    return svc


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


ApiKey = Annotated[str | None, Depends(api_key_header)]


async def authenticate(request: Request, key: str | None, svc: Services) -> Client:
    """The key's client; 401 for a missing or bad key, 429 for an address that failed too
    often. No Redis round trip for a client already cached."""
    if not key:
        raise HTTPException(
            401, "missing API key (X-API-Key header)", {"WWW-Authenticate": "ApiKey"}
        )
    # The peer address; the server replaced it with X-Forwarded-For's client only when the
    # peer is a configured proxy (FORWARDED_ALLOW_IPS, app.cli.serving.server_options).
    ip = request.client.host if request.client is not None else "unknown"
    try:
        client = await svc.auth.authenticate(key, ip)
    except TooManyFailuresError as exc:
        raise HTTPException(
            429,
            f"too many failed authentications from this address, retry in {exc.retry_after}s",
            {"Retry-After": str(exc.retry_after)},
        ) from exc
    if client is None:
        raise HTTPException(401, "invalid API key", {"WWW-Authenticate": "ApiKey"})
    return client


@dataclass(frozen=True)
class CachedRead:
    """An admitted request of a cached read: its client, its cache key and what is cached
    under it (None: a miss)."""

    client: Client
    key: str
    cached: bytes | None


async def admit(
    request: Request,
    key: str | None,
    svc: Services,
    client: Client,
    cache_key: Callable[[Client], str] | None = None,
) -> CachedRead:
    """The client's rate limit (429 beyond it), the revocation counter when due and the
    answer cached under `cache_key(client)`: one Redis round trip. A revocation seen there
    empties the client cache, and this request's key is checked again."""
    s = svc.settings
    limit = s.rate_limit(client.key_class)
    lookup = cache_key(client) if cache_key is not None else None
    due = svc.auth.revocations_due()
    admission = await svc.cache.admit(
        f"client:{client.id}",
        limit,
        s.rate_limit_window_seconds,
        lookup,
        counters=(REVOCATIONS,) if due else (),
    )
    cached = admission.cached
    if due and svc.auth.revocations_read((admission.counters or {}).get(REVOCATIONS)):
        checked = await authenticate(request, key, svc)
        if checked != client:
            client, cached = checked, None
    if not admission.rate.allowed:
        raise HTTPException(
            429,
            f"rate limit of {limit} requests per {s.rate_limit_window_seconds}s"
            f" for {client.key_class} keys exceeded",
            {"Retry-After": str(admission.rate.retry_after)},
        )
    # Added to the response by ObservabilityMiddleware (handlers may return a raw Response).
    request.state.extra_headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(admission.rate.remaining),
    }
    request.state.client_id = client.id
    return CachedRead(client, lookup or "", cached)


async def require_client(
    request: Request, key: ApiKey, svc: Annotated[Services, Depends(services)]
) -> Client:
    """The request's client, authenticated and admitted (rate limit)."""
    client = await authenticate(request, key, svc)
    return (await admit(request, key, svc, client)).client


async def model_services(request: Request) -> ModelServices:
    svc: ModelServices = request.app.state.services
    return svc


def check_district_features(
    registry: ModelRegistry,
    school_id: int | None,
    extras: Sequence[dict[str, Any]],
    status: int,
    loc: list[str | int],
) -> None:
    """A 4xx naming the instance and feature when a posted district feature is not one the
    answering model takes, or its value is refused (bounds, allowed values)."""
    if not any(extras):
        return
    spec = registry.model_for(school_id, refresh=True)[2].spec
    for i, found in enumerate(extras):
        try:
            spec.check(found)
        except DistrictFeatureError as exc:
            raise HTTPException(
                status,
                [{"loc": [*loc, i, "district_features", exc.name], "msg": exc.problem,
                  "type": "value_error"}],
            ) from None  # fmt: skip


ClientDep = Annotated[Client, Depends(require_client)]
ServicesDep = Annotated[Services, Depends(services)]
ModelServicesDep = Annotated[ModelServices, Depends(model_services)]
