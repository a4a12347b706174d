//! A consistent control plane: what the registry says is what is served, one training at a
//! time, strict bodies that start nothing when wrong, and data gates that hold.

use serde_json::{Value, json};

use crate::helpers::{TestApp, client, spawn_app, spawn_app_with};

async fn app_with_model() -> TestApp {
    spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![steward::ml::models::ModelKind::Lr];
        s.serving.refresh_secs = 3600;
    })
    .await
}

/// Registers `n` more versions of the served model (LR on Cleveland).
async fn register_more(app: &TestApp, token: &str, n: usize) -> Vec<i64> {
    let mut versions = Vec::new();
    for _ in 0..n {
        let (status, out) = app
            .api(
                token,
                "POST",
                "/api/v1/runs",
                json!({ "models": ["lr"], "register": true }),
            )
            .await;
        assert_eq!(status, 201, "{out}");
        versions.push(out["registered"]["version"].as_i64().expect("version"));
    }
    versions
}

async fn served(app: &TestApp) -> i64 {
    let info: Value = client()
        .get(app.url("/model/info"))
        .send()
        .await
        .expect("info")
        .json()
        .await
        .expect("json");
    info["version"].as_i64().expect("served version")
}

/// Where version `v` of the served model keeps its artifact.
async fn artifact_blob(app: &TestApp, token: &str, v: i64) -> std::path::PathBuf {
    let (_, detail) = app
        .get_json(token, &format!("/api/v1/models/heart-disease/versions/{v}"))
        .await;
    app.blob_path(detail["artifact_hash"].as_str().expect("hash"))
}

async fn production(app: &TestApp, token: &str) -> Option<i64> {
    let (_, model) = app.get_json(token, "/api/v1/models/heart-disease").await;
    model["production"].as_i64()
}

/// A version whose artifact can't be served is refused inside the promotion, with 409 saying
/// which version is served; the registry and the server stay as they were.
#[tokio::test]
async fn an_unservable_version_is_never_promoted() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    let v = register_more(&app, &token, 1).await[0];
    let blob = artifact_blob(&app, &token, v).await;
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[20] ^= 1;
    std::fs::write(&blob, bytes).expect("corrupt");

    let (status, out) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/models/heart-disease/versions/{v}/stage"),
            json!({ "stage": "Production", "reason": "try" }),
        )
        .await;
    assert_eq!(status, 409, "{out}");
    let message = out["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("v{v} cannot be served"))
            && message.contains("v1 stays in Production"),
        "{message}"
    );
    assert_eq!(production(&app, &token).await, Some(1));
    assert_eq!(served(&app).await, 1);
    let (code, _, err) =
        app.run_cli(&["models", "promote", &v.to_string(), "--stage", "Production"]);
    assert_eq!(code, 1, "the CLI checks the same: {err}");
    assert!(err.contains("cannot be served"), "{err}");
}

/// After concurrent promotions have all answered, the served model is the registry's
/// Production version: swaps happen in commit order.
#[tokio::test]
async fn after_concurrent_promotions_the_registry_is_what_is_served() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    let mut versions = vec![1];
    versions.extend(register_more(&app, &token, 3).await);
    for round in 0..5 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let v = versions[(i + round) % versions.len()];
                let (url, token) = (
                    app.url(&format!("/api/v1/models/heart-disease/versions/{v}/stage")),
                    token.clone(),
                );
                tokio::spawn(async move {
                    client()
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({ "stage": "Production", "reason": "race" }))
                        .send()
                        .await
                        .expect("promote")
                        .status()
                        .as_u16()
                })
            })
            .collect();
        for task in tasks {
            let status = task.await.expect("task");
            assert!(status == 200 || status == 409, "{status}");
        }
        let registry = production(&app, &token)
            .await
            .expect("a Production version");
        assert_eq!(served(&app).await, registry, "round {round}");
    }
}

