//! Golden tests: Steward's drift statistics against Evidently 0.7.23's own functions (SciPy
//! 1.17.1, NumPy 2.4, pandas 2.3 under it) on the UCI heart-disease files, and against SciPy's
//! `ks_2samp` in every regime. The values are in `tests/fixtures/drift_golden.json`, made by
//! `bench/drift_golden.py`; every one must agree within 1e-6.

use std::path::Path;

use serde_json::Value;

use super::drift::{Options, Side, compare};
use super::ks::ks_2samp;
use super::stattests::{Pair, StatTest};
use crate::config::Settings;
use crate::data::table::read_table;

const TOLERANCE: f64 = 1e-6;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden() -> Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/drift_golden.json"))
        .unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn side(file: &str, settings: &Settings) -> Side {
    let path = root().join("data/uci-heart-disease").join(file);
    let bytes = std::fs::read(&path).unwrap_or_default();
    let table = read_table(&bytes, file, &settings.dataset);
    assert!(table.is_ok(), "{file}: {:?}", table.err());
    let Ok(table) = table else { unreachable!() };
    Side::from_table(&table, &settings.dataset)
}

/// Within 1e-6, and for tiny values (p-values like 1e-171) within 1e-6 relative too, so a
/// p-value of 0 never passes for one of 1e-20.
fn close(ours: f64, theirs: f64) -> bool {
    if ours.is_infinite() || theirs.is_infinite() {
        return ours == theirs;
    }
    let diff = (ours - theirs).abs();
    diff <= TOLERANCE && (theirs.abs() >= 1e-3 || diff <= TOLERANCE * theirs.abs())
}

#[test]
fn every_stattest_equals_evidentlys_on_cleveland_against_each_hospital() {
    let golden = golden();
    assert!(
        golden["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("evidently 0.7.23, scipy 1.17.1")),
        "the fixture names its source: {}",
        golden["source"]
    );
    let settings = Settings::load(&root().join("config"), None);
    assert!(settings.is_ok(), "{:?}", settings.err());
    let Ok(settings) = settings else { return };
    let reference = side("processed.cleveland.data", &settings);
    let mut checked = 0;
    for (label, file) in [
        ("hungary", "processed.hungarian.data"),
        ("switzerland", "processed.switzerland.data"),
        ("va", "processed.va.data"),
    ] {
        let current = side(file, &settings);
        let pair_golden = &golden["pairs"][label];
        let report = compare(&reference, &current, &Options::default());
        let features = pair_golden["features"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(features.len(), 13, "{label}");
        for g in &features {
            let name = g["feature"].as_str().unwrap_or_default();
            let ours_ref = reference.features.iter().find(|f| f.name == name);
            let ours_cur = current.features.iter().find(|f| f.name == name);
            let (Some(r), Some(c)) = (ours_ref, ours_cur) else {
                panic!("{label}/{name}: no such feature in Steward's schema");
            };
            assert_eq!(
                (r.missing, c.missing),
                (
                    g["missing_reference"].as_u64().unwrap_or(u64::MAX),
                    g["missing_current"].as_u64().unwrap_or(u64::MAX)
                ),
                "{label}/{name}: missing counts"
            );
            let row = report.features.iter().find(|f| f.feature == name);
            if g["empty"].as_bool() == Some(true) {
                assert!(row.is_some_and(|f| f.skipped.is_some()), "{label}/{name}");
                continue;
            }
            let Some(pair) = Pair::new(&r.values, &c.values, r.numeric) else {
                panic!("{label}/{name}: a side is empty here but not in Evidently");
            };
            assert_eq!(
                pair.n_unique() as u64,
                g["n_unique"].as_u64().unwrap_or(0),
                "{label}/{name}: n_unique"
            );
            for test in StatTest::ALL {
                let theirs = g["scores"][test.as_str()]["score"].as_f64();
                let ours = pair.score(test);
                match (ours, theirs) {
                    (Some(o), Some(t)) => {
                        assert!(
                            close(o, t),
                            "{label}/{name}/{test}: ours {o}, Evidently {t}"
                        );
                        checked += 1;
                    }
                    (None, None) => {}
                    (o, t) => panic!("{label}/{name}/{test}: ours {o:?}, Evidently {t:?}"),
                }
            }
            // The test Evidently's preset picked, its score and verdict.
            let preset = &pair_golden["preset"][name];
            let Some(row) = row else {
                panic!("{label}/{name}: not in the report")
            };
            assert_eq!(
                row.stattest.map(StatTest::as_str),
                g["default_stattest"].as_str(),
                "{label}/{name}: default stattest"
            );
            let (Some(score), Some(theirs)) = (row.score, preset["score"].as_f64()) else {
                panic!("{label}/{name}: no score")
            };
            assert!(close(score, theirs), "{label}/{name}: preset score");
            assert_eq!(
                Some(row.drifted),
                preset["drifted"].as_bool(),
                "{label}/{name}: drifted"
            );
        }
        let share = pair_golden["drift_share"].as_f64().unwrap_or(f64::NAN);
        assert!(close(report.drift_share, share), "{label}: drift share");
        assert_eq!(
            Some(report.dataset_drift),
            pair_golden["dataset_drift"].as_bool(),
            "{label}"
        );
    }
    // 3 pairs × 13 features × the tests that apply (ks/wasserstein numeric, z two-valued).
    assert!(checked > 150, "only {checked} values compared");
}

fn seq(n: usize, a: usize, m: usize, shift: f64) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n)
        .map(|i| ((i * a) % m) as f64 / 100.0 + shift)
        .collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

#[test]
fn ks_equals_scipys_ks_2samp_in_every_regime() {
    let golden = golden();
    let cases = golden["ks_cases"].as_array().cloned().unwrap_or_default();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    for case in cases {
        let n1 = case["n1"].as_u64().unwrap_or(0) as usize;
        let n2 = case["n2"].as_u64().unwrap_or(0) as usize;
        let shift = case["shift"].as_f64().unwrap_or(f64::NAN);
        let x = seq(n1, 7919, 10007, 0.0);
        let y = seq(n2, 104_729, 10009, shift);
        let Some(r) = ks_2samp(&x, &y) else {
            panic!("{case}: no result")
        };
        let d = case["statistic"].as_f64().unwrap_or(f64::NAN);
        let p = case["pvalue"].as_f64().unwrap_or(f64::NAN);
        assert!(close(r.statistic, d), "{case}: statistic {}", r.statistic);
        assert!(close(r.pvalue, p), "{case}: p-value {} vs {p}", r.pvalue);
    }
}
