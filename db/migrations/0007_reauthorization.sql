-- Re-authorizing an OAuth integration needs its client id, which lives inside
-- the encrypted credentials the API role may not read. This function hands
-- the ciphertext (never plaintext: the vault key stays in the API process) to
-- an org admin of that integration's org, or a global admin acting on it.

CREATE FUNCTION ihm_reauthorization_credentials(p_integration_id uuid)
RETURNS TABLE (key_id text, ciphertext bytea)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    IF ihm_claims_role() NOT IN ('org_admin', 'global_admin') THEN
        RAISE EXCEPTION 'org_admin or global_admin role required'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN QUERY
    SELECT cr.key_id, cr.ciphertext
      FROM integration_credentials cr
     WHERE cr.integration_id = p_integration_id
       AND cr.org_id = ihm_claims_org_id();
END
$$;
REVOKE ALL ON FUNCTION ihm_reauthorization_credentials(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_reauthorization_credentials(uuid) TO ihm_api;
