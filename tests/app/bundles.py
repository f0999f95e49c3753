"""Small import bundles written as a district's system would: native CSV and OneRoster 1.2."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import numpy as np

HEADERS = {
    "districts": ["sourced_id", "name"],
    "schools": ["sourced_id", "district_sourced_id", "name"],
    "students": [
        "sourced_id", "school_sourced_id", "first_name", "last_name", "grade", "enrolled_on",
        "is_active", "dropped_out",
    ],
    "exams": ["sourced_id", "school_sourced_id", "subject", "held_on", "max_marks"],
    "results": ["student_sourced_id", "exam_sourced_id", "marks_obtained"],
    "attendance": ["student_sourced_id", "date", "status"],
    "incidents": ["sourced_id", "student_sourced_id", "occurred_at", "severity", "category"],
}  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def native_rows(
    schools: int = 2, students: int = 150, days: int = 20, exams: int = 4, seed: int = 3
) -> dict[str, list[list[object]]]:
    """A district whose records carry signal: latent risk drives absences, marks, dropout."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[list[object]]] = {k: [] for k in HEADERS}
    rows["districts"].append(["D-1", "Imported district"])
    start = date(2025, 9, 1)
    for s in range(schools):
        school = f"SCH-{s + 1}"
        rows["schools"].append([school, "D-1", f"School {s + 1}"])
        for e in range(exams):
            rows["exams"].append([f"{school}-EX-{e}", school, "maths", start + timedelta(e), 50])
        z = rng.normal(0, 1, students)
        for k in range(students):
            sid = f"{school}-ST-{k}"
            dropped = bool(rng.random() < 1 / (1 + np.exp(2.0 - 1.8 * z[k])))
            rows["students"].append(
                [sid, school, "Ana", "Silva", 9, "2025-09-01", not dropped, dropped]
            )
            for d in range(days):
                absent = rng.random() < 1 / (1 + np.exp(2.5 - z[k]))
                status = "absent" if absent else "present"
                rows["attendance"].append([sid, start + timedelta(d), status])
            for e in range(exams):
                mark = float(np.clip(35 - 6 * z[k] + rng.normal(0, 5), 0, 50).round(1))
                rows["results"].append([sid, f"{school}-EX-{e}", mark])
            if z[k] > 1:
                rows["incidents"].append(
                    [f"{sid}-INC", sid, "2025-09-10T10:00:00Z", 2, "disruption"]
                )
    return rows


def write_native(root: Path, rows: dict[str, list[list[object]]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in (rows if rows is not None else native_rows()).items():
        write_csv(root / f"{name}.csv", HEADERS[name], data)
    return root


def write_oneroster(root: Path) -> Path:
    """A OneRoster 1.2 CSV bundle: one district, two schools, three students, a class with a
    line item and its results (plus a part the import does not read: courses.csv)."""
    root.mkdir(parents=True, exist_ok=True)
    stamp = "2025-09-01T00:00:00.000Z"
    write_csv(
        root / "orgs.csv",
        ["sourcedId", "status", "dateLastModified", "name", "type", "identifier",
         "parentSourcedId"],
        [
            ["org-d", "active", stamp, "OR District", "district", "", ""],
            ["org-a", "active", stamp, "OR School A", "school", "", "org-d"],
            ["org-b", "active", stamp, "OR School B", "school", "", "org-d"],
        ],
    )  # fmt: skip
    write_csv(
        root / "users.csv",
        ["sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds",
         "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
         "agentSourcedIds", "grades", "password", "userMasterIdentifier",
         "resourceSourcedIds", "preferredGivenName", "preferredMiddleName",
         "preferredFamilyName", "primaryOrg", "pronouns"],
        [
            ["u-1", "active", stamp, "true", "u1", "", "Iris", "Kim", "", "", "", "", "", "",
             "09", "", "", "", "", "", "", "org-a", ""],
            ["u-2", "active", stamp, "true", "u2", "", "Omar", "Haddad", "", "", "", "", "",
             "", "10,11", "", "", "", "", "", "", "org-b", ""],
            ["u-3", "active", stamp, "false", "u3", "", "Leo", "Rossi", "", "", "", "", "",
             "", "12", "", "", "", "", "", "", "org-b", ""],
            ["t-1", "active", stamp, "true", "t1", "", "Teacher", "One", "", "", "", "", "",
             "", "", "", "", "", "", "", "", "org-a", ""],
        ],
    )  # fmt: skip
    write_csv(
        root / "classes.csv",
        ["sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId",
         "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds",
         "subjects", "subjectCodes", "periods"],
        [["c-1", "active", stamp, "Maths 9", "09", "co-1", "M9", "scheduled", "", "org-a",
          "term-1", "maths", "", ""]],
    )  # fmt: skip
    write_csv(
        root / "enrollments.csv",
        ["sourcedId", "status", "dateLastModified", "classSourcedId", "schoolSourcedId",
         "userSourcedId", "role", "primary", "beginDate", "endDate"],
        [
            ["e-1", "active", stamp, "c-1", "org-a", "u-1", "student", "true", "2025-09-02", ""],
            ["e-2", "active", stamp, "c-1", "org-b", "u-2", "student", "true", "2025-09-03", ""],
            ["e-3", "active", stamp, "c-1", "org-b", "u-3", "student", "false", "", ""],
            ["e-4", "active", stamp, "c-1", "org-a", "t-1", "teacher", "true", "", ""],
        ],
    )  # fmt: skip
    write_csv(
        root / "lineItems.csv",
        ["sourcedId", "status", "dateLastModified", "title", "description", "assignDate",
         "dueDate", "classSourcedId", "categorySourcedId", "gradingPeriodSourcedId",
         "academicSessionSourcedId", "scoreScaleSourcedId", "resultValueMin",
         "resultValueMax", "learningObjectiveSet"],
        [["li-1", "active", stamp, "Algebra test", "", "2025-10-01", "2025-10-08", "c-1",
          "cat-1", "", "term-1", "", "0", "20", ""]],
    )  # fmt: skip
    write_csv(
        root / "results.csv",
        ["sourcedId", "status", "dateLastModified", "lineItemSourcedId", "studentSourcedId",
         "scoreStatus", "score", "textScore", "scoreDate", "comment"],
        [
            ["r-1", "active", stamp, "li-1", "u-1", "fully graded", "17.5", "", "2025-10-09", ""],
            ["r-2", "active", stamp, "li-1", "u-2", "fully graded", "8", "", "2025-10-09", ""],
            ["r-3", "active", stamp, "li-1", "u-3", "exempt", "", "", "", ""],
        ],
    )  # fmt: skip
    write_csv(root / "courses.csv", ["sourcedId", "title"], [["co-1", "Maths"]])
    return root
