"""The nightly pipeline, import then train, end to end: after every run every active student is
scored by the served models and listed at risk by the API, whether the run promoted a model or
kept the ones it had."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

import app.model.scopes
from app.api.main import create_app
from app.core import db
from app.core.auth import create_key
from app.core.indicators import CutPoints
from app.jobs.importer import run_import
from app.model.artifacts import ModelStore
from app.model.features import raw_rows
from app.model.scoring import SELECT_ACTIVE
from app.model.served_models import ModelRegistry
from app.model.training import run_training
from tests.app.bundles import HEADERS, native_rows, write_csv, write_native
from tests.app.conftest import District
from tests.app.helpers import PEPPER, auth, scalar

NEW_STUDENTS = 150


def keep_current_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model of the next run scores an AUC of 0.5 on its held-out students: the gate
    promotes none of them, and every scope keeps the model it has."""
    real = app.model.scopes.evaluate

    def no_better(*args: Any) -> dict[str, Any]:
        return {**real(*args), "auc": 0.5}

    monkeypatch.setattr(app.model.scopes, "evaluate", no_better)


def write_next_night(root: Path, school: str, count: int, leaving: str) -> Path:
    """The next night's delta: `count` students new to `school`, with a week of attendance,
    and the student `leaving` exported inactive."""
    root.mkdir(parents=True)
    ids = [f"{school}-NEW-{k}" for k in range(count)]
    write_csv(
        root / "students.csv",
        HEADERS["students"],
        [[sid, school, "Mia", "Lee", 10, "2026-01-12", "", ""] for sid in ids]
        + [[leaving, school, "Ana", "Silva", 9, "2025-09-01", "false", ""]],
    )
    days = [f"2026-01-{d}" for d in range(12, 17)]
    statuses = ["present", "absent", "late", "present", "absent"]
    write_csv(
        root / "attendance.csv",
        HEADERS["attendance"],
        [[sid, day, statuses[(k + i) % 5]] for k, sid in enumerate(ids) for i, day in
         enumerate(days)],
    )  # fmt: skip
    return root


def at_risk_ids(api: TestClient, key: str, school_id: int) -> tuple[set[int], str]:
    """Every student of the school's at-risk list down to risk 0, page by page; and whether
    the first page came from the cache."""
    found: set[int] = set()
    params: dict[str, Any] = {"min_risk": 0, "limit": 100}
    first_page = ""
    while True:
        resp = api.get(f"/v1/schools/{school_id}/at-risk", params=params, headers=auth(key))
        assert resp.status_code == 200, resp.text
        first_page = first_page or resp.headers["X-Cache"]
        page = resp.json()
        found |= {item["student_id"] for item in page["items"]}
        if page["next_cursor"] is None:
            return found, first_page
        params["cursor"] = page["next_cursor"]


