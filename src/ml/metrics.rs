//! Binary classification metrics, defined as scikit-learn defines them: ROC-AUC by the rank
//! statistic (ties averaged), PR-AUC as average precision, log-loss with probabilities clipped
//! to [1e-15, 1 - 1e-15], and the Brier score.
#![expect(
    clippy::indexing_slicing,
    reason = "metric kernels index rows by positions taken from the same slices (order, ranks, bins sized up front)"
)]

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
    /// [[true negatives, false positives], [false negatives, true positives]]
    pub confusion: [[u64; 2]; 2],
    pub threshold: f64,
}

pub fn evaluate(labels: &[u32], probabilities: &[f64], threshold: f64) -> Metrics {
    let confusion = confusion(labels, probabilities, threshold);
    let [[tn, fp], [fn_, tp]] = confusion;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    Metrics {
        accuracy: ratio(tp + tn, tp + tn + fp + fn_),
        precision,
        recall,
        f1,
        roc_auc: roc_auc(labels, probabilities),
        pr_auc: average_precision(labels, probabilities),
        log_loss: log_loss(labels, probabilities),
        brier: brier(labels, probabilities),
        confusion,
        threshold,
    }
}

pub fn confusion(labels: &[u32], probabilities: &[f64], threshold: f64) -> [[u64; 2]; 2] {
    let mut m = [[0_u64; 2]; 2];
    for (&y, &p) in labels.iter().zip(probabilities) {
        let predicted = usize::from(p >= threshold);
        m[usize::from(y == 1)][predicted] += 1;
    }
    m
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting half (Mann-Whitney U with average ranks).
pub fn roc_auc(labels: &[u32], scores: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&y| y == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return 0.5;
    }
    let rank_sum: f64 = labels
        .iter()
        .zip(&ranks)
        .filter(|(y, _)| **y == 1)
        .map(|(_, r)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over the distinct score thresholds, highest first.
pub fn average_precision(labels: &[u32], scores: &[f64]) -> f64 {
    let positives = labels.iter().filter(|&&y| y == 1).count() as f64;
    if positives == 0.0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut ap, mut last_recall) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] == 1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let recall = tp / positives;
        ap += (recall - last_recall) * tp / (tp + fp);
        last_recall = recall;
    }
    ap
}

pub fn log_loss(labels: &[u32], probabilities: &[f64]) -> f64 {
    let eps = 1e-15;
    let n = labels.len().max(1) as f64;
    -labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| {
            let p = p.clamp(eps, 1.0 - eps);
            if y == 1 { p.ln() } else { (1.0 - p).ln() }
        })
        .sum::<f64>()
        / n
}

pub fn brier(labels: &[u32], probabilities: &[f64]) -> f64 {
    let n = labels.len().max(1) as f64;
    labels
        .iter()
        .zip(probabilities)
        .map(|(&y, &p)| (p - f64::from(y)).powi(2))
        .sum::<f64>()
        / n
}

/// The threshold that maximises F1 over the observed scores, and that F1. One sweep over the
/// scores from the highest down (predicting positive at or above each distinct score); ties in
/// F1 go to the higher threshold.
pub fn f1_optimal_threshold(labels: &[u32], scores: &[f64]) -> (f64, f64) {
    let positives = labels.iter().filter(|&&y| y == 1).count() as f64;
    let mut best = (0.5, -1.0);
    for (t, tp, fp) in sweep(labels, scores) {
        let fn_ = positives - tp;
        let f1 = if tp == 0.0 {
            0.0
        } else {
            2.0 * tp / (2.0 * tp + fp + fn_)
        };
        if f1 > best.1 {
            best = (t, f1);
        }
    }
    best
}

/// (threshold, true positives, false positives) at each distinct score, highest first.
fn sweep(labels: &[u32], scores: &[f64]) -> Vec<(f64, f64, f64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] == 1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        out.push((s, tp, fp));
    }
    out
}

/// A point of the ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub fpr: f64,
    pub tpr: f64,
    pub threshold: f64,
}

