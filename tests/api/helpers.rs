//! `spawn_app()`: a real Steward on a loopback port 0, with a fresh store per test.
//!
//! SQLite by default (a file in a temporary folder). With `TEST_DATABASE_URL` set to a
//! PostgreSQL server URL, each test gets a fresh database created on that server instead, and
//! dropped when the test ends.

use std::path::PathBuf;

use diesel::{Connection, RunQueryDsl, pg::PgConnection};
use secrecy::SecretString;
use steward::config::Settings;
use steward::startup::Application;

pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// The audit chain key of every app in this test process: a process signs one chain key (see
/// `steward::audit`), and the CLI runs of a test get it too.
pub const AUDIT_KEY: &str = "7465737420617564697420636861696e206b6579206f66207374657761726421";

/// A browser-like client of one app: its own cookie jar, no automatic redirects.
pub struct Visitor {
    pub address: String,
    pub client: reqwest::Client,
}

pub struct TestApp {
    pub visitor: Visitor,
    pub db_url: String,
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    // Dropped after the server is told to stop (fields drop in declaration order).
    _database: FreshDatabase,
}

/// A fresh, empty store for one test: a SQLite file in a temporary folder, or a new PostgreSQL
/// database, dropped again when this value is.
pub struct FreshDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

pub fn fresh_database(dir: &std::path::Path) -> FreshDatabase {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            // Before this process's first PostgreSQL connection, as in the binary.
            steward::db::init_tls();
            let name = format!("steward_test_{}", uuid::Uuid::new_v4().simple());
            let mut admin = PgConnection::establish(&server).expect("connect TEST_DATABASE_URL");
            diesel::sql_query(format!("CREATE DATABASE {name}"))
                .execute(&mut admin)
                .expect("create test database");
            let mut url = url::Url::parse(&server).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            FreshDatabase {
                url: url.to_string(),
                postgres: Some((server, name)),
            }
        }
        _ => FreshDatabase {
            url: format!("sqlite://{}", dir.join("steward.db").display()),
            postgres: None,
        },
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        if let Some((server, name)) = self.postgres.take() {
            if let Ok(mut admin) = PgConnection::establish(&server) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

pub fn on_postgres() -> bool {
    std::env::var("TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty())
}

pub fn test_settings(dir: &std::path::Path, db_url: &str) -> Settings {
    let mut settings = Settings::defaults().expect("defaults");
    settings.server.port = 0;
    settings.server.workers = 2;
    settings.storage.dir = dir.join("var");
    settings.database.url = SecretString::from(db_url.to_owned());
    settings.database.pool_size = 4;
    settings.auth.admin_password = SecretString::from(ADMIN_PASSWORD);
    settings.audit.key = SecretString::from(AUDIT_KEY);
    settings.log.level = "warn".into();
    // Training on the first start costs seconds per app; the tests that want it turn it on.
    settings.training.on_first_start = false;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let database = fresh_database(dir.path());
    let db_url = database.url.clone();
    let mut settings = test_settings(dir.path(), &db_url);
    customize(&mut settings);
    steward::telemetry::init_logging(&settings.log);
    let app = Application::build(settings.clone())
        .await
        .expect("application builds");
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        visitor: Visitor {
            address: format!("http://127.0.0.1:{port}"),
            client: client(),
        },
        db_url,
        dir,
        settings,
        stop: Some(stop),
        _database: database,
    }
}

/// A client with its own cookie jar that does not follow redirects, so tests see them. It
/// keeps no idle connections: a server may close one after an answer that left the body
/// unread, and a reused closed connection would fail the next request for the wrong reason.
/// The Prometheus exposition a server at `base` (`http://host:port`) answers on `/metrics`.
pub async fn scrape(base: &str) -> String {
    client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

impl std::ops::Deref for TestApp {
    type Target = Visitor;

    fn deref(&self) -> &Visitor {
        &self.visitor
    }
}

impl TestApp {
    /// Where the local blob store keeps the blob with this BLAKE3 hash (`var/blobs/ab/cdef…`).
    pub fn blob_path(&self, hash: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join("var/blobs")
            .join(&hash[..2])
            .join(&hash[2..])
    }

    /// Another visitor with an empty cookie jar.
    pub fn visitor(&self) -> Visitor {
        Visitor {
            address: self.visitor.address.clone(),
            client: client(),
        }
    }

    /// Environment for running the `steward` binary against this app's store.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STEWARD__DATABASE__URL", self.db_url.clone()),
            (
                "STEWARD__STORAGE__DIR",
                self.dir.path().join("var").display().to_string(),
            ),
            ("STEWARD__LOG__LEVEL", "warn".into()),
            ("STEWARD__AUDIT__KEY", AUDIT_KEY.into()),
            (
                "STEWARD__TRAINING__ON_FIRST_START",
                self.settings.training.on_first_start.to_string(),
            ),
        ]
    }
}

