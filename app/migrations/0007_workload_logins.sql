-- One login per workload. Until now the API, the trainer and the archiver all logged in as the
-- master user (the schema owner); the API's pool ran SET ROLE ssp_app, which any SQL on the
-- connection could undo with RESET ROLE, and which pinned every connection behind RDS Proxy.
-- Now each workload's login is itself least-privileged, and owns nothing:
--
--   role                login  what it may do
--   ssp_app             no     (0005) the role the tenant policies name; SELECT on tenant tables
--                              through them, SELECT api_clients, INSERT audit_log (own schools)
--   ssp_api             yes    the API: inherits ssp_app (but cannot SET ROLE to it); creates
--                              this month's and the next two months' audit-log partitions
--                              through audit_log_ensure_current_partitions()
--   ssp_trainer         yes    train / rollback / refresh-features: SELECT student_features;
--                              SELECT, INSERT, DELETE risk_scores and SELECT, INSERT,
--                              UPDATE (promoted) model_versions of every school (its own
--                              policies); refresh_student_features(), analyze_risk_scores()
--   ssp_archiver        yes    archive: SELECT audit_log (its own policy); old partitions only
--                              through audit_log_lock_partition() / audit_log_drop_partition(),
--                              new ones through audit_log_create_partitions()
--   ssp_features_owner  no     owns student_features only, so REFRESH reads every school as it
--   ssp_tenant_lookup   no     owns app_visible_schools() only, which reads schools as it
--
-- None has SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB or REPLICATION, and none is a member of
-- the master, ssp_features_owner or ssp_tenant_lookup: no SET ROLE leads to more rights. `publish-sagemaker`
-- touches no table. The roles are created without a password (this is static SQL):
-- `python -m app migrate` sets each one's from DB_API_PASSWORD, DB_TRAINER_PASSWORD,
-- DB_ARCHIVER_PASSWORD when they are set.
--
-- Every table with row-level security also gets FORCE ROW LEVEL SECURITY: the owner (the master,
-- which runs this) is filtered as well, so a workload misconfigured with the master's URL sees
-- no school's rows (the master is a member of ssp_app since 0005, so it sees a tenant's rows
-- once one is set, like the API). FORCE guards against mistakes, not against the owner, who
-- can always ALTER its tables: `generate`, the synthetic loader, lifts it inside its own
-- transaction. Nothing the workloads do needs the owner to bypass row security: the trainer
-- and the archiver have policies of their own, never BYPASSRLS (which the RDS master cannot
-- grant, not having it).
--
-- Re-runnable: the roles belong to the server, not to this database (they may exist from
-- another database of the instance), so they are created only when missing and checked
-- for attributes they must not have; grants, policies and functions are (re)made idempotently.

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES ('ssp_api', 'LOGIN'), ('ssp_trainer', 'LOGIN'),
                                   ('ssp_archiver', 'LOGIN'), ('ssp_features_owner', 'NOLOGIN'),
                                   ('ssp_tenant_lookup', 'NOLOGIN')
                           ) AS v (name, login)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name) THEN
            EXECUTE format('CREATE ROLE %I %s NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB'
                           ' NOREPLICATION INHERIT', r.name, r.login);
        END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM pg_roles
               WHERE rolname IN ('ssp_app', 'ssp_api', 'ssp_trainer', 'ssp_archiver',
                                 'ssp_features_owner', 'ssp_tenant_lookup')
                 AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication
                      OR (rolname IN ('ssp_app', 'ssp_features_owner', 'ssp_tenant_lookup')
                          AND rolcanlogin))) THEN
        RAISE EXCEPTION 'a workload role has SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB,'
            ' REPLICATION or (a group role) LOGIN; remove it before migrating';
    END IF;
END $$;

-- The API gets the tenant policies (TO ssp_app) by inheritance; SET FALSE: it cannot even
-- SET ROLE ssp_app (harmless, as ssp_app owns nothing and bypasses nothing, but not needed).
GRANT ssp_app TO ssp_api WITH INHERIT TRUE, SET FALSE;

