//! Metrics and logs. Metric names live here as constants, in Prometheus style (`_total`,
//! `_seconds`, base units), and every metric is described so `/metrics` carries HELP lines.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::{LogFormat, LogSettings};

pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
pub const AUDIT_EVENTS_TOTAL: &str = "steward_audit_events_total";
pub const SCHEDULER_JOB_RUNS_TOTAL: &str = "steward_scheduler_job_runs_total";
pub const SCHEDULER_JOB_DURATION_SECONDS: &str = "steward_scheduler_job_duration_seconds";
pub const LOGIN_ATTEMPTS_TOTAL: &str = "steward_login_attempts_total";
pub const BUILD_INFO: &str = "steward_build_info";
pub const DATASET_VERSIONS_ADDED_TOTAL: &str = "steward_dataset_versions_added_total";
pub const VALIDATION_RUNS_TOTAL: &str = "steward_validation_runs_total";
pub const VALIDATION_DURATION_SECONDS: &str = "steward_validation_duration_seconds";
pub const TRAINING_RUNS_TOTAL: &str = "steward_training_runs_total";
pub const TRAINING_DURATION_SECONDS: &str = "steward_training_duration_seconds";
pub const MODEL_TRANSITIONS_TOTAL: &str = "steward_model_stage_transitions_total";
pub const INFERENCE_DURATION_SECONDS: &str = "inference_duration_seconds";
pub const PREDICTIONS_TOTAL: &str = "predictions_total";
pub const MODEL_INFO: &str = "model_info";
pub const VALIDATION_FAILURES_TOTAL: &str = "prediction_validation_failures_total";
pub const MODEL_LOAD_FAILURES_TOTAL: &str = "steward_model_load_failures_total";
pub const PREDICTION_LOG_QUEUE_DEPTH: &str = "steward_prediction_log_queue_depth";
pub const PREDICTION_LOG_FLUSH_SECONDS: &str = "steward_prediction_log_flush_seconds";
pub const PREDICTION_LOG_ROWS_TOTAL: &str = "steward_prediction_log_rows_total";
pub const PREDICTION_LOG_REJECTED_TOTAL: &str = "steward_prediction_log_rejected_total";
pub const PREDICTION_LOG_DEAD_LETTERS_TOTAL: &str = "steward_prediction_log_dead_letters_total";
pub const SERVING_SATURATED_TOTAL: &str = "steward_serving_saturated_total";
pub const SCHEDULER_JOB_PANICS_TOTAL: &str = "steward_scheduler_job_panics_total";
pub const AUDIT_CHAIN_INTACT: &str = "steward_audit_chain_intact";
pub const BLOB_REPAIRS_TOTAL: &str = "steward_blob_repairs_total";
pub const DRIFT_SHARE: &str = "steward_drift_share";
pub const DATASET_DRIFT: &str = "steward_dataset_drift";
pub const FEATURE_DRIFT_SCORE: &str = "steward_feature_drift_score";
pub const FEATURE_DRIFTED: &str = "steward_feature_drifted";
pub const FEATURE_EFFECT_SIZE: &str = "steward_feature_drift_effect_size";
pub const DATA_MISSING_RATIO: &str = "steward_data_missing_ratio";
pub const MODEL_ACCURACY_LIVE: &str = "steward_model_accuracy_live";
pub const MODEL_ACCURACY_ESTIMATED: &str = "steward_model_accuracy_estimated";
pub const MODEL_ACCURACY_HOLDOUT: &str = "steward_model_accuracy_holdout";
pub const DRIFT_CHECKS_TOTAL: &str = "steward_drift_checks_total";
pub const DRIFT_CHECK_DURATION_SECONDS: &str = "steward_drift_check_duration_seconds";
pub const MONITORING_ALERTS_TOTAL: &str = "steward_monitoring_alerts_total";
pub const AGENT_ALERTS_TOTAL: &str = "steward_agent_alerts_total";
pub const AGENT_DECISIONS_TOTAL: &str = "steward_agent_decisions_total";
pub const AGENT_ACTIONS_TOTAL: &str = "steward_agent_actions_total";
pub const APPROVALS_PENDING: &str = "steward_approvals_pending";
pub const AGENT_PAUSED: &str = "steward_agent_paused";
pub const AGENT_LEADING: &str = "steward_agent_leading";
pub const AGENT_INCIDENTS_OPEN: &str = "steward_agent_incidents_open";
pub const NOTIFICATIONS_TOTAL: &str = "steward_notifications_total";
pub const NOTIFICATIONS_PENDING: &str = "steward_notifications_pending";
pub const REPORTS_TOTAL: &str = "steward_reports_total";

