"""What training reads: the labelled students' features by school year, the district's feature
declarations, which students are held out (the latest school year when there are several,
else a random stratified share of each school), the schools' medians, and, apart from all of
it, the protected attributes the fairness audit groups the held-out students by.

The protected attributes are read by a query of their own and never join the features: the
matrices a model is fitted on cannot hold them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from sklearn.model_selection import train_test_split

from app.core.indicators import CutPoints
from app.core.settings import Settings
from app.model.features import (
    FEATURES,
    INDICATOR_FEATURES,
    INDICATOR_FIGURES,
    INDICATORS_JOIN,
    INDICATORS_SELECT,
    STANDARD_FEATURES,
    indicator_figures,
)
from app.model.inputs import PROTECTED_ATTRIBUTES, DistrictFeature

TEMPORAL, RANDOM = "temporal", "random"
NOT_RECORDED = "not recorded"  # the group of a student whose attribute is unknown


class BadTrainingDataError(ValueError):
    """Features that no model can learn from (NaN, infinite): names the students."""


def school_year(day: date, start_month: int) -> int:
    """The school year of a date, named by the calendar year it ends in (the database's
    school_year(), migration 0015)."""
    return day.year + (1 if start_month > 1 and day.month >= start_month else 0)


@dataclass
class Dataset:
    """Labelled students: ids, schools, school years, raw features (RAW_FEATURES, NaN
    missing), district feature values, labels; and the snapshot the manifest records."""

    student_ids: np.ndarray
    schools: np.ndarray
    years: np.ndarray
    x: np.ndarray
    extras: list[dict[str, Any]]
    y: np.ndarray
    snapshot: dict[str, Any]

    def take(self, mask: np.ndarray) -> list[dict[str, Any]]:
        return [e for e, keep in zip(self.extras, mask.tolist(), strict=True) if keep]


# Each student's features of their current school year and that same year's indicator
# figures: the features a model learns from are never of a later year than its label's.
SELECT_LABELLED = (
    "SELECT f.student_id, f.school_id, f.school_year,"
    f" {', '.join('f.' + c for c in STANDARD_FEATURES)}, f.dropped_out, f.attendance_missing,"
    f" f.marks_missing, f.district_features, {INDICATORS_SELECT}"
    f" FROM student_features f{INDICATORS_JOIN} WHERE f.dropped_out IS NOT NULL"
)

LABEL_COLUMN = 3 + len(STANDARD_FEATURES)  # dropped_out's position in SELECT_LABELLED


def load_training_data(
    conn: psycopg.Connection[Any], shard: tuple[int, int] = (0, 1), cuts: CutPoints | None = None
) -> Dataset:
    """Every labelled student (of the schools whose id is ``index`` modulo ``count`` when
    ``shard`` is (index, count)); `cuts`: the district's subject lists and suspension
    categories (the default settings' when None)."""
    rows = conn.execute(
        SELECT_LABELLED + " AND f.school_id %% %s = %s ORDER BY f.student_id",
        (shard[1], shard[0]),
    ).fetchall()
    return dataset_from_rows(rows, cuts)


def dataset_from_rows(rows: list[Any], cuts: CutPoints | None = None) -> Dataset:
    """The Dataset of SELECT_LABELLED's rows. Raises BadTrainingDataError naming the students
    whose features are not finite: the schema and the import refuse NaN and infinities, so one
    that got through is a bug to fix, not a row to guess at (the prior year's may be
    missing)."""
    cuts = cuts or CutPoints.from_settings(Settings())
    width = LABEL_COLUMN + 1
    data = np.array([r[:width] for r in rows], dtype=np.float64).reshape(-1, width)
    figures = np.array(
        [indicator_figures(r[width + 3 : width + 7], cuts) for r in rows], dtype=np.float64
    ).reshape(-1, len(INDICATOR_FIGURES))
    x = np.hstack([data[:, 3:-1], figures])
    current = x[:, : len(FEATURES)]
    bad = ~np.isfinite(current).all(axis=1) | np.isinf(x).any(axis=1)
    if bad.any():
        ids = [int(rows[i][0]) for i in np.flatnonzero(bad)]
        shown = ", ".join(map(str, ids[:20])) + (
            f" and {len(ids) - 20} more" if len(ids) > 20 else ""
        )
        raise BadTrainingDataError(
            f"student_features is not finite (NaN or infinite) for {len(ids)} students:"
            f" {shown}; fix their records (import refuses such values)"
        )
    extras = [dict(r[width + 2] or {}) for r in rows]
    y = data[:, -1].astype(np.int64)
    digest = hashlib.sha256(data.tobytes())
    digest.update(figures.tobytes())
    digest.update(repr([sorted(e.items()) for e in extras]).encode())
    years = data[:, 2].astype(np.int64)
    snapshot = {
        "rows": len(y),
        "positives": int(y.sum()),
        "schools": len(np.unique(data[:, 1])),
        "school_years": sorted(set(years.tolist())),
        "attendance_missing": sum(1 for r in rows if r[width]),
        "marks_missing": sum(1 for r in rows if r[width + 1]),
        "indicators_missing": int(np.isnan(figures[:, 0]).sum()),
        "prior_year_missing": int(np.isnan(x[:, len(FEATURES)]).sum()),
        "sha256": digest.hexdigest(),
        "taken_at": datetime.now(UTC).isoformat(),
    }
    return Dataset(data[:, 0].astype(np.int64), data[:, 1].astype(np.int64), years, x, extras, y,
                   snapshot)  # fmt: skip


def load_declarations(conn: psycopg.Connection[Any]) -> list[DistrictFeature]:
    """The district features every model of the run takes (the union over the districts; a
    student of a district that does not declare one has it missing). Raises ValueError when
    two districts declare one name differently."""
    rows = conn.execute(
        "SELECT name, kind, low, high, allowed_values, district_id FROM district_features"
        " ORDER BY name, district_id"
    ).fetchall()
    found: dict[str, DistrictFeature] = {}
    for name, kind, low, high, allowed, district in rows:
        feature = DistrictFeature(
            name,
            kind,
            None if low is None else float(low),
            None if high is None else float(high),
            tuple(allowed.split("|")) if allowed else (),
        )
        if name in found and found[name] != feature:
            raise ValueError(
                f"district feature {name!r} is declared differently by district {district} and"
                " another district; give them different names"
            )
        found[name] = feature
    return list(found.values())


@dataclass(frozen=True)
class Split:
    """How the held-out students are chosen. Temporal: each school whose labelled students span
    several school years, the latest holding both outcomes, is evaluated on that latest year
    and trained on the earlier ones (a school with one year of outcomes, as a district that
    joined lately, is split at random). Random: a stratified share of each school."""

    kind: str
    test_year: int | None  # the latest school year evaluated on (temporal)
    train_years: tuple[int, ...]  # the other school years with outcomes

    def describe(self) -> str:
        if self.kind == TEMPORAL:
            years = ", ".join(map(str, self.train_years))
            return (
                f"each school trained on its earlier school years ({years}) and evaluated on"
                f" its latest with outcomes ({self.test_year} at the latest)"
            )
        return "random stratified split of each school (one school year of outcomes)"


def temporal_test_year(years: np.ndarray, y: np.ndarray) -> int | None:
    """A school's held-out year: its latest with outcomes when it has several and that one
    holds both outcomes (else None: the school is split at random)."""
    found = np.unique(years)
    if len(found) < 2:
        return None
    latest = int(found[-1])
    outcomes = y[years == latest]
    return latest if 0 < int(outcomes.sum()) < len(outcomes) else None


def choose_split(conn: psycopg.Connection[Any]) -> Split:
    """From every labelled student's school and school year (the whole database, whatever
    the shard)."""
    rows = conn.execute(
        "SELECT school_id, school_year, dropped_out, count(*) FROM student_features"
        " WHERE dropped_out IS NOT NULL GROUP BY 1, 2, 3"
    ).fetchall()
    by_school: dict[int, list[tuple[int, int]]] = {}
    for school, year, dropped, count in rows:
        by_school.setdefault(int(school), []).extend([(int(year), int(dropped))] * int(count))
    every_year = sorted({int(r[1]) for r in rows})
    tested = []
    for pairs in by_school.values():
        a = np.array(pairs)
        if (year := temporal_test_year(a[:, 0], a[:, 1])) is not None:
            tested.append(year)
    if not tested:
        return Split(RANDOM, None, tuple(every_year))
    test_year = max(tested)
    return Split(TEMPORAL, test_year, tuple(y for y in every_year if y != test_year))


def holdout_mask(
    schools: np.ndarray, y: np.ndarray, years: np.ndarray, split: Split, settings: Settings
) -> np.ndarray:
    """Which students are held out. Every model of the run trains only on the rest, so the
    district model and a school's own model are compared on students neither has seen."""
    fraction, seed = settings.test_fraction, settings.random_seed
    if split.kind != TEMPORAL:
        return random_mask(schools, y, fraction, seed)
    test = np.zeros(len(y), dtype=bool)
    for sid in np.unique(schools).tolist():
        idx = np.flatnonzero(schools == sid)
        year = temporal_test_year(years[idx], y[idx])
        if year is None:
            test[idx] = random_mask(schools[idx], y[idx], fraction, seed)
        else:
            test[idx] = years[idx] == year
    return test


def random_mask(schools: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """`fraction` of each school, stratified by outcome."""
    test = np.zeros(len(y), dtype=bool)
    for sid in np.unique(schools).tolist():
        idx = np.flatnonzero(schools == sid)
        if len(idx) < 4:
            continue  # too few to split: all train
        counts = np.bincount(y[idx], minlength=2)
        stratify = y[idx] if counts.min() >= 2 else None
        _, held = train_test_split(idx, test_size=fraction, stratify=stratify, random_state=seed)
        test[held] = True
    return test


def load_demographics(
    conn: psycopg.Connection[Any], student_ids: np.ndarray
) -> dict[str, np.ndarray]:
    """Each protected attribute of these students, as group labels ("yes"/"no" for flags,
    NOT_RECORDED when unknown), aligned with `student_ids`. Only for the fairness audit."""
    cols = ", ".join(PROTECTED_ATTRIBUTES)
    found = {
        int(r[0]): r[1:]
        for r in conn.execute(
            f"SELECT student_id, {cols} FROM student_demographics WHERE student_id = ANY(%s)",
            (student_ids.tolist(),),
        )
    }
    out: dict[str, np.ndarray] = {}
    for j, attribute in enumerate(PROTECTED_ATTRIBUTES):
        labels = [_group(found.get(int(s), (None,) * len(PROTECTED_ATTRIBUTES))[j])
                  for s in student_ids.tolist()]  # fmt: skip
        out[attribute] = np.array(labels, dtype=object)
    return out


def _group(value: Any) -> str:
    if value is None:
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def school_medians(
    conn: psycopg.Connection[Any],
    declarations: list[DistrictFeature],
    cuts: CutPoints | None = None,
) -> dict[str, Any]:
    """Per school (and district-wide), its active students' median of each feature (the
    indicator features' with `cuts`: a yes/no one's median is the share of yes, rounded), the
    most common value of a categorical one (all its students when none is active)."""
    cuts = cuts or CutPoints.from_settings(Settings())
    parts = [
        sql.SQL("percentile_cont(0.5) WITHIN GROUP (ORDER BY {})").format(sql.Identifier(f))
        for f in STANDARD_FEATURES
    ]
    parts += [
        sql.SQL("percentile_cont(0.5) WITHIN GROUP (ORDER BY {})").format(sql.Identifier(f))
        for f in INDICATOR_FEATURES
    ]
    for f in declarations:
        value = sql.SQL("district_features->>{}").format(sql.Literal(f.name))
        if f.kind == "numeric":
            parts.append(sql.SQL(
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY CASE WHEN pg_input_is_valid({v},"
                " 'float8') THEN ({v})::float8 END)").format(v=value))  # fmt: skip
        else:
            parts.append(sql.SQL("mode() WITHIN GROUP (ORDER BY {})").format(value))
    query = sql.SQL(
        "SELECT school_id, {} FROM (SELECT *, bool_or(is_active) OVER (PARTITION BY school_id)"
        " AS any_active FROM ({}) f) v WHERE is_active OR NOT any_active"
        " GROUP BY GROUPING SETS ((school_id), ())"
    ).format(sql.SQL(", ").join(parts), sql.SQL(WITH_INDICATOR_FEATURES))
    names = [*STANDARD_FEATURES, *INDICATOR_FEATURES, *(f.name for f in declarations)]
    out: dict[str, Any] = {"schools": {}, "district": {}}
    params = {
        "maths": list(cuts.maths),
        "english": list(cuts.english),
        "suspensions": list(cuts.suspensions),
        "share": cuts.chronic_share,
        "min_days": cuts.chronic_min_days,
        "failing": cuts.failing_mark,
    }
    for row in conn.execute(query, params):
        medians = {
            n: (round(v, 4) if isinstance(v, float) else v)
            for n, v in zip(names, row[1:], strict=True)
            if v is not None
        }
        if row[0] is None:
            out["district"] = medians
        else:
            out["schools"][str(row[0])] = medians
    return out


# Every student's features with their indicator features (as features.derive_indicators
# derives them), for the medians. Parameters: maths, english, suspensions (text[]); share,
# min_days, failing.
WITH_INDICATOR_FEATURES = (
    "SELECT f.*, CASE WHEN i.enrolled_days >= %(min_days)s THEN"
    " (i.absent_days >= %(share)s::float8 * i.enrolled_days)::int END AS chronic_absence,"
    " CASE WHEN i.student_id IS NOT NULL THEN (SELECT coalesce(sum(e.value::int), 0)"
    " FROM jsonb_each_text(i.incident_categories) e WHERE e.key = ANY (%(suspensions)s::text[]))"
    " END AS suspensions, m.maths_mark, m.english_mark,"
    " (m.maths_mark < %(failing)s::float8)::int AS failing_maths,"
    " (m.english_mark < %(failing)s::float8)::int AS failing_english"
    f" FROM student_features f{INDICATORS_JOIN} LEFT JOIN LATERAL (SELECT"
    " (SELECT avg(e.value::float8) FROM jsonb_each_text(i.subject_marks) e"
    " WHERE e.key = ANY (%(maths)s::text[])) AS maths_mark,"
    " (SELECT avg(e.value::float8) FROM jsonb_each_text(i.subject_marks) e"
    " WHERE e.key = ANY (%(english)s::text[])) AS english_mark) m ON true"
)
