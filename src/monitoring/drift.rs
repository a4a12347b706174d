//! A drift report between a reference and a current side, feature by feature, the way
//! Evidently's `DataDriftPreset` makes one (`Report.run(reference, current)`), plus what Evidently
//! leaves out: an effect size that does not grow with the sample and PSI beside every test.
//!
//! Shapes: a [`Side`] holds, per schema feature, its non-missing values and its missing count;
//! [`compare`] returns a [`DriftReport`] whose JSON is the contract of `steward drift compare
//! --json`. Pure computation: no store, no HTTP; callers run it on the blocking pool.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::stattests::{Pair, StatTest, Values, default_stattest, wasserstein_norm};
use crate::data::schema::{ColumnKind, DatasetSettings, normalize_category};
use crate::data::stream::{Cell, Scan, scan_csv};
use crate::data::table::Table;

/// One feature on one side.
#[derive(Debug, Clone)]
pub struct FeatureValues {
    pub name: String,
    pub numeric: bool,
    pub values: Values,
    /// Rows where the value was missing (or not finite), left out of the tests.
    pub missing: u64,
}

/// One side of a comparison: its row count and its features in schema order.
#[derive(Debug, Clone)]
pub struct Side {
    pub rows: u64,
    pub features: Vec<FeatureValues>,
}

impl Side {
    /// The schema's features of a table read with that schema (the target is not a feature).
    pub fn from_table(table: &Table, schema: &DatasetSettings) -> Self {
        let features = schema
            .features()
            .map(|spec| match spec.kind {
                ColumnKind::Numeric => {
                    let mut values = Vec::with_capacity(table.rows());
                    let mut missing = 0;
                    if let Some(col) = table.numeric(&spec.name) {
                        for v in col.iter() {
                            match v {
                                Some(v) if v.is_finite() => values.push(v),
                                _ => missing += 1,
                            }
                        }
                    }
                    FeatureValues {
                        name: spec.name.clone(),
                        numeric: true,
                        values: Values::numeric(values),
                        missing,
                    }
                }
                ColumnKind::Categorical => {
                    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                    let mut missing = 0;
                    if let Some(col) = table.categorical(&spec.name) {
                        for v in col.iter() {
                            match v {
                                Some(v) => {
                                    if let Some(n) = counts.get_mut(v) {
                                        *n += 1;
                                    } else {
                                        counts.insert(v.to_owned(), 1);
                                    }
                                }
                                None => missing += 1,
                            }
                        }
                    }
                    FeatureValues {
                        name: spec.name.clone(),
                        numeric: false,
                        values: Values::Categorical(counts),
                        missing,
                    }
                }
            })
            .collect();
        Self {
            rows: table.rows() as u64,
            features,
        }
    }
}

impl Side {
    /// The schema's features of a CSV file, read row by row (see [`scan_csv`]): memory for the
    /// numeric values and the category counts, never the file or a frame of it.
    pub fn from_csv<R: std::io::Read>(
        reader: R,
        source_name: &str,
        schema: &DatasetSettings,
    ) -> Result<Self, Scan> {
        let specs: Vec<(usize, String, bool)> = schema
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name != schema.target)
            .map(|(i, c)| (i, c.name.clone(), c.kind == ColumnKind::Numeric))
            .collect();
        let mut builder = SideBuilder::new(
            specs
                .iter()
                .map(|(_, name, numeric)| (name.clone(), *numeric)),
        );
        scan_csv(reader, source_name, schema, true, |cells| {
            for (slot, (at, _, _)) in specs.iter().enumerate() {
                match cells.get(*at) {
                    Some(Cell::Num(v)) => builder.num(slot, Some(*v)),
                    Some(Cell::Text(t)) => builder.text(slot, Some(t)),
                    _ => builder.missing(slot),
                }
            }
            builder.row_done();
        })?;
        Ok(builder.finish())
    }
}

/// Builds a [`Side`] value by value: numeric values kept (then sorted), categories counted by
/// their text as given (then normalised once per distinct text).
pub struct SideBuilder {
    specs: Vec<(String, bool)>,
    numeric: Vec<Vec<f64>>,
    text: Vec<HashMap<String, u64>>,
    missing: Vec<u64>,
    rows: u64,
}

impl SideBuilder {
    /// Features as (name, numeric), in the order the slots of `num`/`text`/`missing` use.
    pub fn new(features: impl IntoIterator<Item = (String, bool)>) -> Self {
        let specs: Vec<(String, bool)> = features.into_iter().collect();
        let n = specs.len();
        Self {
            specs,
            numeric: vec![Vec::new(); n],
            text: vec![HashMap::new(); n],
            missing: vec![0; n],
            rows: 0,
        }
    }

