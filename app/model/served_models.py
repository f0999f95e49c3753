"""The served-model registry: which model answers for which school, loaded from the store
and kept in memory as the numpy twins that score (and explain) on the hot path, with the
schools' medians that reasons are shown beside."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from app.model.artifacts import MEDIANS_FILE, ModelStore, Pointer
from app.model.features import label, pad_raw
from app.model.risk_model import FastRiskModel, fast_model

log = logging.getLogger("app.model_registry")

DISTRICT = "district"
MAX_BACKOFF_SECONDS = 60.0  # longest wait between retries of an unreadable model store
# While no model is served (a stack's first day, before its first training) the pointer is
# re-read this often, not every `refresh_seconds`: the first model answers within a second.
NO_MODEL_RECHECK_SECONDS = 1.0


def school_scope(school_id: int) -> str:
    return f"school-{school_id}"


def scope_school_id(scope: str) -> int | None:
    return int(scope.removeprefix("school-")) if scope.startswith("school-") else None


class Prediction(NamedTuple):  # a tuple: built once per scored row, on the hot path
    risk: float
    scope: str
    version: str


class Reason(NamedTuple):
    """One of a risk's main contributions (risk_model.py), with what a counsellor compares."""

    feature: str
    label: str  # the feature in plain words
    value: float | str | None  # the student's (None: missing)
    school_median: float | str | None  # the school's students' (the most common category)
    contribution: float  # probability points, signed: positive raises the risk
    contribution_log_odds: float


class NoModelError(RuntimeError):
    """No model has been promoted yet."""


