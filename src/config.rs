//! Settings: the typed form of `config/default.toml`, its overlays and environment overrides.
//!
//! Owns loading and validation only. Every other module receives `Settings` (or a section of it)
//! explicitly; nothing reads configuration from globals.

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
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServingSettings {
    /// Most rows one /predict or /invocations request may carry.
    pub max_batch: usize,
    /// Largest prediction request body, in bytes.
    pub body_limit_bytes: usize,
    /// Require a bearer token (any role) for /predict, /invocations, /model/info and /feedback.
    pub require_token: bool,
    /// Seconds between re-reads of the Production version from the store.
    pub refresh_secs: u64,
    /// Prediction-log queue capacity, in rows; a full queue makes requests wait.
    pub log_queue: usize,
    /// Most rows stored per prediction-log batch.
    pub log_batch: usize,
    /// Milliseconds the prediction-log writer waits after a batch's first row for more rows.
    pub log_linger_ms: u64,
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
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub public_read: bool,
    pub session_ttl_hours: u32,
    pub cookie_secure: bool,
    pub login_attempts_per_minute: u32,
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
        if let Err(e) = crate::db::DatabaseUrl::parse(self.database.url.expose_secret()) {
            return invalid("database.url", &e.to_string());
        }
        if self.storage.dir.as_os_str().is_empty() {
            return invalid("storage.dir", "must not be empty");
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
        if let Err((key, message)) = self.dataset.check().and_then(|()| self.training.check()) {
            return Err(ConfigError::Invalid { key, message });
        }
        for slice in &self.training.slices {
            if self.dataset.column(&slice.column).is_none() || slice.column == self.dataset.target {
                return invalid(
                    "training.slices",
                    &format!("`{}` is not a feature column of the dataset", slice.column),
                );
            }
        }
        if !crate::training::selectable_metrics().contains(&self.training.select_by) {
            return invalid(
                "training.select_by",
                &format!(
                    "`{}` is not one of {}",
                    self.training.select_by,
                    crate::training::selectable_metrics().join(", ")
                ),
            );
        }
        let sv = &self.serving;
        if sv.max_batch == 0 || sv.body_limit_bytes == 0 || sv.log_queue == 0 || sv.log_batch == 0 {
            return invalid(
                "serving",
                "max_batch, body_limit_bytes, log_queue and log_batch must be greater than 0",
            );
        }
        if sv.refresh_secs == 0 {
            return invalid("serving.refresh_secs", "must be greater than 0");
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

fn serialize_redacted<S: Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    if secret.expose_secret().is_empty() {
        s.serialize_str("")
    } else {
        s.serialize_str("***")
    }
}

fn serialize_redacted_url<S: Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url.expose_secret()))
}

/// Masks the password of a URL (`postgres://u:***@h/db`); other URLs pass unchanged.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => raw.to_owned(),
        Err(_) => "<unparseable url>".to_owned(),
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
        let text = s.redacted().to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("pa55word"), "{text}");
        assert!(
            text.contains("postgres://steward:***@db:5432/steward"),
            "{text}"
        );
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
