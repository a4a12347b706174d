CREATE INDEX predictions_created_at ON predictions (created_at);
