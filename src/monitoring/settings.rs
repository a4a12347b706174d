//! `[monitoring]` in the configuration: when checks run, their window, the tests and thresholds,
//! and what counts as decay. Checked here (the config module knows no statistics).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::drift::{FeatureOptions, Options};
use super::stattests::StatTest;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringSettings {
    /// Run checks on the scheduler.
    pub enabled: bool,
    /// Seconds between scheduled checks.
    pub interval_secs: u64,
    /// The window: at most this many of the newest logged predictions of the Production version.
    pub window_rows: u64,
    /// ... and only those of the last this many hours (0: no time limit).
    pub window_hours: u64,
    /// A window with fewer rows is stored as skipped and raises nothing.
    pub min_rows: u64,
    /// Dataset drift when the share of drifted features is ≥ this (0..=1).
    pub drift_share: f64,
    /// Performance decay when live accuracy, F1 or ROC-AUC falls more than this below the
    /// version's holdout figure (absolute, 0..=1).
    pub max_metric_drop: f64,
    /// Live performance and target drift need at least this many labelled rows in the window.
    pub min_labels: u64,
    /// A data-quality failure when a feature's missing share in the window is above this.
    pub max_missing_ratio: f64,
    /// A data-quality failure when a feature's share of values outside the reference's range
    /// (or of categories the reference never had) is above this.
    pub max_out_of_range_ratio: f64,
    /// Stored checks kept (older ones are deleted with their rows and alerts).
    pub keep_checks: u64,
    /// "auto" (Evidently's default choice per feature) or a stattest forced on every feature it
    /// applies to: ks, chisquare, z, wasserstein, jensenshannon, psi.
    pub stattest: String,
    /// One threshold for every feature (default: each test's own, 0.05 for p-values, 0.1 for
    /// distances).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Per feature: `[monitoring.features.<name>]` with `stattest` and/or `threshold`.
    #[serde(default)]
    pub features: BTreeMap<String, FeatureOptions>,
}

impl MonitoringSettings {
    /// The forced test, if any (`stattest` other than "auto").
    pub fn forced_stattest(&self) -> Option<StatTest> {
        StatTest::parse(&self.stattest).ok()
    }

    /// The drift options these settings give.
    pub fn options(&self) -> Options {
        Options {
            stattest: self.forced_stattest(),
            threshold: self.threshold,
            features: self.features.clone(),
            drift_share: self.drift_share,
        }
    }

    /// Checks what serde cannot; `features` are the schema's features with whether each is
    /// numeric and how many categories it lists (0 for numeric). Returns the key and the
    /// message.
    pub fn check(&self, features: &[(String, bool, usize)]) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
        if self.interval_secs == 0 {
            return bad("monitoring.interval_secs", "must be greater than 0");
        }
        if self.window_rows == 0 || self.window_rows > 10_000_000 {
            return bad("monitoring.window_rows", "must be between 1 and 10000000");
        }
        if self.min_rows == 0 || self.min_rows > self.window_rows {
            return bad(
                "monitoring.min_rows",
                "must be between 1 and monitoring.window_rows",
            );
        }
        if !(self.drift_share > 0.0 && self.drift_share <= 1.0) {
            return bad("monitoring.drift_share", "must be in (0, 1]");
        }
        if self.min_labels == 0 {
            return bad("monitoring.min_labels", "must be greater than 0");
        }
        if self.keep_checks == 0 || self.keep_checks > 1_000_000 {
            return bad("monitoring.keep_checks", "must be between 1 and 1000000");
        }
        if self.window_hours > 87_600 {
            return bad(
                "monitoring.window_hours",
                "must be at most 87600 (ten years; 0 for no limit)",
            );
        }
        if self.interval_secs > 31_536_000 {
            return bad(
                "monitoring.interval_secs",
                "must be at most 31536000 (a year)",
            );
        }
        for (key, v) in [
            ("monitoring.max_missing_ratio", self.max_missing_ratio),
            (
                "monitoring.max_out_of_range_ratio",
                self.max_out_of_range_ratio,
            ),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, "must be between 0 and 1");
            }
        }
        if !(0.0..=1.0).contains(&self.max_metric_drop) {
            return bad("monitoring.max_metric_drop", "must be between 0 and 1");
        }
        if self.stattest != "auto" {
            if let Err(e) = StatTest::parse(&self.stattest) {
                return bad("monitoring.stattest", &format!("{e}, or auto"));
            }
        }
        if let Some(t) = self.threshold {
            check_threshold_for(self.forced_stattest(), t)
                .or_else(|m| bad("monitoring.threshold", &m))?;
        }
        for (name, own) in &self.features {
            let key = format!("monitoring.features.{name}");
            let Some(&(_, numeric, categories)) = features.iter().find(|(n, _, _)| n == name)
            else {
                return bad(&key, "is not a feature of the dataset schema");
            };
            if let Some(test) = own.stattest {
                // z needs two values, which only the data tells; the kind is known now.
                if matches!(test, StatTest::Ks | StatTest::Wasserstein) && !numeric {
                    return bad(
                        &format!("{key}.stattest"),
                        &format!("{test} applies to numeric features; {name} is categorical"),
                    );
                }
                if test == StatTest::Z && categories > 2 {
                    return bad(
                        &format!("{key}.stattest"),
                        &format!(
                            "z applies to two-valued features; {name} has {categories} categories"
                        ),
                    );
                }
            }
            if let Some(t) = own.threshold {
                // The forced test counts only where it can run on this feature's kind.
                let forced = self
                    .forced_stattest()
                    .filter(|f| numeric || !matches!(f, StatTest::Ks | StatTest::Wasserstein));
                check_threshold_for(own.stattest.or(forced), t)
                    .or_else(|m| bad(&format!("{key}.threshold"), &m))?;
            }
        }
        Ok(())
    }
}

/// A threshold must be a finite number above 0 (a p-value threshold above 1 would flag
/// everything; a distance threshold may be larger).
pub fn check_threshold(t: f64) -> Result<(), String> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err("must be a finite number greater than 0".into())
    }
}

/// A threshold for `test`: at most 1 unless the test is a distance (`wasserstein`,
/// `jensenshannon`, `psi`); with no test forced, the defaults include p-value tests.
pub fn check_threshold_for(test: Option<StatTest>, t: f64) -> Result<(), String> {
    check_threshold(t)?;
    if t > 1.0 && test.is_none_or(StatTest::is_p_value) {
        return Err(
            "must be at most 1 unless a distance test (wasserstein, jensenshannon, psi) is forced"
                .into(),
        );
    }
    Ok(())
}
