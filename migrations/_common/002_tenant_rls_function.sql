-- The tenant row-level-security policy, defined once (shared/db.py's docstring says what it admits).
-- Applied, like every _common file, as the service's role with search_path = its schema, so the
-- function is created in each service schema, owned by that service, and a later migration of the
-- service calls it unqualified:
--
--     SELECT enable_tenant_rls('jobs');                -- rows scoped by organization_id
--     SELECT enable_tenant_rls('organizations', 'id'); -- a table scoped by another column
--
-- It produces exactly the policy the 001 migrations spell out by hand (those stay as they are: applied
-- files are checksum-locked). SECURITY INVOKER on purpose: ALTER TABLE needs the caller to own the table,
-- so the function grants nothing its caller could not already do.
CREATE FUNCTION enable_tenant_rls(tbl regclass, org_column text DEFAULT 'organization_id')
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    scope text := format(
        '(current_setting(''app.system'', true) = ''on'' '
        'OR %I = nullif(current_setting(''app.org_id'', true), '''')::uuid)',
        org_column);
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    -- FORCE: the owner (the service's own role, which is what the service connects as) is bound too.
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format('CREATE POLICY tenant_isolation ON %s USING %s WITH CHECK %s', tbl, scope, scope);
END
$$;
