"""Predictions: risk for posted features (no student data is read)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import ClientDep, ServicesDep, check_district_features
from app.api.metrics import PREDICTIONS
from app.api.responses import prediction_out
from app.api.schemas import BODY_ERRORS, ERRORS, PredictIn, PredictionOut, PredictOut
from app.model.features import to_matrix

router = APIRouter(prefix="/v1", tags=["predictions"])


@router.post("/predict", response_model=PredictOut, responses={**ERRORS, **BODY_ERRORS})
async def predict(body: PredictIn, client: ClientDep, svc: ServicesDep) -> PredictOut:
    """Risk for posted features (no student data is read), with the model of `school_id`
    or the district model, and each risk's main reasons (beside the school's medians)."""
    if body.school_id is not None:
        await svc.check_school(client, body.school_id)
    rows = [i.model_dump() for i in body.instances]
    extras = [i.district_features for i in body.instances]
    schools = [body.school_id] * len(rows)
    top = svc.settings.risk_reasons

    def explain() -> list[Any]:
        check_district_features(svc.registry, body.school_id, extras, 422, ["body", "instances"])
        return svc.registry.explain(schools, to_matrix(rows), extras, top, True)

    # Up to 1,000 rows (and perhaps a due model refresh): off the event loop.
    explained = await run_in_threadpool(explain)
    PREDICTIONS.labels("predict").inc(len(explained))
    t = svc.settings.alert_threshold
    return PredictOut(
        threshold=t,
        predictions=[
            PredictionOut(**prediction_out(p.risk, p.scope, p.version, t, reasons))
            for p, reasons in explained
        ],
    )
