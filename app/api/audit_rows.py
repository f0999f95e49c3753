"""Audit rows of answers served from the cache, written together: a request waits for the
commit of the statement holding its row (nothing is returned before its row is recorded), and
the requests that wait meanwhile share the next statement and commit instead of one each. A row
naming a student who no longer exists is not written: its request learns it (False) and serves
nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from app.api import queries
from app.core.db import Tenant

Row = tuple[int, int | None, int | None, str, str]  # client, school, student, action, detail


class AuditRows:
    """One writer per app; rows are grouped by tenant (each statement runs under its tenant's
    row-level security, which checks every row's school)."""

    def __init__(self, fetch: Any) -> None:
        self.fetch = fetch  # Database.fetch
        self._waiting: dict[Tenant, list[tuple[Row, asyncio.Future[bool]]]] = {}
        self._writer: asyncio.Task[None] | None = None

    async def write(self, tenant: Tenant, row: Row) -> bool:
        """Returns once `row` is committed (True), or when its student no longer exists
        (False, nothing written); raises what its statement raised."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._waiting.setdefault(tenant, []).append((row, done))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return await done

    async def _write(self) -> None:
        """Writes what waits, one statement per tenant, until nothing does: the rows that
        arrive during a write go into the next one."""
        while self._waiting:
            waiting, self._waiting = self._waiting, {}
            await asyncio.gather(*(self._insert(t, rows) for t, rows in waiting.items()))

    async def _insert(
        self, tenant: Tenant, rows: Sequence[tuple[Row, asyncio.Future[bool]]]
    ) -> None:
        columns = [list(c) for c in zip(*(row for row, _ in rows), strict=True)]
        try:
            written = await self.fetch(tenant, queries.INSERT_AUDIT_ROWS, columns, write=True)
        except Exception as exc:  # every request of the statement fails as it would alone
            for _, done in rows:
                if not done.done():
                    done.set_exception(exc)
        else:
            # A student's rows are all written or none (the student exists or not).
            students = {r["student_id"] for r in written}
            for (_, _, student, _, _), done in rows:
                if not done.done():
                    done.set_result(student is None or student in students)
