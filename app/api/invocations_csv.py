"""CSV bodies of POST /invocations: one row per student, the features in order, optionally
preceded by school_id; every value checked as the JSON body's are."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
from fastapi import HTTPException
from pydantic import ValidationError

from app.api.schemas import MAX_INT, MAX_INVOCATION_ROWS
from app.features import FEATURES, StudentFeatures


def parse_csv(body: bytes) -> tuple[list[int | None], np.ndarray]:
    """CSV rows of len(FEATURES) numbers, or school_id followed by them. A header is skipped."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "CSV body must be UTF-8") from None
    # newline="": the csv module itself reads \r, \n and \r\n as row ends (a lone \r in an
    # unquoted field is otherwise its error); a malformed body is the client's error.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [r for r in reader if r and any(c.strip() for c in r)]
    except csv.Error as err:
        raise HTTPException(400, f"CSV body, line {reader.line_num}: {err}") from None
    if rows and rows[0] and not _is_number(rows[0][0]):
        rows = rows[1:]
    if not rows:
        raise HTTPException(400, "CSV body has no rows")
    if len(rows) > MAX_INVOCATION_ROWS:
        raise HTTPException(400, f"at most {MAX_INVOCATION_ROWS} rows per request")
    schools: list[int | None] = []
    values: list[list[float]] = []
    n = len(FEATURES)
    for line, row in enumerate(rows, 1):
        if len(row) not in (n, n + 1):
            raise HTTPException(
                400, f"row {line}: expected {n} columns ({', '.join(FEATURES)}), got {len(row)}"
            )
        try:
            nums = [float(c) for c in row]
        except ValueError:
            raise HTTPException(400, f"row {line}: every column must be a number") from None
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
            StudentFeatures(**dict(zip(FEATURES, nums, strict=True)))
        except ValidationError as exc:
            field = exc.errors()[0]["loc"][0]
            raise HTTPException(400, f"row {line}: {field}: {exc.errors()[0]['msg']}") from None
        schools.append(sid)
        values.append(nums)
    return schools, np.array(values, dtype=np.float64)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
