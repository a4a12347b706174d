//! Three `steward serve` processes on one store (PostgreSQL in the PostgreSQL run): each
//! scheduled job runs once per interval between them, the agent in one at a time, an approval's
//! action once, a promotion made through one replica is served by all within
//! `serving.refresh_secs`, predictions and feedback go through any replica, and a replica killed
//! holding a lease is replaced once the lease expires.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};
use serde_json::{Value, json};

use crate::cli::{start_server_with, terminate};
use crate::helpers::{AUDIT_KEY, cli_token, client, fresh_database, scrape, steward_bin};

const UCI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/uci-heart-disease");
const ADMIN_PASSWORD: &str = "replicas-admin-password-1";

struct Replica {
    child: Child,
    url: String,
    pid: u32,
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let r = client()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(url: &str, token: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `url` until `done` holds, for at most `secs`.
async fn until(url: &str, token: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, v) = get(url, token).await;
        if status == 200 && done(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{url} within {secs} s: {status} {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start(role: &str, config: &std::path::Path, env: &[(&str, String)]) -> Replica {
    let config = config.display().to_string();
    let (child, port, _) = start_server_with(&["--config", &config, "--role", role], env);
    let pid = child.id();
    Replica {
        child,
        url: format!("http://127.0.0.1:{port}"),
        pid,
    }
}

/// The pid in a holder id (`host:pid:start`).
fn pid_of(holder: &Value) -> Option<u32> {
    holder.as_str()?.split(':').nth(1)?.parse().ok()
}

fn lease<'a>(scheduler: &'a Value, name: &str) -> &'a Value {
    scheduler["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .find(|l| l["name"] == name)
        .unwrap_or(&Value::Null)
}

fn scheduled_checks(checks: &Value) -> Vec<chrono::NaiveDateTime> {
    let mut at: Vec<chrono::NaiveDateTime> = checks
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["trigger"] == "scheduled")
        .map(|c| serde_json::from_value(c["created_at"].clone()).expect("a time"))
        .collect();
    at.sort();
    at
}

#[tokio::test]
async fn three_replicas_on_one_store_share_the_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let storage = dir.path().join("var");
    // Approval-gated retrains, so an approval's action can be answered through two replicas.
    let config = dir.path().join("replicas.toml");
    std::fs::write(
        &config,
        "[agent]\ntick_secs = 1\ncooldown_minutes = 0\npromotion_margin = -1.0\n\
         [[agent.rules]]\nname = \"gated-retrain\"\nalert_types = [\"drift\"]\n\
         drift_share_above = 0.5\naction = \"retrain\"\napproval = true\n",
    )
    .expect("config");
    let base = vec![
        ("STEWARD__DATABASE__URL", database.url.clone()),
        ("STEWARD__STORAGE__DIR", storage.display().to_string()),
        ("STEWARD__AUDIT__KEY", AUDIT_KEY.to_owned()),
        ("STEWARD__AUTH__ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("STEWARD__SCHEDULER__LEASE_SECS", "3".to_owned()),
        ("STEWARD__MONITORING__INTERVAL_SECS", "2".to_owned()),
        ("STEWARD__SERVING__REFRESH_SECS", "1".to_owned()),
        ("STEWARD__TRAINING__MODELS", "lr".to_owned()),
        ("STEWARD__LOG__LEVEL", "info".to_owned()),
    ];
    // The first trains on its first start; the others find its model.
    let mut first = base.clone();
    first.push(("STEWARD__TRAINING__ON_FIRST_START", "true".into()));
    let mut a = start("all", &config, &first);
    let mut b = start("worker", &config, &base);
    let mut c = start("api", &config, &base);
    let token = cli_token(&base, "admin", "replicas");
    for r in [&a, &b, &c] {
        until(&format!("{}/ready", r.url), &token, 60, |_| true).await;
    }
    let (_, s) = get(&format!("{}/api/v1/scheduler", c.url), &token).await;
    assert_eq!(s["role"], "api", "{s}");
    assert_eq!(pid_of(&s["holder"]), Some(c.pid), "{s}");
    assert_eq!(
        s["agent_leading"], false,
        "an api replica runs no agent: {s}"
    );

    // Predictions and their labels through the api replica; the log is one store's.
    let sim = Command::new(steward_bin())
        .args([
            "simulate",
            "--file",
            &format!("{UCI}/processed.hungarian.data"),
            "--url",
            &c.url,
            "--token",
            &token,
            "--labels",
        ])
        .envs(base.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("simulate");
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let db = steward::db::Db::connect(
        &crate::helpers::test_settings(dir.path(), &database.url).database,
    )
    .expect("connect");
    let count = |sql: &'static str| {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = db.get().expect("conn");
        diesel::sql_query(sql)
            .get_result::<N>(&mut *conn)
            .expect("count")
            .n
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while count("SELECT COUNT(*) AS n FROM predictions") < 294 {
        assert!(
            Instant::now() < deadline,
            "the log holds the api replica's rows"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count("SELECT COUNT(*) AS n FROM feedback"), 294);

    // Scheduled drift checks every 2 s: once per interval between the two working replicas.
    let since = steward::db::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (_, checks) = get(&format!("{}/api/v1/drift/checks?limit=500", a.url), &token).await;
    let at = scheduled_checks(&checks);
    let recent = at.iter().filter(|t| **t > since).count();
    assert!(
        (4..=8).contains(&recent),
        "about one check per 2 s in 12 s, not one per replica: {recent} of {at:?}"
    );
    for pair in at.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!(gap >= 1000, "two checks {gap} ms apart: {at:?}");
    }
    let (_, s) = get(&format!("{}/api/v1/scheduler", a.url), &token).await;
    let drift = lease(&s, "job:drift_check");
    assert!(
        drift["runs"].as_i64().unwrap_or(0) >= at.len() as i64,
        "{s}"
    );
    assert!(
        [Some(a.pid), Some(b.pid)].contains(&pid_of(&drift["holder"])),
        "a working replica ran it: {s}"
    );
    let agent = lease(&s, "agent");
    let leader = pid_of(&agent["holder"]).expect("someone leads the agent");
    assert!([a.pid, b.pid].contains(&leader), "{s}");
    assert_eq!(agent["held"], true, "{s}");
    // The same from the CLI, and in each replica's metrics: one runs the agent.
    let jobs = Command::new(steward_bin())
        .args(["jobs", "--json"])
        .envs(base.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("steward jobs");
    let jobs: Value = serde_json::from_slice(&jobs.stdout).expect("JSON");
    let names: Vec<&str> = jobs
        .as_array()
        .expect("leases")
        .iter()
        .filter_map(|l| l["name"].as_str())
        .collect();
    assert!(
        names.contains(&"agent") && names.contains(&"job:drift_check"),
        "{jobs}"
    );
    let mut leading = 0;
    for r in [&a, &b, &c] {
        let text = scrape(&r.url).await;
        if text.lines().any(|l| l == "steward_agent_leading 1") {
            leading += 1;
        }
    }
    assert_eq!(leading, 1, "one replica runs the agent");

    // The kill switch pulled through the api replica and released through another:
    // steward_agent_paused is the leader's reading of the store, and the api replica, which
    // runs no agent, reports none (it used to keep the 1 it set when it took the pause).
    let paused_gauge = |url: String| async move {
        let text = scrape(&url).await;
        text.lines()
            .find_map(|l| l.strip_prefix("steward_agent_paused "))
            .map(str::to_owned)
    };
    // What Prometheus's max() across the working replicas reads (NaN ignored): the leader's,
    // whichever of the two leads by then.
    let across = || async {
        let mut max = None::<f64>;
        for url in [a.url.clone(), b.url.clone()] {
            if let Some(v) = paused_gauge(url).await.and_then(|v| v.parse::<f64>().ok()) {
                if !v.is_nan() {
                    max = Some(max.map_or(v, |m| m.max(v)));
                }
            }
        }
        max
    };
    for (switch, through, reads) in [("pause", &c, 1.0), ("resume", &b, 0.0)] {
        let url = format!("{}/api/v1/agent/{switch}", through.url);
        let (status, _) = post(&url, &token, json!({})).await;
        assert_eq!(status, 200);
        let deadline = Instant::now() + Duration::from_secs(30);
        while across().await != Some(reads) {
            assert!(Instant::now() < deadline, "the leader reports the {switch}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(
        paused_gauge(c.url.clone()).await,
        None,
        "the api replica runs no agent"
    );

    // The repeated drift is one incident with one decision, whichever replica checked.
    let pending = until(
        &format!("{}/api/v1/approvals?status=pending", c.url),
        &token,
        300,
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let (_, incidents) = get(&format!("{}/api/v1/incidents?limit=500", b.url), &token).await;
    let drift_incidents: Vec<&Value> = incidents
        .as_array()
        .expect("incidents")
        .iter()
        .filter(|i| i["type"] == "drift")
        .collect();
    assert_eq!(drift_incidents.len(), 1, "{incidents}");
    // Each stored check's alert was taken once, not once per replica.
    let (_, checks) = get(&format!("{}/api/v1/drift/checks?limit=500", a.url), &token).await;
    let completed = checks
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "completed")
        .count() as i64;
    let taken = drift_incidents[0]["alert_count"].as_i64().expect("a count");
    assert!(
        taken <= completed,
        "{taken} drift alerts taken from {completed} checks"
    );
    let (_, decisions) = get(&format!("{}/api/v1/decisions?limit=500", b.url), &token).await;
    let for_it = decisions
        .as_array()
        .expect("decisions")
        .iter()
        .filter(|d| d["incident_id"] == drift_incidents[0]["id"])
        .count();
    assert_eq!(for_it, 1, "{decisions}");
    let approval = pending[0]["id"].as_str().expect("id").to_owned();
    let challenger = pending[0]["version"].as_i64().expect("version");

    // One approval answered through two replicas at once: one yes, one conflict.
    let path = format!("/api/v1/approvals/{approval}/approve");
    let (via_b, via_c) = (format!("{}{path}", b.url), format!("{}{path}", c.url));
    let (one, two) = tokio::join!(
        post(&via_b, &token, json!({ "comment": "b" })),
        post(&via_c, &token, json!({ "comment": "c" })),
    );
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{one:?} {two:?}");
    // Its promotion runs once, and every replica serves it within serving.refresh_secs (1 s)
    // of the registry's change.
    let answered = Instant::now();
    let mut reached = Vec::new();
    for r in [&a, &b, &c] {
        until(&format!("{}/model/info", r.url), &token, 120, |m| {
            m["version"] == challenger
        })
        .await;
        reached.push(answered.elapsed());
    }
    let (_, actions) = get(&format!("{}/api/v1/agent/actions?limit=500", a.url), &token).await;
    let promotions: Vec<&Value> = actions
        .as_array()
        .expect("actions")
        .iter()
        .filter(|x| x["action"] == "promote")
        .collect();
    assert_eq!(promotions.len(), 1, "{actions}");
    assert_eq!(promotions[0]["approval_id"], approval.as_str());
    eprintln!("promotion served by the three replicas {reached:?} after the approval");

    // The agent's leader killed: another working replica takes the lease (at once, as the
    // dead holder was of this host and pid namespace; another host's would be waited out, as
    // below) and recovers what the dead one left running.
    let (killed, survivor) = if leader == a.pid {
        (&mut a, b.pid)
    } else {
        (&mut b, a.pid)
    };
    killed.child.kill().expect("kill -9");
    killed.child.wait().expect("reaped");
    let took_over = Instant::now();
    let survivor_url = if survivor == a.pid {
        a.url.clone()
    } else {
        b.url.clone()
    };
    until(
        &format!("{survivor_url}/api/v1/scheduler"),
        &token,
        30,
        |s| s["agent_leading"] == true,
    )
    .await;
    eprintln!("agent taken over after {:?}", took_over.elapsed());

    // A replica that died mid-run holding a job's lease (one of another host, which nobody
    // can ask about): no check runs until its lease expires, then the survivor's do.
    {
        let mut conn = db.get().expect("conn");
        let until_at = steward::db::now() + chrono::Duration::seconds(6);
        diesel::update(steward::db::schema::leases::table.find("job:drift_check"))
            .set((
                steward::db::schema::leases::holder.eq("elsewhere:1:1"),
                steward::db::schema::leases::expires_at.eq(until_at),
            ))
            .execute(&mut *conn)
            .expect("a dead holder");
    }
    // A run in flight as the lease was taken ends; then nothing until it expires.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = scheduled_checks(
        &get(&format!("{}/api/v1/drift/checks?limit=500", c.url), &token)
            .await
            .1,
    )
    .len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let held = scheduled_checks(
        &get(&format!("{}/api/v1/drift/checks?limit=500", c.url), &token)
            .await
            .1,
    )
    .len();
    assert_eq!(held, before, "no check while a dead replica's lease stands");
    until(
        &format!("{}/api/v1/drift/checks?limit=500", c.url),
        &token,
        20,
        |v| scheduled_checks(v).len() > before,
    )
    .await;
    let (_, s) = get(&format!("{}/api/v1/scheduler", c.url), &token).await;
    assert_eq!(
        pid_of(&lease(&s, "job:drift_check")["holder"]),
        Some(survivor),
        "{s}"
    );

    for r in [&mut a, &mut b, &mut c] {
        if r.child.try_wait().expect("wait").is_none() {
            terminate(&mut r.child);
        }
    }
    let out = Command::new(steward_bin())
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
