//! ML: the preprocessing pipeline, the candidate models, evaluation and the trained artifact.
//!
//! [`train_candidate`] is the whole protocol for one model on one dataset version:
//! an optional grid search (each point scored by cross-validated ROC-AUC), stratified k-fold
//! cross-validation of the chosen parameters with a fixed seed, then a final fit on everything
//! but a stratified holdout, which is scored separately and kept for champion/challenger
//! comparisons. Curves and slices come from the out-of-fold probabilities, so every row is
//! scored by a model that never saw it. Nothing here touches the store.
#![expect(
    clippy::indexing_slicing,
    reason = "the training protocol indexes rows and labels by positions from its own splits"
)]

pub mod balance;
pub mod cv;
pub mod explain;
pub mod features;
pub mod metrics;
pub mod models;
pub mod slices;
pub mod xgb_trees;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use self::balance::Imbalance;
use self::cv::{Spread, spread, stratified_folds, stratified_holdout};
use self::features::{Examples, Pipeline, Raw};
use self::metrics::{CalibrationBin, Metrics, RocPoint};
use self::models::{FitLog, LrParams, Model, ModelKind, ModelSpec, RfParams, TrainSet, XgbParams};
use self::slices::{SliceReport, SliceSpec};

/// Largest number of parameter sets a grid may hold per model.
pub const MAX_GRID_POINTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSettings {
    pub models: Vec<ModelKind>,
    pub seed: u64,
    pub folds: usize,
    pub threshold: f64,
    pub holdout: f64,
    pub imbalance: Imbalance,
    pub experiment: String,
    /// The metric that picks the best candidate (a run summary, e.g. `cv_roc_auc_mean`).
    pub select_by: String,
    pub on_first_start: bool,
    pub lr: LrParams,
    pub rf: RfParams,
    pub xgb: XgbParams,
    #[serde(default)]
    pub grid: GridSettings,
    #[serde(default)]
    pub slices: Vec<SliceSpec>,
}

/// Values to try per hyperparameter, per model; empty means no search.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSettings {
    #[serde(default)]
    pub lr: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(default)]
    pub rf: BTreeMap<String, Vec<serde_json::Value>>,
    #[serde(default)]
    pub xgb: BTreeMap<String, Vec<serde_json::Value>>,
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

impl TrainingSettings {
    /// The checks that need the dataset's schema as well: slices name feature columns, and
    /// `select_by` names a metric every run records. Errors are `(key, message)`.
    pub fn check_against(
        &self,
        dataset: &crate::data::schema::DatasetSettings,
    ) -> Result<(), (String, String)> {
        for slice in &self.slices {
            if dataset.column(&slice.column).is_none() || slice.column == dataset.target {
                return Err((
                    "training.slices".into(),
                    format!("`{}` is not a feature column of the dataset", slice.column),
                ));
            }
        }
        let selectable = selectable_metrics();
        if !selectable.contains(&self.select_by) {
            return Err((
                "training.select_by".into(),
                format!(
                    "`{}` is not one of {}",
                    self.select_by,
                    selectable.join(", ")
                ),
            ));
        }
        Ok(())
    }

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
        if !(0.05..=0.5).contains(&self.holdout) {
            return err("training.holdout", "must be between 0.05 and 0.5");
        }
        if self.experiment.trim().is_empty() {
            return err("training.experiment", "must not be empty");
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
        let x = &self.xgb;
        if x.rounds == 0 || x.max_depth == 0 {
            return err("training.xgb", "rounds and max_depth must be at least 1");
        }
        if !(x.learning_rate > 0.0 && x.learning_rate <= 1.0) {
            return err("training.xgb.learning_rate", "must be in (0, 1]");
        }
        let share = |v: f64| v > 0.0 && v <= 1.0;
        if !share(x.subsample) || !share(x.colsample_bytree) {
            return err(
                "training.xgb",
                "subsample and colsample_bytree must be in (0, 1]",
            );
        }
        for kind in [ModelKind::Lr, ModelKind::Rf, ModelKind::Xgb] {
            if let Err(e) = self.candidates(kind) {
                return Err((format!("training.grid.{kind}"), e));
            }
        }
        for s in &self.slices {
            if let Err(e) = s.check() {
                return err("training.slices", &e);
            }
        }
        Ok(())
    }

