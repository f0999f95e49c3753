"""Held-out figures with and without the indicator features, on the same students in one run.

A generated district (10 schools x 600 students, two school years of 180 school days each, so
that chronic absence is counted; the last year's outcomes are open, so one year of outcomes
and a random split) is trained twice in one database:
with MODEL_INDICATOR_FEATURES off (feature set 2, the models before the indicators) and on
(feature set 3). Both runs hold out the same students (the latest school year), so their
figures compare directly; the run's DeLong interval of the district models' paired AUC
difference says whether the gain is more than the held-out students' noise.

    venv/bin/python -m benchmarks.indicator_features [--schools 10] [--students 600]

Records benchmarks/results/indicator_features.json.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from app.core import db
from app.jobs.generate import generate
from app.model.artifacts import HOLDOUT_FILE, ModelStore
from app.model.delong import compare_aucs
from app.model.training import run_training
from benchmarks.common import bench_settings, workdir, write_result

FIGURES = ("auc", "brier", "ppv", "precision_at_k", "recall_at_threshold")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=10)
    parser.add_argument("--students", type=int, default=600, help="students per school")
    args = parser.parse_args()
    runs: dict[str, Any] = {}
    with workdir("indicator-features") as work:
        # Every run's model is kept whatever the gate says: figures, not promotions.
        settings = bench_settings(work, promotion_tolerance=1.0)
        db.migrate(settings)
        with db.connect_owner(settings) as conn:
            generate(conn, args.schools, args.students, days=180, years=2, progress=False)
        store = ModelStore(settings.model_store_url)
        held: dict[str, np.ndarray] = {}
        for name, on in (("feature_set_2", False), ("feature_set_3", True)):
            result = run_training(settings.model_copy(update={"model_indicator_features": on}))
            manifest = store.manifest(result.version) or {}
            holdout = json.loads(store.read_file(result.version, HOLDOUT_FILE) or b"{}")
            held[name] = np.array(holdout["district"]["p"])
            y = np.array(holdout["district"]["y"])
            schools = [m["auc"] for s, m in manifest["metrics"].items() if s != "district"]
            runs[name] = {
                "version": result.version,
                "feature_set": manifest["feature_set"],
                "features": manifest["features"],
                "split": manifest["split"]["kind"],
                "held_out": {"students": len(y), "dropouts": int(y.sum())},
                "district": {f: manifest["metrics"]["district"].get(f) for f in FIGURES},
                "school_auc_median": float(np.median(schools)) if schools else None,
                "seconds": result.seconds,
            }
            print(name, json.dumps(runs[name]["district"]), flush=True)
    gain = compare_aucs(y, held["feature_set_3"], held["feature_set_2"], 0.95)
    write_result(
        "indicator_features",
        {
            "setup": {
                "schools": args.schools,
                "students_per_school": args.students,
                "school_days": 180,
                "school_years": 2,
            },
            "runs": runs,
            "district_auc_gain": {
                "gain": round(gain.gain, 4),
                "low_95": round(gain.low, 4),
                "high_95": round(gain.high, 4),
            },
        },
    )


if __name__ == "__main__":
    main()
