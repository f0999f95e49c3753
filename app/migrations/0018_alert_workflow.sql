-- Alerts people act on: acknowledged, assigned to a staff member of the alert's school, and
-- resolved with a reason, each step with who (the API key's name) and when. The API changes
-- only these columns (PATCH /v1/alerts/{id}), under the tenant policy (0005), and audits each
-- change in the same statement.
ALTER TABLE alerts
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN acknowledged_by text CHECK (length(acknowledged_by) <= 200),
    ADD COLUMN assigned_at     timestamptz,
    ADD COLUMN assigned_by     text CHECK (length(assigned_by) <= 200),
    ADD COLUMN resolved_at     timestamptz,
    ADD COLUMN resolved_by     text CHECK (length(resolved_by) <= 200),
    ADD COLUMN resolution      text CHECK (length(resolution) BETWEEN 1 AND 1000),
    ADD CONSTRAINT alerts_resolved_with_reason
        CHECK (status <> 'resolved' OR resolved_at IS NULL OR resolution IS NOT NULL);

-- An alert or a case is assigned to a member of its own school's staff, whoever writes it
-- (NOT VALID: enforced on every new or changed row; rows written before are not rechecked).
ALTER TABLE staff ADD CONSTRAINT staff_id_school_key UNIQUE (id, school_id);
ALTER TABLE alerts ADD CONSTRAINT alerts_assignee_of_school
    FOREIGN KEY (assigned_to, school_id) REFERENCES staff (id, school_id) NOT VALID;

-- Open alerts left unacknowledged the longest, per school (the overdue filter and metric).
CREATE INDEX alerts_open_raised_idx ON alerts (school_id, raised_at) WHERE status = 'open';

GRANT UPDATE (status, assigned_to, acknowledged_at, acknowledged_by, assigned_at, assigned_by,
              resolved_at, resolved_by, resolution) ON alerts TO ssp_api;

-- The overdue metric: counts only, per school, of every school (the API's /metrics has no
-- tenant). No student's row leaves the function. It reads alerts as its own NOLOGIN owner,
-- ssp_alert_counter, which may read three columns of alerts while it is the current user,
-- i.e. inside the function (the master, under FORCE ROW LEVEL SECURITY, sees no row without
-- a tenant); it owns nothing else, and no login is a member of it but the master.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_alert_counter') THEN
        CREATE ROLE ssp_alert_counter NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB
            NOREPLICATION INHERIT;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_alert_counter'
               AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication
                    OR rolcanlogin)) THEN
        RAISE EXCEPTION 'ssp_alert_counter has LOGIN, SUPERUSER, BYPASSRLS, CREATEROLE,'
            ' CREATEDB or REPLICATION; remove it before migrating';
    END IF;
END $$;
GRANT ssp_alert_counter TO CURRENT_USER;
GRANT SELECT (school_id, status, raised_at) ON alerts TO ssp_alert_counter;
CREATE POLICY overdue_count ON alerts FOR SELECT TO ssp_alert_counter
    USING (current_user = 'ssp_alert_counter');

CREATE FUNCTION overdue_alert_counts(days integer)
RETURNS TABLE (school_id integer, overdue bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT a.school_id, count(*) FROM public.alerts a
    WHERE a.status = 'open' AND a.raised_at < now() - make_interval(days => days)
    GROUP BY a.school_id
$$;
GRANT CREATE ON SCHEMA public TO ssp_alert_counter;
ALTER FUNCTION overdue_alert_counts(integer) OWNER TO ssp_alert_counter;
REVOKE CREATE ON SCHEMA public FROM ssp_alert_counter;
REVOKE ALL ON FUNCTION overdue_alert_counts(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION overdue_alert_counts(integer) TO ssp_api;
