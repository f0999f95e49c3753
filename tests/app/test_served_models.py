"""When the model registry reads the store's pointer: its refresh interval once it serves a
model, every second before the first one (a stack's first day)."""

from __future__ import annotations

from typing import Any

import pytest

from app.model import served_models
from app.model.artifacts import Pointer
from app.model.served_models import NO_MODEL_RECHECK_SECONDS, ModelRegistry

REFRESH = 30.0


class Store:
    """A model store whose pointer the test sets, counting its reads."""

    def __init__(self) -> None:
        self.current, self.reads = Pointer(), 0

    def pointer(self) -> Pointer:
        self.reads += 1
        return self.current

    def load_model(self, version: str, scope: str) -> Any:
        return object()

    def read_file(self, version: str, name: str) -> bytes | None:
        return None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(served_models.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(served_models, "fast_model", lambda model: model)
    return now


def test_before_the_first_model_the_pointer_is_read_every_second(clock: list[float]) -> None:
    store = Store()
    registry = ModelRegistry(store, REFRESH)  # type: ignore[arg-type]
    assert registry.generation == 0 and store.reads == 1
    clock[0] += NO_MODEL_RECHECK_SECONDS / 2
    assert registry.generation == 0 and store.reads == 1  # not on every request
    store.current = Pointer(generation=1, scopes={"district": "v1"})  # the first training
    clock[0] += NO_MODEL_RECHECK_SECONDS / 2
    assert registry.generation == 1 and store.reads == 2  # a second later, not 30


def test_once_a_model_is_served_the_pointer_is_read_every_refresh_interval(
    clock: list[float],
) -> None:
    store = Store()
    store.current = Pointer(generation=1, scopes={"district": "v1"})
    registry = ModelRegistry(store, REFRESH)  # type: ignore[arg-type]
    assert registry.generation == 1 and store.reads == 1
    store.current = Pointer(generation=2, scopes={"district": "v2"})
    clock[0] += REFRESH - 1
    assert registry.generation == 1 and store.reads == 1
    clock[0] += 1
    assert registry.generation == 2 and store.reads == 2


def test_a_refresh_interval_below_a_second_is_kept_before_the_first_model(
    clock: list[float],
) -> None:
    store = Store()
    registry = ModelRegistry(store, 0)  # type: ignore[arg-type]
    assert registry.generation == 0
    assert registry.generation == 0 and store.reads == 2  # every request, as configured
