//! The preprocessing pipeline: fitted on training rows only, then applied unchanged to any
//! other rows (validation folds, serving). Numeric columns are imputed with the training
//! median and standardised; categorical columns are imputed with the training mode and
//! one-hot encoded over the categories seen in training (an unseen category encodes as all
//! zeros, never an error).
#![expect(
    clippy::indexing_slicing,
    reason = "fitting indexes rows by positions from the same examples; the serving transform does not index"
)]

use serde::{Deserialize, Serialize};

use crate::data::schema::{ColumnKind, DatasetSettings, TargetRule, normalize_category};
use crate::data::table::Table;

/// One feature cell before preprocessing. In JSON it is its bare value: a number, a string,
/// or null when missing.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Raw {
    Num(Option<f64>),
    Cat(Option<String>),
}

/// The rows of a table as raw feature cells, with binary labels from the target rule. Rows
/// whose target is missing are left out.
#[derive(Debug, Clone)]
pub struct Examples {
    pub feature_names: Vec<String>,
    pub rows: Vec<Vec<Raw>>,
    pub labels: Vec<u32>,
}

impl Examples {
    pub fn from_table(table: &Table, schema: &DatasetSettings) -> Result<Self, String> {
        let target = schema
            .column(&schema.target)
            .ok_or_else(|| format!("target `{}` is not a column", schema.target))?;
        let labels_raw: Vec<Option<u32>> = match (target.kind, &schema.target_rule) {
            (ColumnKind::Numeric, TargetRule::GreaterThan(t)) => table
                .numeric(&target.name)
                .ok_or("target column missing")?
                .iter()
                .map(|v| v.map(|v| u32::from(v > *t)))
                .collect(),
            (ColumnKind::Categorical, TargetRule::OneOf(positive)) => {
                let positive: Vec<String> =
                    positive.iter().map(|p| normalize_category(p)).collect();
                table
                    .categorical(&target.name)
                    .ok_or("target column missing")?
                    .iter()
                    .map(|v| v.map(|v| u32::from(positive.iter().any(|p| p == v))))
                    .collect()
            }
            (ColumnKind::Categorical, TargetRule::GreaterThan(t)) => table
                .categorical(&target.name)
                .ok_or("target column missing")?
                .iter()
                .map(|v| {
                    v.and_then(|v| v.parse::<f64>().ok())
                        .map(|v| u32::from(v > *t))
                })
                .collect(),
            (ColumnKind::Numeric, TargetRule::OneOf(positive)) => {
                let positive: Vec<String> =
                    positive.iter().map(|p| normalize_category(p)).collect();
                table
                    .numeric(&target.name)
                    .ok_or("target column missing")?
                    .iter()
                    .map(|v| {
                        v.map(|v| u32::from(positive.contains(&normalize_category(&v.to_string()))))
                    })
                    .collect()
            }
        };
        let features: Vec<_> = schema.features().collect();
        let mut columns: Vec<Vec<Raw>> = Vec::with_capacity(features.len());
        for spec in &features {
            let cells = match spec.kind {
                ColumnKind::Numeric => table
                    .numeric(&spec.name)
                    .ok_or_else(|| format!("column `{}` missing", spec.name))?
                    .iter()
                    .map(Raw::Num)
                    .collect(),
                ColumnKind::Categorical => table
                    .categorical(&spec.name)
                    .ok_or_else(|| format!("column `{}` missing", spec.name))?
                    .iter()
                    .map(|v| Raw::Cat(v.map(str::to_owned)))
                    .collect(),
            };
            columns.push(cells);
        }
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for (i, label) in labels_raw.into_iter().enumerate() {
            let Some(label) = label else { continue };
            rows.push(columns.iter().map(|c| c[i].clone()).collect());
            labels.push(label);
        }
        Ok(Examples {
            feature_names: features.iter().map(|f| f.name.clone()).collect(),
            rows,
            labels,
        })
    }

