"""What a key holder relies on from the key and the client cache: a key no one can guess, a
busy client that stays cached, a revoked key that stops working within a second (with Redis)
or within 30 seconds at worst, and a database asked at most once a second about revocations."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from app.core import auth as auth_module
from app.core.auth import Authenticator, Client, hash_key, key_district, key_prefix, new_key
from app.core.db import Tenant
from tests.app.helpers import PEPPER, run_async


class Keys:
    """Stands in for the API's transactions: some valid keys, every key lookup counted."""

    def __init__(self, *keys: str) -> None:
        self.rows = {
            hash_key(key, PEPPER): {
                "id": i, "name": key, "school_id": 1, "district_id": None,
                "key_class": "interactive", "key_hash": hash_key(key, PEPPER),
            }
            for i, key in enumerate(keys)
        }  # fmt: skip
        self.lookups: list[str] = []

    async def fetch(
        self, tenant: Tenant | None, query: str, params: Sequence[Any]
    ) -> list[dict[str, Any]]:
        self.lookups.append(params[0])
        row = self.rows.get(params[0])
        return [row] if row else []


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(auth_module.time, "monotonic", lambda: self.now)


def _authenticate(authenticator: Authenticator, key: str) -> Client | None:
    return run_async(authenticator.authenticate(key))


def test_a_new_key_holds_256_random_bits_after_its_public_prefix() -> None:
    key, prefix = new_key()
    label, public, secret = key.split("_", 2)
    assert (label, public) == ("ssp", prefix) and key_prefix(key) == prefix
    assert len(bytes.fromhex(prefix)) == 4
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert new_key()[0] != key
    district_key, district_prefix = new_key(district_id=42)
    assert district_prefix.startswith("42-") and key_district(district_key) == "42"


def test_a_client_used_again_is_kept_over_one_used_less_recently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth_module, "CLIENT_CACHE_SIZE", 2)
    Clock(monkeypatch)
    db = Keys("ssp_0000000a_a", "ssp_0000000b_b", "ssp_0000000c_c")
    authenticator = Authenticator(db.fetch, PEPPER)
    for key in ("ssp_0000000a_a", "ssp_0000000b_b", "ssp_0000000a_a", "ssp_0000000c_c"):
        assert _authenticate(authenticator, key) is not None
    assert len(db.lookups) == 3  # a's second request was a hit, which made b the oldest
    _authenticate(authenticator, "ssp_0000000a_a")
    assert len(db.lookups) == 3  # a was kept
    _authenticate(authenticator, "ssp_0000000b_b")
    assert len(db.lookups) == 4  # b was dropped


def _checked(authenticator: Authenticator, key: str, revocations: int | None) -> Client | None:
    """A request as the API makes it: the key, then the revocation counter when due (read in
    the request's Redis round trip), and the key again if that emptied the cache."""
    client = _authenticate(authenticator, key)
    if authenticator.revocations_due() and authenticator.revocations_read(revocations):
        client = _authenticate(authenticator, key)
    return client


def test_a_valid_client_is_cached_30_seconds_while_revocations_are_watched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    db = Keys("ssp_0000000a_a")
    authenticator = Authenticator(db.fetch, PEPPER)
    _checked(authenticator, "ssp_0000000a_a", 0)  # the counter is known from now on
    clock.now += 1.0
    _checked(authenticator, "ssp_0000000a_a", 0)
    assert len(db.lookups) == 2  # the first client was cached a second: the counter unknown
    clock.now += 29.9
    _checked(authenticator, "ssp_0000000a_a", 0)
    assert len(db.lookups) == 2
    clock.now += 0.2
    _checked(authenticator, "ssp_0000000a_a", 0)
    assert len(db.lookups) == 3


def test_without_a_revocation_counter_a_client_is_cached_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    db = Keys("ssp_0000000a_a")
    authenticator = Authenticator(db.fetch, PEPPER)
    _checked(authenticator, "ssp_0000000a_a", None)
    clock.now += 0.9
    _checked(authenticator, "ssp_0000000a_a", None)
    assert len(db.lookups) == 1
    clock.now += 0.2
    _checked(authenticator, "ssp_0000000a_a", None)
    assert len(db.lookups) == 2


def test_the_revocation_counter_is_read_once_a_second_and_a_change_empties_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    db = Keys("ssp_0000000a_a")
    authenticator = Authenticator(db.fetch, PEPPER)
    reads: list[float] = []
    counter = [0]

    def request() -> None:
        if authenticator.revocations_due():
            reads.append(clock.now)
            if authenticator.revocations_read(counter[0]):
                _authenticate(authenticator, "ssp_0000000a_a")
        _authenticate(authenticator, "ssp_0000000a_a")

    request()
    clock.now += 0.5
    request()
    assert reads == [1000.0]
    clock.now += 0.5  # a second after the first read: due again
    request()
    assert reads == [1000.0, 1001.0]
    assert len(db.lookups) == 1  # the counter did not move: the client stayed cached
    counter[0] += 1  # another replica revoked a key
    clock.now += 1.0
    request()
    assert len(db.lookups) == 2  # asked again within a second of the revocation


def test_a_counter_that_becomes_unknown_empties_the_cache_it_vouched_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock(monkeypatch)
    db = Keys("ssp_0000000a_a")
    authenticator = Authenticator(db.fetch, PEPPER)
    assert authenticator.revocations_due() and not authenticator.revocations_read(0)
    _authenticate(authenticator, "ssp_0000000a_a")  # cached 30 s on the counter's word
    clock.now += 1.0
    assert authenticator.revocations_due() and authenticator.revocations_read(None)  # Redis down
    _authenticate(authenticator, "ssp_0000000a_a")
    assert len(db.lookups) == 2


@pytest.mark.parametrize("key", ["xyz_0000000a_secret", "ssp_only-two", "", "ssp"])
def test_a_key_not_made_here_has_no_public_prefix(key: str) -> None:
    assert key_prefix(key) == ""
    assert key_district(key) is None


def test_a_bad_key_without_a_failure_limiter_is_just_refused() -> None:
    authenticator = Authenticator(Keys().fetch, PEPPER)
    assert run_async(authenticator.authenticate("ssp_0000000a_bad", ip="198.51.100.7")) is None


def test_a_client_sees_the_rows_of_its_own_school_or_district() -> None:
    assert Client(1, "school", 5, None).tenant == Tenant(school_id=5, district_id=None)
    assert Client(2, "district", None, 9).tenant == Tenant(school_id=None, district_id=9)


def test_a_cached_client_cannot_be_rescoped_by_a_request_that_holds_it() -> None:
    """The client cache hands the same object to every request with that key: changing its
    school or district there would widen what the next request sees."""
    client = Client(1, "school", 5, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        client.school_id = 6  # type: ignore[misc]


def test_a_key_made_before_keys_named_their_district_names_none_even_if_its_hex_is_digits() -> None:
    """Its prefix is 8 random hex digits, sometimes all decimal: no district to route to."""
    assert key_prefix("ssp_12345678_secret") == "12345678"
    assert key_district("ssp_12345678_secret") is None
    assert key_district("ssp_12-345678ab_secret") == "12"


def test_a_key_whose_secret_holds_underscores_keeps_its_prefix() -> None:
    """The secret is URL-safe base64, which uses `_`: only the first two split the key."""
    assert key_prefix("ssp_0000000a_se_cr_et") == "0000000a"
    assert key_district("ssp_42-0000000a_se_cr_et") == "42"
