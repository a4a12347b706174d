//! Performance without labels: the idea of NannyML's confidence-based performance estimation
//! (CBPE; Evidently has none). The model's own probability p decides each row's class (p ≥
//! threshold) and ranks the rows; its calibrated value q is the chance the row is positive. A row
//! predicted positive is a true positive with chance q and a false positive with 1 − q; a row
//! predicted negative is a false negative with q and a true negative with 1 − q. Summing gives the
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

    /// Fits the map on (probability, label) pairs as scikit-learn's `IsotonicRegression`
    /// does: labels averaged over equal probabilities, pool adjacent violators (weighted by
    /// those counts), then the fitted points kept at the ends of each flat run, so the map is
    /// flat within a run and linear between runs.
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
        // Unique x with the mean label and the count.
        let mut unique: Vec<(f64, f64, f64)> = Vec::new();
        for (x, y) in &sorted {
            match unique.last_mut() {
                Some((ux, sy, n)) if *ux == *x => {
                    *sy += y;
                    *n += 1.0;
                }
                _ => unique.push((*x, *y, 1.0)),
            }
        }
        // Blocks of (sum of y, weight, how many unique x), merged while a block's mean falls
        // below the one before it.
        let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
        for (_, sy, n) in &unique {
            blocks.push((*sy, *n, 1));
            while blocks.len() >= 2 {
                let k = blocks.len();
                let (Some(&last), Some(&prev)) = (blocks.get(k - 1), blocks.get(k - 2)) else {
                    break;
                };
                if prev.0 / prev.1 <= last.0 / last.1 {
                    break;
                }
                blocks.truncate(k - 2);
                blocks.push((prev.0 + last.0, prev.1 + last.1, prev.2 + last.2));
            }
        }
        let fitted: Vec<(f64, f64)> = unique
            .iter()
            .map(|(x, _, _)| *x)
            .zip(
                blocks
                    .iter()
                    .flat_map(|(sy, n, len)| std::iter::repeat_n(sy / n, *len)),
            )
            .collect();
        // Keep the first and last point and every point whose value differs from a neighbour.
        let points = fitted
            .iter()
            .enumerate()
            .filter(|(i, (_, y))| {
                let prev = i.checked_sub(1).and_then(|p| fitted.get(p)).map(|p| p.1);
                let next = fitted.get(i + 1).map(|n| n.1);
                match (prev, next) {
                    (Some(a), Some(b)) => a != *y || b != *y,
                    _ => true,
                }
            })
            .map(|(_, p)| *p)
            .collect();
        Self {
            points,
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

/// CBPE over the window's rows, each as (p, q): `p` the model's own probability (it decides
/// the predicted class, p ≥ `threshold`, and ranks the rows) and `q` its calibrated value (the
/// chance that the row is positive). `None` for no rows.
pub fn estimate(rows: &[(f64, f64)], threshold: f64) -> Option<Estimate> {
    if rows.is_empty() {
        return None;
    }
    let (mut tp, mut fp, mut tn, mut fn_, mut var) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(p, q) in rows {
        let q = q.clamp(0.0, 1.0);
        let correct = if p >= threshold {
            tp += q;
            fp += 1.0 - q;
            q
        } else {
            fn_ += q;
            tn += 1.0 - q;
            1.0 - q
        };
        var += correct * (1.0 - correct);
    }
    let n = rows.len() as f64;
    let accuracy = (tp + tn) / n;
    let half = 1.96 * var.sqrt() / n;
    let f1 = if 2.0 * tp + fp + fn_ > 0.0 {
        2.0 * tp / (2.0 * tp + fp + fn_)
    } else {
        0.0
    };
    Some(Estimate {
        rows: rows.len() as u64,
        accuracy,
        accuracy_band: [(accuracy - half).max(0.0), (accuracy + half).min(1.0)],
        f1,
        roc_auc: expected_roc_auc(rows),
        confusion: [[tn, fp], [fn_, tp]],
    })
}

/// The ROC-AUC expected when the rows are ranked by `p` and each is positive with chance `q`:
/// the share of (positive, negative) weight pairs ranked right, ties in `p` counting half.
fn expected_roc_auc(rows: &[(f64, f64)]) -> Option<f64> {
    let mut sorted: Vec<(f64, f64)> = rows.iter().map(|&(p, q)| (p, q.clamp(0.0, 1.0))).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total_pos: f64 = sorted.iter().map(|(_, q)| q).sum();
    let total_neg: f64 = sorted.len() as f64 - total_pos;
    if total_pos <= 0.0 || total_neg <= 0.0 {
        return None;
    }
    // Walk ascending by p: each group's positive weight beats the negative weight below it.
    let (mut neg_below, mut area) = (0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let v = sorted.get(i).map_or(0.0, |r| r.0);
        let (mut pos, mut neg) = (0.0, 0.0);
        while let Some(&(p, q)) = sorted.get(i).filter(|r| r.0 == v) {
            let _ = p;
            pos += q;
            neg += 1.0 - q;
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
    fn isotonic_matches_scikit_learn() {
        // scikit-learn 1.x: IsotonicRegression(out_of_bounds="clip").fit([.1,.2,.3,.4],[0,1,0,1])
        // .predict([0, .175, .25, .9]) == [0, .375, .5, 1].
        let c = Calibration::fit(&[(0.1, 0), (0.2, 1), (0.3, 0), (0.4, 1)]);
        assert_eq!(
            c.points,
            vec![(0.1, 0.0), (0.2, 0.5), (0.3, 0.5), (0.4, 1.0)]
        );
        assert_eq!(c.apply(0.0), 0.0);
        assert!((c.apply(0.175) - 0.375).abs() < 1e-12);
        assert!((c.apply(0.25) - 0.5).abs() < 1e-12);
        assert_eq!(c.apply(0.9), 1.0);
        // Equal probabilities are averaged first, whatever their order.
        let a = Calibration::fit(&[(0.2, 1), (0.2, 0), (0.6, 1)]);
        let b = Calibration::fit(&[(0.2, 0), (0.6, 1), (0.2, 1)]);
        assert_eq!(a, b);
        assert!((a.apply(0.2) - 0.5).abs() < 1e-12);
        assert_eq!(Calibration::identity().apply(0.3), 0.3);
    }

    #[test]
    fn confident_right_predictions_estimate_high_accuracy() {
        let rows: Vec<(f64, f64)> = [0.99, 0.98, 0.01, 0.02].iter().map(|&p| (p, p)).collect();
        let e = estimate(&rows, 0.5).unwrap_or_else(|| unreachable!());
        assert!(e.accuracy > 0.98);
        assert!(e.accuracy_band[0] <= e.accuracy && e.accuracy <= e.accuracy_band[1]);
        let e = estimate(&[(0.5, 0.5); 4], 0.5).unwrap_or_else(|| unreachable!());
        assert!((e.accuracy - 0.5).abs() < 1e-12);
        assert_eq!(e.roc_auc, Some(0.5));
        assert!(estimate(&[], 0.5).is_none());
    }

    /// The class is the model's (raw p against its threshold); calibration only says how often
    /// that class is right. A raw 0.45 under a 0.5 threshold is a negative prediction: when its
    /// calibrated chance of being positive is 0.8, it is right 20% of the time, not 80%.
    #[test]
    fn the_models_own_decision_is_scored_with_the_calibrated_chance() {
        let e = estimate(&[(0.45, 0.8); 10], 0.5).unwrap_or_else(|| unreachable!());
        assert!((e.accuracy - 0.2).abs() < 1e-12, "{}", e.accuracy);
        // With a threshold of 0.4 the same rows are positive predictions, right 80% of the time.
        let e = estimate(&[(0.45, 0.8); 10], 0.4).unwrap_or_else(|| unreachable!());
        assert!((e.accuracy - 0.8).abs() < 1e-12, "{}", e.accuracy);
    }
}
