-- Leases: processes sharing this store agree through them who runs what. A scheduled job's
-- row is taken by one process per tick (free: its expiry passed; due: its last start an
-- interval ago) and held while the job runs; the agent's row is held by one process at a time.
-- A process that dies holding one loses it when it expires.
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    -- host:pid:nonce of the process that took it last
    holder TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    -- when the holder took it for its latest run
    started_at TIMESTAMP NOT NULL,
    -- runs started under it, in all
    runs BIGINT NOT NULL
);