    pub fn base_spec(&self, kind: ModelKind) -> ModelSpec {
        match kind {
            ModelKind::Lr => ModelSpec::Lr(self.lr.clone()),
            ModelKind::Rf => ModelSpec::Rf(self.rf.clone()),
            ModelKind::Xgb => ModelSpec::Xgb(self.xgb.clone()),
        }
    }

    /// The parameter sets to try for a model: the configured one, or each point of its grid
    /// (the grid's values replace the configured ones).
    pub fn candidates(&self, kind: ModelKind) -> Result<Vec<ModelSpec>, String> {
        let grid = match kind {
            ModelKind::Lr => &self.grid.lr,
            ModelKind::Rf => &self.grid.rf,
            ModelKind::Xgb => &self.grid.xgb,
        };
        let base = self.base_spec(kind);
        let mut points: Vec<Vec<(String, serde_json::Value)>> = vec![Vec::new()];
        for (name, values) in grid {
            if values.is_empty() {
                return Err(format!("`{name}` lists no values"));
            }
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut q = p.clone();
                        q.push((name.clone(), v.clone()));
                        q
                    })
                })
                .collect();
            if points.len() > MAX_GRID_POINTS {
                return Err(format!("more than {MAX_GRID_POINTS} parameter sets"));
            }
        }
        points.iter().map(|p| base.with(p)).collect()
    }
}

/// A model ready to predict: the fitted pipeline and model, with what it was trained as.
/// Serialised as the `model.json` artifact.
#[derive(Debug, Serialize, Deserialize)]
pub struct TrainedModel {
    /// Bumped when the layout changes, so an old artifact is refused, not misread.
    pub format: u32,
    pub spec: ModelSpec,
    pub imbalance: Imbalance,
    /// The raw feature names, in the order `predict` takes them.
    pub features: Vec<String>,
    pub pipeline: Pipeline,
    pub model: Model,
    pub threshold: f64,
}

pub const ARTIFACT_FORMAT: u32 = 1;

impl TrainedModel {
    pub fn kind(&self) -> ModelKind {
        self.spec.kind()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        serde_json::to_vec(self).map_err(|e| format!("serialising the model: {e}"))
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<TrainedModel, String> {
        let model: TrainedModel =
            serde_json::from_slice(bytes).map_err(|e| format!("reading the model: {e}"))?;
        if model.format != ARTIFACT_FORMAT {
            return Err(format!(
                "model artifact format {} is not {ARTIFACT_FORMAT}",
                model.format
            ));
        }
        Ok(model)
    }

    /// Whether predictions call the XGBoost library (trees the native walk does not take).
    pub fn predicts_with_library(&self) -> bool {
        matches!(&self.model, Model::Xgb(m) if m.native().is_err())
    }

    /// Whether explanations call the XGBoost library (its SHAP values).
    pub fn explains_with_library(&self) -> bool {
        matches!(&self.model, Model::Xgb(_))
    }

    /// Class-1 probabilities for raw feature rows (each in `features` order).
    pub fn predict_proba<'a>(
        &self,
        rows: impl ExactSizeIterator<Item = &'a Vec<Raw>>,
    ) -> Result<Vec<f64>, String> {
        let (x, n, width) = self.pipeline.transform_rows(rows);
        self.model.predict_proba(&x, n, width)
    }

    /// Metrics of this model on labelled examples, at its threshold.
    pub fn evaluate(&self, examples: &Examples) -> Result<Metrics, String> {
        if examples.feature_names != self.features {
            return Err(format!(
                "the data's features ({}) are not the model's ({})",
                examples.feature_names.join(", "),
                self.features.join(", ")
            ));
        }
        let p = self.predict_proba(examples.rows.iter())?;
        Ok(metrics::evaluate(&examples.labels, &p, self.threshold))
    }
}

/// One point of a grid search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    pub spec: ModelSpec,
    pub roc_auc: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvSummary {
    pub folds: Vec<Metrics>,
    pub accuracy: Spread,
    pub precision: Spread,
    pub recall: Spread,
    pub f1: Spread,
    pub roc_auc: Spread,
    pub pr_auc: Spread,
    pub log_loss: Spread,
    pub brier: Spread,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    pub feature: String,
    pub importance: f64,
}

