-- MLflow's REST API (tracking and registry): experiments get MLflow's numeric ids ("0" is
-- "Default"), runs can be deleted and restored (lifecycle_stage), a metric may be logged again
-- at the same step (MLflow's metrics are append-only: a point is its step, time and value),
-- versions keep MLflow's source and description, models a description, and aliases are stored.
-- Mirrored in both backends' folders; keep them in step.

ALTER TABLE experiments ADD COLUMN mlflow_id BIGINT;
UPDATE experiments SET mlflow_id = CASE WHEN name = 'Default' THEN 0 ELSE
    (SELECT COUNT(*) FROM experiments e WHERE e.name <= experiments.name AND e.name <> 'Default') END;
CREATE UNIQUE INDEX experiments_mlflow_id ON experiments (mlflow_id);

ALTER TABLE runs ADD COLUMN lifecycle_stage TEXT NOT NULL DEFAULT 'active';

ALTER TABLE run_metrics DROP CONSTRAINT run_metrics_pkey;
ALTER TABLE run_metrics ADD PRIMARY KEY (run_id, name, step, recorded_at, value);

ALTER TABLE registered_models ADD COLUMN description TEXT;
-- The highest version number a deleted version took: numbers are not used again.
ALTER TABLE registered_models ADD COLUMN deleted_up_to INTEGER NOT NULL DEFAULT 0;
ALTER TABLE model_versions ADD COLUMN source TEXT;
ALTER TABLE model_versions ADD COLUMN description TEXT;

CREATE TABLE model_aliases (
    model TEXT NOT NULL REFERENCES registered_models (name),
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (model, alias)
);
