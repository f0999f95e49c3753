"""Publishing a training run: the one place that changes which models are served.

A run's decisions (the promotion gate's) become a new pointer only after everything it names is
written: the artifacts and the manifest first, the `model_versions` rows, the scores of every
student under the new generation, the record of the generation that is to serve each model,
then the pointer itself: the single step that changes what is served, and that makes the
record true at the same moment. Rollback goes through the same steps with an earlier pointer
state. All of it holds the training lock: one run, publication or
rollback at a time across replicas (the shards of a run hold it shared).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg

from app.core.cache import Cache, scores_stamp
from app.core.db import connect_as
from app.core.logins import TRAINER_LOGIN
from app.core.settings import Settings
from app.model.artifacts import ModelStore, Pointer
from app.model.promotion import DISTRICT_MODEL, NEW, Decision
from app.model.scoring import rescore_students, score_students
from app.model.served_models import school_scope
from app.model.training_lock import training_lock

log = logging.getLogger("app.train")


def publish_decisions(
    conn: psycopg.Connection[Any],
    store: ModelStore,
    settings: Settings,
    current: Pointer,
    version: str,
    decisions: dict[str, Decision],
    fallback: list[int],
) -> tuple[Pointer, list[str], list[str]]:
    """Apply the gate's decisions to the served scopes and publish them, when they change:
    (pointer, promoted scopes, kept scopes)."""
    scopes = dict(current.scopes)
    for scope, d in decisions.items():
        if d.serves == NEW:
            scopes[scope] = version
        elif d.serves == DISTRICT_MODEL:
            scopes.pop(scope, None)
    # A school that fell back to the district model now uses the district model.
    for sid in fallback:
        scopes.pop(school_scope(sid), None)
    promoted = [scope for scope, d in decisions.items() if d.promoted]
    kept = [scope for scope, d in decisions.items() if not d.promoted]
    if scopes == current.scopes:
        # Nothing better: the same models keep serving, under the same generation (and so the
        # same cached answers), and score the night's students and features all the same.
        if current.scopes:
            record_promotions(conn, current)  # clears what a run that died before its flip left
            rescore_students(conn, store, settings, current, restamper(settings))
        return current, promoted, kept
    pointer = store.next_pointer(
        current, scopes, datetime.now(UTC).isoformat(), settings.keep_versions
    )
    publish(conn, store, settings, pointer)
    return pointer, promoted, kept


def restamper(settings: Settings) -> Callable[[set[int]], None]:
    """What tells the API that schools were rescored in place: their scores' stamps in Redis
    (core/cache.py), so their cached at-risk pages are read again."""
    cache = Cache(settings.redis_url, settings.cache_prefix)

    def restamp(schools: set[int]) -> None:
        if not cache.restamp(scores_stamp(s) for s in schools) and cache.redis is not None:
            log.warning("rescored schools not restamped", extra={"schools": len(schools)})

    return restamp


def publish(
    conn: psycopg.Connection[Any], store: ModelStore, settings: Settings, pointer: Pointer
) -> None:
    """Score every active student under the new pointer, record it, then flip it (the last
    step, which makes the record true)."""
    # Checked before scoring too: scoring replaces risk_scores of generations >= this one.
    store.check_newer(pointer)
    score_students(conn, store, settings, pointer)
    record_promotions(conn, pointer)
    store.write_pointer(pointer)


def record_promotions(conn: psycopg.Connection[Any], pointer: Pointer) -> None:
    """Record, before `pointer` is written, the generation from which it serves each of its
    (scope, version) pairs. A model is promoted when that generation is at most the store's
    (migration 0014): the store and the database cannot change in one transaction, so the
    record is written ahead and the flip makes it true, and a process killed on either side
    of the flip leaves them agreeing. Records above the pointer's generation that it does not
    serve (a publication that died before its flip) are cleared. Committed when it returns."""
    scopes, versions = list(pointer.scopes), list(pointer.scopes.values())
    with conn.transaction():
        conn.execute(
            "UPDATE model_versions SET promoted_generation = NULL"
            " WHERE promoted_generation >= %s AND (scope, version) NOT IN"
            " (SELECT * FROM unnest(%s::text[], %s::text[]))",
            (pointer.generation, scopes, versions),
        )
        conn.execute(
            "UPDATE model_versions m SET promoted_generation = %s"
            " FROM unnest(%s::text[], %s::text[]) AS p(scope, version)"
            " WHERE m.scope = p.scope AND m.version = p.version"
            " AND (m.promoted_generation IS NULL OR m.promoted_generation > %s)",
            (pointer.generation, scopes, versions, pointer.generation),
        )
    if not conn.autocommit:
        conn.commit()  # durable before the flip, whatever transaction the caller had open


def rollback(settings: Settings, to_version: str | None = None) -> Pointer:
    """Serve the previous pointer state again (or every scope of `to_version`)."""
    store = ModelStore(settings.model_store_url)
    with training_lock(settings, "a training run is in progress; roll back after it ends"):
        # Read under the lock: a pointer read before it could predate a promotion that
        # finished meanwhile, and rolling back from it would erase that promotion.
        current = store.pointer()
        if to_version is not None:
            manifest = store.manifest(to_version)
            if manifest is None:
                raise ValueError(f"version {to_version} is not in the store")
            scopes = dict(current.scopes)
            scopes.update({scope: to_version for scope in manifest["metrics"]})
        elif current.history:
            scopes = dict(current.history[0]["scopes"])
        else:
            raise ValueError("nothing to roll back to: the pointer has no history")
        pointer = store.next_pointer(
            current, scopes, datetime.now(UTC).isoformat(), settings.keep_versions
        )
        if to_version is None:
            # Rolling back consumes the history entry instead of stacking on it.
            pointer.history = current.history[1:]
        with connect_as(settings, TRAINER_LOGIN) as conn:
            publish(conn, store, settings, pointer)
    log.info("rolled back", extra={"generation": pointer.generation, "scopes": len(scopes)})
    return pointer
