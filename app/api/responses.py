"""Response bodies built by hand on the hot paths (cached JSON bytes, prediction rows)."""

from __future__ import annotations

from typing import Any

from fastapi import Response


def json_response(body: bytes, cache: str, headers: dict[str, str] | None = None) -> Response:
    return Response(
        body, media_type="application/json", headers={"X-Cache": cache, **(headers or {})}
    )


def prediction_out(risk: float, scope: str, version: str, threshold: float) -> dict[str, Any]:
    return {
        "risk": risk,
        "at_risk": risk >= threshold,
        "model_scope": scope,
        "model_version": version,
    }
