-- The API's non-owner role and the helpers that read the request's JWT claims.
--
-- API requests run `SET LOCAL ROLE ihm_api` plus
-- `set_config('request.jwt.claims', '<json>', true)` inside their transaction
-- (as PostgREST/Supabase do). The migrating user owns every table and is the
-- service role the worker runs as: owners bypass row-level security, ihm_api
-- never does.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'ihm_api') THEN
        CREATE ROLE ihm_api NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    -- Roles are cluster-wide: another database's migration created it first.
    NULL;
END
$$;

-- The owner must be able to SET ROLE ihm_api (implicit for superusers).
DO $$
BEGIN
    EXECUTE format('GRANT ihm_api TO %I', current_user);
EXCEPTION WHEN duplicate_object OR invalid_grant_operation THEN
    NULL;
END
$$;

-- Claims of the current request; an empty object outside a request.
CREATE FUNCTION ihm_claims() RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb
$$;

-- The org the request acts for; NULL when the claims name none (or a bad one).
CREATE FUNCTION ihm_claims_org_id() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN (ihm_claims() ->> 'org_id')::uuid;
EXCEPTION WHEN invalid_text_representation THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION ihm_claims_role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT ihm_claims() ->> 'role'
$$;

-- Refuse anyone whose claims are not global_admin (for SECURITY DEFINER functions).
CREATE FUNCTION ihm_require_global_admin() RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF ihm_claims_role() IS DISTINCT FROM 'global_admin' THEN
        RAISE EXCEPTION 'global_admin role required'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO ihm_api;
GRANT EXECUTE ON FUNCTION ihm_claims(), ihm_claims_org_id(), ihm_claims_role(),
    ihm_require_global_admin() TO ihm_api;
