-- Hardening: token scopes, the prediction log's dead letters, and the keyed audit chain.
-- Mirrored in both backends' folders; keep them in step.

-- A token may be narrower than its user (role) and may expire.
ALTER TABLE api_tokens ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE api_tokens ADD COLUMN role TEXT CHECK (role IN ('viewer', 'approver', 'admin'));

-- Prediction-log rows the store refused on their own (a poison row), kept aside so that one
-- row can never block the log, and shown on the Predictions page.
CREATE TABLE prediction_dead_letters (
    request_id TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    row_json TEXT NOT NULL,
    error TEXT NOT NULL,
    failed_at TIMESTAMP NOT NULL
);

-- The first event hashed with the chain key (HMAC-SHA256); events before it keep their plain
-- BLAKE3 hashes. NULL until Steward keys the chain at its next start.
ALTER TABLE audit_head ADD COLUMN keyed_from BIGINT;
