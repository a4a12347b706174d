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
            assert_eq!(f["threshold"], 0.01, "the threshold given for ks");
        } else {
            assert!(
                f["stattest"] == "z" || f["stattest"] == "chisquare",
                "{}",
                f["feature"]
            );
            // The threshold was given for ks: the fallback test keeps its own.
            assert_eq!(f["threshold"], 0.05, "{}", f["feature"]);
        }
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

mod checks {
    //! Monitoring checks over the prediction log, with the Cleveland production model (LR,
    //! trained on the first start) and the other hospitals replayed through `steward simulate`.

    use serde_json::{Value, json};

    use crate::helpers::{TestApp, client, run_check, simulate, spawn_app_with};

    const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");

    async fn app_with_model(bootstrap: Option<String>) -> TestApp {
        spawn_app_with(|s| {
            s.training.on_first_start = true;
            s.training.models = vec![steward::ml::models::ModelKind::Lr];
            if let Some(file) = bootstrap {
                s.dataset.bootstrap_file = file;
            }
        })
        .await
    }

    fn drifted(report: &Value) -> Vec<String> {
        report["features"]
            .as_array()
            .expect("features")
            .iter()
            .filter(|f| f["drifted"] == true)
            .map(|f| f["feature"].as_str().expect("name").to_owned())
            .collect()
    }

