-- Alerts, rules, channels, in-app notifications, the delivery outbox, export
-- runs and the audit log. The alerting engine fills them; the API reads and
-- writes them under row-level security.

CREATE TABLE health_check_alerts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_type text NOT NULL REFERENCES integration_types (key),
    kind             text NOT NULL CHECK (kind IN
        ('AUTH_FAILURE', 'UNREACHABLE', 'DEGRADED', 'EXPORT_FAILED', 'SCHEDULER_DRIFT')),
    severity         text NOT NULL CHECK (severity IN ('INFO', 'WARNING', 'CRITICAL')),
    state            text NOT NULL DEFAULT 'FIRING' CHECK (state IN ('FIRING', 'RESOLVED')),
    category         text CHECK (category IN
        ('AUTH', 'TIMEOUT', 'NETWORK', 'RATE_LIMITED', 'PROVIDER_ERROR', 'CONFIGURATION', 'UNKNOWN')),
    title            text NOT NULL,
    message          text NOT NULL,
    guidance         text NOT NULL,
    -- Flapping and other variants of a kind are told apart here.
    fingerprint      text NOT NULL DEFAULT '',
    opened_at        timestamptz NOT NULL DEFAULT now(),
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    occurrences      integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    last_notified_at timestamptz,
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    dismissed_at     timestamptz,
    dismissed_by     text,
    resolved_at      timestamptz,
    CHECK ((state = 'RESOLVED') = (resolved_at IS NOT NULL))
);
-- One firing alert per problem per integration: repeats update it.
CREATE UNIQUE INDEX health_check_alerts_one_firing_idx
    ON health_check_alerts (org_id, integration_type, kind, fingerprint) WHERE state = 'FIRING';
CREATE INDEX health_check_alerts_org_opened_idx ON health_check_alerts (org_id, opened_at DESC, id);

CREATE TABLE alert_rules (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                  uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    -- NULL: every integration of the org.
    integration_type        text REFERENCES integration_types (key),
    failure_threshold       integer NOT NULL DEFAULT 2 CHECK (failure_threshold BETWEEN 1 AND 100),
    recovery_threshold      integer NOT NULL DEFAULT 1 CHECK (recovery_threshold BETWEEN 1 AND 100),
    degraded_latency_ms     integer CHECK (degraded_latency_ms > 0),
    repeat_interval_minutes integer NOT NULL DEFAULT 60 CHECK (repeat_interval_minutes >= 1),
    notify_on_recovery      boolean NOT NULL DEFAULT true,
    min_severity            text NOT NULL DEFAULT 'WARNING'
        CHECK (min_severity IN ('INFO', 'WARNING', 'CRITICAL')),
    group_wait_seconds      integer NOT NULL DEFAULT 30 CHECK (group_wait_seconds BETWEEN 0 AND 3600),
    silenced_until          timestamptz,
    updated_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (org_id, integration_type)
);

CREATE TABLE notification_channels (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id               uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind                 text NOT NULL CHECK (kind IN ('IN_APP', 'EMAIL', 'WEBHOOK', 'APPRISE')),
    -- Apprise URLs carry tokens: the target is stored encrypted like a secret,
    -- and only its masked form is ever read back.
    target_masked        text NOT NULL,
    target_key_id        text,
    target_ciphertext    bytea,
    secret_key_id        text,
    secret_ciphertext    bytea,
    min_severity         text NOT NULL DEFAULT 'WARNING'
        CHECK (min_severity IN ('INFO', 'WARNING', 'CRITICAL')),
    enabled              boolean NOT NULL DEFAULT true,
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, org_id)
);
CREATE INDEX notification_channels_org_idx ON notification_channels (org_id);

CREATE TABLE notifications (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    alert_id   uuid REFERENCES health_check_alerts (id) ON DELETE SET NULL,
    title      text NOT NULL,
    body       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (id, org_id)
);
CREATE INDEX notifications_org_created_idx ON notifications (org_id, created_at DESC, id);

-- Read state is per user.
CREATE TABLE notification_reads (
    notification_id uuid NOT NULL,
    org_id          uuid NOT NULL,
    user_id         text NOT NULL,
    read_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (notification_id, user_id),
    FOREIGN KEY (notification_id, org_id) REFERENCES notifications (id, org_id) ON DELETE CASCADE
);

-- Durable delivery: written in the transaction that raised the alert,
-- delivered at least once with retries, each message with its idempotency key.
CREATE TABLE notification_outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id          uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    channel_id      uuid,
    alert_id        uuid REFERENCES health_check_alerts (id) ON DELETE SET NULL,
    idempotency_key text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'PENDING'
        CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        integer NOT NULL DEFAULT 0,
    not_before      timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    FOREIGN KEY (channel_id, org_id)
        REFERENCES notification_channels (id, org_id) ON DELETE CASCADE
);
CREATE INDEX notification_outbox_due_idx ON notification_outbox (not_before) WHERE state = 'PENDING';

CREATE TABLE export_runs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_type text NOT NULL REFERENCES integration_types (key),
    idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    status           text NOT NULL CHECK (status IN ('PENDING', 'RUNNING', 'SUCCEEDED', 'FAILED')),
    scheduled_for    timestamptz,
    started_at       timestamptz,
    finished_at      timestamptz,
    error_category   text CHECK (error_category IN
        ('AUTH', 'TIMEOUT', 'NETWORK', 'RATE_LIMITED', 'PROVIDER_ERROR', 'CONFIGURATION', 'UNKNOWN')),
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, idempotency_key)
);
CREATE INDEX export_runs_org_created_idx ON export_runs (org_id, created_at DESC, id);

CREATE TABLE audit_log (
    id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    role    text NOT NULL
        CHECK (role IN ('member', 'coordinator', 'org_admin', 'service', 'global_admin')),
    -- NULL for actions of a global admin that concern no single org.
    org_id  uuid,
    action  text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_org_at_idx ON audit_log (org_id, at DESC, id);
