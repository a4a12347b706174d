//! Reference profiles: what every check needs of the rows a model version was trained on,
//! computed once per version and stored (`reference_profiles`), never recomputed per check.
//!
//! A profile holds, per schema feature, the distinct values with their counts (numeric) or the
//! category counts, and the missing count; the version's predicted probabilities on those rows
//! and their labels (for prediction and target drift); the model's decision threshold and
//! holdout figures (for decay); and an isotonic calibration map fitted on the run's own
//! stratified holdout (for the estimated performance). Its JSON is stored as it is.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use super::drift::{FeatureValues, Side};
use super::estimate::Calibration;
use super::stattests::Values;
use crate::data::blob::BlobStore;
use crate::data::schema::DatasetSettings;
use crate::db::DbConnection;
use crate::db::schema::reference_profiles;
use crate::error::AppError;
use crate::ml::features::Examples;

/// One feature's reference values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum StoredValues {
    /// Distinct values ascending, each with its count.
    Numeric(Vec<(f64, u64)>),
    Categorical(BTreeMap<String, u64>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureProfile {
    pub name: String,
    pub numeric: bool,
    pub missing: u64,
    pub values: StoredValues,
}

/// The profile's stored shape; a stored profile of another format is built again.
pub const PROFILE_FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceProfile {
    pub format: u32,
    pub model: String,
    pub version: i32,
    pub dataset: String,
    pub dataset_version: i32,
    pub rows: u64,
    /// The model's features, in the order the prediction log stores them.
    pub model_features: Vec<String>,
    pub features: Vec<FeatureProfile>,
    /// The version's class-1 probabilities on its run's holdout (rows the final fit never saw;
    /// on every labelled row when the run's split is unknown), as distinct values with counts:
    /// the reference of prediction drift.
    pub predictions: Vec<(f64, u64)>,
    /// "holdout" or "all rows".
    pub predictions_from: String,
    /// Reference labels: [negatives, positives].
    pub labels: [u64; 2],
    /// The decision threshold (class 1 when p ≥ it).
    pub threshold: f64,
    /// The version's holdout figures when registered (`holdout_accuracy`, `holdout_f1`,
    /// `holdout_roc_auc`) and its size (`holdout_rows`).
    pub holdout: BTreeMap<String, f64>,
    /// Isotonic map of the holdout's probabilities to its observed rates.
    pub calibration: Calibration,
}

fn run_length(mut values: Vec<f64>) -> Vec<(f64, u64)> {
    values.retain(|v| v.is_finite());
    values.sort_unstable_by(f64::total_cmp);
    let mut out: Vec<(f64, u64)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

fn expand(pairs: &[(f64, u64)]) -> Vec<f64> {
    let mut out = Vec::with_capacity(pairs.iter().map(|(_, n)| *n as usize).sum());
    for &(v, n) in pairs {
        out.extend(std::iter::repeat_n(v, n as usize));
    }
    out
}

impl ReferenceProfile {
    /// The reference side of a drift report.
    pub fn side(&self) -> Side {
        Side {
            rows: self.rows,
            features: self
                .features
                .iter()
                .map(|f| FeatureValues {
                    name: f.name.clone(),
                    numeric: f.numeric,
                    missing: f.missing,
                    values: match &f.values {
                        StoredValues::Numeric(pairs) => Values::Numeric(expand(pairs)),
                        StoredValues::Categorical(c) => Values::Categorical(c.clone()),
                    },
                })
                .collect(),
        }
    }

    /// The reference predictions, sorted.
    pub fn prediction_values(&self) -> Values {
        Values::Numeric(expand(&self.predictions))
    }

    /// The reference labels as categories "0" and "1".
    pub fn label_values(&self) -> Values {
        let [neg, pos] = self.labels;
        let mut counts = BTreeMap::new();
        if neg > 0 {
            counts.insert("0".to_owned(), neg);
        }
        if pos > 0 {
            counts.insert("1".to_owned(), pos);
        }
        Values::Categorical(counts)
    }

    /// The observed range of a numeric feature in the reference.
    pub fn range(&self, feature: &str) -> Option<(f64, f64)> {
        self.features
            .iter()
            .find(|f| f.name == feature)
            .and_then(|f| match &f.values {
                StoredValues::Numeric(pairs) => Some((pairs.first()?.0, pairs.last()?.0)),
                StoredValues::Categorical(_) => None,
            })
    }
}

/// Builds the profile of `model` v`version` from its dataset version, its model and its run.
pub fn build(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    schema: &DatasetSettings,
    model: &str,
    version: i32,
) -> Result<ReferenceProfile, AppError> {
    let (v, trained) = crate::registry::load(conn, blobs, model, version)?;
    let (_, table) = crate::data::load_version(conn, blobs, schema, &v.dataset, v.dataset_version)?;
    let side = Side::from_table(&table, schema);
    let examples = Examples::from_table(&table, schema)
        .map_err(|e| AppError::Conflict(format!("{model} v{version}: {e}")))?;
    if examples.feature_names != trained.features {
        return Err(AppError::Conflict(format!(
            "{model} v{version}: the dataset's features are not the model's ({})",
            trained.features.join(", ")
        )));
    }
    let p = trained
        .predict_proba(examples.rows.iter())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{model} v{version}: {e}")))?;
    let positives = examples.labels.iter().filter(|&&l| l == 1).count() as u64;
    let labels = [examples.labels.len() as u64 - positives, positives];
    // The run's own holdout (same split as training: stratified on the labels with its seed).
    let run = crate::tracking::find_run(conn, &v.run_id)?;
    let params = run.params();
    let share = params.get("holdout").and_then(serde_json::Value::as_f64);
    let seed = params.get("seed").and_then(serde_json::Value::as_u64);
    let (calibration, predictions, predictions_from) = match (share, seed) {
        (Some(share), Some(seed)) if share > 0.0 => {
            let (_, holdout) = crate::ml::cv::stratified_holdout(&examples.labels, share, seed);
            let pairs: Vec<(f64, u32)> = holdout
                .iter()
                .filter_map(|&i| Some((*p.get(i)?, *examples.labels.get(i)?)))
                .collect();
            let held: Vec<f64> = pairs.iter().map(|(p, _)| *p).collect();
            (Calibration::fit(&pairs), held, "holdout")
        }
        _ => (Calibration::identity(), p, "all rows"),
    };
    let metrics = v.metrics();
    let holdout = [
        "holdout_accuracy",
        "holdout_f1",
        "holdout_roc_auc",
        "holdout_rows",
    ]
    .iter()
    .filter_map(|k| Some(((*k).to_owned(), *metrics.get(*k)?)))
    .collect();
    Ok(ReferenceProfile {
        format: PROFILE_FORMAT,
        model: model.to_owned(),
        version,
        dataset: v.dataset.clone(),
        dataset_version: v.dataset_version,
        rows: side.rows,
        model_features: trained.features.clone(),
        features: side
            .features
            .into_iter()
            .map(|f| FeatureProfile {
                name: f.name,
                numeric: f.numeric,
                missing: f.missing,
                values: match f.values {
                    Values::Numeric(v) => StoredValues::Numeric(run_length(v)),
                    Values::Categorical(c) => StoredValues::Categorical(c),
                },
            })
            .collect(),
        predictions: run_length(predictions),
        predictions_from: predictions_from.to_owned(),
        labels,
        threshold: trained.threshold,
        holdout,
        calibration,
    })
}

/// The stored profile of a version, if any.
pub fn stored(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
) -> Result<Option<ReferenceProfile>, AppError> {
    let json: Option<String> = reference_profiles::table
        .filter(reference_profiles::model.eq(model))
        .filter(reference_profiles::version.eq(version))
        .select(reference_profiles::profile_json)
        .first(conn)
        .optional()?;
    let Some(json) = json else { return Ok(None) };
    // Only the format number first: a newer Steward's profile is left alone (a rolling upgrade
    // shares the store), an older one is built again.
    let format = serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64))
        .unwrap_or(0);
    if format > u64::from(PROFILE_FORMAT) {
        return Err(AppError::Conflict(format!(
            "{model} v{version}: its reference profile was made by a newer Steward (format {format})"
        )));
    }
    match serde_json::from_str::<ReferenceProfile>(&json) {
        Ok(p) if p.format == PROFILE_FORMAT => Ok(Some(p)),
        _ => {
            tracing::info!(
                model,
                version,
                "stored profile of an older format; building it again"
            );
            Ok(None)
        }
    }
}

