"""The SageMaker container contract: GET /ping and POST /invocations (JSON or CSV)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.deps import ModelServices, ModelServicesDep, check_district_features
from app.api.invocations_csv import parse_csv
from app.api.metrics import PREDICTIONS
from app.api.responses import prediction_out, validation_errors
from app.api.schemas import INVOCATION_SCHEMA, ErrorOut, InvocationIn, InvocationOut, Status
from app.model.features import to_matrix

# Bodies up to this size are scored on the event loop (no thread hop): about 20 JSON rows or
# 100 CSV rows, well under a millisecond of parsing and scoring.
INLINE_INVOCATION_BYTES = 4 * 1024

router = APIRouter(tags=["sagemaker"])


@router.get("/ping", response_model=Status, responses={503: {"model": ErrorOut}})
def ping(svc: ModelServicesDep) -> Status:
    """SageMaker health check: 200 once a model is loaded; the district model's feature set
    (the inputs it reads: app/model/features.py) beside its version."""
    _, version, model = svc.registry.model_for(None)
    detail = {
        "generation": svc.registry.generation,
        "district_version": version,
        "district_feature_set": model.spec.feature_set,
    }
    return Status(status="ok", detail=detail)


@router.post(
    "/invocations",
    response_model=InvocationOut,
    responses={
        400: {"model": ErrorOut},
        413: {"model": ErrorOut},
        415: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": INVOCATION_SCHEMA},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def invocations(request: Request) -> Response:
    """SageMaker inference. JSON: {"instances": [{features..., "school_id"?}]}.
    CSV: one row per student, the features in order (optionally school_id first): the nine
    of version 1, or every raw input of version 2 (app/api/invocations_csv.py)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in ("application/json", "text/csv"):
        raise HTTPException(415, "content type must be application/json or text/csv")
    # Read from the app state rather than through a dependency: nothing to resolve per call.
    svc: ModelServices = request.app.state.services
    body = await request.body()  # at most MAX_INVOCATION_BYTES (BodyLimitMiddleware)
    accept = request.headers.get("accept", "")
    # A small body with the models in memory costs tens of microseconds: scored on the
    # event loop, as a hop to the thread pool would cost more than the work. Large bodies
    # and model (re)loads from the store go to the pool so other requests keep flowing.
    if len(body) <= INLINE_INVOCATION_BYTES and svc.registry.fresh:
        return invoke(svc, ctype, body, accept, refresh=False)
    return await run_in_threadpool(invoke, svc, ctype, body, accept)


def invoke(
    svc: ModelServices, ctype: str, body: bytes, accept: str, refresh: bool = True
) -> Response:
    extras: list[dict[str, Any]] | None = None
    if ctype == "application/json":
        try:
            parsed = InvocationIn.model_validate_json(body)
        except ValidationError as exc:
            raise HTTPException(400, validation_errors(exc.errors())) from None
        schools: list[int | None] = [i.school_id for i in parsed.instances]
        x = to_matrix([i.model_dump() for i in parsed.instances])
        extras = [i.district_features for i in parsed.instances]
        for school in {s for s, e in zip(schools, extras, strict=True) if e}:
            mine = [e if s == school else {} for s, e in zip(schools, extras, strict=True)]
            check_district_features(svc.registry, school, mine, 400, ["body", "instances"])
    else:
        schools, x = parse_csv(body)
    t = svc.settings.alert_threshold
    if "text/csv" in accept:
        preds = svc.registry.predict(schools, x, refresh=refresh, extras=extras)
        PREDICTIONS.labels("invocations").inc(len(preds))
        return PlainTextResponse(
            "\n".join(str(p.risk) for p in preds) + "\n", media_type="text/csv"
        )
    top = svc.settings.risk_reasons
    explained = svc.registry.explain(schools, x, extras, top, refresh=refresh)
    PREDICTIONS.labels("invocations").inc(len(explained))
    out = {"predictions": [prediction_out(p.risk, p.scope, p.version, t, r) for p, r in explained]}
    return Response(json.dumps(out).encode(), media_type="application/json")
