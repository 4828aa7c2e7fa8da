-- Provider-wide incidents: one provider failing for many orgs at once.
--
-- Incidents are global, so the API role gets no grant on these tables at all
-- (row-level security is on too, with no policy for it: nothing shows even if
-- a grant slips in later). Global admins read them through
-- ihm_global_provider_incidents(), which checks the claims' role itself, like
-- the functions of 0006. The worker (owner, service role) writes them.

CREATE TABLE provider_incidents (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    integration_type   text NOT NULL REFERENCES integration_types (key),
    state              text NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'RESOLVED')),
    opened_at          timestamptz NOT NULL,
    resolved_at        timestamptz,
    -- At the last evaluation: orgs with the provider enabled, and failing on its side.
    orgs_with_provider integer NOT NULL CHECK (orgs_with_provider >= 0),
    failing_orgs       integer NOT NULL CHECK (failing_orgs >= 0),
    peak_failing_orgs  integer NOT NULL CHECK (peak_failing_orgs >= 0),
    last_evaluated_at  timestamptz NOT NULL,
    CHECK ((state = 'RESOLVED') = (resolved_at IS NOT NULL))
);
-- At most one open incident per provider: concurrent openers agree on one row.
CREATE UNIQUE INDEX provider_incidents_one_open_idx
    ON provider_incidents (integration_type) WHERE state = 'OPEN';
CREATE INDEX provider_incidents_opened_idx ON provider_incidents (opened_at DESC, id);

-- The orgs an incident affected, and whether each was told (once per incident).
CREATE TABLE provider_incident_orgs (
    incident_id uuid NOT NULL REFERENCES provider_incidents (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    joined_at   timestamptz NOT NULL,
    notified_at timestamptz,
    PRIMARY KEY (incident_id, org_id)
);
CREATE INDEX provider_incident_orgs_org_idx ON provider_incident_orgs (org_id);

ALTER TABLE provider_incidents ENABLE ROW LEVEL SECURITY;
ALTER TABLE provider_incident_orgs ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON provider_incidents, provider_incident_orgs FROM PUBLIC;

-- The hourly credential-expiry scan reads only credentials that say when they expire.
CREATE INDEX integration_credentials_expires_idx
    ON integration_credentials (expires_at) WHERE expires_at IS NOT NULL;

-- Incidents, open ones first, then newest first; for global admins only.
CREATE FUNCTION ihm_global_provider_incidents(p_open_only boolean, p_limit integer)
RETURNS TABLE (id uuid, integration_type text, display_name text, state text,
               opened_at timestamptz, resolved_at timestamptz, orgs_with_provider integer,
               failing_orgs integer, peak_failing_orgs integer, affected_orgs bigint,
               last_evaluated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN QUERY
    SELECT i.id, i.integration_type, t.display_name, i.state, i.opened_at, i.resolved_at,
           i.orgs_with_provider, i.failing_orgs, i.peak_failing_orgs,
           (SELECT count(*) FROM provider_incident_orgs o WHERE o.incident_id = i.id),
           i.last_evaluated_at
      FROM provider_incidents i
      JOIN integration_types t ON t.key = i.integration_type
     WHERE NOT coalesce(p_open_only, false) OR i.state = 'OPEN'
     ORDER BY i.state = 'OPEN' DESC, i.opened_at DESC, i.id
     LIMIT greatest(p_limit, 0);
END
$$;
REVOKE ALL ON FUNCTION ihm_global_provider_incidents(boolean, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_provider_incidents(boolean, integer) TO ihm_api;
