//! Serving over real HTTP: /predict, /invocations, /model/info, /feedback, the prediction log,
//! hot swaps, validation and the OpenAPI description.

use serde_json::{Value, json};
use steward::ml::models::ModelKind;

use crate::helpers::{TestApp, client, spawn_app, spawn_app_with};

fn patient() -> Value {
    json!({"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2,
           "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6})
}

/// An app whose first start trained `models` and put the best in Production.
async fn serving_app(models: &[ModelKind]) -> TestApp {
    let models = models.to_vec();
    spawn_app_with(move |s| {
        s.training.on_first_start = true;
        s.training.models = models;
        s.training.rf.trees = 30;
        s.serving.refresh_secs = 1;
    })
    .await
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

#[tokio::test]
async fn predict_answers_one_or_a_batch_and_explains() {
    let app = serving_app(&[ModelKind::Lr]).await;
    let (status, one) = app.predict(&patient()).await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["model_version"], 1);
    let p = one["probability"].as_f64().expect("probability");
    assert!((0.0..=1.0).contains(&p));
    assert_eq!(one["prediction"], i64::from(p >= 0.5));
    assert_eq!(one["request_id"].as_str().map(str::len), Some(36));

    let mut healthy = patient();
    healthy["cp"] = json!(3);
    healthy["thal"] = json!(3);
    healthy["ca"] = json!(null);
    let (status, batch) = app
        .predict(&json!({ "instances": [patient(), healthy] }))
        .await;
    assert_eq!(status, 200, "{batch}");
    let batch = batch.as_array().expect("a list");
    assert_eq!(batch.len(), 2);
    assert_eq!(
        batch[0]["probability"], one["probability"],
        "same input, same answer"
    );
    assert_ne!(batch[0]["request_id"], batch[1]["request_id"]);

    // LR: bias + Σ coefficient × value is the log-odds of the probability.
    let (status, explained) = app
        .post(
            "/predict?explain=true",
            "application/json",
            patient().to_string(),
        )
        .await;
    assert_eq!(status, 200, "{explained}");
    let e = &explained["explanation"];
    let sum: f64 = e["contributions"]
        .as_object()
        .expect("contributions")
        .values()
        .filter_map(Value::as_f64)
        .sum::<f64>()
        + e["bias"].as_f64().expect("bias");
    assert!((sum - logit(p)).abs() < 1e-9, "{sum} vs {}", logit(p));
    assert_eq!(e["contributions"].as_object().map(|c| c.len()), Some(13));
}

#[tokio::test]
async fn xgboost_serves_with_shap_contributions_from_the_library() {
    let app = serving_app(&[ModelKind::Xgb]).await;
    let (status, info) = {
        let r = client()
            .get(app.url("/model/info"))
            .send()
            .await
            .expect("info");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    };
    assert_eq!(status, 200);
    assert_eq!(info["kind"], "xgb");
    assert_eq!(info["stage"], "Production");
    assert_eq!(info["dataset"], "heart");
    assert_eq!(info["dataset_version"], 1);
    assert_eq!(info["features"].as_array().map(Vec::len), Some(13));
    assert!(info["metrics"]["cv_roc_auc_mean"].as_f64().expect("auc") > 0.85);

    let (status, explained) = app
        .post(
            "/predict?explain=true",
            "application/json",
            patient().to_string(),
        )
        .await;
    assert_eq!(status, 200, "{explained}");
    let p = explained["probability"].as_f64().expect("p");
    let e = &explained["explanation"];
    let sum: f64 = e["contributions"]
        .as_object()
        .expect("contributions")
        .values()
        .filter_map(Value::as_f64)
        .sum::<f64>()
        + e["bias"].as_f64().expect("bias");
    // SHAP values add up to the margin (XGBoost computes in f32).
    assert!((sum - logit(p)).abs() < 1e-4, "{sum} vs {}", logit(p));
}

#[tokio::test]
async fn bad_requests_get_their_own_answers_and_every_field_is_named() {
    let app = serving_app(&[ModelKind::Lr]).await;
    let mut bad = patient();
    bad["age"] = json!("sixty");
    bad["sex"] = json!(9);
    bad["chol"] = json!(5000);
    bad["colour"] = json!("red");
    bad.as_object_mut().expect("object").remove("thal");
    let (status, err) = app.predict(&bad).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"], "validation_failed");
    let mut fields: Vec<&str> = err["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["age", "chol", "colour", "sex", "thal"], "{err}");

    let (status, err) = app
        .predict(&json!({ "instances": [patient(), {"age": 40}] }))
        .await;
    assert_eq!(status, 422);
    assert!(
        err["details"]
            .as_array()
            .expect("details")
            .iter()
            .all(|d| d["field"]
                .as_str()
                .unwrap_or("")
                .starts_with("instances[1].")),
        "{err}"
    );

    let (status, err) = app
        .post("/predict", "application/json", "{\"age\": 63,")
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("bad_request")),
        "{err}"
    );
    let (status, err) = app
        .post("/predict", "text/plain", patient().to_string())
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (415, Some("unsupported_media_type")),
        "{err}"
    );
    // An oversized body is refused from its declared length, before it is read (a client that
    // keeps sending would see the connection close, so this speaks HTTP by hand).
    let answer = app.raw_http("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n{",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let many = json!({ "instances": vec![patient(); 10_001] });
    let (status, _) = app.predict(&many).await;
    assert_eq!(status, 422, "more than serving.max_batch rows");

    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("prediction_validation_failures_total{field=\"chol\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn invocations_speaks_mlflow() {
    let app = serving_app(&[ModelKind::Lr]).await;
    let names: Vec<&str> = [
        "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
        "slope", "ca", "thal",
    ]
    .to_vec();
    let p = patient();
    let values: Vec<Value> = names.iter().map(|n| p[n].clone()).collect();
    let (_, single) = app.predict(&p).await;
    let expected = single["prediction"].clone();
    for body in [
        json!({ "dataframe_split": { "columns": names, "data": [values.clone(), values.clone()] } }),
        json!({ "dataframe_records": [p.clone(), p.clone()] }),
        json!({ "instances": [p.clone(), p.clone()] }),
        json!({ "inputs": [values.clone(), values.clone()] }),
        json!({ "inputs": { "age": [63, 63], "sex": [1, 1], "cp": [1, 1], "trestbps": [145, 145], "chol": [233, 233], "fbs": [1, 1], "restecg": [2, 2], "thalach": [150, 150], "exang": [0, 0], "oldpeak": [2.3, 2.3], "slope": [3, 3], "ca": [0, 0], "thal": [6, 6] } }),
    ] {
        let (status, out) = app
            .post("/invocations", "application/json", body.to_string())
            .await;
        assert_eq!(status, 200, "{body} → {out}");
        assert_eq!(
            out,
            json!({ "predictions": [expected, expected] }),
            "{body}"
        );
    }
    let csv = format!("{}\n63,1,1,145,233,1,2,150,0,2.3,3,0,6\n", names.join(","));
    let (status, out) = app.post("/invocations", "text/csv", csv).await;
    assert_eq!((status, &out), (200, &json!({ "predictions": [expected] })));

    for body in [
        json!({ "data": [p.clone()] }),
        json!({ "instances": [p.clone()], "inputs": [p.clone()] }),
    ] {
        let (status, out) = app
            .post("/invocations", "application/json", body.to_string())
            .await;
        assert_eq!(status, 400, "{out}");
        assert_eq!(out["error_code"], "BAD_REQUEST");
        assert!(
            out["message"]
                .as_str()
                .expect("message")
                .contains("exactly one of the input fields"),
            "{out}"
        );
    }
    let (status, out) = app.post("/invocations", "application/xml", "<x/>").await;
    assert_eq!(status, 415);
    assert!(
        out.as_str()
            .expect("text")
            .contains("This predictor only supports"),
        "{out}"
    );
}

#[tokio::test]
async fn feedback_needs_a_logged_prediction_and_the_log_holds_every_prediction() {
    let app = serving_app(&[ModelKind::Lr]).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (_, out) = app.predict(&patient()).await;
        ids.push(out["request_id"].as_str().expect("id").to_owned());
    }
    // Feedback decides what retraining learns from: a token is needed by default.
    let label = |id: &str, label: i64| json!({ "request_id": id, "label": label }).to_string();
    let (status, out) = app
        .post("/feedback", "application/json", label(&ids[19], 1))
        .await;
    assert_eq!(status, 401, "{out}");
    let token = app.admin_token().await;
    let feedback = |body: String| app.post_as(Some(&token), "/feedback", "application/json", body);
    // Straight after the prediction: the queue may not be stored yet; feedback waits for it.
    let (status, out) = feedback(label(&ids[19], 1)).await;
    assert_eq!(status, 201, "{out}");
    assert_eq!(out["actor"], "user:admin", "each label names who sent it");
    let (status, _) = feedback(label(&ids[19], 0)).await;
    assert_eq!(status, 409, "one label per prediction");
    let (status, _) = feedback(label("0190a0a0-0000-7000-8000-000000000000", 1)).await;
    assert_eq!(status, 404);
    let (status, out) = feedback(label("no such id; DROP TABLE", 1)).await;
    assert_eq!(status, 422, "{out}");
    let (status, _) = feedback(label(&ids[0], 3)).await;
    assert_eq!(status, 422);

    let log: Value = client()
        .get(app.url("/api/v1/predictions?limit=5"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    assert_eq!(log["total"], 20);
    let row = &log["predictions"][0];
    assert_eq!(row["model_version"], 1);
    assert_eq!(row["endpoint"], "predict");
    assert_eq!(row["features"]["age"], 63.0);
    assert_eq!(row["features"]["cp"], "1");
    assert!(row["latency_us"].as_i64().expect("latency") > 0);
    assert_eq!(log["labelled"], 1);
    let label_of = |id: &str| {
        log["predictions"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["request_id"] == id)
            .map(|r| r["label"].clone())
    };
    assert_eq!(label_of(&ids[19]), Some(json!(1)), "{log}");
    assert_eq!(label_of(&ids[18]), Some(Value::Null), "{log}");

    // The dashboard's Predictions page shows the same log.
    app.login_admin().await;
    let page = app.get("/predictions").await.text().await.expect("html");
    assert!(page.contains(&ids[19]) && page.contains(&ids[0]), "{page}");
    assert!(
        page.contains(r#"<span class="value" id="logged">20</span>"#)
            && page.contains(r#"<span class="value" id="labelled">1</span>"#),
        "{page}"
    );
    assert!(page.contains("age=63.0"), "{page}");

    // Metrics: the serving families are there and promtool accepts the exposition.
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for family in [
        "inference_duration_seconds_bucket",
        "predictions_total{",
        "model_info{",
        "steward_prediction_log_rows_total",
    ] {
        assert!(metrics.contains(family), "{family} missing");
    }
    let file = app.dir.path().join("metrics.txt");
    std::fs::write(&file, &metrics).expect("write");
    let check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("open"))
        .output()
        .expect("promtool");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test]
async fn promotion_swaps_the_served_model_in_this_process_and_from_another() {
    let app = serving_app(&[ModelKind::Lr]).await;
    let token = app.admin_token().await;
    // v2 (XGBoost) registered by the CLI, another process.
    let out = app
        .cli()
        .args(["train", "--models", "xgb", "--register"])
        .output()
        .expect("train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, before) = app.predict(&patient()).await;
    assert_eq!(before["model_version"], 1);

    // Promoted through the API: the next request is served by v2.
    let promoted = client()
        .post(app.url("/api/v1/models/heart-disease/versions/2/stage"))
        .bearer_auth(&token)
        .json(&json!({ "stage": "Production", "reason": "swap test" }))
        .send()
        .await
        .expect("promote");
    assert_eq!(promoted.status(), 200);
    let (_, after) = app.predict(&patient()).await;
    assert_eq!(after["model_version"], 2);

    // Rolled back by the CLI: the refresh job (every second here) brings v1 back.
    let out = app
        .cli()
        .args(["models", "rollback", "--reason", "cross-process"])
        .output()
        .expect("rollback");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, now) = app.predict(&patient()).await;
        if now["model_version"] == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the promotion never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let info: Value = client()
        .get(app.url("/model/info"))
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    assert_eq!(
        (info["version"].as_i64(), info["kind"].as_str()),
        (Some(1), Some("lr"))
    );
}

#[tokio::test]
async fn without_a_production_model_ready_says_so_and_predict_is_unavailable() {
    let app = spawn_app().await;
    let ready = client().get(app.url("/ready")).send().await.expect("ready");
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.expect("json");
    assert!(
        body["checks"]["model"]
            .as_str()
            .expect("model")
            .contains("no version"),
        "{body}"
    );
    let (status, err) = app.predict(&patient()).await;
    assert_eq!((status, err["error"].as_str()), (503, Some("unavailable")));

    let docs = client()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("openapi");
    let spec: Value = docs.json().await.expect("json");
    for path in [
        "/predict",
        "/invocations",
        "/model/info",
        "/feedback",
        "/ready",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    let page = client().get(app.url("/docs/")).send().await.expect("docs");
    assert_eq!(page.status(), 200);
    assert!(
        page.text().await.expect("html").contains("swagger"),
        "the docs page is Swagger UI"
    );
}

#[tokio::test]
async fn a_token_can_be_required_for_predictions() {
    let app = spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![ModelKind::Lr];
        s.serving.require_token = true;
    })
    .await;
    let (status, _) = app.predict(&patient()).await;
    assert_eq!(status, 401);
    let token = app.admin_token().await;
    let ok = client()
        .post(app.url("/predict"))
        .bearer_auth(&token)
        .json(&patient())
        .send()
        .await
        .expect("predict");
    assert_eq!(ok.status(), 200);
}

/// Backpressure: while the store refuses writes, the log's queue fills and the next caller
/// waits instead of dropping rows; once the store takes writes again, everything is stored.
#[tokio::test]
async fn a_full_prediction_log_makes_callers_wait_and_loses_nothing() {
    use diesel::RunQueryDsl;
    use steward::db::DbConnection;
    use steward::serving::log::{Batching, PredictionLog, PredictionRow};

    let app = spawn_app().await;
    let db = steward::db::Db::connect(&app.settings.database).expect("store");
    let row = |i: i64| PredictionRow {
        request_id: uuid::Uuid::now_v7().to_string(),
        created_at: chrono::Utc::now().naive_utc(),
        model: "heart-disease".into(),
        model_version: 1,
        endpoint: "predict".into(),
        features_json: "[]".into(),
        probability: 0.5,
        prediction: 1,
        latency_us: i,
        batch_rows: 1,
    };
    // Another connection holds a write lock on the log's table.
    let mut locker = db.get().expect("conn");
    let lock = match &mut *locker {
        DbConnection::Sqlite(_) => vec!["BEGIN EXCLUSIVE"],
        DbConnection::Postgres(_) => vec!["BEGIN", "LOCK TABLE predictions IN EXCLUSIVE MODE"],
    };
    for statement in lock {
        diesel::sql_query(statement)
            .execute(&mut *locker)
            .expect("lock");
    }

    let log = PredictionLog::start(
        db.clone(),
        2,
        Batching {
            batch: 1,
            linger: std::time::Duration::ZERO,
            wait: std::time::Duration::from_secs(60),
        },
    )
    .expect("log writer");
    log.record(vec![row(1), row(2)])
        .await
        .expect("two rows fit the queue");
    assert_eq!(log.depth(), 2);
    let waiting = tokio::spawn({
        let log = log.clone();
        async move { log.record(vec![row(3)]).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a caller waits while the queue is full"
    );

    diesel::sql_query("COMMIT")
        .execute(&mut *locker)
        .expect("unlock");
    drop(locker);
    tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .expect("the waiting caller gets in once rows are stored")
        .expect("task")
        .expect("queued");
    log.flush().await.expect("flush");
    let mut conn = db.get().expect("conn");
    let recent = steward::serving::log::recent(&mut conn, 10).expect("count");
    assert_eq!(recent.total, 3, "nothing was dropped");
    let mut latencies: Vec<i64> = recent.rows.iter().map(|(r, _)| r.latency_us).collect();
    latencies.sort();
    assert_eq!(latencies, [1, 2, 3]);
    assert_eq!(log.depth(), 0);
}
