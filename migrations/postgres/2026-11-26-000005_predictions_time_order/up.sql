-- The prediction log's time order is its primary key: request ids are UUIDv7, whose first 48
-- bits are the Unix time in milliseconds, so "the newest N rows" is the key read backwards and
-- "the last H hours" is a key range. A separate index on created_at cost every logged
-- prediction a second b-tree insert (about a third of the log writer's time on SQLite) and
-- answered nothing the key does not. Mirrored in both backends' folders; keep them in step.
DROP INDEX predictions_created_at;
