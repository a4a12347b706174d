//! Monitoring: `steward drift compare` (the ad-hoc report and its JSON contract) and the
//! `[monitoring]` configuration.

use std::process::{Command, Stdio};

use crate::helpers::steward_bin;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");

fn steward(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(steward_bin())
        .args(args)
        .envs(env.iter().copied())
        // No store is touched by a file-to-file comparison; keep any default one out of reach.
        .env("STEWARD__DATABASE__URL", "sqlite:///nonexistent/steward.db")
        .stdin(Stdio::null())
        .output()
        .expect("run steward");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn file(name: &str) -> String {
    format!("{DATA}/{name}")
}

fn compare_json(current: &str, extra: &[&str]) -> serde_json::Value {
    let reference = file("processed.cleveland.data");
    let current = file(current);
    let mut args = vec![
        "drift",
        "compare",
        "--reference",
        &reference,
        "--current",
        &current,
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = steward(&args, &[]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("JSON report")
}

/// The JSON contract, with Evidently 0.7.23's own figures for Cleveland against Hungary (the
/// fixture of bench/drift_golden.py): the same test per feature, the same scores within 1e-6,
/// the same verdicts and drift share.
#[test]
fn compare_reports_evidentlys_figures_in_the_json_contract() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/drift_golden.json"
        ))
        .expect("fixture"),
    )
    .expect("fixture JSON");
    let report = compare_json("processed.hungarian.data", &[]);
    assert_eq!(report["reference_rows"], 303);
    assert_eq!(report["current_rows"], 294);
    let pair = &golden["pairs"]["hungary"];
    assert!(
        (report["drift_share"].as_f64().unwrap() - pair["drift_share"].as_f64().unwrap()).abs()
            < 1e-12
    );
    assert_eq!(report["dataset_drift"], pair["dataset_drift"]);
    let features = report["features"].as_array().expect("features");
    assert_eq!(features.len(), 13);
    for f in features {
        let name = f["feature"].as_str().expect("name");
        let g = pair["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["feature"] == name)
            .expect("golden feature");
        for key in ["kind", "n_unique", "missing_reference", "missing_current"] {
            assert_eq!(f[key], g[key], "{name}: {key}");
        }
        assert_eq!(f["stattest"], g["default_stattest"], "{name}");
        let test = f["stattest"].as_str().unwrap();
        let theirs = g["scores"][test]["score"].as_f64().unwrap();
        assert!(
            (f["score"].as_f64().unwrap() - theirs).abs() < 1e-6,
            "{name}"
        );
        assert_eq!(f["drifted"], g["scores"][test]["drifted"], "{name}");
        let psi = g["scores"]["psi"]["score"].as_f64().unwrap();
        assert!(
            (f["psi"].as_f64().unwrap() - psi).abs() < 1e-6,
            "{name}: psi"
        );
        // The effect size: normalised Wasserstein for numeric, Jensen–Shannon for categorical.
        let effect = if f["kind"] == "numeric" {
            "wasserstein"
        } else {
            "jensenshannon"
        };
        let e = g["scores"][effect]["score"].as_f64().unwrap();
        assert!(
            (f["effect_size"].as_f64().unwrap() - e).abs() < 1e-6,
            "{name}: effect"
        );
        assert!(f["threshold"].as_f64().is_some());
    }
}

/// A forced test takes every feature it applies to (`psi` all of them; `ks` only the numeric
/// ones, the others keep Evidently's choice), with its own threshold or the one given.
#[test]
fn compare_forces_a_test_where_it_applies() {
    let report = compare_json("processed.va.data", &["--stattest", "psi"]);
    for f in report["features"].as_array().unwrap() {
        assert_eq!(f["stattest"], "psi", "{}", f["feature"]);
        assert_eq!(f["threshold"], 0.1);
        assert_eq!(f["score"], f["psi"]);
    }
    let report = compare_json(
        "processed.va.data",
        &["--stattest", "ks", "--threshold", "0.01"],
    );
    for f in report["features"].as_array().unwrap() {
        let expected = if f["kind"] == "numeric" {
            "ks"
        } else {
            "z_or_chisquare"
        };
        if expected == "ks" {
            assert_eq!(f["stattest"], "ks", "{}", f["feature"]);
        } else {
            assert!(
                f["stattest"] == "z" || f["stattest"] == "chisquare",
                "{}",
                f["feature"]
            );
        }
        assert_eq!(f["threshold"], 0.01);
    }
}

