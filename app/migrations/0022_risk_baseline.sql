-- The at-risk list: its 30-day change read from the score row instead of the history, and an
-- index for its indicator filters.
--
-- The change is the risk now minus the student's risk 30 days before (the latest history
-- snapshot on or before that day, else the first one after it). Looked up per listed student,
-- it costs two probes of the monthly-partitioned history per row: cheap for a page of 100, but
-- sort=rising orders every student of the school over the floor by it (about 700 at 1,000
-- students), before the page is cut. Whoever writes a score now stores that baseline beside
-- it (risk_30_days_before, as of the day of scoring: the nightly scoring moves it on each
-- day), so the list reads it from the row it reads anyway. A row without one (scored before
-- this migration, or first scored by the event worker) falls back to the lookup.
ALTER TABLE risk_scores ADD COLUMN risk_30_days_ago real;
GRANT UPDATE (risk_30_days_ago) ON risk_scores TO ssp_trainer;

-- A student's risk 30 days before `today` by the history the caller may read (NULL: none).
CREATE FUNCTION risk_30_days_before(student bigint, today date) RETURNS real
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        (SELECT h.risk FROM risk_history h WHERE h.student_id = student AND h.day <= today - 30
         ORDER BY h.day DESC LIMIT 1),
        (SELECT h.risk FROM risk_history h WHERE h.student_id = student AND h.day > today - 30
         ORDER BY h.day LIMIT 1))
$$;

-- An indicator filter of the at-risk list reads every current indicator row of the school
-- (app/api/queries.py): one range of this index rather than a probe per student.
CREATE INDEX student_indicators_school_current_idx ON student_indicators (school_id, student_id)
    WHERE is_current;
