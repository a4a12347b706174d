use serde_json::{Value, json};

use crate::helpers::{TestApp, client, spawn_app};

const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");

fn uci(file: &str) -> Vec<u8> {
    std::fs::read(format!("{UCI}/processed.{file}.data")).expect("bundled UCI file")
}

fn blob_count(app: &TestApp) -> usize {
    let root = app.dir.path().join("var/blobs");
    std::fs::read_dir(&root)
        .map(|dirs| {
            dirs.flatten()
                .map(|d| std::fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn the_first_start_registers_and_validates_cleveland() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (status, versions) = app
        .get_json(&token, "/api/v1/datasets/heart/versions")
        .await;
    assert_eq!(status, 200);
    let versions = versions.as_array().expect("list");
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["row_count"], 303);
    assert_eq!(versions[0]["file_name"], "processed.cleveland.data");

    let (_, detail) = app
        .get_json(&token, "/api/v1/datasets/heart/versions/1")
        .await;
    assert_eq!(detail["current"], true);
    assert_eq!(detail["validations"][0]["success"], true, "{detail}");
    assert_eq!(detail["profile"]["rows"], 303);
}

#[tokio::test]
async fn hungary_becomes_v2_and_the_diff_shows_its_missingness() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let response = app
        .upload(&token, uci("hungarian"), "processed.hungarian.data")
        .await;
    assert_eq!(response.status(), 201);
    let added: Value = response.json().await.expect("json");
    assert_eq!(added["version"]["version"], 2);
    assert_eq!(added["version"]["parent_version"], 1);
    assert_eq!(added["created"], true);
    // Validated on arrival: non-critical missingness expectations fail, nothing critical.
    assert_eq!(added["validation"]["success"], false);
    assert_eq!(added["validation"]["critical_failures"], 0);

    let (status, diff) = app
        .get_json(&token, "/api/v1/datasets/heart/diff?from=1&to=2")
        .await;
    assert_eq!(status, 200);
    assert_eq!(diff["rows"], json!([303, 294]));
    let column = |name: &str| {
        diff["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .expect("column in diff")
    };
    for (name, before, after) in [("ca", 4, 291), ("thal", 2, 266), ("slope", 0, 190)] {
        let c = column(name);
        assert_eq!(c["left"]["missing"], before, "{name}: {c}");
        assert_eq!(c["right"]["missing"], after, "{name}: {c}");
        assert!(
            c["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .any(|ch| ch.as_str().unwrap_or("").starts_with("missing")),
            "{name}: {c}"
        );
    }
    let age = column("age");
    assert!(
        (age["left"]["mean"].as_f64().expect("mean") - 54.4389).abs() < 1e-3,
        "{age}"
    );

    // The CLI shows the same, side by side.
    let out = app
        .cli()
        .args(["data", "diff", "1", "2"])
        .output()
        .expect("data diff");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rows: 303 → 294"), "{text}");
    let ca = text.lines().find(|l| l.contains(" ca ")).expect("ca row");
    assert!(ca.contains("4(1%)") && ca.contains("291(99%)"), "{ca}");
}

#[tokio::test]
async fn the_same_bytes_give_the_same_version_even_concurrently() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let uploads = (0..4).map(|_| app.upload(&token, uci("va"), "processed.va.data"));
    let responses = futures_util::future::join_all(uploads).await;
    let mut versions = Vec::new();
    for r in responses {
        assert!(r.status().is_success(), "{}", r.status());
        let body: Value = r.json().await.expect("json");
        versions.push(body["version"]["version"].as_i64().expect("version"));
    }
    assert!(versions.iter().all(|v| *v == 2), "{versions:?}");
    let again = app.upload(&token, uci("va"), "renamed.csv").await;
    assert_eq!(again.status(), 200, "unchanged bytes are not a new version");
    let (_, list) = app
        .get_json(&token, "/api/v1/datasets/heart/versions")
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    assert_eq!(blob_count(&app), 2);
}

#[tokio::test]
async fn switzerland_fails_on_chol_and_cleveland_passes() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.upload(&token, uci("switzerland"), "processed.switzerland.data")
        .await;

    let run: Value = client()
        .post(app.url("/api/v1/validations"))
        .bearer_auth(&token)
        .json(&json!({ "suite": "heart", "dataset": "heart", "version": 2 }))
        .send()
        .await
        .expect("validate")
        .json()
        .await
        .expect("json");
    assert_eq!(run["success"], false);
    assert_eq!(run["status"], "blocked");
    let chol = run["result"]["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| {
            r["expectation_config"]["type"] == "expect_column_values_to_be_between"
                && r["expectation_config"]["kwargs"]["column"] == "chol"
        })
        .expect("the chol range expectation");
    assert_eq!(chol["success"], false);
    assert_eq!(chol["expectation_config"]["meta"]["critical"], true);
    assert_eq!(chol["result"]["unexpected_count"], 123);
    assert_eq!(chol["result"]["unexpected_percent"], 100.0);
    let indices: Vec<u64> = chol["result"]["partial_unexpected_index_list"]
        .as_array()
        .expect("indices")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(indices, (0..20).collect::<Vec<u64>>());
    assert_eq!(chol["result"]["partial_unexpected_list"][0], 0.0);
    assert_eq!(run["result"]["statistics"]["evaluated_expectations"], 34);

    // The CLI exits non-zero and names the expectation; Cleveland passes.
    let cli = |args: &[&str]| app.cli().args(args).output().expect("validate");
    let swiss = format!("{UCI}/processed.switzerland.data");
    let out = cli(&["validate", "--suite", "heart", "--file", &swiss]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("CRITICAL expect_column_values_to_be_between(chol)"),
        "{text}"
    );
    assert!(
        text.contains("123 unexpected (100.0%)") && text.contains("rows [0, 1, 2"),
        "{text}"
    );
    let out = cli(&[
        "validate",
        "--suite",
        "heart",
        "--dataset",
        "heart",
        "--version",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The data-docs page shows every expectation with its outcome.
    app.login_admin().await;
    let page = app
        .get(&format!("/validations/{}", run["id"].as_str().expect("id")))
        .await
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("blocked: 28 of 34 expectations met"),
        "{page}"
    );
    assert_eq!(page.matches("<tr class=\"fail\">").count(), 6, "{page}");
    assert!(page.contains("123 (100.0%)"), "{page}");
}

#[tokio::test]
async fn checkout_is_byte_identical_and_a_corrupt_blob_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let response = client()
        .get(app.url("/api/v1/datasets/heart/versions/1/content"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("content");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.bytes().await.expect("bytes").as_ref(),
        uci("cleveland").as_slice()
    );

    let out_file = app.dir.path().join("checkout.csv");
    let out = app
        .cli()
        .args([
            "data",
            "checkout",
            "1",
            "--out",
            out_file.to_str().expect("utf-8"),
        ])
        .output()
        .expect("checkout");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&out_file).expect("written"), uci("cleveland"));

    // Flip one byte of the stored blob.
    let (_, detail) = app
        .get_json(&token, "/api/v1/datasets/heart/versions/1")
        .await;
    let hash = detail["hash"].as_str().expect("hash");
    let blob = app.blob_path(hash);
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[10] ^= 1;
    std::fs::write(&blob, bytes).expect("tamper");

    let refused = client()
        .get(app.url("/api/v1/datasets/heart/versions/1/content"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("content");
    assert_eq!(refused.status(), 503);
    let err: Value = refused.json().await.expect("json");
    assert!(
        err["message"].as_str().unwrap_or("").contains("corrupt"),
        "{err}"
    );
    let out = app
        .cli()
        .args([
            "data",
            "checkout",
            "1",
            "--out",
            out_file.to_str().expect("utf-8"),
        ])
        .output()
        .expect("checkout");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));

    // Adding the same bytes again repairs the blob, and says so in the answer and the log.
    let response = app.upload(&token, uci("cleveland"), "again.csv").await;
    assert_eq!(response.status(), 200);
    let outcome: Value = response.json().await.expect("json");
    assert_eq!(outcome["created"], false);
    assert!(
        outcome["repaired"]
            .as_str()
            .unwrap_or("")
            .contains("corrupt"),
        "{outcome}"
    );
    let fixed = client()
        .get(app.url("/api/v1/datasets/heart/versions/1/content"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("content");
    assert_eq!(fixed.status(), 200);
    assert_eq!(
        fixed.bytes().await.expect("bytes").as_ref(),
        uci("cleveland").as_slice()
    );
    let (_, events) = app.get_json(&token, "/api/v1/audit?limit=5").await;
    assert!(
        events.to_string().contains("dataset.blob_repair"),
        "{events}"
    );
    // A sound blob is left as it is.
    let response = app.upload(&token, uci("cleveland"), "again.csv").await;
    let outcome: Value = response.json().await.expect("json");
    assert_eq!(outcome["repaired"], Value::Null);
}

#[tokio::test]
async fn bad_files_get_clear_errors_and_leave_nothing_behind() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let row = "63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,0.0,6.0,0\n";
    let cases: Vec<(Vec<u8>, &str, Vec<&str>)> = vec![
        (
            Vec::new(),
            "empty.csv",
            vec!["empty.csv: the file is empty"],
        ),
        (
            b"\x7fELF\x02\x01\x01\x00\x00binary".to_vec(),
            "tool.bin",
            vec!["tool.bin", "not a CSV"],
        ),
        (
            format!("{row}{row}1,2,3\n").into_bytes(),
            "ragged.csv",
            vec!["ragged.csv, line 3", "3 fields"],
        ),
        (
            format!("age,sex,colour\n{row}").into_bytes(),
            "header.csv",
            vec!["header.csv, line 1", "header does not match", "colour"],
        ),
        (
            format!("{row}{}", row.replacen("145.0", "high", 1)).into_bytes(),
            "typo.csv",
            vec![
                "typo.csv, line 2, column `trestbps`",
                "`high` is not a number",
            ],
        ),
    ];
    for (bytes, name, needles) in cases {
        let response = app.upload(&token, bytes, name).await;
        assert_eq!(response.status(), 422, "{name}");
        let err: Value = response.json().await.expect("json");
        assert_eq!(err["error"], "validation_failed");
        let message = err["message"].as_str().unwrap_or_default();
        for needle in needles {
            assert!(message.contains(needle), "{name}: {message}");
        }
    }
    let (_, list) = app
        .get_json(&token, "/api/v1/datasets/heart/versions")
        .await;
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(1),
        "no version was added"
    );
    assert_eq!(blob_count(&app), 1, "no blob was left");

    let (status, err) = app
        .get_json(&token, "/api/v1/datasets/heart/versions/7")
        .await;
    assert_eq!(status, 404);
    assert!(
        err["message"]
            .as_str()
            .unwrap_or("")
            .contains("has no version 7")
    );

    let out = app
        .cli()
        .args(["data", "add", "/no/such/file.csv"])
        .output()
        .expect("add");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /no/such/file.csv"));
}

