-- Notification delivery (workers/delivery): idempotent in-app rows and a
-- per-message delivery log.

-- Enqueueing the same message twice (a retried alert transaction, a repeated
-- cron tick) must not show it twice in the app. NULL keys (notifications not
-- made by db.outbox.enqueue) never conflict.
ALTER TABLE notifications ADD COLUMN idempotency_key text
    CHECK (length(idempotency_key) BETWEEN 1 AND 400);
ALTER TABLE notifications
    ADD CONSTRAINT notifications_org_idempotency_key_key UNIQUE (org_id, idempotency_key);

-- The delivery log of each message: one entry per attempt
-- ({"attempt", "at", "outcome", "error"}), at most a few (attempts are capped),
-- so it lives on the row instead of in a table of its own.
ALTER TABLE notification_outbox
    ADD COLUMN delivery_log jsonb NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(delivery_log) = 'array'),
    ADD COLUMN last_attempt_at timestamptz;

-- Pruning finished messages goes by age.
CREATE INDEX notification_outbox_finished_idx
    ON notification_outbox (created_at) WHERE state <> 'PENDING';
