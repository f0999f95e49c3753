"""Response bodies built by hand on the hot paths (cached JSON bytes, prediction rows)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Response


def json_response(body: bytes, cache: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body, media_type="application/json", headers={"X-Cache": cache, **(headers or {})}
    )


def prediction_out(
    risk: float, scope: str, version: str, threshold: float, reasons: Sequence[Any] = ()
) -> dict[str, Any]:
    return {
        "risk": risk,
        "at_risk": risk >= threshold,
        "model_scope": scope,
        "model_version": version,
        "reasons": [r._asdict() for r in reasons],
    }


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors as the API answers them: where and what, never the refused value
    (it may be a NaN or Infinity, which JSON cannot carry, or a large part of the body)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
