//! Training as a tracked, registrable job: picks the dataset version (refusing one that failed
//! a critical expectation unless forced), runs each candidate model's protocol
//! ([`crate::ml::train_candidate`]) as a tracked run with its metrics and artifacts, then
//! optionally registers the best run by the configured metric (`training.select_by`,
//! cross-validated ROC-AUC by default) and promotes it.
//!
//! The CLI, the JSON API, the dashboard and the first start all call [`train`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::charts;
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::data::{self as datasets, catalog};
use crate::db::{Db, DbConnection};
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
    /// Also promote that version to Production (implies `register`). On data whose
    /// validation failed this needs `force` and a `reason`, checked before anything trains.
    pub promote: bool,
    /// Why: recorded with the promotion; needed to force one past failed validation.
    pub reason: Option<String>,
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
    /// Why the promotion asked for did not happen, when the version was registered but could
    /// not enter Production (it stays registered, in stage None).
    pub promotion_refused: Option<String>,
    pub seconds: f64,
}

/// What the latest validation of a dataset version said, for the training gate.
#[derive(Debug, Clone, Default)]
pub struct ValidationGate {
    /// The version has a recorded validation run.
    pub validated: bool,
    /// Critical expectations its latest validation failed, as labels.
    pub critical: Vec<String>,
    /// Every expectation its latest validation failed, critical or not.
    pub failed: Vec<String>,
}

impl ValidationGate {
    pub fn of(conn: &mut DbConnection, dataset: &str, version: i32) -> Result<Self, AppError> {
        let Some(run) = catalog::latest_runs_by_version(conn, dataset)?.remove(&version) else {
            return Ok(ValidationGate::default());
        };
        if run.success {
            return Ok(ValidationGate {
                validated: true,
                ..ValidationGate::default()
            });
        }
        let result = run.result()?;
        Ok(ValidationGate {
            validated: true,
            critical: result
                .critical_failures()
                .iter()
                .map(|r| r.label())
                .collect(),
            failed: result
                .results
                .iter()
                .filter(|r| !r.success)
                .map(|r| r.label())
                .collect(),
        })
    }

    /// What to tell a person before training on this version: that it was never validated,
    /// or each expectation it failed (empty when it passed).
    pub fn warnings(&self, dataset: &str, version: i32) -> Vec<String> {
        if !self.validated {
            return vec![format!("{dataset} v{version} has no recorded validation")];
        }
        self.failed
            .iter()
            .map(|f| {
                if self.critical.contains(f) {
                    format!("{f} (critical)")
                } else {
                    f.clone()
                }
            })
            .collect()
    }

    /// Why training must be forced on this version, if it must.
    pub fn blocks(&self, dataset: &str, version: i32) -> Option<String> {
        if !self.validated {
            return Some(format!(
                "{dataset} v{version} has no recorded validation; validate it \
                 (`steward validate --dataset {dataset} --version {version}`) or force the training"
            ));
        }
        if !self.critical.is_empty() {
            return Some(format!(
                "{dataset} v{version} failed critical expectations: {}; fix the data or force the training",
                self.critical.join(", ")
            ));
        }
        None
    }

    /// The `forced` tag of runs that trained past the gate.
    fn forced_tag(&self) -> Option<String> {
        if !self.validated {
            Some("never validated".into())
        } else if !self.critical.is_empty() {
            Some(self.critical.join("; "))
        } else {
            None
        }
    }
}

/// Promotes a registered version (model, version, reason) inside the caller's rules: the
/// server's keeps its serving slot in step, the CLI's only checks that the model can be served.
/// Arguments: the store, the model, the version and who asks why.
pub type Promote<'a> = &'a (
        dyn Fn(
    &mut DbConnection,
    &str,
    i32,
    registry::Change<'_>,
) -> Result<TransitionOutcome, AppError>
            + Sync
    );

/// A [`Promote`] that can be sent to the blocking pool.
pub type SharedPromote = Arc<
    dyn Fn(
            &mut DbConnection,
            &str,
            i32,
            registry::Change<'_>,
        ) -> Result<TransitionOutcome, AppError>
        + Send
        + Sync,
>;

/// At most one training per process; a second gets 409 instead of waiting.
pub struct TrainingGate(Arc<tokio::sync::Semaphore>);

impl Default for TrainingGate {
    fn default() -> Self {
        TrainingGate(Arc::new(tokio::sync::Semaphore::new(1)))
    }
}

impl TrainingGate {
    /// The gate, held until the permit is dropped: by the training itself, so a caller that
    /// goes away (a closed connection) does not open the gate while the fit goes on.
    pub fn try_enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Conflict("training already running in this server".into()))
    }
}