/// Everything measured about one candidate; the `metrics.json` artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateReport {
    pub model: ModelKind,
    pub spec: ModelSpec,
    pub imbalance: Imbalance,
    pub seed: u64,
    pub rows: usize,
    pub positives: usize,
    pub grid: Vec<GridPoint>,
    pub cv: CvSummary,
    /// Metrics of the pooled out-of-fold probabilities at the configured threshold.
    pub out_of_fold: Metrics,
    /// (threshold, F1) maximising F1 over the out-of-fold probabilities.
    pub f1_optimal_threshold: (f64, f64),
    pub roc: Vec<RocPoint>,
    pub calibration: Vec<CalibrationBin>,
    pub slices: Vec<SliceReport>,
    pub holdout_rows: Vec<usize>,
    pub holdout: Metrics,
    pub importance: Vec<FeatureImportance>,
    /// XGBoost's log-loss on the holdout after each boosting round of the final fit.
    pub eval_logloss: Vec<f64>,
    pub fit_seconds: f64,
    pub train_rows: usize,
}

/// Progress of a candidate's fits, for a progress bar: (fits done, fits in all).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Fits the pipeline and the model on the given rows, with the imbalance treatment.
fn fit_on(
    examples: &Examples,
    rows: &[usize],
    spec: &ModelSpec,
    imbalance: Imbalance,
    seed: u64,
    eval_rows: Option<&[usize]>,
) -> Result<(Pipeline, Model, FitLog), String> {
    let pipeline = Pipeline::fit_on(examples, rows);
    let (mut x, _, width) = pipeline.transform_on(examples, rows);
    let mut y: Vec<u32> = rows.iter().map(|&r| examples.labels[r]).collect();
    let mut weights = None;
    match imbalance {
        Imbalance::None => {}
        Imbalance::ClassWeights => weights = Some(balance::class_weights(&y)),
        Imbalance::Smote => (x, y) = balance::smote(&x, &y, width, seed)?,
    }
    let eval = eval_rows.map(|r| {
        let (ex, _, _) = pipeline.transform_on(examples, r);
        let ey: Vec<u32> = r.iter().map(|&i| examples.labels[i]).collect();
        (ex, ey)
    });
    let train = TrainSet {
        x: &x,
        y: &y,
        width,
        weights: weights.as_deref(),
    };
    let (model, log) = Model::fit(
        spec,
        &train,
        eval.as_ref().map(|(x, y)| (x.as_slice(), y.as_slice())),
        seed,
    )?;
    Ok((pipeline, model, log))
}

/// Out-of-fold probabilities and per-fold metrics of one parameter set.
fn cross_validate(
    examples: &Examples,
    folds: &[Vec<usize>],
    spec: &ModelSpec,
    settings: &TrainingSettings,
    tick: &mut dyn FnMut(),
) -> Result<(Vec<f64>, Vec<Metrics>), String> {
    let n = examples.labels.len();
    let mut oof = vec![0.0; n];
    let mut fold_metrics = Vec::with_capacity(folds.len());
    for (i, test) in folds.iter().enumerate() {
        let train: Vec<usize> = (0..n).filter(|r| test.binary_search(r).is_err()).collect();
        let seed = settings.seed.wrapping_add(i as u64);
        let (pipeline, model, _) = fit_on(examples, &train, spec, settings.imbalance, seed, None)?;
        let (x, rows, width) = pipeline.transform_on(examples, test);
        let p = model.predict_proba(&x, rows, width)?;
        let labels: Vec<u32> = test.iter().map(|&r| examples.labels[r]).collect();
        fold_metrics.push(metrics::evaluate(&labels, &p, settings.threshold));
        for (&r, v) in test.iter().zip(p) {
            oof[r] = v;
        }
        tick();
    }
    Ok((oof, fold_metrics))
}

fn summarise(folds: Vec<Metrics>) -> CvSummary {
    let pick = |f: fn(&Metrics) -> f64| spread(folds.iter().map(f));
    CvSummary {
        accuracy: pick(|m| m.accuracy),
        precision: pick(|m| m.precision),
        recall: pick(|m| m.recall),
        f1: pick(|m| m.f1),
        roc_auc: pick(|m| m.roc_auc),
        pr_auc: pick(|m| m.pr_auc),
        log_loss: pick(|m| m.log_loss),
        brier: pick(|m| m.brier),
        folds,
    }
}