/// One training at a time: a second gets 409 at once. A malformed or misspelt body is a 400
/// naming the problem, and starts nothing.
#[tokio::test]
async fn one_training_at_a_time_and_strict_bodies_start_nothing() {
    let app = app_with_model().await;
    let token = app.admin_token().await;
    let (_, before) = app.get_json(&token, "/api/v1/runs").await;
    let runs_before = before.as_array().map(Vec::len).unwrap_or(0);
    for (content_type, body, expected) in [
        ("application/json", r#"{"modles": ["lr"]}"#, 400),
        ("application/json", r#"{"models": ["lr"],"#, 400),
        ("application/json", r#"{"models": ["gbm"]}"#, 400),
        (
            "application/json",
            r#"{"models": ["lr"], "models": ["rf"]}"#,
            400,
        ),
        // serde fills a struct from an array, positionally: only objects name their fields.
        (
            "application/json",
            r#"[null, null, ["lr"], true, true, true, null]"#,
            400,
        ),
        ("text/plain", "models=lr", 415),
    ] {
        let (status, out) = app
            .post_as(Some(&token), "/api/v1/runs", content_type, body)
            .await;
        assert_eq!(status, expected, "{body}: {out}");
        if body.contains("modles") {
            assert!(
                out["message"].as_str().unwrap_or("").contains("modles"),
                "{out}"
            );
        }
    }
    let (status, out) = app
        .post_as(
            Some(&token),
            "/api/v1/models/heart-disease/rollback",
            "application/json",
            r#"{"reasn": "typo"}"#,
        )
        .await;
    assert_eq!(status, 400, "{out}");
    for (path, body) in [
        ("/api/v1/models/heart-disease/rollback", "[]"),
        (
            "/api/v1/models/heart-disease/versions/1/stage",
            r#"["Archived", "", true]"#,
        ),
        ("/api/v1/tokens", r#"["t", null, null]"#),
    ] {
        let (status, out) = app
            .post_as(Some(&token), path, "application/json", body)
            .await;
        assert_eq!(status, 400, "{path} {body}: {out}");
        assert!(
            out["message"]
                .as_str()
                .unwrap_or("")
                .contains("JSON object"),
            "{out}"
        );
    }
    let (_, after) = app.get_json(&token, "/api/v1/runs").await;
    assert_eq!(
        after.as_array().map(Vec::len).unwrap_or(0),
        runs_before,
        "nothing started"
    );
    assert_eq!(
        production(&app, &token).await,
        Some(1),
        "nothing rolled back"
    );

    let start = |token: String| {
        let url = app.url("/api/v1/runs");
        tokio::spawn(async move {
            client()
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "models": ["lr", "rf"] }))
                .send()
                .await
                .expect("train")
                .status()
                .as_u16()
        })
    };
    let (a, b) = (start(token.clone()), start(token.clone()));
    let mut statuses = vec![a.await.expect("a"), b.await.expect("b")];
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [201, 409],
        "one trains, the other is told it is running"
    );
}

/// Names from the API are checked: a suite name is never a path, and errors carry no server
/// folders.
#[tokio::test]
async fn names_from_the_api_are_checked() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.admin_token().await;
    for suite in ["../../../etc/passwd", "heart/../heart", ".hidden"] {
        let (status, out) = app
            .api(
                &token,
                "POST",
                "/api/v1/validations",
                json!({ "suite": suite, "dataset": "heart" }),
            )
            .await;
        assert_eq!(status, 422, "{suite}: {out}");
        let text = out.to_string();
        assert!(
            !text.contains("config/expectations") && !text.contains("/etc/"),
            "{text}"
        );
    }
    let (status, out) = app
        .api(
            &token,
            "POST",
            "/api/v1/validations",
            json!({ "suite": "nope", "dataset": "heart" }),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(
        out["message"]
            .as_str()
            .unwrap_or("")
            .contains("no such suite"),
        "{out}"
    );
    assert!(!out.to_string().contains("expectations/"), "{out}");
    let response = client()
        .post(app.url("/api/v1/datasets/bad%20name!/versions"))
        .bearer_auth(&token)
        .body("age\n1\n")
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 422);
}

