ALTER TABLE audit_head DROP COLUMN keyed_from;
DROP TABLE prediction_dead_letters;
ALTER TABLE api_tokens DROP COLUMN role;
ALTER TABLE api_tokens DROP COLUMN expires_at;
