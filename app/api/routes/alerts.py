"""Alerts of a school: the students whose risk crossed the threshold (raised by the worker),
newest first. Audited like every read of student data."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api import queries
from app.api.deps import ClientDep, SchoolId, ServicesDep
from app.api.schemas import ERRORS, AlertOut, AlertsOut

router = APIRouter(prefix="/v1/schools", tags=["alerts"])


@router.get("/{school_id}/alerts", response_model=AlertsOut, responses=ERRORS)
async def school_alerts(
    school_id: SchoolId,
    client: ClientDep,
    svc: ServicesDep,
    status: Annotated[Literal["open", "acknowledged", "resolved"], Query()] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertsOut:
    """The school's alerts in one status (open by default), newest first."""
    await svc.check_school(client, school_id)
    params = (school_id, status, limit, client.id, school_id, status)
    rows = await svc.audited(client, queries.SCHOOL_ALERTS_AUDITED, params)
    return AlertsOut(school_id=school_id, items=[AlertOut(**r) for r in rows])
