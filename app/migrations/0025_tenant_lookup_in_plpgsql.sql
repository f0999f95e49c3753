-- app_visible_schools() (0005) in PL/pgSQL: the same schools for the same settings, cheaper.
-- Row-level security calls it in every statement of a tenant (a read's policies, the audit
-- row's WITH CHECK). A SQL function that cannot be inlined (this one is SECURITY DEFINER) has
-- its body parsed and planned again in every statement that calls it, about a tenth of a
-- millisecond each time; PL/pgSQL keeps its plan for the session. Replaced in place: its owner
-- (ssp_tenant_lookup, 0007), its grants and the policies that call it stay as they are.
CREATE OR REPLACE FUNCTION app_visible_schools() RETURNS integer[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public AS $$
DECLARE
    school integer := nullif(current_setting('app.school_id', true), '')::integer;
    district integer := nullif(current_setting('app.district_id', true), '')::integer;
BEGIN
    IF school IS NOT NULL THEN
        RETURN ARRAY[school];
    ELSIF district IS NOT NULL THEN
        RETURN coalesce((SELECT array_agg(id) FROM schools WHERE district_id = district),
                        '{}'::integer[]);
    END IF;
    RETURN '{}'::integer[];
END
$$;
