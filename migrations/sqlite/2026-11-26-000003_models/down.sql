DROP TABLE stage_transitions;
DROP TABLE model_versions;
DROP TABLE registered_models;
DROP TABLE run_artifacts;
DROP TABLE run_tags;
DROP TABLE run_metrics;
DROP TABLE runs;
DROP TABLE experiments;
