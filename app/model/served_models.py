"""The served-model registry: which model answers for which school, loaded from the store
and kept in memory; the numpy twin of the trained model that scores on the hot path."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, NamedTuple

import numpy as np

from app.model.artifacts import ModelStore, Pointer

log = logging.getLogger("app.model_registry")

DISTRICT = "district"
MAX_BACKOFF_SECONDS = 60.0  # longest wait between retries of an unreadable model store


def school_scope(school_id: int) -> str:
    return f"school-{school_id}"


def scope_school_id(scope: str) -> int | None:
    return int(scope.removeprefix("school-")) if scope.startswith("school-") else None


class Prediction(NamedTuple):  # a tuple: built once per scored row, on the hot path
    risk: float
    scope: str
    version: str


class NoModelError(RuntimeError):
    """No model has been promoted yet."""


class FastCalibratedLogit:
    """The same probabilities as a trained CalibratedClassifierCV(Pipeline(StandardScaler,
    LogisticRegression), method="sigmoid"), computed with a few numpy operations. sklearn's
    per-call input validation costs milliseconds for a one-row request; this costs about ten
    microseconds (BENCHMARKS.md)."""

    def __init__(self, model: Any) -> None:
        weights, offsets = [], []
        for fold in model.calibrated_classifiers_:
            scaler = fold.estimator.named_steps["scale"]
            clf = fold.estimator.named_steps["clf"]
            (calibrator,) = fold.calibrators
            # Fold the scaler into the linear model: w.(x - m)/s + c = (w/s).x + (c - w.m/s),
            # then the sigmoid calibration a.d + b into both, so each fold is one dot product.
            coef = clf.coef_[0] / scaler.scale_
            intercept = clf.intercept_[0] - float(np.dot(coef, scaler.mean_))
            weights.append(calibrator.a_ * coef)
            offsets.append(calibrator.a_ * intercept + calibrator.b_)
        # (features, folds): one row of input times this gives every fold's decision at once.
        self.weights = np.ascontiguousarray(np.array(weights, dtype=np.float64).T)
        self.offsets = np.array(offsets, dtype=np.float64)
        self.fold_mean = np.full(len(offsets), 1.0 / len(offsets))  # mean as a dot product

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        # Each fold's calibrated probability is 1 / (1 + exp(a.d + b)); the model is their mean.
        z = x @ self.weights
        z += self.offsets
        np.exp(z, out=z)
        z += 1.0
        np.reciprocal(z, out=z)
        p = z @ self.fold_mean
        out = np.empty((len(p), 2))
        out[:, 1] = p
        out[:, 0] = 1.0 - p
        return out


def fast_model(model: Any) -> Any:
    """The numpy twin of `model` when it has the trained shape, else `model` itself."""
    try:
        return FastCalibratedLogit(model)
    except (AttributeError, KeyError, ValueError, TypeError):
        return model


class ModelRegistry:
    """Holds the promoted models in memory and re-reads the pointer at most every
    `refresh_seconds`, so a promotion or rollback is picked up without a restart.

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
        self._next_check = now + self.refresh_seconds
        if models is not None:
            self._state = (pointer, models)  # swapped together: never a new pointer, old models

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
        return {
            (scope, version): loaded.get((scope, version))
            or fast_model(self.store.load_model(version, scope))
            for scope, version in pointer.scopes.items()
        }

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
        """The held-out AUC of each served scope's model, from its version's manifest (each
        version's manifest is read once)."""
        auc: dict[str, float] = {}
        for scope, version in self.pointer().scopes.items():
            if version not in self._manifests:
                self._manifests[version] = self.store.manifest(version) or {}
            value = (self._manifests[version].get("metrics") or {}).get(scope, {}).get("auc")
            if isinstance(value, int | float):
                auc[scope] = float(value)
        return auc

    def scope_for(self, school_id: int | None, pointer: Pointer | None = None) -> tuple[str, str]:
        scopes = (pointer if pointer is not None else self.pointer()).scopes
        if school_id is not None and school_scope(school_id) in scopes:
            scope = school_scope(school_id)
        elif DISTRICT in scopes:
            scope = DISTRICT
        else:
            raise NoModelError("no model has been trained and promoted yet")
        return scope, scopes[scope]

    def predict(
        self, school_ids: list[int | None], x: np.ndarray, refresh: bool = True
    ) -> list[Prediction]:
        """Risk for each row of x, each with the model of its school (district fallback).
        refresh=False scores with the models in memory even when a refresh is due (no store
        I/O: for callers on the event loop)."""
        out: list[Prediction | None] = [None] * len(school_ids)
        groups: dict[tuple[str, str], list[int]] = {}
        pointer, models = self._current() if refresh else self._state
        for i, sid in enumerate(school_ids):
            groups.setdefault(self.scope_for(sid, pointer), []).append(i)
        for (scope, version), idx in groups.items():
            model = models.get((scope, version)) or fast_model(
                self.store.load_model(version, scope)
            )
            rows = x if len(idx) == len(out) else x[idx]
            proba = model.predict_proba(rows)[:, 1]
            for i, p in zip(idx, proba.tolist(), strict=True):
                out[i] = Prediction(round(p, 6), scope, version)
        return [p for p in out if p is not None]
