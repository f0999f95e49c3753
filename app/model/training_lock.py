"""The training lock: one training run, publication or rollback at a time across replicas.

Its own module, light to import (no model library): a training shard with no school to fit
takes it and records itself without loading scikit-learn or LightGBM."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from app.core.db import TRAIN_LOCK_KEY, connect_as
from app.core.logins import TRAINER_LOGIN
from app.core.settings import Settings

EXIT_LOCKED = 75  # EX_TEMPFAIL: another run holds the lock; try again later


class TrainingLockedError(RuntimeError):
    pass


@contextmanager
def training_lock(
    settings: Settings, busy_message: str, *, shared: bool = False, wait_seconds: float = 0
) -> Iterator[None]:
    """One training or rollback at a time across replicas: a session-level advisory lock,
    which PostgreSQL also drops if the process dies. Released explicitly on the way out, so
    the next run never races the server noticing a closed connection. The shards of a run
    hold it shared (sharded_training.py); publishing and rolling back hold it alone. With
    ``wait_seconds``, waits that long for it (lock_timeout) instead of giving up at once."""
    mode = "_shared" if shared else ""
    with connect_as(settings, TRAINER_LOGIN, autocommit=True) as lock_conn:
        if wait_seconds:
            lock_conn.execute("SELECT set_config('lock_timeout', %s, false)",
                              (f"{int(wait_seconds * 1000)}ms",))  # fmt: skip
            try:
                lock_conn.execute(f"SELECT pg_advisory_lock{mode}(%s)", (TRAIN_LOCK_KEY,))
            except psycopg.errors.LockNotAvailable as exc:
                raise TrainingLockedError(busy_message) from exc
        else:
            row = lock_conn.execute(
                f"SELECT pg_try_advisory_lock{mode}(%s)", (TRAIN_LOCK_KEY,)
            ).fetchone()
            if not row or not row[0]:
                raise TrainingLockedError(busy_message)
        try:
            yield
        finally:
            lock_conn.execute(f"SELECT pg_advisory_unlock{mode}(%s)", (TRAIN_LOCK_KEY,))
