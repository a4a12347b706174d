//! Per-feature contributions to a prediction, in log-odds (the model's margin), summed back
//! from the transformed columns to the raw features (a one-hot group adds up to its feature):
//!
//! - XGBoost: SHAP values from the library's own prediction API (`pred_contribs`);
//! - logistic regression: coefficient × standardised value, the intercept as the bias.
//!
//! The forest has no exact, cheap attribution here and is refused with a clear message.

use serde::Serialize;

use super::TrainedModel;
use super::features::{ColumnTransform, Raw};
use super::models::Model;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The margin with no feature information: XGBoost's expected value, or LR's intercept.
    pub bias: f64,
    /// Raw feature → contribution, in the model's feature order.
    pub contributions: Vec<(String, f64)>,
}

/// Output columns per raw feature, in order.
fn widths(model: &TrainedModel) -> Vec<usize> {
    model
        .pipeline
        .columns
        .iter()
        .map(|c| match c {
            ColumnTransform::Numeric { .. } => 1,
            ColumnTransform::Categorical { categories, .. } => categories.len(),
        })
        .collect()
}

fn fold(model: &TrainedModel, per_column: &[f64], bias: f64) -> Explanation {
    let mut contributions = Vec::with_capacity(model.features.len());
    let mut rest = per_column;
    for (name, w) in model.features.iter().zip(widths(model)) {
        let (group, after) = rest.split_at(w.min(rest.len()));
        contributions.push((name.clone(), group.iter().sum()));
        rest = after;
    }
    Explanation {
        bias,
        contributions,
    }
}

pub fn explain<'a>(
    model: &TrainedModel,
    rows: impl ExactSizeIterator<Item = &'a Vec<Raw>>,
) -> Result<Vec<Explanation>, String> {
    let (x, n, width) = model.pipeline.transform_rows(rows);
    match &model.model {
        Model::Logistic {
            coefficients,
            intercept,
        } => Ok(x
            .chunks_exact(width.max(1))
            .take(n)
            .map(|row| {
                let per: Vec<f64> = row.iter().zip(coefficients).map(|(v, c)| v * c).collect();
                fold(model, &per, *intercept)
            })
            .collect()),
        Model::Xgb(m) => {
            let data: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let dmat = xgb::DMatrix::from_dense(&data, n).map_err(|e| format!("XGBoost: {e}"))?;
            let (values, (_, cols)) = m.with_booster(|b| b.predict_contributions(&dmat))?;
            if cols != width + 1 {
                return Err(format!(
                    "XGBoost gave {cols} contribution columns for {width} features"
                ));
            }
            Ok(values
                .chunks_exact(cols)
                .take(n)
                .map(|row| {
                    // The last column is the bias (the model's expected margin).
                    let (per, bias) = row.split_at(width);
                    let per: Vec<f64> = per.iter().map(|&v| f64::from(v)).collect();
                    let bias = bias.first().map(|&b| f64::from(b)).unwrap_or_default();
                    fold(model, &per, bias)
                })
                .collect())
        }
        Model::Forest { .. } => Err(
            "explanations are available for XGBoost and logistic regression models; the \
             production model is a random forest"
                .into(),
        ),
    }
}