    fn alert_types(report: &Value) -> Vec<String> {
        report["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["type"].as_str().expect("type").to_owned())
            .collect()
    }

    /// A window below `monitoring.min_rows` is stored as skipped and raises nothing; a held-out
    /// third of Cleveland (every third row, the model trained on the rest) is no dataset drift.
    #[tokio::test]
    async fn held_out_cleveland_is_not_drift_and_a_small_window_is_skipped() {
        let files = tempfile::tempdir().expect("tempdir");
        let text =
            std::fs::read_to_string(format!("{UCI}/processed.cleveland.data")).expect("cleveland");
        let (mut train, mut held) = (String::new(), String::new());
        for (i, line) in text.lines().enumerate() {
            let to = if i % 3 == 0 { &mut held } else { &mut train };
            to.push_str(line);
            to.push('\n');
        }
        let train_path = files.path().join("train.csv");
        let held_path = files.path().join("held.csv");
        std::fs::write(&train_path, train).expect("write");
        std::fs::write(&held_path, held).expect("write");
        let app = app_with_model(Some(train_path.display().to_string())).await;
        let token = app.admin_token().await;

        let skipped = run_check(&app, &token).await;
        assert_eq!(skipped["status"], "skipped");
        assert!(
            skipped["reason"]
                .as_str()
                .is_some_and(|r| r.contains("monitoring.min_rows (100)")),
            "{skipped}"
        );
        assert_eq!(skipped["alerts"], json!([]));
        assert!(skipped.get("drift_share").is_none());

        simulate(&app, held_path.to_str().expect("utf-8"), &token, false).await;
        let report = run_check(&app, &token).await;
        assert_eq!(report["status"], "completed", "{report}");
        assert_eq!(report["window"]["rows"], 101);
        assert_eq!(report["dataset_drift"], false, "{report}");
        assert!(
            !alert_types(&report).contains(&"drift".to_owned()),
            "{report}"
        );
        assert!(report["drift_share"].as_f64().expect("share") < 0.5);
        // The prediction drift compares like with like too.
        assert_eq!(report["prediction_drift"]["drifted"], false, "{report}");

        // A manual check is audited, with the check it stored.
        let (_, events) = app.get_json(&token, "/api/v1/audit?limit=20").await;
        let audited = events
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["action"] == "drift.check")
            .expect("a drift.check event");
        let after: Value =
            serde_json::from_str(audited["after_json"].as_str().expect("after")).expect("json");
        assert_eq!(after["check_id"], report["id"], "{audited}");
        assert_eq!(audited["actor"], "user:admin");
        // Stored: listed newest first, and read back whole.
        let (status, list) = app.get_json(&token, "/api/v1/drift/checks").await;
        assert_eq!(status, 200);
        assert_eq!(list.as_array().map(Vec::len), Some(2));
        assert_eq!(list[0]["id"], report["id"]);
        assert_eq!(list[1]["status"], "skipped");
        let (status, stored) = app
            .get_json(
                &token,
                &format!(
                    "/api/v1/drift/checks/{}",
                    report["id"].as_str().expect("id")
                ),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(stored, report);
    }

    /// Hungary is dataset drift: Evidently's tests flag the same features as Evidently itself
    /// (its golden values), the alert carries a stable fingerprint, the gauges say so, and the
    /// pages and the report show it.
    #[tokio::test]
    async fn hungary_is_dataset_drift_with_evidentlys_features() {
        let app = app_with_model(None).await;
        let token = app.admin_token().await;
        simulate(
            &app,
            &format!("{UCI}/processed.hungarian.data"),
            &token,
            false,
        )
        .await;
        let report = run_check(&app, &token).await;
        assert_eq!(report["dataset_drift"], true, "{report}");
        let golden: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/drift_golden.json"
            ))
            .expect("fixture"),
        )
        .expect("json");
        let mut expected: Vec<String> = golden["pairs"]["hungary"]["preset"]
            .as_object()
            .expect("preset")
            .iter()
            .filter(|(_, v)| v["drifted"] == true)
            .map(|(k, _)| k.clone())
            .collect();
        let mut got = drifted(&report);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "the features Evidently 0.7.23 flags");
        for f in report["features"].as_array().expect("features") {
            let name = f["feature"].as_str().expect("name");
            let theirs = golden["pairs"]["hungary"]["preset"][name]["score"]
                .as_f64()
                .expect("score");
            assert!(
                (f["score"].as_f64().expect("score") - theirs).abs() < 1e-6,
                "{name}: the logged traffic scores as the file does"
            );
        }
        let alerts = report["alerts"].as_array().expect("alerts");
        let drift = alerts
            .iter()
            .find(|a| a["type"] == "drift")
            .expect("drift alert");
        assert_eq!(drift["fingerprint"].as_str().map(str::len), Some(16));
        assert!(drift["evidence"]["features"].is_array());
        // The same problem again: the same fingerprint.
        let again = run_check(&app, &token).await;
        let drift_again = again["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .find(|a| a["type"] == "drift")
            .expect("drift alert");
        assert_eq!(drift_again["fingerprint"], drift["fingerprint"]);
        let (_, open) = app.get_json(&token, "/api/v1/drift/alerts").await;
        assert!(
            open.as_array()
                .expect("alerts")
                .iter()
                .all(|a| a["check_id"] == again["id"]),
            "open alerts are the newest check's: {open}"
        );

        // Gauges.
        let metrics = app.get("/metrics").await.text().await.expect("metrics");
        // The recorder is the process's, shared with the other tests' checks: names, not values.
        assert!(metrics.contains("steward_drift_share "), "{metrics}");
        assert!(metrics.contains("steward_feature_drifted{feature=\"age\"} "));
        assert!(metrics.contains("steward_feature_drift_score{feature=\"age\",stattest=\"ks\"}"));
        assert!(metrics.contains("steward_data_missing_ratio{feature=\"ca\"}"));

        // Pages and the report.
        app.login_admin().await;
        let page = app.get("/drift").await.text().await.expect("page");
        assert!(page.contains("id=\"drift-features\""), "{page}");
        assert!(page.contains("Dataset drift") || page.contains("dataset drift"));
        assert!(page.contains("<svg"), "a histogram is drawn");
        let page = app
            .get("/drift?feature=chol")
            .await
            .text()
            .await
            .expect("page");
        assert!(page.contains("chol: reference against current"), "{page}");
        let trends = app.get("/trends").await.text().await.expect("page");
        assert!(
            trends.contains("Drift share") && trends.contains("<svg"),
            "{trends}"
        );
        let overview = app.get("/").await.text().await.expect("page");
        assert!(overview.contains("id=\"open-alerts\""), "{overview}");
        let id = report["id"].as_str().expect("id");
        let response = app.get(&format!("/drift/checks/{id}/report")).await;
        assert_eq!(response.status(), 200);
        let csp = response
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        let html = response.text().await.expect("report");
        assert!(html.len() < 300_000, "{} bytes", html.len());
        assert!(html.contains("Dataset drift") && html.contains("<svg"));
        assert!(!html.contains("<script"));
        // The CLI writes the same report, and shows the check.
        let out = app.dir.path().join("report.html");
        let (code, _, err) = app.run_cli(&[
            "drift",
            "report",
            id,
            "--html",
            out.to_str().expect("utf-8"),
        ]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(std::fs::read_to_string(&out).expect("written"), html);
        let (code, text, err) = app.run_cli(&["drift", "show", id]);
        assert_eq!(code, 0, "{err}");
        assert!(
            text.contains("DATASET DRIFT") && text.contains("ALERT drift"),
            "{text}"
        );
        let (code, text, _) = app.run_cli(&["drift", "checks"]);
        assert_eq!(code, 0);
        assert!(text.contains(id), "{text}");
    }

    /// Switzerland: chol is 0 in every row (a data-quality failure: constant, outside the
    /// reference range), the estimated accuracy falls before any label arrives, and once the
    /// labels come, target drift and decay.
    #[tokio::test]
    async fn switzerland_fails_data_quality_and_decays_before_and_after_labels() {
        let app = app_with_model(None).await;
        let token = app.admin_token().await;
        let swiss = format!("{UCI}/processed.switzerland.data");
        simulate(&app, &swiss, &token, false).await;
        let before = run_check(&app, &token).await;
        let failures = before["data_quality"]["failures"].to_string();
        assert!(
            failures.contains("chol is constant in the window (0) where the reference varies, outside the reference's range"),
            "{failures}"
        );
        assert!(
            before["data_quality"]["failing_features"]
                .as_array()
                .expect("failing")
                .contains(&json!("chol"))
        );
        let types = alert_types(&before);
        assert!(types.contains(&"data_quality".to_owned()), "{types:?}");
        // One data-quality alert per feature and rule, each with its own fingerprint; the
        // summaries (read more widely than the check) carry no value from the window.
        let quality: Vec<&Value> = before["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .filter(|a| a["type"] == "data_quality")
            .collect();
        let keys: std::collections::BTreeSet<(String, String)> = quality
            .iter()
            .map(|a| {
                (
                    a["evidence"]["feature"]
                        .as_str()
                        .expect("feature")
                        .to_owned(),
                    a["evidence"]["rule"].as_str().expect("rule").to_owned(),
                )
            })
            .collect();
        assert_eq!(keys.len(), quality.len(), "{quality:?}");
        assert!(
            keys.contains(&("chol".to_owned(), "constant".to_owned())),
            "{keys:?}"
        );
        let fingerprints: std::collections::BTreeSet<&str> = quality
            .iter()
            .map(|a| a["fingerprint"].as_str().expect("fingerprint"))
            .collect();
        assert_eq!(fingerprints.len(), quality.len());
        let chol = quality
            .iter()
            .find(|a| a["evidence"]["feature"] == "chol")
            .expect("chol");
        assert!(
            !chol["summary"].as_str().expect("summary").contains("(0)"),
            "{chol}"
        );
        assert!(types.contains(&"estimated_decay".to_owned()), "{types:?}");
        assert!(
            !types.contains(&"decay".to_owned()),
            "no labels yet: {types:?}"
        );
        assert_eq!(before["performance"]["live"], Value::Null);
        assert_eq!(before["target_drift"], Value::Null);
        let estimated = before["performance"]["estimated"]["accuracy"]
            .as_f64()
            .expect("estimated");
        let holdout = before["performance"]["holdout"]["holdout_accuracy"]
            .as_f64()
            .expect("holdout");
        assert!(estimated < holdout - 0.05, "{estimated} vs {holdout}");

        simulate(&app, &swiss, &token, true).await;
        let after = run_check(&app, &token).await;
        assert_eq!(after["window"]["labelled_rows"], 123);
        assert_eq!(after["target_drift"]["drifted"], true, "{after}");
        let types = alert_types(&after);
        assert!(types.contains(&"decay".to_owned()), "{types:?} {after}");
        let live = after["performance"]["live"]["accuracy"]
            .as_f64()
            .expect("live");
        assert!(live < holdout - 0.05, "{live} vs {holdout}");
    }

    /// Bad input to the routes gets a clear error, and only approvers run checks.
    #[tokio::test]
    async fn drift_routes_refuse_bad_input() {
        let app = spawn_app_with(|_| {}).await;
        let admin = app.admin_token().await;
        // Nothing in Production.
        let (status, body) = app
            .api(&admin, "POST", "/api/v1/drift/run", json!({}))
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("no Production version"))
        );
        let (status, body) = app
            .api(&admin, "POST", "/api/v1/drift/run", json!({"window": 10}))
            .await;
        assert_eq!(status, 400, "{body}");
        let viewer = app.user_token(&admin, "vera", "viewer").await;
        // Labels drive live performance and decay alerts: a viewer does not send them.
        let (status, body) = app
            .api(
                &viewer,
                "POST",
                "/feedback",
                json!({"request_id": "019a0000-0000-7000-8000-000000000000", "label": 1}),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        let (status, _) = app
            .api(&viewer, "POST", "/api/v1/drift/run", json!({}))
            .await;
        assert_eq!(status, 403);
        let (status, _) = app.get_json(&viewer, "/api/v1/drift/checks").await;
        assert_eq!(status, 200);
        let (status, body) = app.get_json(&viewer, "/api/v1/drift/checks?limit=0").await;
        assert_eq!(status, 422, "{body}");
        let (status, _) = app
            .get_json(&viewer, "/api/v1/drift/checks?limit=ten")
            .await;
        assert_eq!(status, 400);
        let (status, _) = app.get_json(&viewer, "/api/v1/drift/checks?page=2").await;
        assert_eq!(status, 400);
        let (status, _) = app
            .get_json(&viewer, "/api/v1/drift/checks/not-an-id")
            .await;
        assert_eq!(status, 404);
        let (status, _) = app
            .get_json(
                &viewer,
                "/api/v1/drift/checks/019a0000-0000-7000-8000-000000000000",
            )
            .await;
        assert_eq!(status, 404);
        // Anonymous: not even the list (public reads are off by default).
        let response = client()
            .get(app.url("/api/v1/drift/checks"))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 401);
        // The CLI says the same.
        let (code, _, err) = app.run_cli(&["drift", "run"]);
        assert_eq!(code, 1);
        assert!(err.contains("no Production version"), "{err}");
        let (code, _, err) = app.run_cli(&["drift", "show", "nope"]);
        assert_eq!(code, 1);
        assert!(err.contains("no such drift check"), "{err}");
    }
}

