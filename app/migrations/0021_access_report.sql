-- The access report: who accessed a student's records (FERPA, 34 CFR 99.32), through one
-- function that the API (for its tenant's students only) and the archiver (`python -m app
-- access-report`, every student) may call. Neither login reads audit_log itself: the API may
-- still only append to it, the archiver only read it for export.
--
-- The function runs as its own NOLOGIN owner, ssp_audit_reader (the pattern of
-- ssp_tenant_lookup, 0007): it may read audit_log, the students' ids and schools, and the API
-- keys' names and classes, each while it is the current user, i.e. inside the function.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_audit_reader') THEN
        CREATE ROLE ssp_audit_reader NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB
            NOREPLICATION;
    END IF;
END $$;
GRANT ssp_audit_reader TO CURRENT_USER;

GRANT SELECT ON audit_log TO ssp_audit_reader;
GRANT SELECT (id, school_id, sourced_id) ON students TO ssp_audit_reader;
GRANT SELECT (id, name, key_prefix, key_class) ON api_clients TO ssp_audit_reader;
GRANT EXECUTE ON FUNCTION app_visible_schools() TO ssp_audit_reader;
-- USING (true), not current_user = ...: under row-level security a query's condition that is
-- not leakproof (jsonb @>, the list reads' index) is evaluated only after every policy
-- condition that is not a constant, i.e. never through an index (a scan of every partition).
-- The master leaves the role at the end of this migration, so only the function has it.
DROP POLICY IF EXISTS audit_reader ON audit_log;
CREATE POLICY audit_reader ON audit_log FOR SELECT TO ssp_audit_reader USING (true);
DROP POLICY IF EXISTS audit_reader ON students;
CREATE POLICY audit_reader ON students FOR SELECT TO ssp_audit_reader
    USING (current_user = 'ssp_audit_reader');

-- Every access to the student named by `ref` (an id or a sourced id) in the live partitions:
-- single reads and events through audit_log_student_time_idx, list reads through
-- audit_log_listed_students_idx (0020). The API's login sees only its tenant's students
-- (app_visible_schools(), the tenant the API set); the archiver's every student.
-- PL/pgSQL, the student's id found first: each scan then runs with the id as a value, so
-- every partition's index answers it (a join from the student's row to audit_log was planned
-- as a scan of every partition: 4.6 s at 2M rows, benchmarks/access_report.py).
CREATE OR REPLACE FUNCTION student_accesses(ref text)
RETURNS TABLE (student_id bigint, occurred_at timestamptz, client_id integer, key_name text,
               key_prefix text, key_class text, school_id integer, action text, via text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    sid bigint;
BEGIN
    SELECT st.id INTO sid FROM students st
    WHERE (st.sourced_id = ref OR (ref ~ '^[0-9]{1,18}$' AND st.id = ref::bigint))
      AND (session_user = 'ssp_archiver' OR st.school_id = ANY (app_visible_schools()))
    ORDER BY st.sourced_id = ref DESC LIMIT 1;
    IF sid IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH a AS (
        SELECT l.occurred_at, l.client_id, l.school_id, l.action, 'student' AS via
        FROM audit_log l WHERE l.student_id = sid
        UNION ALL
        SELECT l.occurred_at, l.client_id, l.school_id, l.action, 'list'
        FROM audit_log l WHERE l.detail -> 'student_ids' @> jsonb_build_array(sid)
    )
    SELECT sid, a.occurred_at, a.client_id, c.name, c.key_prefix, c.key_class, a.school_id,
           a.action, a.via
    FROM a LEFT JOIN api_clients c ON c.id = a.client_id
    ORDER BY a.occurred_at, a.action;
END $$;
GRANT CREATE ON SCHEMA public TO ssp_audit_reader;
ALTER FUNCTION student_accesses(text) OWNER TO ssp_audit_reader;
REVOKE CREATE ON SCHEMA public FROM ssp_audit_reader;
REVOKE ALL ON FUNCTION student_accesses(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION student_accesses(text) TO ssp_api, ssp_archiver;

-- Archived rows name a key by its id only: the archiver reads the keys' names and classes
-- through this function (never their hashes, and not the table itself).
CREATE OR REPLACE FUNCTION api_key_names()
RETURNS TABLE (client_id integer, key_name text, key_prefix text, key_class text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT id, name, key_prefix, key_class FROM api_clients
$$;
GRANT CREATE ON SCHEMA public TO ssp_audit_reader;
ALTER FUNCTION api_key_names() OWNER TO ssp_audit_reader;
REVOKE CREATE ON SCHEMA public FROM ssp_audit_reader;
REVOKE ALL ON FUNCTION api_key_names() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_names() TO ssp_archiver;

-- The master joined the role only to make it the functions' owner (above): it leaves it, so
-- that the audit_reader policy on audit_log never applies to the master's own sessions.
REVOKE ssp_audit_reader FROM CURRENT_USER;
