//! Artifacts on S3: moto's S3 server (from PyPI, in tests/deploy/.venv) on loopback. A store
//! made on the local folder is migrated to a bucket and verified; a server on the bucket alone
//! (the local blobs moved away) serves, predicts and trains into it; an object changed in the
//! bucket is refused by its hash; a bad storage.url is refused at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::{start_server, terminate};
use crate::helpers::{
    AUDIT_KEY, Daemon, cli_token, client, free_port, fresh_database, steward_bin,
};

const MOTO: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/deploy/.venv/bin/moto_server"
);
const BUCKET: &str = "steward-test";

/// The keys under `prefix` in the bucket (moto answers unsigned requests).
async fn keys(s3: &str, prefix: &str) -> Vec<String> {
    let text = client()
        .get(format!(
            "{s3}/{BUCKET}?list-type=2&prefix={prefix}&max-keys=1000"
        ))
        .send()
        .await
        .expect("list")
        .text()
        .await
        .expect("text");
    text.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_owned)
        .collect()
}

/// The id of the first run `GET /api/v1/runs` lists.
async fn newest_run(base: &str, token: &str) -> String {
    let runs: Value = client()
        .get(format!("{base}/api/v1/runs"))
        .bearer_auth(token)
        .send()
        .await
        .expect("runs")
        .json()
        .await
        .expect("json");
    runs["runs"][0]["id"]
        .as_str()
        .or(runs[0]["id"].as_str())
        .expect("a run")
        .to_owned()
}

