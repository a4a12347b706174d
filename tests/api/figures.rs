//! What a data scientist reads must mean what it says: rollbacks walk back the history,
//! figures are compared like with like, per-fold values never pass for summaries, data that
//! failed its validation is flagged wherever it leads, and the API and CLI behave.

use serde_json::{Value, json};

use crate::helpers::{TestApp, client, spawn_app_with};

const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");

fn uci(file: &str) -> String {
    format!("{UCI}/processed.{file}.data")
}

async fn app_with_model() -> TestApp {
    spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![steward::ml::models::ModelKind::Lr];
    })
    .await
}

fn register_lr(app: &TestApp, extra: &[&str]) -> Value {
    let mut args = vec!["train", "--models", "lr", "--register", "--json"];
    args.extend_from_slice(extra);
    let (code, out, err) = app.run_cli(&args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).expect("json")
}

async fn production(app: &TestApp, token: &str) -> i64 {
    let (_, model) = app.get_json(token, "/api/v1/models/heart-disease").await;
    model["production"].as_i64().expect("production")
}

/// Repeated rollbacks walk further back through the Production history instead of toggling;
/// `--to` picks one; a version rolled back from is skipped until promoted again; the
/// dashboard's confirmation names the target and its figures.
#[tokio::test]
async fn rollback_walks_back_the_history() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    register_lr(&app, &[]);
    register_lr(&app, &[]);
    for v in [2, 3] {
        let (status, out) = app
            .api(
                &token,
                "POST",
                &format!("/api/v1/models/heart-disease/versions/{v}/stage"),
                json!({ "stage": "Production", "reason": "newer" }),
            )
            .await;
        assert_eq!(status, 200, "{out}");
    }
    app.login_admin().await;
    let page = app.get("/models").await.text().await.expect("page");
    assert!(
        page.contains("Roll back Production from v3 to v2 (lr, CV ROC-AUC"),
        "the confirmation names the target and its figures: {page}"
    );
    let rollback = |body: Value| {
        app.api(
            &token,
            "POST",
            "/api/v1/models/heart-disease/rollback",
            body,
        )
    };
    let (status, out) = rollback(json!({})).await;
    assert_eq!(
        (status, out["version"]["version"].as_i64()),
        (200, Some(2)),
        "{out}"
    );
    let (status, out) = rollback(json!({})).await;
    assert_eq!(
        (status, out["version"]["version"].as_i64()),
        (200, Some(1)),
        "v3 is skipped: {out}"
    );
    let (status, out) = rollback(json!({})).await;
    assert_eq!(status, 409, "nothing earlier: {out}");
    let (status, out) = rollback(json!({ "to": 9 })).await;
    assert_eq!(status, 404, "{out}");
    let (code, out, err) =
        app.run_cli(&["models", "rollback", "--to", "3", "--reason", "back again"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("rolled back from v1 to v3"), "{out}");
    assert_eq!(production(&app, &token).await, 3);
    let (_, model) = app.get_json(&token, "/api/v1/models/heart-disease").await;
    let marked = model["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .filter(|t| t["rollback"] == true)
        .count();
    assert_eq!(
        marked, 6,
        "both transitions of each of the three rollbacks are marked"
    );
    // Going forward to v3 by choice keeps v1 below it.
    let (status, out) = rollback(json!({})).await;
    assert_eq!(
        (status, out["version"]["version"].as_i64()),
        (200, Some(1)),
        "{out}"
    );
    // A version rolled back from is skipped only until it is promoted again: promoting v2,
    // then v1 over it, and rolling back goes to v2.
    for v in [2, 1] {
        let (status, out) = app
            .api(
                &token,
                "POST",
                &format!("/api/v1/models/heart-disease/versions/{v}/stage"),
                json!({ "stage": "Production", "reason": "again" }),
            )
            .await;
        assert_eq!(status, 200, "{out}");
    }
    let (status, out) = rollback(json!({})).await;
    assert_eq!(
        (status, out["version"]["version"].as_i64()),
        (200, Some(2)),
        "{out}"
    );
}

/// Registering a run twice is refused, never a silent duplicate.
#[tokio::test]
async fn a_run_is_registered_once() {
    let app = app_with_model().await;
    let outcome = register_lr(&app, &[]);
    let run = outcome["registered"]["run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let csrf = app.login_admin().await;
    let response = app
        .client
        .post(app.url(&format!("/runs/{run}/register")))
        .header("X-CSRF-Token", &csrf)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .expect("register");
    assert_eq!(response.status(), 409);
    let text = response.text().await.expect("body");
    assert!(text.contains("already registered"), "{text}");
}

/// Per-fold values are a series, never a summary: /model/info and sort keys use the means.
#[tokio::test]
async fn summaries_are_means_not_the_last_fold() {
    let app = app_with_model().await;
    let info: Value = client()
        .get(app.url("/model/info"))
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    let metrics = info["metrics"].as_object().expect("metrics");
    assert!(metrics.contains_key("cv_accuracy_mean"), "{metrics:?}");
    assert!(
        !metrics
            .keys()
            .any(|k| k.starts_with("cv_fold_") || k == "cv_accuracy" || k == "cv_roc_auc"),
        "{metrics:?}"
    );
    let token = app.admin_token().await;
    // The old per-fold name is no sort key any more.
    let (status, out) = app.get_json(&token, "/api/v1/runs?sort=cv_accuracy").await;
    assert_eq!(status, 422, "{out}");
    let (_, runs) = app
        .get_json(&token, "/api/v1/runs?sort=cv_accuracy_mean")
        .await;
    assert!(runs[0]["metrics"].get("cv_accuracy").is_none(), "{runs}");
    // The run page plots the per-fold values.
    let run = runs[0]["id"].as_str().expect("run").to_owned();
    app.login_admin().await;
    let page = app
        .get(&format!("/runs/{run}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("Each cross-validation fold"), "{page}");
    assert!(page.contains(">303<"), "counts print as integers: {page}");
}

/// Figures are compared like with like: a version trained on other data is not compared,
/// and says so; the Experiments table can show one dataset version and warns when mixed.
#[tokio::test]
async fn comparisons_say_when_the_data_differs() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    let (code, _, err) = app.run_cli(&["data", "add", &uci("hungarian"), "-m", "Hungary"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = app.run_cli(&["data", "use", "2"]);
    assert_eq!(code, 0, "{err}");
    let outcome = register_lr(&app, &[]);
    assert_eq!(outcome["dataset_version"], 2);
    let (status, out) = app
        .api(
            &token,
            "POST",
            "/api/v1/models/heart-disease/versions/2/stage",
            json!({ "stage": "Production", "reason": "new data", "force": true }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    app.login_admin().await;
    let page = app.get("/performance").await.text().await.expect("page");
    assert!(page.contains("id=\"data-differs\""), "{page}");
    assert!(page.contains("not compared (different data)"), "{page}");
    assert!(!page.contains(" vs v1 ("), "no delta across data: {page}");
    let page = app.get("/experiments").await.text().await.expect("page");
    assert!(page.contains("id=\"mixed-data\""), "{page}");
    let page = app
        .get("/experiments?data=heart:1")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        !page.contains("id=\"mixed-data\""),
        "one dataset version: {page}"
    );
    assert!(
        !page.contains("<td class=\"nowrap\">heart v2"),
        "only v1 runs: {page}"
    );
    let (_, runs) = app.get_json(&token, "/api/v1/runs").await;
    let (a, b) = (
        runs[0]["id"].as_str().expect("a"),
        runs[1]["id"].as_str().expect("b"),
    );
    let page = app
        .get(&format!("/experiments/compare?a={a}&b={b}"))
        .await
        .text()
        .await
        .expect("page");
    assert!(page.contains("different data"), "{page}");
}

/// Data that failed its validation (not critically: Hungary) is flagged wherever it leads:
/// training warns and tags the runs, promoting their model needs force and a reason (audited),
/// `models evaluate --file` prints the failures first.
#[tokio::test]
async fn failed_validation_is_flagged_all_the_way_to_production() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    // Added and validated, but not made current: it failed.
    let (code, out, err) = app.run_cli(&["data", "add", &uci("hungarian")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("heart v2 was not made current: its validation failed")
            && !out.contains("now uses v2"),
        "{out}{err}"
    );
    let (code, _, err) = app.run_cli(&["data", "use", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("did not pass its validation"), "{err}");
    // Promoting from training is refused before anything trains or is registered.
    let (code, _, err) = app.run_cli(&["train", "--models", "lr", "--promote"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("promoted only with force and a reason"),
        "{err}"
    );
    let (_, model) = app.get_json(&token, "/api/v1/models/heart-disease").await;
    assert_eq!(
        model["versions"].as_array().map(Vec::len),
        Some(1),
        "nothing was registered: {model}"
    );
    let (code, out, err) = app.run_cli(&["train", "--models", "lr", "--register", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("did not pass its validation") && err.contains("not_be_null(ca)"),
        "{err}"
    );
    let outcome: Value = serde_json::from_str(&out).expect("json");
    let run = outcome["candidates"][0]["run"]["id"].as_str().expect("run");
    let (_, detail) = app.get_json(&token, &format!("/api/v1/runs/{run}")).await;
    assert!(
        detail["tags"]["validation_failed"]
            .as_str()
            .unwrap_or("")
            .contains("(ca)"),
        "{detail}"
    );
    let stage = "/api/v1/models/heart-disease/versions/2/stage";
    let (status, out) = app
        .api(&token, "POST", stage, json!({ "stage": "Production" }))
        .await;
    assert_eq!(status, 409, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or("")
            .contains("whose validation failed"),
        "{out}"
    );
    let (status, out) = app
        .api(
            &token,
            "POST",
            stage,
            json!({ "stage": "Production", "force": true }),
        )
        .await;
    assert_eq!(status, 422, "a reason is required: {out}");
    let (status, out) = app
        .api(
            &token,
            "POST",
            stage,
            json!({ "stage": "Production", "force": true, "reason": "Hungary is our population" }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let (_, events) = app.get_json(&token, "/api/v1/audit?limit=5").await;
    let promoted = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "model.transition")
        .expect("transition event");
    let after: Value =
        serde_json::from_str(promoted["after_json"].as_str().expect("after")).expect("json");
    assert_eq!(after["data_gate"]["forced"], true, "{after}");

    // Rolling back to it later holds the same gate.
    let rollback = "/api/v1/models/heart-disease/rollback";
    let (status, out) = app.api(&token, "POST", rollback, json!({})).await;
    assert_eq!(
        (status, &out["version"]["version"]),
        (200, &json!(1)),
        "{out}"
    );
    let (status, out) = app.api(&token, "POST", rollback, json!({ "to": 2 })).await;
    assert_eq!(status, 409, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or("")
            .contains("roll back to it with force"),
        "{out}"
    );
    let (status, out) = app
        .api(&token, "POST", rollback, json!({ "to": 2, "force": true }))
        .await;
    assert_eq!(status, 422, "a reason is required: {out}");
    let (status, out) = app
        .api(
            &token,
            "POST",
            rollback,
            json!({ "to": 2, "force": true, "reason": "v1 misses Hungary" }),
        )
        .await;
    assert_eq!(status, 200, "{out}");

    // The API says what a version it makes current failed.
    let (status, out) = app
        .api(
            &token,
            "PUT",
            "/api/v1/datasets/heart/current",
            json!({ "version": 2 }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["validation_warnings"]
            .to_string()
            .contains("not_be_null(ca)"),
        "{out}"
    );

    let (code, out, err) = app.run_cli(&["models", "evaluate", "--file", &uci("switzerland")]);
    assert_eq!(code, 0, "{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("warning:") && first.contains("(chol)"),
        "{out}"
    );

    // The dashboard asks again before making a failed version current.
    let (code, _, err) = app.run_cli(&["data", "use", "1"]);
    assert_eq!(code, 0, "{err}");
    let csrf = app.login_admin().await;
    let post = |body: &'static str| {
        app.client
            .post(app.url("/datasets/heart/current"))
            .header("X-CSRF-Token", csrf.clone())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let page = post("version=2")
        .await
        .expect("post")
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("id=\"current-confirm\"") && page.contains("not_be_null(ca)"),
        "{page}"
    );
    let (_, datasets) = app.get_json(&token, "/api/v1/datasets").await;
    assert_eq!(datasets[0]["current_version"], 1, "nothing changed yet");
    let page = post("version=2&force=true")
        .await
        .expect("post")
        .text()
        .await
        .expect("page");
    assert!(page.contains("heart now uses v2"), "{page}");
    let (code, _, err) = app.run_cli(&["data", "use", "2"]);
    assert_eq!(code, 0);
    assert!(err.contains("warning: heart v2 did not pass"), "{err}");
}

/// The dataset diff highlights columns whose distribution moved, not every column whose
/// statistics changed with the row count.
#[tokio::test]
async fn the_diff_highlights_real_shifts() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    app.run_cli(&["data", "add", &uci("hungarian")]);
    let (_, diff) = app
        .get_json(&token, "/api/v1/datasets/heart/diff?from=1&to=2")
        .await;
    let column = |name: &str| {
        diff["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .find(|c| c["name"] == name)
            .expect("column")
            .clone()
    };
    let ca = column("ca");
    assert_eq!(
        ca["shift"]["shifted"], true,
        "ca goes 0% → 99% missing: {ca}"
    );
    let bp = column("trestbps");
    assert!(
        !bp["changes"].as_array().expect("changes").is_empty(),
        "its statistics changed"
    );
    assert_eq!(
        bp["shift"]["shifted"], false,
        "but not its distribution: {bp}"
    );
    assert_eq!(
        column("age")["shift"]["shifted"],
        true,
        "Hungary's patients are younger"
    );
    let (code, out, _) = app.run_cli(&["data", "diff", "1", "2"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("* ca")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("  trestbps")), "{out}");
}

/// API and CLI polish: /docs redirects, the OpenAPI covers /api/v1, a closed pipe ends
/// quietly, the CLI names a real actor, model_info keeps one series.
#[tokio::test]
async fn api_and_cli_polish() {
    let app = app_with_model().await;
    // An unknown sort key or experiment is an error, never an unsorted or empty table.
    let (code, _, err) = app.run_cli(&["runs", "list", "--sort", "nonsense"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("sort") && err.contains("no summary metric"),
        "{err}"
    );
    let (code, _, err) = app.run_cli(&["runs", "list", "--experiment", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no experiment `nope`"), "{err}");
    let (code, out, err) = app.run_cli(&["runs", "list", "--sort", "holdout_f1"]);
    assert_eq!(code, 0, "{out}{err}");
    let token = app.admin_token().await;
    // Every example body in /openapi.json is one the route takes ("Try it out" works): it may
    // be refused for the state it finds (409), never for its shape.
    let spec: Value = client()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    let mut tried = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            let Some(content) = op["requestBody"]["content"].as_object() else {
                continue;
            };
            let (media, body) = content.iter().next().expect("a media type");
            let example = match &body["example"] {
                Value::String(text) => text.clone(),
                Value::Null => panic!("{method} {path} has no example body"),
                other => other.to_string(),
            };
            let name = if path.starts_with("/api/v1/models") {
                "heart-disease"
            } else {
                "heart"
            };
            let url = path.replace("{name}", name).replace("{version}", "1");
            let response = client()
                .request(
                    method.to_uppercase().parse().expect("method"),
                    app.url(&url),
                )
                .bearer_auth(&token)
                .header("Content-Type", media.as_str())
                .body(example)
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            assert!(
                !matches!(status, 400 | 413 | 415 | 422),
                "{method} {url}: {status} {text}"
            );
            tried += 1;
        }
    }
    assert!(tried >= 11, "{tried} examples tried");
    let (status, out) = app
        .get_json(&token, "/api/v1/runs?sort=cv_fold_roc_auc")
        .await;
    assert_eq!(status, 422, "a series is no sort key: {out}");
    // Counts print as integers in the CLI.
    let (_, runs) = app.get_json(&token, "/api/v1/runs").await;
    let run = runs[0]["id"].as_str().expect("run").to_owned();
    let (code, out, err) = app.run_cli(&["runs", "show", &run]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("holdout_rows") && l.trim_end().ends_with(" 61")),
        "{out}"
    );
    let docs = app.get("/docs").await;
    assert_eq!(docs.status(), 308);
    assert_eq!(docs.headers()["location"], "/docs/");
    let spec: Value = client()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("spec")
        .json()
        .await
        .expect("json");
    assert!(
        spec["paths"]["/api/v1/models/{name}/rollback"]["post"].is_object(),
        "{spec}"
    );
    let example = &spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"];
    assert_eq!(example["example"]["age"], 63, "{example}");

    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "'{}' audit list --limit 500 | head -n 1",
                crate::helpers::steward_bin().display()
            ),
        ])
        .envs(app.cli_env())
        .output()
        .expect("pipe");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );

    let (code, _, err) = app.run_cli(&["--actor", "dana", "data", "add", &uci("hungarian")]);
    assert_eq!(code, 0, "{err}");
    let token = app.admin_token().await;
    let (_, events) = app.get_json(&token, "/api/v1/audit?limit=10").await;
    assert!(events.to_string().contains("cli:dana"), "{events}");
    let out = app
        .cli()
        .env_remove("USER")
        .args(["data", "add", &uci("va")])
        .output()
        .expect("cli");
    assert!(out.status.success());
    let (_, events) = app.get_json(&token, "/api/v1/audit?limit=10").await;
    let actor = events
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "dataset.add")
        .map(|e| e["actor"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    assert!(
        actor.starts_with("cli:") && actor != "cli:unknown" && actor.len() > 4,
        "{actor}"
    );

    register_lr(&app, &["--force"]);
    let (status, out) = app
        .api(
            &token,
            "POST",
            "/api/v1/models/heart-disease/versions/2/stage",
            json!({ "stage": "Production", "force": true, "reason": "test" }),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let info: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("model_info{"))
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(
        info[0].contains("version=\"2\"") && info[0].contains("stage=\"Production\""),
        "{info:?}"
    );
}

/// The Predictions page and API page through the whole log and filter it; a batch's rows say
/// their latency is the batch's; every validation run is reachable from the Datasets page;
/// the activity feed reads as lines.
#[tokio::test]
async fn pages_page_filter_and_read() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    let patient = json!({"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2,
           "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6});
    let (status, _) = app
        .predict(&json!({ "instances": vec![patient.clone(); 120] }))
        .await;
    assert_eq!(status, 200);
    let (_, one) = app.predict(&patient).await;
    let id = one["request_id"].as_str().expect("id").to_owned();
    app.post_as(
        Some(&token),
        "/feedback",
        "application/json",
        json!({ "request_id": id, "label": 1 }).to_string(),
    )
    .await;
    let (_, first) = app.get_json(&token, "/api/v1/predictions?limit=100").await;
    let rows = first["predictions"].as_array().expect("rows");
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[1]["batch_rows"], 120);
    let last = rows[99]["request_id"].as_str().expect("last");
    let (_, second) = app
        .get_json(
            &token,
            &format!("/api/v1/predictions?limit=100&before={last}"),
        )
        .await;
    assert_eq!(second["predictions"].as_array().map(Vec::len), Some(21));
    let (_, labelled) = app
        .get_json(&token, "/api/v1/predictions?labelled=true")
        .await;
    assert_eq!(labelled["predictions"].as_array().map(Vec::len), Some(1));
    app.login_admin().await;
    let page = app.get("/predictions").await.text().await.expect("page");
    assert!(page.contains("for a batch of 120"), "{page}");
    assert!(page.contains("id=\"older\""), "{page}");
    let page = app
        .get("/predictions?labelled=yes")
        .await
        .text()
        .await
        .expect("page");
    assert!(
        page.contains(&id) && !page.contains("for a batch of 120"),
        "{page}"
    );

    let (code, _, _) = app.run_cli(&[
        "validate",
        "--suite",
        "heart",
        "--file",
        &uci("switzerland"),
    ]);
    assert_eq!(code, 1);
    let page = app.get("/datasets").await.text().await.expect("page");
    assert!(
        page.contains("file ") && page.contains("processed.switzerland.data"),
        "{page}"
    );
    let page = app.get("/activity").await.text().await.expect("page");
    assert!(page.contains(r#"<span class="key">stage</span>"#), "{page}");
}
