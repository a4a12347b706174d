//! The agent's scenarios on real UCI data, driven over HTTP with `steward simulate`: alerts
//! become incidents, each gets one decision from the policy, and the decision's action runs,
//! waits for approval, or is held back; and its webhook, approvals, kill switch and recovery.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, run_check, simulate, spawn_app_with, until};

const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");

async fn app_with_model(customize: impl FnOnce(&mut steward::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![steward::ml::models::ModelKind::Lr];
        s.agent.tick_secs = 1;
        customize(s);
    })
    .await
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().expect("a list")
}

/// Every open incident has its decision, and no action is running.
async fn settled(app: &TestApp, token: &str) -> Value {
    until(app, token, "/api/v1/incidents?status=open", 120, |v| {
        !list(v).is_empty() && list(v).iter().all(|i| !i["decision_id"].is_null())
    })
    .await;
    until(app, token, "/api/v1/agent/status", 300, |s| {
        list(&s["running_actions"]).is_empty()
    })
    .await;
    app.get_json(token, "/api/v1/agent/actions?limit=500")
        .await
        .1
}

/// Polls the agent's actions until one that `pick` chooses has ended; returns them all.
async fn ended(app: &TestApp, token: &str, pick: impl Fn(&Value) -> bool) -> Value {
    until(app, token, "/api/v1/agent/actions?limit=500", 300, |v| {
        list(v).iter().any(|a| pick(a) && a["status"] != "running")
    })
    .await
}

fn outcome(action: &Value) -> Value {
    serde_json::from_str(action["outcome_json"].as_str().unwrap_or("null")).expect("outcome")
}

/// A: Switzerland (chol is 0 in every row) → a data-quality incident on chol → its rows are
/// quarantined and a notification written; the drift (0.77) is logged and watched; no retrain.
#[tokio::test]
async fn a_switzerland_quarantines_chol_and_never_retrains() {
    let app = app_with_model(|_| {}).await;
    let token = app.admin_token().await;
    simulate(
        &app,
        &format!("{UCI}/processed.switzerland.data"),
        &token,
        false,
    )
    .await;
    run_check(&app, &token).await;
    ended(&app, &token, |a| {
        a["action"] == "quarantine" && outcome(a)["feature"] == "chol"
    })
    .await;
    let actions = settled(&app, &token).await;
    let kinds: Vec<&str> = list(&actions)
        .iter()
        .map(|a| a["action"].as_str().expect("action"))
        .collect();
    assert!(!kinds.contains(&"retrain"), "{kinds:?}");
    // One incident per feature and rule; chol's takes every row of the window (a row is
    // quarantined once, for the first reason found).
    let quarantine = list(&actions)
        .iter()
        .find(|a| a["action"] == "quarantine" && outcome(a)["feature"] == "chol")
        .expect("chol's quarantine");
    assert_eq!(quarantine["status"], "succeeded", "{quarantine}");
    let o = outcome(quarantine);
    assert_eq!(o["feature"], "chol", "{o}");
    assert_eq!(o["rule"], "constant");
    assert_eq!(o["quarantined"], 123, "every row of the window: {o}");
    let (_, status) = app.get_json(&token, "/api/v1/agent/status").await;
    assert_eq!(status["quarantined_rows"], 123);
    let (_, notes) = app.get_json(&token, "/api/v1/agent/notifications").await;
    assert!(notes.to_string().contains("chol"), "{notes}");
    let (_, decisions) = app.get_json(&token, "/api/v1/decisions").await;
    let drift = list(&decisions)
        .iter()
        .find(|d| d["rule"] == "strong-drift")
        .expect("the drift was decided by the 0.7 rule");
    assert_eq!(drift["action"], "noop");
    // Each decision says why every earlier rule did not match.
    let why: Vec<Value> =
        serde_json::from_str(drift["explanation_json"].as_str().unwrap()).unwrap();
    assert!(
        why.iter()
            .any(|c| c["reason"].as_str().unwrap().contains("is not above 0.9")),
        "{why:?}"
    );
    // Quarantined rows are not learned from.
    simulate(
        &app,
        &format!("{UCI}/processed.switzerland.data"),
        &token,
        true,
    )
    .await;
    let (_, status) = app.get_json(&token, "/api/v1/agent/status").await;
    assert_eq!(status["usable_labels"], 123, "the newly labelled rows only");
}