    pub fn num(&mut self, slot: usize, value: Option<f64>) {
        match value.filter(|v| v.is_finite()) {
            Some(v) => {
                if let Some(col) = self.numeric.get_mut(slot) {
                    col.push(v);
                }
            }
            None => self.missing(slot),
        }
    }

    pub fn text(&mut self, slot: usize, value: Option<&str>) {
        match value {
            Some(t) => {
                if let Some(col) = self.text.get_mut(slot) {
                    if let Some(n) = col.get_mut(t) {
                        *n += 1;
                    } else {
                        col.insert(t.to_owned(), 1);
                    }
                }
            }
            None => self.missing(slot),
        }
    }

    pub fn missing(&mut self, slot: usize) {
        if let Some(m) = self.missing.get_mut(slot) {
            *m += 1;
        }
    }

    pub fn row_done(&mut self) {
        self.rows += 1;
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    pub fn finish(self) -> Side {
        let features = self
            .specs
            .into_iter()
            .zip(self.numeric)
            .zip(self.text)
            .zip(self.missing)
            .map(|((((name, numeric), values), raw), missing)| {
                let values = if numeric {
                    Values::numeric(values)
                } else {
                    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                    for (raw, n) in raw {
                        *counts.entry(normalize_category(&raw)).or_default() += n;
                    }
                    Values::Categorical(counts)
                };
                FeatureValues {
                    name,
                    numeric,
                    values,
                    missing,
                }
            })
            .collect();
        Side {
            rows: self.rows,
            features,
        }
    }
}

/// A feature's own test and threshold (`[monitoring.features.<name>]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureOptions {
    #[serde(default)]
    pub stattest: Option<StatTest>,
    #[serde(default)]
    pub threshold: Option<f64>,
}

/// How to test: a test forced on every feature it applies to, one threshold for all, per-feature
/// choices (which win), and the share of drifted features that makes dataset drift.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub stattest: Option<StatTest>,
    pub threshold: Option<f64>,
    pub features: BTreeMap<String, FeatureOptions>,
    /// Dataset drift when the drifted share is ≥ this (Evidently's `drift_share`, 0.5).
    pub drift_share: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            stattest: None,
            threshold: None,
            features: BTreeMap::new(),
            drift_share: 0.5,
        }
    }
}

/// One feature's result. `score` is Evidently's drift score: the p-value for `ks`, `chisquare`
/// and `z`, the distance for `wasserstein`, `jensenshannon` and `psi`. `effect_size` is the
/// normalised Wasserstein distance for a numeric feature and the Jensen–Shannon distance for a
/// categorical one. A feature with no value on a side is `skipped` (with the reason) and counts
/// neither way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureDrift {
    pub feature: String,
    pub kind: String,
    pub n_unique: usize,
    pub stattest: Option<StatTest>,
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    pub drifted: bool,
    pub effect_size: Option<f64>,
    pub psi: Option<f64>,
    pub missing_reference: u64,
    pub missing_current: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The whole report: window sizes, the drifted share of the tested features, dataset drift,
/// and the features in schema order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftReport {
    pub reference_rows: u64,
    pub current_rows: u64,
    pub drift_share: f64,
    pub dataset_drift: bool,
    pub drifted_features: usize,
    pub tested_features: usize,
    pub features: Vec<FeatureDrift>,
}

/// Tests every feature of `current` against the same feature of `reference` (matched by name;
/// a feature missing from `reference` is skipped).
pub fn compare(reference: &Side, current: &Side, options: &Options) -> DriftReport {
    let features: Vec<FeatureDrift> = current
        .features
        .iter()
        .map(|cur| {
            let reference = reference.features.iter().find(|r| r.name == cur.name);
            feature_drift(reference, cur, options)
        })
        .collect();
    let tested = features.iter().filter(|f| f.skipped.is_none()).count();
    let drifted = features.iter().filter(|f| f.drifted).count();
    let share = if tested == 0 {
        0.0
    } else {
        drifted as f64 / tested as f64
    };
    DriftReport {
        reference_rows: reference.rows,
        current_rows: current.rows,
        drift_share: share,
        dataset_drift: tested > 0 && share >= options.drift_share,
        drifted_features: drifted,
        tested_features: tested,
        features,
    }
}

