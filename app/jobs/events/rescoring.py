"""How the worker rescores students: through the stack's SageMaker endpoint when it has one
(SAGEMAKER_ENDPOINT_NAME; the runtime is reached through the VPC endpoint), else in process
with the served models. Either way the scores belong to the generation the model store's
pointer serves, the generation whose risk_scores the worker updates."""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

import numpy as np

from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.features import RAW_FEATURES
from app.model.served_models import ModelRegistry, Prediction


class Scorer(Protocol):
    def generation(self) -> int:
        """The served generation (0: nothing promoted yet)."""

    def score(
        self, school_ids: list[int], x: np.ndarray, extras: list[dict[str, Any]]
    ) -> list[Prediction]:
        """Each student's risk: raw rows (RAW_FEATURES, NaN missing) and their district
        features."""


class InProcessScorer:
    def __init__(self, settings: Settings) -> None:
        store = ModelStore(settings.model_store_url)
        self.registry = ModelRegistry(store, settings.model_refresh_seconds)

    def generation(self) -> int:
        return self.registry.generation

    def score(
        self, school_ids: list[int], x: np.ndarray, extras: list[dict[str, Any]]
    ) -> list[Prediction]:
        # The models of the generation just read (no refresh between the two).
        return self.registry.predict(list(school_ids), x, refresh=False, extras=extras)


class SageMakerScorer:
    """InvokeEndpoint with the image's own JSON contract (POST /invocations). The endpoint
    serves the archive that the last training run rolled to it: the store's pointer."""

    def __init__(self, settings: Settings, client: Any = None) -> None:
        import boto3  # Imported lazily: in-process scoring does not need it.

        assert settings.sagemaker_endpoint_name
        self.endpoint = settings.sagemaker_endpoint_name
        self.runtime = client or boto3.client("sagemaker-runtime", region_name=settings.aws_region)
        # Only the pointer is read (no model is loaded), as often as the API re-reads it.
        self.store = ModelStore(settings.model_store_url)
        self.refresh_seconds = settings.model_refresh_seconds
        self._read_at = -float("inf")
        self._generation = 0

    def generation(self) -> int:
        now = time.monotonic()
        if now - self._read_at >= self.refresh_seconds:
            self._generation = self.store.pointer().generation
            self._read_at = now
        return self._generation

    def score(
        self, school_ids: list[int], x: np.ndarray, extras: list[dict[str, Any]]
    ) -> list[Prediction]:
        instances = [
            {
                **{f: None if np.isnan(v) else v
                   for f, v in zip(RAW_FEATURES, row.tolist(), strict=True)},
                "school_id": school,
                "district_features": found,
            }
            for school, row, found in zip(school_ids, x, extras, strict=True)
        ]  # fmt: skip
        response = self.runtime.invoke_endpoint(
            EndpointName=self.endpoint,
            ContentType="application/json",
            Accept="application/json",
            Body=json.dumps({"instances": instances}).encode(),
        )
        out = json.loads(response["Body"].read())["predictions"]
        return [Prediction(float(p["risk"]), p["model_scope"], p["model_version"]) for p in out]


def scorer_for(settings: Settings) -> Scorer:
    if settings.sagemaker_endpoint_name:
        return SageMakerScorer(settings)
    return InProcessScorer(settings)
