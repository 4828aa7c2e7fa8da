-- Current status per integration, its capped history (a trigger keeps both in
-- step atomically), the raw results log partitioned by day, and rollups.

CREATE TABLE integration_health_status (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id               uuid NOT NULL,
    integration_type     text NOT NULL,
    status               text NOT NULL CHECK (status IN ('healthy', 'degraded', 'unreachable')),
    latency_ms           integer CHECK (latency_ms >= 0),
    checked_at           timestamptz NOT NULL,
    error_message        text,
    error_category       text CHECK (error_category IN
        ('AUTH', 'TIMEOUT', 'NETWORK', 'RATE_LIMITED', 'PROVIDER_ERROR', 'CONFIGURATION', 'UNKNOWN')),
    error_guidance       text,
    recovery_action      text CHECK (recovery_action IN ('REAUTHENTICATE', 'UPDATE_CREDENTIALS',
        'WAIT_AND_RETRY', 'CHECK_PROVIDER_STATUS', 'FIX_CONFIGURATION', 'CONTACT_SUPPORT')),
    docs_url             text,
    "trigger"            text NOT NULL DEFAULT 'scheduled'
        CHECK ("trigger" IN ('scheduled', 'manual', 'retry', 'passive')),
    -- Maintained by integration_health_status_derive(); writers need not set them.
    previous_status      text,
    status_since         timestamptz NOT NULL,
    last_success_at      timestamptz,
    consecutive_failures integer NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, integration_type),
    FOREIGN KEY (org_id, integration_type)
        REFERENCES integration_config (org_id, integration_type) ON DELETE CASCADE
);
CREATE INDEX integration_health_status_status_idx ON integration_health_status (status);

-- Derived columns, so every writer gets flips, streaks and "since" right.
CREATE FUNCTION integration_health_status_derive() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.previous_status := NULL;
        NEW.status_since := NEW.checked_at;
        NEW.last_success_at := CASE WHEN NEW.status = 'healthy' THEN NEW.checked_at END;
        NEW.consecutive_failures := CASE WHEN NEW.status = 'unreachable' THEN 1 ELSE 0 END;
    ELSE
        NEW.previous_status := OLD.status;
        NEW.status_since := CASE WHEN NEW.status = OLD.status
                                 THEN OLD.status_since ELSE NEW.checked_at END;
        NEW.last_success_at := CASE WHEN NEW.status = 'healthy'
                                    THEN NEW.checked_at ELSE OLD.last_success_at END;
        NEW.consecutive_failures := CASE WHEN NEW.status = 'unreachable'
                                         THEN OLD.consecutive_failures + 1 ELSE 0 END;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER integration_health_status_derive
    BEFORE INSERT OR UPDATE ON integration_health_status
    FOR EACH ROW EXECUTE FUNCTION integration_health_status_derive();

CREATE TABLE health_check_history (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id           uuid NOT NULL,
    integration_type text NOT NULL,
    status           text NOT NULL,
    latency_ms       integer,
    checked_at       timestamptz NOT NULL,
    error_category   text,
    error_message    text,
    "trigger"        text NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, integration_type)
        REFERENCES integration_config (org_id, integration_type) ON DELETE CASCADE
);
-- Serves both "newest first" reads and the prune below with an index scan of
-- at most 96 entries, however large the table grows.
CREATE INDEX health_check_history_key_newest_idx
    ON health_check_history (org_id, integration_type, checked_at DESC, id DESC);

-- Copy every write of a status row into history, in the same statement, and
-- keep only the newest 96 rows (24 h at 15 min) of that integration.
CREATE FUNCTION integration_health_status_to_history() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    keep CONSTANT integer := 96;
    oldest_kept record;
