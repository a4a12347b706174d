//! Serving: the production model in a slot that is swapped atomically, the request schema,
//! predictions and their log, and feedback.
//!
//! A request takes the slot's current model (an `Arc`) once and keeps it to the end, so a swap
//! never fails a request in flight: the old model lives until its last request is done. The
//! slot follows the registry: in-process promotions and rollbacks refresh it at once, and a
//! scheduler job re-reads the Production version every `serving.refresh_secs`, so a promotion
//! made by another process sharing the store arrives too. A model whose artifact fails its
//! hash check is refused and the slot keeps what it had.
//!
//! In-process registry changes that can move Production go through [`Serving::apply`], which
//! holds one lock across the change's commit and the swap after it (the periodic refresh takes
//! the same lock), so swaps happen in commit order: after concurrent promotions have answered,
//! the slot holds the registry's Production version.
//!
//! Scoring ([`Serving::score`]) keeps the HTTP workers free: a small request is scored in
//! place, a batch over `serving.offload_rows` on the blocking pool, and a call into the XGBoost
//! library (SHAP values, or trees the native walk does not take) on the blocking pool behind a
//! small semaphore; a caller that waits past `serving.offload_wait_ms` for a slot gets 503.

pub mod feedback;
pub mod log;
pub mod request;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use self::log::PredictionLog;
use self::request::FeatureSchema;
use crate::config::ServingSettings;
use crate::data::blob::BlobStore;
use crate::db::{Db, DbConnection};
use crate::error::AppError;
use crate::ml::TrainedModel;
use crate::ml::explain::{self, Explanation};
use crate::ml::features::Raw;
use crate::registry::{self, Change, ModelVersion, Servable, Stage, TransitionOutcome};
use crate::telemetry::{
    INFERENCE_DURATION_SECONDS, MODEL_INFO, MODEL_LOAD_FAILURES_TOTAL, PREDICTIONS_TOTAL,
    SERVING_SATURATED_TOTAL,
};

/// The model being served, with what `/model/info` reports about it.
pub struct ServedModel {
    pub version: ModelVersion,
    pub trained: TrainedModel,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    /// `predictions_total{model_version, prediction="0"|"1"}`, registered once per load so a
    /// request does not look its labels up.
    pub predictions: [metrics::Counter; 2],
    /// `inference_duration_seconds`, likewise looked up once.
    pub inference_duration: metrics::Histogram,
}

impl std::fmt::Debug for ServedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServedModel({} v{})",
            self.version.model, self.version.version
        )
    }
}

impl ServedModel {
    /// Class-1 probabilities for rows in the model's feature order. A probability that is not
    /// finite is refused here, before anything is logged: the model is broken, not the request.
    pub fn predict(&self, rows: &[Vec<Raw>]) -> Result<Vec<f64>, AppError> {
        let timer = Instant::now();
        let p = self
            .trained
            .predict_proba(rows.iter())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("prediction failed: {e}")))?;
        self.inference_duration
            .record(timer.elapsed().as_secs_f64());
        check_finite(&p)?;
        Ok(p)
    }

    pub fn threshold(&self) -> f64 {
        self.trained.threshold
    }
}

/// What `GET /model/info` answers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    pub model: String,
    pub version: i32,
    pub stage: String,
    pub kind: String,
    pub run_id: String,
    pub trained_at: chrono::NaiveDateTime,
    pub loaded_at: chrono::DateTime<chrono::Utc>,
    pub dataset: String,
    pub dataset_version: i32,
    pub dataset_hash: String,
    pub artifact_hash: String,
    pub threshold: f64,
    pub metrics: BTreeMap<String, f64>,
    /// The features a request carries: name, kind and allowed range or categories.
    #[schema(value_type = Vec<Object>)]
    pub features: Vec<crate::data::schema::ColumnSpec>,
}

/// Every probability is a number: a NaN would be stored as NULL by SQLite and refused, and
/// means nothing to a client.
pub fn check_finite(probabilities: &[f64]) -> Result<(), AppError> {
    match probabilities.iter().position(|p| !p.is_finite()) {
        None => Ok(()),
        Some(row) => Err(AppError::Internal(anyhow::anyhow!(
            "the model gave a non-finite probability for row {row}"
        ))),
    }
}

