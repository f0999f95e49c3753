"""Students: the dropout risk of one student (audited, cached per model generation)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from app.api import queries
from app.api.deps import (
    ApiKey,
    CachedRead,
    ClientDep,
    ServicesDep,
    StudentId,
    admit,
    authenticate,
)
from app.api.metrics import PREDICTIONS
from app.api.responses import json_response
from app.api.schemas import ERRORS, ErrorOut, ReasonOut, RiskOut, indicators_out
from app.core.auth import Client
from app.core.indicators import from_row
from app.jobs.lifecycle.access_report import WHAT, Access, report
from app.model.features import STANDARD_FEATURES, district_values, query_matrix

router = APIRouter(prefix="/v1/students", tags=["predictions"])
# The live audit log's accesses to one student of the tenant (migration 0021), and where the
# live audit log begins (0023).
ACCESSES = "SELECT *, audit_log_live_since() AS live_since FROM student_accesses(%s)"
# Months before the live audit log are in the audit archive, which the API cannot read.
ARCHIVED_MONTHS = (
    "not included: months archived before live_since are read by the access-report Job"
    " (python -m app access-report), which the district's operators run"
)


def tenant_key(client: Client) -> str:
    return f"s{client.school_id}" if client.school_id is not None else f"d{client.district_id}"


async def risk_read(
    request: Request, student_id: StudentId, key: ApiKey, svc: ServicesDep
) -> tuple[CachedRead, int]:
    """The caller, authenticated and admitted, and the cached answer of the served models'
    generation (with that generation): the rate limit and the cache lookup in one Redis
    round trip."""
    client = await authenticate(request, key, svc)
    gen = (await svc.pointer()).generation
    top = svc.settings.risk_reasons
    # v2: cached as "<school id>\n<body>" (v1, the bare body, is left to expire).
    name = f"risk:v2:g{gen}:r{top}"
    read = await admit(request, key, svc, client, lambda c: f"{name}:{tenant_key(c)}:{student_id}")
    return read, gen


@router.get(
    "/{student_id}/risk",
    response_model=RiskOut,
    responses={**ERRORS, 404: {"model": ErrorOut}},
)
async def student_risk(
    student_id: StudentId,
    admitted: Annotated[tuple[CachedRead, int], Depends(risk_read)],
    svc: ServicesDep,
) -> Response:
    """Dropout risk of one student, from the features in the database and the model of the
    student's school, with its main reasons. Every call is written to the audit log."""
    (read, gen), top = admitted, svc.settings.risk_reasons
    client = read.client
    if read.cached is not None:
        # The audit row names the school without parsing the body.
        school, _, body = read.cached.partition(b"\n")
        detail = {"cache": "hit", "reasons": top}
        if not await svc.audit(client, "read_student_risk", student_id, detail, int(school)):
            # Purged after it was cached (a late fill, or this process's own cache without
            # Redis): the answer is forgotten, never served.
            await svc.cache.forget(read.key)
            raise HTTPException(404, f"student {student_id} not found")
        return json_response(body, "hit")
    # The read writes its audit row itself: one round trip, rows only with their audit row.
    detail_json = json.dumps({"cache": "miss", "reasons": top})
    params = (student_id, client.id, detail_json)
    rows = await svc.audited(client, queries.STUDENT_FEATURES_AUDITED, params)
    if not rows:
        raise HTTPException(404, f"student {student_id} not found")
    row = rows[0]
    # The models in memory: microseconds of numpy (a due refresh waits for a cheap request).
    extras = district_values([row])
    ((pred, reasons),) = svc.registry.explain(
        [row["school_id"]], query_matrix([row], svc.cut_points), extras, top
    )
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
        school_year=row["school_year"],
        features={f: row[f] for f in STANDARD_FEATURES},
        district_features=extras[0],
        reasons=[ReasonOut(**r._asdict()) for r in reasons],
        indicators=indicators_out(from_row(row, svc.cut_points)),
    )
    body = out.model_dump_json().encode()
    cached = str(row["school_id"]).encode() + b"\n" + body
    svc.cache.set_later(read.key, cached, svc.settings.cache_ttl_risk_seconds)
    return json_response(body, "miss")


@router.get(
    "/{student_id}/accesses",
    responses={**ERRORS, 404: {"model": ErrorOut}},
    tags=["privacy"],
)
async def student_accesses(
    student_id: StudentId,
    client: ClientDep,
    svc: ServicesDep,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Every recorded access to one of the district's students (FERPA, 34 CFR 99.32): when,
    which API key and its class, what (single read, list, record written), from the live
    audit log, which begins at `live_since` (the CSV's Audit-Live-Since header). District keys
    only: the district's own staff answer parents' requests.

    Months archived before `live_since` are not included, and the answer says so
    (`archived_months`, the Audit-Archived-Months header): the archive holds every district's
    audit rows in monthly objects, so reading it would give the API's credentials every
    district's audit trail; those months come from the access-report Job, run by the
    district's operators with the archive's read-only role."""
    if client.district_id is None:
        raise HTTPException(403, "the access report needs a district key")
    rows = await svc.db.fetch(client.tenant, ACCESSES, (str(student_id),))
    if not rows:
        raise HTTPException(404, f"no recorded access to a student {student_id} of this district")
    accesses = [
        Access(
            r["occurred_at"].isoformat(),
            WHAT.get(r["action"], r["action"]),
            r["action"],
            r["client_id"],
            r["key_name"],
            r["key_prefix"],
            r["key_class"],
            r["school_id"],
            "live",
        )
        for r in rows
    ]
    # Reading who read a student's records is itself a read of them: audited.
    detail = {"rows": len(accesses), "format": format}
    if not await svc.audit(client, "read_access_report", student_id, detail, rows[0]["school_id"]):
        raise HTTPException(404, f"no recorded access to a student {student_id} of this district")
    live_since = rows[0]["live_since"].isoformat()
    if format == "csv":
        headers = {"Audit-Live-Since": live_since, "Audit-Archived-Months": "not-included"}
        return Response(report(accesses, "csv"), media_type="text/csv", headers=headers)
    body = {
        "student_id": rows[0]["student_id"],
        "live_since": live_since,
        "archived_months": ARCHIVED_MONTHS,
        "accesses": json.loads(report(accesses, "json")),
    }
    return Response(json.dumps(body), media_type="application/json")
