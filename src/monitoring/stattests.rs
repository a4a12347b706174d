//! Evidently's drift statistics, under Evidently's names (`ks`, `chisquare`, `z`, `wasserstein`,
//! `jensenshannon`, `psi`), computed as Evidently 0.7.23 computes them in
//! `evidently.legacy.calculations.stattests` (with SciPy 1.17 and NumPy 2.4 under it), and its
//! default choice of test per feature (`get_default_stattest` in its `registry.py`).
//!
//! Inputs are one feature's values on each side with missing values already left out: numeric
//! values sorted ascending ([`Values::Numeric`]) or category counts ([`Values::Categorical`]).
//! Distribution functions come from `statrs` (χ², normal); the KS distributions are in
//! [`super::ks`]. Golden values: `tests/fixtures/drift_golden.json`, made by
//! `bench/drift_golden.py` from Evidently itself.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

use super::ks;

/// One feature's non-missing values on one side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    /// Finite values, sorted ascending.
    Numeric(Vec<f64>),
    /// Count of rows per category.
    Categorical(BTreeMap<String, u64>),
}

impl Values {
    /// Sorts and keeps the finite values (Evidently turns ±inf into missing and drops them).
    pub fn numeric(mut values: Vec<f64>) -> Self {
        values.retain(|v| v.is_finite());
        values.sort_unstable_by(f64::total_cmp);
        Self::Numeric(values)
    }

    /// Rows on this side.
    pub fn len(&self) -> u64 {
        match self {
            Self::Numeric(v) => v.len() as u64,
            Self::Categorical(c) => c.values().sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_numeric(&self) -> Option<&[f64]> {
        match self {
            Self::Numeric(v) => Some(v),
            Self::Categorical(_) => None,
        }
    }
}

/// Evidently's stattests that Steward implements, by their Evidently names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatTest {
    /// Two-sample Kolmogorov–Smirnov; the score is its p-value. Numeric features.
    Ks,
    /// Pearson's χ² of the current counts against the reference shares; the score is its p-value.
    Chisquare,
    /// Z-test for the difference of two proportions; the score is its p-value. Two values.
    Z,
    /// Wasserstein-1 distance ÷ max(std(reference), 0.001). Numeric features.
    Wasserstein,
    /// Jensen–Shannon distance (natural log) of the binned shares.
    Jensenshannon,
    /// Population stability index of the binned shares.
    Psi,
}

impl StatTest {
    pub const ALL: [StatTest; 6] = [
        Self::Ks,
        Self::Chisquare,
        Self::Z,
        Self::Wasserstein,
        Self::Jensenshannon,
        Self::Psi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ks => "ks",
            Self::Chisquare => "chisquare",
            Self::Z => "z",
            Self::Wasserstein => "wasserstein",
            Self::Jensenshannon => "jensenshannon",
            Self::Psi => "psi",
        }
    }

    /// The test of this name, or an error listing the names.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| {
                format!(
                    "unknown stattest (expected one of {})",
                    Self::ALL.map(Self::as_str).join(", ")
                )
            })
    }

    /// Evidently's default threshold: 0.05 for p-values, 0.1 for distances.
    pub fn default_threshold(self) -> f64 {
        if self.is_p_value() { 0.05 } else { 0.1 }
    }

    /// Whether the score is a p-value (drift below the threshold) or a distance (drift at or
    /// above it).
    pub fn is_p_value(self) -> bool {
        matches!(self, Self::Ks | Self::Chisquare | Self::Z)
    }

    /// Whether Evidently's function for this test computes on such a feature: `ks` and
    /// `wasserstein` need numeric values, `z` exactly two distinct values (or one on both sides).
    pub fn applies(self, numeric: bool, n_unique: usize) -> bool {
        match self {
            Self::Ks | Self::Wasserstein => numeric,
            Self::Z => n_unique <= 2,
            Self::Chisquare | Self::Jensenshannon | Self::Psi => true,
        }
    }

    /// Evidently's verdict for a score: `ks` drifts at p ≤ threshold, `chisquare` and `z` at
    /// p < threshold, the distances at ≥ threshold.
    pub fn drifted(self, score: f64, threshold: f64) -> bool {
        match self {
            Self::Ks => score <= threshold,
            Self::Chisquare | Self::Z => score < threshold,
            Self::Wasserstein | Self::Jensenshannon | Self::Psi => score >= threshold,
        }
    }
}

