//! The candidate models.
//!
//! - Logistic regression is smartcore's; its probability is the logistic of its linear score.
//! - smartcore's random forest has no probabilities, so the forest here bags smartcore decision
//!   trees (which do): each tree sees a bootstrap sample of the rows and a random subset of the
//!   columns, and the forest averages the trees' class-1 probabilities.
//! - XGBoost is the real library through the `xgb` crate; the booster is kept as XGBoost's own
//!   JSON model inside the artifact.
#![expect(
    clippy::indexing_slicing,
    reason = "model kernels walk row-major matrices whose length is checked against rows × width first"
)]

use std::sync::{Mutex, OnceLock};

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters, SplitCriterion,
};
use xgb::{Booster, DMatrix};

use super::xgb_trees::XgbTrees;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Lr,
    Rf,
    Xgb,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lr => "logistic regression",
            ModelKind::Rf => "random forest",
            ModelKind::Xgb => "XGBoost",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ModelKind::Lr => "lr",
            ModelKind::Rf => "rf",
            ModelKind::Xgb => "xgb",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "lr" => Ok(ModelKind::Lr),
            "rf" => Ok(ModelKind::Rf),
            "xgb" => Ok(ModelKind::Xgb),
            other => Err(format!("unknown model `{other}`: use lr, rf or xgb")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrParams {
    /// L2 penalty; scikit-learn's `C` is its inverse.
    pub alpha: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfParams {
    pub trees: usize,
    /// 0 means unlimited.
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    /// Share of the columns each tree sees.
    pub max_features: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XgbParams {
    pub rounds: u32,
    pub max_depth: u32,
    pub learning_rate: f64,
    pub subsample: f64,
    pub colsample_bytree: f64,
    pub min_child_weight: f64,
    pub reg_lambda: f64,
    /// XGBoost's threads; 0 means all cores.
    pub threads: u32,
}

/// One model with its hyperparameters: what a run trains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "lowercase")]
pub enum ModelSpec {
    Lr(LrParams),
    Rf(RfParams),
    Xgb(XgbParams),
}

impl ModelSpec {
    pub fn kind(&self) -> ModelKind {
        match self {
            ModelSpec::Lr(_) => ModelKind::Lr,
            ModelSpec::Rf(_) => ModelKind::Rf,
            ModelSpec::Xgb(_) => ModelKind::Xgb,
        }
    }

    /// The hyperparameters as a flat JSON object.
    pub fn params(&self) -> serde_json::Map<String, serde_json::Value> {
        let value = match self {
            ModelSpec::Lr(p) => serde_json::to_value(p),
            ModelSpec::Rf(p) => serde_json::to_value(p),
            ModelSpec::Xgb(p) => serde_json::to_value(p),
        };
        match value {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// A copy with some hyperparameters replaced, checked by the same rules as the config
    /// (unknown names and wrong types are errors).
    pub fn with(&self, overrides: &[(String, serde_json::Value)]) -> Result<ModelSpec, String> {
        let mut map = self.params();
        for (name, value) in overrides {
            if !map.contains_key(name) {
                return Err(format!("{} has no parameter `{name}`", self.kind()));
            }
            map.insert(name.clone(), value.clone());
        }
        let value = serde_json::Value::Object(map);
        let bad = |e: serde_json::Error| format!("{}: {e}", self.kind());
        Ok(match self {
            ModelSpec::Lr(_) => ModelSpec::Lr(serde_json::from_value(value).map_err(bad)?),
            ModelSpec::Rf(_) => ModelSpec::Rf(serde_json::from_value(value).map_err(bad)?),
            ModelSpec::Xgb(_) => ModelSpec::Xgb(serde_json::from_value(value).map_err(bad)?),
        })
    }
}

/// Training rows: a row-major `rows × width` matrix, binary labels and optional row weights.
pub struct TrainSet<'a> {
    pub x: &'a [f64],
    pub y: &'a [u32],
    pub width: usize,
    pub weights: Option<&'a [f64]>,
}

impl TrainSet<'_> {
    pub fn rows(&self) -> usize {
        self.y.len()
    }
}

type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

#[derive(Debug, Serialize, Deserialize)]
pub enum TreeModel {
    Fitted(Tree),
    /// The bootstrap sample held one class only.
    Constant(f64),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ForestTree {
    pub columns: Vec<usize>,
    pub model: TreeModel,
}

/// A fitted XGBoost booster, stored as XGBoost's JSON model.
///
/// Predictions walk the trees natively ([`XgbTrees`]) from any number of threads; the library's
/// booster (not `Sync`, so behind a lock) serves SHAP contributions, the importance dump, and
/// any model the native walk does not cover.
#[derive(Serialize, Deserialize)]
pub struct XgbModel {
    pub json: String,
    #[serde(skip)]
    booster: Mutex<Option<Booster>>,
    #[serde(skip)]
    native: OnceLock<Result<XgbTrees, String>>,
}

impl std::fmt::Debug for XgbModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "XgbModel({} bytes)", self.json.len())
    }
}

impl XgbModel {
    fn new(json: String, booster: Booster) -> XgbModel {
        XgbModel {
            json,
            booster: Mutex::new(Some(booster)),
            native: OnceLock::new(),
        }
    }

    /// The native evaluator, or why the model needs the library.
    pub fn native(&self) -> Result<&XgbTrees, &str> {
        self.native
            .get_or_init(|| XgbTrees::from_json(&self.json))
            .as_ref()
            .map_err(String::as_str)
    }

    pub(crate) fn with_booster<T>(
        &self,
        f: impl FnOnce(&Booster) -> Result<T, xgb::XGBError>,
    ) -> Result<T, String> {
        let mut guard = self
            .booster
            .lock()
            .map_err(|_| "XGBoost booster lock poisoned".to_owned())?;
        if guard.is_none() {
            let booster = Booster::load_buffer(self.json.as_bytes())
                .map_err(|e| format!("loading the XGBoost model: {e}"))?;
            *guard = Some(booster);
        }
        match guard.as_ref() {
            Some(b) => f(b).map_err(|e| format!("XGBoost: {e}")),
            None => Err("XGBoost booster missing".into()),
        }
    }

    /// Probabilities from the library itself (the reference the native walk is tested against).
    pub fn predict_with_library(&self, values: &[f64], rows: usize) -> Result<Vec<f64>, String> {
        let d = dmatrix(values, rows)?;
        let p = self.with_booster(|b| b.predict(&d))?;
        Ok(p.into_iter().map(f64::from).collect())
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Model {
    Logistic {
        coefficients: Vec<f64>,
        intercept: f64,
    },
    Forest {
        width: usize,
        trees: Vec<ForestTree>,
    },
    Xgb(XgbModel),
}

/// What a fit reports besides the model: XGBoost's evaluation loss per boosting round on the
/// evaluation rows, when there were any.
#[derive(Debug, Default)]
pub struct FitLog {
    pub eval_logloss: Vec<f64>,
}

fn matrix(values: Vec<f64>, rows: usize, cols: usize) -> Result<DenseMatrix<f64>, String> {
    DenseMatrix::new(rows, cols, values, false).map_err(|e| e.to_string())
}

fn select(values: &[f64], rows: &[usize], width: usize, columns: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(rows.len() * columns.len());
    for &r in rows {
        let row = &values[r * width..(r + 1) * width];
        out.extend(columns.iter().map(|&c| row[c]));
    }
    out
}

fn xgb_err(e: xgb::XGBError) -> String {
    format!("XGBoost: {e}")
}

fn dmatrix(x: &[f64], rows: usize) -> Result<DMatrix, String> {
    let data: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    DMatrix::from_dense(&data, rows).map_err(xgb_err)
}

/// Rows drawn with replacement, each with probability proportional to its weight (uniform
/// without weights).
fn bootstrap(rng: &mut StdRng, rows: usize, weights: Option<&[f64]>) -> Vec<usize> {
    match weights {
        None => (0..rows).map(|_| rng.random_range(0..rows)).collect(),
        Some(w) => {
            let mut cumulative = Vec::with_capacity(rows);
            let mut total = 0.0;
            for &v in w {
                total += v.max(0.0);
                cumulative.push(total);
            }
            (0..rows)
                .map(|_| {
                    let t = rng.random::<f64>() * total;
                    cumulative.partition_point(|&c| c <= t).min(rows - 1)
                })
                .collect()
        }
    }
}

impl Model {
    /// Fits a model. `eval` (a matrix and its labels) only feeds XGBoost's per-round log.
    pub fn fit(
        spec: &ModelSpec,
        train: &TrainSet<'_>,
        eval: Option<(&[f64], &[u32])>,
        seed: u64,
    ) -> Result<(Model, FitLog), String> {
        let rows = train.rows();
        let width = train.width;
        if rows == 0 {
            return Err("no training rows".into());
        }
        match spec {
            ModelSpec::Lr(p) => {
                // smartcore's logistic regression takes no row weights: weighted rows are
                // replicated in proportion to their weight instead (see `balance`).
                let (x, y) = match train.weights {
                    None => (train.x.to_vec(), train.y.to_vec()),
                    Some(w) => super::balance::replicate(train.x, train.y, width, w, seed),
                };
                let n = y.len();
                let x = matrix(x, n, width)?;
                let params = LogisticRegressionParameters::default().with_alpha(p.alpha);
                let fitted: LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>> =
                    LogisticRegression::fit(&x, &y, params).map_err(|e| e.to_string())?;
                let coefficients = (0..width)
                    .map(|j| *fitted.coefficients().get((0, j)))
                    .collect();
                let intercept = *fitted.intercept().get((0, 0));
                Ok((
                    Model::Logistic {
                        coefficients,
                        intercept,
                    },
                    FitLog::default(),
                ))
            }
            ModelSpec::Rf(p) => {
                let mut rng = StdRng::seed_from_u64(seed);
                let per_tree =
                    ((p.max_features * width as f64).ceil() as usize).clamp(1, width.max(1));
                let mut trees = Vec::with_capacity(p.trees);
                for _ in 0..p.trees {
                    let sample_rows = bootstrap(&mut rng, rows, train.weights);
                    let mut columns = sample(&mut rng, width, per_tree).into_vec();
                    columns.sort_unstable();
                    let y: Vec<u32> = sample_rows.iter().map(|&r| train.y[r]).collect();
                    let model = if y.iter().all(|&v| v == y[0]) {
                        TreeModel::Constant(f64::from(y[0]))
                    } else {
                        let x = matrix(
                            select(train.x, &sample_rows, width, &columns),
                            sample_rows.len(),
                            columns.len(),
                        )?;
                        let params = DecisionTreeClassifierParameters {
                            criterion: SplitCriterion::Gini,
                            max_depth: (p.max_depth > 0).then_some(p.max_depth),
                            min_samples_leaf: p.min_samples_leaf.max(1),
                            min_samples_split: 2,
                            seed: Some(rng.random()),
                        };
                        TreeModel::Fitted(Tree::fit(&x, &y, params).map_err(|e| e.to_string())?)
                    };
                    trees.push(ForestTree { columns, model });
                }
                Ok((Model::Forest { width, trees }, FitLog::default()))
            }
            ModelSpec::Xgb(p) => {
                let mut dtrain = dmatrix(train.x, rows)?;
                let labels: Vec<f32> = train.y.iter().map(|&v| v as f32).collect();
                dtrain.set_labels(&labels).map_err(xgb_err)?;
                if let Some(w) = train.weights {
                    let w: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                    dtrain.set_weights(&w).map_err(xgb_err)?;
                }
                let deval = match eval {
                    Some((x, y)) if !y.is_empty() => {
                        let mut d = dmatrix(x, y.len())?;
                        let labels: Vec<f32> = y.iter().map(|&v| v as f32).collect();
                        d.set_labels(&labels).map_err(xgb_err)?;
                        Some(d)
                    }
                    _ => None,
                };
                let mut cached = vec![&dtrain];
                cached.extend(deval.as_ref());
                let mut booster = Booster::new_with_cached_dmats(&Default::default(), &cached)
                    .map_err(xgb_err)?;
                let settings = [
                    ("verbosity", "0".to_owned()),
                    ("objective", "binary:logistic".to_owned()),
                    ("eval_metric", "logloss".to_owned()),
                    ("tree_method", "hist".to_owned()),
                    ("max_depth", p.max_depth.to_string()),
                    ("eta", p.learning_rate.to_string()),
                    ("subsample", p.subsample.to_string()),
                    ("colsample_bytree", p.colsample_bytree.to_string()),
                    ("min_child_weight", p.min_child_weight.to_string()),
                    ("lambda", p.reg_lambda.to_string()),
                    ("seed", (seed % (i32::MAX as u64)).to_string()),
                    ("nthread", p.threads.to_string()),
                ];
                for (name, value) in &settings {
                    booster.set_param(name, value).map_err(xgb_err)?;
                }
                let mut log = FitLog::default();
                for round in 0..p.rounds {
                    booster.update(&dtrain, round as i32).map_err(xgb_err)?;
                    if let Some(d) = &deval {
                        let scores = booster.evaluate(d).map_err(xgb_err)?;
                        if let Some(v) = scores.get("logloss") {
                            log.eval_logloss.push(f64::from(*v));
                        }
                    }
                }
                let json = booster.save_buffer(false).map_err(xgb_err)?;
                let json = String::from_utf8(json).map_err(|e| format!("XGBoost model: {e}"))?;
                Ok((Model::Xgb(XgbModel::new(json, booster)), log))
            }
        }
    }

    /// Probability of class 1 for each row of a row-major matrix.
    pub fn predict_proba(
        &self,
        values: &[f64],
        rows: usize,
        width: usize,
    ) -> Result<Vec<f64>, String> {
        if values.len() != rows * width {
            return Err(format!(
                "{} values for {rows} rows of {width} features",
                values.len()
            ));
        }
        match self {
            Model::Logistic {
                coefficients,
                intercept,
            } => Ok((0..rows)
                .map(|r| {
                    let row = &values[r * width..(r + 1) * width];
                    let z: f64 = intercept
                        + row
                            .iter()
                            .zip(coefficients)
                            .map(|(x, w)| x * w)
                            .sum::<f64>();
                    1.0 / (1.0 + (-z).exp())
                })
                .collect()),
            Model::Forest { trees, .. } => {
                let all: Vec<usize> = (0..rows).collect();
                let mut sum = vec![0.0; rows];
                for tree in trees {
                    match &tree.model {
                        TreeModel::Constant(p) => sum.iter_mut().for_each(|s| *s += p),
                        TreeModel::Fitted(t) => {
                            let x = matrix(
                                select(values, &all, width, &tree.columns),
                                rows,
                                tree.columns.len(),
                            )?;
                            let p = t.predict_proba(&x).map_err(|e| e.to_string())?;
                            for (r, s) in sum.iter_mut().enumerate() {
                                *s += *p.get((r, 1));
                            }
                        }
                    }
                }
                let n = trees.len().max(1) as f64;
                Ok(sum.into_iter().map(|s| s / n).collect())
            }
            Model::Xgb(m) => match m.native() {
                Ok(trees) => trees.predict(values, rows, width),
                Err(_) => m.predict_with_library(values, rows),
            },
        }
    }

    /// Per-feature importance over the transformed columns, normalised to sum to 1:
    /// |coefficient| for logistic regression (the inputs are standardised), mean impurity
    /// decrease for the forest, and average split gain for XGBoost.
    pub fn importance(&self, width: usize) -> Result<Vec<f64>, String> {
        let mut raw = vec![0.0; width];
        match self {
            Model::Logistic { coefficients, .. } => {
                for (r, c) in raw.iter_mut().zip(coefficients) {
                    *r = c.abs();
                }
            }
            Model::Forest { trees, .. } => {
                for tree in trees {
                    if let TreeModel::Fitted(t) = &tree.model {
                        for (k, v) in t.compute_feature_importances(true).into_iter().enumerate() {
                            if let Some(&col) = <[usize]>::get(&tree.columns, k) {
                                raw[col] += if v.is_finite() { v } else { 0.0 };
                            }
                        }
                    }
                }
            }
            Model::Xgb(m) => {
                let dump = m.with_booster(|b| b.dump_model_vec(true))?;
                let (gain, splits) = xgb_gain(&dump, width);
                for (j, r) in raw.iter_mut().enumerate() {
                    if splits[j] > 0 {
                        *r = gain[j] / splits[j] as f64;
                    }
                }
            }
        }
        let total: f64 = raw.iter().sum();
        if total > 0.0 {
            raw.iter_mut().for_each(|v| *v /= total);
        }
        Ok(raw)
    }
}

/// Total gain and split count per feature from XGBoost's text dump with statistics, whose
/// split lines read `3:[f7<0.5] yes=7,no=8,missing=7,gain=12.5,cover=40`.
fn xgb_gain(dump: &[String], width: usize) -> (Vec<f64>, Vec<usize>) {
    let mut gain = vec![0.0; width];
    let mut splits = vec![0; width];
    for line in dump.iter().flat_map(|tree| tree.lines()) {
        let Some(start) = line.find("[f") else {
            continue;
        };
        let rest = line.get(start + 2..).unwrap_or_default();
        let end = rest.find(['<', ']']).unwrap_or(rest.len());
        let Ok(feature) = rest.get(..end).unwrap_or_default().parse::<usize>() else {
            continue;
        };
        let g = line
            .split([',', ' '])
            .find_map(|part| part.strip_prefix("gain="))
            .and_then(|v| v.parse::<f64>().ok());
        if let (Some(g), true) = (g, feature < width) {
            gain[feature] += g;
            splits[feature] += 1;
        }
    }
    (gain, splits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xgb_gain_reads_split_lines() {
        let dump = vec![
            "0:[f1<0.5] yes=1,no=2,missing=1,gain=10,cover=5\n\t1:leaf=0.1,cover=2\n\t2:[f0<3] yes=3,no=4,missing=3,gain=4,cover=3\n".to_owned(),
            "0:[f1<1.5] yes=1,no=2,missing=1,gain=2,cover=5\n".to_owned(),
        ];
        let (gain, splits) = xgb_gain(&dump, 3);
        assert_eq!(gain, [4.0, 12.0, 0.0]);
        assert_eq!(splits, [1, 2, 0]);
    }

    /// The native tree walk gives XGBoost's own probabilities, row by row.
    #[test]
    fn native_xgboost_trees_match_the_library() {
        let rows = 400;
        let width = 6;
        let mut rng = StdRng::seed_from_u64(7);
        // One value in nine is missing, so the walk takes default branches too.
        let x: Vec<f64> = (0..rows * width)
            .map(|i| {
                let v = rng.random_range(-2.0..2.0);
                if i % 9 == 4 { f64::NAN } else { v }
            })
            .collect();
        let y: Vec<u32> = (0..rows)
            .map(|r| u32::from(x[r * width] + 0.5 * x[r * width + 1] * x[r * width + 2] > 0.1))
            .collect();
        let spec = ModelSpec::Xgb(XgbParams {
            rounds: 60,
            max_depth: 4,
            learning_rate: 0.1,
            subsample: 0.8,
            colsample_bytree: 0.8,
            min_child_weight: 1.0,
            reg_lambda: 1.0,
            threads: 1,
        });
        let train = TrainSet {
            x: &x,
            y: &y,
            width,
            weights: None,
        };
        let (model, _) = Model::fit(&spec, &train, None, 3).expect("fit");
        let Model::Xgb(m) = &model else {
            panic!("an XGBoost model");
        };
        assert!(m.native().is_ok(), "{:?}", m.native().err());
        let native = model.predict_proba(&x, rows, width).expect("native");
        let library = m.predict_with_library(&x, rows).expect("library");
        let worst = native
            .iter()
            .zip(&library)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(worst < 1e-6, "largest difference {worst}");
    }

    #[test]
    fn spec_overrides_are_checked() {
        let spec = ModelSpec::Lr(LrParams { alpha: 1.0 });
        let changed = spec
            .with(&[("alpha".into(), serde_json::json!(0.1))])
            .expect("override");
        assert_eq!(changed, ModelSpec::Lr(LrParams { alpha: 0.1 }));
        assert!(
            spec.with(&[("depth".into(), serde_json::json!(3))])
                .is_err()
        );
        assert!(
            spec.with(&[("alpha".into(), serde_json::json!("x"))])
                .is_err()
        );
    }
}
