"""Tier 4: a request for a district homed in another region gets a 307 to that region's API
host, decided from the district directory (moto's DynamoDB in-process) before the key is
checked or an audit row written; the directory's answers are cached, and an outage of it
serves the districts already known."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api.main import create_app
from app.api.region import DirectoryUnavailableError, DistrictDirectory
from app.core import db
from app.core.auth import create_key, key_district
from app.core.settings import Settings
from tests.app.conftest import District
from tests.app.helpers import PEPPER, auth, district_directory, scalar

TABLE = "ssp-district-directory"
HERE, THERE = "us-east-1", "us-west-2"
HOSTS = {HERE: "api.us-east-1.example.org", THERE: "api.us-west-2.example.org"}


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The directory as the global stack makes it: district 1 homed here, district 2 there."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    homes = {"1": {"home_region": HERE}, "2": {"home_region": THERE}}
    with district_directory(TABLE, HERE, homes) as client:
        yield client


def regional(district: District, **changes: object) -> Settings:
    given: dict[str, object] = {
        "district_directory_table": TABLE,
        "home_region": HERE,
        "region_api_hosts": HOSTS,
        "cache_prefix": "region",
    }
    return district.settings_with(**{**given, **changes})


def audit_rows(district: District) -> int:
    return int(scalar(district.url, "SELECT count(*) FROM audit_log"))


def test_a_district_homed_elsewhere_is_redirected_before_its_key_is_checked(
    district: District, dynamodb: Any
) -> None:
    with TestClient(create_app(regional(district))) as api:
        before = audit_rows(district)
        moved = api.get(
            "/v1/schools/5/at-risk?limit=5&min_risk=0.2",
            headers=auth(district.keys["district2"]),
            follow_redirects=False,
        )
        assert moved.status_code == 307
        assert moved.headers["location"] == (
            "https://api.us-west-2.example.org/v1/schools/5/at-risk?limit=5&min_risk=0.2"
        )
        assert moved.headers["cache-control"] == "no-store"
        assert moved.json() == {"detail": "district 2 is served in us-west-2"}
        # A key this region's database has never seen, naming district 2: redirected, not
        # refused here (its home region checks it).
        foreign = "ssp_2-0a1b2c3d_" + "x" * 43
        body = {"features": {"grade": 9}}
        post = api.post("/v1/predict", json=body, headers=auth(foreign), follow_redirects=False)
        assert post.status_code == 307  # the client sends the same method and body again
        assert post.headers["location"] == "https://api.us-west-2.example.org/v1/predict"
        assert audit_rows(district) == before  # nothing audited here
        # District 1 is homed here: served and audited as before.
        local = api.get("/v1/students/1/risk", headers=auth(district.keys["school1"]))
        assert local.status_code == 200
        assert audit_rows(district) == before + 1
        # Probes are never redirected.
        assert api.get("/health", headers=auth(district.keys["district2"])).status_code == 200


def test_unknown_districts_and_old_keys_are_served_here(district: District, dynamodb: Any) -> None:
    with db.connect_owner(district.owner) as conn:
        _, key = create_key(conn, PEPPER, "district 1 before tier 4", district_id=1)
    old_style = key.replace("ssp_1-", "ssp_", 1)  # keys made before keys named their district
    assert key_district(key) == "1" and key_district(old_style) is None
    dynamodb.delete_item(TableName=TABLE, Key={"district_id": {"S": "1"}})
    with TestClient(create_app(regional(district))) as api:
        # Not in the directory: no other region claims it, so this one decides.
        for key_sent, status in ((key, 200), ("ssp_9-0a1b2c3d_bad", 401), ("not-a-key", 401)):
            assert api.get("/v1/schools/1/models", headers=auth(key_sent)).status_code == status


def test_keys_name_their_district(district: District) -> None:
    assert key_district(district.keys["school1"]) == "1"  # a school's key: its district
    assert key_district(district.keys["district2"]) == "2"
    with db.connect_owner(district.owner) as conn:
        _, key = create_key(conn, PEPPER, "school 5", school_id=5)
    assert key_district(key) == "2"
    for key in ("", "ssp_", "ssp_abc-0a1b_x", "xyz_1-0a1b_x", "ssp_-0a1b_x", "ssp_\u00b2-0a1b_x"):
        assert key_district(key) is None, key


class CountingClient:
    """The directory's DynamoDB client, counting GetItems; `down` makes each one fail."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0
        self.down = False

    def get_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.down:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
        return self.client.get_item(**kwargs)


