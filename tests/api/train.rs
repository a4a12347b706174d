use serde_json::Value;

use crate::helpers::{TestApp, client, spawn_app};

fn train(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let out = app
        .cli()
        .arg("train")
        .args(args)
        .output()
        .expect("steward train");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Same dataset version, configuration and seed: identical metrics, fold by fold. The figures
/// also stay within the bars set by scikit-learn on the same protocol (bench/compare_sklearn.py:
/// LR accuracy 0.848, ROC-AUC 0.915; forest 0.825, 0.911).
#[tokio::test]
async fn training_is_reproducible_and_meets_the_scikit_learn_bar() {
    let app = spawn_app().await;
    let (code, first, err) = train(&app, &["--json"]);
    assert_eq!(code, 0, "{err}");
    let (_, second, _) = train(&app, &["--json"]);
    assert_eq!(first, second, "the same inputs must give identical metrics");

    let reports: Value = serde_json::from_str(&first).expect("json");
    let report = |model: &str| {
        reports
            .as_array()
            .expect("reports")
            .iter()
            .find(|r| r["model"] == model)
            .cloned()
            .expect("model report")
    };
    let lr = report("lr");
    assert_eq!(lr["folds"].as_array().map(Vec::len), Some(5));
    assert!(
        lr["accuracy"]["mean"].as_f64().expect("acc") >= 0.848 - 0.02,
        "{lr}"
    );
    assert!(
        lr["roc_auc"]["mean"].as_f64().expect("auc") >= 0.915 - 0.02,
        "{lr}"
    );
    let rf = report("rf");
    assert!(
        rf["accuracy"]["mean"].as_f64().expect("acc") >= 0.825 - 0.03,
        "{rf}"
    );
    assert!(
        rf["roc_auc"]["mean"].as_f64().expect("auc") >= 0.911 - 0.02,
        "{rf}"
    );
}

#[tokio::test]
async fn training_refuses_a_version_that_failed_a_critical_expectation() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let swiss = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/uci-heart-disease/processed.switzerland.data"
    ))
    .expect("file");
    let added = client()
        .post(app.url("/api/v1/datasets/heart/versions?file_name=switzerland"))
        .bearer_auth(&token)
        .body(swiss)
        .send()
        .await
        .expect("upload");
    assert_eq!(added.status(), 201);

    let (code, _, err) = train(&app, &["--models", "lr"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("heart v2 failed critical expectations"),
        "{err}"
    );
    assert!(
        err.contains("expect_column_values_to_be_between(chol)"),
        "{err}"
    );

    let (code, out, err) = train(&app, &["--models", "lr", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("logistic regression"), "{out}");

    let (code, _, err) = train(&app, &["--models", "xgb", "--dataset-version", "1"]);
    assert_eq!(code, 2);
    assert!(err.contains("not built yet"), "{err}");
}
