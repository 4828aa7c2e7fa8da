-- System-wide reads for global admins: the worst integrations, per-provider
-- figures, scheduler drift, and which org an alert or channel belongs to.
--
-- Row-level security confines ihm_api to one org, so these are SECURITY
-- DEFINER (they run as the owner, who reads every org) and each checks the
-- caller's claims itself before anything else. search_path is pinned so a
-- caller cannot shadow the tables or functions they use.
--
-- Table grants: none change here. The repositories in db/ need nothing
-- beyond 0005 for the API role (acknowledge/dismiss write only the four
-- granted columns, channels are read through the granted columns only).

-- Unreachable, degraded and never-checked integrations, worst first: by
-- status, then the longest in that status first (never checked: configured
-- longest ago). The columns are db.health's org health shape.
CREATE FUNCTION ihm_global_unhealthy_integrations(p_limit integer)
RETURNS TABLE (integration_id uuid, org_id uuid, integration_type text, display_name text,
               enabled boolean, monitoring_mode text, next_check_at timestamptz, status text,
               latency_ms integer, checked_at timestamptz, status_since timestamptz,
               last_success_at timestamptz, consecutive_failures integer,
               error_category text, error_message text, error_guidance text,
               recovery_action text, docs_url text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN QUERY
    SELECT c.id, c.org_id, c.integration_type, t.display_name, c.enabled, c.monitoring_mode,
           c.next_check_at, s.status, s.latency_ms, s.checked_at, s.status_since,
           s.last_success_at, coalesce(s.consecutive_failures, 0), s.error_category,
           s.error_message, s.error_guidance, s.recovery_action, s.docs_url
      FROM integration_config c
      JOIN integration_types t ON t.key = c.integration_type
      LEFT JOIN integration_health_status s
             ON s.org_id = c.org_id AND s.integration_type = c.integration_type
     WHERE s.status IS NULL OR s.status IN ('unreachable', 'degraded')
     ORDER BY CASE s.status WHEN 'unreachable' THEN 0 WHEN 'degraded' THEN 1 ELSE 2 END,
              coalesce(s.status_since, c.created_at), c.org_id, c.integration_type
     LIMIT greatest(p_limit, 0);
END
$$;
REVOKE ALL ON FUNCTION ihm_global_unhealthy_integrations(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_unhealthy_integrations(integer) TO ihm_api;

-- Per integration type (every type, configured or not): current status counts,
-- and the checks logged since p_since (the raw log holds 30 days, which covers
-- every trend window). success_rate is NULL when there were no checks;
-- latencies are over the checks that measured one.
CREATE FUNCTION ihm_global_provider_stats(p_since timestamptz)
RETURNS TABLE (integration_type text, display_name text, integrations bigint, healthy bigint,
               degraded bigint, unreachable bigint, unknown bigint, checks bigint,
               success_rate double precision, avg_latency_ms double precision,
               p95_latency_ms double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN QUERY
    WITH current_status AS (
        SELECT c.integration_type AS type_key,
               count(*) AS integrations,
               count(*) FILTER (WHERE s.status = 'healthy') AS healthy,
               count(*) FILTER (WHERE s.status = 'degraded') AS degraded,
               count(*) FILTER (WHERE s.status = 'unreachable') AS unreachable,
               count(*) FILTER (WHERE s.status IS NULL) AS unknown
          FROM integration_config c
          LEFT JOIN integration_health_status s
                 ON s.org_id = c.org_id AND s.integration_type = c.integration_type
         GROUP BY c.integration_type
    ), logged AS (
        SELECT r.integration_type AS type_key,
               count(*) AS checks,
               count(*) FILTER (WHERE r.status = 'healthy') AS healthy_checks,
               avg(r.latency_ms)::double precision AS avg_latency_ms,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY r.latency_ms) AS p95_latency_ms
          FROM health_check_results r
         WHERE r.checked_at >= coalesce(p_since, '-infinity'::timestamptz)
         GROUP BY r.integration_type
    )
    SELECT t.key, t.display_name,
           coalesce(cs.integrations, 0), coalesce(cs.healthy, 0), coalesce(cs.degraded, 0),
           coalesce(cs.unreachable, 0), coalesce(cs.unknown, 0), coalesce(l.checks, 0),
           CASE WHEN l.checks > 0 THEN l.healthy_checks::double precision / l.checks END,
           l.avg_latency_ms, l.p95_latency_ms
      FROM integration_types t
      LEFT JOIN current_status cs ON cs.type_key = t.key
      LEFT JOIN logged l ON l.type_key = t.key
     ORDER BY t.display_name, t.key;
END
$$;
REVOKE ALL ON FUNCTION ihm_global_provider_stats(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_provider_stats(timestamptz) TO ihm_api;

-- Scheduled vs actual start of the checks logged since p_since that recorded
-- both: how many started over 5 minutes late, the median and the worst drift.
-- Drift is signed (a check started early counts negative); NULLs when none.
CREATE FUNCTION ihm_global_scheduler_stats(p_since timestamptz)
RETURNS TABLE (late_runs bigint, p50_drift_seconds double precision,
               max_drift_seconds double precision)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
#variable_conflict use_column
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN QUERY
    SELECT count(*) FILTER (WHERE d.drift > 300),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY d.drift),
           max(d.drift)
      FROM (SELECT extract(epoch FROM r.started_at - r.scheduled_for)::double precision AS drift
              FROM health_check_results r
             WHERE r.checked_at >= coalesce(p_since, '-infinity'::timestamptz)
               AND r.scheduled_for IS NOT NULL AND r.started_at IS NOT NULL) d;
END
$$;
REVOKE ALL ON FUNCTION ihm_global_scheduler_stats(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_scheduler_stats(timestamptz) TO ihm_api;

-- A global admin acts on one org at a time: its claims name that org and
-- row-level security confines it there. Handed only an alert's or a
-- channel's id, the API first asks which org it belongs to; these answer
-- across orgs (NULL when there is no such row).
CREATE FUNCTION ihm_global_alert_org(p_alert_id uuid)
RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN (SELECT a.org_id FROM health_check_alerts a WHERE a.id = p_alert_id);
END
$$;
REVOKE ALL ON FUNCTION ihm_global_alert_org(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_alert_org(uuid) TO ihm_api;

CREATE FUNCTION ihm_global_channel_org(p_channel_id uuid)
RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public AS $$
BEGIN
    PERFORM ihm_require_global_admin();
    RETURN (SELECT n.org_id FROM notification_channels n WHERE n.id = p_channel_id);
END
$$;
REVOKE ALL ON FUNCTION ihm_global_channel_org(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ihm_global_channel_org(uuid) TO ihm_api;
