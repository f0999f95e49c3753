"""Structured JSON logs: one object per line, extra fields passed with `extra={...}`.

Loggers are named after the part of the app that logs (`app.api`, `app.train`, `app.db`,
`app.importer`, ...), not after the module: the names in the logs stay the same when a module
moves, so the operators' log queries keep matching."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


ERROR_TEXT_LIMIT = 300  # characters of an error a log line carries


def error_text(exc: BaseException) -> str:
    """An error as a log line may carry it. A database error gives its class, SQLSTATE and
    primary message only: PostgreSQL's DETAIL quotes the key or the whole row that failed (a
    student's id, a name: "Failing row contains (...)"), which stays out of the logs."""
    primary = getattr(getattr(exc, "diag", None), "message_primary", None)
    if primary is not None:
        text = f"{type(exc).__name__} {getattr(exc, 'sqlstate', None)}: {primary}"
    else:
        text = repr(exc)
    return text[:ERROR_TEXT_LIMIT]


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access lines come from our own middleware, with the client and latency.
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("pgserver", "botocore", "urllib3", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