/// The fits `train_candidate` makes for a model: folds per grid point, plus the final fit.
pub fn fits_for(settings: &TrainingSettings, kind: ModelKind) -> usize {
    let points = settings.candidates(kind).map(|c| c.len()).unwrap_or(1);
    points * settings.folds + 1
}

/// Runs the whole protocol for one model (see the module comment).
pub fn train_candidate(
    examples: &Examples,
    kind: ModelKind,
    settings: &TrainingSettings,
    progress: Progress<'_>,
) -> Result<(CandidateReport, TrainedModel), String> {
    let n = examples.labels.len();
    let positives = examples.labels.iter().filter(|&&y| y == 1).count();
    if positives == 0 || positives == n {
        return Err("the target has one class only; nothing to learn".into());
    }
    if positives < settings.folds || n - positives < settings.folds {
        return Err(format!(
            "{n} rows with {positives} positives are too few for {} folds",
            settings.folds
        ));
    }
    let candidates = settings.candidates(kind)?;
    let total = candidates.len() * settings.folds + 1;
    let mut done = 0;
    let mut tick = || {
        done += 1;
        progress(done, total);
    };
    let folds = stratified_folds(&examples.labels, settings.folds, settings.seed);

    let mut grid = Vec::new();
    let mut best: Option<(usize, Vec<f64>, Vec<Metrics>)> = None;
    for (i, spec) in candidates.iter().enumerate() {
        let (oof, fold_metrics) = cross_validate(examples, &folds, spec, settings, &mut tick)?;
        let auc = spread(fold_metrics.iter().map(|m| m.roc_auc));
        let better = best
            .as_ref()
            .is_none_or(|(b, _, _)| auc.mean > grid_auc(&grid, *b));
        grid.push(GridPoint {
            spec: spec.clone(),
            roc_auc: auc,
        });
        if better {
            best = Some((i, oof, fold_metrics));
        }
    }
    let Some((chosen, oof, fold_metrics)) = best else {
        return Err("no parameter set to try".into());
    };
    let spec = candidates[chosen].clone();
    if candidates.len() == 1 {
        grid.clear();
    }

    let (train_rows, holdout_rows) =
        stratified_holdout(&examples.labels, settings.holdout, settings.seed);
    let started = Instant::now();
    let (pipeline, model, log) = fit_on(
        examples,
        &train_rows,
        &spec,
        settings.imbalance,
        settings.seed,
        Some(&holdout_rows),
    )?;
    let fit_seconds = started.elapsed().as_secs_f64();
    tick();
    let (hx, hn, width) = pipeline.transform_on(examples, &holdout_rows);
    let holdout_p = model.predict_proba(&hx, hn, width)?;
    let holdout_labels: Vec<u32> = holdout_rows.iter().map(|&r| examples.labels[r]).collect();
    let holdout = metrics::evaluate(&holdout_labels, &holdout_p, settings.threshold);
    let importance = pipeline
        .output_names()
        .into_iter()
        .zip(model.importance(width)?)
        .map(|(feature, importance)| FeatureImportance {
            feature,
            importance,
        })
        .collect();

    let report = CandidateReport {
        model: kind,
        spec: spec.clone(),
        imbalance: settings.imbalance,
        seed: settings.seed,
        rows: n,
        positives,
        grid,
        out_of_fold: metrics::evaluate(&examples.labels, &oof, settings.threshold),
        f1_optimal_threshold: metrics::f1_optimal_threshold(&examples.labels, &oof),
        roc: metrics::roc_curve(&examples.labels, &oof, 200),
        calibration: metrics::calibration_curve(&examples.labels, &oof, 10),
        slices: slices::evaluate_slices(examples, &oof, settings.threshold, &settings.slices),
        cv: summarise(fold_metrics),
        holdout_rows,
        holdout,
        importance,
        eval_logloss: log.eval_logloss,
        fit_seconds,
        train_rows: train_rows.len(),
    };
    let trained = TrainedModel {
        format: ARTIFACT_FORMAT,
        spec,
        imbalance: settings.imbalance,
        features: examples.feature_names.clone(),
        pipeline,
        model,
        threshold: settings.threshold,
    };
    Ok((report, trained))
}

fn grid_auc(grid: &[GridPoint], i: usize) -> f64 {
    grid.get(i)
        .map(|g| g.roc_auc.mean)
        .unwrap_or(f64::NEG_INFINITY)
}
