"""Alerts: the students whose risk crossed the threshold (raised by the worker), listed per
school newest first, and acted on: acknowledged, assigned to a staff member of the school,
resolved with a reason. Each read and each change is audited in its own transaction."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query

from app.api import queries
from app.api.deps import ClientDep, SchoolId, ServicesDep
from app.api.schemas import (
    BODY_ERRORS,
    ERRORS,
    MAX_BIGINT,
    AlertChange,
    AlertOut,
    AlertsOut,
    AssignAlert,
    ErrorOut,
)
from app.core.auth import Client

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="Alert id")]


@router.get("/v1/schools/{school_id}/alerts", response_model=AlertsOut, responses=ERRORS)
async def school_alerts(
    school_id: SchoolId,
    client: ClientDep,
    svc: ServicesDep,
    status: Annotated[Literal["open", "acknowledged", "resolved"], Query()] = "open",
    overdue: Annotated[
        bool, Query(description="Only alerts open for more than ALERT_OVERDUE_DAYS")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertsOut:
    """The school's alerts in one status (open by default), newest first."""
    await svc.check_school(client, school_id)
    params = {
        "school": school_id,
        "status": status,
        "overdue": overdue,
        "days": svc.settings.alert_overdue_days,
        "limit": limit,
        "client": client.id,
    }
    rows = await svc.audited(client, queries.SCHOOL_ALERTS_AUDITED, params)  # type: ignore[arg-type]
    return AlertsOut(school_id=school_id, items=[AlertOut(**r) for r in rows])


# What each action sets, besides who and when; and the statuses it may start from.
CHANGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "acknowledge": (
        "status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %(who)s",
        ("open",),
    ),
    "assign": (
        "assigned_to = %(assignee)s, assigned_at = now(), assigned_by = %(who)s",
        ("open", "acknowledged"),
    ),
    "resolve": (
        "status = 'resolved', resolved_at = now(), resolved_by = %(who)s,"
        " resolution = %(resolution)s",
        ("open", "acknowledged"),
    ),
}


@router.patch(
    "/v1/alerts/{alert_id}",
    response_model=AlertOut,
    responses={
        **ERRORS,
        **BODY_ERRORS,
        404: {"model": ErrorOut, "description": "No such alert for this key"},
        409: {"model": ErrorOut, "description": "The alert's status does not allow it"},
        422: {"model": ErrorOut},
    },
)
async def change_alert(
    alert_id: AlertId,
    change: Annotated[AlertChange, Body(discriminator="action")],
    client: ClientDep,
    svc: ServicesDep,
) -> AlertOut:
    """Acknowledge an open alert, assign an open or acknowledged one to a staff member of its
    school, or resolve it with a reason. Recorded with the key's name and the time, and
    audited in the same transaction."""
    async with svc.db.transaction(client.tenant, write=True) as cur:
        await cur.execute(queries.ALERT_FOR_UPDATE, (alert_id,))
        alert = await cur.fetchone()
        if alert is None:
            raise HTTPException(404, f"alert {alert_id} not found")
        sets, allowed = CHANGES[change.action]
        if alert["status"] not in allowed:
            raise HTTPException(
                409, f"alert {alert_id} is {alert['status']}: cannot {change.action} it"
            )
        if isinstance(change, AssignAlert):
            await check_staff(cur, change.assignee_id, alert["school_id"], "assignee_id")
        params = {
            "who": client.name,
            "assignee": getattr(change, "assignee_id", None),
            "resolution": getattr(change, "resolution", None),
            "id": alert_id,
        }
        await cur.execute(
            f"UPDATE alerts SET {sets} WHERE id = %(id)s"
            f" RETURNING school_id, {queries.ALERT_COLUMNS}, false AS overdue",
            params,
        )
        row = await cur.fetchone()
        assert row is not None
        await audit(cur, client, row, f"{change.action}_alert", {"alert_id": alert_id})
    return AlertOut(**row)


async def check_staff(cur: Any, staff_id: int | None, school_id: int, field: str) -> None:
    """422 naming the field unless `staff_id` is an active staff member of the school."""
    await cur.execute(queries.STAFF_OF_SCHOOL, (staff_id, school_id))
    if await cur.fetchone() is None:
        raise HTTPException(
            422,
            [{"loc": ["body", field], "type": "value_error",
              "msg": f"staff member {staff_id} is not active staff of school {school_id}"}],
        )  # fmt: skip


async def audit(
    cur: Any, client: Client, row: dict[str, Any], action: str, detail: dict[str, Any]
) -> None:
    """The change's audit row, in the change's transaction."""
    school = row.get("school_id") or client.school_id
    await cur.execute(
        queries.INSERT_AUDIT, (client.id, school, row["student_id"], action, json.dumps(detail))
    )
