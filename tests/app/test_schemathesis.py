"""Fuzz every operation of the OpenAPI schema with every schemathesis check, positive and
negative data, as a district's key and as a school's: never a 5xx, documented responses
match their schemas, bad data is refused and good data accepted. Bounded (examples per
operation) and derandomized, so the suite stays fast and CI sees the same cases each run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.api.main import create_app
from tests.app.conftest import District
from tests.app.helpers import auth

EXAMPLES_PER_OPERATION = 12
OPERATIONS = [
    "GET /health", "GET /metrics", "GET /ping", "GET /ready",
    "GET /v1/schools/{school_id}/alerts",
    "GET /v1/schools/{school_id}/at-risk", "GET /v1/schools/{school_id}/models",
    "GET /v1/schools/{school_id}/models/{version}/report",
    "GET /v1/students/{student_id}/accesses",
    "GET /v1/students/{student_id}/interventions", "GET /v1/students/{student_id}/risk",
    "GET /v1/students/{student_id}/risk/history", "PATCH /v1/alerts/{alert_id}",
    "PATCH /v1/students/{student_id}/interventions/{intervention_id}",
    "POST /invocations", "POST /v1/events", "POST /v1/predict",
    "POST /v1/students/{student_id}/interventions",
]  # fmt: skip


WITHOUT_INPUT = {"GET /health", "GET /metrics", "GET /ping", "GET /ready"}
# Writes whose validity depends on rows and settings that no schema states: an owner who is
# active staff of the student's school, an intervention type from INTERVENTION_TYPES, an end
# date after the start as stored. A schema-valid body may rightly get a 422 naming the field.
ROW_DEPENDENT = {
    "POST /v1/students/{student_id}/interventions",
    "PATCH /v1/students/{student_id}/interventions/{intervention_id}",
    "PATCH /v1/alerts/{alert_id}",
}


def declares_district_features(body: object) -> bool:
    instances = body.get("instances") if isinstance(body, dict) else None
    return isinstance(instances, list) and any(
        isinstance(i, dict) and i.get("district_features") for i in instances
    )


@pytest.fixture
def fuzzed_app(district: District) -> Iterator[FastAPI]:
    # No rate limits: the checks send thousands of requests, valid and invalid keys alike.
    settings = district.settings_with(
        rate_limit_interactive_requests=1_000_000,
        auth_failures_per_minute=1_000_000,
        cache_prefix="fuzz",
    )
    # Schemathesis calls it through Starlette's TestClient, which runs the lifespan (and with
    # it opens the pools, on the loop that serves the requests).
    yield create_app(settings)


@pytest.mark.parametrize("key", ["district1", "school1"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_fails_a_check(
    fuzzed_app: FastAPI, district: District, key: str, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    api_key = district.keys[key]

    @schema.auth()
    class ValidKey:
        """A valid key, so requests reach the handlers instead of stopping at 401; given as
        the schema's authentication, so the auth checks know to probe without it."""

        def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
            return api_key

        def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), **auth(data)}

    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # raises on an invalid schema
        labels.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  derandomize=True, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        def fuzz(case: schemathesis.Case) -> None:
            # Every check schemathesis has. Three exceptions, where the schema cannot say what
            # is valid: a CSV body is documented as a string (not "rows of nine numbers in
            # range"), district features are documented by their name's pattern (not the
            # names this district declared), and the casework writes (ROW_DEPENDENT): such a
            # body is schema-valid and yet rightly refused with a 4xx naming the field.
            csv = case.media_type == "text/csv"
            excluded = (
                csv
                or declares_district_features(case.body)
                or case.operation.label in ROW_DEPENDENT
            )
            case.call_and_validate(excluded_checks=[positive_data_acceptance] if excluded else None)

        if mode == GenerationMode.NEGATIVE and operation.label in WITHOUT_INPUT:
            continue  # nothing to send that could be invalid
        fuzz()
    assert sorted(labels) == OPERATIONS
