-- Serving: every prediction (the log that monitoring reads) and the ground truth fed back.
-- Request ids are UUIDv7 (time-ordered), so the log appends at the end of its indexes.
-- features_json is a JSON array of the request's features in the model's feature order.
-- Mirrored in both backends' folders; keep them in step. SQLite's table is WITHOUT ROWID:
-- clustered on the request id, so an insert updates one b-tree fewer.

CREATE TABLE predictions (
    request_id TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL,
    model TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    endpoint TEXT NOT NULL,
    features_json TEXT NOT NULL,
    probability DOUBLE PRECISION NOT NULL,
    prediction INTEGER NOT NULL,
    latency_us BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX predictions_created_at ON predictions (created_at);

CREATE TABLE feedback (
    request_id TEXT PRIMARY KEY NOT NULL REFERENCES predictions (request_id),
    label INTEGER NOT NULL,
    actor TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