/// `--html` writes the comparison as one self-contained file: charts, no rows, no script.
#[test]
fn compare_writes_a_self_contained_html_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("report.html");
    let reference = file("processed.cleveland.data");
    let current = file("processed.va.data");
    let (code, _, err) = steward(
        &[
            "drift",
            "compare",
            "--reference",
            &reference,
            "--current",
            &current,
            "--html",
            out.to_str().expect("utf-8"),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let html = std::fs::read_to_string(&out).expect("written");
    assert!(html.len() < 300_000, "{} bytes", html.len());
    assert!(html.contains("processed.va.data") && html.contains("Dataset drift"));
    assert_eq!(
        html.matches("<svg").count(),
        13,
        "one histogram per feature"
    );
    assert!(!html.contains("<script") && !html.contains("src=\"http"));
    // No patient row: a full Cleveland line does not appear.
    assert!(!html.contains("63.0,1.0,1.0,145.0"));
}

#[test]
fn simulate_refuses_bad_input_with_a_clear_error() {
    let current = file("processed.va.data");
    let (code, _, err) = steward(&["simulate", "--file", "/nonexistent/x.csv"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/x.csv"), "{err}");
    let (code, _, err) = steward(&["simulate", "--file", &current, "--rate", "0"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("requests per second"), "{err}");
    let (code, _, err) = steward(&["simulate", "--file", &current, "--url", "ftp://x"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("http:// or https://"), "{err}");
    // Nothing listens on port 9 of loopback.
    let (code, _, err) = steward(
        &[
            "simulate",
            "--file",
            &current,
            "--url",
            "http://127.0.0.1:9",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");
}

/// Production data has no labels: the current side (and the reference) may leave the target
/// out, with a header or without; the report is the same.
#[test]
fn compare_takes_files_without_the_label_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(file("processed.hungarian.data")).expect("read");
    let mut headerless = String::new();
    let mut headed =
        String::from("age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal\n");
    for line in text.lines() {
        let cells: Vec<&str> = line.split(',').collect();
        let row = cells[..13].join(",") + "\n";
        headerless += &row;
        headed += &row;
    }
    let plain = compare_json("processed.hungarian.data", &[]);
    for (name, content) in [("nolabel.csv", headerless), ("nolabel_h.csv", headed)] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).expect("write");
        let reference = file("processed.cleveland.data");
        let (code, out, err) = steward(
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
        assert_eq!(code, 0, "{name}: {err}");
        let report: serde_json::Value = serde_json::from_str(&out).expect("json");
        assert_eq!(report, plain, "{name}");
    }
}

#[test]
fn compare_names_the_bad_line_and_bounds_what_it_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = file("processed.cleveland.data");
    let run = |path: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["drift", "compare", "--reference", &reference, "--current"];
        let p = path.to_str().unwrap().to_owned();
        args.push(&p);
        args.extend_from_slice(extra);
        steward(&args, &[])
    };
    // A repeated column is named.
    let dup = dir.path().join("dup.csv");
    std::fs::write(
        &dup,
        "age,age,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal,num\n1,2,3,4,5,6,7,8,9,1,1,1,3,0\n",
    )
    .expect("write");
    let (code, _, err) = run(&dup, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("age (repeated)"), "{err}");
    // A ragged row deep in the file is named by its line.
    let mut text = std::fs::read_to_string(file("processed.va.data")).expect("read");
    text += "63,1\n";
    let ragged = dir.path().join("ragged.csv");
    std::fs::write(&ragged, &text).expect("write");
    let (code, _, err) = run(&ragged, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("line 201") && err.contains("2 fields"),
        "{err}"
    );
    // A runaway line is an error, not memory.
    let long = dir.path().join("long.csv");
    std::fs::write(&long, "1".repeat(2 << 20)).expect("write");
    let (code, _, err) = run(&long, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("line 1: longer than 1048576 bytes"), "{err}");
    // A threshold above 1 means nothing for a p-value test.
    let current = std::path::PathBuf::from(file("processed.va.data"));
    let (code, _, err) = run(&current, &["--threshold", "2"]);
    assert_eq!(code, 2);
    assert!(err.contains("at most 1"), "{err}");
    let (code, _, err) = run(&current, &["--stattest", "psi", "--threshold", "2"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = steward(&["simulate", "--file", &reference, "--rate", "1e-300"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("0.001"), "{err}");
}

/// With public reads on, anonymous callers see the list, alerts and trends, never a check's
/// details, the Drift page or a report (they show example values of patients' features).
#[tokio::test]
async fn public_reads_never_open_a_checks_example_values() {
    let app = crate::helpers::spawn_app_with(|s| s.auth.public_read = true).await;
    let anonymous = crate::helpers::client();
    for path in ["/api/v1/drift/checks", "/api/v1/drift/alerts", "/trends"] {
        let r = anonymous.get(app.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{path}");
    }
    for path in [
        "/api/v1/drift/checks/019a0000-0000-7000-8000-000000000000",
        "/drift",
        "/drift/checks/019a0000-0000-7000-8000-000000000000/report",
    ] {
        let r = anonymous.get(app.url(path)).send().await.expect("request");
        assert!(
            r.status() == 401 || r.status() == 303,
            "{path}: {}",
            r.status()
        );
    }
}
