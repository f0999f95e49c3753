-- The ABC indicators' figures (attendance, behaviour, course performance) per student and
-- school year: the student's current school year (the latest with any record, as in
-- student_features) and the one before. Only counts and averages are stored; the cut points
-- that turn them into flags are settings (app/core/indicators.py), so a district changes them
-- without a migration.
--
--   enrolled_days        days with an attendance record that year
--   absent_days          of those, absent or excused (chronic absence counts both)
--   subject_marks        {"<subject, lower case>": mean mark in percent} of that year's exams
--   incidents            behaviour incidents that year
--   incident_categories  {"<category, lower case>": count}
--
-- Refreshed with the features (refresh_student_features(), the trainer's nightly step) and
-- owned by ssp_features_owner like them. The API reads it through the filtered view below.
GRANT SELECT ON students, attendance, marks, exams, behaviour_incidents TO ssp_features_owner;

CREATE MATERIALIZED VIEW student_indicators AS
WITH cal AS (
    SELECT start_month FROM school_calendar
), a AS (
    SELECT t.student_id, school_year(t.date, cal.start_month) AS sy,
           count(*)::integer AS enrolled_days,
           (count(*) FILTER (WHERE t.status IN ('absent', 'excused')))::integer AS absent_days
    FROM attendance t CROSS JOIN cal GROUP BY 1, 2
), ms AS (
    SELECT mk.student_id, school_year(e.held_on, cal.start_month) AS sy,
           lower(e.subject) AS subject,
           round(avg(mk.marks_obtained * 100.0 / e.max_marks), 2) AS mark
    FROM marks mk JOIN exams e ON e.id = mk.exam_id CROSS JOIN cal GROUP BY 1, 2, 3
), m AS (
    SELECT student_id, sy, jsonb_object_agg(subject, mark) AS subject_marks
    FROM ms GROUP BY 1, 2
), bc AS (
    SELECT i.student_id,
           school_year((i.occurred_at AT TIME ZONE 'UTC')::date, cal.start_month) AS sy,
           lower(i.category) AS category, count(*)::integer AS n
    FROM behaviour_incidents i CROSS JOIN cal GROUP BY 1, 2, 3
), b AS (
    SELECT student_id, sy, sum(n)::integer AS incidents,
           jsonb_object_agg(category, n) AS incident_categories
    FROM bc GROUP BY 1, 2
), years AS (
    SELECT student_id, sy FROM a UNION SELECT student_id, sy FROM m
    UNION SELECT student_id, sy FROM b
), latest AS (
    SELECT student_id, max(sy) AS sy FROM years GROUP BY student_id
)
SELECT y.student_id, s.school_id, y.sy AS school_year, y.sy = l.sy AS is_current,
       coalesce(a.enrolled_days, 0) AS enrolled_days,
       coalesce(a.absent_days, 0) AS absent_days,
       coalesce(m.subject_marks, '{}'::jsonb) AS subject_marks,
       coalesce(b.incidents, 0) AS incidents,
       coalesce(b.incident_categories, '{}'::jsonb) AS incident_categories
FROM years y
JOIN latest l ON l.student_id = y.student_id AND y.sy >= l.sy - 1
JOIN students s ON s.id = y.student_id
LEFT JOIN a ON a.student_id = y.student_id AND a.sy = y.sy
LEFT JOIN m ON m.student_id = y.student_id AND m.sy = y.sy
LEFT JOIN b ON b.student_id = y.student_id AND b.sy = y.sy;

CREATE UNIQUE INDEX student_indicators_pk ON student_indicators (student_id, school_year);
-- The at-risk list joins each page's students to their current year.
CREATE UNIQUE INDEX student_indicators_current_idx ON student_indicators (student_id)
    WHERE is_current;

GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER MATERIALIZED VIEW student_indicators OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;
-- The trainer and the worker copy a student's current figures into the risk history.
GRANT SELECT ON student_indicators TO ssp_trainer, ssp_worker;

CREATE OR REPLACE FUNCTION refresh_student_features() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.student_features;
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.student_indicators;
    DELETE FROM public.student_features_live WHERE refreshed_at < now();
END $$;

-- Materialized views carry no policies: the API reads the figures through this view. The
-- tenant's schools are read once per statement (the scalar subquery is an InitPlan), not once
-- per row: app_visible_schools() is a SECURITY DEFINER function with its own search_path,
-- some 20 microseconds a call, and the at-risk page looks up each of its students.
CREATE VIEW student_indicators_visible WITH (security_barrier) AS
    SELECT * FROM student_indicators
    WHERE school_id = ANY ((SELECT app_visible_schools())::integer[]);
GRANT SELECT ON student_indicators_visible TO ssp_app;
