-- School years, a district's own features, protected attributes (audit only) and the figures
-- of each trained model.
--
-- 1. School years. Attendance, marks and incidents belong to the school year of their date,
--    named by the calendar year it ends in (2026 for 2025-26, as CEDS, Ed-Fi and OneRoster's
--    schoolYear do). The year starts in school_calendar.start_month (July by default, as
--    California Education Code 37200 has it); `train` and `refresh-features` set it from
--    SCHOOL_YEAR_START_MONTH through set_school_year_start(), before the refresh.
-- 2. student_features: a student's features for their current school year (the latest with
--    any record; the year they enrolled in when they have none), with the prior year's beside
--    them (NULL when they have no record that year: the model imputes and says so).
-- 3. A district's own features: declared per district (numeric with bounds, or categorical
--    with allowed values) and sent as extra columns of students.csv; stored per student in
--    students.district_features ({"name": "value" | null}, null: explicitly missing).

CREATE TABLE school_calendar (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),  -- one row
    start_month smallint NOT NULL DEFAULT 7 CHECK (start_month BETWEEN 1 AND 12)
);
INSERT INTO school_calendar DEFAULT VALUES;

-- The school year of a date: its calendar year, plus one from the start month on (a year
-- starting in January ends in the same calendar year). Inlined by the planner.
CREATE FUNCTION school_year(d date, start_month integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT extract(year FROM d + make_interval(months => (13 - start_month) % 12))::integer
$$;

-- The trainer sets the start month (SCHOOL_YEAR_START_MONTH) and may do nothing else to the
-- calendar. A change applies at the next refresh of the features.
CREATE FUNCTION set_school_year_start(month integer) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    UPDATE public.school_calendar SET start_month = month WHERE start_month IS DISTINCT FROM month
$$;
REVOKE ALL ON FUNCTION set_school_year_start(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION set_school_year_start(integer) TO ssp_trainer;

-- ---------------------------------------------------------------------------------------------
-- A district's own features: their declarations, and each student's values.
CREATE TABLE district_features (
    district_id    integer NOT NULL REFERENCES districts(id),
    name           text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    kind           text NOT NULL CHECK (kind IN ('numeric', 'categorical')),
    low            numeric CHECK (low BETWEEN -1e12 AND 1e12),  -- NaN fails BETWEEN
    high           numeric CHECK (high BETWEEN -1e12 AND 1e12),
    allowed_values text CHECK (length(allowed_values) <= 4000),  -- '|'-separated
    description    text CHECK (length(description) <= 255),
    PRIMARY KEY (district_id, name),
    CHECK ((kind = 'numeric' AND low IS NOT NULL AND high IS NOT NULL AND low < high
            AND allowed_values IS NULL)
        OR (kind = 'categorical' AND allowed_values IS NOT NULL AND low IS NULL
            AND high IS NULL))
);
ALTER TABLE students ADD COLUMN district_features jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(district_features) = 'object');

GRANT SELECT, INSERT, UPDATE ON district_features TO ssp_importer;
GRANT SELECT ON district_features TO ssp_trainer;

-- ---------------------------------------------------------------------------------------------
-- The features view, by school year. Its owner reads the calendar during the refresh.
GRANT SELECT ON school_calendar TO ssp_features_owner;
DROP MATERIALIZED VIEW student_features CASCADE;  -- also student_features_visible

CREATE MATERIALIZED VIEW student_features AS
WITH cal AS (
    SELECT start_month FROM school_calendar
), a AS (
    SELECT t.student_id, school_year(t.date, cal.start_month) AS sy,
           avg((t.status IN ('present', 'late'))::int)::double precision AS present_rate,
           count(*) FILTER (WHERE t.status = 'absent')::double precision AS absences,
           count(*) FILTER (WHERE t.status = 'late')::double precision AS lates
    FROM attendance t CROSS JOIN cal GROUP BY 1, 2
), m AS (
    SELECT mk.student_id, school_year(e.held_on, cal.start_month) AS sy,
           avg(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS avg_mark,
           min(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS min_mark,
           count(*) FILTER (WHERE mk.marks_obtained * 100.0 / e.max_marks < 40)::double precision
               AS failed_exams
    FROM marks mk JOIN exams e ON e.id = mk.exam_id CROSS JOIN cal GROUP BY 1, 2
), b AS (
    SELECT i.student_id,
           school_year((i.occurred_at AT TIME ZONE 'UTC')::date, cal.start_month) AS sy,
           count(*)::double precision AS incidents,
           (count(*) FILTER (WHERE i.severity = 3))::double precision AS severe
    FROM behaviour_incidents i CROSS JOIN cal GROUP BY 1, 2
), latest AS (
    SELECT student_id, max(sy) AS sy FROM (
        SELECT student_id, sy FROM a UNION ALL SELECT student_id, sy FROM m
        UNION ALL SELECT student_id, sy FROM b
    ) u GROUP BY student_id
), base AS (
    SELECT s.id AS student_id, s.school_id, s.is_active, s.dropped_out,
           s.grade::double precision AS grade,
           coalesce(l.sy, school_year(s.enrolled_on, cal.start_month)) AS school_year,
           s.district_features
    FROM students s CROSS JOIN cal LEFT JOIN latest l ON l.student_id = s.id
), x AS (
    SELECT base.*,
           ca.present_rate, ca.absences, ca.lates, cm.avg_mark, cm.min_mark, cm.failed_exams,
           coalesce(cb.incidents, 0)::double precision AS incidents,
           coalesce(cb.severe, 0)::double precision AS severe_incidents,
           pa.present_rate AS prior_attendance_rate, pa.absences AS prior_absences,
           pa.lates AS prior_lates, pm.avg_mark AS prior_avg_mark, pm.min_mark AS prior_min_mark,
           pm.failed_exams AS prior_failed_exams,
           -- No record at all in the prior year: its incidents are unknown, not zero.
           CASE WHEN pa.student_id IS NOT NULL OR pm.student_id IS NOT NULL
                     OR pb.student_id IS NOT NULL
                THEN coalesce(pb.incidents, 0) END AS prior_incidents,
           CASE WHEN pa.student_id IS NOT NULL OR pm.student_id IS NOT NULL
                     OR pb.student_id IS NOT NULL
                THEN coalesce(pb.severe, 0) END AS prior_severe_incidents
    FROM base
    LEFT JOIN a ca ON ca.student_id = base.student_id AND ca.sy = base.school_year
    LEFT JOIN m cm ON cm.student_id = base.student_id AND cm.sy = base.school_year
    LEFT JOIN b cb ON cb.student_id = base.student_id AND cb.sy = base.school_year
    LEFT JOIN a pa ON pa.student_id = base.student_id AND pa.sy = base.school_year - 1
    LEFT JOIN m pm ON pm.student_id = base.student_id AND pm.sy = base.school_year - 1
    LEFT JOIN b pb ON pb.student_id = base.student_id AND pb.sy = base.school_year - 1
), school_mean AS (
    SELECT school_id, avg(present_rate) AS present_rate, avg(absences) AS absences,
           avg(lates) AS lates, avg(avg_mark) AS avg_mark, avg(min_mark) AS min_mark,
           avg(failed_exams) AS failed_exams
    FROM x GROUP BY school_id
), all_mean AS (
    SELECT avg(present_rate) AS present_rate, avg(absences) AS absences, avg(lates) AS lates,
           avg(avg_mark) AS avg_mark, avg(min_mark) AS min_mark,
           avg(failed_exams) AS failed_exams
    FROM x
)
SELECT
    x.student_id,
    x.school_id,
    x.is_active,
    x.dropped_out,
    x.grade,
    coalesce(x.present_rate, sm.present_rate, am.present_rate, 1.0) AS attendance_rate,
    coalesce(x.absences, sm.absences, am.absences, 0.0) AS absences,
    coalesce(x.lates, sm.lates, am.lates, 0.0) AS lates,
    coalesce(x.avg_mark, sm.avg_mark, am.avg_mark, 0.0) AS avg_mark,
    coalesce(x.min_mark, sm.min_mark, am.min_mark, 0.0) AS min_mark,
    coalesce(x.failed_exams, sm.failed_exams, am.failed_exams, 0.0) AS failed_exams,
    x.incidents,
    x.severe_incidents,
    x.present_rate IS NULL AS attendance_missing,
    x.avg_mark IS NULL AS marks_missing,
    x.school_year,
    x.prior_attendance_rate,
    x.prior_absences,
    x.prior_lates,
    x.prior_avg_mark,
    x.prior_min_mark,
    x.prior_failed_exams,
    x.prior_incidents,
    x.prior_severe_incidents,
    x.district_features
FROM x
JOIN school_mean sm ON sm.school_id = x.school_id
CROSS JOIN all_mean am;

CREATE UNIQUE INDEX student_features_pk ON student_features (student_id);
CREATE INDEX student_features_school_idx ON student_features (school_id);

GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER MATERIALIZED VIEW student_features OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;
GRANT SELECT ON student_features TO ssp_trainer;

-- ---------------------------------------------------------------------------------------------
-- Live features (the worker's, 0011) by school year too: the same computation for `ids`.
ALTER TABLE student_features_live
    ADD COLUMN school_year integer,
    ADD COLUMN prior_attendance_rate double precision,
    ADD COLUMN prior_absences double precision,
    ADD COLUMN prior_lates double precision,
    ADD COLUMN prior_avg_mark double precision,
    ADD COLUMN prior_min_mark double precision,
    ADD COLUMN prior_failed_exams double precision,
    ADD COLUMN prior_incidents double precision,
    ADD COLUMN prior_severe_incidents double precision;

DROP FUNCTION refresh_live_features(bigint[]);
CREATE FUNCTION refresh_live_features(ids bigint[])
RETURNS TABLE (student_id bigint, school_id integer, is_active boolean, grade double precision,
               attendance_rate double precision, absences double precision,
               lates double precision, avg_mark double precision, min_mark double precision,
               failed_exams double precision, incidents double precision,
               severe_incidents double precision, school_year integer,
               prior_attendance_rate double precision, prior_absences double precision,
               prior_lates double precision, prior_avg_mark double precision,
               prior_min_mark double precision, prior_failed_exams double precision,
               prior_incidents double precision, prior_severe_incidents double precision,
               district_features jsonb)
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
WITH cal AS (
    SELECT start_month FROM school_calendar
), a AS (
    SELECT t.student_id, school_year(t.date, cal.start_month) AS sy,
           avg((t.status IN ('present', 'late'))::int)::double precision AS present_rate,
           count(*) FILTER (WHERE t.status = 'absent')::double precision AS absences,
           count(*) FILTER (WHERE t.status = 'late')::double precision AS lates
    FROM attendance t CROSS JOIN cal WHERE t.student_id = ANY (ids) GROUP BY 1, 2
), m AS (
    SELECT mk.student_id, school_year(e.held_on, cal.start_month) AS sy,
           avg(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS avg_mark,
           min(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS min_mark,
           count(*) FILTER (WHERE mk.marks_obtained * 100.0 / e.max_marks < 40)::double precision
               AS failed_exams
    FROM marks mk JOIN exams e ON e.id = mk.exam_id CROSS JOIN cal
    WHERE mk.student_id = ANY (ids) GROUP BY 1, 2
), b AS (
    SELECT i.student_id,
           school_year((i.occurred_at AT TIME ZONE 'UTC')::date, cal.start_month) AS sy,
           count(*)::double precision AS incidents,
           (count(*) FILTER (WHERE i.severity = 3))::double precision AS severe
    FROM behaviour_incidents i CROSS JOIN cal WHERE i.student_id = ANY (ids) GROUP BY 1, 2
), f AS (
    SELECT v.* FROM student_features v WHERE v.student_id = ANY (ids)
), yr AS (
    SELECT f.student_id, coalesce(max(u.sy), f.school_year) AS sy
    FROM f LEFT JOIN (
        SELECT a.student_id, a.sy FROM a UNION ALL SELECT m.student_id, m.sy FROM m
        UNION ALL SELECT b.student_id, b.sy FROM b
    ) u ON u.student_id = f.student_id
    GROUP BY f.student_id, f.school_year
), sm AS (
    SELECT v.school_id,
           avg(v.attendance_rate) FILTER (WHERE NOT v.attendance_missing) AS attendance_rate,
           avg(v.absences) FILTER (WHERE NOT v.attendance_missing) AS absences,
           avg(v.lates) FILTER (WHERE NOT v.attendance_missing) AS lates,
           avg(v.avg_mark) FILTER (WHERE NOT v.marks_missing) AS avg_mark,
           avg(v.min_mark) FILTER (WHERE NOT v.marks_missing) AS min_mark,
           avg(v.failed_exams) FILTER (WHERE NOT v.marks_missing) AS failed_exams
    FROM student_features v WHERE v.school_id IN (SELECT f.school_id FROM f)
    GROUP BY v.school_id
), live AS (
    INSERT INTO student_features_live AS l (
        student_id, school_id, attendance_rate, absences, lates, avg_mark, min_mark,
        failed_exams, incidents, severe_incidents, attendance_missing, marks_missing,
        school_year, prior_attendance_rate, prior_absences, prior_lates, prior_avg_mark,
        prior_min_mark, prior_failed_exams, prior_incidents, prior_severe_incidents)
    SELECT f.student_id, f.school_id,
           coalesce(ca.present_rate, sm.attendance_rate, f.attendance_rate),
           coalesce(ca.absences, sm.absences, f.absences),
           coalesce(ca.lates, sm.lates, f.lates),
           coalesce(cm.avg_mark, sm.avg_mark, f.avg_mark),
           coalesce(cm.min_mark, sm.min_mark, f.min_mark),
           coalesce(cm.failed_exams, sm.failed_exams, f.failed_exams),
           coalesce(cb.incidents, 0), coalesce(cb.severe, 0),
           ca.student_id IS NULL, cm.student_id IS NULL,
           yr.sy, pa.present_rate, pa.absences, pa.lates, pm.avg_mark, pm.min_mark,
           pm.failed_exams,
           CASE WHEN pa.student_id IS NOT NULL OR pm.student_id IS NOT NULL
                     OR pb.student_id IS NOT NULL THEN coalesce(pb.incidents, 0) END,
           CASE WHEN pa.student_id IS NOT NULL OR pm.student_id IS NOT NULL
                     OR pb.student_id IS NOT NULL THEN coalesce(pb.severe, 0) END
    FROM f
    JOIN yr ON yr.student_id = f.student_id
    JOIN sm ON sm.school_id = f.school_id
    LEFT JOIN a ca ON ca.student_id = f.student_id AND ca.sy = yr.sy
    LEFT JOIN m cm ON cm.student_id = f.student_id AND cm.sy = yr.sy
    LEFT JOIN b cb ON cb.student_id = f.student_id AND cb.sy = yr.sy
    LEFT JOIN a pa ON pa.student_id = f.student_id AND pa.sy = yr.sy - 1
    LEFT JOIN m pm ON pm.student_id = f.student_id AND pm.sy = yr.sy - 1
    LEFT JOIN b pb ON pb.student_id = f.student_id AND pb.sy = yr.sy - 1
    ON CONFLICT ON CONSTRAINT student_features_live_pkey DO UPDATE SET
        school_id = excluded.school_id, attendance_rate = excluded.attendance_rate,
        absences = excluded.absences, lates = excluded.lates, avg_mark = excluded.avg_mark,
        min_mark = excluded.min_mark, failed_exams = excluded.failed_exams,
        incidents = excluded.incidents, severe_incidents = excluded.severe_incidents,
        attendance_missing = excluded.attendance_missing, marks_missing = excluded.marks_missing,
        school_year = excluded.school_year,
        prior_attendance_rate = excluded.prior_attendance_rate,
        prior_absences = excluded.prior_absences, prior_lates = excluded.prior_lates,
        prior_avg_mark = excluded.prior_avg_mark, prior_min_mark = excluded.prior_min_mark,
        prior_failed_exams = excluded.prior_failed_exams,
        prior_incidents = excluded.prior_incidents,
        prior_severe_incidents = excluded.prior_severe_incidents,
        refreshed_at = now()
    RETURNING l.*
)
SELECT live.student_id, live.school_id, f.is_active, f.grade, live.attendance_rate,
       live.absences, live.lates, live.avg_mark, live.min_mark, live.failed_exams,
       live.incidents, live.severe_incidents, live.school_year, live.prior_attendance_rate,
       live.prior_absences, live.prior_lates, live.prior_avg_mark, live.prior_min_mark,
       live.prior_failed_exams, live.prior_incidents, live.prior_severe_incidents,
       f.district_features
FROM live JOIN f ON f.student_id = live.student_id
$$;
GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER FUNCTION refresh_live_features(bigint[]) OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;
REVOKE ALL ON FUNCTION refresh_live_features(bigint[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_live_features(bigint[]) TO ssp_worker;

-- What the API reads: the view, with the live features where a student has them (a live row
-- replaces the whole year's figures, the prior year's included).
CREATE VIEW student_features_visible WITH (security_barrier) AS
    SELECT f.student_id, f.school_id, f.is_active, f.dropped_out, f.grade,
           coalesce(l.attendance_rate, f.attendance_rate) AS attendance_rate,
           coalesce(l.absences, f.absences) AS absences,
           coalesce(l.lates, f.lates) AS lates,
           coalesce(l.avg_mark, f.avg_mark) AS avg_mark,
           coalesce(l.min_mark, f.min_mark) AS min_mark,
           coalesce(l.failed_exams, f.failed_exams) AS failed_exams,
           coalesce(l.incidents, f.incidents) AS incidents,
           coalesce(l.severe_incidents, f.severe_incidents) AS severe_incidents,
           coalesce(l.attendance_missing, f.attendance_missing) AS attendance_missing,
           coalesce(l.marks_missing, f.marks_missing) AS marks_missing,
           coalesce(l.school_year, f.school_year) AS school_year,
           CASE WHEN l.student_id IS NULL THEN f.prior_attendance_rate
                ELSE l.prior_attendance_rate END AS prior_attendance_rate,
           CASE WHEN l.student_id IS NULL THEN f.prior_absences
                ELSE l.prior_absences END AS prior_absences,
           CASE WHEN l.student_id IS NULL THEN f.prior_lates ELSE l.prior_lates END AS prior_lates,
           CASE WHEN l.student_id IS NULL THEN f.prior_avg_mark
                ELSE l.prior_avg_mark END AS prior_avg_mark,
           CASE WHEN l.student_id IS NULL THEN f.prior_min_mark
                ELSE l.prior_min_mark END AS prior_min_mark,
           CASE WHEN l.student_id IS NULL THEN f.prior_failed_exams
                ELSE l.prior_failed_exams END AS prior_failed_exams,
           CASE WHEN l.student_id IS NULL THEN f.prior_incidents
                ELSE l.prior_incidents END AS prior_incidents,
           CASE WHEN l.student_id IS NULL THEN f.prior_severe_incidents
                ELSE l.prior_severe_incidents END AS prior_severe_incidents,
           f.district_features
    FROM student_features f LEFT JOIN student_features_live l ON l.student_id = f.student_id
    WHERE f.school_id = ANY (app_visible_schools());
GRANT SELECT ON student_features_visible TO ssp_app;

-- ---------------------------------------------------------------------------------------------
-- 4. student_demographics: sex, race/ethnicity, economic disadvantage, English learner,
--    disability (IEP/504), imported from OneRoster's demographics.csv or the native one.
--    Stored apart from every table a model reads, under row-level security: the importer
--    writes them and the trainer reads them (to audit its models' flags per group), each
--    through its own policy. The API's login has no grant and no policy: it cannot read
--    them, and no model input is ever taken from them (the features view does not join them).
-- 5. model_versions: the figures a school acts on, per scope: PPV and false-alarm rate at the
--    alert threshold, precision and recall at a caseload of k students, Brier and the
--    reliability curve, AUC, and which split (temporal or random) they were measured on.

CREATE TABLE student_demographics (
    student_id                 bigint PRIMARY KEY REFERENCES students(id),
    school_id                  integer NOT NULL REFERENCES schools(id),
    sex                        text CHECK (sex IN ('female', 'male', 'other', 'unspecified')),
    race_ethnicity             text CHECK (race_ethnicity IN (
        'american_indian_or_alaska_native', 'asian', 'black_or_african_american',
        'hispanic_or_latino', 'native_hawaiian_or_other_pacific_islander', 'white',
        'two_or_more_races')),
    economically_disadvantaged boolean,
    english_learner            boolean,
    disability                 boolean
);
CREATE INDEX student_demographics_school_idx ON student_demographics (school_id);

ALTER TABLE student_demographics ENABLE ROW LEVEL SECURITY;
ALTER TABLE student_demographics FORCE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE ON student_demographics TO ssp_importer;
CREATE POLICY importer_all_schools ON student_demographics FOR ALL TO ssp_importer
    USING (true) WITH CHECK (true);
GRANT SELECT ON student_demographics TO ssp_trainer;
CREATE POLICY trainer_audit ON student_demographics FOR SELECT TO ssp_trainer USING (true);

ALTER TABLE model_versions
    ADD COLUMN split text CHECK (split IN ('temporal', 'random')),
    ADD COLUMN auc real CHECK (auc BETWEEN 0 AND 1),  -- NaN fails BETWEEN
    ADD COLUMN brier real CHECK (brier BETWEEN 0 AND 1),
    ADD COLUMN ppv real CHECK (ppv BETWEEN 0 AND 1),  -- NULL: nobody flagged
    ADD COLUMN false_alarm_rate real CHECK (false_alarm_rate BETWEEN 0 AND 1),
    ADD COLUMN precision_at_k real CHECK (precision_at_k BETWEEN 0 AND 1),
    ADD COLUMN recall_at_k real CHECK (recall_at_k BETWEEN 0 AND 1),
    ADD COLUMN caseload_k integer CHECK (caseload_k >= 0),
    -- [{"predicted": mean risk, "observed": dropout rate, "n": students}] per risk decile
    ADD COLUMN reliability jsonb;
