//! The candidate models. Logistic regression is smartcore's; its probability is the logistic
//! of its linear score. smartcore's random forest has no probabilities, so the forest here
//! bags smartcore decision trees (which do): each tree sees a bootstrap sample of the rows and
//! a random subset of the columns, and the forest averages the trees' class-1 probabilities.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Lr,
    Rf,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lr => "logistic regression",
            ModelKind::Rf => "random forest",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "lr" => Ok(ModelKind::Lr),
            "rf" => Ok(ModelKind::Rf),
            "xgb" => Err("xgb (XGBoost) is not built yet; use lr or rf".into()),
            other => Err(format!("unknown model `{other}`: use lr or rf")),
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

#[derive(Debug, Serialize, Deserialize)]
pub enum Model {
    Logistic {
        coefficients: Vec<f64>,
        intercept: f64,
    },
    Forest {
        trees: Vec<ForestTree>,
    },
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

impl Model {
    /// Fits on a row-major matrix of `rows × width` values.
    pub fn fit(
        kind: ModelKind,
        lr: &LrParams,
        rf: &RfParams,
        values: &[f64],
        labels: &[u32],
        width: usize,
        seed: u64,
    ) -> Result<Model, String> {
        let rows = labels.len();
        match kind {
            ModelKind::Lr => {
                let x = matrix(values.to_vec(), rows, width)?;
                let y = labels.to_vec();
                let params = LogisticRegressionParameters::default().with_alpha(lr.alpha);
                let fitted: LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>> =
                    LogisticRegression::fit(&x, &y, params).map_err(|e| e.to_string())?;
                let coefficients = (0..width)
                    .map(|j| *fitted.coefficients().get((0, j)))
                    .collect();
                let intercept = *fitted.intercept().get((0, 0));
                Ok(Model::Logistic {
                    coefficients,
                    intercept,
                })
            }
            ModelKind::Rf => {
                let mut rng = StdRng::seed_from_u64(seed);
                let per_tree =
                    ((rf.max_features * width as f64).ceil() as usize).clamp(1, width.max(1));
                let mut trees = Vec::with_capacity(rf.trees);
                for _ in 0..rf.trees {
                    let sample_rows: Vec<usize> =
                        (0..rows).map(|_| rng.random_range(0..rows)).collect();
                    let mut columns = sample(&mut rng, width, per_tree).into_vec();
                    columns.sort_unstable();
                    let y: Vec<u32> = sample_rows.iter().map(|&r| labels[r]).collect();
                    let model = if y.iter().all(|&v| v == y[0]) {
                        TreeModel::Constant(f64::from(y[0]))
                    } else {
                        let x = matrix(
                            select(values, &sample_rows, width, &columns),
                            sample_rows.len(),
                            columns.len(),
                        )?;
                        let params = DecisionTreeClassifierParameters {
                            criterion: SplitCriterion::Gini,
                            max_depth: (rf.max_depth > 0).then_some(rf.max_depth),
                            min_samples_leaf: rf.min_samples_leaf.max(1),
                            min_samples_split: 2,
                            seed: Some(rng.random()),
                        };
                        TreeModel::Fitted(Tree::fit(&x, &y, params).map_err(|e| e.to_string())?)
                    };
                    trees.push(ForestTree { columns, model });
                }
                Ok(Model::Forest { trees })
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
            Model::Forest { trees } => {
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
        }
    }
}
