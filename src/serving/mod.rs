//! Serving: the production model in a slot that is swapped atomically, the request schema,
//! predictions and their log, and feedback.
//!
//! A request takes the slot's current model (an `Arc`) once and keeps it to the end, so a swap
//! never fails a request in flight: the old model lives until its last request is done. The
//! slot follows the registry: in-process promotions and rollbacks refresh it at once, and a
//! scheduler job re-reads the Production version every `serving.refresh_secs`, so a promotion
//! made by another process sharing the store arrives too. A model whose artifact fails its
//! hash check is refused and the slot keeps what it had.

pub mod feedback;
pub mod log;
pub mod request;

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use serde::Serialize;

use self::log::PredictionLog;
use self::request::FeatureSchema;
use crate::data::blob::BlobStore;
use crate::db::Db;
use crate::error::AppError;
use crate::ml::TrainedModel;
use crate::ml::features::Raw;
use crate::registry::{self, ModelVersion};
use crate::telemetry::{
    INFERENCE_DURATION_SECONDS, MODEL_INFO, MODEL_LOAD_FAILURES_TOTAL, PREDICTIONS_TOTAL,
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
    /// Class-1 probabilities for rows in the model's feature order.
    pub fn predict(&self, rows: &[Vec<Raw>]) -> Result<Vec<f64>, AppError> {
        self.trained
            .predict_proba(rows.iter())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("prediction failed: {e}")))
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

pub struct Serving {
    slot: ArcSwapOption<ServedModel>,
    pub schema: FeatureSchema,
    pub log: PredictionLog,
    model_name: String,
}

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    Unchanged,
    Loaded { version: i32 },
    Cleared,
}

impl Serving {
    pub fn new(model_name: String, schema: FeatureSchema, log: PredictionLog) -> Serving {
        Serving {
            slot: ArcSwapOption::empty(),
            schema,
            log,
            model_name,
        }
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

    /// Brings the slot in line with the registry's Production version: loads (and verifies) a
    /// new one, clears the slot when none is in Production, or does nothing.
    pub async fn refresh(&self, db: &Db, blobs: Arc<dyn BlobStore>) -> Result<Refresh, AppError> {
        let name = self.model_name.clone();
        let production = db
            .run(move |conn| registry::production(conn, &name))
            .await?;
        let current = self.current();
        let Some(production) = production else {
            if let Some(old) = current {
                set_info_gauge(&old.version, 0.0);
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
        let (name, number) = (self.model_name.clone(), production.version);
        let loaded = db
            .run(move |conn| registry::load(conn, blobs.as_ref(), &name, number))
            .await;
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
        if let Some(old) = &current {
            set_info_gauge(&old.version, 0.0);
        }
        set_info_gauge(&version, 1.0);
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

fn set_info_gauge(v: &ModelVersion, value: f64) {
    metrics::gauge!(MODEL_INFO, "model" => v.model.clone(), "version" => v.version.to_string(), "stage" => v.stage.clone())
        .set(value);
}
