"""Score generations: a replica keeps answering from the generation it serves, however many
promotions happen before its next refresh of the pointer."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.api.main import create_app
from app.model.training import run_training
from tests.app.conftest import District
from tests.app.helpers import auth, scalar


def generations(d: District) -> list[int]:
    return list(
        scalar(d.url, "SELECT coalesce(array_agg(DISTINCT generation ORDER BY generation), '{}')"
               " FROM risk_scores")
    )  # fmt: skip


def test_two_promotions_within_a_refresh_leave_the_served_scores(
    fresh_district: District,
) -> None:
    # A replica that refreshes its pointer rarely: it keeps serving the generation it loaded.
    settings = fresh_district.settings_with(model_refresh_seconds=3600)
    key = auth(fresh_district.keys["school1"])
    with TestClient(create_app(settings)) as api:
        before = api.get("/v1/schools/1/at-risk", params={"min_risk": 0}, headers=key).json()
        assert before["items"]
        served = before["generation"]
        run_training(fresh_district.trainer)
        run_training(fresh_district.trainer)
        assert generations(fresh_district) == [served, served + 1, served + 2]
        # A cursor-less page with another limit: a cache miss, read from risk_scores.
        after = api.get(
            "/v1/schools/1/at-risk", params={"min_risk": 0, "limit": 7}, headers=key
        ).json()
        assert after["generation"] == served
        assert [i["student_id"] for i in after["items"]] == [
            i["student_id"] for i in before["items"][:7]
        ]


def test_generations_retired_past_the_retention_are_deleted(fresh_district: District) -> None:
    trainer = fresh_district.trainer_with(score_retention_seconds=0)
    first = generations(fresh_district)[-1]
    run_training(trainer)
    run_training(trainer)
    run_training(trainer)
    # The one being served and the one it replaced (a replica may still be on it); not older.
    assert generations(fresh_district) == [first + 2, first + 3]
