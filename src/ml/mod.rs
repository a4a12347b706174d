//! ML: the preprocessing pipeline, the candidate models, cross-validation and metrics.
//!
//! What is here now is the modelling core of the training capability: logistic regression
//! and a random forest from smartcore, evaluated by stratified k-fold cross-validation with a
//! fixed seed (`steward train`). Experiment tracking, the registry, XGBoost and serving build
//! on it later.

pub mod cv;
pub mod features;
pub mod metrics;
pub mod models;

use serde::{Deserialize, Serialize};

use self::cv::{CvReport, CvSettings, cross_validate};
use self::features::Examples;
use self::models::{LrParams, ModelKind, RfParams};
use crate::data::schema::DatasetSettings;
use crate::data::table::Table;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSettings {
    pub models: Vec<ModelKind>,
    pub seed: u64,
    pub folds: usize,
    pub threshold: f64,
    pub lr: LrParams,
    pub rf: RfParams,
}

impl TrainingSettings {
    pub fn check(&self) -> Result<(), (String, String)> {
        let err = |k: &str, m: &str| Err((k.to_owned(), m.to_owned()));
        if self.models.is_empty() {
            return err("training.models", "name at least one model");
        }
        if !(2..=20).contains(&self.folds) {
            return err("training.folds", "must be between 2 and 20");
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return err("training.threshold", "must be between 0 and 1");
        }
        if !self.lr.alpha.is_finite() || self.lr.alpha < 0.0 {
            return err("training.lr.alpha", "must be 0 or more");
        }
        if self.rf.trees == 0 {
            return err("training.rf.trees", "must be at least 1");
        }
        if !(self.rf.max_features > 0.0 && self.rf.max_features <= 1.0) {
            return err("training.rf.max_features", "must be in (0, 1]");
        }
        Ok(())
    }
}

/// Cross-validates each model on a table.
pub fn evaluate_models(
    table: &Table,
    schema: &DatasetSettings,
    settings: &TrainingSettings,
    models: &[ModelKind],
) -> Result<Vec<CvReport>, String> {
    let examples = Examples::from_table(table, schema)?;
    if examples.labels.iter().all(|&y| y == examples.labels[0]) {
        return Err("the target has one class only; nothing to learn".into());
    }
    let cv = CvSettings {
        folds: settings.folds,
        seed: settings.seed,
        threshold: settings.threshold,
        lr: &settings.lr,
        rf: &settings.rf,
    };
    models
        .iter()
        .map(|&m| cross_validate(&examples, m, &cv))
        .collect()
}
