//! Per-column statistics of a table, stored with each dataset version (so `show` and `diff`
//! need no re-read, and monitoring can use them as the reference profile), and their diff.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::schema::{ColumnKind, DatasetSettings};
use super::table::Table;

/// How many categories a profile lists per column, most frequent first.
const TOP_CATEGORIES: usize = 25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    pub kind: ColumnKind,
    /// Non-missing values.
    pub count: u64,
    pub missing: u64,
    pub missing_percent: f64,
    pub distinct: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub min: Option<f64>,
    pub p25: Option<f64>,
    pub p50: Option<f64>,
    pub p75: Option<f64>,
    pub max: Option<f64>,
    /// (category, count), most frequent first.
    pub categories: Vec<(String, u64)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableProfile {
    pub rows: u64,
    pub columns: Vec<ColumnProfile>,
}

impl TableProfile {
    pub fn column(&self, name: &str) -> Option<&ColumnProfile> {
        self.columns.iter().find(|c| c.name == name)
    }
}

pub fn profile(table: &Table, schema: &DatasetSettings) -> TableProfile {
    let rows = table.rows() as u64;
    let columns = schema
        .columns
        .iter()
        .map(|spec| {
            let mut p = ColumnProfile {
                name: spec.name.clone(),
                kind: spec.kind,
                count: 0,
                missing: 0,
                missing_percent: 0.0,
                distinct: 0,
                mean: None,
                std: None,
                min: None,
                p25: None,
                p50: None,
                p75: None,
                max: None,
                categories: Vec::new(),
            };
            match spec.kind {
                ColumnKind::Numeric => {
                    if let Some(ca) = table.numeric(&spec.name) {
                        p.missing = ca.null_count() as u64;
                        p.mean = ca.mean();
                        p.std = ChunkVar::std(ca, 1);
                        p.min = ChunkAgg::min(ca);
                        p.max = ChunkAgg::max(ca);
                        let q = |x| {
                            ChunkQuantile::quantile(ca, x, QuantileMethod::Linear)
                                .ok()
                                .flatten()
                        };
                        p.p25 = q(0.25);
                        p.p50 = q(0.5);
                        p.p75 = q(0.75);
                        p.distinct =
                            ca.n_unique().map(|n| n as u64).unwrap_or(0) - u64::from(p.missing > 0);
                    }
                }
                ColumnKind::Categorical => {
                    if let Some(ca) = table.categorical(&spec.name) {
                        p.missing = ca.null_count() as u64;
                        let mut counts: std::collections::HashMap<&str, u64> = Default::default();
                        for v in ca.iter().flatten() {
                            *counts.entry(v).or_default() += 1;
                        }
                        p.distinct = counts.len() as u64;
                        let mut sorted: Vec<(String, u64)> =
                            counts.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                        sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                        sorted.truncate(TOP_CATEGORIES);
                        p.categories = sorted;
                    }
                }
            }
            p.count = rows - p.missing;
            p.missing_percent = if rows == 0 {
                0.0
            } else {
                100.0 * p.missing as f64 / rows as f64
            };
            p
        })
        .collect();
    TableProfile { rows, columns }
}

/// One column of two profiles side by side.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDiff {
    pub name: String,
    pub left: Option<ColumnProfile>,
    pub right: Option<ColumnProfile>,
    /// Statistics that differ, as `stat: left → right` lines.
    pub changes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProfileDiff {
    pub rows: (u64, u64),
    pub columns_added: Vec<String>,
    pub columns_removed: Vec<String>,
    pub columns: Vec<ColumnDiff>,
}

pub fn diff(left: &TableProfile, right: &TableProfile) -> ProfileDiff {
    let mut names: Vec<String> = left.columns.iter().map(|c| c.name.clone()).collect();
    for c in &right.columns {
        if !names.contains(&c.name) {
            names.push(c.name.clone());
        }
    }
    let columns = names
        .iter()
        .map(|name| {
            let l = left.column(name).cloned();
            let r = right.column(name).cloned();
            let changes = match (&l, &r) {
                (Some(l), Some(r)) => column_changes(l, r),
                _ => Vec::new(),
            };
            ColumnDiff {
                name: name.clone(),
                left: l,
                right: r,
                changes,
            }
        })
        .collect();
    ProfileDiff {
        rows: (left.rows, right.rows),
        columns_added: names
            .iter()
            .filter(|n| left.column(n).is_none())
            .cloned()
            .collect(),
        columns_removed: names
            .iter()
            .filter(|n| right.column(n).is_none())
            .cloned()
            .collect(),
        columns,
    }
}

fn column_changes(l: &ColumnProfile, r: &ColumnProfile) -> Vec<String> {
    let mut out = Vec::new();
    let mut num = |stat: &str, a: Option<f64>, b: Option<f64>| {
        if a.map(round4) != b.map(round4) {
            out.push(format!("{stat}: {} → {}", show(a), show(b)));
        }
    };
    num("count", Some(l.count as f64), Some(r.count as f64));
    num("missing", Some(l.missing as f64), Some(r.missing as f64));
    num(
        "missing %",
        Some(l.missing_percent),
        Some(r.missing_percent),
    );
    num("mean", l.mean, r.mean);
    num("std", l.std, r.std);
    num("min", l.min, r.min);
    num("p50", l.p50, r.p50);
    num("max", l.max, r.max);
    if l.categories != r.categories {
        out.push(format!(
            "categories: {} → {}",
            show_categories(&l.categories),
            show_categories(&r.categories)
        ));
    }
    out
}

fn round4(x: f64) -> i64 {
    (x * 10_000.0).round() as i64
}

pub fn show(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e12 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn show_categories(c: &[(String, u64)]) -> String {
    c.iter()
        .map(|(k, n)| format!("{k}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}
