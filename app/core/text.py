"""Text PostgreSQL can store, checked where text comes in (an event's fields, an imported CSV
cell).

A `text` column takes neither a NUL character nor what is not UTF-8: a lone surrogate (a JSON
string may spell one as \\ud800) or bytes that do not decode. Such a value is refused alone,
naming its field, before it reaches the database, where it would fail the whole statement."""

from __future__ import annotations

NUL_PROBLEM = "contains a NUL character (U+0000), which cannot be stored"
NOT_UTF8_PROBLEM = "not UTF-8 text (an undecodable byte or a lone surrogate)"


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if "\x00" in value:
        return NUL_PROBLEM
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return NOT_UTF8_PROBLEM
    return None
