//! Settings: the typed form of `config/default.toml`, its overlays and environment overrides.
//!
//! Owns loading and validation only. Every other module receives `Settings` (or a section of it)
//! explicitly; nothing reads configuration from globals. It knows no domain logic: a section
//! that belongs to a capability (`[dataset]`, `[training]`) is that capability's type and checks
//! itself; this module only calls those checks and names the key. It imports no other module of
//! Steward but those settings types.

use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// The built-in defaults, compiled in so the binary runs outside the repository too.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("configuration overlay {path} (from STEWARD_ENV) does not exist")]
    MissingOverlay { path: PathBuf },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub log: LogSettings,
    pub scheduler: SchedulerSettings,
    pub dataset: crate::data::schema::DatasetSettings,
    pub training: crate::ml::TrainingSettings,
    pub registry: RegistrySettings,
    pub serving: ServingSettings,
    pub audit: AuditSettings,
    pub monitoring: crate::monitoring::settings::MonitoringSettings,
    pub agent: crate::agent::settings::AgentSettings,
    pub notify: crate::notify::settings::NotifySettings,
    pub reports: crate::reports::ReportsSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// The key of the audit chain's HMAC-SHA256, as 64 hex digits. Empty: a key is generated on
    /// the first start into `<storage.dir>/audit.key` (readable by its owner only).
    #[serde(serialize_with = "serialize_redacted")]
    pub key: SecretString,
    /// Seconds between re-verifications of the whole chain, each followed by a write of its
    /// head to the log and to `<storage.dir>/audit-head.json`, so a cut tail shows against an
    /// earlier record.
    pub head_log_secs: u64,
    /// Start even though the chain does not verify (`steward serve --allow-broken-audit`);
    /// never read from a file or the environment.
    #[serde(skip)]
    pub allow_broken: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSettings {
    /// Most rows one /predict or /invocations request may carry.
    pub max_batch: usize,
    /// Largest prediction request body, in bytes.
    pub body_limit_bytes: usize,
    /// Bytes of prediction bodies (/predict, /invocations, /feedback) held in memory at once,
    /// across all requests; a request whose body would pass it waits `offload_wait_ms`, then
    /// gets 503. At least `body_limit_bytes`.
    pub inflight_body_bytes: usize,
    /// Seconds a prediction body may take to arrive (a slow sender holds memory); 408 past it.
    pub body_read_secs: u64,
    /// Require a bearer token (any role) for /predict, /invocations and /model/info (/feedback
    /// follows `feedback_requires_token` and `feedback_role`).
    pub require_token: bool,
    /// Seconds between re-reads of the Production version from the store.
    pub refresh_secs: u64,
    /// Prediction-log queue capacity, in rows; a full queue makes requests wait.
    pub log_queue: usize,
    /// Most rows stored per prediction-log batch.
    pub log_batch: usize,
    /// Milliseconds the prediction-log writer waits after a batch's first row for more rows.
    pub log_linger_ms: u64,
    /// Milliseconds a request waits for room in a full prediction-log queue before it is
    /// answered 503 with Retry-After.
    pub log_wait_ms: u64,
    /// `POST /feedback` needs a bearer token (or a dashboard session)...
    pub feedback_requires_token: bool,
    /// ...of at least this role: viewer, approver or admin.
    pub feedback_role: String,
    /// Most rows one `?explain=true` request may carry.
    pub max_explain_batch: usize,
    /// Batches of more rows than this are scored on the blocking pool, not on an HTTP worker.
    pub offload_rows: usize,
    /// Library calls (XGBoost's SHAP values, and its own prediction for trees the native walk
    /// does not cover) that may run at once; more wait up to `offload_wait_ms`, then get 503.
    pub library_concurrency: usize,
    /// Large batches (over `offload_rows`) scored at once on the blocking pool.
    pub offload_concurrency: usize,
    /// Milliseconds a request waits for a library or batch slot before it is answered 503.
    pub offload_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The registered model that training registers into and serving serves.
    pub model: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
    /// Peers (addresses or networks, `10.0.0.0/8`) whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// What this process runs besides serving requests (see [`Role`]).
    pub role: Role,
}

/// A replica's share of the work (`server.role`, `steward serve --role`). Every role serves
/// HTTP (the API, the dashboard, /health, /ready, /metrics) and refreshes its serving slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Requests only: no scheduled job of the store, no agent, no notification worker; for
    /// replicas behind a load balancer.
    Api,
    /// Also the scheduled jobs, the agent and the notification worker; replicas sharing a
    /// store run each job once per tick between them (leases in the store).
    Worker,
    /// Both: the one-process default.
    All,
}

impl Role {
    /// Whether this process takes part in the store's background work.
    pub fn works(self) -> bool {
        matches!(self, Role::Worker | Role::All)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::All => "all",
        }
    }
}

