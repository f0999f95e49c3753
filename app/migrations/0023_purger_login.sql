-- The purge login, ssp_purger: `purge-student` (its on-demand Job) and the nightly retention
-- (the archive job's PURGE_DATABASE_URL) delete students' records as it, not as the master.
--
--   may                                          on
--   SELECT the key columns only                  every table holding student records (the
--     (the student reference, the parent's id)   catalog walk of app/jobs/lifecycle/catalog.py),
--                                                students' retention columns, schools' district
--   DELETE                                       every table holding student records
--   SELECT (student_id, detail), UPDATE of them  audit_log: pseudonymise the purged students
--   INSERT its destruction records only          audit_log (action purge_request/purge_retention)
--   INSERT, UPDATE (purged_at, models_...)       student_tombstones
--   EXECUTE refresh_student_features()           the feature view forgets the purged students
--
-- It reads no record's content (no mark, note or score), changes no row but the audit log's
-- student references, owns nothing, and cannot alter a table, a policy or a login. Row-level
-- security stays FORCEd: the purger is not an owner, and its own policies admit every school
-- (it legitimately purges across them), as the trainer's do (0007).
--
-- The tables are found by grant_purger_rights(), which `python -m app migrate` runs after
-- every migration: a table a later migration adds with a reference to students is covered
-- without a change here.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_purger') THEN
        CREATE ROLE ssp_purger LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB
            NOREPLICATION INHERIT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_purger'
               AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication))
    THEN
        RAISE EXCEPTION 'ssp_purger has SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB or'
            ' REPLICATION; remove it before migrating';
    END IF;
END $$;

-- The tables holding student records (the closure of foreign keys to students(id), as
-- catalog.student_tables walks it, and event_queue.student_id, which has no foreign key) and
-- per table the columns a purge's WHERE clauses read. Owned by the master: run by migrate.
CREATE OR REPLACE FUNCTION grant_purger_rights() RETURNS integer
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN
        WITH RECURSIVE fk AS (
            SELECT c.conrelid::regclass::text AS child, a.attname::text COLLATE "default" AS child_column,
                   c.confrelid::regclass::text AS parent, pa.attname::text COLLATE "default" AS parent_column
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = c.confkey[1]
            JOIN pg_class k ON k.oid = c.conrelid
            WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
              AND k.relnamespace = 'public'::regnamespace AND NOT k.relispartition
        ), walk (tbl, col, parent, parent_col) AS (
            SELECT 'students'::text, 'id'::text, NULL::text, NULL::text
            UNION ALL SELECT 'event_queue', 'student_id', NULL, NULL
            UNION
            SELECT fk.child, fk.child_column, fk.parent, fk.parent_column
            FROM fk JOIN walk ON fk.parent = walk.tbl
        )
        SELECT DISTINCT tbl, col, parent, parent_col FROM walk
    LOOP
        EXECUTE format('GRANT SELECT (%I), DELETE ON %I TO ssp_purger', r.col, r.tbl);
        IF r.parent IS NOT NULL THEN
            EXECUTE format('GRANT SELECT (%I) ON %I TO ssp_purger', r.parent_col, r.parent);
        END IF;
        IF (SELECT relrowsecurity FROM pg_class WHERE oid = r.tbl::regclass) THEN
            EXECUTE format('DROP POLICY IF EXISTS purger_read ON %I', r.tbl);
            EXECUTE format('CREATE POLICY purger_read ON %I FOR SELECT TO ssp_purger'
                           ' USING (true)', r.tbl);
            EXECUTE format('DROP POLICY IF EXISTS purger_delete ON %I', r.tbl);
            EXECUTE format('CREATE POLICY purger_delete ON %I FOR DELETE TO ssp_purger'
                           ' USING (true)', r.tbl);
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION grant_purger_rights() FROM PUBLIC;
SELECT grant_purger_rights();

-- What finds the students (purge.find_student, retention.EXPIRED) besides the key columns.
GRANT SELECT (id, school_id, sourced_id, is_active, enrolled_on) ON students TO ssp_purger;
GRANT SELECT (id, district_id) ON schools TO ssp_purger;
GRANT SELECT (id, held_on) ON exams TO ssp_purger;
GRANT SELECT (student_id, exam_id) ON marks TO ssp_purger;
GRANT SELECT (student_id, date) ON attendance TO ssp_purger;
GRANT SELECT (student_id, occurred_at) ON behaviour_incidents TO ssp_purger;
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['schools', 'exams']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS purger_read ON %I', t);
        EXECUTE format('CREATE POLICY purger_read ON %I FOR SELECT TO ssp_purger USING (true)', t);
    END LOOP;
END $$;

-- The audit log: the purged students' references rewritten, and the destruction recorded.
GRANT SELECT (student_id, detail), UPDATE (student_id, detail), INSERT ON audit_log TO ssp_purger;
DROP POLICY IF EXISTS purger_read ON audit_log;
CREATE POLICY purger_read ON audit_log FOR SELECT TO ssp_purger USING (true);
DROP POLICY IF EXISTS purger_pseudonymise ON audit_log;
CREATE POLICY purger_pseudonymise ON audit_log FOR UPDATE TO ssp_purger
    USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS purger_records ON audit_log;
CREATE POLICY purger_records ON audit_log FOR INSERT TO ssp_purger
    WITH CHECK (action IN ('purge_request', 'purge_retention')
                AND student_id IS NULL AND client_id IS NULL);

GRANT SELECT (id, sourced_digest), INSERT, UPDATE (purged_at, models_retrained_in)
    ON student_tombstones TO ssp_purger;
GRANT EXECUTE ON FUNCTION refresh_student_features() TO ssp_purger;

-- Where the live audit log begins: the start of its oldest partition. Older months are in the
-- audit archive (app/jobs/archive.py), which the API's credentials cannot read: the API's
-- access report says so, with this date (catalog facts only, no row is read).
CREATE OR REPLACE FUNCTION audit_log_live_since() RETURNS timestamptz
LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT min(substring(pg_get_expr(c.relpartbound, c.oid)
                         FROM 'FROM \(''([^'']+)''\)')::timestamptz)
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'public.audit_log'::regclass
$$;
REVOKE ALL ON FUNCTION audit_log_live_since() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_live_since() TO ssp_api, ssp_archiver;
