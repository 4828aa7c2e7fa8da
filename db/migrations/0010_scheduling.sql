-- Scheduled checks: a ledger of the slots whose result was written, so a check
-- job that runs twice (a retry after a worker died, a re-enqueue after a
-- crash) writes its result once.

CREATE TABLE check_slots (
    integration_id uuid NOT NULL REFERENCES integration_config (id) ON DELETE CASCADE,
    slot           timestamptz NOT NULL,
    org_id         uuid NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, slot)
);
CREATE INDEX check_slots_recorded_idx ON check_slots (recorded_at);

ALTER TABLE check_slots ENABLE ROW LEVEL SECURITY;
CREATE POLICY check_slots_org_isolation ON check_slots TO ihm_api
    USING (org_id = ihm_claims_org_id()) WITH CHECK (org_id = ihm_claims_org_id());

-- Passive integrations whose cool-down ended are switched back by the scheduler.
CREATE INDEX integration_config_passive_idx ON integration_config (passive_until)
    WHERE monitoring_mode = 'PASSIVE' AND passive_until IS NOT NULL;