/// The ROC curve from (0, 0) to (1, 1), thinned to at most `max_points` points.
pub fn roc_curve(labels: &[u32], scores: &[f64], max_points: usize) -> Vec<RocPoint> {
    let positives = labels.iter().filter(|&&y| y == 1).count().max(1) as f64;
    let negatives = labels.iter().filter(|&&y| y != 1).count().max(1) as f64;
    let mut points = vec![RocPoint {
        fpr: 0.0,
        tpr: 0.0,
        threshold: f64::INFINITY,
    }];
    points.extend(
        sweep(labels, scores)
            .into_iter()
            .map(|(t, tp, fp)| RocPoint {
                fpr: fp / negatives,
                tpr: tp / positives,
                threshold: t,
            }),
    );
    let max_points = max_points.max(2);
    if points.len() > max_points {
        let step = (points.len() - 1) as f64 / (max_points - 1) as f64;
        points = (0..max_points)
            .map(|i| points[((i as f64 * step).round() as usize).min(points.len() - 1)])
            .collect();
    }
    // JSON has no infinity: the first point's threshold is shown as 1.
    points[0].threshold = 1.0;
    points
}

/// One bin of a calibration (reliability) curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub mean_predicted: f64,
    pub fraction_positive: f64,
    pub count: u64,
}

/// Mean predicted probability against the observed positive rate in `bins` equal-width bins
/// (empty bins left out), as scikit-learn's `calibration_curve(strategy="uniform")`.
pub fn calibration_curve(
    labels: &[u32],
    probabilities: &[f64],
    bins: usize,
) -> Vec<CalibrationBin> {
    let bins = bins.max(1);
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0_u64; bins];
    for (&y, &p) in labels.iter().zip(probabilities) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += f64::from(y);
        count[b] += 1;
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| CalibrationBin {
            mean_predicted: sum_p[b] / count[b] as f64,
            fraction_positive: sum_y[b] / count[b] as f64,
            count: count[b],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values computed with scikit-learn 1.5.2 (roc_auc_score,
    // average_precision_score, log_loss, brier_score_loss) on the same inputs.
    const Y: [u32; 8] = [0, 0, 1, 1, 0, 1, 1, 0];
    const P: [f64; 8] = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9, 0.6, 0.2];

    #[test]
    fn matches_scikit_learn_on_a_small_case() {
        let m = evaluate(&Y, &P, 0.5);
        assert!((m.roc_auc - 0.875).abs() < 1e-12, "{}", m.roc_auc);
        assert!(
            (m.pr_auc - 0.9166666666666666).abs() < 1e-12,
            "{}",
            m.pr_auc
        );
        assert!((m.brier - 0.12531250000000002).abs() < 1e-12, "{}", m.brier);
        assert!(
            (m.log_loss - 0.4049133912175903).abs() < 1e-12,
            "{}",
            m.log_loss
        );
        assert_eq!(m.confusion, [[4, 0], [1, 3]]);
        assert!((m.accuracy - 0.875).abs() < 1e-12);
        assert!((m.f1 - 6.0 / 7.0).abs() < 1e-12);
    }

    #[test]
    fn the_f1_optimal_threshold_is_found() {
        let (t, f1) = f1_optimal_threshold(&Y, &P);
        assert_eq!(t, 0.6);
        assert!((f1 - 6.0 / 7.0).abs() < 1e-12, "{f1}");
    }

    // scikit-learn 1.5.2: roc_curve(Y, P, drop_intermediate=False) gives
    // fpr [0, 0, 0, 0, .5, .5, .75, 1], tpr [0, .25, .5, .75, .75, 1, 1, 1] (0.4 is tied),
    // and calibration_curve(Y, P, n_bins=2) gives prob_pred [0.29, 0.766..], prob_true [.2, 1].
    #[test]
    fn curves_match_scikit_learn() {
        let roc = roc_curve(&Y, &P, 100);
        let fpr: Vec<f64> = roc.iter().map(|p| p.fpr).collect();
        let tpr: Vec<f64> = roc.iter().map(|p| p.tpr).collect();
        assert_eq!(fpr, [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.75, 1.0]);
        assert_eq!(tpr, [0.0, 0.25, 0.5, 0.75, 0.75, 1.0, 1.0, 1.0]);
        let cal = calibration_curve(&Y, &P, 2);
        assert_eq!(cal.len(), 2);
        assert!((cal[0].mean_predicted - 0.29).abs() < 1e-12);
        assert!((cal[0].fraction_positive - 0.2).abs() < 1e-12);
        assert!((cal[1].mean_predicted - 2.3 / 3.0).abs() < 1e-12);
        assert_eq!(cal[1].fraction_positive, 1.0);
    }
}
