-- Organizations, the integration type catalogue, each org's configured
-- integrations and their encrypted credentials.

CREATE TABLE organizations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE integration_types (
    key                      text PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_]*$'),
    display_name             text NOT NULL,
    category                 text NOT NULL
        CHECK (category IN ('accounting', 'email', 'calendar', 'chat', 'generic')),
    auth_kind                text NOT NULL CHECK (auth_kind IN ('oauth2', 'api_key', 'bearer', 'none')),
    default_interval_seconds integer NOT NULL,
    min_interval_seconds     integer NOT NULL CHECK (min_interval_seconds > 0),
    docs_url                 text,
    CHECK (default_interval_seconds >= min_interval_seconds)
);

-- Floors spare the providers' rate limits: accounting systems 15 min, others 5 min.
INSERT INTO integration_types
    (key, display_name, category, auth_kind, default_interval_seconds, min_interval_seconds, docs_url)
VALUES
    ('http', 'HTTP service', 'generic', 'bearer', 300, 300,
     'https://developer.mozilla.org/docs/Web/HTTP/Status'),
    ('slack', 'Slack', 'chat', 'bearer', 300, 300,
     'https://api.slack.com/methods/auth.test'),
    ('gmail', 'Gmail', 'email', 'oauth2', 300, 300,
     'https://developers.google.com/gmail/api/reference/rest/v1/users.messages/list'),
    ('google_calendar', 'Google Calendar', 'calendar', 'oauth2', 300, 300,
     'https://developers.google.com/calendar/api/v3/reference/events/list'),
    ('xledger', 'Xledger', 'accounting', 'api_key', 900, 900,
     'https://www.xledger.net/graphql/'),
    ('dynamics365', 'Microsoft Dynamics 365 Business Central', 'accounting', 'oauth2', 900, 900,
     'https://learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/');

CREATE TABLE integration_config (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                 uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    integration_type       text NOT NULL REFERENCES integration_types (key),
    enabled                boolean NOT NULL DEFAULT true,
    monitoring_mode        text NOT NULL DEFAULT 'ACTIVE' CHECK (monitoring_mode IN ('ACTIVE', 'PASSIVE')),
    -- Set when the scheduler switched to PASSIVE on its own (rate limiting); NULL
    -- for an explicit choice of an org admin.
    passive_until          timestamptz,
    check_interval_seconds integer NOT NULL CHECK (check_interval_seconds > 0),
    -- Non-sensitive configuration only; credentials live in integration_credentials.
    config                 jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    next_check_at          timestamptz NOT NULL DEFAULT now(),
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, integration_type),
    UNIQUE (id, org_id)
);

-- The scheduler's claim query: due, enabled, active.
CREATE INDEX integration_config_due_idx ON integration_config (next_check_at)
    WHERE enabled AND monitoring_mode = 'ACTIVE';

-- Second wall behind the API's validation: never below the type's floor.
CREATE FUNCTION integration_config_enforce_floor() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    floor_seconds integer;
BEGIN
    SELECT min_interval_seconds INTO floor_seconds
      FROM integration_types WHERE key = NEW.integration_type;
    IF NEW.check_interval_seconds < floor_seconds THEN
        RAISE EXCEPTION 'check_interval_seconds % is below the % floor of % seconds',
            NEW.check_interval_seconds, NEW.integration_type, floor_seconds
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

CREATE TRIGGER integration_config_enforce_floor
    BEFORE INSERT OR UPDATE ON integration_config
    FOR EACH ROW EXECUTE FUNCTION integration_config_enforce_floor();

-- Ciphertext only: AES-256-GCM with the key named by key_id (IHM_VAULT_KEYS).
CREATE TABLE integration_credentials (
    integration_id uuid PRIMARY KEY,
    org_id         uuid NOT NULL,
    key_id         text NOT NULL,
    ciphertext     bytea NOT NULL,
    -- When the provider said the secret or refresh token expires (warn ahead).
    expires_at     timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- The org is part of the key so credentials can never hang off another org's integration.
    FOREIGN KEY (integration_id, org_id) REFERENCES integration_config (id, org_id) ON DELETE CASCADE
);
CREATE INDEX integration_credentials_key_id_idx ON integration_credentials (key_id);
CREATE INDEX integration_credentials_org_idx ON integration_credentials (org_id);
