//! Training as a tracked, registrable job: picks the dataset version (refusing one that failed
//! a critical expectation unless forced), runs each candidate model's protocol
//! ([`crate::ml::train_candidate`]) as a tracked run with its metrics and artifacts, then
//! optionally registers the best run by the configured metric (`training.select_by`,
//! cross-validated ROC-AUC by default) and promotes it.
//!
//! The CLI, the JSON API, the dashboard and the first start all call [`train`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::charts;
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::data::{self as datasets, catalog};
use crate::db::DbConnection;
use crate::error::AppError;
use crate::ml::features::Examples;
use crate::ml::models::ModelKind;
use crate::ml::{self, CandidateReport, TrainedModel};
use crate::registry::{self, MODEL_ARTIFACT, ModelVersion, Stage, TransitionOutcome};
use crate::telemetry::{TRAINING_DURATION_SECONDS, TRAINING_RUNS_TOTAL};
use crate::tracking::{self, FAILED, FINISHED, NewRun, Run};

/// What to train.
#[derive(Debug, Clone, Default)]
pub struct TrainRequest {
    /// Default: the configured dataset.
    pub dataset: Option<String>,
    /// Default: the dataset's current version.
    pub version: Option<i32>,
    /// Default: the configured models.
    pub models: Option<Vec<ModelKind>>,
    /// Train on a version that failed a critical expectation (tagged on the runs).
    pub force: bool,
    /// Register the best run as a new version of the registered model.
    pub register: bool,
    /// Also promote that version to Production (implies `register`).
    pub promote: bool,
    /// Default: the configured experiment.
    pub experiment: Option<String>,
    /// Where the request came from, kept as the `source` tag (cli, api, dashboard, first-start).
    pub source: String,
}

/// Progress for a progress bar: the model, its fits done and its fits in all.
pub type OnProgress<'a> = &'a (dyn Fn(ModelKind, usize, usize) + Sync);

#[derive(Debug, Clone, Serialize)]
pub struct CandidateOutcome {
    pub run: Run,
    pub report: Option<CandidateReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub dataset: String,
    pub dataset_version: i32,
    pub dataset_hash: String,
    pub rows: usize,
    pub experiment: String,
    pub candidates: Vec<CandidateOutcome>,
    /// The finished run best by `training.select_by`.
    pub best_run: Option<String>,
    pub registered: Option<ModelVersion>,
    pub promoted: Option<TransitionOutcome>,
    pub seconds: f64,
}

/// The critical expectations a version failed in its latest validation, as labels.
fn critical_failures(
    conn: &mut DbConnection,
    dataset: &str,
    version: i32,
) -> Result<Vec<String>, AppError> {
    let Some(run) = catalog::latest_runs_by_version(conn, dataset)?.remove(&version) else {
        return Ok(Vec::new());
    };
    if run.critical_failures == 0 {
        return Ok(Vec::new());
    }
    Ok(run
        .result()?
        .critical_failures()
        .iter()
        .map(|r| r.label())
        .collect())
}

