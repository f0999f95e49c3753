"""Students: the dropout risk of one student (audited, cached per model generation)."""

from __future__ import annotations

import json

from fastapi import APIRouter, HTTPException, Response

from app.api import queries
from app.api.deps import ClientDep, ServicesDep, StudentId
from app.api.metrics import PREDICTIONS
from app.api.responses import json_response
from app.api.schemas import ERRORS, ErrorOut, RiskOut
from app.core.auth import Client
from app.model.features import FEATURES, to_matrix

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
    student's school. Every call is written to the audit log."""
    gen = (await svc.pointer()).generation
    key = f"risk:g{gen}:{tenant_key(client)}:{student_id}"
    cached = await svc.cache.aget(key)
    if cached is not None:
        school = json.loads(cached)["school_id"]
        await svc.audit(client, "read_student_risk", student_id, {"cache": "hit"}, school)
        return json_response(cached, "hit")
    # The read writes its audit row itself: one round trip, rows only with their audit row.
    rows = await svc.audited(client, queries.STUDENT_FEATURES_AUDITED, (student_id, client.id))
    if not rows:
        raise HTTPException(404, f"student {student_id} not found")
    row = rows[0]
    # The models in memory: microseconds of numpy (a due refresh waits for a cheap request).
    pred = svc.registry.predict([row["school_id"]], to_matrix([row]), refresh=False)[0]
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
    await svc.cache.aset(key, body, svc.settings.cache_ttl_risk_seconds)
    return json_response(body, "miss")
