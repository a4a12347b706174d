DROP TABLE validation_runs;
DROP TABLE dataset_versions;
DROP TABLE datasets;