pub fn train(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    settings: &Settings,
    request: &TrainRequest,
    actor: &str,
    on_progress: OnProgress<'_>,
) -> Result<TrainOutcome, AppError> {
    let started = Instant::now();
    let schema = &settings.dataset;
    let dataset = request
        .dataset
        .clone()
        .unwrap_or_else(|| schema.name.clone());
    let models = request
        .models
        .clone()
        .unwrap_or_else(|| settings.training.models.clone());
    if models.is_empty() {
        return Err(AppError::validation("models", "name at least one model"));
    }
    let experiment = request
        .experiment
        .clone()
        .unwrap_or_else(|| settings.training.experiment.clone());
    let number = datasets::resolve_version(conn, &dataset, request.version)?;
    let failures = critical_failures(conn, &dataset, number)?;
    if !failures.is_empty() && !request.force {
        return Err(AppError::Conflict(format!(
            "{dataset} v{number} failed critical expectations: {}; fix the data or force the training",
            failures.join(", ")
        )));
    }
    let (version, table) = datasets::load_version(conn, blobs, schema, &dataset, number)?;
    let examples = Examples::from_table(&table, schema).map_err(AppError::BadRequest)?;
    drop(table);

    let mut candidates = Vec::new();
    for &kind in &models {
        let spec = settings.training.base_spec(kind);
        let params = json!({
            "model": kind.code(),
            "params": spec.params(),
            "grid": settings.training.candidates(kind).map(|c| c.len()).unwrap_or(1),
            "seed": settings.training.seed,
            "folds": settings.training.folds,
            "holdout": settings.training.holdout,
            "threshold": settings.training.threshold,
            "imbalance": settings.training.imbalance.as_str(),
        });
        let run = tracking::start_run(
            conn,
            NewRun {
                experiment: &experiment,
                model_kind: kind.code(),
                params,
                dataset: &dataset,
                dataset_version: number,
                dataset_hash: &version.hash,
            },
            actor,
        )?;
        tracking::set_tag(conn, &run.id, "source", &request.source)?;
        if !failures.is_empty() {
            tracking::set_tag(conn, &run.id, "forced", &failures.join("; "))?;
        }
        let fit_started = Instant::now();
        let result = run_candidate(conn, blobs, &run, &examples, kind, settings, on_progress);
        let status = if result.is_ok() { FINISHED } else { FAILED };
        metrics::counter!(TRAINING_RUNS_TOTAL, "model" => kind.code(), "status" => status)
            .increment(1);
        metrics::histogram!(TRAINING_DURATION_SECONDS, "model" => kind.code())
            .record(fit_started.elapsed().as_secs_f64());
        let (run, report) = match result {
            Ok(report) => (
                tracking::end_run(conn, &run.id, FINISHED, None, actor)?,
                Some(report),
            ),
            Err(e) => {
                tracing::warn!(run = %run.id, model = kind.code(), error = %e, "training run failed");
                let run = tracking::end_run(conn, &run.id, FAILED, Some(&e.to_string()), actor)?;
                (run, None)
            }
        };
        candidates.push(CandidateOutcome { run, report });
    }

    let select_by = &settings.training.select_by;
    let lower = tracking::lower_is_better(select_by);
    let best = candidates
        .iter()
        .filter_map(|c| {
            let report = c.report.as_ref()?;
            let value = run_metrics(report)
                .into_iter()
                .find(|(name, step, _)| name == select_by && *step == 0)?
                .2;
            value.is_finite().then_some((c, value))
        })
        .max_by(|a, b| {
            if lower {
                b.1.total_cmp(&a.1)
            } else {
                a.1.total_cmp(&b.1)
            }
        });
    let best_run = best.map(|(c, _)| c.run.id.clone());
    let (mut registered, mut promoted) = (None, None);
    if request.register || request.promote {
        let Some((best, auc)) = best else {
            return Err(AppError::Conflict(
                "every candidate failed; nothing to register".into(),
            ));
        };
        let model = &settings.registry.model;
        let v = registry::register(conn, model, &best.run, actor)?;
        if request.promote {
            let reason = format!(
                "best of {} candidates by {select_by} ({auc:.3})",
                candidates.len()
            );
            promoted = Some(registry::transition(
                conn,
                model,
                v.version,
                Stage::Production,
                actor,
                &reason,
            )?);
        }
        registered = Some(v);
    }
    Ok(TrainOutcome {
        dataset,
        dataset_version: number,
        dataset_hash: version.hash,
        rows: examples.labels.len(),
        experiment,
        candidates,
        best_run,
        registered,
        promoted,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Heartbeats are written at most this often while a candidate trains.
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Trains one candidate inside its run and records its metrics and artifacts. A panic in a
/// model library fails the run instead of the process.
fn run_candidate(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    run: &Run,
    examples: &Examples,
    kind: ModelKind,
    settings: &Settings,
    on_progress: OnProgress<'_>,
) -> Result<CandidateReport, AppError> {
    let (report, trained) = {
        let shared = Mutex::new((&mut *conn, Instant::now()));
        let progress = |done: usize, total: usize| {
            on_progress(kind, done, total);
            if let Ok(mut guard) = shared.lock() {
                if guard.1.elapsed() >= HEARTBEAT_EVERY {
                    let _ = tracking::heartbeat(guard.0, &run.id);
                    guard.1 = Instant::now();
                }
            }
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            ml::train_candidate(examples, kind, &settings.training, &progress)
        }));
        match outcome {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(AppError::BadRequest(e)),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "panic".into());
                return Err(AppError::Internal(anyhow::anyhow!(
                    "{} training panicked: {why}",
                    kind.name()
                )));
            }
        }
    };
    record_run(conn, blobs, run, &report, &trained)?;
    Ok(report)
}

