"""Predictions: risk for posted features (no student data is read)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import ClientDep, ServicesDep
from app.api.metrics import PREDICTIONS
from app.api.responses import prediction_out
from app.api.schemas import BODY_ERRORS, ERRORS, PredictIn, PredictionOut, PredictOut
from app.model.features import to_matrix

router = APIRouter(prefix="/v1", tags=["predictions"])


@router.post("/predict", response_model=PredictOut, responses={**ERRORS, **BODY_ERRORS})
async def predict(body: PredictIn, client: ClientDep, svc: ServicesDep) -> PredictOut:
    """Risk for posted features (no student data is read), with the model of `school_id`
    or the district model."""
    if body.school_id is not None:
        await svc.check_school(client, body.school_id)
    x = to_matrix([i.model_dump() for i in body.instances])
    # Up to 1,000 rows (and perhaps a due model refresh): off the event loop.
    preds = await run_in_threadpool(svc.registry.predict, [body.school_id] * len(body.instances), x)
    PREDICTIONS.labels("predict").inc(len(preds))
    t = svc.settings.alert_threshold
    return PredictOut(
        threshold=t,
        predictions=[PredictionOut(**prediction_out(p.risk, p.scope, p.version, t)) for p in preds],
    )
