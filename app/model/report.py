"""`python -m app report`: one HTML page per training run, beside its manifest in the store
(versions/<version>/report.html): the model card; per scope the figures schools act on (PPV
and false-alarm rate at the alert threshold, precision and recall at k, Brier, AUC and the
gain's interval), the promotion decisions with their reasons; the temporal and random split;
the fairness audit; ROC and reliability curves; the data snapshot.

The page is self-contained (plots embedded as PNG) and holds aggregates only: the held-out
labels and predictions it is drawn from stay in the store (holdout.json), no student's record
is on the page. matplotlib draws with its Agg backend (no display), imported only here.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from typing import Any

import numpy as np

from app.model.artifacts import HOLDOUT_FILE, REPORT_FILE, ModelStore
from app.model.report_sections import (
    fairness_section,
    figures_table,
    interventions_section,
    model_card,
    scopes_of,
    split_section,
)

log = logging.getLogger("app.report")

CALIBRATION_BINS = 10
# Curves are drawn for the district model and the schools of lowest AUC up to this many: at
# a national district's 1,000+ schools a page of every school's curves would take minutes to
# draw and nobody to read; the table lists every scope.
MAX_SCHOOL_PLOTS = 50

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222 }
table { border-collapse: collapse; margin: 1em 0 } td, th { padding: .25em .6em;
border-bottom: 1px solid #ddd; text-align: left } th { background: #f4f4f4 }
.no { color: #a33 } .yes { color: #282 } img { max-width: 100% } code { font-size: 13px }
"""


def _plots(scope: str, y: np.ndarray, p: np.ndarray, threshold: float) -> str:
    """ROC and calibration curves of one scope, as an <img> of an embedded PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import roc_curve

    fig, (roc, cal) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    try:
        fpr, tpr, thresholds = roc_curve(y, p)
        roc.plot(fpr, tpr, color="#1f5fa8")
        roc.plot([0, 1], [0, 1], color="#999", linestyle=":")
        at = int(np.argmin(np.abs(thresholds - threshold)))
        roc.plot(fpr[at], tpr[at], "o", color="#c33", label=f"alert threshold {threshold:g}")
        roc.set(title=f"ROC: {scope}", xlabel="false positive rate", ylabel="true positive rate")
        roc.legend(loc="lower right")
        observed, predicted = calibration_curve(y, p, n_bins=CALIBRATION_BINS)
        cal.plot(predicted, observed, "o-", color="#1f5fa8")
        cal.plot([0, 1], [0, 1], color="#999", linestyle=":")
        cal.set(
            title=f"Reliability: {scope}",
            xlabel="predicted risk",
            ylabel="observed dropout rate",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    alt = f"ROC and calibration curves of {html.escape(scope)}"
    return f'<img alt="{alt}" src="data:image/png;base64,{data}">'


def render(manifest: dict[str, Any], holdout: dict[str, Any] | None) -> str:
    """The HTML page of one training run."""
    e = html.escape
    metrics: dict[str, dict[str, Any]] = manifest["metrics"]
    threshold = float(manifest["settings"]["alert_threshold"])
    scopes = scopes_of(manifest)
    plots = []
    schools = sorted(
        (s for s in scopes if s != "district"), key=lambda s: metrics[s].get("auc") or 0.0
    )
    drawn = {"district", *schools[:MAX_SCHOOL_PLOTS]}
    if len(schools) > MAX_SCHOOL_PLOTS:
        plots.append(
            f"<p>Curves of the district model and of the {MAX_SCHOOL_PLOTS} schools of lowest"
            f" AUC; the other {len(schools) - MAX_SCHOOL_PLOTS} schools are in the table.</p>"
        )
    for scope in (s for s in scopes if s in drawn):
        points = (holdout or {}).get(scope)
        if not points or len(set(points["y"])) < 2:
            plots.append(f"<h3>{e(scope)}</h3><p>No held-out predictions stored.</p>")
            continue
        y, p = np.array(points["y"]), np.array(points["p"], dtype=np.float64)
        plots.append(f"<h3>{e(scope)}</h3>{_plots(scope, y, p, threshold)}")
    snapshot = "".join(
        f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in manifest["data"].items()
    )
    settings = "".join(
        f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in manifest["settings"].items()
    )
    fallback = ", ".join(str(s) for s in manifest.get("fallback_schools", [])) or "none"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Model quality: training run {e(manifest["version"])}</title><style>{STYLE}</style></head>
<body>
<h1>Model quality: training run <code>{e(manifest["version"])}</code></h1>
<p>Trained {e(manifest["created_at"])}, code {e(manifest["code_version"])};
model {e(manifest["model"])}. Figures are on held-out students (a school's on its own).
PPV, false-alarm rate and recall are at the alert threshold {threshold:g}; k is each school's
top {float(manifest["settings"].get("caseload_share", 0.1)):.0%} by risk (a caseload).
Schools too small to train their own model: {e(fallback)}.</p>
<h2>Model card</h2>{model_card(manifest)}
<h2>Scopes, figures and promotion decisions</h2>
{figures_table(manifest)}
<h2>Temporal and random split</h2>{split_section(manifest)}
<h2>Fairness audit</h2>{fairness_section(manifest)}
<h2>Risk before and after interventions (descriptive)</h2>{interventions_section(manifest)}
<h2>Data snapshot</h2><table>{snapshot}</table>
<h2>Settings</h2><table>{settings}</table>
<h2>ROC and reliability curves</h2>
{"".join(plots)}
</body></html>
"""


def write_reports(store: ModelStore, version: str | None = None) -> list[str]:
    """Write the report of `version`, or of every stored run that has none yet; the versions
    written."""
    versions = [version] if version else store.versions()
    written = []
    for v in versions:
        if version is None and store.read_file(v, REPORT_FILE) is not None:
            continue
        manifest = store.manifest(v)
        if manifest is None:
            raise ValueError(f"version {v} is not in the store")
        raw = store.read_file(v, HOLDOUT_FILE)
        holdout = json.loads(raw) if raw else None
        store.write_file(v, REPORT_FILE, render(manifest, holdout).encode())
        written.append(v)
        log.info("report written", extra={"version": v})
    return written