impl TestApp {
    /// The `steward` binary, pointed at this app's store.
    pub fn cli(&self) -> std::process::Command {
        let mut command = std::process::Command::new(steward_bin());
        command.envs(self.cli_env());
        command
    }
}

impl Visitor {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// Logs this app's client in through the real login form; returns the session's CSRF
    /// token, read from the page as htmx would.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self.login_attempt(username, password).await;
        assert_eq!(
            response.status(),
            303,
            "login as {username} should redirect"
        );
        let page = self.get("/").await.text().await.expect("overview");
        csrf_from_page(&page).expect("the layout carries the session's CSRF token")
    }

    pub async fn login_attempt(&self, username: &str, password: &str) -> reqwest::Response {
        let page = self.get("/login").await.text().await.expect("login page");
        let csrf = form_csrf(&page).expect("login form has a csrf_token");
        self.client
            .post(self.url("/login"))
            .form(&[
                ("username", username),
                ("password", password),
                ("csrf_token", csrf.as_str()),
                ("next", "/"),
            ])
            .send()
            .await
            .expect("POST /login")
    }

    pub async fn login_admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await
    }

    /// An API token for the bootstrap admin, made through the dashboard's session on a
    /// separate client, so this visitor stays logged out.
    pub async fn admin_token(&self) -> String {
        let admin = Visitor {
            address: self.address.clone(),
            client: client(),
        };
        let csrf = admin.login_admin().await;
        let response = admin
            .client
            .post(self.url("/api/v1/tokens"))
            .header("X-CSRF-Token", csrf)
            .json(&serde_json::json!({ "name": "test" }))
            .send()
            .await
            .expect("create token");
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.expect("json");
        body["secret"].as_str().expect("secret").to_owned()
    }
}

impl TestApp {
    /// Logs `username` in on a fresh client and returns a new API token of theirs.
    pub async fn login_token(&self, username: &str, password: &str) -> String {
        let other = self.visitor();
        let csrf = other.login(username, password).await;
        let response = other
            .client
            .post(other.url("/api/v1/tokens"))
            .header("X-CSRF-Token", csrf)
            .json(&serde_json::json!({ "name": "mine" }))
            .send()
            .await
            .expect("token");
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.expect("json");
        body["secret"].as_str().expect("secret").to_owned()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn attribute_after<'a>(page: &'a str, marker: &str) -> Option<&'a str> {
    let start = page.find(marker)? + marker.len();
    let end = page[start..].find('"')?;
    Some(&page[start..start + end])
}

