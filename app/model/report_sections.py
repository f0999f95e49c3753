"""The tables of a run's report page (`report.py` draws the curves and assembles the page): the
figures per scope, the split they were measured on (and the random split's beside a temporal
one), the fairness audit, and the run's model card. Aggregates only."""

from __future__ import annotations

import html
from typing import Any

from app.model.fairness import FIGURES

e = html.escape


def _num(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{float(value):.{digits}f}"


def _scope_order(scope: str) -> tuple[int, int]:
    return (0, 0) if scope == "district" else (1, int(scope.rsplit("-", 1)[-1]))


def scopes_of(manifest: dict[str, Any]) -> list[str]:
    return sorted(manifest["metrics"], key=_scope_order)


def figures_table(manifest: dict[str, Any]) -> str:
    """One row per scope: the figures schools act on and the promotion decision."""
    metrics: dict[str, dict[str, Any]] = manifest["metrics"]
    promotion: dict[str, dict[str, Any]] = manifest.get("promotion", {})
    rows = []
    for scope in scopes_of(manifest):
        m, d = metrics[scope], promotion.get(scope, {})
        mark = (
            '<span class="yes">promoted</span>'
            if d.get("promoted")
            else '<span class="no">not promoted</span>'
        )
        gain = (
            f"{m['auc_gain_vs_district']:+.3f} [{m['auc_gain_low']:+.3f},"
            f" {m['auc_gain_high']:+.3f}]"
            if "auc_gain_vs_district" in m
            else "–"
        )
        rows.append(
            f"<tr><td>{e(scope)}</td><td>{_num(m.get('auc'))}</td><td>{e(gain)}</td>"
            f"<td>{_num(m.get('ppv'))}</td><td>{_num(m.get('false_alarm_rate'))}</td>"
            f"<td>{_num(m.get('recall_at_threshold'))}</td>"
            f"<td>{_num(m.get('precision_at_k'))}</td><td>{_num(m.get('recall_at_k'))}</td>"
            f"<td>{int(m.get('caseload_k', 0))}</td><td>{_num(m.get('brier'))}</td>"
            f"<td>{int(m['n_test'])}</td><td>{int(m['positives_test'])}</td><td>{mark}</td>"
            f"<td>{e(str(d.get('serves', '')))}</td><td>{e(str(d.get('reason', '')))}</td></tr>"
        )
    return (
        "<table><tr><th>scope</th><th>AUC</th><th>AUC gain over the district model"
        " [interval]</th><th>PPV</th><th>false-alarm rate</th><th>recall</th>"
        "<th>precision at k</th><th>recall at k</th><th>k</th><th>Brier</th><th>held out</th>"
        "<th>dropouts</th><th>decision</th><th>serves</th><th>reason</th></tr>"
        f"{''.join(rows)}</table>"
    )


def split_section(manifest: dict[str, Any]) -> str:
    """How the figures were measured, and the random split's figures beside a temporal one."""
    split = manifest.get("split") or {}
    out = [f"<p>Held-out students: {e(str(split.get('description', 'random split')))}.</p>"]
    random_split = (manifest.get("random_split") or {}).get("district")
    district = manifest["metrics"].get("district", {})
    if random_split:
        names = ("auc", "ppv", "false_alarm_rate", "precision_at_k", "recall_at_k", "brier")
        head = "".join(f"<th>{e(n.replace('_', ' '))}</th>" for n in names)
        temporal = "".join(f"<td>{_num(district.get(n))}</td>" for n in names)
        rand = "".join(f"<td>{_num(random_split.get(n))}</td>" for n in names)
        out.append(
            "<p>The district model's figures on the latest school year (temporal: trained on"
            " earlier years only) and on a random split of the same students, whatever their"
            " year. The random split lets a student's later records inform an earlier"
            " outcome's cohort, so it usually flatters.</p>"
            f"<table><tr><th>split</th>{head}</tr><tr><td>temporal</td>{temporal}</tr>"
            f"<tr><td>random</td>{rand}</tr></table>"
        )
    return "".join(out)


def fairness_section(manifest: dict[str, Any]) -> str:
    """Per scope and attribute: each shown group's figures and ratios to the largest group."""
    audits: dict[str, Any] = manifest.get("fairness") or {}
    if not audits:
        return "<p>No fairness audit in this run.</p>"
    out = []
    for scope in sorted(audits, key=_scope_order):
        a = audits[scope]
        breaches = a.get("breaches") or []
        verdict = (
            f'<span class="no">bound {a["bound"]:g} breached: {e("; ".join(breaches))}</span>'
            if breaches
            else f'<span class="yes">within the bound {a["bound"]:g}</span>'
        )
        out.append(f"<h3>{e(scope)}</h3><p>{a['students']} held-out students; {verdict}.</p>")
        for attribute, table in a["attributes"].items():
            out.append(_attribute_table(attribute, table, a))
    return "".join(out)


def _attribute_table(attribute: str, table: dict[str, Any], audit: dict[str, Any]) -> str:
    head = "".join(f"<th>{e(f.replace('_', ' '))}</th><th>ratio</th>" for f in FIGURES)
    rows = []
    for g in table["groups"]:
        cells = "".join(f"<td>{_num(g[f])}</td><td>{_num(g['ratios'][f], 2)}</td>" for f in FIGURES)
        rows.append(f"<tr><td>{e(str(g['group']))}</td><td>{g['n']}</td>{cells}</tr>")
    note = (
        f" {table['suppressed_groups']} group(s) under {audit['min_group_size']} students"
        " suppressed."
        if table["suppressed_groups"]
        else ""
    )
    reference = e(str(table["reference"])) if table["reference"] else "none"
    return (
        f"<p><b>{e(attribute.replace('_', ' '))}</b> (ratios to the largest group,"
        f" {reference}).{note}</p>"
        f"<table><tr><th>group</th><th>n</th>{head}</tr>{''.join(rows)}</table>"
        if rows
        else f"<p><b>{e(attribute.replace('_', ' '))}</b>: no group shown.{note}</p>"
    )


def _indicator_inputs(manifest: dict[str, Any]) -> str:
    """The indicator features of a feature set 3 model, as the model card states them."""
    cuts = manifest.get("indicator_cut_points")
    if manifest.get("feature_set", 2) < 3 or not cuts:
        return ""
    return (
        " the same year's early-warning indicators (chronically absent: missed"
        f" {cuts['chronic_absence_share']:.0%} or more of at least"
        f" {cuts['chronic_min_enrolled_days']} enrolled days; suspensions; maths and English"
        f" marks, failing under {cuts['failing_mark']:g} %; each with a missing indicator);"
    )


def model_card(manifest: dict[str, Any]) -> str:
    """The run's model card: intended use, inputs, training window, figures, groups audited,
    known limits."""
    split = manifest.get("split") or {}
    district = manifest["metrics"].get("district", {})
    s = manifest["settings"]
    extra = manifest.get("district_features") or []
    inputs = ", ".join(manifest["features"][:9])
    declared = ", ".join(f"{f['name']} ({f['kind']})" for f in extra) if extra else "none declared"
    audited = ", ".join(a.replace("_", " ") for a in manifest.get("audited_attributes", []))
    years = manifest["data"].get("school_years") or []
    rows = {
        "Intended use": "Ranking a school's students by their risk of dropping out, so that"
        " counsellors look first at those most likely to need help, with each risk's main"
        " reasons. A flag is a prompt for a conversation, not a decision about a student;"
        " not for admission, discipline, placement or any automated action.",
        "Model": manifest["model"],
        "Inputs": f"the current school year's {inputs}; the prior year's same figures (with"
        f" missing indicators);{_indicator_inputs(manifest)} the district's own features:"
        f" {declared}. Never a protected attribute.",
        "Training window": f"school years {', '.join(map(str, years)) or 'unknown'};"
        f" {split.get('description', '')}; {manifest['data'].get('rows', 0)} labelled"
        " students.",
        "Figures (district model)": f"AUC {_num(district.get('auc'))}, PPV"
        f" {_num(district.get('ppv'))} and false-alarm rate"
        f" {_num(district.get('false_alarm_rate'))} at the alert threshold"
        f" {s['alert_threshold']:g}; precision {_num(district.get('precision_at_k'))} and"
        f" recall {_num(district.get('recall_at_k'))} at k (each school's top"
        f" {s['caseload_share']:.0%}); Brier {_num(district.get('brier'))}.",
        "Groups audited": f"{audited}: selection rate, PPV, false-alarm rate, recall, ratios"
        f" to the largest group; bound {s['fairness_min_ratio']:g} ({s['fairness_action']});"
        f" groups under {s['fairness_min_group_size']} students suppressed.",
        "Known limits": "Outcomes are learned from past cohorts and may not hold for a"
        " changed school or policy. A calibrated risk is a rate over many students like this"
        " one, not a certainty. Students with little history (no prior year) are imputed and"
        " less reliable. Small schools' figures carry wide intervals. Groups too small to"
        " show are not audited. Reasons describe the model, not causes.",
    }
    body = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def interventions_section(manifest: dict[str, Any]) -> str:
    """Risk before and after interventions by type, stated as descriptive."""
    rows = manifest.get("interventions") or []
    note = (
        "<p><strong>Descriptive only, not an effect.</strong> Students are not assigned to"
        " interventions at random, and a high risk tends to fall back on its own (regression to"
        " the mean); other support happens at the same time. A fall in risk after an"
        " intervention does not show that it worked, nor a rise that it failed. Risk on the"
        " start day and on the end day (today while open), from the risk history.</p>"
    )
    if not rows:
        return note + "<p>No intervention with a type, a start date and a risk history.</p>"
    e = html.escape
    body = "".join(
        f"<tr><td>{e(str(r['type']))}</td><td>{r['cases']}</td><td>{r['closed']}</td>"
        f"<td>{_num(r['mean_before'])}</td><td>{_num(r['mean_after'])}</td>"
        f"<td>{_num(r['mean_change'])}</td><td>{_num(r['share_lower'], 2)}</td></tr>"
        for r in rows
    )
    return (
        note + "<table><tr><th>Type</th><th>Cases</th><th>Closed</th><th>Mean risk before</th>"
        "<th>Mean risk after</th><th>Mean change</th><th>Share lower after</th></tr>"
        f"{body}</table>"
    )