-- No login creates objects in the schema (PostgreSQL 15+ already revokes this from PUBLIC;
-- this covers a database whose public schema dates from an older version).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- The feature view. REFRESH MATERIALIZED VIEW needs the view's owner, and runs the view's query
-- as that owner. Least privilege: the view gets its own NOLOGIN owner, ssp_features_owner, which
-- may read the five source tables (and only those) and owns nothing else; the trainer is not a
-- member of it and refreshes through refresh_student_features(), a SECURITY DEFINER function
-- that does nothing but the refresh. The trainer thus gains neither the view's ownership (which
-- could DROP it or GRANT it to the API) nor the tables'. The function is owned by the master,
-- which passes REFRESH's ownership check as a member of ssp_features_owner.
-- The source tables' policy for ssp_features_owner holds only while the current user IS that
-- role, i.e. inside REFRESH: the master, a member, does not read every row through it.
GRANT ssp_features_owner TO CURRENT_USER;
GRANT SELECT ON students, attendance, marks, exams, behaviour_incidents TO ssp_features_owner;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['students', 'attendance', 'marks', 'exams', 'behaviour_incidents']
    LOOP
        EXECUTE format('DROP POLICY IF EXISTS features_refresh ON %I', t);
        EXECUTE format(
            'CREATE POLICY features_refresh ON %I FOR SELECT TO ssp_features_owner '
            'USING (current_user = ''ssp_features_owner'')', t);
    END LOOP;
END $$;

-- ALTER ... OWNER TO requires the new owner to have CREATE on the schema: only for this step.
GRANT CREATE ON SCHEMA public TO ssp_features_owner;
ALTER MATERIALIZED VIEW student_features OWNER TO ssp_features_owner;
REVOKE CREATE ON SCHEMA public FROM ssp_features_owner;

CREATE OR REPLACE FUNCTION refresh_student_features() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    REFRESH MATERIALIZED VIEW CONCURRENTLY public.student_features
$$;
REVOKE ALL ON FUNCTION refresh_student_features() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_student_features() TO ssp_trainer;

-- ---------------------------------------------------------------------------------------------
-- The tenant's schools. app_visible_schools() (0005, SECURITY DEFINER) reads `schools` as its
-- owner. Under FORCE ROW LEVEL SECURITY an owner that is the master would be filtered by the
-- schools policy, which calls app_visible_schools() again (the master is a member of ssp_app):
-- endless recursion. So the function gets an owner of its own, ssp_tenant_lookup, which may
-- read two columns of `schools` while it is the current user, i.e. inside the function.
GRANT ssp_tenant_lookup TO CURRENT_USER;
GRANT SELECT (id, district_id) ON schools TO ssp_tenant_lookup;
DROP POLICY IF EXISTS tenant_lookup ON schools;
CREATE POLICY tenant_lookup ON schools FOR SELECT TO ssp_tenant_lookup
    USING (current_user = 'ssp_tenant_lookup');
GRANT CREATE ON SCHEMA public TO ssp_tenant_lookup;
ALTER FUNCTION app_visible_schools() OWNER TO ssp_tenant_lookup;
REVOKE CREATE ON SCHEMA public FROM ssp_tenant_lookup;

-- ---------------------------------------------------------------------------------------------
-- The trainer: reads every school's features, records model versions, writes every school's
-- scores. Its policies admit all schools (it legitimately scores them all); the grants bound
-- the commands. ANALYZE needs the table's owner: analyze_risk_scores() does only that.
GRANT SELECT ON student_features TO ssp_trainer;
GRANT SELECT, INSERT, DELETE ON risk_scores TO ssp_trainer;
GRANT SELECT, INSERT, UPDATE (promoted) ON model_versions TO ssp_trainer;
GRANT USAGE ON SEQUENCE model_versions_id_seq TO ssp_trainer;
DROP POLICY IF EXISTS trainer_all_schools ON risk_scores;
CREATE POLICY trainer_all_schools ON risk_scores TO ssp_trainer USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS trainer_all_schools ON model_versions;
CREATE POLICY trainer_all_schools ON model_versions TO ssp_trainer USING (true) WITH CHECK (true);

CREATE OR REPLACE FUNCTION analyze_risk_scores() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    ANALYZE public.risk_scores
$$;
REVOKE ALL ON FUNCTION analyze_risk_scores() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analyze_risk_scores() TO ssp_trainer;

-- ---------------------------------------------------------------------------------------------
-- Audit-log partitions. Partition DDL needs the owner of audit_log; these SECURITY DEFINER
-- functions (owned by it, fixed search_path) do exactly the steps of archival and nothing else.
-- (Every function here sets search_path = public, pg_temp: pg_catalog is searched first anyway,
-- pg_temp last so no temporary object can shadow a table, and CREATE TABLE lands in public.)
-- audit_log_ensure_partitions (0003) becomes the owner's alone.
REVOKE ALL ON FUNCTION audit_log_ensure_partitions(date, date) FROM PUBLIC;

