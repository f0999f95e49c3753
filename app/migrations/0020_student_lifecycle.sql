-- A student's data from arrival to deletion (app/jobs/lifecycle/):
--
-- 1. The access report finds list reads through an index on the student ids an at-risk page
--    audit row names (detail->'student_ids'), as single reads are found through
--    audit_log_student_time_idx (0003). jsonb_path_ops: the index of containment (@>), the
--    only operator the report uses, and about a third the size of the default GIN opclass.
--    On a partitioned table the index is made on every partition, existing and future.
CREATE INDEX IF NOT EXISTS audit_log_listed_students_idx
    ON audit_log USING gin ((detail -> 'student_ids') jsonb_path_ops);

-- 2. Tombstones: one per purged student. No student id and no sourced id is kept: only
--    sha256(pepper || ':' || sourced_id), which the importer compares with what it stages, so a
--    later import does not bring the student back without an explicit flag. The pepper is the
--    API key pepper: a guessable sourced id cannot be recovered from its digest without it.
--    models_retrained_in: the training run whose models no longer learnt from the student
--    (NULL until then: the next run retrains every scope and says so in its report).
CREATE TABLE IF NOT EXISTS student_tombstones (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    district_id         integer NOT NULL,  -- no foreign key: it outlives the district's rows
    sourced_digest      text UNIQUE CHECK (sourced_digest ~ '^[0-9a-f]{64}$'),
    purged_at           timestamptz NOT NULL DEFAULT now(),
    requested_by        text NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 255),
    reason              text NOT NULL CHECK (reason IN ('request', 'retention')),
    rows_deleted        jsonb NOT NULL,
    models_retrained_in text
);
CREATE INDEX IF NOT EXISTS student_tombstones_pending_idx ON student_tombstones (purged_at)
    WHERE models_retrained_in IS NULL;

-- The importer reads the digests only; the trainer reads what is pending and stamps it.
GRANT SELECT (sourced_digest) ON student_tombstones TO ssp_importer;
GRANT SELECT (id, purged_at, models_retrained_in), UPDATE (models_retrained_in)
    ON student_tombstones TO ssp_trainer;

-- 3. Offboarding reports: one per district offboarded, written step by step so that an
--    interrupted offboarding resumes where it stopped; the signed report when done.
CREATE TABLE IF NOT EXISTS district_offboardings (
    district_id  integer PRIMARY KEY,  -- no foreign key: it outlives the district's rows
    started_at   timestamptz NOT NULL DEFAULT now(),
    steps        jsonb NOT NULL DEFAULT '{}'::jsonb,
    finished_at  timestamptz,
    report       jsonb
);
-- The archive job records each archived month it destroys by retention (and nothing else).
GRANT INSERT ON audit_log TO ssp_archiver;
DROP POLICY IF EXISTS archiver_records ON audit_log;
CREATE POLICY archiver_records ON audit_log FOR INSERT TO ssp_archiver
    WITH CHECK (action = 'destroy_audit_archive' AND student_id IS NULL AND client_id IS NULL);

-- Purge, retention and offboarding run as the master in a Job (the tables' owner, which lifts
-- FORCE ROW LEVEL SECURITY inside its own transaction): no workload login gets DELETE.