/// The version's profile: the stored one, else built now and stored (once: a concurrent build
/// of the same version keeps the first).
pub fn ensure(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    schema: &DatasetSettings,
    model: &str,
    version: i32,
) -> Result<ReferenceProfile, AppError> {
    if let Some(p) = stored(conn, model, version)? {
        return Ok(p);
    }
    let profile = build(conn, blobs, schema, model, version)?;
    let json = serde_json::to_string(&profile)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing a profile: {e}")))?;
    // One of another format, if any, gives way to this one.
    diesel::delete(
        reference_profiles::table
            .filter(reference_profiles::model.eq(model))
            .filter(reference_profiles::version.eq(version)),
    )
    .execute(conn)?;
    let inserted = diesel::insert_into(reference_profiles::table)
        .values((
            reference_profiles::model.eq(model),
            reference_profiles::version.eq(version),
            reference_profiles::rows.eq(profile.rows as i64),
            reference_profiles::profile_json.eq(&json),
            reference_profiles::created_at.eq(chrono::Utc::now().naive_utc()),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(profile),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => stored(conn, model, version)?.ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "a profile vanished after a concurrent insert"
            ))
        }),
        Err(e) => Err(e.into()),
    }
}

/// Versions of `model` that have no profile yet, oldest first.
pub fn unprofiled(conn: &mut DbConnection, model: &str) -> Result<Vec<i32>, AppError> {
    use crate::db::schema::model_versions;
    let all: Vec<i32> = model_versions::table
        .filter(model_versions::model.eq(model))
        .select(model_versions::version)
        .order(model_versions::version.asc())
        .load(conn)?;
    let done: Vec<i32> = reference_profiles::table
        .filter(reference_profiles::model.eq(model))
        .select(reference_profiles::version)
        .load(conn)?;
    Ok(all.into_iter().filter(|v| !done.contains(v)).collect())
}
