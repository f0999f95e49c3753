"""SageMaker's container contract: it runs the image with the argument `serve` (inference) or
`train` (training job), under /opt/ml: hyperparameters in, the model directory, and the
failure file it reports as the reason a training job failed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.core.settings import Settings

# The settings a SageMaker training job may set through hyperparameters.json.
TRAINING_HYPERPARAMETERS = frozenset(
    {
        "min_school_students",
        "promotion_tolerance",
        "alert_threshold",
        "test_fraction",
        "random_seed",
        "keep_versions",
    }
)

# The name the Inference component's model_data_url expects under its prefix.
SAGEMAKER_ARCHIVE = "model.tar.gz"


def sagemaker_settings(settings: Settings, command: str) -> Settings:
    """Apply SageMaker's contract when its directory exists: hyperparameters override settings
    and, unless MODEL_STORE_URL is set, models go to (train) or come from (serve) /opt/ml/model."""
    root = settings.sagemaker_dir
    if not root.exists():
        return settings
    overrides: dict[str, Any] = {}
    hyper = root / "input" / "config" / "hyperparameters.json"
    if command == "train" and hyper.exists():
        given = json.loads(hyper.read_text())
        # Only training knobs: a hyperparameter must not redirect the database, the model
        # store or the secrets of the job.
        refused = sorted(set(given) - TRAINING_HYPERPARAMETERS)
        if refused:
            raise ValueError(
                f"hyperparameters not allowed: {', '.join(refused)};"
                f" allowed: {', '.join(sorted(TRAINING_HYPERPARAMETERS))}"
            )
        overrides.update(given)
    if "model_store_url" not in settings.model_fields_set and (root / "model").exists():
        overrides["model_store_url"] = str(root / "model")
    if not overrides:
        return settings
    return Settings.model_validate({**settings.model_dump(exclude_unset=True), **overrides})


def write_failure(root: Path, reason: str) -> None:
    """The reason SageMaker reports for a failed training job (/opt/ml/output/failure)."""
    failure = root / "output" / "failure"
    failure.parent.mkdir(parents=True, exist_ok=True)
    failure.write_text(reason)
