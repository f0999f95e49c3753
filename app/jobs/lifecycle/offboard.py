"""`python -m app offboard-district`: a district leaves. Its data is exported in the import
layout (app/jobs/importer/layout.py: what its next vendor, or this system, imports), then
destroyed: every table's rows of the district (the tables district_move.py lists, which its
test holds to the whole schema), its drop-bucket prefix with every object version, its model
store and model archives when they are its own, its API keys (rows) and cached answers, and
its entry in the district directory (tier4). Audit rows are kept or destroyed as
OFFBOARD_AUDIT_POLICY says. A signed JSON report (HMAC-SHA256 with DESTRUCTION_REPORT_KEY)
holds the counts and digests per table, the S3 prefixes and versions removed, and the export's
files and digests.

Each step is recorded in district_offboardings when done (the database step in the same
transaction as its deletions): an interrupted run, run again, resumes after the last step
done and reports every step."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from app.core.settings import Settings
from app.jobs.district_move import DERIVED_TABLES, MOVED_TABLES, SESSION, _copy_out
from app.jobs.importer.apply import REFERENCES
from app.jobs.importer.layout import ENTITIES, Entity
from app.jobs.lifecycle.purge import force_again, lift_force
from app.model.artifacts import backend_for

log = logging.getLogger("app.offboard")

STEPS = ("export", "database", "drop_bucket", "models", "cache", "directory")
SCHOOLS = "school_id IN (SELECT id FROM schools WHERE district_id = %(district)s)"


class OffboardError(RuntimeError):
    """The offboarding stopped; the steps done are recorded, a re-run resumes."""


@dataclass
class Offboarding:
    district: int
    export_to: str
    drop_prefix: str | None = None  # s3://bucket/prefix of the district's exports
    model_stores: tuple[str, ...] = ()  # the district's own model store and archives
    audit_policy: str = "keep"  # or "destroy"
    directory: Any = None  # district_move.Directory on tier4


def export_query(entity: Entity) -> sql.Composed:
    """The entity's rows of the district, as the import layout's columns (sourced ids: the
    district's own where it gave them, else the row's id)."""
    table = sql.Identifier(entity.table)
    selected: list[sql.Composable] = []
    joins: list[sql.Composable] = []
    for i, column in enumerate(entity.columns):
        if column.ref is not None:
            parent, gives = REFERENCES[column.ref]
            alias = sql.Identifier(f"r{i}")
            joins.append(
                sql.SQL("LEFT JOIN {} {} ON {}.id = t.{}").format(
                    sql.Identifier(parent), alias, alias, sql.Identifier(next(iter(gives)))
                )
            )
            selected.append(sql.SQL("coalesce({}.sourced_id, {}.id::text)").format(alias, alias))
        elif column.name == "sourced_id":
            selected.append(sql.SQL("coalesce(t.sourced_id, t.id::text)"))
        elif column.target is not None:
            selected.append(sql.SQL("t.{}").format(sql.Identifier(column.target)))
        else:
            selected.append(sql.SQL("NULL"))
    where = {
        "districts": "t.id = %(district)s",
        "district_features": "t.district_id = %(district)s",
        "schools": "t.district_id = %(district)s",
    }.get(entity.table, f"t.{SCHOOLS}")
    return sql.SQL("SELECT {} FROM {} t {} WHERE {} ORDER BY 1").format(
        sql.SQL(", ").join(selected), table, sql.SQL(" ").join(joins), sql.SQL(where)
    )


def export_district(conn: psycopg.Connection[Any], job: Offboarding) -> dict[str, Any]:
    """Every entity's CSV into `export_to`; per file its rows and sha256."""
    backend = backend_for(job.export_to)
    files: dict[str, Any] = {}
    for entity in ENTITIES:
        rows = conn.execute(export_query(entity), {"district": job.district}).fetchall()
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([c.name for c in entity.columns])
        writer.writerows(rows)
        data = buf.getvalue().encode()
        backend.write(f"{entity.name}.csv", data)
        files[f"{entity.name}.csv"] = {
            "rows": len(rows),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return {"to": job.export_to, "files": files}


def destroy_rows(conn: psycopg.Connection[Any], job: Offboarding) -> dict[str, Any]:
    """Every table's rows of the district, children first, each counted and hashed before
    (in the caller's transaction, FORCE lifted)."""
    params = {"district": job.district}
    tables = [*MOVED_TABLES, *DERIVED_TABLES]
    if job.audit_policy == "keep":
        tables = [(t, w) for t, w in tables if t != "audit_log"]
    found: dict[str, Any] = {}
    for table, where in tables:
        copy = _copy_out(conn, table, where, params, lambda _: None)
        found[table] = {"rows": copy.rows, "sha256": copy.sha256}
    schools = conn.execute(
        "SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM schools"
        " WHERE district_id = %(district)s",
        params,
    ).fetchone()
    # Children first: derived tables, then the moved ones in reverse (parents first there).
    order = [*DERIVED_TABLES, *reversed(MOVED_TABLES)]
    for table, where in order:
        if table not in found:
            continue
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(table), sql.SQL(where)),
            params,
        ).rowcount
        if deleted != found[table]["rows"]:
            raise OffboardError(f"{table}: {deleted} rows deleted, {found[table]['rows']} counted")
        found[table]["deleted"] = deleted
    return {
        "tables": found,
        "audit_log": job.audit_policy,
        "schools": list(schools[0]) if schools else [],
    }


