"""`python -m app import`: validation that writes nothing, dry-run counts, deltas, OneRoster,
S3 bundles, and training on an imported district."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import psycopg
import pytest
from moto import mock_aws

from app.cli.data import run_import_command
from app.cli.exit_codes import EXIT_OK
from app.jobs.importer import Problem, run_import
from app.jobs.importer.layout import ENTITIES
from app.model.training import run_training
from tests.app.bundles import HEADERS, native_rows, write_csv, write_native, write_oneroster
from tests.app.conftest import District
from tests.app.helpers import scalar
from tests.app.test_district_features import bundle as features_bundle

IMPORTED = "SELECT count(*) FROM {} WHERE {}"
TABLE_ROWS = {
    "students": "SELECT count(*) FROM students WHERE sourced_id IS NOT NULL",
    "attendance": "SELECT count(*) FROM attendance a JOIN students s ON s.id = a.student_id"
    " WHERE s.sourced_id IS NOT NULL",
}


def small_rows() -> dict[str, list[list[object]]]:
    return native_rows(schools=2, students=12, days=3, exams=2)


def counts(district: District) -> dict[str, int]:
    return {name: scalar(district.url, q) for name, q in TABLE_ROWS.items()}


def test_bad_bundle_writes_nothing_and_lists_every_problem(
    untrained_district: District, tmp_path: Path
) -> None:
    rows = small_rows()
    rows["students"][0][4] = "13"  # grade out of range (row 2)
    rows["students"][1][1] = "SCH-404"  # unknown school (row 3)
    rows["students"][2][5] = "2025-02-30"  # bad date (row 4)
    rows["results"][0][2] = "NaN"  # the blank-cell NaN that stopped training (row 2)
    rows["results"][1][2] = "inf"
    rows["results"][2][2] = "51"  # above the exam's max_marks of 50
    rows["attendance"][0][2] = "sick"
    rows["attendance"][4][0] = "SCH-1-ST-404"  # unknown student (row 6)
    rows["attendance"].append(list(rows["attendance"][1]))  # duplicate (student, date)
    rows["exams"][1][4] = "-Infinity"
    bundle = write_native(tmp_path / "bad", rows)
    before = counts(untrained_district)

    result = run_import(untrained_district.importer, str(bundle), progress=False)

    assert not result.written
    assert counts(untrained_district) == before == {"students": 0, "attendance": 0}
    found = {(p.file, p.row, p.column, p.value, p.why) for p in result.problems}
    n_att = len(rows["attendance"]) + 1  # the duplicate's row number
    expected = {
        ("students.csv", 2, "grade", "13", "out of range (1 to 12)"),
        ("students.csv", 3, "school_sourced_id", "SCH-404", "unknown school"),
        ("students.csv", 4, "enrolled_on", "2025-02-30", "bad date (YYYY-MM-DD)"),
        ("results.csv", 2, "marks_obtained", "NaN", "NaN"),
        ("results.csv", 3, "marks_obtained", "inf", "infinite"),
        ("results.csv", 4, "marks_obtained", "51", "above the exam's max_marks (50)"),
        ("attendance.csv", 2, "status", "sick", "not one of present, absent, late, excused"),
        ("attendance.csv", 6, "student_sourced_id", "SCH-1-ST-404", "unknown student"),
        ("exams.csv", 3, "max_marks", "-Infinity", "infinite"),
    }
    assert expected <= found, expected - found
    dup = [p for p in result.problems if p.why.startswith("duplicate id")]
    assert {p.row for p in dup} == {3, n_att} and all(p.file == "attendance.csv" for p in dup)
    # Rows of a rejected student are rejected with it, and say why.
    orphan = Problem("attendance.csv", 2 + 3 * 2, "student_sourced_id", "SCH-1-ST-2", "")
    assert any(
        (p.file, p.row, p.value) == (orphan.file, orphan.row, orphan.value)
        and p.why == "its student is rejected"
        for p in result.problems
    )
    assert result.tables["students"].rejected == 3
    assert str(result.problems[0]).startswith(f"{result.problems[0].file} row ")


def test_the_rows_of_a_rejected_school_are_rejected_with_it_saying_why(
    untrained_district: District, tmp_path: Path
) -> None:
    rows = small_rows()  # two schools of 12 students, 2 exams and 3 days each
    rows["schools"][1][2] = ""  # SCH-2 has no name: rejected (schools.csv row 3)
    bundle = write_native(tmp_path / "b", rows)

    result = run_import(untrained_district.importer, str(bundle), progress=False)

    assert not result.written

    def rejected_with(file: str, why: str) -> set[tuple[int, str, str]]:
        return {
            (p.row, p.column, p.value) for p in result.problems if (p.file, p.why) == (file, why)
        }

    # Its 12 students (rows 14-25) and 2 exams (rows 4-5), then those students' 36 days.
    assert rejected_with("students.csv", "its school is rejected") == {
        (row, "school_sourced_id", "SCH-2") for row in range(14, 26)
    }
    assert rejected_with("exams.csv", "its school is rejected") == {
        (row, "school_sourced_id", "SCH-2") for row in (4, 5)
    }
    attendance = rejected_with("attendance.csv", "its student is rejected")
    assert len(attendance) == 36 and {v for _, _, v in attendance} == {
        f"SCH-2-ST-{k}" for k in range(12)
    }
    assert (result.tables["schools"].rejected, result.tables["students"].rejected) == (1, 12)


def test_each_kind_of_column_refuses_its_bad_values_naming_row_and_column(
    untrained_district: District, tmp_path: Path
) -> None:
    """Integers, numbers, booleans, dates, timestamps, required and free text: each bad value
    is a problem naming its file, row and column; an empty optional value is none."""
    rows = small_rows()
    rows["students"][0][4] = "9.5"  # grade
    rows["students"][1][6] = "maybe"  # is_active
    rows["students"][2][2] = ""  # first_name, required
    rows["students"][3][3] = "x" * 256  # last_name
    rows["students"][4][5] = "1989-12-31"  # enrolled_on
    rows["students"][5][7] = ""  # dropped_out, optional
    rows["exams"][0][4] = "lots"  # max_marks
    first = len(rows["incidents"]) + 2
    rows["incidents"] += [
        ["INC-A", "SCH-1-ST-8", "10 Sept 2025", 2, "disruption"],
        ["INC-B", "SCH-1-ST-8", "1989-12-31T10:00:00Z", 2, "disruption"],
        ["INC-C", "SCH-1-ST-8", "2025-09-10T10:00:00Z", 2, "y" * 255],  # the longest text
    ]
    result = run_import(
        untrained_district.importer, str(write_native(tmp_path / "b", rows)), progress=False
    )
    assert not result.written
    found = {(p.file, p.row, p.column, p.why) for p in result.problems}
    dates = "(1990-01-01 to 2100-12-31)"
    expected = {
        ("students.csv", 2, "grade", "not an integer"),
        ("students.csv", 3, "is_active", "not true or false"),
        ("students.csv", 4, "first_name", "missing"),
        ("students.csv", 5, "last_name", "longer than 255 characters"),
        ("students.csv", 6, "enrolled_on", f"date out of range {dates}"),
        ("exams.csv", 2, "max_marks", "not a number"),
        (
            "incidents.csv",
            first,
            "occurred_at",
            "bad timestamp (ISO 8601, e.g. 2025-09-01T10:00:00Z)",
        ),
        ("incidents.csv", first + 1, "occurred_at", f"date out of range {dates}"),
    }
    assert expected <= found, expected - found
    fine = {("students.csv", 7), ("incidents.csv", first + 2)}
    assert not [p for p in result.problems if (p.file, p.row) in fine]


def test_header_and_csv_problems(untrained_district: District, tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    write_csv(bundle / "schools.csv", ["sourced_id", "name", "colour"], [["S", "x", "red"]])
    (bundle / "students.csv").write_text(",".join(HEADERS["students"]) + "\n1,2,3\n")
    result = run_import(untrained_district.importer, str(bundle), progress=False)
    found = {(p.file, p.row, p.column, p.why.split(" (")[0]) for p in result.problems}
    assert ("schools.csv", 1, "colour", "unknown column") in found
    assert ("schools.csv", 1, "district_sourced_id", "missing column") in found
    assert any(
        p.file == "students.csv" and p.row == 2 and p.why.startswith("not readable as CSV")
        for p in result.problems
    )
    assert not result.written


def test_dry_run_counts_then_delta(untrained_district: District, tmp_path: Path) -> None:
    rows = small_rows()
    bundle = write_native(tmp_path / "v1", rows)
    settings = untrained_district.importer
    before = counts(untrained_district)

    dry = run_import(settings, str(bundle), dry_run=True, progress=False)
    assert not dry.written and counts(untrained_district) == before
    assert {k: (c.new, c.updated, c.unchanged, c.rejected) for k, c in dry.tables.items()} == {
        name: (len(rows[name]), 0, 0, 0) for name in HEADERS if rows[name]
    }
    first = run_import(settings, str(bundle), progress=False)
    assert first.written and first.tables["attendance"].new == len(rows["attendance"])
    assert {k: c.new for k, c in first.tables.items()} == {k: c.new for k, c in dry.tables.items()}

    # The next night: one student's grade changed, one attendance mark corrected, one new
    # student, everything else as before.
    rows["students"][0][4] = "10"
    rows["attendance"][0][2] = "late"
    rows["students"].append(["SCH-2-ST-new", "SCH-2", "Noah", "Kim", 8, "2025-10-01", "", ""])
    v2 = write_native(tmp_path / "v2", rows)
    dry = run_import(settings, str(v2), dry_run=True, progress=False)
    delta = run_import(settings, str(v2), progress=False)
    for result in (dry, delta):
        t = result.tables
        assert (t["students"].new, t["students"].updated) == (1, 1)
        assert t["students"].unchanged == len(rows["students"]) - 2
        assert (t["attendance"].new, t["attendance"].updated) == (0, 1)
        assert (t["results"].new, t["results"].updated) == (0, 0)
    grade = "SELECT grade FROM students WHERE sourced_id = 'SCH-1-ST-0'"
    assert scalar(untrained_district.url, grade) == 10
    # An empty optional cell keeps the defaults: active, outcome open.
    new = "SELECT ARRAY[is_active, dropped_out IS NULL] FROM students WHERE sourced_id = %s"
    assert scalar(untrained_district.url, new, ("SCH-2-ST-new",)) == [True, True]


def test_oneroster_bundle_imports(untrained_district: District, tmp_path: Path) -> None:
    bundle = write_oneroster(tmp_path / "oneroster")
    result = run_import(untrained_district.importer, str(bundle), progress=False)
    assert result.written, result.problems
    assert result.ignored_files == ["courses.csv"]
    assert {k: c.new for k, c in result.tables.items()} == {
        "districts": 1,
        "schools": 2,
        "students": 3,  # the teacher is not a student
        "exams": 1,
        "results": 2,  # the exempt result is skipped
    }
    student = (
        "SELECT ARRAY[sc.sourced_id, s.grade::text, s.enrolled_on::text, s.is_active::text]"
        " FROM students s JOIN schools sc ON sc.id = s.school_id WHERE s.sourced_id = %s"
    )
    url = untrained_district.url
    assert scalar(url, student, ("u-1",)) == ["org-a", "9", "2025-09-02", "true"]
    assert scalar(url, student, ("u-2",)) == ["org-b", "10", "2025-09-03", "true"]
    assert scalar(url, student, ("u-3",))[3] == "false"  # enabledUser false
    mark = "SELECT m.marks_obtained::text FROM marks m JOIN students s ON s.id = m.student_id"
    assert scalar(url, mark + " WHERE s.sourced_id = 'u-1'") == "17.50"
    district = "SELECT d.sourced_id FROM schools s JOIN districts d ON d.id = s.district_id"
    assert scalar(url, district + " WHERE s.sourced_id = 'org-b'") == "org-d"


def test_oneroster_problems_name_oneroster_columns(
    untrained_district: District, tmp_path: Path
) -> None:
    bundle = write_oneroster(tmp_path / "oneroster")
    text = (bundle / "users.csv").read_text().replace(",09,", ",KG,")
    (bundle / "users.csv").write_text(text)
    (bundle / "classes.csv").unlink()
    result = run_import(untrained_district.importer, str(bundle), progress=False)
    found = {(p.file, p.row, p.column, p.why) for p in result.problems}
    assert ("users.csv", 2, "grades", "not an integer") in found
    assert ("lineItems.csv", 1, "", "needs classes.csv in the same bundle") in found
    assert not result.written


@mock_aws
def test_s3_bundle_and_cli(
    untrained_district: District, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="drop")
    local = write_native(tmp_path / "b", small_rows())
    for path in local.iterdir():
        s3.upload_file(str(path), "drop", f"exports/2025-10-01/{path.name}")
    s3.put_object(Bucket="drop", Key="exports/2025-10-01/README.txt", Body=b"not a csv")

    code = run_import_command(
        untrained_district.importer, "s3://drop/exports/2025-10-01", dry_run=False
    )
    assert code == EXIT_OK
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] and summary["tables"]["students"]["new"] == 24

    s3.put_object(
        Bucket="drop",
        Key="bad/students.csv",
        Body=(",".join(HEADERS["students"]) + "\nX,SCH-1,A,B,NaN,2025-09-01,,\n").encode(),
    )
    assert run_import_command(untrained_district.importer, "s3://drop/bad", False) == 65
    err = capsys.readouterr().err
    assert "students.csv row 2 column grade value 'NaN': NaN" in err


def test_training_runs_on_an_imported_district(
    untrained_district: District, tmp_path: Path
) -> None:
    bundle = write_native(tmp_path / "district", native_rows(schools=2, students=150))
    assert run_import(untrained_district.importer, str(bundle), progress=False).written
    trained = run_training(untrained_district.trainer)
    imported = scalar(untrained_district.url, "SELECT array_agg(id) FROM schools"
                      " WHERE sourced_id IS NOT NULL")  # fmt: skip
    assert all(f"school-{sid}" in trained.metrics for sid in imported)
    assert trained.metrics["district"]["auc"] > 0.6


def test_importer_login_cannot_delete_or_touch_models(untrained_district: District) -> None:
    with psycopg.connect(untrained_district.login_url("ssp_importer")) as conn:
        for statement in (
            "DELETE FROM students",
            "SELECT count(*) FROM risk_scores",
            "INSERT INTO model_versions (version, scope, metrics, promoted_generation)"
            " VALUES ('x', 'district', '{}', 1)",
            "SELECT count(*) FROM audit_log",
            "SELECT count(*) FROM api_clients",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


def test_layout_is_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "app" / "README.md").read_text()
    for entity in ENTITIES:
        assert f"`{entity.name}.csv`" in readme, entity.name
        for column in entity.columns:
            assert f"`{column.name}`" in readme, (entity.name, column.name)


def test_missing_data_is_imputed_and_flagged(untrained_district: District, tmp_path: Path) -> None:
    rows = small_rows()
    rows["students"].append(["SCH-1-ST-blank", "SCH-1", "Eli", "Cohen", 7, "2025-09-01", "", ""])
    assert run_import(
        untrained_district.importer, str(write_native(tmp_path / "b", rows)), progress=False
    ).written
    with psycopg.connect(untrained_district.url, autocommit=True) as admin:
        admin.execute("SELECT refresh_student_features()")
        blank = admin.execute(
            "SELECT f.attendance_rate, f.avg_mark, f.attendance_missing, f.marks_missing"
            " FROM student_features f JOIN students s ON s.id = f.student_id"
            " WHERE s.sourced_id = 'SCH-1-ST-blank'"
        ).fetchone()
        means = admin.execute(
            "SELECT avg(f.attendance_rate), avg(f.avg_mark) FROM student_features f"
            " JOIN students s ON s.id = f.student_id JOIN schools sc ON sc.id = s.school_id"
            " WHERE sc.sourced_id = 'SCH-1' AND NOT f.attendance_missing"
        ).fetchone()
    assert blank is not None and means is not None
    # Neither perfect attendance nor a mark of 0: the school's mean, and flagged.
    assert blank[0] == pytest.approx(means[0]) and blank[0] < 1
    assert blank[1] == pytest.approx(means[1]) and blank[1] > 0
    assert blank[2:] == (True, True)


# Bytes PostgreSQL's text cannot hold: a NUL, a lone surrogate as UTF-8 would spell it (no
# UTF-8 decoder takes it), a byte that starts no UTF-8 character.
UNSTORABLE_BYTES = {
    b"\x00": "contains a NUL character (U+0000), which cannot be stored",
    "\ud800".encode("utf-8", "surrogatepass"): (
        "not UTF-8 text (an undecodable byte or a lone surrogate)"
    ),
    b"\xff": "not UTF-8 text (an undecodable byte or a lone surrogate)",
}


@pytest.mark.parametrize("bad", UNSTORABLE_BYTES, ids=["NUL", "surrogate", "byte-FF"])
def test_a_cell_that_is_no_storable_text_is_a_problem_naming_row_and_column(
    untrained_district: District, tmp_path: Path, bad: bytes
) -> None:
    """In every column of every file of the layout: the cell of row 2 ending in `bad` is a
    problem naming its file, row and column (the value shown with U+FFFD for the bad bytes),
    every other row is staged and checked, and nothing is written."""
    rows = small_rows()
    # The layout's files beyond the bundles' usual ones, with every column given.
    headers = {e.name: [c.name for c in e.columns] for e in ENTITIES}
    extra = {
        "district_features": [["D-1", "entry_score", "numeric", 0, 200, "", "false", "entry"]],
        "demographics": [["SCH-1-ST-0", "female", "asian", "true", "false", "false"]],
    }
    rows.update(extra)
    first = {e.name: [str(value) for value in rows[e.name][0]] for e in ENTITIES}
    mark = "\u2603"  # written by the csv module, then swapped for the bad bytes
    for entity in ENTITIES:
        assert rows[entity.name], entity.name
        rows[entity.name][0] = [f"{value}{mark}" for value in first[entity.name]]
    bundle = write_native(tmp_path / "b", {k: v for k, v in rows.items() if k not in extra})
    for name in extra:
        write_csv(bundle / f"{name}.csv", headers[name], rows[name])
    for path in bundle.iterdir():
        path.write_bytes(path.read_bytes().replace(mark.encode(), bad))
    before = counts(untrained_district)

    result = run_import(untrained_district.importer, str(bundle), progress=False)

    assert not result.written
    assert counts(untrained_district) == before
    found = {(p.file, p.row, p.column, p.value, p.why) for p in result.problems}
    shown = bad.decode("utf-8", "replace").replace("\x00", "\ufffd")  # as the answer shows it
    expected = {
        (f"{entity.name}.csv", 2, name, value + shown, UNSTORABLE_BYTES[bad])
        for entity in ENTITIES
        for name, value in zip(headers[entity.name], first[entity.name], strict=True)
    }
    assert expected <= found, sorted(expected - found)[:5]
    assert not any(p.why.startswith("not readable as CSV") for p in result.problems)
    for entity in ENTITIES:  # every row staged: the file was read past its bad cells
        assert result.tables[entity.name].staged == len(rows[entity.name]), entity.name


def test_unchanged_rows_left_out_first_write_exactly_what_the_upsert_alone_writes(
    untrained_district: District, tmp_path: Path
) -> None:
    settings = untrained_district.importer
    assert run_import(settings, str(features_bundle(tmp_path / "v1", 8)), progress=False).written
    v2 = features_bundle(tmp_path / "v2", 8)  # the same bundle, then three students changed
    students = [line.split(",") for line in (v2 / "students.csv").read_text().splitlines()]
    students[1][-1] = "science" if students[1][-1] == "arts" else "arts"  # a feature
    students[3][7] = ""  # an outcome open again: NULL, which no `=` would find equal
    students[4][-1] = ""  # a feature missing now
    (v2 / "students.csv").write_text("\n".join(",".join(r) for r in students) + "\n")
    attendance = [line.split(",") for line in (v2 / "attendance.csv").read_text().splitlines()]
    attendance[1][2] = "late" if attendance[1][2] != "late" else "present"
    (v2 / "attendance.csv").write_text("\n".join(",".join(r) for r in attendance) + "\n")

    def dry_run(skip_unchanged: bool) -> dict[str, tuple[int, int, int]]:
        s = settings.model_copy(update={"import_skip_unchanged": skip_unchanged})
        result = run_import(s, str(v2), dry_run=True, progress=False)
        return {k: (c.new, c.updated, c.unchanged) for k, c in result.tables.items()}

    counted = dry_run(True)
    assert counted == dry_run(False)
    assert counted["students"] == (0, 3, len(students) - 1 - 3)
    assert counted["attendance"] == (0, 1, len(attendance) - 1 - 1)
    assert all(c[:2] == (0, 0) for k, c in counted.items() if k not in ("students", "attendance"))
    assert run_import(settings, str(v2), progress=False).written
    stored = "SELECT {} FROM students WHERE sourced_id = %s"
    url = untrained_district.url
    assert (
        scalar(url, stored.format("district_features->>'course'"), (students[1][0],))
        == (students[1][-1])
    )
    assert scalar(url, stored.format("dropped_out IS NULL"), (students[3][0],)) is True
    assert scalar(url, stored.format("district_features->'course'"), (students[4][0],)) is None