/// One feature's result (see [`compare`]); `reference` `None` skips it.
pub fn feature_drift(
    reference: Option<&FeatureValues>,
    current: &FeatureValues,
    options: &Options,
) -> FeatureDrift {
    let kind = if current.numeric {
        "numeric"
    } else {
        "categorical"
    };
    let mut out = FeatureDrift {
        feature: current.name.clone(),
        kind: kind.to_owned(),
        n_unique: 0,
        stattest: None,
        score: None,
        threshold: None,
        drifted: false,
        effect_size: None,
        psi: None,
        missing_reference: reference.map_or(0, |r| r.missing),
        missing_current: current.missing,
        skipped: None,
    };
    let Some(reference) = reference else {
        out.skipped = Some("not in the reference".into());
        return out;
    };
    let Some(pair) = Pair::new(&reference.values, &current.values, current.numeric) else {
        out.skipped = Some(if reference.numeric != current.numeric {
            "its kind differs between the reference and the current data".into()
        } else if reference.values.is_empty() {
            "no value in the reference".into()
        } else {
            "no value in the current data".into()
        });
        return out;
    };
    let n_unique = pair.n_unique();
    let own = options.features.get(&current.name);
    let applies = |t: &StatTest| t.applies(current.numeric, n_unique);
    let own_test = own.and_then(|o| o.stattest).filter(applies);
    let forced = options.stattest.filter(applies);
    let chosen = own_test
        .or(forced)
        .unwrap_or_else(|| default_stattest(current.numeric, reference.values.len(), n_unique));
    // A threshold belongs to the test it was given for: a feature's own when its own test (or,
    // with none named, whichever it gets) runs; the global one for the forced test (or for
    // every test when none is forced, as Evidently's `stattest_threshold`); else the test's own.
    let own_threshold = own
        .filter(|o| o.stattest.is_none() || own_test.is_some())
        .and_then(|o| o.threshold);
    let global_threshold = options
        .threshold
        .filter(|_| options.stattest.is_none() || (own_test.is_none() && forced.is_some()));
    let threshold = own_threshold
        .or(global_threshold)
        // A p-value threshold above 1 would call every feature drifted: the test's own then.
        .filter(|t| !(chosen.is_p_value() && *t > 1.0))
        .unwrap_or_else(|| chosen.default_threshold());
    let score = pair.score(chosen);
    out.n_unique = n_unique;
    out.stattest = Some(chosen);
    out.threshold = Some(threshold);
    out.score = score.filter(|s| !s.is_nan());
    out.drifted = out.score.is_some_and(|s| chosen.drifted(s, threshold));
    out.psi = pair.score(StatTest::Psi).filter(|s| !s.is_nan());
    out.effect_size = match (&reference.values, &current.values) {
        (Values::Numeric(r), Values::Numeric(c)) => Some(wasserstein_norm(r, c)),
        _ => pair.score(StatTest::Jensenshannon),
    }
    .filter(|s| !s.is_nan());
    if out.score.is_none() {
        // Values so large that the statistic overflows (a mean of 1e308s, say): say so rather
        // than count the feature as not drifted.
        out.skipped = Some(format!(
            "{chosen}'s statistic is not a finite number for these values"
        ));
        out.drifted = false;
    }
    out
}

/// One feature's distribution on both sides, binned for a chart: shares of each side's
/// non-missing values per bin (numeric: 20 equal-width bins over reference ∪ current;
/// categorical: the 15 most common reference categories, then "other"). Never raw rows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub feature: String,
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

const NUMERIC_BINS: usize = 20;
const TOP_CATEGORIES: usize = 15;

/// Histograms of every feature present on both sides.
pub fn histograms(reference: &Side, current: &Side) -> Vec<Histogram> {
    current
        .features
        .iter()
        .filter_map(|cur| {
            let r = reference.features.iter().find(|r| r.name == cur.name)?;
            histogram(&cur.name, &r.values, &cur.values)
        })
        .collect()
}