-- This month's and the next two months' partitions (UTC), as the API needs to audit: startup
-- creates them if missing (the API may create nothing else).
CREATE OR REPLACE FUNCTION audit_log_ensure_current_partitions() RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT public.audit_log_ensure_partitions(d, (d + interval '2 months')::date)
    FROM (SELECT (now() AT TIME ZONE 'UTC')::date AS d) t
$$;
REVOKE ALL ON FUNCTION audit_log_ensure_current_partitions() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_ensure_current_partitions() TO ssp_api, ssp_archiver;

-- The archiver's partitions ahead, a bounded range at a time.
CREATE OR REPLACE FUNCTION audit_log_create_partitions(from_month date, to_month date)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF from_month IS NULL OR to_month IS NULL OR to_month < from_month
       OR to_month >= from_month + interval '24 months'
       OR to_month > now() + interval '24 months' THEN
        RAISE EXCEPTION 'audit_log_create_partitions: at most 24 months, ending at most 24'
            ' months ahead (asked % to %)', from_month, to_month;
    END IF;
    RETURN public.audit_log_ensure_partitions(from_month, to_month);
END $$;
REVOKE ALL ON FUNCTION audit_log_create_partitions(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_create_partitions(date, date) TO ssp_archiver;

-- A partition archival may touch: a direct partition of audit_log whose range has ended (never
-- the month being written, nor any other table). Raises otherwise.
CREATE OR REPLACE FUNCTION audit_log_archivable_partition(part text) RETURNS regclass
LANGUAGE plpgsql STABLE SET search_path = public, pg_temp AS $$
DECLARE
    rel regclass;
    bound text;
    ends timestamptz;
BEGIN
    SELECT c.oid::regclass, pg_get_expr(c.relpartbound, c.oid) INTO rel, bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'public.audit_log'::regclass
      AND c.relnamespace = 'public'::regnamespace AND c.relname = part;
    IF rel IS NULL THEN
        RAISE EXCEPTION '% is not a partition of audit_log', part;
    END IF;
    -- e.g. FOR VALUES FROM ('2026-06-01 00:00:00+00') TO ('2026-07-01 00:00:00+00')
    ends := substring(bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
    IF ends IS NULL OR ends > now() THEN
        RAISE EXCEPTION 'partition % has not ended (%)', part, bound;
    END IF;
    RETURN rel;
END $$;
REVOKE ALL ON FUNCTION audit_log_archivable_partition(text) FROM PUBLIC;

-- Blocks writes to the partition until the transaction ends, while it is exported.
CREATE OR REPLACE FUNCTION audit_log_lock_partition(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', audit_log_archivable_partition(part));
END $$;
REVOKE ALL ON FUNCTION audit_log_lock_partition(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_lock_partition(text) TO ssp_archiver;

-- Detaches and drops the partition, only if it holds exactly the rows the caller exported.
CREATE OR REPLACE FUNCTION audit_log_drop_partition(part text, expected_rows bigint)
RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    rel regclass := audit_log_archivable_partition(part);
    n bigint;
BEGIN
    EXECUTE format('LOCK TABLE %s IN EXCLUSIVE MODE', rel);
    EXECUTE format('SELECT count(*) FROM %s', rel) INTO n;
    IF n IS DISTINCT FROM expected_rows THEN
        RAISE EXCEPTION 'partition % holds % rows, not %: kept', part, n, expected_rows;
    END IF;
    EXECUTE format('ALTER TABLE public.audit_log DETACH PARTITION %s', rel);
    EXECUTE format('DROP TABLE %s', rel);
END $$;
REVOKE ALL ON FUNCTION audit_log_drop_partition(text, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_log_drop_partition(text, bigint) TO ssp_archiver;

-- The archiver reads the rows it exports through the parent (the partitions grant nothing).
GRANT SELECT ON audit_log TO ssp_archiver;
DROP POLICY IF EXISTS archiver_read ON audit_log;
CREATE POLICY archiver_read ON audit_log FOR SELECT TO ssp_archiver USING (true);

-- ---------------------------------------------------------------------------------------------
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['classrooms', 'staff', 'students', 'attendance', 'exams', 'marks',
                             'behaviour_incidents', 'interventions', 'alerts', 'risk_scores',
                             'schools', 'model_versions', 'audit_log']
    LOOP
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    END LOOP;
END $$;
