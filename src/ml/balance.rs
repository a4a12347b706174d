//! Class imbalance, applied to training rows only (never to validation or holdout rows):
//!
//! - `class_weights`: each row weighs n / (2 · rows of its class), scikit-learn's "balanced".
//!   XGBoost takes the weights as instance weights; the forest draws its bootstrap samples in
//!   proportion to them; logistic regression (no weights in smartcore) sees weighted rows
//!   replicated in proportion to their weight.
//! - `smote`: synthetic minority rows, each on the segment between a minority row and one of
//!   its k nearest minority neighbours in the transformed feature space (Chawla et al. 2002),
//!   until the classes are even.
#![expect(
    clippy::indexing_slicing,
    reason = "SMOTE indexes rows by positions drawn from the same matrix and its neighbour lists"
)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Imbalance {
    #[default]
    None,
    ClassWeights,
    Smote,
}

impl Imbalance {
    pub fn as_str(self) -> &'static str {
        match self {
            Imbalance::None => "none",
            Imbalance::ClassWeights => "class_weights",
            Imbalance::Smote => "smote",
        }
    }
}

/// Neighbours SMOTE interpolates towards.
const SMOTE_K: usize = 5;
/// SMOTE's neighbour search is exact and quadratic in the minority rows; beyond this many,
/// class weights are the practical option.
const SMOTE_MAX_MINORITY: usize = 20_000;

pub fn class_weights(labels: &[u32]) -> Vec<f64> {
    let n = labels.len() as f64;
    let positives = labels.iter().filter(|&&y| y == 1).count() as f64;
    let negatives = n - positives;
    labels
        .iter()
        .map(|&y| {
            let count = if y == 1 { positives } else { negatives };
            if count > 0.0 { n / (2.0 * count) } else { 1.0 }
        })
        .collect()
}

/// Rows repeated in proportion to their weight: with the smallest weight as one copy, a row of
/// weight w appears ⌊w⌋ times plus once more with probability w − ⌊w⌋.
pub fn replicate(
    x: &[f64],
    y: &[u32],
    width: usize,
    weights: &[f64],
    seed: u64,
) -> (Vec<f64>, Vec<u32>) {
    let min = weights
        .iter()
        .copied()
        .filter(|w| *w > 0.0)
        .fold(f64::INFINITY, f64::min);
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut out_x = Vec::with_capacity(x.len());
    let mut out_y = Vec::with_capacity(y.len());
    for (r, &w) in weights.iter().enumerate() {
        let copies = if min.is_finite() { w / min } else { 1.0 };
        let mut n = copies.floor() as usize;
        if rng.random::<f64>() < copies - copies.floor() {
            n += 1;
        }
        for _ in 0..n {
            out_x.extend_from_slice(&x[r * width..(r + 1) * width]);
            out_y.push(y[r]);
        }
    }
    (out_x, out_y)
}

/// The training rows with synthetic minority rows appended until both classes are even.
pub fn smote(
    x: &[f64],
    y: &[u32],
    width: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<u32>), String> {
    let positives = y.iter().filter(|&&v| v == 1).count();
    let negatives = y.len() - positives;
    let (minority_class, needed) = if positives < negatives {
        (1, negatives - positives)
    } else {
        (0, positives - negatives)
    };
    let minority: Vec<usize> = (0..y.len()).filter(|&r| y[r] == minority_class).collect();
    if needed == 0 || minority.len() < 2 {
        return Ok((x.to_vec(), y.to_vec()));
    }
    if minority.len() > SMOTE_MAX_MINORITY {
        return Err(format!(
            "SMOTE searches neighbours exactly and takes at most {SMOTE_MAX_MINORITY} minority rows \
             ({} here); use training.imbalance = \"class_weights\"",
            minority.len()
        ));
    }
    let row = |r: usize| &x[r * width..(r + 1) * width];
    let distance = |a: usize, b: usize| -> f64 {
        row(a)
            .iter()
            .zip(row(b))
            .map(|(p, q)| (p - q) * (p - q))
            .sum()
    };
    let k = SMOTE_K.min(minority.len() - 1);
    let neighbours: Vec<Vec<usize>> = minority
        .iter()
        .map(|&a| {
            let mut others: Vec<(f64, usize)> = minority
                .iter()
                .filter(|&&b| b != a)
                .map(|&b| (distance(a, b), b))
                .collect();
            others.sort_by(|p, q| p.0.total_cmp(&q.0).then(p.1.cmp(&q.1)));
            others.into_iter().take(k).map(|(_, b)| b).collect()
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5307e);
    let mut out_x = x.to_vec();
    let mut out_y = y.to_vec();
    for _ in 0..needed {
        let i = rng.random_range(0..minority.len());
        let j = neighbours[i][rng.random_range(0..neighbours[i].len())];
        let gap: f64 = rng.random();
        let (a, b) = (row(minority[i]), row(j));
        out_x.extend(a.iter().zip(b).map(|(p, q)| p + gap * (q - p)));
        out_y.push(minority_class);
    }
    Ok((out_x, out_y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_balance_the_classes() {
        let y = [1, 0, 0, 0];
        let w = class_weights(&y);
        assert_eq!(w, [2.0, 2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0]);
        let x = [1.0, 2.0, 3.0, 4.0];
        let (_, ry) = replicate(&x, &y, 1, &w, 1);
        assert_eq!(ry.iter().filter(|&&v| v == 1).count(), 3);
        assert_eq!(ry.iter().filter(|&&v| v == 0).count(), 3);
    }

    #[test]
    fn smote_evens_the_classes_inside_the_minority_hull() {
        let x = [
            0.0, 0.0, 1.0, 1.0, 0.5, 0.0, 9.0, 9.0, 8.0, 9.0, 9.0, 8.0, 8.0, 8.0, 7.0, 7.0,
        ];
        let y = [1, 1, 1, 0, 0, 0, 0, 0];
        let (sx, sy) = smote(&x, &y, 2, 7).expect("smote");
        assert_eq!(sy.len(), 10);
        assert_eq!(sy.iter().filter(|&&v| v == 1).count(), 5);
        for r in 8..10 {
            let (a, b) = (sx[r * 2], sx[r * 2 + 1]);
            assert!(
                (0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b),
                "{a},{b}"
            );
        }
    }
}