#[tokio::test]
async fn suites_with_unknown_types_or_bad_kwargs_are_refused() {
    let app = spawn_app().await;
    let suites = app.dir.path().join("suites");
    std::fs::create_dir_all(&suites).expect("dir");
    std::fs::write(
        suites.join("pink.json"),
        r#"{"name":"pink","expectations":[{"type":"expect_column_values_to_be_pink","kwargs":{"column":"age"}}]}"#,
    )
    .expect("write");
    std::fs::write(
        suites.join("typo.json"),
        r#"{"name":"typo","expectations":[{"type":"expect_column_values_to_be_between","kwargs":{"column":"age","min":1}}]}"#,
    )
    .expect("write");
    for (suite, needle) in [
        (
            "pink",
            "unknown expectation type `expect_column_values_to_be_pink`",
        ),
        ("typo", "bad kwargs: unknown field `min`"),
    ] {
        let out = app
            .cli()
            .args(["validate", "--suite", suite, "--dataset", "heart"])
            .env("STEWARD__DATASET__SUITES_DIR", &suites)
            .output()
            .expect("validate");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(needle) && err.contains("expectation #0"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn parquet_files_are_read_too() {
    use polars::prelude::*;
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let columns: Vec<Column> = [
        "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
        "slope", "ca", "thal", "num",
    ]
    .iter()
    .enumerate()
    .map(|(i, name)| {
        let values: Vec<f64> = (0..50)
            .map(|r| {
                [
                    54.0, 1.0, 4.0, 130.0, 240.0, 0.0, 0.0, 150.0, 0.0, 1.0, 2.0, 0.0, 3.0, 0.0,
                ][i] + (r % 2) as f64 * if i == 0 { 1.0 } else { 0.0 }
            })
            .collect();
        Column::new((*name).into(), values)
    })
    .collect();
    let mut frame = DataFrame::new(50, columns).expect("frame");
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut frame)
        .expect("parquet");
    let response = app.upload(&token, bytes, "sample.parquet").await;
    assert_eq!(response.status(), 201);
    let added: Value = response.json().await.expect("json");
    assert_eq!(added["version"]["format"], "parquet");
    assert_eq!(added["version"]["row_count"], 50);
}

#[tokio::test]
async fn the_datasets_page_lists_versions_and_admins_move_the_current_one() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    app.upload(&token, uci("hungarian"), "processed.hungarian.data")
        .await;
    let csrf = app.login_admin().await;
    let page = app.get("/datasets").await.text().await.expect("html");
    assert!(
        page.contains("v1</a> <span class=\"badge\">current</span>"),
        "Hungary failed its validation, so it was added but not made current: {page}"
    );
    assert!(
        page.contains("processed.cleveland.data") && page.contains(">passed</a>"),
        "{page}"
    );
    assert!(
        page.contains(">failed</a>"),
        "Hungary's non-critical failures show: {page}"
    );

    let moved = app
        .client
        .post(app.url("/datasets/heart/current"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[("version", "2"), ("force", "true")])
        .send()
        .await
        .expect("move");
    assert_eq!(moved.status(), 200);
    let partial = moved.text().await.expect("html");
    assert!(partial.contains("heart now uses v2"), "{partial}");
    assert!(
        partial.contains("v2</a> <span class=\"badge\">current</span>"),
        "{partial}"
    );

    let (_, audit) = app.get_json(&token, "/api/v1/audit?limit=5").await;
    let used = audit
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "dataset.use")
        .expect("dataset.use is audited");
    assert_eq!(used["before_json"], "{\"current_version\":1}");

    let diff = app
        .get("/datasets/heart/diff?from=1&to=2")
        .await
        .text()
        .await
        .expect("html");
    assert!(diff.contains("291 (99.0%)"), "{diff}");
    let version = app
        .get("/datasets/heart/versions/2")
        .await
        .text()
        .await
        .expect("html");
    assert!(version.contains("294 rows × 14 columns"), "{version}");

    // A viewer sees the page but cannot move the current version.
    client()
        .post(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&json!({"username": "val", "password": "val-password-1", "role": "viewer"}))
        .send()
        .await
        .expect("user");
    let viewer = app.visitor();
    let csrf = viewer.login("val", "val-password-1").await;
    let refused = viewer
        .client
        .post(viewer.url("/datasets/heart/current"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[("version", "2")])
        .send()
        .await
        .expect("move");
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn a_suggested_suite_parses_and_passes_on_the_data_it_came_from() {
    let app = spawn_app().await;
    let out = app
        .cli()
        .args(["expectations", "suggest", "--name", "drafted"])
        .output()
        .expect("suggest");
    assert!(out.status.success(), "{out:?}");
    let suites = app.dir.path().join("suites");
    std::fs::create_dir_all(&suites).expect("dir");
    std::fs::write(suites.join("drafted.json"), &out.stdout).expect("write");
    let suite = steward::data::expectations::Suite::load(&suites, "drafted").expect("parses");
    assert!(
        suite.expectations.len() > 14,
        "{}",
        suite.expectations.len()
    );

    let out = app
        .cli()
        .args([
            "validate",
            "--suite",
            "drafted",
            "--dataset",
            "heart",
            "--version",
            "1",
        ])
        .env("STEWARD__DATASET__SUITES_DIR", &suites)
        .output()
        .expect("validate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("passed"), "{text}");

    let token = app.admin_token().await;
    let (status, api) = app
        .get_json(&token, "/api/v1/expectations/drafted/suggest?version=1")
        .await;
    assert_eq!(status, 200);
    assert_eq!(api["name"], "drafted");
    assert_eq!(
        api["expectations"].as_array().map(Vec::len),
        Some(suite.expectations.len())
    );
}
