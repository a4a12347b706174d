-- The notification outbox. The agent's notification records become its event rows: every
-- notification is a row first (written by the domain in the transaction of what it reports),
-- then routed by the notify worker into one delivery per channel, each sent with retries.
ALTER TABLE agent_notifications RENAME TO notifications;
ALTER TABLE notifications RENAME COLUMN level TO severity;
-- approval_needed, action_taken, rollback, drift_detected, data_quality, training_finished,
-- validation_failed, weekly_summary, alert (any other incident) or test.
ALTER TABLE notifications ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert';
-- The key figures, a JSON array of [name, value] pairs.
ALTER TABLE notifications ADD COLUMN facts_json TEXT NOT NULL DEFAULT '[]';
-- A dashboard path the message links to (an approval's is signed when it is sent).
ALTER TABLE notifications ADD COLUMN link TEXT;
ALTER TABLE notifications ADD COLUMN approval_id TEXT;
-- A file sent with an email: its blob (content hash) and name.
ALTER TABLE notifications ADD COLUMN attachment_blob TEXT;
ALTER TABLE notifications ADD COLUMN attachment_name TEXT;
-- One event per key (say, one weekly summary per scheduled time).
ALTER TABLE notifications ADD COLUMN dedupe_key TEXT;
-- A test message names its one channel; routing is skipped.
ALTER TABLE notifications ADD COLUMN channel TEXT;
-- When the worker made its deliveries; the agent's earlier records are not sent now.
ALTER TABLE notifications ADD COLUMN routed_at TIMESTAMP;
UPDATE notifications SET routed_at = created_at;
CREATE UNIQUE INDEX notifications_dedupe ON notifications (dedupe_key);
CREATE INDEX notifications_unrouted ON notifications (routed_at);
CREATE INDEX notifications_incident ON notifications (incident_id);

CREATE TABLE notification_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    notification_id TEXT NOT NULL REFERENCES notifications (id),
    channel TEXT NOT NULL,
    -- email, slack or webhook
    channel_kind TEXT NOT NULL,
    -- pending, sending, sent or failed
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    last_error TEXT,
    claimed_at TIMESTAMP,
    sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (notification_id, channel)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (status, next_attempt_at);

-- The weekly summary counts the labels received in its week.
CREATE INDEX feedback_received_at ON feedback (received_at);
