"""What a log line says of an error: never the row values PostgreSQL quotes in its DETAIL."""

from __future__ import annotations

import psycopg
import pytest

from app.core.logs import ERROR_TEXT_LIMIT, error_text
from tests.app.conftest import District

STUDENT = "Ada Lovelace-4711"


def failed(url: str, statement: str) -> psycopg.Error:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TEMP TABLE pupils (id int PRIMARY KEY, name text CHECK (length(name) < 5))"
        )
        conn.execute("INSERT INTO pupils VALUES (4711, 'Ada')")
        with pytest.raises(psycopg.Error) as raised:
            conn.execute(statement)
    return raised.value


@pytest.mark.parametrize(
    ("statement", "kind", "said"),
    [
        (  # DETAIL: Key (id)=(4711) already exists.
            "INSERT INTO pupils VALUES (4711, 'Bob')",
            "UniqueViolation 23505",
            'duplicate key value violates unique constraint "pupils_pkey"',
        ),
        (  # DETAIL: Failing row contains (4712, Ada Lovelace-4711).
            f"INSERT INTO pupils VALUES (4712, '{STUDENT}')",
            "CheckViolation 23514",
            'new row for relation "pupils" violates check constraint "pupils_name_check"',
        ),
    ],
)
def test_a_database_error_is_logged_without_its_detail(
    district: District, statement: str, kind: str, said: str
) -> None:
    exc = failed(district.url, statement)
    assert "DETAIL" in str(exc)  # what str(exc), once logged, carried
    assert error_text(exc) == f"{kind}: {said}"
    assert "4711" not in error_text(exc) and STUDENT not in error_text(exc)


def test_another_error_is_its_repr_cut_to_the_limit() -> None:
    assert error_text(OSError("S3 is down")) == "OSError('S3 is down')"
    assert len(error_text(RuntimeError("x" * 1000))) == ERROR_TEXT_LIMIT