    pub fn subset(&self, indices: &[usize]) -> Examples {
        Examples {
            feature_names: self.feature_names.clone(),
            rows: indices.iter().map(|&i| self.rows[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ColumnTransform {
    Numeric {
        name: String,
        median: f64,
        mean: f64,
        std: f64,
    },
    Categorical {
        name: String,
        mode: String,
        categories: Vec<String>,
    },
}

/// The fitted pipeline, saved with the model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pipeline {
    pub columns: Vec<ColumnTransform>,
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

impl Pipeline {
    pub fn fit(train: &Examples) -> Pipeline {
        let all: Vec<usize> = (0..train.rows.len()).collect();
        Pipeline::fit_on(train, &all)
    }

    /// Fits on the given rows of `examples` only (a training fold), without copying them.
    pub fn fit_on(examples: &Examples, rows: &[usize]) -> Pipeline {
        let train_rows = || rows.iter().map(|&r| &examples.rows[r]);
        let columns = examples
            .feature_names
            .iter()
            .enumerate()
            .map(|(j, name)| match train_rows().next().map(|r| &r[j]) {
                Some(Raw::Cat(_)) => {
                    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
                    for row in train_rows() {
                        if let Raw::Cat(Some(v)) = &row[j] {
                            *counts.entry(v.clone()).or_default() += 1;
                        }
                    }
                    // Most frequent first; ties broken by the category, so fits are repeatable.
                    let mode = counts
                        .iter()
                        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                        .map(|(k, _)| k.clone())
                        .unwrap_or_default();
                    ColumnTransform::Categorical {
                        name: name.clone(),
                        mode,
                        categories: counts.into_keys().collect(),
                    }
                }
                _ => {
                    let present: Vec<f64> = train_rows()
                        .filter_map(|r| match r[j] {
                            Raw::Num(v) => v,
                            Raw::Cat(_) => None,
                        })
                        .collect();
                    let med = median(present.clone());
                    // Statistics of the imputed column, as a scaler after an imputer sees it.
                    let n = rows.len().max(1) as f64;
                    let imputed = train_rows().map(|r| match r[j] {
                        Raw::Num(Some(v)) => v,
                        _ => med,
                    });
                    let mean = imputed.clone().sum::<f64>() / n;
                    let var = imputed.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                    ColumnTransform::Numeric {
                        name: name.clone(),
                        median: med,
                        mean,
                        std: if var > 0.0 { var.sqrt() } else { 1.0 },
                    }
                }
            })
            .collect();
        Pipeline { columns }
    }

    /// Names of the output columns (`cp=4` for one-hot columns).
    pub fn output_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|c| match c {
                ColumnTransform::Numeric { name, .. } => vec![name.clone()],
                ColumnTransform::Categorical {
                    name, categories, ..
                } => categories.iter().map(|k| format!("{name}={k}")).collect(),
            })
            .collect()
    }

    pub fn transform_row(&self, row: &[Raw]) -> Vec<f64> {
        let mut out = Vec::new();
        for (c, cell) in self.columns.iter().zip(row) {
            match (c, cell) {
                (
                    ColumnTransform::Numeric {
                        median, mean, std, ..
                    },
                    Raw::Num(v),
                ) => {
                    out.push((v.unwrap_or(*median) - mean) / std);
                }
                (
                    ColumnTransform::Categorical {
                        mode, categories, ..
                    },
                    Raw::Cat(v),
                ) => {
                    let v = v.as_deref().unwrap_or(mode);
                    out.extend(categories.iter().map(|k| if k == v { 1.0 } else { 0.0 }));
                }
                // A cell of the wrong kind is treated as missing.
                (
                    ColumnTransform::Numeric {
                        median, mean, std, ..
                    },
                    Raw::Cat(_),
                ) => {
                    out.push((median - mean) / std);
                }
                (
                    ColumnTransform::Categorical {
                        mode, categories, ..
                    },
                    Raw::Num(_),
                ) => {
                    out.extend(categories.iter().map(|k| if k == mode { 1.0 } else { 0.0 }));
                }
            }
        }
        out
    }

    pub fn width(&self) -> usize {
        self.columns
            .iter()
            .map(|c| match c {
                ColumnTransform::Numeric { .. } => 1,
                ColumnTransform::Categorical { categories, .. } => categories.len(),
            })
            .sum()
    }

    /// Row-major matrix of the transformed rows.
    pub fn transform(&self, examples: &Examples) -> (Vec<f64>, usize, usize) {
        self.transform_rows(examples.rows.iter())
    }

    /// Row-major matrix of the given rows of `examples`.
    pub fn transform_on(&self, examples: &Examples, rows: &[usize]) -> (Vec<f64>, usize, usize) {
        self.transform_rows(rows.iter().map(|&r| &examples.rows[r]))
    }

    pub fn transform_rows<'a>(
        &self,
        rows: impl ExactSizeIterator<Item = &'a Vec<Raw>>,
    ) -> (Vec<f64>, usize, usize) {
        let width = self.width();
        let n = rows.len();
        let mut values = Vec::with_capacity(n * width);
        for row in rows {
            values.extend(self.transform_row(row));
        }
        (values, n, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Examples {
        Examples {
            feature_names: vec!["age".into(), "cp".into()],
            rows: vec![
                vec![Raw::Num(Some(40.0)), Raw::Cat(Some("1".into()))],
                vec![Raw::Num(None), Raw::Cat(Some("4".into()))],
                vec![Raw::Num(Some(60.0)), Raw::Cat(None)],
                vec![Raw::Num(Some(50.0)), Raw::Cat(Some("4".into()))],
            ],
            labels: vec![0, 1, 1, 0],
        }
    }

    #[test]
    fn imputes_scales_and_one_hot_encodes() {
        let p = Pipeline::fit(&examples());
        assert_eq!(p.output_names(), ["age", "cp=1", "cp=4"]);
        // Median 50 fills the gap; the mode `4` fills the missing category.
        let missing = p.transform_row(&[Raw::Num(None), Raw::Cat(None)]);
        assert!(missing[0].abs() < 1e-12);
        assert_eq!(&missing[1..], &[0.0, 1.0]);
        // An unseen category encodes as all zeros.
        let unseen = p.transform_row(&[Raw::Num(Some(50.0)), Raw::Cat(Some("9".into()))]);
        assert_eq!(&unseen[1..], &[0.0, 0.0]);
    }
}