impl fmt::Display for StatTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Evidently's default test (`get_default_stattest`): with at most 1000 reference rows, `ks` for
/// a numeric feature with more than 5 distinct values (reference ∪ current), else `chisquare`
/// for more than 2 and `z` for 2 or fewer; with more than 1000 rows, `wasserstein` for a numeric
/// feature with more than 5 distinct values, else `jensenshannon`.
pub fn default_stattest(numeric: bool, reference_rows: u64, n_unique: usize) -> StatTest {
    let many = numeric && n_unique > 5;
    if reference_rows <= 1000 {
        if many {
            StatTest::Ks
        } else if n_unique > 2 {
            StatTest::Chisquare
        } else {
            StatTest::Z
        }
    } else if many {
        StatTest::Wasserstein
    } else {
        StatTest::Jensenshannon
    }
}

/// The two sides of one feature, prepared once for every test: the row counts and, per distinct
/// value of reference ∪ current (in ascending order), its count on each side.
pub struct Pair<'a> {
    pub reference: &'a Values,
    pub current: &'a Values,
    /// Whether the feature is numeric (Evidently's `ColumnType.Numerical`).
    pub numeric: bool,
    counts: Vec<(u64, u64)>,
}

impl<'a> Pair<'a> {
    /// `None` when a side has no value (Evidently refuses an empty column).
    pub fn new(reference: &'a Values, current: &'a Values, numeric: bool) -> Option<Self> {
        if reference.is_empty() || current.is_empty() {
            return None;
        }
        let counts = match (reference, current) {
            (Values::Numeric(r), Values::Numeric(c)) => numeric_counts(r, c),
            (Values::Categorical(r), Values::Categorical(c)) => {
                let mut merged: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
                for (k, &n) in r {
                    merged.entry(k).or_default().0 += n;
                }
                for (k, &n) in c {
                    merged.entry(k).or_default().1 += n;
                }
                merged.into_values().collect()
            }
            _ => return None,
        };
        Some(Self {
            reference,
            current,
            numeric,
            counts,
        })
    }

    /// Distinct values of reference ∪ current (Evidently's `n_unique`).
    pub fn n_unique(&self) -> usize {
        self.counts.len()
    }

    fn reference_unique(&self) -> usize {
        self.counts.iter().filter(|(r, _)| *r > 0).count()
    }

    /// The drift score of `test`, or `None` when the test does not apply (see
    /// [`StatTest::applies`]).
    pub fn score(&self, test: StatTest) -> Option<f64> {
        if !test.applies(self.numeric, self.n_unique()) {
            return None;
        }
        Some(match test {
            StatTest::Ks => {
                ks::ks_2samp(self.reference.as_numeric()?, self.current.as_numeric()?)?.pvalue
            }
            StatTest::Chisquare => self.chisquare(),
            StatTest::Z => self.z(),
            StatTest::Wasserstein => {
                wasserstein_norm(self.reference.as_numeric()?, self.current.as_numeric()?)
            }
            StatTest::Jensenshannon => {
                let (r, c) = self.binned(false);
                jensenshannon(&r, &c)
            }
            StatTest::Psi => {
                let (r, c) = self.binned(true);
                r.iter().zip(&c).map(|(r, c)| (r - c) * (r / c).ln()).sum()
            }
        })
    }

    /// SciPy's `chisquare(f_obs, f_exp)` with f_obs the current counts and f_exp the reference
    /// counts scaled to the current size; a category absent from the reference makes the
    /// statistic infinite and the p-value 0.
    fn chisquare(&self) -> f64 {
        let (n_ref, n_cur) = (self.reference.len() as f64, self.current.len() as f64);
        let k_norm = n_cur / n_ref;
        let stat: f64 = self
            .counts
            .iter()
            .map(|&(r, c)| {
                let expected = r as f64 * k_norm;
                let diff = c as f64 - expected;
                diff * diff / expected
            })
            .sum();
        let dof = self.counts.len().saturating_sub(1);
        if dof == 0 {
            // One value on both sides: nothing differs (SciPy's χ² with 0 degrees is undefined).
            return 1.0;
        }
        if stat.is_infinite() {
            return 0.0;
        }
        ChiSquared::new(dof as f64).map_or(f64::NAN, |d| d.sf(stat))
    }