/// A version nobody validated never becomes current, and training on it needs --force (the
/// runs then say so).
#[tokio::test]
async fn an_unvalidated_version_is_not_current_and_blocks_training() {
    let app = spawn_app_with(|s| s.dataset.suite = "no-such-suite".into()).await;
    let token = app.admin_token().await;
    let (_, versions) = app
        .get_json(&token, "/api/v1/datasets/heart/versions/1")
        .await;
    assert_eq!(versions["current"], false, "{versions}");
    let (_, datasets) = app.get_json(&token, "/api/v1/datasets").await;
    assert_eq!(datasets[0]["current_version"], Value::Null, "{datasets}");
    let (code, _, err) = app.run_cli(&["train", "--dataset-version", "1", "--models", "lr"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no recorded validation"), "{err}");
    let (code, out, err) = app.run_cli(&[
        "train",
        "--dataset-version",
        "1",
        "--models",
        "lr",
        "--force",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let outcome: Value = serde_json::from_str(&out).expect("json");
    let run = outcome["candidates"][0]["run"]["id"].as_str().expect("run");
    let (_, detail) = app.get_json(&token, &format!("/api/v1/runs/{run}")).await;
    assert!(detail.to_string().contains("never validated"), "{detail}");
}

/// A run of a live process on this host is never swept as interrupted, however old its
/// heartbeat (a fit step longer than the staleness window writes none); a run owned on another
/// host is judged by its heartbeat.
#[tokio::test]
async fn a_live_run_with_an_old_heartbeat_is_not_swept() {
    use diesel::RunQueryDsl;
    use steward::tracking;
    let app = spawn_app().await;
    let db = app.store();
    let mut conn = db.get().expect("conn");
    let new = || tracking::NewRun {
        experiment: "sweep",
        model_kind: "lr",
        params: json!({}),
        dataset: "heart",
        dataset_version: 1,
        dataset_hash: "0",
    };
    let mine = tracking::start_run(&mut conn, new(), "test").expect("run");
    let elsewhere = tracking::start_run(&mut conn, new(), "test").expect("run");
    diesel::sql_query(format!(
        "UPDATE runs SET owner = 'another-host:1:1' WHERE id = '{}'",
        elsewhere.id
    ))
    .execute(&mut *conn)
    .expect("owner");
    diesel::sql_query("UPDATE runs SET heartbeat_at = '2026-01-01 00:00:00'")
        .execute(&mut *conn)
        .expect("old heartbeats");
    let swept = tracking::sweep_interrupted(&mut conn).expect("sweep");
    assert_eq!(swept, std::slice::from_ref(&elsewhere.id));
    let live: Vec<String> = tracking::live_runs(&mut conn)
        .expect("live")
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(live, [mine.id]);
}

/// The agent's fence is asked again inside the registry's change, after the model loaded: a
/// leader deposed while the new model loaded (its fence passes the action's check, then trips)
/// lands nothing: 409, the reason kept for the action's skip, Production, the audit log and
/// the stage history as they were. A fence that keeps passing lets the same change land.
#[tokio::test]
async fn a_fence_that_trips_inside_the_change_lands_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use steward::registry::{self, Change, Servable, Stage};
    let app = app_with_model().await;
    let token = app.admin_token().await;
    let v = register_more(&app, &token, 1).await[0] as i32;
    let before = production(&app, &token).await;
    let db = app.store();
    let blobs = steward::data::blob::open(&app.settings.storage).expect("blobs");
    let features = app.settings.dataset.feature_names();
    let model = app.settings.registry.model.clone();
    let mut conn = db.get().expect("conn");
    let history = |conn: &mut steward::db::DbConnection| {
        registry::transitions(conn, &model).expect("history").len()
    };
    let history_before = history(&mut conn);
    let events_before = steward::audit::verify(&mut conn).expect("verify").head_seq;

    let asked = AtomicUsize::new(0);
    let deposed = |_: &mut steward::db::DbConnection| {
        // The action's own check passes; the registry's, inside the change, finds the lease gone.
        Ok((asked.fetch_add(1, Ordering::SeqCst) > 0)
            .then(|| "this process lost the agent's lease".to_owned()))
    };
    let servable = Servable::new(blobs.as_ref(), &features).fenced(&deposed);
    assert_eq!(deposed(&mut conn).expect("first ask"), None);
    let change = Change {
        actor: "agent",
        reason: "a fencing test",
        force: false,
    };
    let refused = registry::transition(&mut conn, &model, v, Stage::Production, change, &servable);
    assert!(
        matches!(&refused, Err(steward::error::AppError::Conflict(m)) if m.contains("lost the agent's lease")),
        "{refused:?}"
    );
    assert_eq!(
        servable.fenced_because().as_deref(),
        Some("this process lost the agent's lease")
    );
    assert_eq!(asked.load(Ordering::SeqCst), 2, "asked inside the change");
    assert_eq!(production(&app, &token).await, before);
    assert_eq!(history(&mut conn), history_before);
    assert_eq!(
        steward::audit::verify(&mut conn).expect("verify").head_seq,
        events_before,
        "no audit event"
    );
    let holding = |_: &mut steward::db::DbConnection| Ok(None);
    let servable = Servable::new(blobs.as_ref(), &features).fenced(&holding);
    let landed = registry::transition(&mut conn, &model, v, Stage::Production, change, &servable)
        .expect("lands while the fence holds");
    assert_eq!(landed.version.version, v);
    assert_eq!(servable.fenced_because(), None);
    assert_eq!(production(&app, &token).await, Some(i64::from(v)));

    // A rollback (there is an earlier Production version now) is fenced off the same way.
    let history_before = history(&mut conn);
    let events_before = steward::audit::verify(&mut conn).expect("verify").head_seq;
    let tripping =
        |_: &mut steward::db::DbConnection| Ok(Some("the action is failed already".to_owned()));
    let servable = Servable::new(blobs.as_ref(), &features).fenced(&tripping);
    let rolled = registry::rollback(&mut conn, &model, None, change, &servable);
    assert!(
        matches!(&rolled, Err(steward::error::AppError::Conflict(m)) if m.contains("fenced off")),
        "{rolled:?}"
    );
    assert_eq!(
        servable.fenced_because().as_deref(),
        Some("the action is failed already")
    );
    assert_eq!(production(&app, &token).await, Some(i64::from(v)));
    assert_eq!(history(&mut conn), history_before);
    assert_eq!(
        steward::audit::verify(&mut conn).expect("verify").head_seq,
        events_before
    );
}

/// The agent's promotion turns a change refused by its fence into a skip with the fence's
/// reason and nothing landed: refused inside the registry's change (the lease lost while the
/// model loaded), or refused for another reason (here an artifact that fails its hash) when the
/// fence, asked again, finds the action fenced off. With a holding fence that other refusal
/// stays an error, and a servable version lands.
#[tokio::test]
async fn an_agent_promotion_fenced_off_ends_skipped_and_lands_nothing() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use steward::agent::actions::{self, Ended, Tools};
    use steward::db::DbConnection;
    use steward::serving::Serving;
    use steward::serving::log::{Batching, PredictionLog};
    use steward::serving::request::FeatureSchema;

    let app = app_with_model().await;
    let token = app.admin_token().await;
    let v = register_more(&app, &token, 1).await[0] as i32;
    let db = app.store();
    let blobs = steward::data::blob::open(&app.settings.storage).expect("blobs");
    let log = PredictionLog::start(
        db.clone(),
        16,
        Batching {
            batch: 1,
            linger: Duration::ZERO,
            wait: Duration::from_secs(1),
        },
    )
    .expect("log writer");
    let serving = Serving::new(
        app.settings.registry.model.clone(),
        FeatureSchema::from_dataset(&app.settings.dataset),
        log,
        &app.settings.serving,
    );
    let mut conn = db.get().expect("conn");
    let head = |conn: &mut DbConnection| steward::audit::verify(conn).expect("verify").head_seq;
    let events_before = head(&mut conn);
    let why = |ended: Ended| match ended {
        Ended::Skipped { why } => why,
        Ended::Succeeded { .. } => panic!("succeeded"),
        Ended::AwaitingApproval { .. } => panic!("awaits approval"),
        Ended::Failed { error, .. } => panic!("failed: {error}"),
    };

    // The action's own check passes; every later ask finds the lease gone.
    let asked = AtomicUsize::new(0);
    let deposed = |_: &mut DbConnection| {
        Ok((asked.fetch_add(1, Ordering::SeqCst) > 0)
            .then(|| "this process lost the agent's lease".to_owned()))
    };
    let tools = Tools {
        db: &db,
        blobs: blobs.as_ref(),
        settings: &app.settings,
        serving: &serving,
        fence: &deposed,
    };
    let ended = actions::promote(&tools, &mut conn, v, Some(1), "a fencing test", false)
        .expect("a fenced-off change is a skip, not an error");
    assert_eq!(why(ended), "this process lost the agent's lease");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "asked by the action, then in the change"
    );
    assert_eq!(production(&app, &token).await, Some(1));
    assert_eq!(head(&mut conn), events_before, "no audit event");

    // v's artifact no longer matches its hash: the registry refuses before its own fence ask.
    let blob = artifact_blob(&app, &token, i64::from(v)).await;
    let good = std::fs::read(&blob).expect("blob");
    let mut bad = good.clone();
    bad[20] ^= 1;
    std::fs::write(&blob, &bad).expect("corrupt");
    asked.store(0, Ordering::SeqCst);
    let ended = actions::promote(&tools, &mut conn, v, Some(1), "a fencing test", false)
        .expect("another refusal of a fenced-off action is a skip too");
    assert_eq!(why(ended), "this process lost the agent's lease");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "asked by the action, then after the refusal"
    );

    // A holding fence is asked by the action and again after the refusal: the registry refused
    // at the model's load, before its own ask (a fence asked before the load would make three).
    let holds = AtomicUsize::new(0);
    let holding = |_: &mut DbConnection| {
        holds.fetch_add(1, Ordering::SeqCst);
        Ok(None)
    };
    let tools = Tools {
        fence: &holding,
        ..tools
    };
    match actions::promote(&tools, &mut conn, v, Some(1), "a fencing test", false) {
        Err(steward::error::AppError::Conflict(m)) => {
            assert!(m.contains("cannot be served"), "{m}")
        }
        Err(e) => panic!("another error: {e}"),
        Ok(ended) => panic!("ended without an error: {}", why(ended)),
    }
    assert_eq!(
        holds.load(Ordering::SeqCst),
        2,
        "asked by the action, then after the refusal"
    );
    assert_eq!(production(&app, &token).await, Some(1));
    assert_eq!(head(&mut conn), events_before, "no audit event");

    std::fs::write(&blob, &good).expect("restore");
    holds.store(0, Ordering::SeqCst);
    match actions::promote(&tools, &mut conn, v, Some(1), "a fencing test", false).expect("lands") {
        Ended::Succeeded { version, .. } => assert_eq!(version, Some(v)),
        other => panic!("not a success: {}", why(other)),
    }
    assert_eq!(
        holds.load(Ordering::SeqCst),
        2,
        "asked by the action, then in the change"
    );
    assert_eq!(production(&app, &token).await, Some(i64::from(v)));
    assert_eq!(
        head(&mut conn),
        events_before + 1,
        "the promotion is audited"
    );
}