def test_answers_are_cached_for_the_ttl_negative_ones_too(dynamodb: Any) -> None:
    now = [1000.0]
    counting = CountingClient(dynamodb)
    directory = DistrictDirectory(TABLE, HERE, ttl=60, client=counting, clock=lambda: now[0])
    assert [directory.home_region(d) for d in ("1", "2", "3")] == [HERE, THERE, None]
    assert [directory.home_region(d) for d in ("1", "2", "3")] == [HERE, THERE, None]
    assert counting.calls == 3  # the second round came from the cache
    dynamodb.put_item(
        TableName=TABLE, Item={"district_id": {"S": "3"}, "home_region": {"S": THERE}}
    )
    assert directory.home_region("3") is None  # still cached
    now[0] += 61
    assert directory.home_region("3") == THERE  # a new district is seen after the TTL
    assert counting.calls == 4


def test_a_directory_outage_serves_known_districts_and_refuses_unknown_ones(
    district: District, dynamodb: Any
) -> None:
    now = [1000.0]
    counting = CountingClient(dynamodb)
    directory = DistrictDirectory(TABLE, HERE, ttl=60, client=counting, clock=lambda: now[0])
    assert directory.home_region("2") == THERE
    counting.down = True
    now[0] += 61
    assert directory.home_region("2") == THERE  # the last answer, past its TTL
    assert directory.home_region("2") == THERE  # and not asked again at once
    assert counting.calls == 2  # the first answer and the one failed lookup
    now[0] += 6
    assert directory.home_region("2") == THERE
    assert counting.calls == 3  # retried after RETRY_SECONDS
    with pytest.raises(DirectoryUnavailableError):
        directory.home_region("1")

    # Through the API: the directory's table is gone, nothing is known yet.
    dynamodb.delete_table(TableName=TABLE)
    with TestClient(create_app(regional(district))) as api:
        refused = api.get("/v1/students/1/risk", headers=auth(district.keys["school1"]))
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(district.settings.db_retry_after_seconds)
        assert refused.json() == {"detail": "district directory unavailable, retry later"}
        assert api.get("/ready").status_code == 200  # the pod stays in service


def test_a_region_without_a_host_is_a_503_not_a_redirect_to_nowhere(
    district: District, dynamodb: Any
) -> None:
    settings = regional(district, region_api_hosts={HERE: HOSTS[HERE]})
    with TestClient(create_app(settings)) as api:
        answer = api.get("/v1/schools/5/models", headers=auth(district.keys["district2"]))
        assert answer.status_code == 503
        assert answer.json() == {
            "detail": "district 2 is served in us-west-2, which has no API host here"
        }


def test_settings_name_the_bad_value() -> None:
    with pytest.raises(ValidationError, match="HOME_REGION must name"):
        Settings(district_directory_table=TABLE)
    with pytest.raises(ValidationError, match="HOME_REGION must name"):
        Settings(district_directory_table=TABLE, home_region="east")
    with pytest.raises(ValidationError, match=r"REGION_API_HOSTS\['us-west-2'\]"):
        Settings(region_api_hosts={"us-west-2": "https://api.example.org/v1"})
    with pytest.raises(ValidationError, match="'west' is not an AWS region name"):
        Settings(region_api_hosts={"west": "api.example.org"})
    ok = Settings(district_directory_table=TABLE, home_region=HERE, region_api_hosts=HOSTS)
    assert ok.region_api_hosts == HOSTS