/// The same report from a file with a header row in another column order, and from Parquet-free
/// CSV with spaces: streaming reads what `read_table` reads.
#[test]
fn compare_reads_a_header_in_any_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(file("processed.switzerland.data")).expect("read");
    let names = [
        "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
        "slope", "ca", "thal", "num",
    ];
    // Reverse the columns and add a header naming them.
    let mut out = names.iter().rev().copied().collect::<Vec<_>>().join(",") + "\n";
    for line in text.lines() {
        let cells: Vec<&str> = line.split(',').collect();
        out += &cells
            .iter()
            .rev()
            .map(|c| format!(" {c} "))
            .collect::<Vec<_>>()
            .join(",");
        out += "\n";
    }
    let path = dir.path().join("swiss.csv");
    std::fs::write(&path, out).expect("write");
    let plain = compare_json("processed.switzerland.data", &[]);
    let reference = file("processed.cleveland.data");
    let (code, text, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            path.to_str().unwrap(),
            "--json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let reordered: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(plain, reordered);
}

#[test]
fn compare_refuses_bad_input_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = file("processed.cleveland.data");
    let current = file("processed.va.data");
    // An unknown file.
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            "/nonexistent/x.csv",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/x.csv"), "{err}");
    // Wrong columns: a header naming others.
    let wrong = dir.path().join("wrong.csv");
    std::fs::write(&wrong, "a,b,c\n1,2,3\n").expect("write");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            wrong.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("wrong.csv"), "{err}");
    // Wrong number of columns without a header.
    std::fs::write(&wrong, "1,2,3\n4,5,6\n").expect("write");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            wrong.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("line 1"), "{err}");
    // A cell that is not a number, named with its line and column.
    let mut text = std::fs::read_to_string(&current).expect("read");
    text = text.replacen("63,", "sixty-three,", 1);
    std::fs::write(&wrong, &text).expect("write");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            wrong.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("`age`") && err.contains("sixty-three"),
        "{err}"
    );
    // An empty side.
    let empty = dir.path().join("empty.csv");
    std::fs::write(&empty, "").expect("write");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("empty"), "{err}");
    // A header and no rows.
    std::fs::write(
        &empty,
        "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num\n",
    )
    .expect("write");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("no data rows"), "{err}");
    // An unknown stattest, a bad threshold, no reference: usage errors.
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            &current,
            "--stattest",
            "anderson",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown stattest"), "{err}");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            &current,
            "--threshold=0",
        ],
        &[],
    );
    assert_eq!(code, 2);
    assert!(err.contains("greater than 0"), "{err}");
    let (code, _, err) = steward(&["drift", "compare", "--current", &current], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--reference"), "{err}");
}

#[test]
fn monitoring_configuration_is_checked_with_the_key_named() {
    for (key, value, named) in [
        (
            "STEWARD__MONITORING__STATTEST",
            "anderson",
            "monitoring.stattest",
        ),
        ("STEWARD__MONITORING__MIN_ROWS", "0", "monitoring.min_rows"),
        (
            "STEWARD__MONITORING__DRIFT_SHARE",
            "1.5",
            "monitoring.drift_share",
        ),
        (
            "STEWARD__MONITORING__THRESHOLD",
            "-1",
            "monitoring.threshold",
        ),
        (
            "STEWARD__MONITORING__FEATURES__NOPE__THRESHOLD",
            "0.2",
            "monitoring.features.nope",
        ),
    ] {
        let (code, _, err) = steward(&["config"], &[(key, value)]);
        assert_eq!(code, 2, "{key}={value}");
        assert!(err.contains(named), "{key}={value}: {err}");
    }
    let (code, out, err) = steward(
        &["config"],
        &[("STEWARD__MONITORING__FEATURES__CHOL__STATTEST", "psi")],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"chol\""), "{out}");
}
