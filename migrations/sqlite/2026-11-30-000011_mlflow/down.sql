DROP TABLE model_aliases;
ALTER TABLE model_versions DROP COLUMN description;
ALTER TABLE model_versions DROP COLUMN source;
ALTER TABLE registered_models DROP COLUMN deleted_up_to;
ALTER TABLE registered_models DROP COLUMN description;
CREATE TABLE run_metrics_steps (
    run_id TEXT NOT NULL REFERENCES runs (id),
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    recorded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, name, step)
);
INSERT OR REPLACE INTO run_metrics_steps (run_id, name, step, value, recorded_at)
    SELECT run_id, name, step, value, recorded_at FROM run_metrics ORDER BY recorded_at;
DROP TABLE run_metrics;
ALTER TABLE run_metrics_steps RENAME TO run_metrics;
ALTER TABLE runs DROP COLUMN lifecycle_stage;
DROP INDEX experiments_mlflow_id;
ALTER TABLE experiments DROP COLUMN mlflow_id;