/// B: Hungary with labels → drift 0.62 → retrain on its own: a new dataset version (Cleveland
/// plus the labelled feedback) with its parent, a challenger scored beside the champion on the
/// same rows; the new data failed non-critical expectations, so the better challenger waits
/// for a person, who approves it: it is promoted and served.
#[tokio::test]
async fn b_hungary_retrains_a_challenger_on_fresh_labels() {
    // The second check comes seconds after the first: decide again at once.
    let app = app_with_model(|s| s.agent.redecide_after_secs = 0).await;
    let token = app.admin_token().await;
    // First without labels: too few to retrain, so the agent notifies and waits.
    simulate(
        &app,
        &format!("{UCI}/processed.hungarian.data"),
        &token,
        false,
    )
    .await;
    run_check(&app, &token).await;
    settled(&app, &token).await;
    let (_, decisions) = app
        .get_json(&token, "/api/v1/decisions?action=notify")
        .await;
    assert!(
        list(&decisions)
            .iter()
            .any(|d| d["rule"] == "too-few-labels" && d["redecide"] == true),
        "{decisions}"
    );
    // The labels come; the drift's next alert (the next check) is decided again: a retrain.
    simulate(
        &app,
        &format!("{UCI}/processed.hungarian.data"),
        &token,
        true,
    )
    .await;
    run_check(&app, &token).await;
    let actions = ended(&app, &token, |a| a["action"] == "retrain").await;
    let retrain = list(&actions)
        .iter()
        .find(|a| a["action"] == "retrain")
        .expect("a retrain");
    assert_eq!(retrain["status"], "succeeded", "{retrain}");
    let o = outcome(retrain);
    let (_, versions) = app
        .get_json(&token, "/api/v1/datasets/heart/versions")
        .await;
    let built = list(&versions)
        .iter()
        .find(|v| {
            v["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("agent retrain:")
        })
        .expect("the retraining set is a dataset version");
    assert_eq!(built["parent_version"], 1, "{built}");
    assert_eq!(built["row_count"], 303 + 294, "{built}");
    let challenger = o["challenger"].as_i64().expect("challenger");
    assert_eq!(challenger, 2);
    let (_, approvals) = app
        .get_json(&token, "/api/v1/approvals?status=pending")
        .await;
    let request = &list(&approvals)[0];
    let evidence: Value = serde_json::from_str(request["evidence_json"].as_str().unwrap()).unwrap();
    let r = &evidence["retrain"];
    assert!(r["comparison_rows"].as_u64().unwrap() >= 20, "{r}");
    for side in ["challenger_scores", "champion_scores"] {
        assert!(r[side]["roc_auc"].as_f64().unwrap() > 0.5, "{r}");
    }
    assert!(r["verdict"].as_str().unwrap().starts_with("better"), "{r}");
    assert!(
        r["validation_failures"].to_string().contains("not_be_null"),
        "{r}"
    );
    let id = request["id"].as_str().unwrap();
    let (status, answered) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            json!({ "comment": "Hungary is our traffic now" }),
        )
        .await;
    assert_eq!(status, 200, "{answered}");
    until(&app, &token, "/model/info", 30, |m| m["version"] == 2).await;
    let (_, model) = app.get_json(&token, "/api/v1/models/heart-disease").await;
    assert!(
        model.to_string().contains("Hungary is our traffic now"),
        "the reason names the approver's comment"
    );
}

