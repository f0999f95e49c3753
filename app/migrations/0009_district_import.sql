-- A district's own data (`python -m app import`): the district's ids, NaN and infinities refused
-- everywhere, missing data made explicit in the features, and the importer's own login.
--
-- 1. The district's ids. Every imported entity keeps the id the district's system gave it
--    (OneRoster's sourcedId), unique in its table, so a nightly re-import upserts by it and
--    is a delta. Rows made by `generate` have none. Attendance is keyed by (student, date),
--    marks by (student, exam): both already are natural keys of their tables.
ALTER TABLE districts ADD COLUMN sourced_id text UNIQUE CHECK (length(sourced_id) <= 255);
ALTER TABLE schools ADD COLUMN sourced_id text UNIQUE CHECK (length(sourced_id) <= 255);
ALTER TABLE students ADD COLUMN sourced_id text UNIQUE CHECK (length(sourced_id) <= 255);
ALTER TABLE exams ADD COLUMN sourced_id text UNIQUE CHECK (length(sourced_id) <= 255);
ALTER TABLE behaviour_incidents
    ADD COLUMN sourced_id text UNIQUE CHECK (length(sourced_id) <= 255);
CREATE UNIQUE INDEX marks_student_exam_key ON marks (student_id, exam_id);
DROP INDEX marks_student_exam_idx;  -- the unique index serves the same lookups

-- 2. No NaN, no infinity. PostgreSQL ranks NaN above every number, so `marks_obtained >= 0`
--    admitted it (and one NaN mark stopped all training). Every numeric column gets an upper
--    bound too, which NaN and +/-Infinity fail. Integer columns cannot hold either.
ALTER TABLE exams ADD CONSTRAINT exams_max_marks_finite
    CHECK (max_marks > 0 AND max_marks <= 9999.99);
ALTER TABLE marks ADD CONSTRAINT marks_marks_obtained_finite
    CHECK (marks_obtained >= 0 AND marks_obtained <= 9999.99);
ALTER TABLE risk_scores ADD CONSTRAINT risk_scores_risk_finite CHECK (risk >= 0 AND risk <= 1);
-- alerts.risk already has BETWEEN 0 AND 1, which NaN fails.

-- 3. Missing data made explicit. A student with no marks got avg_mark 0 and one with no
--    attendance records perfect attendance. Now a missing aggregate is imputed with the mean
--    of the students of the same school who have records (the district-wide mean when no one
--    in the school has any; a constant only when no one anywhere has), and the view says so
--    in attendance_missing / marks_missing, which training records per scope. Incidents are
--    not imputed: no incident record means no incident.
DROP MATERIALIZED VIEW student_features CASCADE;  -- also student_features_visible (0005)

CREATE MATERIALIZED VIEW student_features AS
WITH a AS (
    SELECT student_id,
           avg((status IN ('present', 'late'))::int)::double precision AS present_rate,
           count(*) FILTER (WHERE status = 'absent')::double precision AS absences,
           count(*) FILTER (WHERE status = 'late')::double precision AS lates
    FROM attendance GROUP BY student_id
), m AS (
    SELECT mk.student_id,
           avg(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS avg_mark,
           min(mk.marks_obtained * 100.0 / e.max_marks)::double precision AS min_mark,
           count(*) FILTER (WHERE mk.marks_obtained * 100.0 / e.max_marks < 40)::double precision
               AS failed_exams
    FROM marks mk JOIN exams e ON e.id = mk.exam_id
    GROUP BY mk.student_id
), b AS (
    SELECT student_id, count(*) AS incidents, count(*) FILTER (WHERE severity = 3) AS severe
    FROM behaviour_incidents GROUP BY student_id
), base AS (
    SELECT s.id AS student_id, s.school_id, s.is_active, s.dropped_out,
           s.grade::double precision AS grade,
           a.present_rate, a.absences, a.lates, m.avg_mark, m.min_mark, m.failed_exams,
           coalesce(b.incidents, 0)::double precision AS incidents,
           coalesce(b.severe, 0)::double precision AS severe_incidents
    FROM students s
    LEFT JOIN a ON a.student_id = s.id
    LEFT JOIN m ON m.student_id = s.id
    LEFT JOIN b ON b.student_id = s.id
), school_mean AS (
    SELECT school_id, avg(present_rate) AS present_rate, avg(absences) AS absences,
           avg(lates) AS lates, avg(avg_mark) AS avg_mark, avg(min_mark) AS min_mark,
           avg(failed_exams) AS failed_exams
    FROM base GROUP BY school_id
), all_mean AS (
    SELECT avg(present_rate) AS present_rate, avg(absences) AS absences, avg(lates) AS lates,
           avg(avg_mark) AS avg_mark, avg(min_mark) AS min_mark,
           avg(failed_exams) AS failed_exams
    FROM base
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
    x.avg_mark IS NULL AS marks_missing
FROM base x
JOIN school_mean sm ON sm.school_id = x.school_id
CROSS JOIN all_mean am;

CREATE UNIQUE INDEX student_features_pk ON student_features (student_id);
CREATE INDEX student_features_school_idx ON student_features (school_id);

-- Its owner, readers and filtered view exactly as 0005 and 0007 made them.
GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER MATERIALIZED VIEW student_features OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;
GRANT SELECT ON student_features TO ssp_trainer;
CREATE VIEW student_features_visible WITH (security_barrier) AS
    SELECT * FROM student_features WHERE school_id = ANY (app_visible_schools());
GRANT SELECT ON student_features_visible TO ssp_app;

-- 4. The importer's login. Not the trainer's: the trainer reads features and writes scores
--    and model versions; if it could also write student records, a flaw in training (or a
--    stolen trainer password) could rewrite the outcome labels it learns from. ssp_importer
--    may read and upsert exactly the imported tables, every school of them (its own
--    policies; the grants bound the commands): no DELETE (a district removes a student by
--    exporting them inactive), no scores, no models, no audit log, no API keys, and it owns
--    nothing. Its staging tables are TEMPORARY (the default TEMP privilege of PUBLIC).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_importer') THEN
        CREATE ROLE ssp_importer LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB
            NOREPLICATION INHERIT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_importer'
               AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb
                    OR rolreplication)) THEN
        RAISE EXCEPTION 'ssp_importer has SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB or'
            ' REPLICATION; remove it before migrating';
    END IF;
END $$;

GRANT SELECT, INSERT, UPDATE ON districts, schools, students, attendance, exams, marks,
    behaviour_incidents TO ssp_importer;
GRANT USAGE ON SEQUENCE districts_id_seq, schools_id_seq, students_id_seq, attendance_id_seq,
    exams_id_seq, marks_id_seq, behaviour_incidents_id_seq TO ssp_importer;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['schools', 'students', 'attendance', 'exams', 'marks',
                             'behaviour_incidents']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS importer_all_schools ON %I', t);
        EXECUTE format('CREATE POLICY importer_all_schools ON %I FOR ALL TO ssp_importer'
                       ' USING (true) WITH CHECK (true)', t);
    END LOOP;
END $$;

-- 5. The promotion gate's reason for every trained scope (app/promotion.py), beside its
--    metrics: why a school's model serves it, or why the district model does instead.
ALTER TABLE model_versions ADD COLUMN reason text;
