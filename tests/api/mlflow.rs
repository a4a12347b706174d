//! MLflow's protocols over HTTP, as MLflow's client speaks them (see tests/mlflow/INVENTORY.md
//! for what mlflow-skinny 3.17.2 sends): the scoring server's `/ping`, `/version` and
//! `/invocations` with `NaN`, and the tracking and registry REST API with MLflow's rules,
//! limits, error codes and auth. The real client drives the same endpoints in
//! tests/mlflow/test_mlflow_client.py (run by `make test`).

use serde_json::{Value, json};
use steward::ml::models::ModelKind;

use crate::helpers::{TestApp, client, spawn_app_with};

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![ModelKind::Lr];
        s.auth.login_attempts_per_minute = 100;
    })
    .await
}

async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    body: &str,
    auth: Option<&str>,
) -> (u16, Value) {
    let method: reqwest::Method = method.parse().expect("method");
    let mut request = client()
        .request(method, app.url(path))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some(auth) = auth {
        request = request.header("Authorization", auth);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn ml(app: &TestApp, token: &str, method: &str, endpoint: &str, body: Value) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    if method == "GET" {
        let response = client()
            .get(app.url(&format!("/api/2.0/mlflow/{endpoint}")))
            .header("Authorization", bearer)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        return (status, response.json().await.unwrap_or(Value::Null));
    }
    raw(
        app,
        method,
        &format!("/api/2.0/mlflow/{endpoint}"),
        &body.to_string(),
        Some(&bearer),
    )
    .await
}

const COLUMNS: &str = r#"["age","sex","cp","trestbps","chol","fbs","restecg","thalach","exang","oldpeak","slope","ca","thal"]"#;

#[tokio::test]
async fn the_scoring_server_reads_mlflows_json_and_answers_in_its_shapes() {
    let app = app().await;
    let ping = client().get(app.url("/ping")).send().await.expect("ping");
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.expect("body"), "");
    let version = client()
        .get(app.url("/version"))
        .send()
        .await
        .expect("version");
    assert_eq!(version.status(), 200);
    assert_eq!(
        version.text().await.expect("body"),
        env!("CARGO_PKG_VERSION")
    );

    // Python's json: NaN for a missing value, as pandas frames with missing values are sent
    // by MLflow's client (Hungarian rows: chol and ca missing), with an index and params.
    let body = format!(
        r#"{{"dataframe_split": {{"index": [0, 1], "columns": {COLUMNS}, "data": [[28.0, 1, 2, 130.0, NaN, 0, 2, 185.0, 0, 0.0, NaN, NaN, NaN], [29.0, 1, 2, 120.0, 243.0, 0, 0, 160.0, 0, 0.0, NaN, NaN, 6.0]]}}, "params": {{"temperature": 1}}}}"#
    );
    let (status, out) = raw(&app, "POST", "/invocations", &body, None).await;
    assert_eq!(status, 200, "{out}");
    let predictions = out["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), 2);
    assert!(predictions.iter().all(|p| p == 0 || p == 1), "{out}");

    // An infinite value is a 422 naming the field, in MLflow's shape.
    let body = format!(
        r#"{{"dataframe_split": {{"columns": {COLUMNS}, "data": [[28.0, 1, 2, 130.0, 200, 0, 2, 185.0, 0, -Infinity, 1, 0, 3]]}}}}"#
    );
    let (status, out) = raw(&app, "POST", "/invocations", &body, None).await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(out["error_code"], "BAD_REQUEST", "{out}");
    let message = out["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("oldpeak") && message.contains("-Infinity"),
        "{out}"
    );
    assert!(out.get("error").is_none(), "no Steward-shaped key: {out}");

    // "NaN" inside a string is a string, not a missing value.
    let body = format!(
        r#"{{"dataframe_split": {{"columns": {COLUMNS}, "data": [[28.0, 1, 2, 130.0, 200, 0, 2, 185.0, 0, 0, 1, 0, "NaN"]]}}}}"#
    );
    let (status, out) = raw(&app, "POST", "/invocations", &body, None).await;
    assert_eq!(status, 422, "{out}");
    assert!(
        out["message"].as_str().unwrap_or_default().contains("thal"),
        "{out}"
    );

    // An index that does not match the rows, an unknown key, params that are no object.
    let body =
        format!(r#"{{"dataframe_split": {{"index": [0], "columns": {COLUMNS}, "data": []}}}}"#);
    let (status, out) = raw(&app, "POST", "/invocations", &body, None).await;
    assert!(status == 422 || status == 400, "{status} {out}");
    assert!(out["error_code"].is_string(), "{out}");
    for body in [
        r#"{"instances": [[63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6]], "extra": 1}"#,
        r#"{"instances": [[63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6]], "params": [1]}"#,
        r#"{"instances": [[63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6]"#,
    ] {
        let (status, out) = raw(&app, "POST", "/invocations", body, None).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert_eq!(out["error_code"], "BAD_REQUEST", "{out}");
    }
    // Lists of lists under `instances` and `inputs` answer MLflow's shape.
    for key in ["instances", "inputs"] {
        let body = format!(r#"{{"{key}": [[63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6]]}}"#);
        let (status, out) = raw(&app, "POST", "/invocations", &body, None).await;
        assert_eq!(status, 200, "{out}");
        assert_eq!(
            out["predictions"].as_array().map(Vec::len),
            Some(1),
            "{out}"
        );
    }
    // /predict stays strict JSON.
    let (status, _) = app
        .post("/predict", "application/json", r#"{"age": NaN}"#.to_owned())
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_tracking_session_follows_mlflows_rules_and_is_audited() {
    let app = app().await;
    let admin = app.admin_token().await;
    let viewer = app.user_token(&admin, "vera", "viewer").await;

    // Unknown names are MLflow's RESOURCE_DOES_NOT_EXIST (the client then creates).
    let (status, out) = ml(
        &app,
        &admin,
        "GET",
        "experiments/get-by-name?experiment_name=tracked",
        json!(null),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST")),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "experiments/create",
        json!({"name": "tracked"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let exp = out["experiment_id"].as_str().expect("id").to_owned();
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "experiments/create",
        json!({"name": "tracked"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS")),
        "{out}"
    );
    let (_, out) = ml(
        &app,
        &admin,
        "GET",
        &format!("experiments/get?experiment_id={exp}"),
        json!(null),
    )
    .await;
    assert_eq!(out["experiment"]["name"], "tracked");
    assert_eq!(
        out["experiment"]["artifact_location"],
        format!("mlflow-artifacts:/{exp}")
    );

    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/create",
        json!({
            "experiment_id": exp, "run_name": "first", "start_time": 1_764_000_000_000i64,
            "tags": [{"key": "mlflow.user", "value": "ada"}], "user_id": "ada"
        }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let run = out["run"]["info"]["run_id"]
        .as_str()
        .expect("run id")
        .to_owned();
    assert_eq!(out["run"]["info"]["status"], "RUNNING");
    assert_eq!(out["run"]["info"]["run_name"], "first");
    assert_eq!(
        out["run"]["info"]["artifact_uri"],
        format!("mlflow-artifacts:/{exp}/{run}/artifacts")
    );

    // Params are immutable once logged; the same value again is fine.
    let param = |v: &str| json!({"run_id": run, "run_uuid": run, "key": "model", "value": v});
    assert_eq!(
        ml(&app, &admin, "POST", "runs/log-parameter", param("lr"))
            .await
            .0,
        200
    );
    assert_eq!(
        ml(&app, &admin, "POST", "runs/log-parameter", param("lr"))
            .await
            .0,
        200
    );
    let (status, out) = ml(&app, &admin, "POST", "runs/log-parameter", param("rf")).await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Changing param values is not allowed"),
        "{out}"
    );

    // Metrics are append-only points: two values at one step are both kept, in order.
    for (value, ts, step) in [(0.9, 1, 0), (0.7, 2, 1), (0.6, 3, 1), (0.5, 4, 2)] {
        let (status, out) = ml(&app, &admin, "POST", "runs/log-metric", json!({
            "run_id": run, "key": "loss", "value": value, "timestamp": 1_764_000_000_000i64 + ts, "step": step
        })).await;
        assert_eq!(status, 200, "{out}");
    }
    let (_, out) = ml(
        &app,
        &admin,
        "GET",
        &format!("metrics/get-history?run_id={run}&metric_key=loss"),
        json!(null),
    )
    .await;
    let steps: Vec<(i64, f64)> = out["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                m["step"].as_i64().unwrap_or(-1),
                m["value"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(steps, [(0, 0.9), (1, 0.7), (1, 0.6), (2, 0.5)]);

    // A batch over MLflow's limits is refused whole, with MLflow's message.
    let metrics: Vec<Value> = (0..1001)
        .map(|i| json!({"key": format!("m{i}"), "value": 1.0, "timestamp": 1, "step": 0}))
        .collect();
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/log-batch",
        json!({"run_id": run, "metrics": metrics}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("at most 1000 metrics"),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/log-batch",
        json!({
            "run_id": run,
            "metrics": [{"key": "acc", "value": 0.8, "timestamp": 5, "step": 0, "run_id": run}],
            "params": [{"key": "depth", "value": "3"}],
            "tags": [{"key": "team", "value": "heart"}],
        }),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    // A NUL never reaches the store (PostgreSQL refuses it): 400, in a body or a query.
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/set-tag",
        json!({"run_id": run, "key": "a", "value": "b\u{0}c"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "GET",
        "experiments/get-by-name?experiment_name=a%00b",
        json!(null),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    // An unknown field is refused, never ignored.
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/set-tag",
        json!({"run_id": run, "key": "a", "value": "b", "colour": 1}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    assert_eq!(
        ml(
            &app,
            &admin,
            "POST",
            "runs/delete-tag",
            json!({"run_id": run, "key": "team"})
        )
        .await
        .0,
        200
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/delete-tag",
        json!({"run_id": run, "key": "team"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (404, Some("RESOURCE_DOES_NOT_EXIST")),
        "{out}"
    );
    let (status, out) = ml(&app, &admin, "POST", "runs/update", json!({"run_id": run, "run_uuid": run, "status": "FINISHED", "end_time": 1_764_000_100_000i64})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["run_info"]["status"], "FINISHED");

    // Search: a filter on metrics, params and tags; order; pages.
    let (_, other) = ml(
        &app,
        &admin,
        "POST",
        "runs/create",
        json!({"experiment_id": exp, "run_name": "second"}),
    )
    .await;
    let second = other["run"]["info"]["run_id"]
        .as_str()
        .expect("id")
        .to_owned();
    ml(&app, &admin, "POST", "runs/log-batch", json!({"run_id": second, "metrics": [{"key": "acc", "value": 0.95, "timestamp": 9, "step": 0}], "params": [{"key": "model", "value": "rf"}]})).await;
    let search = |filter: &str, order: Value, max: i64| json!({"experiment_ids": [exp], "filter": filter, "order_by": order, "max_results": max});
    let (status, out) = ml(
        &app,
        &viewer,
        "POST",
        "runs/search",
        search("metrics.acc > 0.5 and params.model = 'lr'", json!([]), 10),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let ids: Vec<&str> = out["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["info"]["run_id"].as_str())
        .collect();
    assert_eq!(ids, [run.as_str()]);
    assert_eq!(
        out["runs"][0]["data"]["params"].as_array().map(Vec::len),
        Some(2)
    );
    let (_, out) = ml(
        &app,
        &viewer,
        "POST",
        "runs/search",
        search("", json!(["metrics.acc DESC"]), 1),
    )
    .await;
    assert_eq!(out["runs"][0]["info"]["run_id"], second.as_str());
    let token = out["next_page_token"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, out) = ml(&app, &viewer, "POST", "runs/search", json!({"experiment_ids": [exp], "order_by": ["metrics.acc DESC"], "max_results": 1, "page_token": token})).await;
    assert_eq!(out["runs"][0]["info"]["run_id"], run.as_str());
    assert!(out.get("next_page_token").is_none(), "{out}");
    let (status, out) = ml(
        &app,
        &viewer,
        "POST",
        "runs/search",
        search("metrics.acc > 'x'", json!([]), 10),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );

    // Delete hides, restore brings back.
    assert_eq!(
        ml(
            &app,
            &admin,
            "POST",
            "runs/delete",
            json!({"run_id": second})
        )
        .await
        .0,
        200
    );
    let (_, out) = ml(
        &app,
        &viewer,
        "POST",
        "runs/search",
        search("", json!([]), 10),
    )
    .await;
    assert_eq!(out["runs"].as_array().map(Vec::len), Some(1));
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/log-parameter",
        json!({"run_id": second, "key": "x", "value": "1"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "a deleted run takes nothing: {out}"
    );
    assert_eq!(
        ml(
            &app,
            &admin,
            "POST",
            "runs/restore",
            json!({"run_id": second})
        )
        .await
        .0,
        200
    );
    let (_, out) = ml(
        &app,
        &viewer,
        "POST",
        "runs/search",
        search("", json!([]), 10),
    )
    .await;
    assert_eq!(out["runs"].as_array().map(Vec::len), Some(2));

    // Roles: a viewer reads but cannot write (MLflow's PERMISSION_DENIED); nobody is 401.
    let (status, out) = ml(
        &app,
        &viewer,
        "POST",
        "runs/log-parameter",
        json!({"run_id": run, "key": "y", "value": "1"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{out}"
    );
    let (status, out) = raw(
        &app,
        "GET",
        "/api/2.0/mlflow/experiments/get?experiment_id=0",
        "",
        None,
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{out}"
    );
    let (status, out) = raw(&app, "GET", "/api/2.0/mlflow/no/such/endpoint", "", None).await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (404, Some("ENDPOINT_NOT_FOUND")),
        "{out}"
    );

    // A run Steward trained stays as trained.
    let (_, runs) = app.get_json(&admin, "/api/v1/runs").await;
    let trained = runs
        .as_array()
        .and_then(|r| r.iter().find(|r| r["model_kind"] != "mlflow"))
        .expect("a trained run");
    let trained_id = trained["id"].as_str().expect("id");
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/set-tag",
        json!({"run_id": trained_id, "key": "a", "value": "b"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &viewer,
        "GET",
        &format!("runs/get?run_id={trained_id}"),
        json!(null),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert!(
        out["run"]["data"]["metrics"]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "{out}"
    );

    // What the client logged is Steward's run like any other.
    let (status, out) = app.get_json(&admin, &format!("/api/v1/runs/{run}")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_kind"], "mlflow", "{out}");
    assert_eq!(out["params"]["model"], "lr", "{out}");
    assert_eq!(
        out["history"]["loss"].as_array().map(Vec::len),
        Some(4),
        "{out}"
    );
    // Each write is in the audit log.
    let (_, audit) = app.get_json(&admin, "/api/v1/audit?limit=500").await;
    let actions: Vec<&str> = audit
        .as_array()
        .or(audit["events"].as_array())
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    for action in [
        "experiment.create",
        "run.start",
        "run.log",
        "run.tag.delete",
        "run.update",
        "run.delete",
        "run.restore",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    assert!(app.verify_audit().0);
}

#[tokio::test]
async fn basic_auth_maps_to_steward_users_on_mlflow_paths_only() {
    let app = app().await;
    use base64::Engine;
    let basic = |user: &str, pw: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    };
    let good = basic("admin", crate::helpers::ADMIN_PASSWORD);
    for _ in 0..3 {
        let (status, out) = raw(
            &app,
            "POST",
            "/api/2.0/mlflow/experiments/search",
            "{}",
            Some(&good),
        )
        .await;
        assert_eq!(status, 200, "{out}");
    }
    let (status, out) = raw(
        &app,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        "{}",
        Some(&basic("admin", "wrong-password")),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{out}"
    );
    // A disabled user's remembered pair is refused at once.
    let admin = app.admin_token().await;
    app.user_token(&admin, "vic", "viewer").await;
    let vic = basic("vic", "vic-password-1");
    assert_eq!(
        raw(
            &app,
            "POST",
            "/api/2.0/mlflow/experiments/search",
            "{}",
            Some(&vic)
        )
        .await
        .0,
        200
    );
    let (status, _) = app
        .api(&admin, "POST", "/api/v1/users/vic/disable", json!(null))
        .await;
    assert!(status < 300, "{status}");
    let (status, out) = raw(
        &app,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        "{}",
        Some(&vic),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (401, Some("UNAUTHENTICATED")),
        "{out}"
    );
    // Steward's own API takes bearer tokens, not passwords.
    let (status, _) = raw(&app, "GET", "/api/v1/me", "", Some(&good)).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_registry_speaks_mlflow_and_never_serves_what_it_cannot_load() {
    let app = app().await;
    let admin = app.admin_token().await;
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/create",
        json!({"experiment_id": "0", "run_name": "foreign"}),
    )
    .await;
    let run = out["run"]["info"]["run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    assert_eq!(out["run"]["info"]["experiment_id"], "0");
    // An MLmodel file through the artifact proxy names the flavour.
    let mlmodel = "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    sklearn_version: 1.5.0\n";
    let upload = client()
        .put(app.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model/MLmodel"
        )))
        .bearer_auth(&admin)
        .body(mlmodel)
        .send()
        .await
        .expect("put");
    assert_eq!(upload.status(), 200);
    let listed: Value = client()
        .get(app.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts?path=0/{run}/artifacts/model"
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(
        listed["files"],
        json!([{"path": "MLmodel", "is_dir": false, "file_size": mlmodel.len()}])
    );
    let back = client()
        .get(app.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model/MLmodel"
        )))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("get");
    assert_eq!(back.text().await.expect("text"), mlmodel);
    let (status, _) = raw(
        &app,
        "PUT",
        &format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/../x"),
        "x",
        Some(&format!("Bearer {admin}")),
    )
    .await;
    assert!(status == 400 || status == 404, "{status}");

    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "registered-models/create",
        json!({"name": "foreign-model", "description": "from a notebook"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "registered-models/create",
        json!({"name": "foreign-model"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("RESOURCE_ALREADY_EXISTS")),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "model-versions/create",
        json!({"name": "foreign-model", "source": format!("runs:/{run}/model"), "run_id": run}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_version"]["version"], "1");
    assert_eq!(out["model_version"]["status"], "READY");
    let (status, out) = ml(&app, &admin, "POST", "model-versions/transition-stage", json!({"name": "foreign-model", "version": "1", "stage": "Staging", "archive_existing_versions": true})).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_version"]["current_stage"], "Staging");
    let (status, out) = ml(&app, &admin, "POST", "model-versions/transition-stage", json!({"name": "foreign-model", "version": "1", "stage": "Production", "archive_existing_versions": false})).await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`sklearn`"),
        "the flavour is named: {out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "registered-models/alias",
        json!({"name": "foreign-model", "alias": "champion", "version": "1"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "registered-models/alias",
        json!({"name": "foreign-model", "alias": "candidate", "version": "1"}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let (_, out) = ml(
        &app,
        &admin,
        "GET",
        "registered-models/alias?name=foreign-model&alias=candidate",
        json!(null),
    )
    .await;
    assert_eq!(out["model_version"]["version"], "1");
    assert_eq!(out["model_version"]["aliases"], json!(["candidate"]));
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "registered-models/get-latest-versions",
        json!({"name": "foreign-model", "stages": ["Staging"]}),
    )
    .await;
    assert_eq!(out["model_versions"][0]["version"], "1", "{out}");

    // Steward's own model: `champion` is its Production version.
    let (_, info) = app.get_json(&admin, "/model/info").await;
    let served = info["version"].as_i64().expect("served version");
    let model = info["model"].as_str().expect("model").to_owned();
    let (status, out) = ml(
        &app,
        &admin,
        "GET",
        &format!("registered-models/alias?name={model}&alias=champion"),
        json!(null),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["model_version"]["version"], served.to_string());
    assert_eq!(out["model_version"]["current_stage"], "Production");
    let (status, out) = ml(
        &app,
        &admin,
        "DELETE",
        "registered-models/alias",
        json!({"name": model, "alias": "champion"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );
    // The model in Production cannot be deleted; MLflow's prompt filter is understood.
    let (status, out) = ml(
        &app,
        &admin,
        "DELETE",
        "registered-models/delete",
        json!({"name": model}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );
    let filter = "name LIKE 'foreign%' AND tag.`mlflow.prompt.is_prompt` != 'true'";
    let url = format!(
        "registered-models/search?filter={}&max_results=100",
        url_encode(filter)
    );
    let (status, out) = ml(&app, &admin, "GET", &url, json!(null)).await;
    assert_eq!(status, 200, "{out}");
    let names: Vec<&str> = out["registered_models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert_eq!(names, ["foreign-model"]);
    let (_, out) = ml(
        &app,
        &admin,
        "GET",
        &format!(
            "model-versions/search?filter={}",
            url_encode("name = 'foreign-model'")
        ),
        json!(null),
    )
    .await;
    assert_eq!(out["model_versions"].as_array().map(Vec::len), Some(1));
    // Nothing of this changed what is served.
    let (_, after) = app.get_json(&admin, "/model/info").await;
    assert_eq!(after["version"], info["version"]);
    // A deleted version's number is not used again.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (_, out) = ml(
            &app,
            &admin,
            "POST",
            "runs/create",
            json!({"experiment_id": "0"}),
        )
        .await;
        runs.push(
            out["run"]["info"]["run_id"]
                .as_str()
                .expect("run")
                .to_owned(),
        );
    }
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "model-versions/create",
        json!({"name": "foreign-model", "source": "x", "run_id": runs[0]}),
    )
    .await;
    assert_eq!(out["model_version"]["version"], "2", "{out}");
    assert_eq!(
        ml(
            &app,
            &admin,
            "DELETE",
            "model-versions/delete",
            json!({"name": "foreign-model", "version": "2"})
        )
        .await
        .0,
        200
    );
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "model-versions/create",
        json!({"name": "foreign-model", "source": "x", "run_id": runs[1]}),
    )
    .await;
    assert_eq!(out["model_version"]["version"], "3", "{out}");
    // A foreign model can go; its history with it.
    assert_eq!(
        ml(
            &app,
            &admin,
            "DELETE",
            "registered-models/delete",
            json!({"name": "foreign-model"})
        )
        .await
        .0,
        200
    );
    let (status, _) = ml(
        &app,
        &admin,
        "GET",
        "registered-models/get?name=foreign-model",
        json!(null),
    )
    .await;
    assert_eq!(status, 404);
    assert!(app.verify_audit().0);
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn what_steward_guards_stays_guarded_through_mlflows_api() {
    let app = spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![ModelKind::Lr];
        // Four attempts a minute from this client: two logins, the ten parallel first calls
        // of an MLflow client (which must cost one), and one wrong password.
        s.auth.login_attempts_per_minute = 4;
    })
    .await;
    let admin = app.admin_token().await;
    let approver = app.user_token(&admin, "ann", "approver").await;
    let (_, info) = app.get_json(&admin, "/model/info").await;
    let model = info["model"].as_str().expect("model").to_owned();

    // Ten calls at once with a pair not checked yet: one password check, all answered.
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("admin:{}", crate::helpers::ADMIN_PASSWORD))
    );
    let calls = (0..10).map(|_| {
        raw(
            &app,
            "POST",
            "/api/2.0/mlflow/experiments/search",
            "{}",
            Some(&basic),
        )
    });
    for (status, out) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{out}");
    }
    // A wrong password is audited like a failed login.
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("admin:not-it")
    );
    let (status, _) = raw(
        &app,
        "POST",
        "/api/2.0/mlflow/experiments/search",
        "{}",
        Some(&wrong),
    )
    .await;
    assert_eq!(status, 401);
    let (_, audit) = app.get_json(&admin, "/api/v1/audit?limit=50").await;
    assert!(
        audit
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e["action"] == "auth.login_failed"),
        "{audit}"
    );

    // An approver cannot register a run Steward trained (an admin's, as on Steward's API).
    let (_, runs) = app.get_json(&admin, "/api/v1/runs").await;
    let trained = runs
        .as_array()
        .and_then(|r| {
            r.iter()
                .find(|r| r["model_kind"] != "mlflow" && r["status"] == "finished")
        })
        .expect("a trained run");
    let trained_id = trained["id"].as_str().expect("id").to_owned();
    ml(
        &app,
        &admin,
        "POST",
        "registered-models/create",
        json!({"name": "side"}),
    )
    .await;
    let version = json!({"name": "side", "source": format!("runs:/{trained_id}/model"), "run_id": trained_id});
    let (status, out) = ml(
        &app,
        &approver,
        "POST",
        "model-versions/create",
        version.clone(),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{out}"
    );

    // The served model is not deleted, nor a version in its Production history.
    let (status, out) = ml(
        &app,
        &admin,
        "DELETE",
        "registered-models/delete",
        json!({"name": model}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );
    let served = info["version"].as_i64().expect("version");
    let (status, out) = ml(
        &app,
        &admin,
        "DELETE",
        "model-versions/delete",
        json!({"name": model, "version": served.to_string()}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );

    // NaN metrics, logged models and tags Steward does not keep: said, not dropped.
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/create",
        json!({"experiment_id": "0"}),
    )
    .await;
    let run = out["run"]["info"]["run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/log-metric",
        json!({"run_id": run, "key": "loss", "value": "NaN", "timestamp": 1}),
    )
    .await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("finite metric values"),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "logged-models",
        json!({"experiment_id": "0"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("NOT_IMPLEMENTED")),
        "{out}"
    );
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("log_artifacts"),
        "{out}"
    );
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "registered-models/set-tag",
        json!({"name": "side", "key": "a", "value": "b"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    // A forged page token past the furthest page is refused.
    let (status, _) = ml(
        &app,
        &admin,
        "GET",
        &format!(
            "metrics/get-history?run_id={run}&metric_key=loss&page_token=b2Zmc2V0OjEwMDAwMDAx"
        ),
        json!(null),
    )
    .await;
    assert_eq!(status, 400);
    // Nothing of this moved what is served.
    let (_, after) = app.get_json(&admin, "/model/info").await;
    assert_eq!(after["version"], info["version"]);
}

#[tokio::test]
async fn a_promotion_through_mlflow_is_served_once_however_often_it_is_asked() {
    let app = spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![ModelKind::Lr, ModelKind::Rf];
        s.auth.login_attempts_per_minute = 100;
    })
    .await;
    let admin = app.admin_token().await;
    let (_, info) = app.get_json(&admin, "/model/info").await;
    let model = info["model"].as_str().expect("model").to_owned();
    let served = info["version"].as_i64().expect("version");

    // The served Production version does not leave Production through MLflow's API.
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "model-versions/transition-stage",
        json!({"name": model, "version": served.to_string(), "stage": "Archived"}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );

    // An admin registers the candidate that lost, then ten identical promotions at once.
    let (_, runs) = app.get_json(&admin, "/api/v1/runs").await;
    let (_, detail) = app
        .get_json(&admin, &format!("/api/v1/models/{model}"))
        .await;
    let registered: Vec<&str> = detail["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["run_id"].as_str())
        .collect();
    let loser = runs
        .as_array()
        .and_then(|r| {
            r.iter().find(|r| {
                r["status"] == "finished"
                    && !registered.contains(&r["id"].as_str().unwrap_or_default())
            })
        })
        .expect("an unregistered candidate");
    let loser_id = loser["id"].as_str().expect("id").to_owned();
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "model-versions/create",
        json!({"name": model, "source": format!("runs:/{loser_id}/model"), "run_id": loser_id}),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    let version = out["model_version"]["version"]
        .as_str()
        .expect("version")
        .to_owned();
    let promotions = (0..10).map(|_| {
        ml(&app, &admin, "POST", "model-versions/transition-stage", json!({"name": model, "version": version, "stage": "Production", "archive_existing_versions": false}))
    });
    for (status, out) in futures_util::future::join_all(promotions).await {
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["model_version"]["current_stage"], "Production", "{out}");
    }
    let (_, after) = app.get_json(&admin, "/model/info").await;
    assert_eq!(
        after["version"].as_i64().map(|v| v.to_string()),
        Some(version.clone())
    );
    let (_, out) = ml(
        &app,
        &admin,
        "GET",
        &format!("registered-models/alias?name={model}&alias=champion"),
        json!(null),
    )
    .await;
    assert_eq!(out["model_version"]["version"], version.as_str());
    // The version it replaced was archived, once.
    let (_, detail) = app
        .get_json(&admin, &format!("/api/v1/models/{model}"))
        .await;
    let archived = detail["transitions"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|t| t["to_stage"] == "Archived")
        .count();
    assert_eq!(archived, 1, "{detail}");
    // It is kept: the served model's versions are never deleted, whatever their stage.
    let (status, out) = ml(
        &app,
        &admin,
        "DELETE",
        "model-versions/delete",
        json!({"name": model, "version": served.to_string()}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_STATE")),
        "{out}"
    );

    // A LIKE pattern that would cost too much over long values is refused, not run.
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/create",
        json!({"experiment_id": "0"}),
    )
    .await;
    let long = out["run"]["info"]["run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    ml(
        &app,
        &admin,
        "POST",
        "runs/set-tag",
        json!({"run_id": long, "key": "blob", "value": "x".repeat(8000)}),
    )
    .await;
    let pattern = format!("%{}%y", "x%".repeat(1900));
    let (status, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/search",
        json!({"experiment_ids": ["0"], "filter": format!("tags.blob LIKE '{pattern}'")}),
    )
    .await;
    assert_eq!(
        (status, out["error_code"].as_str()),
        (400, Some("INVALID_PARAMETER_VALUE")),
        "{out}"
    );
    assert!(
        out["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cost too much"),
        "{out}"
    );

    // Strict input: a body that is no object, an experiment id written otherwise, a
    // backslash in an artifact path; CSV's NaN is a missing value, as pandas reads it.
    let (status, _) = ml(
        &app,
        &admin,
        "POST",
        "runs/search",
        json!([["0"], "tags.x = '1'"]),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = ml(
        &app,
        &admin,
        "GET",
        "experiments/get?experiment_id=00",
        json!(null),
    )
    .await;
    assert_eq!(status, 404);
    let (_, out) = ml(
        &app,
        &admin,
        "POST",
        "runs/create",
        json!({"experiment_id": "0"}),
    )
    .await;
    let run = out["run"]["info"]["run_id"]
        .as_str()
        .expect("run")
        .to_owned();
    let put = client()
        .put(app.url(&format!(
            "/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/a%5C..%5Cb"
        )))
        .bearer_auth(&admin)
        .body("x")
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 400);
    let csv = "age,sex,cp,trestbps,chol,fbs,restecg,thalach,exang,oldpeak,slope,ca,thal\n63,1,1,145,NaN,1,2,150,0,2.3,3,0,6\n";
    let (status, out) = app.post("/invocations", "text/csv", csv.to_owned()).await;
    assert_eq!(status, 200, "{out}");
}
