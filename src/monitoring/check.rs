//! A monitoring check of the Production version: its window of the prediction log against its
//! reference profile. Feature drift (Evidently's tests, see [`super::drift`]), prediction drift
//! (the predicted probabilities), target drift (feedback labels against the reference labels),
//! data quality, live performance on the labelled rows and estimated performance on all of them
//! (CBPE, see [`super::estimate`]); the alerts those raise; and the stored history.
//!
//! A check is stored whole (`drift_checks` with its `report_json`, its per-feature rows and its
//! alerts) in one transaction; older checks beyond `monitoring.keep_checks` are deleted with it.
//! Alerts go out on an in-process channel after the commit; monitoring never reads it.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::drift::{DriftReport, FeatureDrift, FeatureValues, Options, compare, feature_drift};
use super::estimate::{Estimate, estimate};
use super::profile::{self, ReferenceProfile};
use super::settings::MonitoringSettings;
use super::stattests::Values;
use super::window::{self, Window};
use crate::data::blob::BlobStore;
use crate::data::schema::{ColumnKind, DatasetSettings};
use crate::db::DbConnection;
use crate::db::schema::{drift_check_features, drift_checks, monitoring_alerts};
use crate::error::AppError;

/// The in-process channel alerts go out on (the agent subscribes; nothing here reads it).
pub type AlertSender = tokio::sync::broadcast::Sender<Alert>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertType {
    /// Dataset drift: the drifted share reached `monitoring.drift_share`.
    Drift,
    /// A data-quality failure in the window.
    DataQuality,
    /// Live performance on labelled rows fell more than `monitoring.max_metric_drop`.
    Decay,
    /// Estimated performance (no labels needed) fell more than `monitoring.max_metric_drop`.
    EstimatedDecay,
}

impl AlertType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Drift => "drift",
            Self::DataQuality => "data_quality",
            Self::Decay => "decay",
            Self::EstimatedDecay => "estimated_decay",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

/// An alert a check raised. `fingerprint` (16 hex digits, like Alertmanager's) is the same for
/// the same problem: its type, model and version, and for data quality the feature and the
/// rule (one alert each), so repeats deduplicate while the drifted set changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Alert {
    #[serde(rename = "type")]
    pub alert_type: AlertType,
    pub severity: Severity,
    pub model: String,
    pub version: i32,
    pub score: Option<f64>,
    pub summary: String,
    pub evidence: serde_json::Value,
    pub fingerprint: String,
    pub check_id: String,
}

fn fingerprint(kind: AlertType, model: &str, version: i32, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(format!("{}|{model}|{version}", kind.as_str()));
    for p in parts {
        h.update(b"|");
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize()).chars().take(16).collect()
}

/// How many example values a data-quality row shows.
const EXAMPLES: usize = 5;
/// A feature is called constant only with at least this many values in the window.
const CONSTANT_MIN_VALUES: usize = 20;

