-- Row-level security on every org-scoped table, and what the API role may do.
--
-- Policies only ever compare org_id with the request's claims. A global admin
-- acting on one org does so with that org in its claims; reads across orgs go
-- through SECURITY DEFINER functions that check the role themselves.

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'integration_config', 'integration_credentials', 'integration_health_status',
        'health_check_history', 'health_check_results', 'health_rollups_hourly',
        'health_rollups_monthly', 'health_check_alerts', 'alert_rules',
        'notification_channels', 'notifications', 'notification_reads',
        'notification_outbox', 'export_runs', 'audit_log'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I TO ihm_api '
                       'USING (org_id = ihm_claims_org_id()) '
                       'WITH CHECK (org_id = ihm_claims_org_id())', t || '_org_isolation', t);
    END LOOP;
END
$$;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
CREATE POLICY organizations_org_isolation ON organizations TO ihm_api
    USING (id = ihm_claims_org_id()) WITH CHECK (id = ihm_claims_org_id());

-- Reads.
GRANT SELECT ON integration_types TO ihm_api;
GRANT SELECT ON organizations, integration_config, integration_health_status,
    health_check_history, health_check_results, health_rollups_hourly, health_rollups_monthly,
    health_check_alerts, alert_rules, notifications, notification_reads, export_runs, audit_log
    TO ihm_api;
-- Secrets are write-only for the API: it may learn that they exist, never read them.
GRANT SELECT (integration_id, org_id, expires_at, updated_at) ON integration_credentials TO ihm_api;
GRANT SELECT (id, org_id, kind, target_masked, min_severity, enabled, consecutive_failures,
              failing_since, created_at) ON notification_channels TO ihm_api;

-- Writes the API makes on behalf of org admins, coordinators and integrators.
-- integration_health_status and its history are written by the worker only.
GRANT INSERT ON organizations TO ihm_api;
GRANT INSERT, UPDATE, DELETE ON integration_config, integration_credentials, alert_rules,
    notification_channels TO ihm_api;
GRANT UPDATE (acknowledged_at, acknowledged_by, dismissed_at, dismissed_by)
    ON health_check_alerts TO ihm_api;
GRANT INSERT, UPDATE ON notification_reads, export_runs TO ihm_api;
GRANT INSERT ON audit_log TO ihm_api;

-- Maintenance functions are the worker's.
REVOKE ALL ON FUNCTION ihm_ensure_result_partitions(date, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION ihm_prune_results(interval) FROM PUBLIC;

-- System-wide counts for global admins. SECURITY DEFINER reads every org, so
-- the function checks the claims' role itself before anything else.
CREATE FUNCTION ihm_global_health_summary()
RETURNS TABLE (organizations bigint, integrations bigint, healthy bigint, degraded bigint,
               unreachable bigint, unknown bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN QUERY
    SELECT (SELECT count(*) FROM organizations),
           count(c.id),
           count(*) FILTER (WHERE s.status = 'healthy'),
           count(*) FILTER (WHERE s.status = 'degraded'),
           count(*) FILTER (WHERE s.status = 'unreachable'),
           count(c.id) FILTER (WHERE s.status IS NULL)
      FROM integration_config c
      LEFT JOIN integration_health_status s USING (org_id, integration_type);
END
$$;
REVOKE ALL ON FUNCTION ihm_global_health_summary() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_health_summary() TO ihm_api;