fn histogram(feature: &str, reference: &Values, current: &Values) -> Option<Histogram> {
    match (reference, current) {
        (Values::Numeric(r), Values::Numeric(c)) => {
            let lo = r
                .first()
                .copied()
                .unwrap_or(f64::INFINITY)
                .min(c.first().copied().unwrap_or(f64::INFINITY));
            let hi = r
                .last()
                .copied()
                .unwrap_or(f64::NEG_INFINITY)
                .max(c.last().copied().unwrap_or(f64::NEG_INFINITY));
            if !lo.is_finite() || !hi.is_finite() || !(hi - lo).is_finite() {
                return None;
            }
            let width = if hi > lo {
                (hi - lo) / NUMERIC_BINS as f64
            } else {
                1.0
            };
            let shares = |values: &[f64]| {
                let mut counts = vec![0.0; NUMERIC_BINS];
                for v in values {
                    let at = (((v - lo) / width) as usize).min(NUMERIC_BINS - 1);
                    if let Some(c) = counts.get_mut(at) {
                        *c += 1.0;
                    }
                }
                let n = values.len().max(1) as f64;
                counts.into_iter().map(|c| c / n).collect::<Vec<f64>>()
            };
            Some(Histogram {
                feature: feature.to_owned(),
                labels: (0..NUMERIC_BINS)
                    .map(|i| format!("{}", round_sig(lo + width * i as f64)))
                    .collect(),
                reference: shares(r),
                current: shares(c),
            })
        }
        (Values::Categorical(r), Values::Categorical(c)) => {
            let mut order: Vec<(&String, u64)> = r.iter().map(|(k, n)| (k, *n)).collect();
            for k in c.keys() {
                if !r.contains_key(k) {
                    order.push((k, 0));
                }
            }
            order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            let shown: Vec<&String> = order.iter().take(TOP_CATEGORIES).map(|(k, _)| *k).collect();
            let rest = order.len() > TOP_CATEGORIES;
            let shares = |counts: &BTreeMap<String, u64>| {
                let n = counts.values().sum::<u64>().max(1) as f64;
                let mut out: Vec<f64> = shown
                    .iter()
                    .map(|k| counts.get(*k).copied().unwrap_or(0) as f64 / n)
                    .collect();
                if rest {
                    let other: u64 = counts
                        .iter()
                        .filter(|(k, _)| !shown.contains(k))
                        .map(|(_, v)| *v)
                        .sum();
                    out.push(other as f64 / n);
                }
                out
            };
            let mut labels: Vec<String> =
                shown.iter().map(|k| crate::error::bounded(k, 24)).collect();
            if rest {
                labels.push("other".into());
            }
            Some(Histogram {
                feature: feature.to_owned(),
                labels,
                reference: shares(r),
                current: shares(c),
            })
        }
        _ => None,
    }
}

/// Three significant digits, for bin labels.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 3 - 1 - v.abs().log10().floor() as i32;
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(values: &[(&str, Values)]) -> Side {
        Side {
            rows: values.first().map_or(0, |(_, v)| v.len()),
            features: values
                .iter()
                .map(|(n, v)| FeatureValues {
                    name: (*n).into(),
                    numeric: matches!(v, Values::Numeric(_)),
                    values: v.clone(),
                    missing: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn an_empty_side_skips_the_feature_and_counts_neither_way() {
        let r = side(&[
            ("a", Values::numeric(vec![1.0, 2.0, 3.0])),
            ("b", Values::numeric(vec![1.0, 2.0])),
        ]);
        let c = side(&[
            ("a", Values::numeric(vec![])),
            ("b", Values::numeric(vec![1.0, 2.0])),
        ]);
        let report = compare(&r, &c, &Options::default());
        let a = report.features.first().cloned();
        assert_eq!(
            a.and_then(|f| f.skipped).as_deref(),
            Some("no value in the current data")
        );
        assert_eq!(report.tested_features, 1);
        assert!(!report.dataset_drift);
    }

    #[test]
    fn an_overflowing_statistic_skips_the_feature() {
        let r = side(&[("a", Values::numeric(vec![1e308, -1e308, 1e308, 0.0]))]);
        let c = side(&[("a", Values::numeric(vec![1e308, 1e308, -1e308, 5.0]))]);
        let options = Options {
            stattest: Some(StatTest::Wasserstein),
            ..Options::default()
        };
        let report = compare(&r, &c, &options);
        let f = report.features.first().cloned();
        assert!(
            f.as_ref()
                .and_then(|f| f.skipped.as_deref())
                .is_some_and(|s| s.contains("not a finite number")),
            "{f:?}"
        );
        assert_eq!(report.tested_features, 0);
    }

    #[test]
    fn a_forced_test_only_takes_features_it_applies_to() {
        let r = side(&[(
            "c",
            Values::Categorical([("x".into(), 5), ("y".into(), 5)].into()),
        )]);
        let options = Options {
            stattest: Some(StatTest::Ks),
            ..Options::default()
        };
        let report = compare(&r, &r, &options);
        let f = report.features.first().cloned();
        assert_eq!(f.and_then(|f| f.stattest), Some(StatTest::Z));
    }
}