    /// Evidently's `_z_stat_test`: each side's share of values other than the first (sorted)
    /// value, the pooled proportion, and 2·(1 − Φ(|z|)).
    fn z(&self) -> f64 {
        let Some(&(first_ref, first_cur)) = self.counts.first() else {
            return 1.0;
        };
        if self.counts.len() == 1 {
            return 1.0;
        }
        let (n1, n2) = (self.reference.len() as f64, self.current.len() as f64);
        let p1 = (n1 - first_ref as f64) / n1;
        let p2 = (n2 - first_cur as f64) / n2;
        let pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
        let z = (p1 - p2) / (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
        let phi = Normal::standard().cdf(z.abs());
        2.0 * (1.0 - phi)
    }

    /// Evidently's `get_binned_data`: for a numeric feature whose reference has more than 20
    /// distinct values, NumPy's Sturges histogram of reference ∪ current; otherwise one bin per
    /// distinct value. Shares of each side's rows; with `fill_zeros`, an empty bin becomes
    /// min(non-zero share)/10⁶ when that minimum is ≤ 0.0001, else 0.0001 (not renormalised).
    fn binned(&self, fill_zeros: bool) -> (Vec<f64>, Vec<f64>) {
        let (n_ref, n_cur) = (self.reference.len() as f64, self.current.len() as f64);
        let (mut r, mut c): (Vec<f64>, Vec<f64>) =
            match (self.reference.as_numeric(), self.current.as_numeric()) {
                (Some(rv), Some(cv)) if self.numeric && self.reference_unique() > 20 => {
                    let edges = sturges_edges(rv, cv);
                    (
                        histogram(rv, &edges)
                            .into_iter()
                            .map(|n| n / n_ref)
                            .collect(),
                        histogram(cv, &edges)
                            .into_iter()
                            .map(|n| n / n_cur)
                            .collect(),
                    )
                }
                _ => self
                    .counts
                    .iter()
                    .map(|&(r, c)| (r as f64 / n_ref, c as f64 / n_cur))
                    .unzip(),
            };
        if fill_zeros {
            fill_empty(&mut r);
            fill_empty(&mut c);
        }
        (r, c)
    }
}

/// Counts per distinct value over two sorted slices, ascending.
fn numeric_counts(r: &[f64], c: &[f64]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    loop {
        let v = match (r.get(i), c.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        let (i0, j0) = (i, j);
        while r.get(i).is_some_and(|&x| x == v) {
            i += 1;
        }
        while c.get(j).is_some_and(|&y| y == v) {
            j += 1;
        }
        out.push(((i - i0) as u64, (j - j0) as u64));
    }
    out
}

fn fill_empty(shares: &mut [f64]) {
    let min = shares
        .iter()
        .copied()
        .filter(|&s| s != 0.0)
        .fold(f64::INFINITY, f64::min);
    if !min.is_finite() {
        return;
    }
    let fill = if min <= 0.0001 { min / 1e6 } else { 0.0001 };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = fill;
    }
}

/// `np.histogram_bin_edges(reference ∪ current, bins="sturges")`: width = range/(log2(n)+1),
/// ⌈range/width⌉ equal bins from the minimum to the maximum (±0.5 when they are equal), the edges
/// from `np.linspace`.
fn sturges_edges(r: &[f64], c: &[f64]) -> Vec<f64> {
    let lo = r
        .first()
        .copied()
        .unwrap_or(0.0)
        .min(c.first().copied().unwrap_or(f64::INFINITY));
    let hi = r
        .last()
        .copied()
        .unwrap_or(0.0)
        .max(c.last().copied().unwrap_or(f64::NEG_INFINITY));
    let size = (r.len() + c.len()) as f64;
    let (first, last) = if lo == hi {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let width = (hi - lo) / (size.log2() + 1.0);
    let bins = if width != 0.0 {
        ((last - first) / width).ceil().max(1.0) as usize
    } else {
        1
    };
    linspace(first, last, bins + 1)
}

/// `np.linspace(start, stop, num)` with the end point: i·step + start, the last set to `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let div = (num - 1) as f64;
    let delta = stop - start;
    let step = delta / div;
    let mut out: Vec<f64> = (0..num)
        .map(|i| {
            if step == 0.0 {
                i as f64 / div * delta + start
            } else {
                i as f64 * step + start
            }
        })
        .collect();
    if let Some(last) = out.last_mut() {
        *last = stop;
    }
    out
}

/// `np.histogram(values, edges)` for sorted values inside the edges: [e_i, e_i+1) per bin, the
/// last bin closed.
fn histogram(sorted: &[f64], edges: &[f64]) -> Vec<f64> {
    let below = |e: f64| sorted.partition_point(|&v| v < e);
    let upto = |e: f64| sorted.partition_point(|&v| v <= e);
    let bins = edges.len().saturating_sub(1);
    (0..bins)
        .map(|i| {
            let lo = edges.get(i).copied().unwrap_or(0.0);
            let hi = edges.get(i + 1).copied().unwrap_or(0.0);
            let end = if i + 1 == bins { upto(hi) } else { below(hi) };
            end.saturating_sub(below(lo)) as f64
        })
        .collect()
}

/// SciPy's `distance.jensenshannon(p, q)`: both normalised, m = (p+q)/2, √((KL(p‖m)+KL(q‖m))/2).
fn jensenshannon(p: &[f64], q: &[f64]) -> f64 {
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    let rel_entr = |x: f64, y: f64| {
        if x > 0.0 && y > 0.0 {
            x * (x / y).ln()
        } else if x == 0.0 && y >= 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    };
    let (mut left, mut right) = (0.0, 0.0);
    for (&a, &b) in p.iter().zip(q) {
        let (a, b) = (a / sp, b / sq);
        let m = (a + b) / 2.0;
        left += rel_entr(a, m);
        right += rel_entr(b, m);
    }
    ((left + right) / 2.0).sqrt()
}

/// SciPy's `wasserstein_distance(u, v)` (the area between the two empirical CDFs) divided by
/// max(std(u), 0.001), the population standard deviation of the reference (Evidently's
/// `wasserstein_distance_norm`). Both slices sorted, non-empty.
pub fn wasserstein_norm(reference: &[f64], current: &[f64]) -> f64 {
    let n = reference.len() as f64;
    let mean = reference.iter().sum::<f64>() / n;
    let var = reference
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum::<f64>()
        / n;
    let norm = var.sqrt().max(0.001);
    let distance = wasserstein(reference, current);
    if !norm.is_finite() || !distance.is_finite() {
        // Values near f64's limits overflow the sums (where NumPy would answer 0 or NaN):
        // no score rather than a wrong one.
        return f64::NAN;
    }
    distance / norm
}

fn wasserstein(u: &[f64], v: &[f64]) -> f64 {
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut prev: Option<f64> = None;
    let mut total = 0.0;
    // Walk the pooled values in order; between consecutive values the CDFs are constant.
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        if let Some(p) = prev {
            let cu = i as f64 / nu;
            let cv = j as f64 / nv;
            total += (cu - cv).abs() * (x - p);
        }
        while u.get(i).is_some_and(|&a| a == x) {
            i += 1;
        }
        while v.get(j).is_some_and(|&b| b == x) {
            j += 1;
        }
        prev = Some(x);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for t in StatTest::ALL {
            assert_eq!(StatTest::parse(t.as_str()), Ok(t));
        }
        let err = StatTest::parse("anderson").err().unwrap_or_default();
        assert!(err.contains("ks, chisquare"), "{err}");
    }