impl ServerSettings {
    /// The trusted proxies as networks (an address is a /32 or /128). Entries that do not parse
    /// are refused by [`Settings::validate`], so none is skipped silently here.
    pub fn trusted_networks(&self) -> Vec<ipnet::IpNet> {
        self.trusted_proxies
            .iter()
            .filter_map(|p| parse_network(p).ok())
            .collect()
    }
}

/// `storage.url`: empty, or `s3://BUCKET[/PREFIX]` with an S3 bucket name (3 to 63 of a-z,
/// 0-9, `.` and `-`) and a prefix of at most 200 characters without `..` or empty segments.
pub fn check_storage_url(url: &str) -> Result<(), String> {
    if url.is_empty() {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("s3://") else {
        return Err("must be empty (the local folder) or s3://BUCKET[/PREFIX]".into());
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(bucket.bytes().next())
        && edge(bucket.bytes().last())
        && !bucket.contains("..")
        && bucket.parse::<std::net::Ipv4Addr>().is_err();
    if !bucket_ok {
        return Err(
            "the bucket must be 3 to 63 of a-z, 0-9, `.` and `-`, begin and end with a letter or \
             digit, and not look like an IP address"
                .into(),
        );
    }
    let prefix = prefix.trim_end_matches('/');
    if prefix.chars().count() > 200
        || (!prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == ".." || s == "." || s.chars().any(char::is_control)))
    {
        return Err("the prefix must be at most 200 characters of non-empty path segments".into());
    }
    Ok(())
}

fn parse_network(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    text.parse::<std::net::IpAddr>()
        .map(ipnet::IpNet::from)
        .map_err(|_| "must be IP addresses or networks such as 10.0.0.0/8".to_owned())
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: SecretString,
    pub pool_size: u32,
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub dir: PathBuf,
    /// Where artifacts (blobs) live: empty for `<dir>/blobs`, or `s3://BUCKET[/PREFIX]` with
    /// credentials, region and endpoint from the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`). `dir` still
    /// holds this process's own files (the audit head, a generated audit key).
    pub url: String,
    /// Largest file an MLflow client may upload through the artifact proxy, in bytes (413
    /// past it).
    pub artifact_limit_bytes: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub public_read: bool,
    pub session_ttl_hours: u32,
    pub cookie_secure: bool,
    pub login_attempts_per_minute: u32,
    /// Password checks (argon2, about 19 MiB and tens of milliseconds each) that may run at once.
    pub login_concurrency: usize,
    #[serde(serialize_with = "serialize_redacted")]
    pub admin_password: SecretString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSettings {
    pub enabled: bool,
    pub session_sweep_secs: u64,
    /// Seconds a job's or the agent's lease lasts without renewal: how long a replica that
    /// died holding one keeps the others from taking it. Renewed every third of it.
    pub lease_secs: u64,
}

/// `STEWARD__SECTION__KEY` variables; list-valued keys take commas
/// (`STEWARD__TRAINING__MODELS=lr,xgb`).
fn environment() -> Environment {
    Environment::with_prefix("STEWARD")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("training.models")
        .with_list_parse_key("server.trusted_proxies")
}

impl Settings {
    /// Loads the layered configuration. `config_dir` holds the `<STEWARD_ENV>.toml` overlays;
    /// `extra` is a file named on the command line.
    pub fn load(config_dir: &Path, extra: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder =
            Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Ok(env) = std::env::var("STEWARD_ENV") {
            let path = config_dir.join(format!("{env}.toml"));
            if !path.is_file() {
                return Err(ConfigError::MissingOverlay { path });
            }
            builder = builder.add_source(File::from(path));
        }
        if let Some(extra) = extra {
            builder = builder.add_source(File::from(extra).required(true));
        }
        builder = builder.add_source(environment());
        // Render (and most PaaS) hand these over without our prefix.
        if let Ok(port) = std::env::var("PORT") {
            builder = builder.set_override("server.port", port)?;
        }
        if let Ok(url) = std::env::var("DATABASE_URL") {
            builder = builder.set_override("database.url", url)?;
        }
        if let Ok(password) = std::env::var("STEWARD_ADMIN_PASSWORD") {
            builder = builder.set_override("auth.admin_password", password)?;
        }
        // Render's public address of the service, unless notify.public_url is set by name.
        if let Ok(url) = std::env::var("RENDER_EXTERNAL_URL") {
            if std::env::var_os("STEWARD__NOTIFY__PUBLIC_URL").is_none() && !url.is_empty() {
                builder = builder.set_override("notify.public_url", url)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// The built-in defaults alone, with no overlay or environment (tests start from these).
    pub fn defaults() -> Result<Self, ConfigError> {
        Ok(Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .build()?
            .try_deserialize()?)
    }

    /// Checks the values serde cannot, naming the offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.to_owned(),
                message: message.to_owned(),
            })
        };
        if self.server.host.trim().is_empty() {
            return invalid("server.host", "must not be empty");
        }
        if self.server.body_limit_bytes == 0 {
            return invalid("server.body_limit_bytes", "must be greater than 0");
        }
        if !(1..=256).contains(&self.database.pool_size) {
            return invalid("database.pool_size", "must be between 1 and 256");
        }
        if self.database.connect_timeout_secs == 0 {
            return invalid("database.connect_timeout_secs", "must be greater than 0");
        }
        if let Err(e) = DatabaseUrl::parse(self.database.url.expose_secret()) {
            return invalid("database.url", &e.to_string());
        }
        for proxy in &self.server.trusted_proxies {
            if let Err(message) = parse_network(proxy) {
                return invalid("server.trusted_proxies", &message);
            }
        }
        if self.auth.login_concurrency == 0 {
            return invalid("auth.login_concurrency", "must be greater than 0");
        }
        let key = self.audit.key.expose_secret();
        if !key.is_empty() && (key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit())) {
            return invalid("audit.key", "must be 64 hex digits (32 bytes), or empty");
        }
        if self.audit.head_log_secs == 0 {
            return invalid("audit.head_log_secs", "must be greater than 0");
        }
        if self.storage.dir.as_os_str().is_empty() {
            return invalid("storage.dir", "must not be empty");
        }
        if let Err(message) = check_storage_url(&self.storage.url) {
            return invalid("storage.url", &message);
        }
        // A key generated into storage.dir is one process's, and lost with an ephemeral disk:
        // with a shared store, every replica signs the chain with the configured one.
        if (!self.storage.url.is_empty() || self.server.role != Role::All)
            && self.audit.key.expose_secret().is_empty()
        {
            return invalid(
                "audit.key",
                "must be set with storage.url on S3 or a server.role other than all: every \
                 replica sharing the store signs the audit chain with the same key (64 hex \
                 digits, STEWARD__AUDIT__KEY; an existing store's is in <storage.dir>/audit.key)",
            );
        }
        if self.auth.session_ttl_hours == 0 {
            return invalid("auth.session_ttl_hours", "must be greater than 0");
        }
        if self.auth.login_attempts_per_minute == 0 {
            return invalid("auth.login_attempts_per_minute", "must be greater than 0");
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return invalid("log.level", &e.to_string());
        }
        if self.scheduler.session_sweep_secs == 0 {
            return invalid("scheduler.session_sweep_secs", "must be greater than 0");
        }
        if !(3..=3600).contains(&self.scheduler.lease_secs) {
            return invalid("scheduler.lease_secs", "must be between 3 and 3600");
        }
        if let Err((key, message)) = self.dataset.check().and_then(|()| self.training.check()) {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = self.training.check_against(&self.dataset) {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = self.monitoring.check(&self.dataset.feature_kinds()) {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = self.agent.check() {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = self.notify.check() {
            return Err(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = self.reports.check() {
            return Err(ConfigError::Invalid { key, message });
        }
        let sv = &self.serving;
        for (key, value) in [
            ("serving.max_batch", sv.max_batch),
            ("serving.body_limit_bytes", sv.body_limit_bytes),
            ("serving.inflight_body_bytes", sv.inflight_body_bytes),
            ("serving.log_queue", sv.log_queue),
            ("serving.log_batch", sv.log_batch),
            ("serving.max_explain_batch", sv.max_explain_batch),
            ("serving.library_concurrency", sv.library_concurrency),
            ("serving.offload_concurrency", sv.offload_concurrency),
        ] {
            if value == 0 {
                return invalid(key, "must be greater than 0");
            }
        }
        if sv.log_wait_ms == 0 || sv.log_wait_ms > 60_000 {
            return invalid("serving.log_wait_ms", "must be between 1 and 60000");
        }
        if sv.offload_wait_ms > 60_000 {
            return invalid("serving.offload_wait_ms", "must be at most 60000");
        }
        if !["viewer", "approver", "admin"].contains(&sv.feedback_role.as_str()) {
            return invalid("serving.feedback_role", "must be viewer, approver or admin");
        }
        if sv.refresh_secs == 0 {
            return invalid("serving.refresh_secs", "must be greater than 0");
        }
        if sv.inflight_body_bytes < sv.body_limit_bytes {
            return invalid(
                "serving.inflight_body_bytes",
                "must be at least serving.body_limit_bytes (else a largest body never fits)",
            );
        }
        if sv.body_read_secs == 0 || sv.body_read_secs > 600 {
            return invalid("serving.body_read_secs", "must be between 1 and 600");
        }
        if sv.log_linger_ms > 1000 {
            return invalid(
                "serving.log_linger_ms",
                "must be at most 1000 (rows would reach the store too late for monitoring)",
            );
        }
        let name = &self.registry.model;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return invalid(
                "registry.model",
                "must be letters, digits, `-`, `_` or `.`, and not empty",
            );
        }
        Ok(())
    }

    /// The effective settings as JSON with every secret masked: safe for logs, the API and the
    /// audit log.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Serializes a secret as "***" (or "" when unset).
pub fn serialize_redacted<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("***")
    }
}

fn serialize_redacted_url<S: Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url.expose_secret()))
}

/// Query parameters of a database URL that carry a secret (libpq's names).
const SECRET_QUERY_KEYS: [&str; 3] = ["password", "sslpassword", "passfile"];

/// Masks the secrets of a URL: the password of its userinfo (`postgres://u:***@h/db`) and
/// secret query parameters (`?password=***`). A URL that does not parse is never echoed.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(raw) else {
        return "<unparseable url>".to_owned();
    };
    let secret_query = parsed
        .query_pairs()
        .any(|(k, _)| SECRET_QUERY_KEYS.contains(&k.to_ascii_lowercase().as_str()));
    if parsed.password().is_none() && !secret_query {
        return raw.to_owned();
    }
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if secret_query {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_QUERY_KEYS.contains(&k.to_ascii_lowercase().as_str());
                let v = if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// A database URL whose scheme has been checked: `sqlite://PATH` or `postgres://…`.
#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    #[error("unsupported database URL scheme `{0}`: use sqlite://PATH or postgres://…")]
    UnknownScheme(String),
    #[error("the database URL has no scheme: use sqlite://PATH or postgres://…")]
    NoScheme,
    #[error("sqlite:// URL has no file path")]
    EmptyPath,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = raw.split_once("://").ok_or(UrlError::NoScheme)?;
        match scheme {
            "sqlite" => {
                if rest.is_empty() {
                    return Err(UrlError::EmptyPath);
                }
                Ok(DatabaseUrl::Sqlite(PathBuf::from(rest)))
            }
            "postgres" | "postgresql" => Ok(DatabaseUrl::Postgres(raw.to_owned())),
            // A scheme is short; anything else is not echoed whole.
            other => Err(UrlError::UnknownScheme(other.chars().take(20).collect())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Settings {
        Settings::defaults().expect("defaults parse")
    }

    #[test]
    fn defaults_are_valid() {
        defaults().validate().expect("defaults validate");
    }

    #[test]
    fn environment_lists_split_on_commas_and_other_keys_stay_strings() {
        let vars = [
            ("STEWARD__TRAINING__MODELS", "lr,xgb"),
            ("STEWARD__SERVER__HOST", "a,b"),
        ];
        let settings: Settings = Config::builder()
            .add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml))
            .add_source(
                environment().source(Some(
                    vars.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )),
            )
            .build()
            .and_then(Config::try_deserialize)
            .expect("settings");
        use crate::ml::models::ModelKind;
        assert_eq!(settings.training.models, [ModelKind::Lr, ModelKind::Xgb]);
        assert_eq!(settings.server.host, "a,b");
    }

    #[test]
    fn redaction_hides_passwords() {
        let mut s = defaults();
        s.database.url = SecretString::from("postgres://steward:hunter2@db:5432/steward");
        s.auth.admin_password = SecretString::from("pa55word");
        s.audit.key = SecretString::from("ab".repeat(32));
        let text = s.redacted().to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains(&"ab".repeat(32)), "{text}");
        assert!(!text.contains("pa55word"), "{text}");
        assert!(
            text.contains("postgres://steward:***@db:5432/steward"),
            "{text}"
        );
    }

    #[test]
    fn query_passwords_are_masked_and_bad_urls_never_echoed() {
        let shown = redact_url("postgres://u@db/steward?sslmode=require&password=hunter2");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("password=***") && shown.contains("sslmode=require"),
            "{shown}"
        );
        let shown = redact_url("postgres://u:pw1@db/steward?PassWord=pw2");
        assert!(!shown.contains("pw1") && !shown.contains("pw2"), "{shown}");
        assert_eq!(
            redact_url("postgres://u:secret@[::1/x"),
            "<unparseable url>"
        );
        let err = DatabaseUrl::parse(&format!("{}://x", "m".repeat(500)))
            .expect_err("unknown scheme")
            .to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut s = defaults();
        s.database.pool_size = 0;
        let err = s.validate().expect_err("pool 0 rejected").to_string();
        assert!(err.contains("database.pool_size"), "{err}");

        let mut s = defaults();
        s.database.url = SecretString::from("mysql://x@y/z");
        let err = s.validate().expect_err("mysql rejected").to_string();
        assert!(
            err.contains("database.url") && err.contains("mysql"),
            "{err}"
        );
    }
}