/// Trains on the blocking pool, after taking the process's training gate. Store connections
/// are taken per step, never for the whole training.
pub async fn run(
    db: Db,
    blobs: Arc<dyn BlobStore>,
    settings: Arc<Settings>,
    gate: Arc<TrainingGate>,
    request: TrainRequest,
    actor: String,
    promote: SharedPromote,
) -> Result<TrainOutcome, AppError> {
    let permit = gate.try_enter()?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        train(
            &db,
            blobs.as_ref(),
            &settings,
            &request,
            &actor,
            &|_, _, _| {},
            &*promote,
        )
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("training task failed: {e}")))?
}

pub fn train(
    db: &Db,
    blobs: &dyn BlobStore,
    settings: &Settings,
    request: &TrainRequest,
    actor: &str,
    on_progress: OnProgress<'_>,
    promote: Promote<'_>,
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
    crate::data::check_name("experiment", &experiment)?;
    // Each model once: a name given twice trains nothing twice.
    let mut models = models;
    let mut seen = Vec::new();
    models.retain(|m| {
        let first = !seen.contains(m);
        seen.push(*m);
        first
    });
    let (number, gate, version, examples) = {
        let mut guard = db.get()?;
        let conn = &mut *guard;
        // Runs of processes that died are not "running"; what is left really runs.
        tracking::sweep_interrupted(conn)?;
        if let Some(live) = tracking::live_runs(conn)?.first() {
            return Err(AppError::Conflict(format!(
                "training already running: run {} ({}) by {}, started {} UTC",
                live.short_id(),
                live.model_kind,
                live.owner,
                live.started_at.format("%Y-%m-%d %H:%M:%S")
            )));
        }
        let number = datasets::resolve_version(conn, &dataset, request.version)?;
        let gate = ValidationGate::of(conn, &dataset, number)?;
        if let Some(why) = gate.blocks(&dataset, number) {
            if !request.force {
                return Err(AppError::Conflict(why));
            }
        }
        if let Some(reason) = &request.reason {
            // The promotion adds why this run was chosen (under 100 characters): the limit is
            // checked here, before anything trains, with room for that.
            if reason.chars().count() > registry::MAX_REASON_CHARS - 100 {
                return Err(AppError::validation(
                    "reason",
                    format!(
                        "must be at most {} characters (the promotion adds why this run was chosen)",
                        registry::MAX_REASON_CHARS - 100
                    ),
                ));
            }
        }
        // The promotion's data gate, checked before anything trains or is registered.
        let reason_given = request
            .reason
            .as_deref()
            .is_some_and(|r| !r.trim().is_empty());
        if request.promote && !gate.failed.is_empty() && !(request.force && reason_given) {
            return Err(AppError::Conflict(format!(
                "{dataset} v{number} failed its validation ({}); a model trained on it is \
                 promoted only with force and a reason (`--force --reason R`), or register it \
                 without promoting",
                gate.failed.join(", ")
            )));
        }
        let (version, table) = datasets::load_version(conn, blobs, schema, &dataset, number)?;
        let examples = Examples::from_table(&table, schema).map_err(AppError::BadRequest)?;
        (number, gate, version, examples)
    };
    let forced = gate.forced_tag().filter(|_| request.force);
    // Failures that do not block (non-critical) still travel with the runs.
    let failed_tag = (!gate.failed.is_empty()).then(|| gate.failed.join("; "));

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
        let mut conn = db.get()?;
        let run = tracking::start_run(
            &mut conn,
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
        tracking::set_tag(&mut conn, &run.id, "source", &request.source)?;
        if let Some(forced) = &forced {
            tracking::set_tag(&mut conn, &run.id, "forced", forced)?;
        }
        if let Some(failed) = &failed_tag {
            tracking::set_tag(&mut conn, &run.id, "validation_failed", failed)?;
        }
        // No connection is held while the model fits.
        drop(conn);
        let fit_started = Instant::now();
        let result = run_candidate(db, blobs, &run, &examples, kind, settings, on_progress);
        let mut conn = db.get()?;
        let status = if result.is_ok() { FINISHED } else { FAILED };
        metrics::counter!(TRAINING_RUNS_TOTAL, "model" => kind.code(), "status" => status)
            .increment(1);
        metrics::histogram!(TRAINING_DURATION_SECONDS, "model" => kind.code())
            .record(fit_started.elapsed().as_secs_f64());
        let (run, report) = match result {
            Ok(report) => (
                tracking::end_run(&mut conn, &run.id, FINISHED, None, actor)?,
                Some(report),
            ),
            Err(e) => {
                tracing::warn!(run = %run.id, model = kind.code(), error = %e, "training run failed");
                let run =
                    tracking::end_run(&mut conn, &run.id, FAILED, Some(&e.to_string()), actor)?;
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
    let (mut registered, mut promoted, mut promotion_refused) = (None, None, None);
    if request.register || request.promote {
        let Some((best, auc)) = best else {
            return Err(AppError::Conflict(
                "every candidate failed; nothing to register".into(),
            ));
        };
        let model = &settings.registry.model;
        let mut conn = db.get()?;
        let v = registry::register(&mut conn, model, &best.run, actor)?;
        if request.promote {
            let chosen = format!(
                "best of {} {} by {select_by} ({auc:.3})",
                candidates.len(),
                if candidates.len() == 1 {
                    "candidate"
                } else {
                    "candidates"
                }
            );
            let reason = match request.reason.as_deref().map(str::trim) {
                Some(r) if !r.is_empty() => format!("{r}; {chosen}"),
                _ => chosen,
            };
            // A forced training forces its promotion too (the reason says why, the audit
            // event that the data gate was overridden).
            let change = registry::Change {
                actor,
                reason: &reason,
                force: request.force,
            };
            match promote(&mut conn, model, v.version, change) {
                Ok(p) => promoted = Some(p),
                Err(e) => {
                    tracing::warn!(version = v.version, error = %e, "registered, not promoted");
                    promotion_refused = Some(e.to_string());
                }
            }
        }
        registered = Some(v);
    }
    let best_value = best.map(|(_, v)| v);
    let outcome = TrainOutcome {
        dataset,
        dataset_version: number,
        dataset_hash: version.hash,
        rows: examples.labels.len(),
        experiment,
        candidates,
        best_run,
        registered,
        promoted,
        promotion_refused,
        seconds: started.elapsed().as_secs_f64(),
    };
    // The notification is not part of the training: a store that fails here loses the message,
    // never the runs (they are recorded already).
    let message = finished_message(&outcome, select_by, best_value);
    match db.get() {
        Ok(mut conn) => {
            if let Err(e) = crate::outbox::push(&mut conn, message) {
                tracing::warn!(error = %e, "training finished; its notification was not written");
            }
        }
        Err(e) => tracing::warn!(error = %e, "training finished; its notification was not written"),
    }
    Ok(outcome)
}

/// The `training_finished` notification: the best candidate, what was registered and promoted.
fn finished_message(
    outcome: &TrainOutcome,
    select_by: &str,
    best_value: Option<f64>,
) -> crate::outbox::Event {
    use crate::outbox::{Event, Kind, Severity};
    let failed = outcome
        .candidates
        .iter()
        .filter(|c| c.report.is_none())
        .count();
    let severity = if failed > 0 || outcome.promotion_refused.is_some() {
        Severity::Warning
    } else {
        Severity::Info
    };
    let best = outcome
        .candidates
        .iter()
        .find(|c| Some(&c.run.id) == outcome.best_run.as_ref());
    let mut body = format!(
        "{} candidate(s) trained on {} v{} ({} rows) in {:.1} s",
        outcome.candidates.len(),
        outcome.dataset,
        outcome.dataset_version,
        outcome.rows,
        outcome.seconds
    );
    if failed > 0 {
        body.push_str(&format!("; {failed} failed"));
    }
    body.push('.');
    if let Some(why) = &outcome.promotion_refused {
        body.push_str(&format!(
            " Registered, not promoted: {}",
            crate::error::bounded(why, 300)
        ));
    }
    let subject = match (&outcome.registered, &outcome.promoted) {
        (Some(v), Some(_)) => format!("Training finished: v{} promoted", v.version),
        (Some(v), None) => format!("Training finished: v{} registered", v.version),
        _ => format!(
            "Training finished on {} v{}",
            outcome.dataset, outcome.dataset_version
        ),
    };
    let mut message = Event::new(Kind::TrainingFinished, severity, &subject, &body)
        .fact(
            "Dataset",
            format!("{} v{}", outcome.dataset, outcome.dataset_version),
        )
        .fact("Experiment", &outcome.experiment);
    if let (Some(best), Some(value)) = (best, best_value) {
        message = message
            .fact("Best", &best.run.model_kind)
            .fact(select_by, format!("{value:.4}"))
            .link(format!("/runs/{}", best.run.id));
    }
    if let Some(v) = &outcome.registered {
        message = message.fact("Registered", format!("v{}", v.version));
    }
    message
}

/// Heartbeats are written at most this often while a candidate trains.
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Trains one candidate inside its run and records its metrics and artifacts. A panic in a
/// model library fails the run instead of the process.
fn run_candidate(
    db: &Db,
    blobs: &dyn BlobStore,
    run: &Run,
    examples: &Examples,
    kind: ModelKind,
    settings: &Settings,
    on_progress: OnProgress<'_>,
) -> Result<CandidateReport, AppError> {
    let (report, trained) = {
        let last_beat = Mutex::new(Instant::now());
        let progress = |done: usize, total: usize| {
            on_progress(kind, done, total);
            if let Ok(mut last) = last_beat.lock() {
                if last.elapsed() >= HEARTBEAT_EVERY {
                    // A connection for the beat alone, handed back at once.
                    if let Ok(mut conn) = db.get() {
                        let _ = tracking::heartbeat(&mut conn, &run.id);
                    }
                    *last = Instant::now();
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
    record_run(&mut *db.get()?, blobs, run, &report, &trained)?;
    Ok(report)
}

/// The metrics a run records: per-fold values as steps of `cv_fold_<m>` (so the last fold is
/// never taken for a summary), summaries at step 0 (`cv_<m>_mean`, `cv_<m>_std`,
/// `holdout_<m>`), XGBoost's loss per boosting round, and the grid's scores per parameter set.
pub fn run_metrics(report: &CandidateReport) -> Vec<(String, i32, f64)> {
    let mut values: Vec<(String, i32, f64)> = Vec::new();
    let mut put = |name: &str, step: usize, value: f64| {
        values.push((name.to_owned(), step as i32, value));
    };
    for (i, m) in report.cv.folds.iter().enumerate() {
        for (name, v) in metric_fields(m) {
            put(&format!("cv_fold_{name}"), i, v);
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

pub use crate::ml::selectable_metrics;

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

/// The artifact a run's report is stored as.
pub const REPORT_ARTIFACT: &str = "metrics.json";

/// The report stored with a run (`metrics.json`), if it finished.
pub fn report_of(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    run_id: &str,
) -> Result<Option<CandidateReport>, AppError> {
    match tracking::read_artifact(conn, blobs, run_id, REPORT_ARTIFACT) {
        Ok((_, bytes)) => parse_report(run_id, &bytes).map(Some),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A run's report from the bytes of its `metrics.json` (read apart from the store connection).
///
/// Errors: Internal when the bytes are not a report.
pub fn parse_report(run_id: &str, bytes: &[u8]) -> Result<CandidateReport, AppError> {
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("metrics.json of run {run_id}: {e}")))
}

/// Promotion without a serving slot (the CLI, the first start before the server runs): the
/// registry's own check that the version can be served, in the transition's transaction.
pub fn servable_promotion<'a>(
    blobs: &'a dyn BlobStore,
    settings: &'a Settings,
) -> impl Fn(&mut DbConnection, &str, i32, registry::Change<'_>) -> Result<TransitionOutcome, AppError>
+ Sync
+ 'a {
    move |conn, model, version, change| {
        let features = settings.dataset.feature_names();
        let servable = registry::Servable::new(blobs, &features);
        registry::transition(conn, model, version, Stage::Production, change, &servable)
    }
}

/// On a store where the registered model has no version yet, trains the configured candidates
/// on the dataset's current version and registers and promotes the best. Skipped, with nothing
/// registered (so the next start tries again), when the version failed any expectation: a
/// model on such data is promoted only by a person, with a reason (the log says how).
pub fn bootstrap(
    db: &Db,
    blobs: &dyn BlobStore,
    settings: &Settings,
) -> anyhow::Result<Option<TrainOutcome>> {
    {
        let mut conn = db.get()?;
        let conn = &mut *conn;
        if !settings.training.on_first_start
            || !registry::list_versions(conn, &settings.registry.model)?.is_empty()
        {
            return Ok(None);
        }
        let dataset = catalog::find_dataset(conn, &settings.dataset.name)?;
        if dataset.as_ref().and_then(|d| d.current_version).is_none() {
            if dataset.is_some() {
                // Added, but it did not pass its validation, so it is not current.
                tracing::warn!(
                    dataset = %settings.dataset.name,
                    "first-start training skipped: the dataset has no current version (its \
                     validation failed); look at it on the Datasets page, then `steward data \
                     use V` and `steward train --promote` (with --force --reason R if it failed)"
                );
            }
            return Ok(None);
        }
    }
    let request = TrainRequest {
        register: true,
        promote: true,
        source: "first-start".into(),
        ..TrainRequest::default()
    };
    let promote = servable_promotion(blobs, settings);
    match train(
        db,
        blobs,
        settings,
        &request,
        "system",
        &|_, _, _| {},
        &promote,
    ) {
        Ok(outcome) => {
            if let Some(why) = &outcome.promotion_refused {
                tracing::warn!(%why, "first-start training registered a version but did not promote it");
            }
            Ok(Some(outcome))
        }
        Err(AppError::Conflict(why)) => {
            tracing::warn!(
                %why,
                "first-start training skipped; nothing is served until a model is promoted \
                 (steward train --promote --force --reason R, after looking at the data)"
            );
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