/// C: a deliberately bad model (trained on Cleveland with its labels flipped) promoted, then
/// labelled traffic → decay within the rollback window → automatic rollback to the version
/// before, with no failed request while it happens.
#[tokio::test]
async fn c_decay_after_a_promotion_rolls_it_back_without_a_failed_request() {
    let app = app_with_model(|_| {}).await;
    let token = app.admin_token().await;
    let text = std::fs::read_to_string(format!("{UCI}/processed.cleveland.data")).unwrap();
    let flipped: String = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (head, num) = l.rsplit_once(',').unwrap();
            let sick = num.trim().parse::<f64>().unwrap() > 0.0;
            format!("{head},{}\n", if sick { 0 } else { 1 })
        })
        .collect();
    let response = app
        .client
        .post(app.url("/api/v1/datasets/heart/versions?message=flipped"))
        .bearer_auth(&token)
        .header("Content-Type", "text/csv")
        .body(flipped)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let (status, trained) = app
        .api(
            &token,
            "POST",
            "/api/v1/runs",
            json!({ "models": ["lr"], "dataset_version": 2, "promote": true, "force": true,
                    "reason": "a deliberately bad model" }),
        )
        .await;
    assert!(status == 200 || status == 201, "{trained}");
    until(&app, &token, "/model/info", 30, |m| m["version"] == 2).await;
    // Traffic with labels: the bad model's live accuracy falls far below its holdout's.
    simulate(
        &app,
        &format!("{UCI}/processed.cleveland.data"),
        &token,
        true,
    )
    .await;
    // More traffic while the check, the decision and the rollback happen.
    let background = {
        let mut cmd = app.cli();
        cmd.args([
            "simulate",
            "--file",
            &format!("{UCI}/processed.cleveland.data"),
            "--url",
            &app.url(""),
            "--token",
            &token,
        ]);
        tokio::task::spawn_blocking(move || cmd.output().expect("simulate"))
    };
    let report = run_check(&app, &token).await;
    assert!(
        report["alerts"].to_string().contains("\"decay\""),
        "{report}"
    );
    until(&app, &token, "/model/info", 60, |m| m["version"] == 1).await;
    let out = background.await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && text.contains(" 0 failed"), "{text}");
    let actions = ended(&app, &token, |a| a["action"] == "rollback").await;
    let rollback = list(&actions)
        .iter()
        .find(|a| a["action"] == "rollback")
        .expect("a rollback");
    assert_eq!(rollback["status"], "succeeded", "{rollback}");
    assert_eq!(rollback["model_version"], 1);
    let (_, decisions) = app
        .get_json(&token, "/api/v1/decisions?action=rollback")
        .await;
    assert_eq!(decisions[0]["rule"], "rollback-recent-promotion");
    // An outside alert's word alone rolls nothing back: v1 has no check of its own since it
    // returned to Production.
    let mut forged = drift_alert("00000000000000c9", "firing");
    forged["alerts"][0]["labels"]["alert_type"] = json!("decay");
    forged["alerts"][0]["labels"]["model_version"] = json!("1");
    let (status, _) = app.api(&token, "POST", "/agent/alerts", forged).await;
    assert_eq!(status, 200);
    let decisions = until(&app, &token, "/api/v1/decisions", 30, |v| {
        list(v).iter().any(|d| {
            d["context_json"]
                .as_str()
                .is_some_and(|c| c.contains("\"production_version\":1"))
                && d["action"] != "rollback"
        })
    })
    .await;
    assert_eq!(
        list(&decisions)
            .iter()
            .filter(|d| d["action"] == "rollback")
            .count(),
        1,
        "{decisions}"
    );
    let (_, info) = app.get_json(&token, "/model/info").await;
    assert_eq!(info["version"], 1);
    // The incident about v2 closes: its version left Production.
    until(&app, &token, "/api/v1/incidents?status=open", 30, |v| {
        !list(v)
            .iter()
            .any(|i| i["type"] == "decay" && i["source"] == "monitoring")
    })
    .await;
}

fn gated(s: &mut steward::config::Settings, ttl_hours: f64) {
    s.agent.cooldown_minutes = 0;
    // Every challenger counts as better, so each retrain asks.
    s.agent.promotion_margin = -1.0;
    s.agent.approval_ttl_hours = ttl_hours;
    s.agent.rules = vec![steward::agent::settings::Rule {
        name: "gated-retrain".into(),
        alert_types: vec!["drift".into(), "external".into()],
        drift_share_above: Some(0.5),
        drift_share_at_most: None,
        within_rollback_window: None,
        decay_measured: None,
        too_few_labels: None,
        quality_rules: Vec::new(),
        action: "retrain".into(),
        approval: true,
        notify: false,
        cooldown_minutes: None,
    }];
}

