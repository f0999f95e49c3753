"""Students: the dropout risk of one student (audited, cached per model generation)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Response

from app.api import queries
from app.api.deps import ClientDep, ServicesDep, StudentId
from app.api.metrics import PREDICTIONS
from app.api.responses import json_response
from app.api.schemas import ERRORS, ErrorOut, ReasonOut, RiskOut, indicators_out
from app.core.auth import Client
from app.core.indicators import from_row
from app.model.features import STANDARD_FEATURES, district_values, to_matrix

router = APIRouter(prefix="/v1/students", tags=["predictions"])


def tenant_key(client: Client) -> str:
    return f"s{client.school_id}" if client.school_id is not None else f"d{client.district_id}"


@router.get(
    "/{student_id}/risk",
    response_model=RiskOut,
    responses={**ERRORS, 404: {"model": ErrorOut}},
)
async def student_risk(student_id: StudentId, client: ClientDep, svc: ServicesDep) -> Response:
    """Dropout risk of one student, from the features in the database and the model of the
    student's school, with its main reasons. Every call is written to the audit log."""
    gen = (await svc.pointer()).generation
    top = svc.settings.risk_reasons
    key = f"risk:g{gen}:r{top}:{tenant_key(client)}:{student_id}"
    cached = await svc.cache.aget(key)
    if cached is not None:
        school = json.loads(cached)["school_id"]
        detail = {"cache": "hit", "reasons": top}
        await svc.audit(client, "read_student_risk", student_id, detail, school)
        return json_response(cached, "hit")
    # The read writes its audit row itself: one round trip, rows only with their audit row.
    detail_json = json.dumps({"cache": "miss", "reasons": top})
    params = (student_id, client.id, detail_json)
    rows = await svc.audited(client, queries.STUDENT_FEATURES_AUDITED, params)
    if not rows:
        raise HTTPException(404, f"student {student_id} not found")
    row = rows[0]
    # The models in memory: microseconds of numpy (a due refresh waits for a cheap request).
    extras = district_values([row])
    ((pred, reasons),) = svc.registry.explain([row["school_id"]], to_matrix([row]), extras, top)
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
    await svc.cache.aset(key, body, svc.settings.cache_ttl_risk_seconds)
    return json_response(body, "miss")