/// The metrics a run records: per-fold values as steps, summaries at step 0, XGBoost's loss per
/// boosting round, and the grid's scores per parameter set.
pub fn run_metrics(report: &CandidateReport) -> Vec<(String, i32, f64)> {
    let mut values: Vec<(String, i32, f64)> = Vec::new();
    let mut put = |name: &str, step: usize, value: f64| {
        values.push((name.to_owned(), step as i32, value));
    };
    for (i, m) in report.cv.folds.iter().enumerate() {
        for (name, v) in metric_fields(m) {
            put(&format!("cv_{name}"), i, v);
        }
    }
    let cv = &report.cv;
    for (name, s) in [
        ("accuracy", cv.accuracy),
        ("precision", cv.precision),
        ("recall", cv.recall),
        ("f1", cv.f1),
        ("roc_auc", cv.roc_auc),
        ("pr_auc", cv.pr_auc),
        ("log_loss", cv.log_loss),
        ("brier", cv.brier),
    ] {
        put(&format!("cv_{name}_mean"), 0, s.mean);
        put(&format!("cv_{name}_std"), 0, s.std);
    }
    for (name, v) in metric_fields(&report.holdout) {
        put(&format!("holdout_{name}"), 0, v);
    }
    put("threshold", 0, report.out_of_fold.threshold);
    put("f1_optimal_threshold", 0, report.f1_optimal_threshold.0);
    put("f1_at_optimal_threshold", 0, report.f1_optimal_threshold.1);
    for (i, g) in report.grid.iter().enumerate() {
        put("grid_roc_auc", i, g.roc_auc.mean);
    }
    for (i, v) in report.eval_logloss.iter().enumerate() {
        put("holdout_logloss_by_round", i, *v);
    }
    put("fit_seconds", 0, report.fit_seconds);
    put("rows", 0, report.rows as f64);
    put("train_rows", 0, report.train_rows as f64);
    put("holdout_rows", 0, report.holdout_rows.len() as f64);
    values
}

/// Metric names `training.select_by` may name: the summaries every run records.
pub fn selectable_metrics() -> Vec<String> {
    let names = [
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
        "brier",
    ];
    let mut out: Vec<String> = names.iter().map(|n| format!("cv_{n}_mean")).collect();
    out.extend(names.iter().map(|n| format!("holdout_{n}")));
    out.push("f1_at_optimal_threshold".into());
    out
}

