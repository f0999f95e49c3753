"""CSV bodies of POST /invocations: one row per student, the features in order, optionally
preceded by school_id; every value checked as the JSON body's are.

Two layouts (features.CSV_COLUMNS), told apart by their number of columns: version 1, the
current year's nine features (as clients sent them before school years), and version 2, every
raw input (the prior year's and the indicator figures too; an empty cell: missing, except for
the current year's features). Whatever the layout, each model builds exactly the inputs of its
own feature set: an older model ignores the columns it does not read, a newer one imputes those
a version 1 row lacks (as a student without a record).

Rows are checked as they are read, so a bad body costs only the rows up to its first error
(and never more than MAX_INVOCATION_ROWS), and no row is ever dropped: the only line that
is not scored is a header naming the columns."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from fastapi import HTTPException
from pydantic import ValidationError

from app.api.schemas import MAX_INT, MAX_INVOCATION_ROWS
from app.model.features import CSV_COLUMNS, FEATURES, RAW_FEATURES, StudentFeatures

HEADERS = {h for cols in CSV_COLUMNS.values() for h in (cols, ("school_id", *cols))}
# Each layout by its width without and with school_id: (columns, has school_id).
LAYOUTS = {
    len(cols) + extra: (cols, bool(extra)) for cols in CSV_COLUMNS.values() for extra in (0, 1)
}


def parse_csv(body: bytes) -> tuple[list[int | None], np.ndarray]:
    """CSV rows of a layout's numbers, or school_id followed by them (a body may mix the
    layouts); the raw matrix (RAW_FEATURES, NaN missing). A first line that names a layout's
    columns (optionally after school_id) is a header and skipped."""
    try:
        # utf-8-sig: a byte-order mark (as spreadsheet exports write) is not part of the cell.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise HTTPException(400, "CSV body must be UTF-8") from None
    # newline="": the csv module itself reads \r, \n and \r\n as row ends (a lone \r in an
    # unquoted field is otherwise its error); a malformed body is the client's error.
    reader = csv.reader(io.StringIO(text, newline=""))
    schools: list[int | None] = []
    values: list[list[float]] = []
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue  # blank line
            if reader.line_num == 1 and tuple(c.strip().lower() for c in cells) in HEADERS:
                continue
            if len(values) == MAX_INVOCATION_ROWS:
                raise HTTPException(400, f"at most {MAX_INVOCATION_ROWS} rows per request")
            sid, nums = _row(reader.line_num, cells)
            schools.append(sid)
            values.append(nums)
    except csv.Error as err:
        raise HTTPException(400, f"CSV body, line {reader.line_num}: {err}") from None
    if not values:
        raise HTTPException(400, "CSV body has no rows")
    return schools, np.array(values, dtype=np.float64)


def _row(line: int, cells: list[str]) -> tuple[int | None, list[float]]:
    """One data row (`line`: its line in the body, counted from 1): its school and its
    features (NaN: an empty cell of a column that may be missing)."""
    if len(cells) not in LAYOUTS:
        v1, v2 = CSV_COLUMNS[1], CSV_COLUMNS[2]
        raise HTTPException(
            400, f"row {line}: expected {len(v1)} columns ({', '.join(v1)}) or, in version 2,"
            f" {len(v2)} ({', '.join(v2)}), optionally after school_id; got {len(cells)}",
        )  # fmt: skip
    columns, with_school = LAYOUTS[len(cells)]
    names = ("school_id", *columns) if with_school else columns
    nums: list[float] = []
    given: dict[str, float | None] = {}
    for name, cell in zip(names, cells, strict=True):
        if not cell.strip() and name not in FEATURES and name != "school_id":
            nums.append(math.nan)  # missing: imputed by a model that reads it
            given[name] = None
            continue
        try:
            nums.append(float(cell))
        except ValueError:
            raise HTTPException(400, f"row {line}: {name}: {cell[:40]!r} is not a number") from None
        given[name] = nums[-1]
    sid: int | None = None
    if with_school:
        # float() accepts nan, inf and 1e400 (inf); int() would raise on those (a 500)
        # and silently truncate 5.7 to school 5.
        first = nums.pop(0)
        if not (math.isfinite(first) and first.is_integer() and 1 <= first <= MAX_INT):
            raise HTTPException(
                400, f"row {line}: school_id must be an integer from 1 to {MAX_INT}"
            )
        sid = int(first)
    given.pop("school_id", None)
    try:
        StudentFeatures.model_validate(given)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = f"{error['loc'][0]}: " if error["loc"] else ""  # a field, or the whole row
        raise HTTPException(400, f"row {line}: {where}{error['msg']}") from None
    return sid, nums + [math.nan] * (len(RAW_FEATURES) - len(nums))  # RAW_FEATURES wide
