-- Monitoring: each model version's reference profile, the checks over the prediction log with
-- their per-feature rows, and the alerts they raised. Mirrored in both backends' folders; keep
-- them in step.

-- What every test needs of the rows a version was trained on (value counts, category counts,
-- the reference predictions and labels, the holdout's calibration), computed once.
CREATE TABLE reference_profiles (
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    rows BIGINT NOT NULL,
    profile_json TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (model, version)
);

-- One check: completed, or skipped with its reason. report_json is the whole result (the
-- shape of `drift run --json`); the columns beside it are what trends and lists read.
CREATE TABLE drift_checks (
    id TEXT PRIMARY KEY NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    trigger_kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('completed', 'skipped')),
    reason TEXT,
    window_rows BIGINT NOT NULL,
    window_start TIMESTAMP,
    window_end TIMESTAMP,
    drift_share DOUBLE PRECISION,
    dataset_drift BOOLEAN NOT NULL,
    accuracy_live DOUBLE PRECISION,
    accuracy_estimated DOUBLE PRECISION,
    labelled_rows BIGINT NOT NULL,
    p99_latency_ms DOUBLE PRECISION,
    missing_ratio DOUBLE PRECISION,
    report_json TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX drift_checks_created_at ON drift_checks (created_at);

CREATE TABLE drift_check_features (
    check_id TEXT NOT NULL REFERENCES drift_checks (id),
    feature TEXT NOT NULL,
    stattest TEXT,
    score DOUBLE PRECISION,
    threshold DOUBLE PRECISION,
    drifted BOOLEAN NOT NULL,
    effect_size DOUBLE PRECISION,
    psi DOUBLE PRECISION,
    missing_ratio DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (check_id, feature)
);

-- Alerts a check raised; the fingerprint is stable for the same problem (type, model, version,
-- and the features involved), so repeats can be deduplicated.
CREATE TABLE monitoring_alerts (
    id TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    alert_type TEXT NOT NULL,
    severity TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER NOT NULL,
    score DOUBLE PRECISION,
    summary TEXT NOT NULL,
    evidence_json TEXT NOT NULL,
    check_id TEXT NOT NULL REFERENCES drift_checks (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX monitoring_alerts_fingerprint ON monitoring_alerts (fingerprint, created_at);
