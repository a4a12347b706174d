//! Stratified k-fold cross-validation with a fixed seed: each class is shuffled on its own
//! and dealt round-robin into the folds, so every fold keeps the class balance. The pipeline
//! is fitted on each fold's training part only.
#![expect(
    clippy::indexing_slicing,
    reason = "fold and holdout splits index the label slice by positions drawn from its own range"
)]

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Test indices of each fold.
pub fn stratified_folds(labels: &[u32], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut folds = vec![Vec::new(); k.max(2)];
    let k = folds.len();
    let mut dealt = 0;
    for class in [0_u32, 1] {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        for i in members {
            folds[dealt % k].push(i);
            dealt += 1;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    folds
}

/// Mean and sample standard deviation over the folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

pub fn spread(values: impl Iterator<Item = f64>) -> Spread {
    let v: Vec<f64> = values.collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    Spread {
        mean,
        std: var.sqrt(),
    }
}

/// Splits off a stratified share of the rows as the holdout: each class is shuffled on its own
/// (seeded) and its first `share` part held out. Returns (training rows, holdout rows), sorted.
pub fn stratified_holdout(labels: &[u32], share: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4011_d000_u64);
    let mut train = Vec::new();
    let mut holdout = Vec::new();
    for class in [0_u32, 1] {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        members.shuffle(&mut rng);
        let n = (members.len() as f64 * share).round() as usize;
        holdout.extend_from_slice(&members[..n]);
        train.extend_from_slice(&members[n..]);
    }
    train.sort_unstable();
    holdout.sort_unstable();
    (train, holdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_disjoint_and_repeatable() {
        let labels: Vec<u32> = (0..103).map(|i| u32::from(i % 3 == 0)).collect();
        let folds = stratified_folds(&labels, 5, 42);
        assert_eq!(folds, stratified_folds(&labels, 5, 42));
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        for f in &folds {
            let positives = f.iter().filter(|&&i| labels[i] == 1).count();
            assert!(
                (6..=7).contains(&positives),
                "{positives} positives in a fold"
            );
        }
        let (train, holdout) = stratified_holdout(&labels, 0.2, 42);
        assert_eq!(holdout.len(), 21);
        assert_eq!(train.len() + holdout.len(), 103);
        assert_eq!(holdout.iter().filter(|&&i| labels[i] == 1).count(), 7);
        assert_eq!((train, holdout), stratified_holdout(&labels, 0.2, 42));
    }
}
