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
    /// How far the column's distribution moved, whatever the row counts.
    pub shift: Option<Shift>,
}

/// How far a column moved beyond what a change of row count explains. A mean or a category
/// count changes whenever rows are added; an effect size does not grow with them:
///
/// - numeric: Cohen's d, the difference of the means over the pooled standard deviation
///   `sqrt((s₁² + s₂²) / 2)` (Cohen 1988; |d| ≥ 0.2 is a "small" effect);
/// - categorical: the total variation distance between the category shares of the non-missing
///   values, `½ Σ |p₁ − p₂|` over the listed categories (≥ 0.1 counts);
/// - both: the change of the missing share, in percentage points (±5 counts).
#[derive(Debug, Clone, Serialize)]
pub struct Shift {
    /// `cohens_d` or `total_variation`.
    pub measure: &'static str,
    pub value: f64,
    pub missing_pp: f64,
    /// Past a threshold above: the column really changed.
    pub shifted: bool,
}

/// Cohen's d at or past which a numeric column counts as shifted.
pub const SHIFT_D: f64 = 0.2;
/// Total variation distance at or past which a categorical column counts as shifted.
pub const SHIFT_TVD: f64 = 0.1;
/// Change of the missing share, in percentage points, that counts as a shift.
pub const SHIFT_MISSING_PP: f64 = 5.0;

fn shift(l: &ColumnProfile, r: &ColumnProfile) -> Shift {
    let missing_pp = r.missing_percent - l.missing_percent;
    let (measure, value) = match l.kind {
        ColumnKind::Numeric => {
            let d = match (l.mean, r.mean, l.std, r.std) {
                (Some(m1), Some(m2), Some(s1), Some(s2)) => {
                    let pooled = ((s1 * s1 + s2 * s2) / 2.0).sqrt();
                    if pooled > 0.0 {
                        (m2 - m1) / pooled
                    } else if m1 == m2 {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                }
                _ => 0.0,
            };
            ("cohens_d", d)
        }
        ColumnKind::Categorical => {
            let share = |p: &ColumnProfile, k: &str| {
                let n: u64 = p.categories.iter().map(|(_, c)| c).sum();
                p.categories
                    .iter()
                    .find(|(c, _)| c == k)
                    .map(|(_, c)| *c as f64 / n.max(1) as f64)
                    .unwrap_or(0.0)
            };
            let mut keys: Vec<&str> = l
                .categories
                .iter()
                .chain(&r.categories)
                .map(|(k, _)| k.as_str())
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let tvd = keys
                .iter()
                .map(|k| (share(l, k) - share(r, k)).abs())
                .sum::<f64>()
                / 2.0;
            ("total_variation", tvd)
        }
    };
    let threshold = if measure == "cohens_d" {
        SHIFT_D
    } else {
        SHIFT_TVD
    };
    Shift {
        measure,
        value,
        missing_pp,
        shifted: value.abs() >= threshold || missing_pp.abs() >= SHIFT_MISSING_PP,
    }
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
            let (changes, shift) = match (&l, &r) {
                (Some(l), Some(r)) => (column_changes(l, r), Some(shift(l, r))),
                _ => (Vec::new(), None),
            };
            ColumnDiff {
                name: name.clone(),
                left: l,
                right: r,
                changes,
                shift,
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

#[cfg(test)]
mod shift_tests {
    use super::*;

    fn numeric(mean: f64, std: f64, missing_percent: f64) -> ColumnProfile {
        ColumnProfile {
            name: "x".into(),
            kind: ColumnKind::Numeric,
            count: 100,
            missing: 0,
            missing_percent,
            distinct: 50,
            mean: Some(mean),
            std: Some(std),
            min: None,
            p25: None,
            p50: None,
            p75: None,
            max: None,
            categories: Vec::new(),
        }
    }

    #[test]
    fn a_shift_is_an_effect_size_not_a_changed_statistic() {
        // More rows, a slightly different mean: no shift.
        let s = shift(&numeric(54.4, 9.0, 0.0), &numeric(54.6, 9.1, 0.0));
        assert!(!s.shifted && s.value.abs() < 0.05, "{s:?}");
        // Half a standard deviation: a shift, d = 0.5.
        let s = shift(&numeric(50.0, 10.0, 0.0), &numeric(55.0, 10.0, 0.0));
        assert!(s.shifted && (s.value - 0.5).abs() < 1e-12, "{s:?}");
        // The same mean, but a third of the values now missing.
        let s = shift(&numeric(50.0, 10.0, 0.0), &numeric(50.0, 10.0, 30.0));
        assert!(s.shifted && s.missing_pp == 30.0, "{s:?}");
        let cats = |a: u64, b: u64| ColumnProfile {
            kind: ColumnKind::Categorical,
            mean: None,
            std: None,
            categories: vec![("0".into(), a), ("1".into(), b)],
            ..numeric(0.0, 0.0, 0.0)
        };
        // Twice the rows, the same shares: no shift; 50/50 against 80/20: TVD 0.3.
        assert!(!shift(&cats(50, 50), &cats(100, 100)).shifted);
        let s = shift(&cats(50, 50), &cats(80, 20));
        assert!(s.shifted && (s.value - 0.3).abs() < 1e-12, "{s:?}");
    }
}
