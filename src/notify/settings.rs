//! `[notify]`: the channels, the routes and the outbox worker's pace. Checked by
//! [`NotifySettings::check`], which names the offending key.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::outbox::{Kind, Severity};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// Run the outbox worker in `steward serve` (events are written either way).
    pub enabled: bool,
    /// The dashboard's address as people reach it, for links in messages.
    pub public_url: String,
    /// Hours a signed approval link stays valid.
    pub link_ttl_hours: u32,
    /// Seconds between the worker's passes over the outbox.
    pub poll_secs: u64,
    /// Tries per delivery before it is marked failed.
    pub max_attempts: i32,
    /// Seconds before the first retry; each next wait doubles, up to `max_backoff_secs`.
    pub backoff_secs: u64,
    pub max_backoff_secs: u64,
    /// Seconds an HTTP send may take in all; for SMTP, each step (connect, each command).
    pub timeout_secs: u64,
    /// Days notifications are kept once their deliveries ended (an incident's are kept with it).
    pub keep_days: u32,
    /// An event not yet routed this many hours after it was written (no worker ran) is kept but
    /// not sent: old news.
    pub max_age_hours: u32,
    #[serde(default)]
    pub channels: Vec<ChannelSettings>,
    #[serde(default)]
    pub routes: Vec<RouteSettings>,
}

/// How an email channel speaks to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    /// Plain SMTP upgraded with STARTTLS (refused if the server does not offer it); port 587.
    Starttls,
    /// SMTP inside TLS from the first byte; port 465.
    Tls,
    /// No encryption: only to a server on loopback.
    None,
}

/// One channel: `kind` says which fields it takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
pub enum ChannelSettings {
    Email(EmailChannel),
    Slack(SlackChannel),
    Webhook(WebhookChannel),
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    pub name: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: Tls,
    #[serde(default)]
    pub username: String,
    /// The SMTP password; or name an environment variable in `password_env`.
    #[serde(default, serialize_with = "crate::config::serialize_redacted")]
    pub password: SecretString,
    #[serde(default)]
    pub password_env: String,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SlackChannel {
    pub name: String,
    /// The incoming webhook's URL (a secret); or name an environment variable in `url_env`.
    #[serde(default, serialize_with = "crate::config::serialize_redacted")]
    pub url: SecretString,
    #[serde(default)]
    pub url_env: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub name: String,
    /// The receiver's URL (may carry a token, so it is kept secret); or name an environment
    /// variable in `url_env`.
    #[serde(default, serialize_with = "crate::config::serialize_redacted")]
    pub url: SecretString,
    #[serde(default)]
    pub url_env: String,
    /// Key of the `X-Steward-Signature: sha256=<HMAC-SHA256 of the body>` header; or name an
    /// environment variable in `secret_env`. Empty: unsigned.
    #[serde(default, serialize_with = "crate::config::serialize_redacted")]
    pub secret: SecretString,
    #[serde(default)]
    pub secret_env: String,
}

/// Which events go to which channels.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    /// Event kinds (approval_needed, action_taken, rollback, drift_detected, data_quality,
    /// training_finished, validation_failed, weekly_summary, alert), or "*" for all.
    pub events: Vec<String>,
    pub channels: Vec<String>,
    /// info, warning or critical: events below it are not sent on this route.
    pub min_severity: String,
}

impl ChannelSettings {
    pub fn name(&self) -> &str {
        match self {
            ChannelSettings::Email(c) => &c.name,
            ChannelSettings::Slack(c) => &c.name,
            ChannelSettings::Webhook(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ChannelSettings::Email(_) => "email",
            ChannelSettings::Slack(_) => "slack",
            ChannelSettings::Webhook(_) => "webhook",
        }
    }

    /// Where it sends, for listings: the SMTP server or the URL's host, never a secret.
    pub fn target(&self) -> String {
        let host = |url: &str| {
            url::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| "(no URL)".into())
        };
        match self {
            ChannelSettings::Email(c) => format!(
                "smtp://{}:{} → {}",
                c.smtp_host,
                c.smtp_port,
                c.to.join(", ")
            ),
            ChannelSettings::Slack(c) => host(&secret(&c.url, &c.url_env)),
            ChannelSettings::Webhook(c) => host(&secret(&c.url, &c.url_env)),
        }
    }
}

