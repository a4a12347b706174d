-- Data: datasets, their versions (a row plus a content-addressed blob), and validation runs.
-- Mirrored in both backends' folders; keep them in step.

CREATE TABLE datasets (
    name TEXT PRIMARY KEY NOT NULL,
    current_version INTEGER,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE dataset_versions (
    id TEXT PRIMARY KEY NOT NULL,
    dataset TEXT NOT NULL REFERENCES datasets (name),
    version INTEGER NOT NULL,
    hash TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    format TEXT NOT NULL,
    file_name TEXT NOT NULL,
    row_count BIGINT NOT NULL,
    column_count INTEGER NOT NULL,
    parent_version INTEGER,
    message TEXT NOT NULL,
    profile_json TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (dataset, version),
    UNIQUE (dataset, hash)
);

CREATE TABLE validation_runs (
    id TEXT PRIMARY KEY NOT NULL,
    suite TEXT NOT NULL,
    suite_hash TEXT NOT NULL,
    dataset TEXT,
    version INTEGER,
    source TEXT NOT NULL,
    success BOOLEAN NOT NULL,
    evaluated INTEGER NOT NULL,
    successful INTEGER NOT NULL,
    critical_failures INTEGER NOT NULL,
    result_json TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX validation_runs_dataset_version ON validation_runs (dataset, version);
