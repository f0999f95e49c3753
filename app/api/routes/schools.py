"""Schools: the at-risk list of a school (keyset pagination, audited) and the model versions
that can serve it."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from app.api import queries
from app.api.deps import ClientDep, SchoolId, ServicesDep
from app.api.responses import json_response
from app.api.schemas import (
    ERRORS,
    MAX_BIGINT,
    AtRiskItem,
    AtRiskPage,
    ErrorOut,
    ModelsOut,
    ModelVersionOut,
    ReasonOut,
    indicators_out,
)
from app.core.cache import scores_stamp
from app.core.indicators import filter_sql, from_row
from app.model.artifacts import REPORT_FILE
from app.model.features import district_values, query_matrix
from app.model.served_models import NoModelError

Flag = Literal["at_risk", "early_warning"]

# No router-wide tag: the at-risk list is tagged "predictions", the model versions "models".
router = APIRouter(prefix="/v1/schools")


def encode_cursor(risk: float, student_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"r": risk, "i": student_id}).encode()).decode()


def decode_cursor(cursor: str, sort: str = "risk") -> tuple[float, int]:
    """The (risk, student id) of a cursor from encode_cursor (with sort=rising: the 30-day
    change, from -1 to 1). Anything else, forged cursors included, is a 422: a real number in
    range and a JSON integer id, nothing non-finite."""
    low = 0 if sort == "risk" else -1
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()), parse_constant=_refuse)
        risk, sid = data["r"], data["i"]
        if not (_is_number(risk) and low <= risk <= 1 and type(sid) is int):
            raise ValueError
        if not 1 <= sid <= MAX_BIGINT:
            raise ValueError
        # The scores (and their changes) are `real`: the cursor's value is compared as one (a
        # tiny value such as 1e-50 becomes 0 here rather than failing to convert in the
        # database), as PostgreSQL printed it shortest, not exactly.
        return float(np.float32(risk)), sid
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError, RecursionError):
        raise HTTPException(
            422, [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}]
        ) from None


def _refuse(constant: str) -> None:
    raise ValueError(f"{constant} is not a number")


def _is_number(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


@router.get(
    "/{school_id}/at-risk",
    response_model=AtRiskPage,
    tags=["predictions"],
    responses={**ERRORS, 422: {"model": ErrorOut}},
)
async def at_risk(
    school_id: SchoolId,
    client: ClientDep,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size, at most 100")] = 50,
    min_risk: Annotated[
        float | None,
        Query(ge=0, le=1, allow_inf_nan=False, description="Default: alert threshold"),
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="From next_cursor")] = None,
    sort: Annotated[
        Literal["risk", "rising"],
        Query(description="risk: highest first; rising: largest 30-day increase first"),
    ] = "risk",
    min_change: Annotated[
        float | None,
        Query(ge=-1, le=1, allow_inf_nan=False, description="Least 30-day change of the risk"),
    ] = None,
    attendance: Annotated[
        Flag | None, Query(description="Attendance at this level or worse")
    ] = None,
    behaviour: Annotated[Flag | None, Query(description="Behaviour at this level or worse")] = None,
    course: Annotated[
        Flag | None, Query(description="Course performance at this level or worse")
    ] = None,
    chronic_absence: Annotated[bool | None, Query(description="Chronically absent only")] = None,
    open_intervention: Annotated[
        bool | None, Query(description="true: with an open case only; false: without one")
    ] = None,
) -> Response:
    """Students of a school at or above a risk, highest first (or by the rise of their risk
    over 30 days), with keyset pagination; each with its indicators, 30-day change and
    whether an intervention is open. The indicator filters keep the students whose current
    school year's indicator is at the given level or worse."""
    svc.check_school_key(client, school_id)
    floor = svc.settings.alert_threshold if min_risk is None else min_risk
    levels = {"attendance": attendance, "behaviour": behaviour, "course": course}
    filters = list_filters(svc, levels, chronic_absence, min_change, open_intervention, sort)
    try:
        after = decode_cursor(cursor, sort) if cursor else None
    except HTTPException:
        await svc.check_school(client, school_id)  # a school it cannot see: 403 before 422
        raise
    gen = (await svc.pointer()).generation
    top = svc.settings.risk_reasons
    query_key = f"{sort}:{min_change}:{attendance}:{behaviour}:{course}:{chronic_absence}:" + str(
        open_intervention
    )
    key = f"atrisk:g{gen}:r{top}:{school_id}:{floor}:{limit}:{cursor}:{query_key}"
    # Stamped with the school's scores: the worker's or a training run's rescoring of the
    # school (same generation) restamps them, and the page is read again.
    body, stamp = await svc.cache.read(key, scores_stamp(school_id))
    if body is not None:
        # The cached page is audited again, and only for a tenant that sees the school.
        ids = [i["student_id"] for i in json.loads(body)["items"]]
        detail = json.dumps({"student_ids": ids, "reasons": top})
        params = (client.id, school_id, detail, school_id)
        if not await svc.audited(client, queries.AT_RISK_CACHED_AUDIT, params):
            svc.refuse_unseen_school(school_id)
        return json_response(body, "hit")
    # One round trip: the page, whether the tenant sees the school, and the page's audit row.
    query = queries.at_risk_query(
        gen, school_id, floor, limit, after, audit=(client.id, top), filters=filters
    )
    found = await svc.audited(client, *query)
    if not found[0]["school_visible"]:
        svc.refuse_unseen_school(school_id)
    rows = [r for r in found if r["student_id"] is not None]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else {}
    sort_key = float((last.get("risk") if sort == "risk" else last.get("risk_change")) or 0.0)
    next_cursor = encode_cursor(sort_key, last["student_id"]) if more else None
    shown = [r for r in rows if r["first_name"] is not None]
    page = AtRiskPage(
        school_id=school_id,
        min_risk=floor,
        generation=gen,
        limit=limit,
        items=at_risk_items(svc, school_id, shown, top),
        next_cursor=next_cursor,
    )
    body = page.model_dump_json().encode()
    if stamp is not None:  # Redis carries the stamp: without it the page is not cached
        svc.cache.set_later(key, body, svc.settings.cache_ttl_at_risk_seconds, stamp)
    return json_response(body, "miss")