/// The CSRF token the layout puts in `hx-headers`.
pub fn csrf_from_page(page: &str) -> Option<String> {
    attribute_after(page, r#"{"X-CSRF-Token": ""#)
        .map(str::to_owned)
        .filter(|s| !s.is_empty())
}

/// The hidden csrf_token field of the login form.
pub fn form_csrf(page: &str) -> Option<String> {
    attribute_after(page, r#"name="csrf_token" value=""#).map(str::to_owned)
}

/// Path of the built `steward` binary.
pub fn steward_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_steward"))
}

/// Request helpers: every test reaches the app through these.
impl TestApp {
    /// A POST with a content type and raw body, anonymous; the answer as JSON (or its text as
    /// a JSON string when it is not JSON).
    pub async fn post(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        self.post_as(None, path, content_type, body).await
    }

    /// A POST as the holder of `token` (anonymous with `None`).
    pub async fn post_as(
        &self,
        token: Option<&str>,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let mut request = client()
            .post(self.url(path))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("post");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }

    /// `POST /predict` with a JSON body, anonymous.
    pub async fn predict(&self, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.post("/predict", "application/json", body.to_string())
            .await
    }

    /// A JSON request as the holder of `token`: GET, POST, PUT or DELETE.
    pub async fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let url = self.url(path);
        let request = match method {
            "GET" => client().get(url),
            "PUT" => client().put(url).json(&body),
            "DELETE" => client().delete(url),
            _ => client().post(url).json(&body),
        };
        let response = request.bearer_auth(token).send().await.expect("request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        self.api(token, "GET", path, serde_json::Value::Null).await
    }

    /// Adds a file as a version of `heart` through the API.
    pub async fn upload(&self, token: &str, bytes: Vec<u8>, file_name: &str) -> reqwest::Response {
        client()
            .post(self.url(&format!(
                "/api/v1/datasets/heart/versions?file_name={file_name}&message=test"
            )))
            .bearer_auth(token)
            .body(bytes)
            .send()
            .await
            .expect("upload")
    }

    /// Sends raw bytes and returns what comes back until the server closes or 2 s pass.
    pub async fn raw_http(&self, request: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let address = self.address.trim_start_matches("http://").to_owned();
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let mut buf = [0_u8; 4096];
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A pool on this app's store, beside the server's.
    pub fn store(&self) -> steward::db::Db {
        let mut settings = self.settings.database.clone();
        settings.url = SecretString::from(self.db_url.clone());
        steward::db::Db::connect(&settings).expect("connect to the test store")
    }

    /// Runs `steward ARGS` on this app's store: (exit code, stdout, stderr).
    pub fn run_cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cli().args(args).output().expect("steward");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `steward audit verify` on this app's store: (passed, what it printed).
    pub fn verify_audit(&self) -> (bool, String) {
        let (code, out, err) = self.run_cli(&["audit", "verify"]);
        (code == 0, format!("{out}{err}"))
    }
}

impl TestApp {
    /// Creates a user through the API with an admin's token; returns a token of theirs.
    pub async fn user_token(&self, admin_token: &str, username: &str, role: &str) -> String {
        let password = format!("{username}-password-1");
        let (status, out) = self
            .api(
                admin_token,
                "POST",
                "/api/v1/users",
                serde_json::json!({ "username": username, "password": password, "role": role }),
            )
            .await;
        assert_eq!(status, 201, "{out}");
        self.login_token(username, &password).await
    }

    /// A login form post whose TCP peer is this test, with extra headers (X-Forwarded-For…).
    pub async fn login_with_headers(
        &self,
        username: &str,
        password: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let visitor = self.visitor();
        let page = visitor
            .get("/login")
            .await
            .text()
            .await
            .expect("login page");
        let csrf = form_csrf(&page).expect("login form has a csrf_token");
        let mut request = visitor.client.post(self.url("/login")).form(&[
            ("username", username),
            ("password", password),
            ("csrf_token", csrf.as_str()),
            ("next", "/"),
        ]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST /login")
    }
}

/// `steward simulate` against the app, off the runtime (the server runs on this thread);
/// returns its report.
pub async fn simulate(app: &TestApp, file: &str, token: &str, labels: bool) -> String {
    let mut cmd = app.cli();
    cmd.args([
        "simulate",
        "--file",
        file,
        "--url",
        &app.url(""),
        "--token",
        token,
    ]);
    if labels {
        cmd.arg("--labels");
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("simulate"))
        .await
        .expect("join");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "simulate failed: {text}");
    text
}

/// `POST /api/v1/drift/run` as the holder of `token`, which must succeed; the check's report.
pub async fn run_check(app: &TestApp, token: &str) -> serde_json::Value {
    let (status, report) = app
        .api(token, "POST", "/api/v1/drift/run", serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{report}");
    report
}

/// Polls `path` until `done` holds of its JSON, for at most `secs`.
pub async fn until(
    app: &TestApp,
    token: &str,
    path: &str,
    secs: u64,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let (status, body) = app.get_json(token, path).await;
        assert_eq!(status, 200, "{path}: {body}");
        if done(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{path} did not get there in {secs} s: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A free loopback port (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process (a server the test started) killed with the test, pass or fail.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An API token for `user`, made by `steward tokens create` with the store named in `env`.
pub fn cli_token(env: &[(&str, String)], user: &str, name: &str) -> String {
    let out = std::process::Command::new(steward_bin())
        .args(["tokens", "create", "--user", user, "--name", name])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("steward tokens create");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("stw_"))
        .expect("a token")
        .to_owned()
}
