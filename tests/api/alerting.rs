//! Steward under Debian's real Prometheus and Alertmanager on loopback, with the shipped
//! config/prometheus files (their waits and `for` shortened for a test): a drifted replay sets
//! the drift gauges, Prometheus fires StewardDatasetDrift, Alertmanager posts it to
//! /agent/alerts with the token from its credentials file, and the agent records it on the one
//! incident its own monitoring opened for the drift: one incident, one decision.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{start_server, terminate};
use crate::helpers::{
    AUDIT_KEY, Daemon, cli_token, client, free_port, fresh_database, steward_bin,
};

const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/prometheus");

fn shipped(name: &str) -> String {
    std::fs::read_to_string(format!("{SHIPPED}/{name}")).expect("a shipped file")
}

async fn get_json(url: &str, token: Option<&str>) -> Value {
    let mut request = client().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    match request.send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn until(what: &str, secs: u64, mut probe: impl AsyncFnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_drifted_replay_fires_prometheus_and_alertmanager_reaches_the_agent_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let env = vec![
        ("STEWARD__DATABASE__URL", database.url.clone()),
        (
            "STEWARD__STORAGE__DIR",
            dir.path().join("var").display().to_string(),
        ),
        ("STEWARD__AUDIT__KEY", AUDIT_KEY.to_owned()),
        (
            "STEWARD__AUTH__ADMIN_PASSWORD",
            "alerting-admin-password-1".to_owned(),
        ),
        ("STEWARD__TRAINING__ON_FIRST_START", "true".to_owned()),
        ("STEWARD__TRAINING__MODELS", "lr".to_owned()),
        ("STEWARD__AGENT__TICK_SECS", "1".to_owned()),
        // Checks only when the test asks: one check, one monitoring alert.
        ("STEWARD__MONITORING__INTERVAL_SECS", "86400".to_owned()),
        ("STEWARD__LOG__LEVEL", "info".to_owned()),
    ];
    let (child, port, _) = start_server(&env);
    let mut steward = Daemon(child);
    let url = format!("http://127.0.0.1:{port}");
    let admin = cli_token(&env, "admin", "test");
    {
        use std::io::Write;
        let mut add = Command::new(steward_bin())
            .args(["users", "add", "alertmanager", "--role", "approver"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("users add");
        add.stdin
            .take()
            .expect("stdin")
            .write_all(b"alertmanager-password-1\n")
            .expect("password");
        assert!(add.wait().expect("users add").success());
    }
    let approver = cli_token(&env, "alertmanager", "alertmanager");

    // Alertmanager: the shipped receiver, pointed at this Steward and a token file here.
    let am_port = free_port();
    let token_file = dir.path().join("steward-token");
    std::fs::write(&token_file, &approver).expect("token file");
    let am_config = shipped("alertmanager.yml")
        .replace("http://steward:8080", &url)
        .replace(
            "/etc/alertmanager/steward-token",
            &token_file.display().to_string(),
        )
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_interval: 5m", "group_interval: 1s");
    assert!(am_config.contains(&url) && am_config.contains("group_wait: 1s"));
    std::fs::write(dir.path().join("alertmanager.yml"), am_config).expect("config");
    let _alertmanager = Daemon(
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("am-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed (make test installs it)"),
    );

    // Prometheus: the shipped scrape config and rules, scraping this Steward every second.
    let prom_port = free_port();
    let scrape = shipped("prometheus.yml")
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("'steward:8080'", &format!("'127.0.0.1:{port}'"))
        .replace("'alertmanager:9093'", &format!("'127.0.0.1:{am_port}'"));
    assert!(scrape.contains(&format!("127.0.0.1:{port}")));
    std::fs::write(dir.path().join("prometheus.yml"), scrape).expect("config");
    std::fs::write(dir.path().join("rules.yml"), shipped("rules.yml")).expect("rules");
    let alerts = shipped("alerts.yml").replace("for: 5m", "for: 0s");
    assert!(alerts.contains("alert: StewardDatasetDrift"));
    std::fs::write(dir.path().join("alerts.yml"), alerts).expect("alerts");
    let _prometheus = Daemon(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (make test installs it)"),
    );
    let prom = format!("http://127.0.0.1:{prom_port}");
    until("Prometheus scrapes Steward", 60, async || {
        let v = get_json(&format!("{prom}/api/v1/targets"), None).await;
        (v["data"]["activeTargets"][0]["health"] == "up").then_some(v)
    })
    .await;

    // The drifted replay (Hungary, with labels) and one check.
    let sim = Command::new(steward_bin())
        .args([
            "simulate",
            "--file",
            &format!("{UCI}/processed.hungarian.data"),
            "--url",
            &url,
            "--token",
            &admin,
            "--labels",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("simulate");
    assert!(sim.status.success());
    // The log reaches the store a moment after the replay's last answer: checked until the
    // window holds it.
    let check = until("a completed check", 60, async || {
        let r = client()
            .post(format!("{url}/api/v1/drift/run"))
            .bearer_auth(&admin)
            .json(&json!({}))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        (v["status"] == "completed").then_some(v)
    })
    .await;
    assert_eq!(check["dataset_drift"], true, "{}", check["drift_share"]);

    // Prometheus fires the rule, Alertmanager posts it, the agent takes it.
    until("StewardDatasetDrift firing in Prometheus", 60, async || {
        let v = get_json(&format!("{prom}/api/v1/alerts"), None).await;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .any(|a| a["labels"]["alertname"] == "StewardDatasetDrift" && a["state"] == "firing")
            .then_some(v)
    })
    .await;
    let am = format!("http://127.0.0.1:{am_port}");
    until("the alert in Alertmanager", 60, async || {
        let v = get_json(&format!("{am}/api/v2/alerts"), None).await;
        v.as_array()?
            .iter()
            .any(|a| a["labels"]["alertname"] == "StewardDatasetDrift")
            .then_some(v)
    })
    .await;
    until("the agent took Alertmanager's alert", 60, async || {
        let text = client()
            .get(format!("{url}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .any(|l| {
                l.starts_with("steward_agent_alerts_total{")
                    && l.contains("source=\"alertmanager\"")
                    && l.contains("type=\"drift\"")
            })
            .then_some(Value::Null)
    })
    .await;

    // One drift incident, which both sources reported, and one decision for it.
    let incidents = get_json(&format!("{url}/api/v1/incidents?limit=500"), Some(&admin)).await;
    let drift: Vec<&Value> = incidents
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["type"] == "drift")
        .collect();
    assert_eq!(drift.len(), 1, "{incidents}");
    assert!(drift[0]["alert_count"].as_i64() >= Some(2), "{}", drift[0]);
    let decided = until("its decision", 60, async || {
        let v = get_json(&format!("{url}/api/v1/decisions?limit=500"), Some(&admin)).await;
        let n = v
            .as_array()?
            .iter()
            .filter(|d| d["incident_id"] == drift[0]["id"])
            .count();
        (n > 0).then_some(v)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let decisions = get_json(&format!("{url}/api/v1/decisions?limit=500"), Some(&admin)).await;
    let for_it = decisions
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["incident_id"] == drift[0]["id"])
        .count();
    assert_eq!(for_it, 1, "one decision, still: {decided}");

    // The provisioned Grafana dashboard's every expression is valid PromQL to this Prometheus,
    // over metric names Steward exports (or the shipped recording rules).
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/grafana/dashboards/steward.json"
        ))
        .expect("the dashboard"),
    )
    .expect("JSON");
    let exposition = crate::helpers::scrape(&url).await;
    let telemetry = include_str!("../../src/telemetry/mod.rs");
    let rules = shipped("rules.yml");
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("an expression");
            let v = get_json(
                &format!("{prom}/api/v1/query?query={}", url_escape(expr)),
                None,
            )
            .await;
            assert_eq!(v["status"], "success", "{expr}: {v}");
            for name in metric_names(expr) {
                let known = if name.contains(':') {
                    rules.contains(&format!("record: {name}"))
                } else {
                    exposition.contains(&format!("# TYPE {name} "))
                        || telemetry.contains(&format!("\"{name}\""))
                };
                assert!(known, "{name} in {expr} is neither exported nor recorded");
            }
            checked += 1;
        }
    }
    assert!(checked >= 14, "{checked} expressions");
    terminate(&mut steward.0);
}

/// Percent-encodes a query parameter.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The metric names in a PromQL expression: identifiers that are not functions, aggregations,
/// keywords or label names (those inside braces or after `by`).
fn metric_names(expr: &str) -> Vec<String> {
    const WORDS: [&str; 14] = [
        "sum",
        "max",
        "min",
        "rate",
        "increase",
        "by",
        "histogram_quantile",
        "clamp_min",
        "without",
        "avg",
        "count",
        "le",
        "on",
        "ignoring",
    ];
    let mut names = Vec::new();
    let (mut depth_brace, mut after_by, mut word) = (0, false, String::new());
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            let first = word.chars().next().unwrap_or('0');
            if depth_brace == 0
                && !after_by
                && !first.is_ascii_digit()
                && !WORDS.contains(&word.as_str())
                && c != '('
            {
                names.push(word.clone());
            }
            if word == "by" || word == "without" {
                after_by = true;
            }
            word.clear();
        }
        match c {
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            ')' => after_by = false,
            _ => {}
        }
    }
    names
}