/// One feature's data quality in the window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureQuality {
    pub feature: String,
    pub missing_ratio: f64,
    /// Values outside the schema's [min, max] (numeric) or categories the schema does not list.
    pub outside_schema: u64,
    /// Values outside the reference's observed range, or categories the reference never had.
    pub outside_reference: u64,
    /// A few such values (the most extreme for numeric features).
    pub examples: Vec<String>,
    /// One value in the whole window where the reference had several.
    pub constant: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataQuality {
    pub features: Vec<FeatureQuality>,
    /// Requests answered 422 by this server since its previous check (`None` from the CLI,
    /// which cannot see the server's counters).
    pub rejected_requests: Option<u64>,
    /// What failed, one line each (empty: passed).
    pub failures: Vec<String>,
    /// The features with a failure, in schema order.
    #[serde(default)]
    pub failing_features: Vec<String>,
    /// Each failure: its feature, its rule (`constant`, `out_of_range`, `unseen_category`,
    /// `missing`), the share of rows it concerns, and its message.
    #[serde(default)]
    pub failed: Vec<QualityFailure>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QualityFailure {
    pub feature: String,
    pub rule: String,
    pub share: f64,
    pub message: String,
    /// The message without any value from the window (alerts are read more widely).
    #[serde(default)]
    pub summary: String,
}

/// Live figures on the labelled rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Live {
    pub accuracy: f64,
    pub f1: f64,
    /// `None` when the labels hold one class only.
    pub roc_auc: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Performance {
    pub labelled_rows: u64,
    /// `None` below `monitoring.min_labels` labelled rows.
    pub live: Option<Live>,
    /// The version's holdout figures when it was registered.
    pub holdout: BTreeMap<String, f64>,
    /// Standard errors of the live figures at the holdout's values (binomial over both
    /// samples; ROC-AUC by Hanley and McNeil).
    #[serde(default)]
    pub standard_errors: BTreeMap<String, f64>,
    /// Live minus holdout, per metric (`accuracy`, `f1`, `roc_auc`), when both are known.
    #[serde(default)]
    pub change: BTreeMap<String, f64>,
    /// Per metric: (holdout, live) where live decayed (past the limit and the noise).
    #[serde(default)]
    pub drops: BTreeMap<String, (f64, f64)>,
    /// (holdout, estimated) accuracy when the estimate fell below the holdout.
    #[serde(default)]
    pub estimated_drops: BTreeMap<String, (f64, f64)>,
    /// From the calibrated probabilities of every row in the window.
    pub estimated: Option<Estimate>,
    /// Live decay past `monitoring.max_metric_drop` on accuracy, F1 or ROC-AUC.
    pub decay: bool,
    pub estimated_decay: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceInfo {
    pub dataset: String,
    pub dataset_version: i32,
    pub rows: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WindowInfo {
    pub rows: u64,
    pub labelled_rows: u64,
    pub start: Option<chrono::NaiveDateTime>,
    pub end: Option<chrono::NaiveDateTime>,
    pub max_rows: u64,
    pub hours: u64,
    pub p99_latency_ms: Option<f64>,
}

/// A check: the shape of `drift compare --json` (flattened), plus its status, window, prediction
/// and target drift, data quality, performance and alerts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CheckReport {
    pub id: String,
    pub model: String,
    pub version: i32,
    pub created_at: chrono::NaiveDateTime,
    /// "scheduled" or "manual".
    pub trigger: String,
    pub actor: String,
    /// "completed", or "skipped" with `reason`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub window: WindowInfo,
    /// What the window was compared with: the version's dataset version and its rows.
    #[serde(default)]
    pub reference: Option<ReferenceInfo>,
    #[serde(flatten)]
    pub drift: Option<DriftReport>,
    pub prediction_drift: Option<FeatureDrift>,
    pub target_drift: Option<FeatureDrift>,
    pub data_quality: Option<DataQuality>,
    pub performance: Option<Performance>,
    pub alerts: Vec<Alert>,
    /// Reference-against-current shares per feature, for the charts.
    #[serde(default)]
    pub histograms: Vec<super::drift::Histogram>,
}

/// What a check runs with.
pub struct CheckContext<'a> {
    pub schema: &'a DatasetSettings,
    pub monitoring: &'a MonitoringSettings,
    /// The registered model to watch (its Production version).
    pub model: &'a str,
    pub blobs: &'a dyn BlobStore,
    /// 422 answers since the previous check, when the caller can count them.
    pub rejected_requests: Option<u64>,
    pub trigger: &'a str,
    pub actor: &'a str,
}

/// Runs a check of the Production version and stores it, on one connection (the CLI; the
/// server splits the steps, see [`super::Monitor::run_check`]). A window below
/// `monitoring.min_rows` is stored as skipped and raises nothing. Errors: no Production
/// version (Conflict), a store or artifact failure.
pub fn run(conn: &mut DbConnection, ctx: &CheckContext<'_>) -> Result<CheckReport, AppError> {
    let (profile, window) = prepare(conn, ctx, None)?;
    let report = assess(ctx, &profile, &window);
    store(conn, &report, ctx.monitoring.keep_checks)?;
    Ok(report)
}

/// Reads what a check needs: the Production version's profile (`cached` when it is that
/// version's) and its window of the log.
pub fn prepare(
    conn: &mut DbConnection,
    ctx: &CheckContext<'_>,
    cached: Option<std::sync::Arc<ReferenceProfile>>,
) -> Result<(std::sync::Arc<ReferenceProfile>, Window), AppError> {
    let production = crate::registry::production(conn, ctx.model)?.ok_or_else(|| {
        AppError::Conflict(format!(
            "model `{}` has no Production version to watch",
            ctx.model
        ))
    })?;
    let version = production.version;
    let profile = match cached.filter(|p| p.model == ctx.model && p.version == version) {
        Some(p) => p,
        None => std::sync::Arc::new(profile::ensure(
            conn, ctx.blobs, ctx.schema, ctx.model, version,
        )?),
    };
    let m = ctx.monitoring;
    // The window starts no earlier than the version's first promotion to Production (no row of
    // it can be older), nor than `window_hours` ago.
    let promoted = crate::registry::transitions(conn, ctx.model)?
        .into_iter()
        .filter(|t| t.version == version && t.to_stage == "Production")
        .map(|t| t.created_at)
        .min();
    let hours = (m.window_hours > 0)
        .then(|| chrono::Utc::now().naive_utc() - chrono::Duration::hours(m.window_hours as i64));
    // A second of slack: the transition's time is taken inside its transaction.
    let since = [promoted.map(|p| p - chrono::Duration::seconds(1)), hours]
        .into_iter()
        .flatten()
        .max();
    let features: Vec<(String, bool)> = profile
        .model_features
        .iter()
        .map(|name| {
            let numeric = ctx
                .schema
                .column(name)
                .is_some_and(|c| c.kind == ColumnKind::Numeric);
            (name.clone(), numeric)
        })
        .collect();
    let window = window::read(conn, ctx.model, version, &features, m.window_rows, since)?;
    Ok((profile, window))
}

/// A stored check's report, refusing one that says it completed but whose drift part does not
/// read (a flattened part that fails to parse would otherwise pass for absent).
pub fn parse_stored(value: serde_json::Value) -> Result<CheckReport, AppError> {
    let completed = value.get("status").and_then(|s| s.as_str()) == Some("completed");
    let report: CheckReport = serde_json::from_value(value)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading a stored check: {e}")))?;
    if completed && report.drift.is_none() {
        return Err(AppError::Internal(anyhow::anyhow!(
            "reading a stored check: its drift report does not parse"
        )));
    }
    Ok(report)
}

/// The check's figures for a window (no store access).
pub fn assess(ctx: &CheckContext<'_>, profile: &ReferenceProfile, window: &Window) -> CheckReport {
    let m = ctx.monitoring;
    let id = uuid::Uuid::now_v7().to_string();
    let rows = window.side.rows;
    let mut latencies = window.latencies_us.clone();
    latencies.sort_unstable();
    let p99 = (!latencies.is_empty()).then(|| {
        let at = ((latencies.len() as f64 * 0.99).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies.get(at).copied().unwrap_or(0) as f64 / 1000.0
    });
    let mut report = CheckReport {
        id: id.clone(),
        model: profile.model.clone(),
        version: profile.version,
        created_at: chrono::Utc::now().naive_utc(),
        trigger: ctx.trigger.to_owned(),
        actor: ctx.actor.to_owned(),
        status: "completed".into(),
        reason: None,
        window: WindowInfo {
            rows,
            labelled_rows: window.labelled.len() as u64,
            start: window.start,
            end: window.end,
            max_rows: m.window_rows,
            hours: m.window_hours,
            p99_latency_ms: p99,
        },
        reference: Some(ReferenceInfo {
            dataset: profile.dataset.clone(),
            dataset_version: profile.dataset_version,
            rows: profile.rows,
        }),
        drift: None,
        prediction_drift: None,
        target_drift: None,
        data_quality: None,
        performance: None,
        alerts: Vec::new(),
        histograms: Vec::new(),
    };
    if rows < m.min_rows {
        report.status = "skipped".into();
        report.reason = Some(format!(
            "the window has {rows} rows, fewer than monitoring.min_rows ({})",
            m.min_rows
        ));
        return report;
    }
    let reference = profile.side();
    let options: Options = m.options();
    let drift = compare(&reference, &window.side, &options);

    // Prediction drift: the probabilities against the reference's, by Evidently's default test.
    let pred_ref = FeatureValues {
        name: "prediction".into(),
        numeric: true,
        values: profile.prediction_values(),
        missing: 0,
    };
    let pred_cur = FeatureValues {
        name: "prediction".into(),
        numeric: true,
        values: Values::numeric(window.probabilities.clone()),
        missing: 0,
    };
    let plain = Options {
        drift_share: options.drift_share,
        ..Options::default()
    };
    report.prediction_drift = Some(feature_drift(Some(&pred_ref), &pred_cur, &plain));

    // Target drift: the feedback labels against the reference labels.
    let labelled = window.labelled.len() as u64;
    if labelled >= m.min_labels {
        let mut counts = BTreeMap::new();
        for &(label, _, _) in &window.labelled {
            *counts.entry(label.to_string()).or_insert(0_u64) += 1;
        }
        let target_ref = FeatureValues {
            name: "target".into(),
            numeric: false,
            values: profile.label_values(),
            missing: 0,
        };
        let target_cur = FeatureValues {
            name: "target".into(),
            numeric: false,
            values: Values::Categorical(counts),
            missing: 0,
        };
        report.target_drift = Some(feature_drift(Some(&target_ref), &target_cur, &plain));
    }

    let quality = data_quality(ctx, profile, &reference, window);
    let performance = performance(m, profile, window);

    // Alerts.
    let mut alerts = Vec::new();
    let model = profile.model.as_str();
    if drift.dataset_drift {
        let drifted: Vec<&str> = drift
            .features
            .iter()
            .filter(|f| f.drifted)
            .map(|f| f.feature.as_str())
            .collect();
        alerts.push(Alert {
            alert_type: AlertType::Drift,
            severity: if drift.drift_share >= 0.9 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            model: model.to_owned(),
            version: profile.version,
            score: Some(drift.drift_share),
            summary: format!(
                "dataset drift: {} of {} features drifted ({})",
                drift.drifted_features,
                drift.tested_features,
                drifted.join(", ")
            ),
            evidence: serde_json::json!({
                "drift_share": drift.drift_share,
                "window_rows": rows,
                "features": drift.features.iter().filter(|f| f.drifted).map(|f| serde_json::json!({
                    "feature": f.feature, "stattest": f.stattest, "score": f.score,
                    "effect_size": f.effect_size,
                })).collect::<Vec<_>>(),
            }),
            fingerprint: fingerprint(AlertType::Drift, model, profile.version, &[]),
            check_id: id.clone(),
        });
    }
    // One data-quality alert per feature and rule, so one flapping feature never changes the
    // fingerprint of another's problem.
    for f in &quality.failed {
        alerts.push(Alert {
            alert_type: AlertType::DataQuality,
            severity: if f.rule == "constant" || f.rule == "unseen_category" {
                Severity::Critical
            } else {
                Severity::Warning
            },
            model: model.to_owned(),
            version: profile.version,
            score: Some(f.share),
            summary: format!(
                "data quality: {}",
                if f.summary.is_empty() {
                    &f.message
                } else {
                    &f.summary
                }
            ),
            evidence: serde_json::json!({ "feature": f.feature, "rule": f.rule,
                "share": f.share, "window_rows": rows }),
            fingerprint: fingerprint(
                AlertType::DataQuality,
                model,
                profile.version,
                &[&f.feature, &f.rule],
            ),
            check_id: id.clone(),
        });
    }
    if performance.decay {
        let live = performance.live.clone();
        let crossed = crossed(&performance.drops, m.max_metric_drop);
        alerts.push(Alert {
            alert_type: AlertType::Decay,
            severity: Severity::Critical,
            model: model.to_owned(),
            version: profile.version,
            score: live.as_ref().map(|l| l.accuracy),
            summary: format!(
                "performance decay on {} labelled rows: {} (limit {})",
                performance.labelled_rows, crossed, m.max_metric_drop
            ),
            evidence: serde_json::json!({ "live": live, "holdout": performance.holdout,
                "labelled_rows": performance.labelled_rows }),
            fingerprint: fingerprint(AlertType::Decay, model, profile.version, &[]),
            check_id: id.clone(),
        });
    }
    if performance.estimated_decay {
        let est = performance.estimated.clone();
        let crossed = crossed(&performance.estimated_drops, m.max_metric_drop);
        alerts.push(Alert {
            alert_type: AlertType::EstimatedDecay,
            severity: Severity::Warning,
            model: model.to_owned(),
            version: profile.version,
            score: est.as_ref().map(|e| e.accuracy),
            summary: format!(
                "estimated decay (no labels needed, {} rows): {} (limit {})",
                rows, crossed, m.max_metric_drop
            ),
            evidence: serde_json::json!({ "estimated": est, "holdout": performance.holdout }),
            fingerprint: fingerprint(AlertType::EstimatedDecay, model, profile.version, &[]),
            check_id: id.clone(),
        });
    }
    report.histograms = super::drift::histograms(&reference, &window.side);
    report.drift = Some(drift);
    report.data_quality = Some(quality);
    report.performance = Some(performance);
    report.alerts = alerts;
    report
}

fn data_quality(
    ctx: &CheckContext<'_>,
    profile: &ReferenceProfile,
    reference: &super::drift::Side,
    window: &Window,
) -> DataQuality {
    let m = ctx.monitoring;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    let mut failing_features = Vec::new();
    let mut failed: Vec<QualityFailure> = Vec::new();
    let rows = window.side.rows.max(1) as f64;
    for cur in &window.side.features {
        let spec = ctx.schema.column(&cur.name);
        let refv = reference.features.iter().find(|f| f.name == cur.name);
        let missing_ratio = cur.missing as f64 / rows;
        let mut q = FeatureQuality {
            feature: cur.name.clone(),
            missing_ratio,
            outside_schema: 0,
            outside_reference: 0,
            examples: Vec::new(),
            constant: false,
        };
        match &cur.values {
            Values::Numeric(values) => {
                let (lo, hi) = (
                    spec.and_then(|s| s.min).unwrap_or(f64::NEG_INFINITY),
                    spec.and_then(|s| s.max).unwrap_or(f64::INFINITY),
                );
                q.outside_schema = values.iter().filter(|&&v| v < lo || v > hi).count() as u64;
                if let Some((rlo, rhi)) = profile.range(&cur.name) {
                    let below = values.partition_point(|&v| v < rlo);
                    let above = values.len() - values.partition_point(|&v| v <= rhi);
                    q.outside_reference = (below + above) as u64;
                    let mut examples: Vec<f64> = values.iter().take(below).copied().collect();
                    examples.extend(values.iter().rev().take(above));
                    examples.dedup();
                    q.examples = examples
                        .into_iter()
                        .take(EXAMPLES)
                        .map(|v| format!("{v}"))
                        .collect();
                }
                let distinct_window = values.first().zip(values.last()).map(|(a, b)| a == b);
                let reference_varies = refv.is_some_and(|r| match &r.values {
                    Values::Numeric(v) => v.first() != v.last(),
                    Values::Categorical(c) => c.len() > 1,
                });
                q.constant = distinct_window == Some(true)
                    && reference_varies
                    && values.len() >= CONSTANT_MIN_VALUES;
            }
            Values::Categorical(counts) => {
                let allowed: std::collections::HashSet<String> = spec
                    .map(|s| s.normalized_categories().into_iter().collect())
                    .unwrap_or_default();
                let empty = BTreeMap::new();
                let seen = match refv.map(|r| &r.values) {
                    Some(Values::Categorical(c)) => c,
                    _ => &empty,
                };
                for (cat, n) in counts {
                    if !allowed.is_empty() && !allowed.contains(cat) {
                        q.outside_schema += n;
                    }
                    if !seen.contains_key(cat) {
                        q.outside_reference += n;
                        if q.examples.len() < EXAMPLES {
                            q.examples.push(crate::error::bounded(cat, 40));
                        }
                    }
                }
                let reference_varies = seen.len() > 1;
                let present: u64 = counts.values().sum();
                q.constant =
                    counts.len() == 1 && reference_varies && present >= CONSTANT_MIN_VALUES as u64;
            }
        }
        let present = (window.side.rows - cur.missing).max(1) as f64;
        let before = failed.len();
        if q.constant {
            let value = match &cur.values {
                Values::Numeric(v) => v.first().map(|v| v.to_string()).unwrap_or_default(),
                Values::Categorical(c) => c
                    .keys()
                    .next()
                    .map(|k| crate::error::bounded(k, 40))
                    .unwrap_or_default(),
            };
            let outside = match profile.range(&cur.name) {
                Some((lo, hi)) if q.outside_reference > 0 => {
                    format!(", outside the reference's range [{lo}, {hi}]")
                }
                _ if q.outside_reference > 0 => ", a category the reference never had".into(),
                _ => String::new(),
            };
            failed.push(QualityFailure {
                feature: q.feature.clone(),
                rule: "constant".into(),
                share: 1.0,
                message: format!(
                    "{} is constant in the window ({value}) where the reference varies{outside}",
                    q.feature
                ),
                summary: format!(
                    "{} is constant in the window where the reference varies{}",
                    q.feature,
                    if q.outside_reference > 0 {
                        ", outside the reference's values"
                    } else {
                        ""
                    }
                ),
            });
        } else if q.outside_reference as f64 / present > m.max_out_of_range_ratio {
            let numeric = matches!(cur.values, Values::Numeric(_));
            failed.push(QualityFailure {
                feature: q.feature.clone(),
                rule: if numeric {
                    "out_of_range"
                } else {
                    "unseen_category"
                }
                .into(),
                share: q.outside_reference as f64 / present,
                message: format!(
                    "{}: {} of {} values {}",
                    q.feature,
                    q.outside_reference,
                    present as u64,
                    if numeric {
                        "outside the reference's range"
                    } else {
                        "in categories the reference never had"
                    }
                ),
                summary: String::new(),
            });
        }
        if missing_ratio > m.max_missing_ratio {
            failed.push(QualityFailure {
                feature: q.feature.clone(),
                rule: "missing".into(),
                share: missing_ratio,
                message: format!(
                    "{}: {:.1}% missing (above {:.1}%)",
                    q.feature,
                    missing_ratio * 100.0,
                    m.max_missing_ratio * 100.0
                ),
                summary: String::new(),
            });
        }
        failures.extend(failed.iter().skip(before).map(|f| f.message.clone()));
        if failed.len() > before {
            failing_features.push(q.feature.clone());
        }
        out.push(q);
    }
    DataQuality {
        features: out,
        rejected_requests: ctx.rejected_requests,
        failures,
        failing_features,
        failed,
    }
}

fn performance(m: &MonitoringSettings, profile: &ReferenceProfile, window: &Window) -> Performance {
    let labelled = window.labelled.len() as u64;
    let mut standard_errors = BTreeMap::new();
    // (labelled rows, rows F1 counts, positives, negatives)
    let mut counts: Option<(f64, f64, f64, f64)> = None;
    let live = (labelled >= m.min_labels).then(|| {
        let labels: Vec<u32> = window.labelled.iter().map(|(l, _, _)| *l).collect();
        let p: Vec<f64> = window.labelled.iter().map(|(_, p, _)| *p).collect();
        let metrics = crate::ml::metrics::evaluate(&labels, &p, profile.threshold);
        let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
        let negatives = labels.len() as f64 - positives;
        let both = positives > 0.0 && negatives > 0.0;
        let n = labels.len() as f64;
        let [[_, fp], [fn_, tp]] = metrics.confusion;
        counts = Some((n, (tp + fp + fn_) as f64, positives, negatives));
        Live {
            accuracy: metrics.accuracy,
            f1: metrics.f1,
            roc_auc: both.then_some(metrics.roc_auc),
        }
    });
    let rows: Vec<(f64, f64)> = window
        .probabilities
        .iter()
        .map(|&p| (p, profile.calibration.apply(p)))
        .collect();
    let estimated = estimate(&rows, profile.threshold);
    let drops_of = |pairs: [(&str, Option<f64>); 3]| -> BTreeMap<String, (f64, f64)> {
        pairs
            .into_iter()
            .filter_map(|(name, now)| {
                let h = *profile.holdout.get(&format!("holdout_{name}"))?;
                let now = now?;
                (now < h).then(|| (name.to_owned(), (h, now)))
            })
            .collect()
    };
    let drops = live.as_ref().map_or_else(BTreeMap::new, |l| {
        drops_of([
            ("accuracy", Some(l.accuracy)),
            ("f1", Some(l.f1)),
            ("roc_auc", l.roc_auc),
        ])
    });
    let estimated_drops = estimated.as_ref().map_or_else(BTreeMap::new, |e| {
        drops_of([
            ("accuracy", Some(e.accuracy)),
            ("f1", Some(e.f1)),
            ("roc_auc", e.roc_auc),
        ])
    });
    // Decay needs a drop past `max_metric_drop` that is also beyond the figure's sampling
    // noise (1.96 standard errors): 30 labelled rows must not raise a critical alert by chance.
    // Standard errors of a live figure if nothing had changed (at the holdout's value), from
    // both samples: binomial for accuracy and, over the rows it counts (TP, FP, FN), for F1 (an
    // approximation); Hanley and McNeil (1982) for ROC-AUC. A figure with no rows behind it
    // (F1 with no positive anywhere) has no error, and cannot decay.
    let holdout_rows = profile.holdout.get("holdout_rows").copied().unwrap_or(0.0);
    if let Some((n, support, positives, negatives)) = counts {
        let binomial = |h: f64, k: f64| {
            let holdout = if holdout_rows > 0.0 {
                h * (1.0 - h) / holdout_rows
            } else {
                0.0
            };
            (k > 0.0).then(|| (h * (1.0 - h) / k + holdout).sqrt())
        };
        let at = |name: &str| profile.holdout.get(&format!("holdout_{name}")).copied();
        if let Some(se) = at("accuracy").and_then(|h| binomial(h, n)) {
            standard_errors.insert("accuracy".to_owned(), se);
        }
        if let Some(se) = at("f1").and_then(|h| binomial(h, support)) {
            standard_errors.insert("f1".to_owned(), se);
        }
        if let Some(a) = at("roc_auc").filter(|_| positives > 0.0 && negatives > 0.0) {
            let q1 = a / (2.0 - a);
            let q2 = 2.0 * a * a / (1.0 + a);
            let var = (a * (1.0 - a)
                + (positives - 1.0) * (q1 - a * a)
                + (negatives - 1.0) * (q2 - a * a))
                / (positives * negatives);
            standard_errors.insert("roc_auc".to_owned(), var.max(0.0).sqrt());
        }
    }
    // Decay: a drop past `max_metric_drop` that is also beyond 1.96 standard errors.
    let decayed: Vec<String> = drops
        .iter()
        .filter(|(name, (h, n))| {
            standard_errors
                .get(*name)
                .is_some_and(|se| h - n > m.max_metric_drop && h - n > 1.96 * se)
        })
        .map(|(name, _)| name.clone())
        .collect();
    let decay = !decayed.is_empty();
    // The estimate's accuracy carries its own band: the holdout must lie above it.
    let estimated_decay = estimated.as_ref().is_some_and(|e| {
        profile
            .holdout
            .get("holdout_accuracy")
            .is_some_and(|&h| h - e.accuracy > m.max_metric_drop && h > e.accuracy_band[1])
    });
    // The summaries name what decided: the decayed live figures; the estimated accuracy.
    let drops: BTreeMap<String, (f64, f64)> = drops
        .into_iter()
        .filter(|(name, _)| decayed.contains(name))
        .collect();
    let estimated_drops: BTreeMap<String, (f64, f64)> = estimated_drops
        .into_iter()
        .filter(|(name, _)| name == "accuracy")
        .collect();
    let mut change = BTreeMap::new();
    if let Some(l) = &live {
        for (name, now) in [
            ("accuracy", Some(l.accuracy)),
            ("f1", Some(l.f1)),
            ("roc_auc", l.roc_auc),
        ] {
            if let (Some(now), Some(h)) = (now, profile.holdout.get(&format!("holdout_{name}"))) {
                change.insert(name.to_owned(), now - h);
            }
        }
    }
    Performance {
        labelled_rows: labelled,
        live,
        standard_errors,
        change,
        drops,
        estimated_drops,
        holdout: profile.holdout.clone(),
        estimated,
        decay,
        estimated_decay,
    }
}

/// "F1 0.736 against 0.830 on the holdout (−0.094)" for each metric that fell past `limit`.
fn crossed(drops: &BTreeMap<String, (f64, f64)>, limit: f64) -> String {
    let names = |m: &str| {
        match m {
            "accuracy" => "accuracy",
            "f1" => "F1",
            "roc_auc" => "ROC-AUC",
            other => other,
        }
        .to_owned()
    };
    drops
        .iter()
        .filter(|(_, (h, n))| h - n > limit)
        .map(|(m, (h, n))| {
            format!(
                "{} {n:.3} against {h:.3} on the holdout ({:+.3})",
                names(m),
                n - h
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Stores a check, its per-feature rows and its alerts in one transaction, and deletes the
/// checks beyond the newest `keep`.
pub fn store(conn: &mut DbConnection, report: &CheckReport, keep: u64) -> Result<(), AppError> {
    let json = serde_json::to_string(report)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing a check: {e}")))?;
    let drift = report.drift.as_ref();
    let quality = report.data_quality.as_ref();
    let missing_ratio = quality.map(|q| {
        let n = q.features.len().max(1) as f64;
        q.features.iter().map(|f| f.missing_ratio).sum::<f64>() / n
    });
    let write = |conn: &mut DbConnection| -> Result<(), AppError> {
        diesel::insert_into(drift_checks::table)
            .values((
                drift_checks::id.eq(&report.id),
                drift_checks::model.eq(&report.model),
                drift_checks::version.eq(report.version),
                drift_checks::trigger_kind.eq(&report.trigger),
                drift_checks::actor.eq(&report.actor),
                drift_checks::status.eq(&report.status),
                drift_checks::reason.eq(&report.reason),
                drift_checks::window_rows.eq(report.window.rows as i64),
                drift_checks::window_start.eq(report.window.start),
                drift_checks::window_end.eq(report.window.end),
                drift_checks::drift_share.eq(drift.map(|d| d.drift_share)),
                drift_checks::dataset_drift.eq(drift.is_some_and(|d| d.dataset_drift)),
                drift_checks::accuracy_live.eq(report
                    .performance
                    .as_ref()
                    .and_then(|p| p.live.as_ref())
                    .map(|l| l.accuracy)),
                drift_checks::accuracy_estimated.eq(report
                    .performance
                    .as_ref()
                    .and_then(|p| p.estimated.as_ref())
                    .map(|e| e.accuracy)),
                drift_checks::labelled_rows.eq(report.window.labelled_rows as i64),
                drift_checks::p99_latency_ms.eq(report.window.p99_latency_ms),
                drift_checks::missing_ratio.eq(missing_ratio),
                drift_checks::report_json.eq(&json),
                drift_checks::created_at.eq(report.created_at),
            ))
            .execute(conn)?;
        if let Some(d) = drift {
            for f in &d.features {
                let missing = quality
                    .and_then(|q| q.features.iter().find(|x| x.feature == f.feature))
                    .map_or(0.0, |q| q.missing_ratio);
                diesel::insert_into(drift_check_features::table)
                    .values((
                        drift_check_features::check_id.eq(&report.id),
                        drift_check_features::feature.eq(&f.feature),
                        drift_check_features::stattest.eq(f.stattest.map(|t| t.as_str())),
                        drift_check_features::score.eq(f.score),
                        drift_check_features::threshold.eq(f.threshold),
                        drift_check_features::drifted.eq(f.drifted),
                        drift_check_features::effect_size.eq(f.effect_size),
                        drift_check_features::psi.eq(f.psi),
                        drift_check_features::missing_ratio.eq(missing),
                    ))
                    .execute(conn)?;
            }
        }
        for a in &report.alerts {
            diesel::insert_into(monitoring_alerts::table)
                .values((
                    monitoring_alerts::id.eq(uuid::Uuid::now_v7().to_string()),
                    monitoring_alerts::fingerprint.eq(&a.fingerprint),
                    monitoring_alerts::alert_type.eq(a.alert_type.as_str()),
                    monitoring_alerts::severity.eq(match a.severity {
                        Severity::Warning => "warning",
                        Severity::Critical => "critical",
                    }),
                    monitoring_alerts::model.eq(&a.model),
                    monitoring_alerts::version.eq(a.version),
                    monitoring_alerts::score.eq(a.score),
                    monitoring_alerts::summary.eq(crate::error::bounded(&a.summary, 1000)),
                    monitoring_alerts::evidence_json.eq(a.evidence.to_string()),
                    monitoring_alerts::check_id.eq(&report.id),
                    monitoring_alerts::created_at.eq(report.created_at),
                ))
                .execute(conn)?;
        }
        prune(conn, keep)?;
        Ok(())
    };
    if report.trigger == "scheduled" {
        return conn.transaction(write);
    }
    // A check someone asked for is theirs: audited with it (scheduled ones would only repeat
    // the scheduler's interval in the log).
    crate::audit::with_event(conn, |conn| {
        write(conn)?;
        let event = crate::audit::NewEvent::new(
            &report.actor,
            "drift.check",
            format!("model:{}/{}", report.model, report.version),
        )
        .after(serde_json::json!({
            "check_id": report.id,
            "status": report.status,
            "window_rows": report.window.rows,
            "drift_share": drift.map(|d| d.drift_share),
            "alerts": report.alerts.iter().map(|a| a.alert_type.as_str()).collect::<Vec<_>>(),
        }));
        Ok(((), event))
    })
}

/// Deletes the checks older than the newest `keep` (with their rows and alerts).
fn prune(conn: &mut DbConnection, keep: u64) -> Result<(), AppError> {
    let cutoff: Option<String> = drift_checks::table
        .select(drift_checks::id)
        .order(drift_checks::id.desc())
        .offset(keep as i64)
        .first(conn)
        .optional()?;
    if let Some(cutoff) = cutoff {
        diesel::delete(monitoring_alerts::table.filter(monitoring_alerts::check_id.le(&cutoff)))
            .execute(conn)?;
        diesel::delete(
            drift_check_features::table.filter(drift_check_features::check_id.le(&cutoff)),
        )
        .execute(conn)?;
        diesel::delete(drift_checks::table.filter(drift_checks::id.le(&cutoff))).execute(conn)?;
    }
    Ok(())
}

/// A stored check's summary, for lists and trends.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = drift_checks)]
pub struct CheckSummary {
    pub id: String,
    pub model: String,
    pub version: i32,
    #[serde(rename = "trigger")]
    pub trigger_kind: String,
    pub actor: String,
    pub status: String,
    pub reason: Option<String>,
    pub window_rows: i64,
    pub window_start: Option<chrono::NaiveDateTime>,
    pub window_end: Option<chrono::NaiveDateTime>,
    pub drift_share: Option<f64>,
    pub dataset_drift: bool,
    pub accuracy_live: Option<f64>,
    pub accuracy_estimated: Option<f64>,
    pub labelled_rows: i64,
    pub p99_latency_ms: Option<f64>,
    pub missing_ratio: Option<f64>,
    pub created_at: chrono::NaiveDateTime,
}

/// The newest checks first, at most `limit`.
pub fn list(conn: &mut DbConnection, limit: i64) -> Result<Vec<CheckSummary>, AppError> {
    Ok(drift_checks::table
        .select(CheckSummary::as_select())
        .order(drift_checks::id.desc())
        .limit(limit)
        .load(conn)?)
}

/// A stored check's whole report (its JSON as stored).
pub fn get(conn: &mut DbConnection, id: &str) -> Result<serde_json::Value, AppError> {
    let json: Option<String> = drift_checks::table
        .filter(drift_checks::id.eq(id))
        .select(drift_checks::report_json)
        .first(conn)
        .optional()?;
    let json = json.ok_or_else(|| AppError::NotFound("no such drift check".into()))?;
    serde_json::from_str(&json)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading a stored check: {e}")))
}

/// A stored alert.
#[derive(Debug, Clone, Queryable, Selectable, Serialize)]
#[diesel(table_name = monitoring_alerts)]
pub struct StoredAlert {
    pub id: String,
    pub fingerprint: String,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub severity: String,
    pub model: String,
    pub version: i32,
    pub score: Option<f64>,
    pub summary: String,
    pub check_id: String,
    pub created_at: chrono::NaiveDateTime,
}

/// Open alerts: those raised by the newest completed check of the Production version (a later
/// check that no longer raises one closes it; a promotion leaves the old version's behind).
/// Until the agent keeps incidents, this is what the Overview lists.
pub fn open_alerts(conn: &mut DbConnection, model: &str) -> Result<Vec<StoredAlert>, AppError> {
    let Some(production) = crate::registry::production(conn, model)? else {
        return Ok(Vec::new());
    };
    let newest: Option<String> = drift_checks::table
        .filter(drift_checks::status.eq("completed"))
        .filter(drift_checks::model.eq(model))
        .filter(drift_checks::version.eq(production.version))
        .select(drift_checks::id)
        .order(drift_checks::id.desc())
        .first(conn)
        .optional()?;
    let Some(newest) = newest else {
        return Ok(Vec::new());
    };
    Ok(monitoring_alerts::table
        .filter(monitoring_alerts::check_id.eq(newest))
        .select(StoredAlert::as_select())
        .order(monitoring_alerts::id.asc())
        .load(conn)?)
}

/// The newest completed check of the Production version of `model`, whole, if any (the gauges
/// follow it, whichever process ran it).
pub fn newest_for_production(
    conn: &mut DbConnection,
    model: &str,
) -> Result<Option<CheckReport>, AppError> {
    let Some(production) = crate::registry::production(conn, model)? else {
        return Ok(None);
    };
    let json: Option<String> = drift_checks::table
        .filter(drift_checks::status.eq("completed"))
        .filter(drift_checks::model.eq(model))
        .filter(drift_checks::version.eq(production.version))
        .select(drift_checks::report_json)
        .order(drift_checks::id.desc())
        .first(conn)
        .optional()?;
    json.map(|j| {
        let value = serde_json::from_str(&j)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("reading a stored check: {e}")))?;
        parse_stored(value)
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitoring::drift::Side;
    use crate::monitoring::estimate::Calibration;

    fn profile() -> ReferenceProfile {
        ReferenceProfile {
            format: profile::PROFILE_FORMAT,
            model: "m".into(),
            version: 1,
            dataset: "d".into(),
            dataset_version: 1,
            rows: 300,
            model_features: Vec::new(),
            features: Vec::new(),
            predictions: Vec::new(),
            predictions_from: "holdout".into(),
            labels: [150, 150],
            threshold: 0.5,
            holdout: [
                ("holdout_accuracy".to_owned(), 0.85),
                ("holdout_f1".to_owned(), 0.83),
                ("holdout_roc_auc".to_owned(), 0.75),
                ("holdout_rows".to_owned(), 1000.0),
            ]
            .into(),
            calibration: Calibration::identity(),
        }
    }

    fn window(labelled: Vec<(u32, f64, i32)>) -> Window {
        Window {
            side: Side {
                rows: labelled.len() as u64,
                features: Vec::new(),
            },
            probabilities: labelled.iter().map(|(_, p, _)| *p).collect(),
            labelled,
            start: None,
            end: None,
            latencies_us: Vec::new(),
        }
    }

    fn settings() -> MonitoringSettings {
        let defaults = crate::config::Settings::defaults();
        assert!(defaults.is_ok());
        let Ok(defaults) = defaults else {
            unreachable!()
        };
        defaults.monitoring
    }

    /// Labels with no positive give F1 no rows to stand on: no decay from it.
    #[test]
    fn a_figure_with_no_rows_behind_it_cannot_decay() {
        let rows = vec![(0, 0.1, 0); 40];
        let p = performance(&settings(), &profile(), &window(rows));
        assert!(
            p.live
                .as_ref()
                .is_some_and(|l| l.f1 == 0.0 && l.accuracy == 1.0)
        );
        assert!(!p.decay, "{p:?}");
    }

    /// A drop past max_metric_drop within sampling noise is no decay; the same drop on many
    /// rows is.
    #[test]
    fn decay_needs_a_drop_beyond_sampling_noise() {
        // 30 rows, 23 right (0.767 against 0.85): past 0.05, within 1.96 standard errors.
        let mut rows: Vec<(u32, f64, i32)> = Vec::new();
        for i in 0..30 {
            let label = u32::from(i % 2 == 0);
            let right = i < 23;
            let p = if (label == 1) == right { 0.9 } else { 0.1 };
            rows.push((label, p, i32::from(p >= 0.5)));
        }
        let small = performance(&settings(), &profile(), &window(rows.clone()));
        assert!(!small.decay, "{small:?}");
        // Ten times the rows, the same share right: decay.
        let many: Vec<(u32, f64, i32)> = rows.iter().cycle().take(300).copied().collect();
        let big = performance(&settings(), &profile(), &window(many));
        assert!(big.decay, "{big:?}");
        assert!(big.drops.contains_key("accuracy"));
    }
}
