//! Metrics per slice of the rows, so that a model good on average but poor for one group (say
//! women) shows it. A slice column is categorical (one group per value) or numeric cut into
//! bands at configured edges (`bands = [45, 55, 65]` gives <45, 45–55, 55–65, ≥65).
#![expect(
    clippy::indexing_slicing,
    reason = "slice reports index rows by positions from the same examples, and bands after their own checks"
)]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::features::{Examples, Raw};
use super::metrics;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SliceSpec {
    pub column: String,
    /// Band edges for a numeric column, ascending. Empty: one group per value.
    #[serde(default)]
    pub bands: Vec<f64>,
    /// Display names of values or bands, e.g. `{ "0" = "female", "1" = "male" }`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl SliceSpec {
    pub fn check(&self) -> Result<(), String> {
        if self.bands.iter().any(|b| !b.is_finite()) || self.bands.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(format!(
                "slice `{}`: bands must be finite and ascending",
                self.column
            ));
        }
        Ok(())
    }

    /// The group of a cell, with a key that orders bands low to high and puts "missing" last.
    fn group_of(&self, cell: &Raw) -> (usize, String) {
        match cell {
            Raw::Num(None) | Raw::Cat(None) => (usize::MAX, "missing".into()),
            Raw::Cat(Some(v)) => (0, v.clone()),
            Raw::Num(Some(v)) if self.bands.is_empty() => (0, format_number(*v)),
            Raw::Num(Some(v)) => {
                let i = self.bands.partition_point(|edge| edge <= v);
                let name = if i == 0 {
                    format!("<{}", format_number(self.bands[0]))
                } else if i == self.bands.len() {
                    format!("≥{}", format_number(self.bands[i - 1]))
                } else {
                    format!(
                        "{}–{}",
                        format_number(self.bands[i - 1]),
                        format_number(self.bands[i])
                    )
                };
                (i, name)
            }
        }
    }
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceGroup {
    pub group: String,
    pub label: String,
    pub rows: u64,
    pub positives: u64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// None when the group holds one class only.
    pub roc_auc: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceReport {
    pub column: String,
    pub groups: Vec<SliceGroup>,
}

/// Metrics per group of each slice column, over the given rows' probabilities.
pub fn evaluate_slices(
    examples: &Examples,
    probabilities: &[f64],
    threshold: f64,
    specs: &[SliceSpec],
) -> Vec<SliceReport> {
    specs
        .iter()
        .filter_map(|spec| {
            let j = examples
                .feature_names
                .iter()
                .position(|n| *n == spec.column)?;
            let mut groups: BTreeMap<(usize, String), (Vec<u32>, Vec<f64>)> = BTreeMap::new();
            for ((row, &y), &p) in examples
                .rows
                .iter()
                .zip(&examples.labels)
                .zip(probabilities)
            {
                let g = groups.entry(spec.group_of(&row[j])).or_default();
                g.0.push(y);
                g.1.push(p);
            }
            let groups = groups
                .into_iter()
                .map(|((_, group), (labels, probs))| {
                    let m = metrics::evaluate(&labels, &probs, threshold);
                    let positives = labels.iter().filter(|&&y| y == 1).count() as u64;
                    let both = positives > 0 && positives < labels.len() as u64;
                    SliceGroup {
                        label: spec
                            .labels
                            .get(&group)
                            .cloned()
                            .unwrap_or_else(|| group.clone()),
                        group,
                        rows: labels.len() as u64,
                        positives,
                        accuracy: m.accuracy,
                        precision: m.precision,
                        recall: m.recall,
                        f1: m.f1,
                        roc_auc: both.then_some(m.roc_auc),
                    }
                })
                .collect();
            Some(SliceReport {
                column: spec.column.clone(),
                groups,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_columns_are_banded_and_values_labelled() {
        let examples = Examples {
            feature_names: vec!["age".into(), "sex".into()],
            rows: vec![
                vec![Raw::Num(Some(30.0)), Raw::Cat(Some("0".into()))],
                vec![Raw::Num(Some(50.0)), Raw::Cat(Some("1".into()))],
                vec![Raw::Num(Some(55.0)), Raw::Cat(Some("1".into()))],
                vec![Raw::Num(Some(70.0)), Raw::Cat(Some("0".into()))],
            ],
            labels: vec![0, 1, 0, 1],
        };
        let specs = [
            SliceSpec {
                column: "age".into(),
                bands: vec![45.0, 55.0],
                labels: BTreeMap::new(),
            },
            SliceSpec {
                column: "sex".into(),
                bands: vec![],
                labels: [("0".to_owned(), "female".to_owned())].into(),
            },
        ];
        let reports = evaluate_slices(&examples, &[0.2, 0.8, 0.7, 0.9], 0.5, &specs);
        let age: Vec<(&str, u64)> = reports[0]
            .groups
            .iter()
            .map(|g| (g.group.as_str(), g.rows))
            .collect();
        assert_eq!(age, [("<45", 1), ("45–55", 1), ("≥55", 2)]);
        let women = &reports[1].groups[0];
        assert_eq!(
            (women.label.as_str(), women.rows, women.accuracy),
            ("female", 2, 1.0)
        );
        let men = &reports[1].groups[1];
        assert_eq!((men.label.as_str(), men.accuracy), ("1", 0.5));
    }
}
