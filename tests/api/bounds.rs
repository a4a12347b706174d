//! The open serving endpoints are bounded: what a request costs is bounded by its size and by
//! config, a name given twice is refused, library calls and large batches leave the workers
//! free, the prediction log neither hangs nor loses rows, and concurrent writes never fail as
//! "database is locked".

use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use serde_json::{Value, json};
use steward::db::DbConnection;
use steward::ml::models::ModelKind;

use crate::helpers::{TestApp, client, spawn_app_with};

fn patient() -> Value {
    json!({"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2,
           "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6})
}

const NAMES: [&str; 13] = [
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak",
    "slope", "ca", "thal",
];

async fn serving_app(
    models: &[ModelKind],
    customize: impl FnOnce(&mut steward::config::Settings),
) -> TestApp {
    let models = models.to_vec();
    spawn_app_with(move |s| {
        s.training.on_first_start = true;
        s.training.models = models;
        s.training.rf.trees = 30;
        customize(s);
    })
    .await
}

/// A 20 KB columnar body once cost rows × keys × value size (about a gigabyte): only schema
/// columns may set the row count or be broadcast, an unknown key is refused once, arrays of
/// different lengths are named with their lengths, and the error list is capped.
#[tokio::test]
async fn columnar_inputs_cost_what_their_size_allows() {
    let app = serving_app(&[ModelKind::Lr], |_| {}).await;
    let mut inputs = serde_json::Map::new();
    inputs.insert("age".into(), json!(vec![63; 4000]));
    for i in 0..300 {
        inputs.insert(format!("k{i}"), json!("v".repeat(40)));
    }
    let body = json!({ "inputs": inputs }).to_string();
    assert!(body.len() > 20_000, "{}", body.len());
    let started = Instant::now();
    let (status, out) = app.post("/invocations", "application/json", body).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(status, 422, "{out}");
    let details = out["details"].as_array().expect("details");
    assert!(details.len() <= 101, "{}", details.len());
    assert!(
        details
            .iter()
            .all(|d| d["message"] == "unknown field" || d["field"] == "…")
    );
    assert!(out.to_string().len() < 20_000, "the answer is bounded too");
    // The message counts every error, the details list 100 and count the rest.
    let total: usize = out["message"]
        .as_str()
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count first");
    let rest: usize = details
        .last()
        .and_then(|d| d["message"].as_str())
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("the rest counted");
    assert!(
        total >= 300 && total == details.len() - 1 + rest,
        "{total} vs {rest}: {out}"
    );

    // Arrays of different lengths: each column and its length, never padded and scored.
    let (status, out) = app
        .post(
            "/invocations",
            "application/json",
            json!({ "inputs": { "age": [63, 41, 50], "sex": [1, 0] } }).to_string(),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    let text = out.to_string();
    assert!(
        text.contains("inputs.age") && text.contains("has 3 values"),
        "{text}"
    );
    assert!(
        text.contains("inputs.sex") && text.contains("has 2 values"),
        "{text}"
    );

    // A broadcast value that is not a scalar.
    let mut one = patient();
    one["thal"] = json!({ "nested": [1, 2, 3] });
    let (status, out) = app
        .post(
            "/invocations",
            "application/json",
            json!({ "inputs": one }).to_string(),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(out.to_string().contains("inputs.thal"), "{out}");

    // Scalars broadcast to the arrays' length: two rows.
    let mut columns = serde_json::Map::new();
    for name in NAMES {
        columns.insert(name.into(), patient()[name].clone());
    }
    columns.insert("age".into(), json!([63, 41]));
    let (status, out) = app
        .post(
            "/invocations",
            "application/json",
            json!({ "inputs": columns }).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["predictions"].as_array().map(Vec::len), Some(2));

    // No error echoes an unbounded value: a category of 100 KB comes back cut short.
    let mut long = patient();
    long["thal"] = json!("x".repeat(100_000));
    let (status, out) = app.predict(&long).await;
    assert_eq!(status, 422);
    assert!(out.to_string().len() < 2_000, "{}", out.to_string().len());
    let mut keys = serde_json::Map::new();
    for i in 0..50 {
        keys.insert(format!("{i}{}", "k".repeat(2_000)), json!(1));
    }
    let (status, out) = app
        .post(
            "/invocations",
            "application/json",
            Value::Object(keys).to_string(),
        )
        .await;
    assert_eq!(status, 400);
    assert!(out.to_string().len() < 2_000, "{}", out.to_string().len());
}

/// A name given twice is refused with the name, wherever a name can repeat: the ambiguous
/// value might be the out-of-range one.
#[tokio::test]
async fn a_name_given_twice_is_refused() {
    let app = serving_app(&[ModelKind::Lr], |_| {}).await;
    let body = patient()
        .to_string()
        .replacen("\"age\":63", "\"age\":63,\"age\":999", 1);
    assert!(body.contains("\"age\":999"), "{body}");
    let (status, out) = app.post("/predict", "application/json", body.clone()).await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or("")
            .contains("`age` is given twice"),
        "{out}"
    );
    let batch = format!("{{\"instances\": [{body}]}}");
    let (status, out) = app.post("/predict", "application/json", batch).await;
    assert_eq!(status, 400, "{out}");
    let (status, out) = app
        .post(
            "/invocations",
            "application/json",
            format!("{{\"dataframe_records\": [{body}]}}"),
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or("")
            .contains("`age` is given twice"),
        "{out}"
    );

    let mut columns: Vec<&str> = NAMES.to_vec();
    columns.push("age");
    let mut row: Vec<Value> = NAMES.iter().map(|n| patient()[n].clone()).collect();
    row.push(json!(999));
    let (status, out) = app
        .post(
            "/invocations",
            "application/json",
            json!({ "dataframe_split": { "columns": columns, "data": [row] } }).to_string(),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(
        out.to_string().contains("dataframe_split.columns.age")
            && out.to_string().contains("twice"),
        "{out}"
    );

    let csv = format!(
        "{},age\n63,1,1,145,233,1,2,150,0,2.3,3,0,6,999\n",
        NAMES.join(",")
    );
    let (status, out) = app.post("/invocations", "text/csv", csv).await;
    assert_eq!(status, 422, "{out}");
    assert!(out.to_string().contains("header.age"), "{out}");

    // The JSON API's bodies and query strings, too.
    let token = app.admin_token().await;
    let (status, out) = app
        .post_as(
            Some(&token),
            "/api/v1/tokens",
            "application/json",
            r#"{"name": "a", "name": "b"}"#,
        )
        .await;
    assert_eq!(status, 400, "{out}");
    assert!(out.to_string().contains("duplicate field `name`"), "{out}");
    let (status, out) = app
        .get_json(&token, "/api/v1/audit?limit=1&limit=500")
        .await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["error"], "bad_request", "{out}");
    let response = client()
        .get(app.url("/api/v1/me"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Authorization", "Bearer stw_someone_else")
        .send()
        .await
        .expect("me");
    assert_eq!(response.status(), 400);
}

/// Explanations call the XGBoost library: off the workers, a few at a time, and 503 with
/// Retry-After past `serving.offload_wait_ms`. `/health` keeps answering while they run.
#[tokio::test]
async fn explain_batches_leave_the_workers_free() {
    let app = serving_app(&[ModelKind::Xgb], |s| {
        s.server.workers = 1;
        s.serving.library_concurrency = 1;
        s.serving.offload_wait_ms = 20;
        s.serving.max_explain_batch = 100;
    })
    .await;
    let batch = json!({ "instances": vec![patient(); 100] }).to_string();
    let too_many = json!({ "instances": vec![patient(); 101] }).to_string();
    let (status, out) = app
        .post("/predict?explain=true", "application/json", too_many)
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(
        out.to_string().contains("serving.max_explain_batch"),
        "{out}"
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..6 {
        let (url, body, stop) = (
            app.url("/predict?explain=true"),
            batch.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let c = client();
            let (mut ok, mut busy) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("explain");
                match r.status().as_u16() {
                    200 => ok += 1,
                    503 => {
                        assert_eq!(r.headers()["retry-after"], "1");
                        busy += 1;
                    }
                    other => panic!("explain answered {other}"),
                }
            }
            (ok, busy)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let started = Instant::now();
        let r = client()
            .get(app.url("/health"))
            .send()
            .await
            .expect("health");
        assert_eq!(r.status(), 200);
        worst = worst.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut busy) = (0, 0);
    for task in load {
        let (o, b) = task.await.expect("load task");
        ok += o;
        busy += b;
    }
    assert!(ok > 0, "explanations were served");
    assert!(busy > 0, "a saturated library answers 503 (served {ok})");
    // One worker, six clients explaining 100 rows each: /health never waits behind them.
    assert!(
        worst < Duration::from_millis(500),
        "/health took {worst:?} while explanations ran"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("steward_serving_saturated_total{pool=\"library\"}"),
        "counted"
    );
}

/// A batch over `serving.offload_rows` is scored on the blocking pool: with one HTTP worker
/// busy scoring large forest batches, /health still answers at once.
#[tokio::test]
async fn large_batches_are_scored_off_the_workers() {
    let app = serving_app(&[ModelKind::Rf], |s| {
        s.server.workers = 1;
        s.serving.offload_rows = 10;
        s.serving.offload_concurrency = 1;
        s.serving.offload_wait_ms = 60_000;
        s.training.rf.trees = 200;
    })
    .await;
    let batch = json!({ "instances": vec![patient(); 5000] }).to_string();
    let mut load = Vec::new();
    for _ in 0..3 {
        let (url, body) = (app.url("/predict"), batch.clone());
        load.push(tokio::spawn(async move {
            let started = Instant::now();
            let r = client()
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .expect("batch");
            assert_eq!(r.status(), 200);
            started.elapsed()
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let started = Instant::now();
        assert_eq!(app.get("/health").await.status(), 200);
        worst = worst.max(started.elapsed());
    }
    let mut slowest = Duration::ZERO;
    for task in load {
        slowest = slowest.max(task.await.expect("batch task"));
    }
    assert!(
        worst < slowest / 2 || worst < Duration::from_millis(200),
        "/health took {worst:?} while batches took up to {slowest:?}"
    );
}

/// A row the store always refuses (a trigger here) is retried, isolated and set aside in the
/// dead letters, counted and shown; the log goes on storing every other row.
#[tokio::test]
async fn a_poison_row_goes_to_the_dead_letters_and_blocks_nothing() {
    let app = serving_app(&[ModelKind::Lr], |s| s.serving.log_linger_ms = 0).await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let statements: &[&str] = match &*conn {
        DbConnection::Sqlite(_) => &["CREATE TRIGGER poison BEFORE INSERT ON predictions \
              WHEN NEW.features_json LIKE '[66.5,%' BEGIN SELECT RAISE(ABORT, 'poison row'); END"],
        DbConnection::Postgres(_) => &[
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.features_json LIKE '[66.5,%' THEN RAISE EXCEPTION 'poison row'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER poison BEFORE INSERT ON predictions FOR EACH ROW EXECUTE FUNCTION poison()",
        ],
    };
    for statement in statements {
        diesel::sql_query(*statement)
            .execute(&mut *conn)
            .expect("trigger");
    }
    drop(conn);
    let mut poisoned = patient();
    poisoned["age"] = json!(66.5);
    let batch = json!({ "instances": [patient(), poisoned.clone(), patient()] });
    let (status, out) = app.predict(&batch).await;
    assert_eq!(status, 200, "{out}");
    let poison_id = out[1]["request_id"].as_str().expect("id").to_owned();
    for _ in 0..5 {
        let (status, _) = app.predict(&patient()).await;
        assert_eq!(status, 200);
    }
    let token = app.admin_token().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let log = loop {
        let (_, log) = app.get_json(&token, "/api/v1/predictions?limit=1").await;
        if log["dead_letters"] == 1 && log["total"] == 7 {
            break log;
        }
        assert!(Instant::now() < deadline, "the log never settled: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(log["total"], 7, "every other row is stored");
    let (_, dead) = app
        .get_json(&token, "/api/v1/predictions/dead-letters")
        .await;
    assert_eq!(dead["total"], 1, "{dead}");
    let letter = &dead["dead_letters"][0];
    assert_eq!(letter["request_id"], poison_id.as_str());
    assert!(
        letter["error"]
            .as_str()
            .unwrap_or("")
            .contains("poison row"),
        "{letter}"
    );
    assert!(letter["row"]["probability"].is_number(), "{letter}");
    // The log keeps going after it.
    let (status, _) = app.predict(&patient()).await;
    assert_eq!(status, 200);
    app.login_admin().await;
    let page = app.get("/predictions").await.text().await.expect("page");
    assert!(
        page.contains(r#"id="dead-letters">1<"#) && page.contains(&poison_id),
        "{page}"
    );
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("steward_prediction_log_dead_letters_total"),
        "counted"
    );
}

/// A store that refuses every row for a while (a lock or statement timeout, a full disk: on
/// PostgreSQL these reach Steward without a code that says so) is the store's trouble, not the
/// rows': the writer's probe row is refused too, so the rows wait and are stored once the
/// store takes rows again, and nothing goes to the dead letters.
#[tokio::test]
async fn a_store_refusing_everything_for_a_while_sends_nothing_to_the_dead_letters() {
    let app = serving_app(&[ModelKind::Lr], |s| s.serving.log_linger_ms = 0).await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let statements: &[&str] = match &*conn {
        DbConnection::Sqlite(_) => &[
            "CREATE TABLE outage (id INTEGER)",
            "CREATE TRIGGER outage BEFORE INSERT ON predictions \
             WHEN EXISTS (SELECT 1 FROM outage) BEGIN SELECT RAISE(ABORT, 'store trouble'); END",
        ],
        DbConnection::Postgres(_) => &[
            "CREATE TABLE outage (id INTEGER)",
            "CREATE FUNCTION outage() RETURNS trigger AS $$ BEGIN \
             IF EXISTS (SELECT 1 FROM outage) THEN RAISE EXCEPTION 'store trouble'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER outage BEFORE INSERT ON predictions FOR EACH ROW EXECUTE FUNCTION outage()",
        ],
    };
    for statement in statements {
        diesel::sql_query(*statement)
            .execute(&mut *conn)
            .expect("trigger");
    }
    diesel::sql_query("INSERT INTO outage VALUES (1)")
        .execute(&mut *conn)
        .expect("outage");
    let batch = json!({ "instances": [patient(), patient(), patient()] });
    let (status, out) = app.predict(&batch).await;
    assert!(status == 200 || status == 503, "{status} {out}");
    // Longer than the writer's whole-batch attempts and its row-by-row pass would take.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    diesel::sql_query("DELETE FROM outage")
        .execute(&mut *conn)
        .expect("outage over");
    drop(conn);
    let token = app.admin_token().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, log) = app.get_json(&token, "/api/v1/predictions?limit=1").await;
        assert_eq!(log["dead_letters"], 0, "{log}");
        if log["total"] == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the log never settled: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While the store refuses writes, a full queue makes requests wait at most
/// `serving.log_wait_ms`; then they are answered 503 with Retry-After (counted), and nothing
/// that was answered 200 is lost once the store is back.
#[tokio::test]
async fn a_full_log_answers_503_past_its_deadline() {
    let app = serving_app(&[ModelKind::Lr], |s| {
        s.serving.log_queue = 2;
        s.serving.log_batch = 1;
        s.serving.log_linger_ms = 0;
        s.serving.log_wait_ms = 300;
    })
    .await;
    // Let the first-start rows settle, then hold the store's write lock from outside.
    let db = app.store();
    let mut locker = db.get().expect("conn");
    let lock: &[&str] = match &*locker {
        DbConnection::Sqlite(_) => &["BEGIN EXCLUSIVE"],
        DbConnection::Postgres(_) => &["BEGIN", "LOCK TABLE predictions IN EXCLUSIVE MODE"],
    };
    for statement in lock {
        diesel::sql_query(*statement)
            .execute(&mut *locker)
            .expect("lock");
    }
    let mut answered = 0;
    let mut refused = 0;
    let started = Instant::now();
    for _ in 0..5 {
        let response = client()
            .post(app.url("/predict"))
            .header("Content-Type", "application/json")
            .body(patient().to_string())
            .send()
            .await
            .expect("predict");
        match response.status().as_u16() {
            200 => answered += 1,
            503 => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.expect("json");
                assert_eq!(body["error"], "overloaded", "{body}");
                refused += 1;
            }
            other => panic!("answered {other}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no request hung: {:?}",
        started.elapsed()
    );
    assert!(refused >= 2, "answered {answered}, refused {refused}");
    diesel::sql_query("COMMIT")
        .execute(&mut *locker)
        .expect("unlock");
    drop(locker);
    let token = app.admin_token().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, log) = app.get_json(&token, "/api/v1/predictions?limit=1").await;
        if log["total"] == answered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "answered {answered}, stored {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        metrics.contains("steward_prediction_log_rejected_total"),
        "counted"
    );
}

/// Sixteen labels at once, on either backend: every one stored, and two for one prediction
/// give one 201 and one 409, never a 500 ("database is locked").
#[tokio::test]
async fn concurrent_feedback_is_stored_or_refused_never_failed() {
    let app = serving_app(&[ModelKind::Lr], |s| s.database.pool_size = 8).await;
    let token = app.admin_token().await;
    let mut ids = Vec::new();
    for _ in 0..17 {
        let (_, out) = app.predict(&patient()).await;
        ids.push(out["request_id"].as_str().expect("id").to_owned());
    }
    let send = |id: String, label: i64| {
        let (url, token) = (app.url("/feedback"), token.clone());
        tokio::spawn(async move {
            client()
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "request_id": id, "label": label }))
                .send()
                .await
                .expect("feedback")
                .status()
                .as_u16()
        })
    };
    let distinct: Vec<_> = ids[..16].iter().map(|id| send(id.clone(), 1)).collect();
    for task in distinct {
        assert_eq!(task.await.expect("task"), 201);
    }
    let same: Vec<_> = (0..16).map(|i| send(ids[16].clone(), i % 2)).collect();
    let mut statuses = Vec::new();
    for task in same {
        statuses.push(task.await.expect("task"));
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        15,
        "{statuses:?}"
    );
}

/// Metric labels come from fixed sets: an invented method is `other`.
#[tokio::test]
async fn clients_cannot_invent_metric_series() {
    let app = serving_app(&[ModelKind::Lr], |_| {}).await;
    let answer = app
        .raw_http("FROBNICATE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    let mut bad = patient();
    bad["no_such_feature_abcdef"] = json!(1);
    app.predict(&bad).await;
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(
        !metrics.contains("FROBNICATE"),
        "an invented method makes no series"
    );
    assert!(
        metrics.contains("method=\"other\""),
        "it is counted as other"
    );
    assert!(!metrics.contains("no_such_feature_abcdef"));
}

/// What open endpoints make Steward hold is bounded: bodies held at once share
/// `serving.inflight_body_bytes` (a body that would pass it waits, then gets 503 with
/// Retry-After), and a body that takes longer than `serving.body_read_secs` to arrive is a 408.
#[tokio::test]
async fn bodies_held_at_once_are_bounded_and_slow_ones_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = serving_app(&[ModelKind::Lr], |s| {
        s.serving.body_limit_bytes = 1 << 20;
        s.serving.inflight_body_bytes = 1 << 20;
        s.serving.offload_wait_ms = 200;
        s.serving.body_read_secs = 2;
    })
    .await;
    // A slow sender declares nearly the whole budget and sends a little of it.
    let address = app
        .url("")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(
        format!(
            "POST /predict HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{{\"instances\": [",
            (1 << 20) - 100
        )
        .as_bytes(),
    )
    .await
    .expect("headers");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another body finds no room: 503 with Retry-After, after the wait.
    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/predict"))
        .json(&patient())
        .send()
        .await
        .expect("predict");
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The slow body runs out of time: 408, and its room comes back.
    let mut answer = vec![0_u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    let head = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    let (status, out) = app.predict(&patient()).await;
    assert_eq!(status, 200, "{out}");
}