BEGIN
    INSERT INTO health_check_history
        (org_id, integration_type, status, latency_ms, checked_at,
         error_category, error_message, "trigger")
    VALUES
        (NEW.org_id, NEW.integration_type, NEW.status, NEW.latency_ms, NEW.checked_at,
         NEW.error_category, NEW.error_message, NEW."trigger");

    SELECT checked_at, id INTO oldest_kept
      FROM health_check_history
     WHERE org_id = NEW.org_id AND integration_type = NEW.integration_type
     ORDER BY checked_at DESC, id DESC
    OFFSET keep - 1 LIMIT 1;

    IF FOUND THEN
        DELETE FROM health_check_history
         WHERE org_id = NEW.org_id AND integration_type = NEW.integration_type
           AND (checked_at, id) < (oldest_kept.checked_at, oldest_kept.id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER integration_health_status_to_history
    AFTER INSERT OR UPDATE ON integration_health_status
    FOR EACH ROW EXECUTE FUNCTION integration_health_status_to_history();

-- Every completed check, kept 30 days; whole day partitions are dropped.
CREATE TABLE health_check_results (
    org_id           uuid NOT NULL,
    integration_type text NOT NULL,
    checked_at       timestamptz NOT NULL,
    status           text NOT NULL CHECK (status IN ('healthy', 'degraded', 'unreachable')),
    latency_ms       integer,
    error_category   text,
    "trigger"        text NOT NULL,
    -- Scheduled slot vs actual start: drift is measured from these.
    scheduled_for    timestamptz,
    started_at       timestamptz,
    -- integration + scheduled slot (the arq job id) for scheduled checks.
    idempotency_key  text
) PARTITION BY RANGE (checked_at);

CREATE INDEX health_check_results_key_time_idx
    ON health_check_results (org_id, integration_type, checked_at);
CREATE INDEX health_check_results_time_idx ON health_check_results (checked_at);

-- Catches any row whose day has no partition yet, so no result is ever lost;
-- ihm_ensure_result_partitions() moves such rows into their day later.
CREATE TABLE health_check_results_default PARTITION OF health_check_results DEFAULT;

-- Create the day partitions [p_from, p_from + p_days) that are missing (UTC days).
CREATE FUNCTION ihm_ensure_result_partitions(p_from date, p_days integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day date;
    part text;
    lo timestamptz;
    hi timestamptz;
    created integer := 0;
BEGIN
    -- Several workers run this; one at a time.
    PERFORM pg_advisory_xact_lock(hashtext('ihm_ensure_result_partitions'));
    FOR i IN 0 .. p_days - 1 LOOP
        day := p_from + i;
        part := 'health_check_results_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(part) IS NOT NULL;
        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
        EXECUTE format('CREATE TABLE %I (LIKE health_check_results INCLUDING DEFAULTS '
                       'INCLUDING CONSTRAINTS)', part);
        -- Attaching fails while the default partition holds rows of that day: move them.
        EXECUTE format('WITH moved AS (DELETE FROM health_check_results_default '
                       'WHERE checked_at >= %L AND checked_at < %L RETURNING *) '
                       'INSERT INTO %I SELECT * FROM moved', lo, hi, part);
        EXECUTE format('ALTER TABLE health_check_results ATTACH PARTITION %I '
                       'FOR VALUES FROM (%L) TO (%L)', part, lo, hi);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- Remove raw results older than p_keep: drop whole day partitions that lie
-- entirely before the cut-off, delete the older part of the boundary day.
CREATE FUNCTION ihm_prune_results(p_keep interval DEFAULT interval '30 days')
RETURNS TABLE (dropped_partitions integer, deleted_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE
    cutoff timestamptz := now() - p_keep;
    part record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ihm_ensure_result_partitions'));
    dropped_partitions := 0;
    FOR part IN
        SELECT c.relname
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'health_check_results'::regclass
           AND c.relname ~ '^health_check_results_p[0-9]{8}$'
    LOOP
        IF (to_date(right(part.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
           <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped_partitions := dropped_partitions + 1;
        END IF;
    END LOOP;
    DELETE FROM health_check_results WHERE checked_at < cutoff;
    GET DIAGNOSTICS deleted_rows = ROW_COUNT;
    RETURN NEXT;
END
$$;

SELECT ihm_ensure_result_partitions((now() AT TIME ZONE 'UTC')::date - 1, 4);

-- Hourly rollups (kept 13 months) and monthly summaries (kept forever).
CREATE TABLE health_rollups_hourly (
    org_id           uuid NOT NULL,
    integration_type text NOT NULL,
    bucket_start     timestamptz NOT NULL,
    checks           integer NOT NULL,
    healthy          integer NOT NULL,
    degraded         integer NOT NULL,
    unreachable      integer NOT NULL,
    avg_latency_ms   double precision,
    p95_latency_ms   double precision,
    PRIMARY KEY (org_id, integration_type, bucket_start),
    CHECK (checks = healthy + degraded + unreachable)
);
CREATE INDEX health_rollups_hourly_bucket_idx ON health_rollups_hourly (bucket_start);

CREATE TABLE health_rollups_monthly (
    org_id           uuid NOT NULL,
    integration_type text NOT NULL,
    month_start      date NOT NULL,
    checks           integer NOT NULL,
    healthy          integer NOT NULL,
    degraded         integer NOT NULL,
    unreachable      integer NOT NULL,
    avg_latency_ms   double precision,
    p95_latency_ms   double precision,
    PRIMARY KEY (org_id, integration_type, month_start),
    CHECK (checks = healthy + degraded + unreachable)
);
