//! Performance without labels: the idea of NannyML's confidence-based performance estimation
//! (CBPE; Evidently has none). With calibrated probabilities p, a row predicted positive
//! (p ≥ threshold) is a true positive with probability p and a false positive with 1 − p; a row
//! predicted negative is a false negative with p and a true negative with 1 − p. Summing gives the
//! expected confusion matrix, hence the expected accuracy and F1; the expected ROC-AUC takes each
//! row as p positive and 1 − p negative. The accuracy's sampling band is ±1.96 standard
//! deviations of the number of correct rows, Σ q(1 − q) with q = P(row correct), over n.
//!
//! Calibration: an isotonic regression (pool adjacent violators) of the labels on the
//! probabilities of the version's own holdout, interpolated linearly between its blocks and
//! clipped at the ends, as scikit-learn's `IsotonicRegression(out_of_bounds="clip")` does.

use serde::{Deserialize, Serialize};

/// An isotonic map from a predicted probability to an observed rate: points (p, rate) with both
/// non-decreasing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    pub points: Vec<(f64, f64)>,
    /// Rows it was fitted on (0: the identity).
    pub rows: u64,
}

impl Calibration {
    pub fn identity() -> Self {
        Self {
            points: Vec::new(),
            rows: 0,
        }
    }

    /// Fits the map on (probability, label) pairs.
    pub fn fit(pairs: &[(f64, u32)]) -> Self {
        let mut sorted: Vec<(f64, f64)> = pairs
            .iter()
            .filter(|(p, _)| p.is_finite())
            .map(|&(p, y)| (p, f64::from(y)))
            .collect();
        if sorted.len() < 2 {
            return Self::identity();
        }
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Blocks of (sum of p, sum of y, count), merged while a block's mean rate falls below
        // the one before it.
        let mut blocks: Vec<(f64, f64, f64)> = Vec::new();
        for (p, y) in &sorted {
            blocks.push((*p, *y, 1.0));
            while blocks.len() >= 2 {
                let n = blocks.len();
                let (Some(&last), Some(&prev)) = (blocks.get(n - 1), blocks.get(n - 2)) else {
                    break;
                };
                if prev.1 / prev.2 <= last.1 / last.2 {
                    break;
                }
                blocks.truncate(n - 2);
                blocks.push((prev.0 + last.0, prev.1 + last.1, prev.2 + last.2));
            }
        }
        Self {
            points: blocks
                .into_iter()
                .map(|(sp, sy, n)| (sp / n, sy / n))
                .collect(),
            rows: sorted.len() as u64,
        }
    }

    /// The calibrated probability of `p`.
    pub fn apply(&self, p: f64) -> f64 {
        let (Some(&first), Some(&last)) = (self.points.first(), self.points.last()) else {
            return p;
        };
        if p <= first.0 {
            return first.1;
        }
        if p >= last.0 {
            return last.1;
        }
        let at = self.points.partition_point(|(x, _)| *x <= p);
        match (self.points.get(at.wrapping_sub(1)), self.points.get(at)) {
            (Some(&(x0, y0)), Some(&(x1, y1))) if x1 > x0 => y0 + (y1 - y0) * (p - x0) / (x1 - x0),
            (Some(&(_, y0)), _) => y0,
            _ => p,
        }
    }
}

/// Expected figures of a window from its (calibrated) probabilities.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    pub rows: u64,
    pub accuracy: f64,
    /// 95% sampling band of the accuracy: [low, high].
    pub accuracy_band: [f64; 2],
    pub f1: f64,
    pub roc_auc: Option<f64>,
    /// Expected [[TN, FP], [FN, TP]] (fractional counts).
    pub confusion: [[f64; 2]; 2],
}

/// CBPE over probabilities `p` (already calibrated) at `threshold`. `None` for no rows.
pub fn estimate(p: &[f64], threshold: f64) -> Option<Estimate> {
    if p.is_empty() {
        return None;
    }
    let (mut tp, mut fp, mut tn, mut fn_, mut var) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &pi in p {
        let pi = pi.clamp(0.0, 1.0);
        let correct = if pi >= threshold {
            tp += pi;
            fp += 1.0 - pi;
            pi
        } else {
            fn_ += pi;
            tn += 1.0 - pi;
            1.0 - pi
        };
        var += correct * (1.0 - correct);
    }
    let n = p.len() as f64;
    let accuracy = (tp + tn) / n;
    let half = 1.96 * var.sqrt() / n;
    let f1 = if 2.0 * tp + fp + fn_ > 0.0 {
        2.0 * tp / (2.0 * tp + fp + fn_)
    } else {
        0.0
    };
    Some(Estimate {
        rows: p.len() as u64,
        accuracy,
        accuracy_band: [(accuracy - half).max(0.0), (accuracy + half).min(1.0)],
        f1,
        roc_auc: expected_roc_auc(p),
        confusion: [[tn, fp], [fn_, tp]],
    })
}

/// The ROC-AUC expected when each row is positive with probability p: the share of
/// (positive, negative) weight pairs ranked right, ties counting half.
fn expected_roc_auc(p: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = p.iter().map(|v| v.clamp(0.0, 1.0)).collect();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let total_pos: f64 = sorted.iter().sum();
    let total_neg: f64 = sorted.len() as f64 - total_pos;
    if total_pos <= 0.0 || total_neg <= 0.0 {
        return None;
    }
    // Walk ascending: each group's positive weight beats the negative weight below it.
    let (mut neg_below, mut area) = (0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted.get(i).copied().unwrap_or(0.0);
        let (mut pos, mut neg) = (0.0, 0.0);
        while sorted.get(i).is_some_and(|&x| x == v) {
            pos += v;
            neg += 1.0 - v;
            i += 1;
        }
        area += pos * (neg_below + neg / 2.0);
        neg_below += neg;
    }
    Some(area / (total_pos * total_neg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        // Rates 0, 1, 0, 1 at 0.1..0.4: the middle pair pools to 0.5.
        let c = Calibration::fit(&[(0.1, 0), (0.2, 1), (0.3, 0), (0.4, 1)]);
        assert_eq!(c.points, vec![(0.1, 0.0), (0.25, 0.5), (0.4, 1.0)]);
        assert_eq!(c.apply(0.0), 0.0);
        assert!((c.apply(0.175) - 0.25).abs() < 1e-12);
        assert_eq!(c.apply(0.9), 1.0);
        assert_eq!(Calibration::identity().apply(0.3), 0.3);
    }

    #[test]
    fn confident_right_predictions_estimate_high_accuracy() {
        let e = estimate(&[0.99, 0.98, 0.01, 0.02], 0.5).unwrap_or_else(|| unreachable!());
        assert!(e.accuracy > 0.98);
        assert!(e.accuracy_band[0] <= e.accuracy && e.accuracy <= e.accuracy_band[1]);
        // Unsure predictions estimate about a coin toss.
        let e = estimate(&[0.5, 0.5, 0.5, 0.5], 0.5).unwrap_or_else(|| unreachable!());
        assert!((e.accuracy - 0.5).abs() < 1e-12);
        assert_eq!(e.roc_auc, Some(0.5));
        assert!(estimate(&[], 0.5).is_none());
    }
}
