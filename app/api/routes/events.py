"""Events: attendance marked, mark recorded, incident logged. They write the facts and queue
their students for the worker (`python -m app worker`), which rescores them within seconds."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api.deps import ClientDep, ServicesDep
from app.api.schemas import BODY_ERRORS, ERRORS, EventsIn, EventsOut
from app.core.logs import error_text
from app.jobs.events.apply import Outcome, apply_events
from app.jobs.events.validate import Event, key_of, parse

log = logging.getLogger("app.api")
router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post(
    "",
    status_code=202,
    response_model=EventsOut,
    responses={**ERRORS, **BODY_ERRORS},
)
async def post_events(body: EventsIn, client: ClientDep, svc: ServicesDep) -> JSONResponse:
    """Apply a batch of events: each is validated with the import's rules and applied once per
    idempotency key (per school). 202 lists the accepted events (a repeated key as a
    duplicate) and the rejected ones with the problem of each field. Every applied event is
    audited in the transaction that writes it. A 503 means nothing was queued: post the same
    batch again (its events come back as duplicates, and their students are queued)."""
    limit = svc.settings.events_max_batch
    if len(body.events) > limit:
        raise HTTPException(422, f"events: at most {limit} events per request")
    outcome = Outcome()
    events: list[tuple[int, Event]] = []
    for index, raw in enumerate(body.events):
        event, problems = parse(raw)
        if event is None:
            outcome.reject(index, key_of(raw), problems)
        else:
            events.append((index, event))
    queue = svc.events_queue
    if events:
        try:
            async with svc.db.transaction(client.tenant, write=True) as cur:
                await apply_events(cur, events, client.id, outcome, enqueue_in_db=queue is None)
        except psycopg.Error as exc:
            # Rolled back whole (e.g. the audit rows could not be written): nothing is stored.
            log.error("events not stored", extra={"error": error_text(exc)})
            raise HTTPException(
                503,
                "events not stored: post the same batch again",
                {"Retry-After": str(svc.settings.db_retry_after_seconds)},
            ) from exc
    outcome.rejected.sort(key=lambda r: int(r["index"]))
    if queue is not None and outcome.students:
        try:
            # boto3 blocks: off the event loop.
            await run_in_threadpool(queue.send, sorted(outcome.students))
        except Exception as exc:
            log.error("events stored but not queued", extra={"error": error_text(exc)})
            raise HTTPException(
                503,
                "events stored but not queued for rescoring: post the same batch again",
                {"Retry-After": str(svc.settings.db_retry_after_seconds)},
            ) from exc
    out: dict[str, Any] = {"accepted": outcome.accepted, "rejected": outcome.rejected}
    return JSONResponse(out, 202)