fn run(env: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(steward_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("steward");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// moto's S3 server on a free loopback port with the test bucket made; its address.
async fn moto() -> (Daemon, String) {
    assert!(
        std::path::Path::new(MOTO).exists(),
        "moto's server is in tests/deploy/.venv (scripts/deploy-venv; make test runs it)"
    );
    let port = free_port();
    let daemon = Daemon(
        Command::new(MOTO)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server"),
    );
    let s3 = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client().put(format!("{s3}/{BUCKET}")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "moto did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (daemon, s3)
}

/// The settings of a store on the local folder under `dir`, with S3 credentials for a bucket
/// at `s3` (used once `STEWARD__STORAGE__URL` is added).
fn store_env(dir: &std::path::Path, database: &str, s3: &str) -> Vec<(&'static str, String)> {
    vec![
        ("STEWARD__DATABASE__URL", database.to_owned()),
        (
            "STEWARD__STORAGE__DIR",
            dir.join("var").display().to_string(),
        ),
        ("STEWARD__AUDIT__KEY", AUDIT_KEY.to_owned()),
        (
            "STEWARD__AUTH__ADMIN_PASSWORD",
            "storage-admin-password-1".to_owned(),
        ),
        ("STEWARD__TRAINING__MODELS", "lr".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", s3.to_owned()),
        ("AWS_ALLOW_HTTP", "true".to_owned()),
    ]
}

#[tokio::test]
async fn artifacts_migrate_to_s3_and_are_served_from_it_verified() {
    let (_moto, s3) = moto().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let storage = dir.path().join("var");
    let mut env = store_env(dir.path(), &database.url, &s3);
    // A store made on the local folder: the bundled data and a first model.
    let mut first = env.clone();
    first.push(("STEWARD__TRAINING__ON_FIRST_START", "true".into()));
    let (mut child, _, _) = start_server(&first);
    terminate(&mut child);
    let (code, info, _) = run(&env, &["storage", "info"]);
    assert_eq!(code, 0);
    let local: usize = info
        .split('(')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(local >= 3, "data, model and more: {info}");

    // Migrated, verified; a second run copies nothing again.
    let url = format!("s3://{BUCKET}/artifacts");
    let (code, out, err) = run(&env, &["storage", "migrate", "--to", &url]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{local} copied")), "{out}");
    assert_eq!(keys(&s3, "artifacts/blobs/").await.len(), local);
    let (code, out, _) = run(&env, &["storage", "migrate", "--to", &url]);
    assert_eq!(code, 0);
    assert!(out.contains(&format!("0 copied, {local} already")), "{out}");

    // A server on the bucket alone: the local blobs are moved away.
    std::fs::rename(storage.join("blobs"), dir.path().join("blobs-away")).expect("move away");
    env.push(("STEWARD__STORAGE__URL", url.clone()));
    let (code, info, _) = run(&env, &["storage", "info"]);
    assert_eq!(code, 0);
    assert!(
        info.starts_with(&url) && info.contains(&format!("({local} blobs)")),
        "{info}"
    );
    let (mut child, port, _) = start_server(&env);
    let base = format!("http://127.0.0.1:{port}");
    let ready = client()
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200, "the model loaded from S3");
    let patient = json!({"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1,
        "restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6});
    let r = client()
        .post(format!("{base}/predict"))
        .json(&patient)
        .send()
        .await
        .expect("predict");
    assert_eq!(r.status(), 200);
    // Training writes its artifacts to the bucket.
    let token = cli_token(&env, "admin", "s3");
    let r = client()
        .post(format!("{base}/api/v1/runs"))
        .bearer_auth(&token)
        .json(&json!({"models": ["lr"], "register": true, "promote": false}))
        .send()
        .await
        .expect("train");
    assert_eq!(r.status(), 201);
    let after = keys(&s3, "artifacts/blobs/").await;
    assert!(after.len() > local, "{} blobs after training", after.len());
    assert!(
        !storage.join("blobs").exists(),
        "nothing written to the local folder"
    );
    // The runs' artifacts read back through the API, verified.
    let run_id = &newest_run(&base, &token).await;
    let detail: Value = client()
        .get(format!("{base}/api/v1/runs/{run_id}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("run")
        .json()
        .await
        .expect("json");
    let artifact = detail["artifacts"][0]["name"]
        .as_str()
        .expect("an artifact");
    let r = client()
        .get(format!("{base}/api/v1/runs/{run_id}/artifacts/{artifact}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("artifact");
    assert_eq!(r.status(), 200, "{artifact}");
    terminate(&mut child);

    // An object changed in the bucket is refused by its hash: the migration back names it and
    // copies the rest.
    let victim = after[0].clone();
    {
        use object_store::ObjectStoreExt;
        let bucket = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&s3)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .expect("a client");
        bucket
            .put(
                &object_store::path::Path::from(victim.as_str()),
                object_store::PutPayload::from_static(b"not what was stored"),
            )
            .await
            .expect("tamper");
    }
    let back = dir.path().join("back");
    let (code, out, err) = run(
        &env,
        &["storage", "migrate", "--to", &back.display().to_string()],
    );
    assert_eq!(code, 1, "{out}{err}");
    let hash: String = victim
        .rsplit('/')
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert!(err.contains(&hash) && err.contains("corrupt"), "{err}");
    assert!(
        out.contains(&format!("{} copied", after.len() - 1)),
        "{out}"
    );

    // A storage.url that is not one is refused at start, naming the key.
    let mut bad = env.clone();
    bad.retain(|(k, _)| *k != "STEWARD__STORAGE__URL");
    bad.push(("STEWARD__STORAGE__URL", "s3://UPPER_case/x".into()));
    let (code, _, err) = run(&bad, &["storage", "info"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("storage.url"), "{err}");
    let (code, _, err) = run(&env, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
}

/// A TCP relay to an S3 server that can be made to hang: once stalled, it drops the
/// connections it relays and holds new ones open without a byte of answer, as a bucket behind
/// a broken network does. It runs on a thread of its own, so the test's blocking calls (CLI
/// commands through it) do not stop it.
struct Relay {
    port: u16,
    mode: tokio::sync::watch::Sender<RelayMode>,
}

#[derive(Clone, Copy, PartialEq)]
enum RelayMode {
    Relay,
    Stall,
    Stop,
}

impl Relay {
    fn start(upstream: u16) -> Relay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (mode, watch) = tokio::sync::watch::channel(RelayMode::Relay);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut stop = watch.clone();
                loop {
                    let (mut inbound, _) = tokio::select! {
                        accepted = listener.accept() => accepted.expect("accept"),
                        _ = stop.wait_for(|m| *m == RelayMode::Stop) => return,
                    };
                    let mut mode = watch.clone();
                    tokio::spawn(async move {
                        if *mode.borrow() != RelayMode::Relay {
                            // Held open, never answered, until the relay stops.
                            let _ = mode.wait_for(|m| *m == RelayMode::Stop).await;
                            drop(inbound);
                            return;
                        }
                        let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                        else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = mode.wait_for(|m| *m != RelayMode::Relay) => {}
                        }
                    });
                }
            });
        });
        Relay { port, mode }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn stall(&self) {
        let _ = self.mode.send(RelayMode::Stall);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.mode.send(RelayMode::Stop);
    }
}

/// A stalled bucket holds no store connection: with S3 hanging, dashboard pages that show a
/// run's report and charts (run, compare, performance) and API artifact downloads wait on the
/// bucket, never on a store connection, so a pool of two still answers everything else. (The
/// pages used to read their blobs inside the store call: three of them held the whole pool, and
/// every other request failed after the pool's wait.)
#[tokio::test]
async fn a_stalled_bucket_holds_no_store_connection() {
    let (_moto, s3) = moto().await;
    let relay = Relay::start(
        s3.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("moto's port"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let mut env = store_env(dir.path(), &database.url, &relay.url());
    // Nothing in the background reads the bucket: the requests below are the only readers.
    env.push(("STEWARD__SCHEDULER__ENABLED", "false".into()));
    env.push(("STEWARD__AGENT__ENABLED", "false".into()));
    env.push(("STEWARD__DATABASE__POOL_SIZE", "2".into()));
    let mut first = env.clone();
    first.push(("STEWARD__TRAINING__ON_FIRST_START", "true".into()));
    let (mut child, _, _) = start_server(&first);
    terminate(&mut child);
    let url = format!("s3://{BUCKET}/stall");
    let (code, out, err) = run(&env, &["storage", "migrate", "--to", &url]);
    assert_eq!(code, 0, "{out}{err}");
    std::fs::remove_dir_all(dir.path().join("var").join("blobs")).expect("local blobs away");
    env.push(("STEWARD__STORAGE__URL", url));
    let token = cli_token(&env, "admin", "stall");
    let (child, port, lines) = start_server(&env);
    let _server = Daemon(child);
    let base = format!("http://127.0.0.1:{port}");
    let get = |path: &str| {
        client()
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send()
    };
    let run_id = newest_run(&base, &token).await;
    // Served from the bucket while it answers.
    let page = get(&format!("/runs/{run_id}")).await.expect("run page");
    assert_eq!(page.status(), 200);

    relay.stall();
    let waiting = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");
    let stuck: Vec<_> = [
        format!("/runs/{run_id}"),
        format!("/runs/{run_id}"),
        format!("/experiments/compare?a={run_id}&b={run_id}"),
        "/performance".to_owned(),
        format!("/api/v1/runs/{run_id}/artifacts/metrics.json"),
        format!("/api/v1/runs/{run_id}/artifacts/roc.svg"),
    ]
    .into_iter()
    .map(|path| {
        let request = waiting
            .get(format!("{base}{path}"))
            .bearer_auth(&token)
            .send();
        tokio::spawn(async move { request.await.map(|r| r.status()) })
    })
    .collect();
    // Each has found its hashes and waits on the bucket by now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        stuck.iter().all(|t| !t.is_finished()),
        "the reads wait on the stalled bucket"
    );
    for path in ["/api/v1/runs", "/api/v1/models", "/experiments", "/ready"] {
        let r = get(path).await.expect("answer");
        assert_eq!(
            r.status(),
            200,
            "{path} while the bucket hangs:\n{}",
            lines.lock().expect("lines").join("\n")
        );
    }
    for t in stuck {
        t.abort();
    }
}
