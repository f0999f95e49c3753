"""CSV bodies of POST /invocations: one row per student, the features in order, optionally
preceded by school_id; every value checked as the JSON body's are.

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
from app.model.features import FEATURES, StudentFeatures

HEADERS = (FEATURES, ("school_id", *FEATURES))


def parse_csv(body: bytes) -> tuple[list[int | None], np.ndarray]:
    """CSV rows of len(FEATURES) numbers, or school_id followed by them. A first line that
    names the columns (FEATURES, optionally after school_id) is a header and skipped."""
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
    """One data row (`line`: its line in the body, counted from 1): its school and its features."""
    n = len(FEATURES)
    if len(cells) not in (n, n + 1):
        raise HTTPException(
            400, f"row {line}: expected {n} columns ({', '.join(FEATURES)}), got {len(cells)}"
        )
    names = FEATURES if len(cells) == n else ("school_id", *FEATURES)
    nums = []
    for name, cell in zip(names, cells, strict=True):
        try:
            nums.append(float(cell))
        except ValueError:
            raise HTTPException(400, f"row {line}: {name}: {cell[:40]!r} is not a number") from None
    sid: int | None = None
    if len(nums) == n + 1:
        # float() accepts nan, inf and 1e400 (inf); int() would raise on those (a 500)
        # and silently truncate 5.7 to school 5.
        first = nums.pop(0)
        if not (math.isfinite(first) and first.is_integer() and 1 <= first <= MAX_INT):
            raise HTTPException(
                400, f"row {line}: school_id must be an integer from 1 to {MAX_INT}"
            )
        sid = int(first)
    try:
        StudentFeatures.model_validate(dict(zip(FEATURES, nums, strict=True)))
    except ValidationError as exc:
        field = exc.errors()[0]["loc"][0]
        raise HTTPException(400, f"row {line}: {field}: {exc.errors()[0]['msg']}") from None
    return sid, nums
