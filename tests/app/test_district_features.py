"""A district's own features: declared in its import, validated like the layout's columns,
stored per student, model inputs for that district, shown in reasons; a protected attribute is
refused as one. And the native demographics.csv: stored apart, never a feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
from fastapi.testclient import TestClient

from app.api.main import create_app
from app.core import db
from app.core.auth import create_key
from app.core.text import NUL_PROBLEM
from app.jobs.importer import run_import
from app.model.artifacts import ModelStore
from app.model.risk_model import as_risk_model
from app.model.served_models import DISTRICT
from app.model.training import run_training
from tests.app.bundles import HEADERS, native_rows, write_csv, write_native
from tests.app.conftest import District
from tests.app.helpers import auth, scalar
from tests.app.test_reasons import FEATURES_OK

DECLARATION_HEADER = ["district_sourced_id", "name", "kind", "low", "high", "allowed_values"]
DECLARED = [
    ["D-1", "admission_grade", "numeric", 0, 200, ""],
    ["D-1", "course", "categorical", "", "", "arts|science|trades"],
]


def bundle(tmp: Path, students: int = 150, declarations: list[list[object]] | None = None) -> Path:
    """A native bundle whose students carry two district features that predict dropping out
    (the admission grade lower, more often in trades), a few of them missing."""
    rows = native_rows(schools=2, students=students, days=10, exams=3)
    rng = np.random.default_rng(9)
    header = [*HEADERS["students"], "admission_grade", "course"]
    for k, row in enumerate(rows["students"]):
        dropped = row[7]
        grade = float(np.clip(rng.normal(120 - 25 * dropped, 15), 0, 200).round(1))
        course = ("trades" if dropped and rng.random() < 0.6 else
                  ("arts", "science", "trades")[int(rng.integers(0, 3))])  # fmt: skip
        row += ["" if k % 17 == 0 else grade, "" if k % 23 == 0 else course]
    root = write_native(tmp, {k: v for k, v in rows.items() if k != "students"})
    write_csv(root / "students.csv", header, rows["students"])
    write_csv(root / "district_features.csv", DECLARATION_HEADER, declarations or DECLARED)
    return root


def test_bad_district_feature_values_are_named_by_row_and_column(
    untrained_district: District, tmp_path: Path
) -> None:
    root = bundle(tmp_path / "b", students=6)
    lines = (root / "students.csv").read_text().splitlines()
    cells = [line.split(",") for line in lines]
    cells[1][-2] = "250"  # row 2: above the declared high
    cells[2][-2] = "NaN"  # row 3
    cells[3][-1] = "medicine"  # row 4: not an allowed value
    cells[4][-1] = "arts\x00"  # row 5: a NUL byte
    (root / "students.csv").write_text("\n".join(",".join(c) for c in cells) + "\n")
    result = run_import(untrained_district.importer, str(root), progress=False)
    assert not result.written
    found = {(p.file, p.row, p.column, p.value) for p in result.problems}
    assert {
        ("students.csv", 2, "admission_grade", "250"),
        ("students.csv", 3, "admission_grade", "NaN"),
        ("students.csv", 4, "course", "medicine"),
    } <= found, result.problems
    nul = next(p for p in result.problems if (p.row, p.column) == (5, "course"))
    assert (nul.value, nul.why) == ("arts\ufffd", NUL_PROBLEM)
    assert scalar(untrained_district.url, "SELECT count(*) FROM district_features") == 0


def test_undeclared_and_protected_features_are_refused(
    untrained_district: District, tmp_path: Path
) -> None:
    declared = [
        ["D-1", "admission_grade", "numeric", 0, 200, ""],
        ["D-1", "free_reduced_lunch", "categorical", "", "", "yes|no"],
    ]
    root = bundle(tmp_path / "p", students=6, declarations=declared)
    result = run_import(untrained_district.importer, str(root), progress=False)
    assert not result.written
    by_column = {(p.file, p.column): p.why for p in result.problems}
    assert ("district_features.csv", "name") in by_column  # a protected attribute's name
    assert "protected" in by_column[("district_features.csv", "name")]
    assert ("students.csv", "course") in by_column  # sent but not declared (validly)


def test_district_features_are_stored_trained_on_and_explained(
    untrained_district: District, tmp_path: Path
) -> None:
    d = untrained_district
    result = run_import(d.importer, str(bundle(tmp_path / "ok")), progress=False)
    assert result.written, result.problems
    stored = scalar(
        d.url,
        "SELECT district_features FROM students WHERE sourced_id = 'SCH-1-ST-0'",
    )
    assert stored["admission_grade"] is None and stored["course"] is None  # explicit missing
    assert scalar(d.url, "SELECT count(*) FROM district_features") == 2

    train = run_training(d.trainer)
    store = ModelStore(d.trainer.model_store_url)
    model = as_risk_model(store.load_model(train.version, DISTRICT))
    names = model.input_names
    assert {"admission_grade", "admission_grade:missing", "course=trades"} <= set(names)
    manifest = store.manifest(train.version)
    assert manifest is not None
    assert [f["name"] for f in manifest["district_features"]] == ["admission_grade", "course"]

    # Posted with a prediction: used, and among the reasons with the student's value.
    school = scalar(d.url, "SELECT id FROM schools WHERE sourced_id = 'SCH-1'")
    with db.connect_owner(d.owner) as conn:
        key = create_key(conn, d.owner.api_key_pepper, "imported school", school_id=school)[1]
        conn.commit()
    student = {**FEATURES_OK, "district_features": {"admission_grade": 60.0, "course": "trades"}}
    with TestClient(create_app(d.settings)) as api:
        body = {"school_id": school, "instances": [student, FEATURES_OK]}
        resp = api.post("/v1/predict", json=body, headers=auth(key))
        assert resp.status_code == 200, resp.text
        with_features, without = resp.json()["predictions"]
        assert with_features["risk"] > without["risk"]  # a low admission grade, in trades
        reasons = {r["feature"]: r for r in with_features["reasons"]}
        assert reasons["admission_grade"]["value"] == 60.0
        unknown = {**FEATURES_OK, "district_features": {"shoe_size": 9}}
        refused = api.post(
            "/v1/predict", json={"school_id": school, "instances": [unknown]}, headers=auth(key)
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == [
            "body", "instances", 0, "district_features", "shoe_size"
        ]  # fmt: skip
        out_of_range = {**FEATURES_OK, "district_features": {"admission_grade": 900}}
        refused = api.post(
            "/v1/predict", json={"school_id": school, "instances": [out_of_range]},
            headers=auth(key),
        )  # fmt: skip
        assert refused.status_code == 422
        assert "out of range (0 to 200)" in refused.json()["detail"][0]["msg"]


def test_native_demographics_are_stored_apart(untrained_district: District, tmp_path: Path) -> None:
    d = untrained_district
    root = bundle(tmp_path / "demo", students=6)
    write_csv(
        root / "demographics.csv",
        ["student_sourced_id", "sex", "race_ethnicity", "economically_disadvantaged",
         "english_learner", "disability"],
        [
            ["SCH-1-ST-0", "female", "asian", "true", "false", ""],
            ["SCH-1-ST-1", "robot", "", "", "", ""],  # row 3: not a sex the layout has
        ],
    )  # fmt: skip
    result = run_import(d.importer, str(root), progress=False)
    assert not result.written
    assert any(
        (p.file, p.row, p.column, p.value) == ("demographics.csv", 3, "sex", "robot")
        for p in result.problems
    )
    (root / "demographics.csv").write_text(
        (root / "demographics.csv").read_text().replace("robot", "male")
    )
    assert run_import(d.importer, str(root), progress=False).written
    with psycopg.connect(d.url) as conn:
        row = conn.execute(
            "SELECT sex, race_ethnicity, economically_disadvantaged, english_learner,"
            " disability FROM student_demographics g JOIN students s ON s.id = g.student_id"
            " WHERE s.sourced_id = 'SCH-1-ST-0'"
        ).fetchone()
    assert row == ("female", "asian", True, False, None)


def test_oneroster_demographics_map_to_the_federal_categories(
    untrained_district: District, tmp_path: Path
) -> None:
    """Sex, and the race flags with hispanicOrLatinoEthnicity as one category (Hispanic or
    Latino of any race; two or more races when flagged so or more than one flag); the
    teacher's row is skipped, never stored."""
    from tests.app.bundles import write_oneroster

    root = write_oneroster(tmp_path / "or")
    flags = ["americanIndianOrAlaskaNative", "asian", "blackOrAfricanAmerican",
             "nativeHawaiianOrOtherPacificIslander", "white", "demographicRaceTwoOrMoreRaces",
             "hispanicOrLatinoEthnicity"]  # fmt: skip
    stamp = "2025-09-01T00:00:00.000Z"
    write_csv(
        root / "demographics.csv",
        ["sourcedId", "status", "dateLastModified", "birthDate", "sex", *flags],
        [
            ["u-1", "active", stamp, "", "female", "", "", "", "", "true", "", "true"],
            ["u-2", "active", stamp, "", "male", "", "true", "", "", "true", "", "false"],
            ["u-3", "active", stamp, "", "", "", "", "true", "", "", "", ""],
            ["t-1", "active", stamp, "", "male", "", "", "", "", "true", "", ""],
        ],
    )
    result = run_import(untrained_district.importer, str(root), progress=False)
    assert result.written, result.problems
    with psycopg.connect(untrained_district.url) as conn:
        rows = conn.execute(
            "SELECT s.sourced_id, g.sex, g.race_ethnicity FROM student_demographics g"
            " JOIN students s ON s.id = g.student_id WHERE s.sourced_id IS NOT NULL ORDER BY 1"
        ).fetchall()
    assert rows == [
        ("u-1", "female", "hispanic_or_latino"),
        ("u-2", "male", "two_or_more_races"),
        ("u-3", None, "black_or_african_american"),
    ]
