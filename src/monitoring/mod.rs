//! Monitoring: drift statistics with Evidently's names and numbers, drift reports between a
//! reference and a current side, and (on the scheduler) the checks over the prediction log.
//!
//! Owns: `stattests` and `ks` (the statistics), `drift` (reports between two sides), `profile`
//! (each version's reference, stored once), `window` (the prediction log's newest rows),
//! `estimate` (calibration and performance without labels), `check` (a check, its history and
//! its alerts). May read `data`, `ml`, the registry, tracking and serving's log; sends alerts
//! into a channel it does not read; never knows the web layer, the API or the agent.

pub mod check;
pub mod drift;
pub mod estimate;
pub mod ks;
pub mod profile;
pub mod settings;
pub mod stattests;
pub mod window;

#[cfg(test)]
mod golden;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use check::{Alert, AlertSender, CheckContext, CheckReport};

use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::Db;
use crate::error::AppError;
use crate::telemetry::{
    DATA_MISSING_RATIO, DATASET_DRIFT, DRIFT_CHECK_DURATION_SECONDS, DRIFT_CHECKS_TOTAL,
    DRIFT_SHARE, FEATURE_DRIFT_SCORE, FEATURE_DRIFTED, FEATURE_EFFECT_SIZE,
    MODEL_ACCURACY_ESTIMATED, MODEL_ACCURACY_HOLDOUT, MODEL_ACCURACY_LIVE, MONITORING_ALERTS_TOTAL,
};

/// Monitoring's share of the process: the alert channel, one check at a time, and the count of
/// rejected requests at the previous check.
pub struct Monitor {
    alerts: AlertSender,
    gate: tokio::sync::Semaphore,
    last_rejected: AtomicU64,
    /// The check the gauges show, and the score series they set.
    shown: std::sync::Mutex<Shown>,
    /// The last profile read (parsed once per version, not per check).
    profile: std::sync::Mutex<Option<Arc<profile::ReferenceProfile>>>,
    /// Versions whose profile could not be built, not tried again by the job.
    unprofilable: std::sync::Mutex<Vec<i32>>,
}

fn context<'a>(
    settings: &'a Settings,
    blobs: &'a dyn BlobStore,
    rejected: Option<u64>,
    trigger: &'a str,
    actor: &'a str,
) -> CheckContext<'a> {
    CheckContext {
        schema: &settings.dataset,
        monitoring: &settings.monitoring,
        model: &settings.registry.model,
        blobs,
        rejected_requests: rejected,
        trigger,
        actor,
    }
}