/// What scoring a request gave.
pub struct Scored {
    pub rows: Vec<Vec<Raw>>,
    pub probabilities: Vec<f64>,
    pub explanations: Option<Vec<Explanation>>,
}

/// The serving limits of `[serving]` that scoring needs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_explain_batch: usize,
    pub offload_rows: usize,
    pub offload_wait: Duration,
}

pub struct Serving {
    slot: ArcSwapOption<ServedModel>,
    pub schema: FeatureSchema,
    pub log: PredictionLog,
    model_name: String,
    /// Held across a registry change and the swap after it, and by every refresh.
    order: Mutex<()>,
    library: Arc<Semaphore>,
    offload: Arc<Semaphore>,
    limits: Limits,
    /// Prediction requests answered 422 (for monitoring's data quality).
    rejected: std::sync::atomic::AtomicU64,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    Loaded { version: i32 },
    Cleared,
}

impl Serving {
    pub fn new(
        model_name: String,
        schema: FeatureSchema,
        log: PredictionLog,
        settings: &ServingSettings,
    ) -> Serving {
        Serving {
            slot: ArcSwapOption::empty(),
            schema,
            log,
            model_name,
            order: Mutex::new(()),
            library: Arc::new(Semaphore::new(settings.library_concurrency.max(1))),
            offload: Arc::new(Semaphore::new(settings.offload_concurrency.max(1))),
            limits: Limits {
                max_explain_batch: settings.max_explain_batch,
                offload_rows: settings.offload_rows,
                offload_wait: Duration::from_millis(settings.offload_wait_ms),
            },
            rejected: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts a prediction request answered 422.
    pub fn count_rejected(&self) {
        self.rejected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Prediction requests answered 422 since this process started.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Scores rows (and explains them when asked), keeping library calls and large batches off
    /// the caller's thread. 422 for an explain batch over `serving.max_explain_batch`; 503 with
    /// Retry-After when every slot stays busy for `serving.offload_wait_ms`.
    pub async fn score(
        &self,
        model: &Arc<ServedModel>,
        rows: Vec<Vec<Raw>>,
        explain: bool,
    ) -> Result<Scored, AppError> {
        if explain && rows.len() > self.limits.max_explain_batch {
            return Err(AppError::validation(
                "explain",
                format!(
                    "at most {} rows per request with explain=true (serving.max_explain_batch); this one has {}",
                    self.limits.max_explain_batch,
                    rows.len()
                ),
            ));
        }
        let library = (explain && model.trained.explains_with_library())
            || model.trained.predicts_with_library();
        if !library && rows.len() <= self.limits.offload_rows {
            return compute(model, rows, explain);
        }
        let (pool, name) = if library {
            (&self.library, "library")
        } else {
            (&self.offload, "batch")
        };
        let permit = acquire(pool, self.limits.offload_wait, name).await?;
        let model = model.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            compute(&model, rows, explain)
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("scoring task failed: {e}")))?
    }

    /// Runs `work` on the blocking pool behind a batch slot (the one large batches use); 503
    /// with Retry-After when every slot stays busy for `serving.offload_wait_ms`.
    pub async fn offload<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AppError> {
        let permit = acquire(&self.offload, self.limits.offload_wait, "batch").await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("an offloaded task failed: {e}")))
    }

    pub fn current(&self) -> Option<Arc<ServedModel>> {
        self.slot.load_full()
    }

    pub fn info(&self) -> Option<ModelInfo> {
        let m = self.current()?;
        let v = &m.version;
        Some(ModelInfo {
            model: v.model.clone(),
            version: v.version,
            stage: v.stage.clone(),
            kind: v.model_kind.clone(),
            run_id: v.run_id.clone(),
            trained_at: v.created_at,
            loaded_at: m.loaded_at,
            dataset: v.dataset.clone(),
            dataset_version: v.dataset_version,
            dataset_hash: v.dataset_hash.clone(),
            artifact_hash: v.artifact_hash.clone(),
            threshold: m.trained.threshold,
            metrics: v.metrics(),
            features: self.schema.columns.clone(),
        })
    }

    /// Brings the slot in line with the registry (see [`Serving::sync`]), on the blocking pool.
    pub async fn refresh(
        self: &Arc<Self>,
        db: &Db,
        blobs: Arc<dyn BlobStore>,
    ) -> Result<Refresh, AppError> {
        let serving = self.clone();
        db.run(move |conn| serving.sync(conn, blobs.as_ref())).await
    }

    /// Brings the slot in line with the registry's Production version, under the order lock:
    /// loads (and verifies) a new one, clears the slot when none is in Production, or does
    /// nothing. Blocking.
    pub fn sync(
        &self,
        conn: &mut DbConnection,
        blobs: &dyn BlobStore,
    ) -> Result<Refresh, AppError> {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        self.sync_locked(conn, blobs, None)
    }

    /// Runs a registry change that may move Production, then brings the slot in line, holding
    /// the order lock across both, with the model the change checked (no second load).
    /// Blocking. A failed change leaves the slot alone; a committed change the slot cannot
    /// follow is logged and retried at each `serving.refresh_secs` (and /ready says so).
    pub fn apply<T>(
        &self,
        conn: &mut DbConnection,
        blobs: &dyn BlobStore,
        change: impl FnOnce(&mut DbConnection, &Servable<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        self.apply_fenced(conn, blobs, None, change)
    }

    /// [`Serving::apply`] with a fencing check that the registry asks inside the change's
    /// transaction ([`Servable::fenced`]).
    pub fn apply_fenced<T>(
        &self,
        conn: &mut DbConnection,
        blobs: &dyn BlobStore,
        fence: Option<&crate::registry::Fence<'_>>,
        change: impl FnOnce(&mut DbConnection, &Servable<'_>) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let features = self.schema.names();
        let servable = Servable::new(blobs, &features);
        let servable = match fence {
            Some(f) => servable.fenced(f),
            None => servable,
        };
        let out = change(conn, &servable)?;
        // The change is committed: its answer says so. A slot that can't follow (the version
        // was checked inside the change, so this is rare) is logged and counted, retried at
        // each refresh, and /ready says the slot lags the registry until it catches up.
        if let Err(e) = self.sync_locked(conn, blobs, servable.take_preloaded()) {
            tracing::error!(error = %e, "the serving slot kept its model after a registry change");
        }
        Ok(out)
    }

    /// Moves a version to a stage and serves the outcome (see [`Serving::apply`]).
    pub fn transition(
        &self,
        conn: &mut DbConnection,
        blobs: &dyn BlobStore,
        model: &str,
        version: i32,
        stage: Stage,
        change: Change<'_>,
    ) -> Result<TransitionOutcome, AppError> {
        self.apply(conn, blobs, |conn, servable| {
            registry::transition(conn, model, version, stage, change, servable)
        })
    }

    /// The promotion training uses in the server: [`Serving::transition`] to Production.
    pub fn promoter(self: &Arc<Self>, blobs: Arc<dyn BlobStore>) -> crate::training::SharedPromote {
        let serving = self.clone();
        Arc::new(move |conn, model, version, change| {
            serving.transition(
                conn,
                blobs.as_ref(),
                model,
                version,
                Stage::Production,
                change,
            )
        })
    }

    /// Rolls Production back (to `to`, or walking back the history) and serves the outcome
    /// (see [`Serving::apply`]).
    pub fn rollback(
        &self,
        conn: &mut DbConnection,
        blobs: &dyn BlobStore,
        model: &str,
        to: Option<i32>,
        change: Change<'_>,
    ) -> Result<TransitionOutcome, AppError> {
        self.apply(conn, blobs, |conn, servable| {
            registry::rollback(conn, model, to, change, servable)
        })
    }

    fn sync_locked(
        &self,
        conn: &mut DbConnection,
        blobs: &dyn BlobStore,
        preloaded: Option<(registry::ModelVersion, crate::ml::TrainedModel)>,
    ) -> Result<Refresh, AppError> {
        let production = registry::production(conn, &self.model_name)?;
        let current = self.current();
        let Some(production) = production else {
            if current.is_some() {
                self.slot.store(None);
                tracing::warn!(model = %self.model_name, "no Production version; serving stopped");
                return Ok(Refresh::Cleared);
            }
            return Ok(Refresh::Unchanged);
        };
        if current
            .as_ref()
            .is_some_and(|c| c.version.id == production.id)
        {
            return Ok(Refresh::Unchanged);
        }
        let number = production.version;
        // A version nobody moved into Production through the registry (no audit event says
        // so) is not served: the stage was edited behind the registry's back.
        let audited = registry::audited_production(conn, &self.model_name)?;
        if audited != Some(number) {
            metrics::counter!(MODEL_LOAD_FAILURES_TOTAL).increment(1);
            tracing::error!(
                model = %self.model_name,
                version = number,
                audited = ?audited,
                "the registry's Production version has no audit event that put it there; \
                 refusing to serve it and keeping the current model"
            );
            return Err(AppError::Conflict(format!(
                "{} v{number} is marked Production, but no audit event moved it there; not \
                 served",
                self.model_name
            )));
        }
        let loaded = match preloaded {
            Some((v, trained))
                if v.id == production.id && v.artifact_hash == production.artifact_hash =>
            {
                // The stage moved since the preload; the row read now says so.
                Ok((production.clone(), trained))
            }
            _ => registry::load(conn, blobs, &self.model_name, number),
        };
        let (version, trained) = match loaded {
            Ok(pair) => pair,
            Err(e) => {
                metrics::counter!(MODEL_LOAD_FAILURES_TOTAL).increment(1);
                tracing::error!(
                    model = %self.model_name,
                    version = number,
                    error = %e,
                    "refusing to serve this version; keeping the current model"
                );
                return Err(e);
            }
        };
        if trained.features != self.schema.names() {
            metrics::counter!(MODEL_LOAD_FAILURES_TOTAL).increment(1);
            return Err(AppError::Unavailable(format!(
                "{} v{number} was trained on features ({}) that the configured schema does not have",
                self.model_name,
                trained.features.join(", ")
            )));
        }
        // Built now, off the workers: an XGBoost model's native tree walk (else the first
        // request after the swap would build it).
        let _ = trained.predicts_with_library();
        tracing::info!(model = %self.model_name, version = number, kind = %version.model_kind, "serving");
        let label = version.version.to_string();
        let predictions = ["0", "1"].map(|class| {
            metrics::counter!(PREDICTIONS_TOTAL, "model_version" => label.clone(), "prediction" => class)
        });
        self.slot.store(Some(Arc::new(ServedModel {
            version,
            trained,
            loaded_at: chrono::Utc::now(),
            predictions,
            inference_duration: metrics::histogram!(INFERENCE_DURATION_SECONDS),
        })));
        Ok(Refresh::Loaded { version: number })
    }
}

/// Waits up to `wait` for a slot of `pool`; 503 with Retry-After (and counted) past it.
async fn acquire(
    pool: &Arc<Semaphore>,
    wait: Duration,
    name: &'static str,
) -> Result<OwnedSemaphorePermit, AppError> {
    match tokio::time::timeout(wait, pool.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => {
            metrics::counter!(SERVING_SATURATED_TOTAL, "pool" => name).increment(1);
            Err(AppError::Overloaded {
                message: format!("every {name} slot is busy; try again shortly"),
                retry_after_secs: 1,
            })
        }
    }
}

fn compute(model: &ServedModel, rows: Vec<Vec<Raw>>, explain: bool) -> Result<Scored, AppError> {
    let probabilities = model.predict(&rows)?;
    let explanations = if explain {
        Some(
            explain::explain(&model.trained, rows.iter())
                .map_err(|m| AppError::validation("explain", m))?,
        )
    } else {
        None
    };
    Ok(Scored {
        rows,
        probabilities,
        explanations,
    })
}

/// `model_info{model, version, stage} 1` for the served version, as Prometheus text: one
/// series, the one served, written at each scrape (a version no longer served leaves no series
/// behind, with a stage that has changed since).
pub fn model_info_exposition(served: Option<&ServedModel>) -> String {
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let mut out = format!(
        "# HELP {MODEL_INFO} 1 for the model version being served, by model, version and stage.\n# TYPE {MODEL_INFO} gauge\n"
    );
    if let Some(m) = served {
        out.push_str(&format!(
            "{MODEL_INFO}{{model=\"{}\",version=\"{}\",stage=\"{}\"}} 1\n",
            escape(&m.version.model),
            m.version.version,
            escape(&m.version.stage)
        ));
    }
    out
}