class ModelRegistry:
    """Holds the promoted models in memory and re-reads the pointer at most every
    `refresh_seconds` (every second while it serves none), so a promotion or rollback is
    picked up without a restart.

    A store that cannot be read (or a model that cannot be loaded) never takes serving down:
    the error is logged, the last good models keep answering and the next attempt waits
    longer (exponential backoff). Store I/O happens outside the lock readers take."""

    def __init__(self, store: ModelStore, refresh_seconds: float) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._refresh_lock = threading.Lock()  # one refresher at a time; readers never wait
        self._state: tuple[Pointer, dict[tuple[str, str], Any]] = (Pointer(), {})
        self._next_check = 0.0
        self._failures = 0
        self._manifests: dict[str, dict[str, Any]] = {}  # by version: written once, never changed
        self._medians: dict[str, dict[str, Any]] = {}  # by version, likewise

    def _current(self) -> tuple[Pointer, dict[tuple[str, str], Any]]:
        """The pointer and its models, refreshed when due (one consistent snapshot)."""
        now = time.monotonic()
        # Until something is loaded every request needs the first load, so they wait for it;
        # afterwards a refresh in progress is not waited for.
        if now >= self._next_check and self._refresh_lock.acquire(blocking=not self._state[1]):
            try:
                if now >= self._next_check:
                    self._refresh(now)
            finally:
                self._refresh_lock.release()
        return self._state

    def _refresh(self, now: float) -> None:
        try:
            pointer = self.store.pointer()
            models = self._models_for(pointer)
        except Exception as exc:
            self._failures += 1
            delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(self._failures, 6))
            self._next_check = now + max(self.refresh_seconds, delay)
            log.error(
                "model store unreadable; serving the last good models",
                extra={"error": repr(exc)[:300], "retry_in_seconds": delay},
            )
            return
        self._failures = 0
        if models is not None:
            self._state = (pointer, models)  # swapped together: never a new pointer, old models
        wait = self.refresh_seconds if self._state[1] else NO_MODEL_RECHECK_SECONDS
        self._next_check = now + min(self.refresh_seconds, wait)

    def _models_for(self, pointer: Pointer) -> dict[tuple[str, str], Any] | None:
        """Models of `pointer` (reusing loaded ones), or None when it must not replace the
        pointer being served: same state, or an older generation (generations only grow)."""
        current, loaded = self._state
        if pointer.generation < current.generation:
            log.error(
                "model pointer went back in generation; keeping the newer one",
                extra={"store_generation": pointer.generation, "served": current.generation},
            )
            return None
        if (
            pointer.generation == current.generation
            and pointer.scopes == current.scopes
            and (loaded or not pointer.scopes)
        ):
            return None
        models = {
            (scope, version): loaded.get((scope, version))
            or fast_model(self.store.load_model(version, scope))
            for scope, version in pointer.scopes.items()
        }
        self._load_medians(pointer)
        return models

    def _load_medians(self, pointer: Pointer) -> None:
        """The schools' medians of the pointer's newest run (read with its models, never on
        a request)."""
        if pointer.scopes and (newest := max(pointer.scopes.values())) not in self._medians:
            raw = self.store.read_file(newest, MEDIANS_FILE)
            self._medians[newest] = json.loads(raw) if raw else {}

    def medians(self, school_id: int | None) -> Mapping[str, Any]:
        """The medians of a school's students per feature (the district's for no school or a
        school the run did not see); {} before any is loaded."""
        scopes = self._state[0].scopes
        found = self._medians.get(max(scopes.values())) if scopes else None
        if not found:
            return {}
        school = found.get("schools", {}).get(str(school_id)) if school_id is not None else None
        return school if school is not None else found.get("district", {})

    def pointer(self) -> Pointer:
        return self._current()[0]

    @property
    def fresh(self) -> bool:
        """Models are loaded and no refresh is due: scoring needs no store I/O, only
        microseconds of CPU."""
        return bool(self._state[1]) and time.monotonic() < self._next_check

    def use(self, pointer: Pointer) -> None:
        """Serve exactly this pointer (used by jobs scoring a not yet published pointer).
        Errors propagate: a job must not score with missing models."""
        with self._refresh_lock:
            models = self._models_for(pointer)
            if models is not None:
                self._state = (pointer, models)
            self._next_check = float("inf")

    @property
    def generation(self) -> int:
        return self.pointer().generation

    def served_auc(self) -> dict[str, float]:
        """The held-out AUC of each served scope's model."""
        return {scope: f["auc"] for scope, f in self.served_figures().items() if "auc" in f}

    def served_figures(self) -> dict[str, dict[str, float]]:
        """The held-out figures (metrics) of each served scope's model, from its version's
        manifest (each version's manifest is read once)."""
        figures: dict[str, dict[str, float]] = {}
        for scope, version in self.pointer().scopes.items():
            if version not in self._manifests:
                self._manifests[version] = self.store.manifest(version) or {}
            found = (self._manifests[version].get("metrics") or {}).get(scope, {})
            figures[scope] = {k: float(v) for k, v in found.items() if isinstance(v, int | float)}
        return figures

    def scope_for(self, school_id: int | None, pointer: Pointer | None = None) -> tuple[str, str]:
        scopes = (pointer if pointer is not None else self.pointer()).scopes
        if school_id is not None and school_scope(school_id) in scopes:
            scope = school_scope(school_id)
        elif DISTRICT in scopes:
            scope = DISTRICT
        else:
            raise NoModelError("no model has been trained and promoted yet")
        return scope, scopes[scope]

    def model_for(self, school_id: int | None, refresh: bool = False) -> tuple[str, str, Any]:
        """The scope, version and (numpy twin of the) model that answers for a school."""
        pointer, models = self._current() if refresh else self._state
        scope, version = self.scope_for(school_id, pointer)
        model = models.get((scope, version)) or fast_model(self.store.load_model(version, scope))
        return scope, version, model

    def _groups(
        self, school_ids: Sequence[int | None], refresh: bool
    ) -> list[tuple[str, str, Any, list[int]]]:
        pointer, models = self._current() if refresh else self._state
        groups: dict[tuple[str, str], list[int]] = {}
        for i, sid in enumerate(school_ids):
            groups.setdefault(self.scope_for(sid, pointer), []).append(i)
        return [
            (scope, version, models.get((scope, version))
             or fast_model(self.store.load_model(version, scope)), idx)
            for (scope, version), idx in groups.items()
        ]  # fmt: skip

    def predict(
        self,
        school_ids: Sequence[int | None],
        x: np.ndarray,
        refresh: bool = True,
        extras: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[Prediction]:
        """Risk for each row of x (STANDARD_FEATURES, NaN missing; or the current year's
        FEATURES alone) with its district features `extras`, each with the model of its
        school (district fallback). refresh=False scores with the models in memory even when
        a refresh is due (no store I/O: for callers on the event loop)."""
        x = pad_raw(x)
        out: list[Prediction | None] = [None] * len(school_ids)
        for scope, version, model, idx in self._groups(school_ids, refresh):
            whole = len(idx) == len(out)
            rows = x if whole else x[idx]
            part = extras if extras is None or whole else [extras[i] for i in idx]
            proba = model.predict_proba(rows, part)[:, 1]
            for i, p in zip(idx, proba.tolist(), strict=True):
                out[i] = Prediction(round(p, 6), scope, version)
        return [p for p in out if p is not None]

    def explain(
        self,
        school_ids: Sequence[int | None],
        x: np.ndarray,
        extras: Sequence[Mapping[str, Any]] | None,
        top: int,
        refresh: bool = False,
    ) -> list[tuple[Prediction, list[Reason]]]:
        """predict's risks, each with its `top` reasons: the largest contributions (in
        magnitude) of its features, beside the student's value and the school's median."""
        x = pad_raw(x)
        rows_extras = extras if extras is not None else [{}] * len(school_ids)
        out: list[tuple[Prediction, list[Reason]] | None] = [None] * len(school_ids)
        for scope, version, model, idx in self._groups(school_ids, refresh):
            part = [rows_extras[i] for i in idx]
            if not isinstance(model, FastRiskModel) or top == 0:
                proba = model.predict_proba(x[idx], part)[:, 1].tolist()
                for i, p in zip(idx, proba, strict=True):
                    out[i] = (Prediction(round(p, 6), scope, version), [])
                continue
            risks, contributions = model.explain(x[idx], part, top)
            for k, i in enumerate(idx):
                median = self.medians(school_ids[i])
                values = model.spec.raw_values(
                    x[i], rows_extras[i], [c.feature for c in contributions[k]]
                )
                reasons = [
                    Reason(c.feature, label(c.feature), value, median.get(c.feature),
                           round(c.points, 4), round(c.log_odds, 4))
                    for c, value in zip(contributions[k], values, strict=True)
                ]  # fmt: skip
                out[i] = (Prediction(round(float(risks[k]), 6), scope, version), reasons)
        return [o for o in out if o is not None]
