DROP TABLE model_aliases;
ALTER TABLE model_versions DROP COLUMN description;
ALTER TABLE model_versions DROP COLUMN source;
ALTER TABLE registered_models DROP COLUMN deleted_up_to;
ALTER TABLE registered_models DROP COLUMN description;
DELETE FROM run_metrics a USING run_metrics b
    WHERE a.run_id = b.run_id AND a.name = b.name AND a.step = b.step
      AND (a.recorded_at, a.value) < (b.recorded_at, b.value);
ALTER TABLE run_metrics DROP CONSTRAINT run_metrics_pkey;
ALTER TABLE run_metrics ADD PRIMARY KEY (run_id, name, step);
ALTER TABLE runs DROP COLUMN lifecycle_stage;
DROP INDEX experiments_mlflow_id;
ALTER TABLE experiments DROP COLUMN mlflow_id;
