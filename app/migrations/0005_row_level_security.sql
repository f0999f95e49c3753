-- Row-level security by school/district (seed 000). The API runs as the non-owner role
-- ssp_app, so policies apply to it; the owner (migrations, training, archival) is not filtered.
-- The tenant is set per transaction: set_config('app.school_id' | 'app.district_id', ..., true).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ssp_app') THEN
        CREATE ROLE ssp_app NOLOGIN NOBYPASSRLS;
    END IF;
END $$;
GRANT ssp_app TO CURRENT_USER;

-- Schools visible to the current transaction's tenant; none when no tenant is set.
CREATE FUNCTION app_visible_schools() RETURNS integer[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS $$
    SELECT CASE
        WHEN t.school IS NOT NULL THEN ARRAY[t.school]
        WHEN t.district IS NOT NULL
            THEN coalesce((SELECT array_agg(id) FROM schools WHERE district_id = t.district),
                          '{}'::integer[])
        ELSE '{}'::integer[]
    END
    FROM (SELECT nullif(current_setting('app.school_id', true), '')::integer AS school,
                 nullif(current_setting('app.district_id', true), '')::integer AS district) t
$$;
REVOKE ALL ON FUNCTION app_visible_schools() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app_visible_schools() TO ssp_app;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['classrooms', 'staff', 'students', 'attendance', 'exams', 'marks',
                             'behaviour_incidents', 'interventions', 'alerts', 'risk_scores']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I TO ssp_app '
            'USING (school_id = ANY (app_visible_schools())) '
            'WITH CHECK (school_id = ANY (app_visible_schools()))', t);
        EXECUTE format('GRANT SELECT ON %I TO ssp_app', t);
    END LOOP;
END $$;

ALTER TABLE schools ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON schools TO ssp_app USING (id = ANY (app_visible_schools()));
GRANT SELECT ON schools, districts TO ssp_app;

-- District-wide models (school_id NULL) are visible to every tenant.
ALTER TABLE model_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON model_versions TO ssp_app
    USING (school_id IS NULL OR school_id = ANY (app_visible_schools()));
GRANT SELECT ON model_versions TO ssp_app;

-- Key lookup happens before a tenant is known; only hashes are stored.
GRANT SELECT ON api_clients TO ssp_app;
-- The API may append to the audit log but never read or change it.
GRANT INSERT ON audit_log TO ssp_app;

-- Materialized views cannot carry policies: the API reads features through this filtered view.
CREATE VIEW student_features_visible WITH (security_barrier) AS
    SELECT * FROM student_features WHERE school_id = ANY (app_visible_schools());
GRANT SELECT ON student_features_visible TO ssp_app;