def sign(report: dict[str, Any], key: str) -> str:
    body = json.dumps(report, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def offboard(settings: Settings, job: Offboarding, owner_url: str) -> dict[str, Any]:
    """Runs the steps not yet done (module docstring); the signed report."""
    if settings.destruction_report_key is None:
        raise OffboardError("DESTRUCTION_REPORT_KEY must be set: the report is signed")
    with psycopg.connect(owner_url) as conn:
        for statement in SESSION:
            conn.execute(statement)
        conn.commit()
        done = _started(conn, job.district)
        for step in STEPS:
            if step in done:
                continue
            with conn.transaction():
                forced = lift_force(conn, {t for t, _ in MOVED_TABLES + DERIVED_TABLES})
                result = _run_step(step, conn, settings, job)
                force_again(conn, forced)
                conn.execute(
                    "UPDATE district_offboardings SET steps = steps || %s WHERE district_id = %s",
                    (json.dumps({step: result}), job.district),
                )
            done[step] = result
            log.info("offboarding step done", extra={"district": job.district, "step": step})
        report = {"district": job.district, "finished_at": datetime.now(UTC).isoformat(), **done}
        key = settings.destruction_report_key.get_secret_value()
        signed = {"report": report, "hmac_sha256": sign(report, key)}
        with conn.transaction():
            conn.execute(
                "UPDATE district_offboardings SET finished_at = now(), report = %s"
                " WHERE district_id = %s",
                (json.dumps(signed), job.district),
            )
    return signed


def _started(conn: psycopg.Connection[Any], district: int) -> dict[str, Any]:
    with conn.transaction():
        conn.execute(
            "INSERT INTO district_offboardings (district_id) VALUES (%s)"
            " ON CONFLICT (district_id) DO NOTHING",
            (district,),
        )
        row = conn.execute(
            "SELECT steps FROM district_offboardings WHERE district_id = %s", (district,)
        ).fetchone()
    return dict(row[0]) if row else {}


def _run_step(
    step: str, conn: psycopg.Connection[Any], settings: Settings, job: Offboarding
) -> Any:
    if step == "export":
        return export_district(conn, job)
    if step == "database":
        return destroy_rows(conn, job)
    if step == "drop_bucket":
        return _destroy(job.drop_prefix)
    if step == "models":
        return {url: _destroy(url) for url in job.model_stores}
    if step == "cache":
        schools = _done_step(conn, job.district, "database").get("schools", [])
        return _drop_cache(settings, job.district, schools)
    if job.directory is None:
        return {"entry": "no directory (not a multi-region tier)"}
    job.directory.client.delete_item(
        TableName=job.directory.table, Key={"district_id": {"S": str(job.district)}}
    )
    return {"entry": "deleted", "table": job.directory.table}


def _destroy(url: str | None) -> dict[str, Any] | None:
    if url is None:
        return None
    if url.startswith("s3://") and not url[5:].partition("/")[2].strip("/"):
        raise OffboardError(f"{url}: name the district's prefix, not a whole bucket")
    objects, versions = backend_for(url).destroy("")
    return {"prefix": url, "objects": objects, "versions": versions}


def _done_step(conn: psycopg.Connection[Any], district: int, step: str) -> dict[str, Any]:
    row = conn.execute(
        "SELECT steps -> %s FROM district_offboardings WHERE district_id = %s", (step, district)
    ).fetchone()
    return dict(row[0]) if row and row[0] else {}


def _drop_cache(settings: Settings, district: int, schools: list[int]) -> dict[str, int]:
    """Every cached answer of the district's tenants (its key, its schools' keys) in Redis."""
    from app.core.cache import Cache

    cache = Cache(settings.redis_url, settings.cache_prefix)
    if cache.redis is None:
        return {"keys": 0}
    dropped = 0
    tenants = [f"d{district}", *(f"s{school}" for school in schools)]
    for pattern in (f"{settings.cache_prefix}:*:{tenant}:*" for tenant in tenants):
        keys = list(cache.redis.scan_iter(match=pattern))
        dropped += int(cache.redis.delete(*keys)) if keys else 0
    return {"keys": dropped}