fn drift_alert(fingerprint: &str, status: &str) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"StewardDrift\"}", "truncatedAlerts": 0,
        "status": status, "receiver": "steward", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": status,
            "labels": { "alertname": "StewardDrift", "alert_type": "drift", "severity": "warning" },
            "annotations": { "summary": "drift share above 0.5" },
            "startsAt": "2026-11-30T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint
        }]
    })
}

/// D: an approval-gated retrain: approved → the promotion runs once (approving again is
/// refused); rejected → nothing runs.
#[tokio::test]
async fn d_approval_gated_retrains_run_once_when_approved_and_never_when_rejected() {
    let app = app_with_model(|s| gated(s, 24.0)).await;
    let admin = app.admin_token().await;
    let april = app.user_token(&admin, "april", "approver").await;
    let vera = app.user_token(&admin, "vera", "viewer").await;
    simulate(
        &app,
        &format!("{UCI}/processed.hungarian.data"),
        &admin,
        true,
    )
    .await;
    run_check(&app, &admin).await;
    // Its retrain ends with a request; then a second incident, from Alertmanager: a second
    // request.
    until(&app, &admin, "/api/v1/approvals?status=pending", 300, |v| {
        list(v).len() == 1
    })
    .await;
    let (status, taken) = app
        .api(&admin, "POST", "/agent/alerts", {
            // Another problem than the drift monitoring reported (a drift alert about the
            // same version would join its incident): an outside alert the gated rule takes.
            let mut other = drift_alert("00000000000000d2", "firing");
            other["alerts"][0]["labels"]["alert_type"] = json!("external");
            other
        })
        .await;
    assert_eq!(status, 200, "{taken}");
    let pending = until(&app, &admin, "/api/v1/approvals?status=pending", 300, |v| {
        list(v).len() == 2
    })
    .await;
    let (first, second) = (
        pending[0]["id"].as_str().unwrap().to_owned(),
        pending[1]["id"].as_str().unwrap().to_owned(),
    );
    let challenger = pending[1]["version"].as_i64().unwrap();
    // Viewers may not answer; the comment is bounded.
    let (status, _) = app
        .api(
            &vera,
            "POST",
            &format!("/api/v1/approvals/{second}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .api(
            &april,
            "POST",
            &format!("/api/v1/approvals/{second}/approve"),
            json!({ "comment": "x".repeat(1001) }),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .api(
            &april,
            "POST",
            &format!("/api/v1/approvals/{second}/approve"),
            json!({ "comment": "ok\u{200b}\u{202e}" }),
        )
        .await;
    assert_eq!(status, 422);
    let (status, body) = app
        .api(
            &april,
            "POST",
            &format!("/api/v1/approvals/{second}/approve"),
            json!({ "comment": "ok" }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .api(
            &april,
            "POST",
            &format!("/api/v1/approvals/{second}/approve"),
            json!({ "comment": "again" }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    until(&app, &admin, "/model/info", 60, |m| {
        m["version"] == challenger
    })
    .await;
    let (status, _) = app
        .api(
            &april,
            "POST",
            &format!("/api/v1/approvals/{first}/reject"),
            json!({ "comment": "no" }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .api(
            &april,
            "POST",
            &format!("/api/v1/approvals/{first}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "a rejected request is not approved later");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let actions = ended(&app, &admin, |a| a["action"] == "promote").await;
    let promotions: Vec<&Value> = list(&actions)
        .iter()
        .filter(|a| a["action"] == "promote")
        .collect();
    assert_eq!(promotions.len(), 1, "{actions}");
    assert_eq!(promotions[0]["approval_id"], second.as_str());
    assert_eq!(promotions[0]["status"], "succeeded");
    let (_, info) = app.get_json(&admin, "/model/info").await;
    assert_eq!(info["version"], challenger, "the rejected one never ran");
    // The chain holds every step, linked: alert → incident → decision → approval → action.
    let (_, events) = app.get_json(&admin, "/api/v1/audit?limit=200").await;
    let text = events.to_string();
    for action in [
        "agent.alert",
        "agent.decision",
        "agent.approval.requested",
        "agent.approval.approved",
        "agent.approval.rejected",
        "agent.action.started",
        "agent.action.finished",
    ] {
        assert!(text.contains(action), "{action} is audited");
    }
    let (_, verify) = app.get_json(&admin, "/api/v1/audit/verify").await;
    assert!(verify["first_break"].is_null(), "{verify}");
}

/// D (expiry): a request left alone expires, and then can't be approved.
#[tokio::test]
async fn d_an_unanswered_request_expires() {
    let app = app_with_model(|s| gated(s, 0.001)).await;
    let token = app.admin_token().await;
    simulate(
        &app,
        &format!("{UCI}/processed.hungarian.data"),
        &token,
        true,
    )
    .await;
    run_check(&app, &token).await;
    let expired = until(&app, &token, "/api/v1/approvals?status=expired", 300, |v| {
        !list(v).is_empty()
    })
    .await;
    let id = expired[0]["id"].as_str().unwrap();
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/approvals/{id}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, info) = app.get_json(&token, "/model/info").await;
    assert_eq!(info["version"], 1);
}

/// E: 100 identical Alertmanager alerts at once → one incident, one decision; `resolved`
/// closes it. Bad payloads and credentials are refused with a reason, signatures are checked.
#[tokio::test]
async fn e_an_alert_storm_is_one_incident_and_one_decision() {
    let app = spawn_app_with(|s| {
        s.agent.tick_secs = 1;
        s.agent.webhook_secret = secrecy::SecretString::from("a-webhook-secret-of-some-length");
    })
    .await;
    let token = app.admin_token().await;
    let body = drift_alert("0123456789abcdef", "firing");
    let sends = (0..100).map(|_| {
        let (url, token, body) = (app.url("/agent/alerts"), token.clone(), body.clone());
        async move {
            crate::helpers::client()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let incidents = until(&app, &token, "/api/v1/incidents", 30, |v| {
        list(v).len() == 1 && !v[0]["decision_id"].is_null()
    })
    .await;
    assert_eq!(incidents[0]["alert_count"], 100);
    assert_eq!(incidents[0]["fingerprint"], "am:0123456789abcdef");
    let (_, decisions) = app.get_json(&token, "/api/v1/decisions").await;
    assert_eq!(list(&decisions).len(), 1, "{decisions}");
    // Resolved closes it; resolving again changes nothing.
    let (status, r) = app
        .api(
            &token,
            "POST",
            "/agent/alerts",
            drift_alert("0123456789abcdef", "resolved"),
        )
        .await;
    assert_eq!((status, r["resolved"].as_u64()), (200, Some(1)), "{r}");
    let (_, r) = app
        .api(
            &token,
            "POST",
            "/agent/alerts",
            drift_alert("0123456789abcdef", "resolved"),
        )
        .await;
    assert_eq!(r["ignored"], 1);
    let (_, open) = app.get_json(&token, "/api/v1/incidents?status=open").await;
    assert!(list(&open).is_empty(), "{open}");

    // Credentials: none, a viewer, a bad or a good signature.
    let raw = serde_json::to_vec(&drift_alert("00000000000000aa", "firing")).unwrap();
    let post = |headers: Vec<(&'static str, String)>, body: Vec<u8>| {
        let mut r = crate::helpers::client()
            .post(app.url("/agent/alerts"))
            .header("Content-Type", "application/json")
            .body(body);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        async move { r.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(post(vec![], raw.clone()).await, 401);
    let vera = app.user_token(&token, "vera", "viewer").await;
    assert_eq!(
        post(
            vec![("Authorization", format!("Bearer {vera}"))],
            raw.clone()
        )
        .await,
        403
    );
    assert_eq!(
        post(
            vec![("X-Steward-Signature", "sha256=00".into())],
            raw.clone()
        )
        .await,
        401
    );
    use hmac::Mac;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(b"a-webhook-secret-of-some-length").unwrap();
    mac.update(&raw);
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        post(vec![("X-Steward-Signature", sig.clone())], raw.clone()).await,
        200
    );
    // The signature covers the body: a changed body fails it.
    let mut changed = raw.clone();
    changed.push(b' ');
    assert_eq!(post(vec![("X-Steward-Signature", sig)], changed).await, 401);

    // Bad payloads: 4xx naming the field, never 5xx.
    for (bad, field) in [
        (
            json!({"version": "3", "status": "firing", "alerts": []}),
            "version",
        ),
        (
            json!({"version": "4", "status": "firing", "alerts": []}),
            "alerts",
        ),
        (
            json!({"version": "4", "status": "sleeping", "alerts": [{"status": "firing", "labels": {}}]}),
            "status",
        ),
        (
            json!({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alert_type": "weather"}}]}),
            "alerts[0].labels.alert_type",
        ),
        (
            json!({"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {}, "fingerprint": "not hex"}]}),
            "alerts[0].fingerprint",
        ),
    ] {
        let (status, body) = app.api(&token, "POST", "/agent/alerts", bad).await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    let (status, _) = app
        .api(
            &token,
            "POST",
            "/agent/alerts",
            json!({"version": "4", "surprise": 1}),
        )
        .await;
    assert_eq!(status, 400);
    let huge = json!({"version": "4", "status": "firing", "alerts": [{"status": "firing",
        "labels": {}, "annotations": {"summary": "x".repeat(2_000_000)}}]});
    let (status, _) = app.api(&token, "POST", "/agent/alerts", huge).await;
    assert_eq!(status, 413);
}

/// The kill switch stops new decisions at once; resuming lets them through. Dry run decides
/// and records, never acts.
#[tokio::test]
async fn the_kill_switch_and_dry_run_hold_actions_back() {
    let app = spawn_app_with(|s| s.agent.tick_secs = 1).await;
    let admin = app.admin_token().await;
    let april = app.user_token(&admin, "april", "approver").await;
    let (status, s) = app
        .api(&april, "POST", "/api/v1/agent/pause", json!({}))
        .await;
    assert_eq!((status, s["paused"].as_bool()), (200, Some(true)), "{s}");
    let (status, _) = app
        .api(&april, "POST", "/api/v1/agent/resume", json!({}))
        .await;
    assert_eq!(
        status, 403,
        "approvers stop the agent; admins start it again"
    );
    app.api(
        &admin,
        "POST",
        "/agent/alerts",
        drift_alert("00000000000000b1", "firing"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, incidents) = app.get_json(&admin, "/api/v1/incidents").await;
    assert!(incidents[0]["decision_id"].is_null(), "paused: {incidents}");
    let (status, _) = app
        .api(&admin, "POST", "/api/v1/agent/resume", json!({}))
        .await;
    assert_eq!(status, 200);
    until(&app, &admin, "/api/v1/incidents", 30, |v| {
        !v[0]["decision_id"].is_null()
    })
    .await;

    // Held on in the configuration, resuming does not release it.
    let held = spawn_app_with(|s| {
        s.agent.tick_secs = 1;
        s.agent.paused = true;
    })
    .await;
    let token = held.admin_token().await;
    let (status, body) = held
        .api(&token, "POST", "/api/v1/agent/resume", json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, s) = held.get_json(&token, "/api/v1/agent/status").await;
    assert_eq!(s["paused"], true, "{s}");
    assert_eq!(s["paused_by_config"], true, "{s}");

    let dry = spawn_app_with(|s| {
        s.agent.tick_secs = 1;
        s.agent.dry_run = true;
        let rule = s
            .agent
            .rules
            .iter_mut()
            .find(|r| r.name == "decay")
            .expect("the decay rule");
        rule.alert_types = vec!["external".into()];
        rule.action = "notify".into();
    })
    .await;
    let token = dry.admin_token().await;
    let mut alert = drift_alert("00000000000000c1", "firing");
    alert["alerts"][0]["labels"]["alert_type"] = json!("external");
    dry.api(&token, "POST", "/agent/alerts", alert).await;
    let decisions = until(&dry, &token, "/api/v1/decisions", 30, |v| {
        !list(v).is_empty()
    })
    .await;
    assert_eq!(decisions[0]["status"], "dry_run", "{decisions}");
    assert_eq!(decisions[0]["action"], "notify");
    let (_, actions) = dry.get_json(&token, "/api/v1/agent/actions").await;
    assert!(list(&actions).is_empty(), "{actions}");
}

/// F: `kill -9` during a retrain; after the restart no action is left running, the registry is
/// as it was (v1 in Production, served), and the audit chain verifies.
#[tokio::test]
async fn f_a_retrain_killed_mid_way_leaves_nothing_running_after_a_restart() {
    use crate::cli::{start_server, terminate};
    let dir = tempfile::tempdir().expect("tempdir");
    let database = crate::helpers::fresh_database(dir.path());
    let storage = dir.path().join("var");
    let base = vec![
        ("STEWARD__DATABASE__URL", database.url.clone()),
        ("STEWARD__STORAGE__DIR", storage.display().to_string()),
        ("STEWARD__AUDIT__KEY", crate::helpers::AUDIT_KEY.to_owned()),
        (
            "STEWARD__AUTH__ADMIN_PASSWORD",
            "f-admin-password-1".to_owned(),
        ),
        ("STEWARD__AGENT__TICK_SECS", "1".to_owned()),
        ("STEWARD__LOG__LEVEL", "info".to_owned()),
    ];
    let mut env = base.clone();
    env.push(("STEWARD__TRAINING__ON_FIRST_START", "true".into()));
    env.push(("STEWARD__TRAINING__MODELS", "lr".into()));
    let (mut child, _, _) = start_server(&env);
    terminate(&mut child);
    // Slow candidates now, so the retrain is caught mid-way.
    let mut slow = base.clone();
    slow.push(("STEWARD__TRAINING__MODELS", "rf".into()));
    slow.push(("STEWARD__TRAINING__RF__TREES", "600".into()));
    let (mut child, port, _) = start_server(&slow);
    let url = format!("http://127.0.0.1:{port}");
    let token = crate::helpers::cli_token(&base, "admin", "f");
    let sim = std::process::Command::new(crate::helpers::steward_bin())
        .args([
            "simulate",
            "--file",
            &format!("{UCI}/processed.hungarian.data"),
            "--url",
            &url,
            "--token",
            &token,
            "--labels",
        ])
        .envs(base.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("simulate");
    assert!(sim.status.success());
    let client = crate::helpers::client();
    let r = client
        .post(format!("{url}/api/v1/drift/run"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s: Value = client
            .get(format!("{url}/api/v1/agent/status"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["running_actions"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["action"] == "retrain"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no retrain started: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");

    let mut env = base.clone();
    env.push(("STEWARD__TRAINING__MODELS", "lr".into()));
    env.push(("STEWARD__AGENT__PAUSED", "true".into()));
    let (mut child, port, _) = start_server(&env);
    let url = format!("http://127.0.0.1:{port}");
    let get = |path: &str| {
        let (client, url, token) = (client.clone(), format!("{url}{path}"), token.clone());
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let actions = loop {
        let actions = get("/api/v1/agent/actions").await;
        if actions
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] != "running")
        {
            break actions;
        }
        assert!(Instant::now() < deadline, "{actions}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let retrain = actions
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "retrain")
        .expect("the retrain");
    assert_eq!(retrain["status"], "failed");
    assert!(
        retrain["error"].as_str().unwrap().contains("interrupted"),
        "{retrain}"
    );
    let status = get("/api/v1/agent/status").await;
    assert!(status["running_actions"].as_array().unwrap().is_empty());
    let info = get("/model/info").await;
    assert_eq!(info["version"], 1, "{info}");
    let models = get("/api/v1/models/heart-disease").await;
    let in_production = models["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["stage"] == "Production")
        .count();
    assert_eq!(in_production, 1, "{models}");
    terminate(&mut child);
    let out = std::process::Command::new(crate::helpers::steward_bin())
        .args(["audit", "verify"])
        .envs(base.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Outside alerts never fill the store: past `agent.max_open_incidents` a call takes nothing
/// (503, Alertmanager retries), all or none; the body must be JSON.
#[tokio::test]
async fn alertmanagers_open_incidents_are_bounded_and_a_call_is_all_or_nothing() {
    let app = spawn_app_with(|s| s.agent.max_open_incidents = 2).await;
    let token = app.admin_token().await;
    let three = {
        let mut body = drift_alert("00000000000000e1", "firing");
        let one = body["alerts"][0].clone();
        let mut alerts = Vec::new();
        for f in ["00000000000000e1", "00000000000000e2", "00000000000000e3"] {
            let mut a = one.clone();
            a["fingerprint"] = json!(f);
            alerts.push(a);
        }
        body["alerts"] = json!(alerts);
        body
    };
    // Three new ones at once would pass the limit of two: nothing is taken.
    let (status, body) = app
        .api(&token, "POST", "/agent/alerts", three.clone())
        .await;
    assert_eq!(status, 503, "{body}");
    let (_, open) = app.get_json(&token, "/api/v1/incidents").await;
    assert!(list(&open).is_empty(), "all or nothing: {open}");
    let post = |f: &'static str, status: &'static str| {
        let (app, token) = (&app, &token);
        async move {
            app.api(token, "POST", "/agent/alerts", drift_alert(f, status))
                .await
                .0
        }
    };
    assert_eq!(post("00000000000000e1", "firing").await, 200);
    assert_eq!(post("00000000000000e2", "firing").await, 200);
    let (_, open) = app.get_json(&token, "/api/v1/incidents?status=open").await;
    assert_eq!(list(&open).len(), 2);
    assert!(
        open[0].get("evidence_json").is_none(),
        "lists carry no evidence"
    );
    assert_eq!(post("00000000000000e3", "firing").await, 503, "full");
    // Repeats and resolutions still pass, so room can be made.
    assert_eq!(post("00000000000000e1", "firing").await, 200, "a repeat");
    assert_eq!(
        post("00000000000000e1", "resolved").await,
        200,
        "a resolution"
    );
    assert_eq!(post("00000000000000e3", "firing").await, 200, "room again");
    let r = app
        .client
        .post(app.url("/agent/alerts"))
        .bearer_auth(&token)
        .header("Content-Type", "text/plain")
        .body(drift_alert("00000000000000e5", "firing").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
}

/// The Prometheus config shipped in config/prometheus is valid (scrape config, recording and
/// alerting rules), and each alert fires past its threshold and `for`, once across replicas,
/// with the `alert_type` the agent reads (promtool's rule tests, alerts_test.yml).
#[test]
fn the_shipped_prometheus_rules_fire_with_the_agents_labels() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "rules.yml", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("promtool is installed (make test installs the prometheus package)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The other order from tests/api/alerting.rs: an outside drift alert comes first (its
/// decision, made on an outside word, is a no-op here), then monitoring's own check finds the
/// drift: monitoring's alert is not held back by the outside incident (it opens its own, which
/// is decided on monitoring's evidence), and a later Alertmanager alert joins monitoring's.
#[tokio::test]
async fn an_outside_alert_first_does_not_hold_back_monitorings_own() {
    let app = app_with_model(|_| {}).await;
    let token = app.admin_token().await;
    let (status, taken) = app
        .api(
            &token,
            "POST",
            "/agent/alerts",
            drift_alert("00000000000000f1", "firing"),
        )
        .await;
    assert_eq!(status, 200, "{taken}");
    simulate(
        &app,
        &format!("{UCI}/processed.hungarian.data"),
        &token,
        true,
    )
    .await;
    let report = run_check(&app, &token).await;
    assert!(
        report["alerts"].to_string().contains("\"drift\""),
        "{report}"
    );
    let incidents = until(&app, &token, "/api/v1/incidents?status=open", 60, |v| {
        list(v)
            .iter()
            .any(|i| i["type"] == "drift" && i["source"] == "monitoring")
    })
    .await;
    let ours = list(&incidents)
        .iter()
        .find(|i| i["type"] == "drift" && i["source"] == "monitoring")
        .expect("monitoring's incident")
        .clone();
    let decided = until(&app, &token, "/api/v1/decisions?limit=500", 60, |v| {
        list(v).iter().any(|d| d["incident_id"] == ours["id"])
    })
    .await;
    let decision = list(&decided)
        .iter()
        .find(|d| d["incident_id"] == ours["id"])
        .expect("its decision");
    assert_eq!(decision["rule"], "drift", "{decision}");
    // A second outside drift alert (another fingerprint) now joins monitoring's incident.
    let (status, taken) = app
        .api(
            &token,
            "POST",
            "/agent/alerts",
            drift_alert("00000000000000f2", "firing"),
        )
        .await;
    assert_eq!(status, 200, "{taken}");
    assert_eq!(taken["repeated"], 1, "{taken}");
    assert_eq!(taken["incidents"][0], ours["id"], "{taken}");
}