def at_risk_items(
    svc: ServicesDep, school_id: int, rows: list[dict[str, Any]], top: int
) -> list[AtRiskItem]:
    """The page's items, each with its reasons (from the student's features now; a student
    without features in the view yet has none)."""
    known = [r for r in rows if r["grade"] is not None and r["attendance_rate"] is not None]
    explained = svc.registry.explain(
        [school_id] * len(known),
        query_matrix(known, svc.cut_points),
        district_values(known),
        top,
    )
    reasons = {r["student_id"]: e[1] for r, e in zip(known, explained, strict=True)}
    fields = ("student_id", "first_name", "last_name", "grade", "risk", "model_version")
    return [
        AtRiskItem(
            **{f: r[f] for f in fields},
            reasons=[ReasonOut(**x._asdict()) for x in reasons.get(r["student_id"], [])],
            indicators=indicators_out(from_row(r, svc.cut_points)),
            risk_change_30d=None if r["risk_change"] is None else round(r["risk_change"], 6),
            open_intervention=r["open_intervention"],
        )
        for r in rows
    ]


def list_filters(
    svc: ServicesDep,
    levels: dict[str, Flag | None],
    chronic_absence: bool | None,
    min_change: float | None,
    open_intervention: bool | None,
    sort: str,
) -> queries.ListFilters:
    """The at-risk list's filters as SQL, from the request's query parameters."""
    conditions, params = [], []
    for indicator, level in levels.items():
        if level is not None:
            condition, values = filter_sql(indicator, level, svc.cut_points)
            conditions.append(condition)
            params += values
    if chronic_absence is not None:
        condition, values = filter_sql("chronic_absence", "at_risk", svc.cut_points)
        conditions.append(condition if chronic_absence else f"NOT {condition}")
        params += values
    return queries.ListFilters(
        tuple(conditions),
        tuple(params),
        min_change,
        open_intervention,
        "change" if sort == "rising" else "risk",
    )


@router.get(
    "/{school_id}/models",
    response_model=ModelsOut,
    tags=["models"],
    responses=ERRORS,
)
async def school_models(school_id: SchoolId, client: ClientDep, svc: ServicesDep) -> Response:
    """Model versions that can serve this school (its own and the district's), newest first."""
    pointer = await svc.pointer()
    key = f"models:g{pointer.generation}:{school_id}"
    cached, _ = await svc.cache.read(key)
    if cached is not None:
        await svc.check_school(client, school_id)
        return json_response(cached, "hit")
    svc.check_school_key(client, school_id)
    # One round trip: the versions and whether the tenant sees the school.
    found = await svc.db.fetch(
        client.tenant,
        queries.SCHOOL_MODEL_VERSIONS_CHECKED,
        (school_id, pointer.generation, school_id),
    )
    if not found[0]["school_visible"]:
        svc.refuse_unseen_school(school_id)
    rows = [r for r in found if r["version"] is not None]
    try:
        scope, version = svc.registry.scope_for(school_id, pointer)
        current: tuple[str | None, str | None] = (scope, version)
    except NoModelError:
        current = (None, None)
    out = ModelsOut(
        school_id=school_id,
        current_scope=current[0],
        current_version=current[1],
        versions=[
            ModelVersionOut(
                **{k: v for k, v in r.items() if k != "school_visible"},
                is_current=pointer.scopes.get(r["scope"]) == r["version"],
                report_url=f"/v1/schools/{school_id}/models/{r['version']}/report",
            )
            for r in rows
        ],
    )
    body = out.model_dump_json().encode()
    svc.cache.set_later(key, body, svc.settings.cache_ttl_models_seconds)
    return json_response(body, "miss")


@router.get(
    "/{school_id}/models/{version}/report",
    tags=["models"],
    # The page is HTML; the errors are JSON like every other route's (a response_class of
    # HTMLResponse would document them as HTML too).
    response_model=None,
    responses={
        200: {
            "description": "The report page",
            "content": {"text/html": {"schema": {"type": "string"}}},
        },
        **ERRORS,
        404: {"model": ErrorOut, "description": "No report for this run"},
    },
)
async def model_report(
    school_id: SchoolId,
    version: Annotated[str, Path(pattern=r"^\d{8}T\d{12}Z$", description="A training run")],
    client: ClientDep,
    svc: ServicesDep,
) -> HTMLResponse:
    """The model-quality report of a training run (`python -m app report`): aggregates only,
    no student's record."""
    await svc.check_school(client, school_id)
    page = await run_in_threadpool(svc.registry.store.read_file, version, REPORT_FILE)
    if page is None:
        raise HTTPException(404, f"no report for version {version}; run `python -m app report`")
    return HTMLResponse(page)
