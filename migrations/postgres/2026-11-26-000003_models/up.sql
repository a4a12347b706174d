-- Training: experiments and their runs (params, metrics with steps, tags, artifacts), and the
-- model registry (versions, stages, the history of stage transitions).
-- Mirrored in both backends' folders; keep them in step.

CREATE TABLE experiments (
    name TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE runs (
    id TEXT PRIMARY KEY NOT NULL,
    experiment TEXT NOT NULL REFERENCES experiments (name),
    model_kind TEXT NOT NULL,
    status TEXT NOT NULL,
    params_json TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_version INTEGER NOT NULL,
    dataset_hash TEXT NOT NULL,
    steward_version TEXT NOT NULL,
    owner TEXT NOT NULL,
    error TEXT,
    created_by TEXT NOT NULL,
    started_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    duration_ms BIGINT
);
CREATE INDEX runs_experiment ON runs (experiment, started_at);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE run_metrics (
    run_id TEXT NOT NULL REFERENCES runs (id),
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, name, step)
);

CREATE TABLE run_tags (
    run_id TEXT NOT NULL REFERENCES runs (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE run_artifacts (
    run_id TEXT NOT NULL REFERENCES runs (id),
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE registered_models (
    name TEXT PRIMARY KEY NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE model_versions (
    id TEXT PRIMARY KEY NOT NULL,
    model TEXT NOT NULL REFERENCES registered_models (name),
    version INTEGER NOT NULL,
    run_id TEXT NOT NULL REFERENCES runs (id),
    model_kind TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_version INTEGER NOT NULL,
    dataset_hash TEXT NOT NULL,
    artifact_hash TEXT NOT NULL,
    metrics_json TEXT NOT NULL,
    stage TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (model, version),
    UNIQUE (run_id)
);
-- Exactly one Production version per model, enforced by the store itself.
CREATE UNIQUE INDEX model_versions_one_production ON model_versions (model) WHERE stage = 'Production';

CREATE TABLE stage_transitions (
    seq BIGINT PRIMARY KEY NOT NULL,
    model TEXT NOT NULL REFERENCES registered_models (name),
    version INTEGER NOT NULL,
    from_stage TEXT NOT NULL,
    to_stage TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX stage_transitions_model ON stage_transitions (model, seq);
