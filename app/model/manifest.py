"""The record of a training run: its manifest in the model store (what the report and the
model card are drawn from) and its `model_versions` rows (the figures per scope, migration
0015). Written before anything it names is served (`publication.py`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from app import __version__
from app.core.settings import Settings
from app.model.artifacts import ModelStore
from app.model.figures import flat_metrics
from app.model.inputs import PROTECTED_ATTRIBUTES, DistrictFeature
from app.model.promotion import Decision
from app.model.risk_model import CALIBRATION_FOLDS, as_risk_model
from app.model.served_models import scope_school_id
from app.model.training_data import Split

MODEL = (
    f"StandardScaler + LogisticRegression (C=1), sigmoid-calibrated over {CALIBRATION_FOLDS} folds"
)
# The figures model_versions has a column for (migration 0015).
FIGURE_COLUMNS = (
    "auc",
    "brier",
    "ppv",
    "false_alarm_rate",
    "precision_at_k",
    "recall_at_k",
    "caseload_k",
)


@dataclass
class RunRecord:
    """What a run's manifest says besides its figures and decisions."""

    split: Split
    snapshot: dict[str, Any]
    declarations: list[DistrictFeature] = field(default_factory=list)
    fairness: dict[str, dict[str, Any]] = field(default_factory=dict)
    random_split: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Risk before and after interventions by type (app/model/outcomes.py): descriptive.
    interventions: list[dict[str, Any]] = field(default_factory=list)
    # The district model's contract (model_inputs): its feature set and features.
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "split": {
                "kind": self.split.kind,
                "test_year": self.split.test_year,
                "train_years": list(self.split.train_years),
                "description": self.split.describe(),
            },
            "district_features": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "low": f.low,
                    "high": f.high,
                    "allowed": list(f.allowed),
                }
                for f in self.declarations
            ],
            "fairness": self.fairness,
            "random_split": self.random_split,
            "interventions": self.interventions,
        }


def model_inputs(model: Any) -> dict[str, Any]:
    """What a stored model reads, as its manifest states it: its feature set, its features
    (in input order) and, for set 3, the indicator cut points it derives them with."""
    spec = as_risk_model(model).spec
    out: dict[str, Any] = {"feature_set": spec.feature_set, "features": spec.sources}
    if spec.indicator_cuts is not None:
        share, min_days, failing = spec.indicator_cuts
        out["indicator_cut_points"] = {
            "chronic_absence_share": share,
            "chronic_min_enrolled_days": int(min_days),
            "failing_mark": failing,
        }
    return out


def input_names(declarations: list[DistrictFeature]) -> list[str]:
    """The features every model of the run takes (one-hot and indicator inputs aside)."""
    from app.model.features import STANDARD_FEATURES

    return [*STANDARD_FEATURES, *(f.name for f in declarations)]


def write_manifest(
    store: ModelStore,
    settings: Settings,
    version: str,
    metrics: dict[str, dict[str, Any]],
    decisions: dict[str, Decision],
    fallback: list[int],
    record: RunRecord,
) -> None:
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "features": input_names(record.declarations),
        **record.inputs,
        "model": MODEL,
        "metrics": {scope: flat_metrics(m) for scope, m in metrics.items()},
        "reliability": {scope: m.get("reliability", []) for scope, m in metrics.items()},
        "promotion": {scope: d.to_json() for scope, d in decisions.items()},
        "fallback_schools": fallback,
        "data": record.snapshot,
        "audited_attributes": list(PROTECTED_ATTRIBUTES),
        **record.to_json(),
        "code_version": f"{__version__}+{os.environ.get('APP_GIT_SHA', 'unknown')}",
        "settings": {
            "min_school_students": settings.min_school_students,
            "alert_threshold": settings.alert_threshold,
            "test_fraction": settings.test_fraction,
            "caseload_share": settings.caseload_share,
            "promotion_tolerance": settings.promotion_tolerance,
            "promotion_confidence": settings.promotion_confidence,
            "min_promotion_auc": settings.min_promotion_auc,
            "min_precision_at_k": settings.min_precision_at_k,
            "min_holdout_positives": settings.min_holdout_positives,
            "min_holdout_negatives": settings.min_holdout_negatives,
            "fairness_min_group_size": settings.fairness_min_group_size,
            "fairness_min_ratio": settings.fairness_min_ratio,
            "fairness_action": settings.fairness_action,
            "school_year_start_month": settings.school_year_start_month,
        },
    }
    store.write_manifest(version, manifest)


def insert_versions(
    conn: psycopg.Connection[Any],
    version: str,
    metrics: dict[str, dict[str, Any]],
    decisions: dict[str, Decision],
    split: str,
) -> None:
    """One model_versions row per trained scope, not yet promoted (publication.py:
    record_promotions gives the served ones their generation). The caller's transaction, if it
    has one, holds them."""
    columns = ", ".join(FIGURE_COLUMNS)
    marks = ", ".join(["%s"] * len(FIGURE_COLUMNS))
    with conn.transaction():
        for scope, m in metrics.items():
            conn.execute(
                f"INSERT INTO model_versions (version, scope, school_id, metrics, reason, split,"
                f" reliability, {columns})"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, {marks}) ON CONFLICT DO NOTHING",
                (
                    version,
                    scope,
                    scope_school_id(scope),
                    json.dumps(flat_metrics(m)),
                    decisions[scope].reason,
                    split,
                    json.dumps(m.get("reliability", [])),
                    *(m.get(c) for c in FIGURE_COLUMNS),
                ),
            )