/// A secret given inline or through the environment variable named.
pub fn secret(inline: &SecretString, env: &str) -> String {
    if !env.is_empty() {
        return std::env::var(env).unwrap_or_default();
    }
    inline.expose_secret().to_owned()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn http_url(key: &str, url: &str) -> Result<(), (String, String)> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        _ => Err((key.into(), "must be an http(s) URL".into())),
    }
}

impl NotifySettings {
    pub fn channel(&self, name: &str) -> Option<&ChannelSettings> {
        self.channels.iter().find(|c| c.name() == name)
    }

    /// The channels an event of this kind and severity goes to (each once, in route order).
    pub fn channels_for(&self, kind: Kind, severity: Severity) -> Vec<&ChannelSettings> {
        let mut out: Vec<&ChannelSettings> = Vec::new();
        for route in &self.routes {
            let takes_kind = route.events.iter().any(|e| e == "*" || e == kind.as_str());
            let floor = Severity::parse(&route.min_severity).unwrap_or(Severity::Info);
            if kind == Kind::Test || !takes_kind || severity < floor {
                continue;
            }
            for name in &route.channels {
                if let Some(c) = self.channel(name) {
                    if !out.iter().any(|o| o.name() == c.name()) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }

    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
        if http_url("notify.public_url", &self.public_url).is_err() {
            return bad(
                "notify.public_url",
                "must be an http(s) URL (the dashboard's address)",
            );
        }
        if self.link_ttl_hours == 0 || self.link_ttl_hours > 24 * 30 {
            return bad("notify.link_ttl_hours", "must be between 1 and 720");
        }
        if self.poll_secs == 0 || self.poll_secs > 3600 {
            return bad("notify.poll_secs", "must be between 1 and 3600");
        }
        if !(1..=100).contains(&self.max_attempts) {
            return bad("notify.max_attempts", "must be between 1 and 100");
        }
        if self.backoff_secs == 0 || self.max_backoff_secs < self.backoff_secs {
            return bad(
                "notify.backoff_secs",
                "must be greater than 0 and at most notify.max_backoff_secs",
            );
        }
        if self.timeout_secs == 0 || self.timeout_secs > 300 {
            return bad("notify.timeout_secs", "must be between 1 and 300");
        }
        if self.keep_days == 0 || self.keep_days > 3650 {
            return bad("notify.keep_days", "must be between 1 and 3650");
        }
        if self.max_age_hours == 0 || self.max_age_hours > 24 * 365 {
            return bad("notify.max_age_hours", "must be between 1 and 8760");
        }
        if u64::from(self.max_age_hours) > u64::from(self.keep_days) * 24 {
            return bad(
                "notify.max_age_hours",
                "must be at most notify.keep_days days (else events would go before they are sent)",
            );
        }
        if self.max_backoff_secs > 7 * 86_400 {
            return bad("notify.max_backoff_secs", "must be at most 604800 (a week)");
        }
        if self.channels.len() > 32 {
            return bad("notify.channels", "at most 32 channels");
        }
        let mut names: Vec<&str> = Vec::new();
        for c in &self.channels {
            let name = c.name();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
            {
                return bad(
                    "notify.channels.name",
                    "must be 1-64 letters, digits, '-', '_' or '.'",
                );
            }
            if names.contains(&name) {
                return bad("notify.channels.name", "names must be unique");
            }
            names.push(name);
            match c {
                ChannelSettings::Email(e) => {
                    if e.smtp_host.trim().is_empty() || e.smtp_port == 0 {
                        return bad(
                            "notify.channels.smtp_host",
                            "an email channel needs smtp_host and smtp_port",
                        );
                    }
                    if e.tls == Tls::None && !is_loopback(&e.smtp_host) {
                        return bad(
                            "notify.channels.tls",
                            "\"none\" (no encryption) is only for an SMTP server on loopback; use starttls or tls",
                        );
                    }
                    if e.from.parse::<lettre::message::Mailbox>().is_err() {
                        return bad("notify.channels.from", "must be an email address");
                    }
                    if e.to.is_empty()
                        || e.to.len() > 50
                        || e.to
                            .iter()
                            .any(|t| t.parse::<lettre::message::Mailbox>().is_err())
                    {
                        return bad("notify.channels.to", "must be 1-50 email addresses");
                    }
                    if e.username.is_empty() != secret(&e.password, &e.password_env).is_empty() {
                        return bad(
                            "notify.channels.password",
                            "give both username and password (or password_env), or neither",
                        );
                    }
                }
                ChannelSettings::Slack(s) => {
                    http_url("notify.channels.url", &secret(&s.url, &s.url_env))?;
                }
                ChannelSettings::Webhook(w) => {
                    http_url("notify.channels.url", &secret(&w.url, &w.url_env))?;
                }
            }
        }
        for route in &self.routes {
            if route.events.is_empty() || route.channels.is_empty() {
                return bad(
                    "notify.routes",
                    "each route names at least one event and one channel",
                );
            }
            for e in &route.events {
                if e != "*" && Kind::parse(e).is_none_or(|k| k == Kind::Test) {
                    return bad(
                        "notify.routes.events",
                        "must be \"*\" or approval_needed, action_taken, rollback, drift_detected, \
                         data_quality, training_finished, validation_failed, weekly_summary, alert",
                    );
                }
            }
            for name in &route.channels {
                if self.channel(name).is_none() {
                    return bad(
                        "notify.routes.channels",
                        "names a channel that notify.channels does not define",
                    );
                }
            }
            if Severity::parse(&route.min_severity).is_none() {
                return bad(
                    "notify.routes.min_severity",
                    "must be info, warning or critical",
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &str) -> Result<NotifySettings, String> {
        let text = format!(
            "enabled = true\npublic_url = \"http://127.0.0.1:8080\"\nlink_ttl_hours = 72\n\
             poll_secs = 5\nmax_attempts = 8\nbackoff_secs = 30\nmax_backoff_secs = 3600\n\
             timeout_secs = 10\nkeep_days = 90\nmax_age_hours = 24\n{extra}"
        );
        let s: NotifySettings = toml::from_str(&text).map_err(|e| e.to_string())?;
        s.check().map_err(|(k, m)| format!("{k}: {m}"))?;
        Ok(s)
    }

    #[test]
    fn routes_pick_channels_by_kind_and_severity() {
        let s = settings(
            r#"
[[channels]]
kind = "email"
name = "mail"
smtp_host = "127.0.0.1"
smtp_port = 2525
tls = "none"
from = "steward@example.org"
to = ["ops@example.org"]

[[channels]]
kind = "slack"
name = "slack"
url = "https://hooks.slack.com/services/T/B/X"

[[routes]]
events = ["approval_needed", "rollback"]
channels = ["mail", "slack"]
min_severity = "info"

[[routes]]
events = ["*"]
channels = ["slack"]
min_severity = "critical"
"#,
        )
        .unwrap();
        let names = |k, sev| -> Vec<String> {
            s.channels_for(k, sev)
                .iter()
                .map(|c| c.name().to_owned())
                .collect()
        };
        assert_eq!(
            names(Kind::ApprovalNeeded, Severity::Warning),
            ["mail", "slack"]
        );
        assert!(names(Kind::DriftDetected, Severity::Warning).is_empty());
        assert_eq!(names(Kind::DriftDetected, Severity::Critical), ["slack"]);
        assert!(names(Kind::Test, Severity::Critical).is_empty());
    }

    #[test]
    fn bad_channels_and_routes_name_their_key() {
        let plain_remote = settings(
            "[[channels]]\nkind = \"email\"\nname = \"m\"\nsmtp_host = \"smtp.example.org\"\n\
             smtp_port = 25\ntls = \"none\"\nfrom = \"a@b.org\"\nto = [\"c@d.org\"]\n",
        );
        assert!(plain_remote.unwrap_err().contains("notify.channels.tls"));
        let unknown = settings(
            "[[routes]]\nevents = [\"rollback\"]\nchannels = [\"nope\"]\nmin_severity = \"info\"\n",
        );
        assert!(unknown.unwrap_err().contains("notify.routes.channels"));
        let kind = settings(
            "[[channels]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"http://127.0.0.1:9/\"\n\
             [[routes]]\nevents = [\"rollbacks\"]\nchannels = [\"w\"]\nmin_severity = \"info\"\n",
        );
        assert!(kind.unwrap_err().contains("notify.routes.events"));
        let field = settings(
            "[[channels]]\nkind = \"webhook\"\nname = \"w\"\nurl = \"http://x/\"\nsmtp_host = \"y\"\n",
        );
        assert!(field.unwrap_err().contains("smtp_host"));
    }
}