    #[test]
    fn defaults_follow_evidentlys_table() {
        assert_eq!(default_stattest(true, 303, 47), StatTest::Ks);
        assert_eq!(default_stattest(true, 303, 5), StatTest::Chisquare);
        assert_eq!(default_stattest(false, 303, 2), StatTest::Z);
        assert_eq!(default_stattest(true, 1001, 47), StatTest::Wasserstein);
        assert_eq!(default_stattest(false, 1001, 4), StatTest::Jensenshannon);
        assert_eq!(default_stattest(true, 1000, 6), StatTest::Ks);
    }

    #[test]
    fn linspace_and_histogram_match_numpy() {
        // np.histogram([0, 1, 1, 2, 3, 3], np.linspace(0, 3, 4)) == [1, 2, 3]
        let edges = linspace(0.0, 3.0, 4);
        assert_eq!(edges, vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(
            histogram(&[0.0, 1.0, 1.0, 2.0, 3.0, 3.0], &edges),
            vec![1.0, 2.0, 3.0]
        );
    }

    #[test]
    fn wasserstein_of_a_shift_is_the_shift() {
        let a = [0.0, 1.0, 2.0, 3.0];
        let b = [1.0, 2.0, 3.0, 4.0];
        assert!((wasserstein(&a, &b) - 1.0).abs() < 1e-12);
    }
}