#[derive(Default)]
struct Shown {
    check: Option<String>,
    series: Vec<(String, &'static str)>,
    /// The gauges were set to NaN since the last check shown.
    cleared: bool,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    pub fn new() -> Self {
        let (alerts, _) = tokio::sync::broadcast::channel(256);
        Self {
            alerts,
            gate: tokio::sync::Semaphore::new(1),
            last_rejected: AtomicU64::new(0),
            shown: std::sync::Mutex::new(Shown::default()),
            profile: std::sync::Mutex::new(None),
            unprofilable: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn show(&self, report: &CheckReport) {
        let series = set_gauges(report);
        if let Ok(mut shown) = self.shown.lock() {
            // A score series this check did not set (its feature's test changed) is no longer
            // true: NaN, not its last value.
            let gone: Vec<(String, &'static str)> = shown
                .series
                .iter()
                .filter(|s| !series.contains(s))
                .cloned()
                .collect();
            for (feature, test) in gone {
                metrics::gauge!(FEATURE_DRIFT_SCORE, "feature" => feature, "stattest" => test)
                    .set(f64::NAN);
            }
            shown.check = Some(report.id.clone());
            shown.series = series;
            shown.cleared = false;
        }
    }

    /// Builds the profiles of versions that have none (each tried once per process), so a
    /// version's reference is ready before its first check.
    pub async fn profile_versions(
        &self,
        db: &Db,
        blobs: Arc<dyn BlobStore>,
        settings: Arc<Settings>,
    ) -> Result<(), AppError> {
        let model = settings.registry.model.clone();
        let todo = {
            let model = model.clone();
            db.run(move |conn| profile::unprofiled(conn, &model))
                .await?
        };
        for version in todo {
            if self
                .unprofilable
                .lock()
                .map(|u| u.contains(&version))
                .unwrap_or(true)
            {
                continue;
            }
            let (model, settings, blobs) = (model.clone(), settings.clone(), blobs.clone());
            let built = db
                .run(move |conn| {
                    profile::ensure(conn, blobs.as_ref(), &settings.dataset, &model, version)
                })
                .await;
            match built {
                Ok(_) => tracing::info!(version, "reference profile stored"),
                // A busy or unavailable store is tried again at the next tick.
                Err(e @ (AppError::Unavailable(_) | AppError::Overloaded { .. })) => {
                    tracing::info!(version, error = %e, "reference profile postponed");
                }
                Err(e) => {
                    tracing::warn!(version, error = %e, "no reference profile for this version; not tried again until restart");
                    if let Ok(mut u) = self.unprofilable.lock() {
                        u.push(version);
                    }
                }
            }
        }
        Ok(())
    }

    /// Points the gauges at the newest completed check of the Production version, whoever ran
    /// it (the CLI, another replica): NaN when there is none (after a promotion, say).
    pub async fn refresh_gauges(
        &self,
        db: &Db,
        model: String,
        features: Vec<String>,
    ) -> Result<(), AppError> {
        let newest = db
            .run(move |conn| check::newest_for_production(conn, &model))
            .await?;
        let current = self.shown.lock().ok().and_then(|s| s.check.clone());
        match newest {
            // Never back to an older check than one shown (a check may have finished meanwhile;
            // ids are time-ordered).
            Some(report) if current.as_deref().is_none_or(|c| c < report.id.as_str()) => {
                self.show(&report);
            }
            Some(_) => {}
            None => {
                if let Ok(mut shown) = self.shown.lock() {
                    if shown.check.take().is_some() || !shown.cleared {
                        clear_gauges(&shown.series, &features);
                        shown.series.clear();
                        shown.cleared = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// Alerts from now on (the agent's intake).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Alert> {
        self.alerts.subscribe()
    }

    /// Runs a check of the Production version in the blocking pool and stores it; one at a
    /// time (a second one meanwhile is refused as busy, 503). `rejected_total` is the server's
    /// count of 422 answers so far. Publishes the gauges and sends the alerts after the commit.
    pub async fn run_check(
        &self,
        db: &Db,
        blobs: Arc<dyn BlobStore>,
        settings: Arc<Settings>,
        rejected_total: Option<u64>,
        trigger: &'static str,
        actor: String,
    ) -> Result<CheckReport, AppError> {
        let _permit = self.gate.try_acquire().map_err(|_| AppError::Overloaded {
            message: "a monitoring check is running; try again when it ends".into(),
            retry_after_secs: 5,
        })?;
        let rejected = rejected_total.map(|total| {
            let before = self.last_rejected.swap(total, Ordering::Relaxed);
            total.saturating_sub(before)
        });
        let started = Instant::now();
        let cached = self.profile.lock().ok().and_then(|p| p.clone());
        // Three steps, so no store connection is held while the statistics run: read the
        // profile and the window, compute, store.
        let (profile, window) = {
            let (settings, blobs) = (settings.clone(), blobs.clone());
            db.run(move |conn| {
                let ctx = context(&settings, blobs.as_ref(), None, trigger, "");
                check::prepare(conn, &ctx, cached)
            })
            .await?
        };
        if let Ok(mut slot) = self.profile.lock() {
            *slot = Some(profile.clone());
        }
        let report = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || {
                let ctx = context(&settings, blobs.as_ref(), rejected, trigger, &actor);
                check::assess(&ctx, &profile, &window)
            })
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("check task failed: {e}")))?
        };
        let report = {
            let keep = settings.monitoring.keep_checks;
            db.run(move |conn| {
                check::store(conn, &report, keep)?;
                Ok(report)
            })
            .await?
        };
        metrics::histogram!(DRIFT_CHECK_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
        count(&report);
        if report.status == "completed" {
            self.show(&report);
        }
        for alert in &report.alerts {
            // No subscriber yet is fine: the alert is stored.
            let _ = self.alerts.send(alert.clone());
        }
        Ok(report)
    }
}

/// Counts a check this process ran (labels: fixed sets).
fn count(report: &CheckReport) {
    let status: &'static str = if report.status == "completed" {
        "completed"
    } else {
        "skipped"
    };
    let trigger: &'static str = if report.trigger == "scheduled" {
        "scheduled"
    } else {
        "manual"
    };
    metrics::counter!(DRIFT_CHECKS_TOTAL, "status" => status, "trigger" => trigger).increment(1);
    for a in &report.alerts {
        metrics::counter!(MONITORING_ALERTS_TOTAL, "type" => a.alert_type.as_str()).increment(1);
    }
}

/// Sets the gauges from a completed check; returns the (feature, stattest) score series set
/// (labels: schema feature names and stattest names, fixed sets).
fn set_gauges(report: &CheckReport) -> Vec<(String, &'static str)> {
    let mut series = Vec::new();
    let Some(drift) = &report.drift else {
        return series;
    };
    metrics::gauge!(DRIFT_SHARE).set(drift.drift_share);
    metrics::gauge!(DATASET_DRIFT).set(if drift.dataset_drift { 1.0 } else { 0.0 });
    for f in &drift.features {
        let feature = f.feature.clone();
        if let (Some(test), Some(score)) = (f.stattest, f.score) {
            metrics::gauge!(FEATURE_DRIFT_SCORE, "feature" => feature.clone(), "stattest" => test.as_str())
                .set(score);
            series.push((feature.clone(), test.as_str()));
        }
        metrics::gauge!(FEATURE_DRIFTED, "feature" => feature.clone()).set(if f.drifted {
            1.0
        } else {
            0.0
        });
        metrics::gauge!(FEATURE_EFFECT_SIZE, "feature" => feature)
            .set(f.effect_size.unwrap_or(f64::NAN));
    }
    if let Some(q) = &report.data_quality {
        for f in &q.features {
            metrics::gauge!(DATA_MISSING_RATIO, "feature" => f.feature.clone())
                .set(f.missing_ratio);
        }
    }
    if let Some(p) = &report.performance {
        metrics::gauge!(MODEL_ACCURACY_LIVE).set(p.live.as_ref().map_or(f64::NAN, |l| l.accuracy));
        metrics::gauge!(MODEL_ACCURACY_ESTIMATED)
            .set(p.estimated.as_ref().map_or(f64::NAN, |e| e.accuracy));
        metrics::gauge!(MODEL_ACCURACY_HOLDOUT).set(
            p.holdout
                .get("holdout_accuracy")
                .copied()
                .unwrap_or(f64::NAN),
        );
    }
    series
}

/// Sets every monitoring gauge to NaN: no completed check describes the Production version.
fn clear_gauges(series: &[(String, &'static str)], features: &[String]) {
    metrics::gauge!(DRIFT_SHARE).set(f64::NAN);
    metrics::gauge!(DATASET_DRIFT).set(f64::NAN);
    metrics::gauge!(MODEL_ACCURACY_LIVE).set(f64::NAN);
    metrics::gauge!(MODEL_ACCURACY_ESTIMATED).set(f64::NAN);
    metrics::gauge!(MODEL_ACCURACY_HOLDOUT).set(f64::NAN);
    for (feature, test) in series {
        metrics::gauge!(FEATURE_DRIFT_SCORE, "feature" => feature.clone(), "stattest" => *test)
            .set(f64::NAN);
    }
    for feature in features {
        metrics::gauge!(FEATURE_DRIFTED, "feature" => feature.clone()).set(f64::NAN);
        metrics::gauge!(FEATURE_EFFECT_SIZE, "feature" => feature.clone()).set(f64::NAN);
        metrics::gauge!(DATA_MISSING_RATIO, "feature" => feature.clone()).set(f64::NAN);
    }
}
