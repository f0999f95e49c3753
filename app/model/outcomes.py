"""Risk before and after interventions, by type, for the run's report: descriptive figures
only. Students are not assigned to interventions at random (the riskiest get them), and a
risk that falls after one may have fallen anyway (regression to the mean, other support), so
nothing here is an intervention's effect.

A student's risk on a day is that of their latest risk-history snapshot on or before it (the
history holds a row only for the days the risk changed): before = on the intervention's start,
after = on its end (today while it is not ended)."""

from __future__ import annotations

from typing import Any

import psycopg

OUTCOMES = """
WITH v AS (
    SELECT v.type, v.status,
           (SELECT h.risk FROM risk_history h WHERE h.student_id = v.student_id
              AND h.day <= v.started_on ORDER BY h.day DESC LIMIT 1) AS before,
           (SELECT h.risk FROM risk_history h WHERE h.student_id = v.student_id
              AND h.day <= coalesce(v.ended_on, (now() AT TIME ZONE 'UTC')::date)
            ORDER BY h.day DESC LIMIT 1) AS after
    FROM interventions v
    WHERE v.type IS NOT NULL AND v.started_on IS NOT NULL
)
SELECT type, count(*) AS cases, count(*) FILTER (WHERE status = 'closed') AS closed,
       avg(before)::double precision AS mean_before, avg(after)::double precision AS mean_after,
       avg(after - before)::double precision AS mean_change,
       (avg((after < before)::int))::double precision AS share_lower
FROM v WHERE before IS NOT NULL AND after IS NOT NULL
GROUP BY type ORDER BY type
"""


def intervention_outcomes(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Per intervention type: cases with a risk before and after, how many are closed, the
    mean risk before and after, the mean change and the share whose risk is lower after."""
    cur = conn.execute(OUTCOMES)
    names = [c.name for c in cur.description or []]
    return [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in zip(names, row, strict=True)}
        for row in cur.fetchall()
    ]
