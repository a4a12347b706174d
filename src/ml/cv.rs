//! Stratified k-fold cross-validation with a fixed seed: each class is shuffled on its own
//! and dealt round-robin into the folds, so every fold keeps the class balance. The pipeline
//! is fitted on each fold's training part only.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::features::{Examples, Pipeline};
use super::metrics::{self, Metrics};
use super::models::{LrParams, Model, ModelKind, RfParams};

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

fn spread(values: impl Iterator<Item = f64>) -> Spread {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    pub model: ModelKind,
    pub folds: Vec<Metrics>,
    pub accuracy: Spread,
    pub f1: Spread,
    pub roc_auc: Spread,
    pub pr_auc: Spread,
    pub log_loss: Spread,
    pub brier: Spread,
    /// The F1-optimal threshold over the pooled out-of-fold probabilities, and its F1.
    pub f1_optimal_threshold: (f64, f64),
}

pub struct CvSettings<'a> {
    pub folds: usize,
    pub seed: u64,
    pub threshold: f64,
    pub lr: &'a LrParams,
    pub rf: &'a RfParams,
}

pub fn cross_validate(
    examples: &Examples,
    kind: ModelKind,
    cv: &CvSettings<'_>,
) -> Result<CvReport, String> {
    let folds = stratified_folds(&examples.labels, cv.folds, cv.seed);
    let mut fold_metrics = Vec::new();
    let mut pooled_labels = Vec::new();
    let mut pooled_scores = Vec::new();
    for (i, test) in folds.iter().enumerate() {
        let train: Vec<usize> = (0..examples.labels.len())
            .filter(|r| test.binary_search(r).is_err())
            .collect();
        let train_set = examples.subset(&train);
        let test_set = examples.subset(test);
        let pipeline = Pipeline::fit(&train_set);
        let (x_train, _, width) = pipeline.transform(&train_set);
        let model = Model::fit(
            kind,
            cv.lr,
            cv.rf,
            &x_train,
            &train_set.labels,
            width,
            cv.seed.wrapping_add(i as u64),
        )?;
        let (x_test, rows, _) = pipeline.transform(&test_set);
        let scores = model.predict_proba(&x_test, rows, width)?;
        fold_metrics.push(metrics::evaluate(&test_set.labels, &scores, cv.threshold));
        pooled_labels.extend_from_slice(&test_set.labels);
        pooled_scores.extend(scores);
    }
    let pick = |f: fn(&Metrics) -> f64| spread(fold_metrics.iter().map(f));
    Ok(CvReport {
        model: kind,
        accuracy: pick(|m| m.accuracy),
        f1: pick(|m| m.f1),
        roc_auc: pick(|m| m.roc_auc),
        pr_auc: pick(|m| m.pr_auc),
        log_loss: pick(|m| m.log_loss),
        brier: pick(|m| m.brier),
        f1_optimal_threshold: metrics::f1_optimal_threshold(&pooled_labels, &pooled_scores),
        folds: fold_metrics,
    })
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
    }
}
