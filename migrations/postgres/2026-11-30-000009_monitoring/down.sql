DROP TABLE monitoring_alerts;
DROP TABLE drift_check_features;
DROP TABLE drift_checks;
DROP TABLE reference_profiles;
