-- The agent: incidents (alerts deduplicated by fingerprint), the decisions taken on them, the
-- approvals risky actions wait for, the actions and their outcomes, the notifications it wrote,
-- the prediction rows it quarantined from retraining, and its switches. Mirrored in both
-- backends' folders; keep them in step.

CREATE TABLE agent_incidents (
    id TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('monitoring', 'alertmanager', 'validation')),
    alert_type TEXT NOT NULL,
    alertname TEXT NOT NULL,
    severity TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER,
    summary TEXT NOT NULL,
    labels_json TEXT NOT NULL,
    evidence_json TEXT NOT NULL,
    check_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    alert_count BIGINT NOT NULL,
    first_seen TIMESTAMP NOT NULL,
    last_seen TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    resolution TEXT,
    decision_id TEXT
);
-- One open incident per fingerprint: repeats update it, whatever their concurrency.
CREATE UNIQUE INDEX agent_incidents_open ON agent_incidents (fingerprint) WHERE status = 'open';
CREATE INDEX agent_incidents_first_seen ON agent_incidents (first_seen);
CREATE INDEX agent_incidents_fingerprint ON agent_incidents (fingerprint);

CREATE TABLE agent_decisions (
    id TEXT PRIMARY KEY NOT NULL,
    incident_id TEXT NOT NULL REFERENCES agent_incidents (id),
    model TEXT NOT NULL,
    rule TEXT,
    action TEXT NOT NULL,
    approval BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    -- Taken again on the incident's next alert (it waited: a cooldown, the cap, too few labels).
    redecide BOOLEAN NOT NULL,
    explanation_json TEXT NOT NULL,
    context_json TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX agent_decisions_rule ON agent_decisions (rule, model, created_at);
CREATE INDEX agent_decisions_status ON agent_decisions (status, created_at);

CREATE TABLE agent_approvals (
    id TEXT PRIMARY KEY NOT NULL,
    decision_id TEXT NOT NULL REFERENCES agent_decisions (id),
    incident_id TEXT NOT NULL REFERENCES agent_incidents (id),
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    version INTEGER,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'expired')),
    evidence_json TEXT NOT NULL,
    requested_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    decided_by TEXT,
    decided_at TIMESTAMP,
    comment TEXT,
    action_id TEXT
);
CREATE INDEX agent_approvals_status ON agent_approvals (status, requested_at);

CREATE TABLE agent_actions (
    id TEXT PRIMARY KEY NOT NULL,
    decision_id TEXT NOT NULL REFERENCES agent_decisions (id),
    approval_id TEXT,
    incident_id TEXT NOT NULL REFERENCES agent_incidents (id),
    action TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    outcome_json TEXT,
    error TEXT,
    model_version INTEGER
);
CREATE INDEX agent_actions_started_at ON agent_actions (started_at);
CREATE INDEX agent_actions_decision ON agent_actions (decision_id);
CREATE INDEX agent_actions_status ON agent_actions (status);

CREATE TABLE agent_notifications (
    id TEXT PRIMARY KEY NOT NULL,
    incident_id TEXT,
    level TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Prediction rows kept out of retraining data (their feedback labels are not learned from).
CREATE TABLE agent_quarantine (
    request_id TEXT PRIMARY KEY NOT NULL,
    incident_id TEXT NOT NULL,
    feature TEXT NOT NULL,
    rule TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- The agent's switches shared by every process on the store (the kill switch: key 'paused').
CREATE TABLE agent_state (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
