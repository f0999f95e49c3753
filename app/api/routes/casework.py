"""A student's casework: the history of their risk, and their interventions (recorded,
listed and updated). Every read and write is audited in its own transaction, under the
tenant's row-level security: a student of another school is a 404, as if absent."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from app.api import queries
from app.api.deps import ClientDep, ServicesDep, StudentId
from app.api.routes.alerts import audit, check_staff
from app.api.schemas import (
    BODY_ERRORS,
    ERRORS,
    MAX_BIGINT,
    ErrorOut,
    HistoryOut,
    HistoryPoint,
    InterventionChange,
    InterventionIn,
    InterventionOut,
    InterventionsOut,
    indicators_out,
)
from app.core.indicators import evaluate
from app.core.settings import names

router = APIRouter(prefix="/v1/students", tags=["casework"])

InterventionId = Annotated[int, Path(ge=1, le=MAX_BIGINT, description="Intervention id")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such student for this key"}
}


@router.get(
    "/{student_id}/risk/history", response_model=HistoryOut, responses={**ERRORS, **NOT_FOUND}
)
async def risk_history(
    student_id: StudentId,
    client: ClientDep,
    svc: ServicesDep,
    days: Annotated[int, Query(ge=1, le=800, description="How far back")] = 400,
    limit: Annotated[int, Query(ge=1, le=800)] = 400,
) -> HistoryOut:
    """The student's risk, one point per day it changed (score, model, reasons, indicators),
    newest first; kept for the current and the previous school year."""
    since = datetime.now(UTC).date() - timedelta(days=days)
    params = {"student": student_id, "since": since, "limit": limit, "client": client.id}
    rows = await svc.audited(client, queries.STUDENT_HISTORY_AUDITED, params)  # type: ignore[arg-type]
    if not rows:
        raise HTTPException(404, f"student {student_id} not found")
    items = [
        HistoryPoint(
            **{k: r[k] for k in ("day", "risk", "generation", "model_version", "reasons")},
            indicators=indicators_out(evaluate(
                None if r["indicators"] is None
                else {**r["indicators"], "school_year": r["school_year"]},
                svc.cut_points,
            )),
        )
        for r in rows
        if r["day"] is not None
    ]  # fmt: skip
    return HistoryOut(student_id=student_id, school_id=rows[0]["school_id"], items=items)


@router.get(
    "/{student_id}/interventions",
    response_model=InterventionsOut,
    responses={**ERRORS, **NOT_FOUND},
)
async def list_interventions(
    student_id: StudentId,
    client: ClientDep,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InterventionsOut:
    """The student's interventions, newest first."""
    params = {"student": student_id, "limit": limit, "client": client.id}
    rows = await svc.audited(client, queries.STUDENT_INTERVENTIONS_AUDITED, params)  # type: ignore[arg-type]
    if not rows:
        raise HTTPException(404, f"student {student_id} not found")
    items = [_out(r) for r in rows if r["id"] is not None]
    return InterventionsOut(student_id=student_id, items=items)


def _out(row: dict[str, Any]) -> InterventionOut:
    return InterventionOut(**row, owner_id=row["assigned_to"])


def _type_problem(svc: ServicesDep, kind: str) -> None:
    allowed = names(svc.settings.intervention_types)
    if kind not in allowed:
        raise HTTPException(
            422,
            [{"loc": ["body", "type"], "type": "value_error",
              "msg": f"{kind!r} is not an intervention type; one of {', '.join(allowed)}"}],
        )  # fmt: skip


@router.post(
    "/{student_id}/interventions",
    response_model=InterventionOut,
    status_code=201,
    responses={**ERRORS, **BODY_ERRORS, **NOT_FOUND, 422: {"model": ErrorOut}},
)
async def create_intervention(
    student_id: StudentId, body: InterventionIn, client: ClientDep, svc: ServicesDep
) -> InterventionOut:
    """Record an intervention for the student, owned by a staff member of their school."""
    _type_problem(svc, body.type)
    async with svc.db.transaction(client.tenant, write=True) as cur:
        await cur.execute(queries.STUDENT_SCHOOL, (student_id,))
        student = await cur.fetchone()
        if student is None:
            raise HTTPException(404, f"student {student_id} not found")
        school = student["school_id"]
        await check_staff(cur, body.owner_id, school, "owner_id")
        await cur.execute(
            "INSERT INTO interventions (school_id, student_id, assigned_to, status, type,"
            " started_on, ended_on, notes, outcome, created_by)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            f" RETURNING {queries.INTERVENTION_COLUMNS}",
            (school, student_id, body.owner_id, body.status, body.type, body.started_on,
             body.ended_on, body.notes, body.outcome, client.name),
        )  # fmt: skip
        row = await cur.fetchone()
        assert row is not None
        await audit(cur, client, row, "create_intervention", {"intervention_id": row["id"]})
    return _out(row)


@router.patch(
    "/{student_id}/interventions/{intervention_id}",
    response_model=InterventionOut,
    responses={**ERRORS, **BODY_ERRORS, **NOT_FOUND, 422: {"model": ErrorOut}},
)
async def change_intervention(
    student_id: StudentId,
    intervention_id: InterventionId,
    change: InterventionChange,
    client: ClientDep,
    svc: ServicesDep,
) -> InterventionOut:
    """Change an intervention's owner, dates, status, notes or outcome (the fields sent)."""
    fields = change.model_dump(exclude_unset=True)
    for required in ("owner_id", "started_on", "status"):
        if required in fields and fields[required] is None:
            raise HTTPException(
                422,
                [{"loc": ["body", required], "type": "value_error", "msg": "may not be null"}],
            )
    async with svc.db.transaction(client.tenant, write=True) as cur:
        await cur.execute(queries.INTERVENTION_FOR_UPDATE, (intervention_id, student_id))
        row = await cur.fetchone()
        if row is None:
            raise HTTPException(
                404, f"intervention {intervention_id} of student {student_id} not found"
            )
        if "owner_id" in fields:
            await check_staff(cur, fields["owner_id"], row["school_id"], "owner_id")
        started: date | None = fields.get("started_on", row["started_on"])
        ended: date | None = fields.get("ended_on", row["ended_on"])
        if started is not None and ended is not None and ended < started:
            raise HTTPException(
                422,
                [{"loc": ["body", "ended_on"], "type": "value_error",
                  "msg": f"ended_on {ended} is before started_on {started}"}],
            )  # fmt: skip
        columns = {("assigned_to" if k == "owner_id" else k): v for k, v in fields.items()}
        sets = ", ".join(f"{c} = %({c})s" for c in columns)
        await cur.execute(
            f"UPDATE interventions SET {sets}{', ' if sets else ''}updated_at = now(),"
            " updated_by = %(who)s WHERE id = %(id)s"
            f" RETURNING {queries.INTERVENTION_COLUMNS}",
            {**columns, "who": client.name, "id": intervention_id},
        )
        row = await cur.fetchone()
        assert row is not None
        detail = {"intervention_id": intervention_id, "fields": sorted(fields)}
        await audit(cur, client, row, "update_intervention", detail)
    return _out(row)