/// The run's metrics (with step histories), chosen parameters and artifacts.
fn record_run(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    run: &Run,
    report: &CandidateReport,
    trained: &TrainedModel,
) -> Result<(), AppError> {
    tracking::log_metrics(conn, &run.id, &run_metrics(report))?;

    let params = json!({
        "model": report.model.code(),
        "params": report.spec.params(),
        "grid": report.grid.len().max(1),
        "seed": report.seed,
        "folds": report.cv.folds.len(),
        "holdout": run.params().get("holdout").cloned().unwrap_or_default(),
        "threshold": report.out_of_fold.threshold,
        "imbalance": report.imbalance.as_str(),
    });
    tracking::set_params(conn, &run.id, &params)?;

    let model_bytes = trained
        .to_bytes()
        .map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    let report_bytes =
        serde_json::to_vec(report).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    let label = format!("{} (out-of-fold)", report.model.name());
    let pipeline_bytes = serde_json::to_vec_pretty(&trained.pipeline)
        .map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
    let artifacts: [(&str, &str, Vec<u8>); 7] = [
        (MODEL_ARTIFACT, "application/json", model_bytes),
        ("pipeline.json", "application/json", pipeline_bytes),
        ("metrics.json", "application/json", report_bytes),
        (
            "confusion_matrix.svg",
            "image/svg+xml",
            charts::confusion(&report.out_of_fold.confusion).into_bytes(),
        ),
        (
            "roc.svg",
            "image/svg+xml",
            charts::roc(&[(label.clone(), &report.roc)]).into_bytes(),
        ),
        (
            "calibration.svg",
            "image/svg+xml",
            charts::calibration(&label, &report.calibration).into_bytes(),
        ),
        (
            "feature_importance.svg",
            "image/svg+xml",
            charts::importance(&report.importance, 15).into_bytes(),
        ),
    ];
    for (name, media_type, bytes) in artifacts {
        tracking::add_artifact(conn, blobs, &run.id, name, media_type, &bytes)?;
    }
    Ok(())
}

fn metric_fields(m: &ml::metrics::Metrics) -> [(&'static str, f64); 8] {
    [
        ("accuracy", m.accuracy),
        ("precision", m.precision),
        ("recall", m.recall),
        ("f1", m.f1),
        ("roc_auc", m.roc_auc),
        ("pr_auc", m.pr_auc),
        ("log_loss", m.log_loss),
        ("brier", m.brier),
    ]
}

/// The report stored with a run (`metrics.json`), if it finished.
pub fn report_of(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    run_id: &str,
) -> Result<Option<CandidateReport>, AppError> {
    match tracking::read_artifact(conn, blobs, run_id, "metrics.json") {
        Ok((_, bytes)) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("metrics.json of run {run_id}: {e}"))),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// On a store where the registered model has no version yet, trains the configured candidates
/// on the dataset's current version and registers and promotes the best. Skipped when the
/// version failed a critical expectation (the log says why).
pub fn bootstrap(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    settings: &Settings,
) -> anyhow::Result<Option<TrainOutcome>> {
    if !settings.training.on_first_start
        || !registry::list_versions(conn, &settings.registry.model)?.is_empty()
        || catalog::find_dataset(conn, &settings.dataset.name)?
            .and_then(|d| d.current_version)
            .is_none()
    {
        return Ok(None);
    }
    let request = TrainRequest {
        register: true,
        promote: true,
        source: "first-start".into(),
        ..TrainRequest::default()
    };
    match train(conn, blobs, settings, &request, "system", &|_, _, _| {}) {
        Ok(outcome) => Ok(Some(outcome)),
        Err(AppError::Conflict(why)) => {
            tracing::warn!(%why, "first-start training skipped");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("first-start training: {e}")),
    }
}

/// Scores a registered model version (default: Production) on a labelled table, e.g. another
/// hospital's data: the cross-site check.
pub fn evaluate_on(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    settings: &Settings,
    version: Option<i32>,
    table: &crate::data::table::Table,
) -> Result<(ModelVersion, ml::metrics::Metrics), AppError> {
    let model = &settings.registry.model;
    let v = registry::resolve(conn, model, version)?;
    let (v, trained) = registry::load(conn, blobs, model, v.version)?;
    let examples = Examples::from_table(table, &settings.dataset).map_err(AppError::BadRequest)?;
    let metrics = trained.evaluate(&examples).map_err(AppError::BadRequest)?;
    Ok((v, metrics))
}