/// Latency buckets, in seconds: fine below 10 ms, where `/predict` is expected to live.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide metrics handle and the process collector.
#[derive(Clone)]
pub struct Telemetry {
    handle: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
}

impl Telemetry {
    /// Installs the global Prometheus recorder once per process (tests build many apps in one
    /// process, and a recorder can be installed only once).
    pub fn install() -> anyhow::Result<Self> {
        static INSTALLED: OnceLock<Result<Telemetry, String>> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                let handle = PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                    .and_then(|b| b.install_recorder())
                    .map_err(|e| format!("installing the Prometheus recorder: {e}"))?;
                describe();
                let process = metrics_process::Collector::default();
                process.describe();
                metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
                Ok(Telemetry {
                    handle,
                    process: Arc::new(process),
                })
            })
            .clone()
            .map_err(anyhow::Error::msg)
    }

    /// The Prometheus text exposition, with the process metrics sampled now.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.run_upkeep();
        self.handle.render()
    }
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route pattern and status."
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by method, route pattern and status."
    );
    describe_counter!(
        AUDIT_EVENTS_TOTAL,
        "Events appended to the audit log, by action."
    );
    describe_counter!(
        SCHEDULER_JOB_RUNS_TOTAL,
        "Runs of scheduled jobs, by job and outcome."
    );
    describe_histogram!(
        SCHEDULER_JOB_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of scheduled job runs, by job."
    );
    describe_counter!(
        LOGIN_ATTEMPTS_TOTAL,
        "Dashboard login attempts, by outcome (success, failure, throttled)."
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the labels say which Steward is running."
    );
    describe_counter!(
        DATASET_VERSIONS_ADDED_TOTAL,
        "New dataset versions registered, by dataset."
    );
    describe_counter!(
        VALIDATION_RUNS_TOTAL,
        "Expectation-suite validation runs, by suite and outcome (passed, failed, blocked)."
    );
    describe_histogram!(
        VALIDATION_DURATION_SECONDS,
        Unit::Seconds,
        "Time to evaluate an expectation suite against a table."
    );
    describe_counter!(
        TRAINING_RUNS_TOTAL,
        "Training runs, by model (lr, rf, xgb) and status (finished, failed)."
    );
    describe_histogram!(
        TRAINING_DURATION_SECONDS,
        Unit::Seconds,
        "Time to train one candidate: grid search, cross-validation and the final fit."
    );
    describe_counter!(
        MODEL_TRANSITIONS_TOTAL,
        "Model registry stage transitions, by target stage."
    );
    describe_histogram!(
        INFERENCE_DURATION_SECONDS,
        Unit::Seconds,
        "Time to transform and score the rows of one prediction request."
    );
    describe_counter!(
        PREDICTIONS_TOTAL,
        "Rows scored, by model version and predicted class."
    );
    describe_counter!(
        VALIDATION_FAILURES_TOTAL,
        "Prediction request fields refused, by field (unknown_field, body for the rest)."
    );
    describe_counter!(
        MODEL_LOAD_FAILURES_TOTAL,
        "Production versions the server refused to load (bad artifact or schema)."
    );
    describe_gauge!(
        PREDICTION_LOG_QUEUE_DEPTH,
        "Prediction-log rows waiting to be stored."
    );
    describe_histogram!(
        PREDICTION_LOG_FLUSH_SECONDS,
        Unit::Seconds,
        "Time to store one batch of the prediction log."
    );
    describe_counter!(PREDICTION_LOG_ROWS_TOTAL, "Prediction-log rows stored.");
    describe_counter!(
        PREDICTION_LOG_REJECTED_TOTAL,
        "Prediction requests answered 503 because the log's queue stayed full for serving.log_wait_ms."
    );
    describe_counter!(
        PREDICTION_LOG_DEAD_LETTERS_TOTAL,
        "Prediction-log rows the store refused on their own, set aside in prediction_dead_letters."
    );
    describe_counter!(
        SERVING_SATURATED_TOTAL,
        "Prediction requests answered 503 because every slot of a pool (library, batch) stayed busy."
    );
    describe_counter!(
        SCHEDULER_JOB_PANICS_TOTAL,
        "Scheduled job runs that panicked, by job; the job runs again at its next tick."
    );
    describe_gauge!(
        AUDIT_CHAIN_INTACT,
        "1 when the audit chain verified intact at its last verification (at start, on the schedule, on a page view); 0 while a break stands."
    );
    describe_counter!(
        BLOB_REPAIRS_TOTAL,
        "Corrupt blobs rewritten from bytes supplied again (a dataset file added anew)."
    );
    describe_gauge!(
        DRIFT_SHARE,
        "Share of features drifted in the newest completed drift check (0..1)."
    );
    describe_gauge!(
        DATASET_DRIFT,
        "1 when the newest completed check found dataset drift (share >= monitoring.drift_share)."
    );
    describe_gauge!(
        FEATURE_DRIFT_SCORE,
        "Each feature's drift score in the newest check: a p-value (ks, chisquare, z) or a distance (wasserstein, jensenshannon, psi), by feature and stattest."
    );
    describe_gauge!(
        FEATURE_DRIFTED,
        "1 when the feature drifted in the newest check."
    );
    describe_gauge!(
        FEATURE_EFFECT_SIZE,
        "Each feature's effect size in the newest check (normalised Wasserstein, or Jensen-Shannon for categorical features)."
    );
    describe_gauge!(
        DATA_MISSING_RATIO,
        "Each feature's share of missing values in the newest check's window."
    );
    describe_gauge!(
        MODEL_ACCURACY_LIVE,
        "Accuracy on the feedback-labelled rows of the newest check's window (NaN below monitoring.min_labels)."
    );
    describe_gauge!(
        MODEL_ACCURACY_ESTIMATED,
        "Accuracy estimated from the calibrated probabilities of the newest check's window (CBPE; no labels)."
    );
    describe_gauge!(
        MODEL_ACCURACY_HOLDOUT,
        "Holdout accuracy of the version the newest check watched, from its registration: the live and estimated accuracy's yardstick (config/prometheus rules alert on the drop)."
    );
    describe_counter!(
        DRIFT_CHECKS_TOTAL,
        "Monitoring checks stored, by status (completed, skipped) and trigger (scheduled, manual)."
    );
    describe_histogram!(
        DRIFT_CHECK_DURATION_SECONDS,
        Unit::Seconds,
        "Time to run and store one monitoring check."
    );
    describe_counter!(
        MONITORING_ALERTS_TOTAL,
        "Alerts raised by monitoring checks, by type (drift, data_quality, decay, estimated_decay)."
    );
    describe_counter!(
        AGENT_ALERTS_TOTAL,
        "Alerts the agent took in, by source (monitoring, alertmanager, validation) and type."
    );
    describe_counter!(
        AGENT_DECISIONS_TOTAL,
        "Decisions the agent's policy took, by action (retrain, rollback, notify, quarantine, validate, noop)."
    );
    describe_counter!(
        AGENT_ACTIONS_TOTAL,
        "Actions the agent ran, by action and outcome (succeeded, failed, skipped)."
    );
    describe_gauge!(APPROVALS_PENDING, "Approval requests waiting for a person.");
    describe_gauge!(AGENT_PAUSED, "1 while the agent's kill switch is on.");
    describe_gauge!(
        AGENT_LEADING,
        "1 while this process runs the agent (holds the agent's lease among replicas sharing the store), else 0."
    );
    describe_gauge!(AGENT_INCIDENTS_OPEN, "Open incidents.");
    describe_counter!(
        NOTIFICATIONS_TOTAL,
        "Notification delivery attempts, by channel kind (email, slack, webhook) and outcome (sent, retry, failed)."
    );
    describe_gauge!(
        NOTIFICATIONS_PENDING,
        "Notification deliveries waiting to be sent (first tries and retries)."
    );
    describe_counter!(
        REPORTS_TOTAL,
        "Reports rendered, by report (model_card, drift, weekly) and format (html, pdf)."
    );
}

/// RED metrics per route. The route label is the matched pattern (`/api/v1/users/{name}`), never
/// the raw path, so label cardinality stays bounded; unmatched paths share one label.
pub async fn record_http(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    let route = response
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    tracing::debug!(%method, %route, %status, elapsed, "request");
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!(HTTP_REQUESTS_TOTAL, &labels).increment(1);
    metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, &labels).record(elapsed);
    Ok(response)
}

/// The method as a label: the standard methods, and `other` for any other, so no client can
/// make new series by inventing methods.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Starts the log subscriber. Safe to call more than once (later calls do nothing).
pub fn init_logging(settings: &LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
