-- The app role may append audit rows only for its own tenant's schools (or rows about no
-- school); without a policy a tenant could write audit rows in another school's name. The app
-- role has no SELECT on audit_log, so the INSERT policy is the only one it needs.
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_audit_insert ON audit_log FOR INSERT TO ssp_app
    WITH CHECK (school_id IS NULL OR school_id = ANY (app_visible_schools()));
