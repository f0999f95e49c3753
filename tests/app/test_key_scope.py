"""A key's scope as `create-key` and `revoke-key` set it: one school or one district, the
district named in the key (a school key names its school's), and a revocation that deactivates
exactly the key it names."""

from __future__ import annotations

import pytest

from app.core.auth import create_key, key_district, key_prefix, list_keys, revoke_key
from app.core.db import connect_owner
from tests.app.conftest import District
from tests.app.helpers import PEPPER


@pytest.mark.parametrize("scope", [{}, {"school_id": 1, "district_id": 1}])
def test_a_key_is_scoped_to_exactly_one_school_or_district(
    untrained_district: District, scope: dict[str, int]
) -> None:
    with (
        connect_owner(untrained_district.owner) as conn,
        pytest.raises(ValueError, match="exactly one of school_id or district_id"),
    ):
        create_key(conn, PEPPER, "unscoped", **scope)  # type: ignore[arg-type]


def test_a_key_names_its_district_and_a_school_key_its_schools(
    untrained_district: District,
) -> None:
    with connect_owner(untrained_district.owner) as conn:
        school_id, school_key = create_key(conn, PEPPER, "school 5", school_id=5)
        district_id, district_key = create_key(conn, PEPPER, "district 1", district_id=1)
        listed = {row["id"]: row for row in list_keys(conn)}
    assert key_district(school_key) == "2"  # school 5 is district 2's
    assert key_district(district_key) == "1"
    assert (listed[school_id]["school_id"], listed[school_id]["district_id"]) == (5, None)
    assert (listed[district_id]["school_id"], listed[district_id]["district_id"]) == (None, 1)


def test_a_revocation_deactivates_the_key_it_names_once(untrained_district: District) -> None:
    with connect_owner(untrained_district.owner) as conn:
        kept_id, _ = create_key(conn, PEPPER, "kept", school_id=1)
        by_id, _ = create_key(conn, PEPPER, "revoked by id", school_id=1)
        by_prefix, key = create_key(conn, PEPPER, "revoked by prefix", school_id=1)
        assert [r["id"] for r in revoke_key(conn, client_id=by_id)] == [by_id]
        revoked = revoke_key(conn, prefix=key_prefix(key))
        assert revoked == [
            {"id": by_prefix, "name": "revoked by prefix", "key_prefix": key_prefix(key)}
        ]
        assert revoke_key(conn, client_id=by_id) == []  # already inactive
        active = {row["id"]: row["is_active"] for row in list_keys(conn)}
        for both_or_neither in ({}, {"client_id": kept_id, "prefix": key_prefix(key)}):
            with pytest.raises(ValueError, match="exactly one of its id or its prefix"):
                revoke_key(conn, **both_or_neither)  # type: ignore[arg-type]
    assert (active[kept_id], active[by_id], active[by_prefix]) == (True, False, False)
