"""Fuzz every operation of the OpenAPI schema: whatever is sent, never a 5xx, and documented
responses match their schemas. Bounded (examples per operation) so the suite stays fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.api.main import create_app
from tests.app.conftest import District
from tests.app.helpers import auth

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def fuzzed_app(district: District) -> Iterator[FastAPI]:
    app = create_app(district.settings_with(rate_limit_requests=1_000_000, cache_prefix="fuzz"))
    app.state.services.db.open()  # the ASGI transport does not run the lifespan
    yield app
    app.state.services.db.close()


def test_no_operation_returns_a_server_error(fuzzed_app: FastAPI, district: District) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    # A valid district-wide key, so requests reach the handlers instead of stopping at 401.
    headers = auth(district.keys["district1"])
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # raises on an invalid schema
        labels.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        fuzz()
    assert sorted(labels) == [
        "GET /health", "GET /metrics", "GET /ping", "GET /ready",
        "GET /v1/schools/{school_id}/at-risk", "GET /v1/schools/{school_id}/models",
        "GET /v1/schools/{school_id}/models/{version}/report",
        "GET /v1/students/{student_id}/risk", "POST /invocations", "POST /v1/predict",
    ]  # fmt: skip