def test_students_imported_on_a_night_that_promotes_nothing_are_scored_and_listed(
    untrained_district: District, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = untrained_district
    assert d.settings.redis_url  # the API caches its pages, as deployed
    bundle = write_native(tmp_path / "first-night", native_rows(schools=2, students=150))
    assert run_import(d.importer, str(bundle), progress=False).written
    first = run_training(d.trainer)
    store = ModelStore(d.settings.model_store_url)
    served = store.pointer()
    assert first.promoted
    school_id = scalar(d.url, "SELECT id FROM schools WHERE sourced_id = 'SCH-1'")
    with db.connect_owner(d.owner) as conn:
        _, key = create_key(conn, PEPPER, "imported school", school_id=school_id)

    with TestClient(create_app(d.settings)) as api:
        before, _ = at_risk_ids(api, key, school_id)
        assert at_risk_ids(api, key, school_id)[1] == "hit"
        leaving = next(iter(before))
        leaving_sourced = scalar(d.url, "SELECT sourced_id FROM students WHERE id = %s", (leaving,))
        new_night = write_next_night(tmp_path / "second-night", "SCH-1", NEW_STUDENTS,
                                     leaving_sourced)  # fmt: skip
        assert run_import(d.importer, str(new_night), progress=False).written
        keep_current_models(monkeypatch)
        second = run_training(d.trainer)
        after, cache = at_risk_ids(api, key, school_id)

    assert second.promoted == []
    assert store.pointer().scopes == served.scopes  # the same models serve
    generation = store.pointer().generation
    scope = f"school-{school_id}" if f"school-{school_id}" in served.scopes else "district"
    new_scores = scalar(
        d.url,
        "SELECT coalesce(array_agg(DISTINCT r.model_version), '{}') || count(*)::text"
        " FROM students s JOIN risk_scores r ON r.student_id = s.id AND r.generation = %s"
        " WHERE s.sourced_id LIKE 'SCH-1-NEW-%%'",
        (generation,),
    )
    assert new_scores == [served.scopes[scope], str(NEW_STUDENTS)]
    unscored = scalar(
        d.url,
        "SELECT count(*) FROM students s WHERE s.is_active AND NOT EXISTS"
        " (SELECT 1 FROM risk_scores r WHERE r.student_id = s.id AND r.generation = %s)",
        (generation,),
    )
    assert unscored == 0  # every active student of every school
    new_ids = set(
        scalar(d.url, "SELECT array_agg(id) FROM students WHERE sourced_id LIKE 'SCH-1-NEW-%%'")
    )
    assert not new_ids & before
    assert cache == "miss"  # the pages cached before the run are read again
    assert new_ids <= after
    assert leaving not in after  # no longer active: no score, not listed


def test_a_district_feature_imported_on_a_night_that_promotes_nothing_rescores_the_student(
    untrained_district: District, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-place rescoring scores with the district's own features as a promotion's
    scoring does: a student's new value, imported that night, moves their score."""
    from tests.app.test_district_features import bundle

    d = untrained_district
    first_night = bundle(tmp_path / "first-night")
    assert run_import(d.importer, str(first_night), progress=False).written
    assert run_training(d.trainer).promoted
    store = ModelStore(d.settings.model_store_url)
    served = store.pointer()
    # A student with both features given: their admission grade drops to the lowest.
    lines = (first_night / "students.csv").read_text().splitlines()
    row = next(line.split(",") for line in lines if line.startswith("SCH-1-ST-1,"))
    assert row[-2] and float(row[-2]) > 60
    row[-2] = "0"
    second_night = tmp_path / "second-night"
    second_night.mkdir()
    (second_night / "students.csv").write_text(lines[0] + "\n" + ",".join(row) + "\n")
    score = (
        "SELECT r.risk FROM risk_scores r JOIN students s ON s.id = r.student_id"
        " WHERE s.sourced_id = 'SCH-1-ST-1' AND r.generation = %s"
    )
    before = scalar(d.url, score, (served.generation,))
    assert run_import(d.importer, str(second_night), progress=False).written
    keep_current_models(monkeypatch)
    assert run_training(d.trainer).promoted == []

    assert store.pointer().generation == served.generation  # nothing published
    after = scalar(d.url, score, (served.generation,))
    with psycopg.connect(d.url) as conn:
        (features,) = conn.execute(
            SELECT_ACTIVE + " AND f.student_id = (SELECT id FROM students"
            " WHERE sourced_id = 'SCH-1-ST-1')"
        ).fetchall()
    extras = scalar(d.url, "SELECT district_features FROM students WHERE sourced_id = 'SCH-1-ST-1'")
    assert extras["admission_grade"] == "0"  # stored as imported
    registry = ModelRegistry(store, refresh_seconds=0)
    registry.use(served)
    x = raw_rows([features], 2, CutPoints.from_settings(d.trainer))  # as the scoring reads it
    expected = registry.predict([int(features[1])], x, extras=[extras])[0].risk
    assert after == pytest.approx(expected, abs=1e-6)
    assert after > before  # the lowest admission grade: a higher risk
