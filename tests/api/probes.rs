use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_is_open_and_ok() {
    let app = spawn_app().await;
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn ready_reports_database_migrations_and_the_model() {
    // No model trained on this start: the store is fine, but nothing can be served yet.
    let app = spawn_app().await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");

    let app = spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![steward::ml::models::ModelKind::Lr];
    })
    .await;
    let response = app.get("/ready").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["model"], "heart-disease v1");
}

#[tokio::test]
async fn metrics_carry_red_and_process_metrics_and_pass_promtool() {
    let app = spawn_app().await;
    app.get("/health").await;
    app.get("/no/such/page/42").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("text");

    for needle in [
        r#"http_requests_total{method="GET",route="/health",status="200"}"#,
        "http_request_duration_seconds_bucket{",
        "# TYPE http_request_duration_seconds histogram",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    }
    // Unmatched paths share one label: a raw path never becomes a label value.
    assert!(!text.contains("/no/such/page/42"), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (make test installs the prometheus package)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = promtool.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn oversized_bodies_get_413_with_the_error_contract() {
    let app = spawn_app_with_limit(2048).await;
    let token = app.admin_token().await;
    let big = "x".repeat(4096);
    let response = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "username": "bob", "password": big, "role": "viewer" }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "payload_too_large");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("2048")
    );

    // Nothing was half-written: bob does not exist.
    let users: serde_json::Value = app
        .client
        .get(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(!users.to_string().contains("\"bob\""), "{users}");

    // Forms are limited the same way.
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[("username", "admin"), ("password", big.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 413);
}

async fn spawn_app_with_limit(limit: usize) -> crate::helpers::TestApp {
    crate::helpers::spawn_app_with(|s| s.server.body_limit_bytes = limit).await
}

#[tokio::test]
async fn malformed_json_is_a_400_naming_the_problem() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let response = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{\"username\": ")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "bad_request");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("malformed JSON")
    );
}
