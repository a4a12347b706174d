//! `[agent]` in the configuration: the switches, the safety limits, the webhook's secret and
//! the policy, an ordered list of rules (`[[agent.rules]]`, first match wins). Checked here, with
//! the offending key named (the config module knows no policy).

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::policy::{ALERT_TYPES, Action, QUALITY_RULES};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Run the agent in the server: take alerts, decide, act.
    pub enabled: bool,
    /// Decide and record, never act (no approval is asked either).
    pub dry_run: bool,
    /// Start with the kill switch on (`steward agent resume` or the Agent page turn it off).
    pub paused: bool,
    /// Seconds between the agent's passes over open incidents and approvals (alerts also wake
    /// it at once).
    pub tick_secs: u64,
    /// After a rule acted on a model, the same rule does not act on it again for this many
    /// minutes (a rule's own `cooldown_minutes` wins).
    pub cooldown_minutes: u64,
    /// Most actions started in any hour (notifications aside); past it a decision is recorded
    /// as capped.
    pub max_actions_per_hour: u32,
    /// A decision that waited (a cooldown, the cap, too few labels, a training running) is
    /// taken again on the incident's next alert at least this many seconds after it.
    pub redecide_after_secs: u64,
    /// Most open incidents from Alertmanager; past it a webhook call is answered 503 (nothing
    /// taken; Alertmanager retries) until some resolve.
    pub max_open_incidents: u64,
    /// Hours an approval request stays open before it expires (fractions allowed: 0.5).
    pub approval_ttl_hours: f64,
    /// Decay within this many hours of a promotion rolls the promotion back (default policy).
    pub rollback_window_hours: u64,
    /// A challenger is promoted only when better than the champion by at least this on
    /// `promotion_metric` (absolute; negative lets a slightly worse one through).
    pub promotion_margin: f64,
    /// The metric a challenger and the champion are compared on: accuracy, f1, roc_auc,
    /// pr_auc (higher is better), log_loss or brier (lower is better).
    pub promotion_metric: String,
    /// Labelled feedback rows a retrain needs (fewer: the policy's `too_few_labels`).
    pub min_labels: u64,
    /// Least role of a token (or session) that may post alerts to `POST /agent/alerts`.
    pub alerts_role: String,
    /// Secret of the webhook's HMAC-SHA256 signature (`X-Steward-Signature: sha256=<hex>` over
    /// the body), for senders that cannot hold a token. Empty: signatures are not accepted.
    #[serde(serialize_with = "crate::config::serialize_redacted")]
    pub webhook_secret: SecretString,
    /// Largest alert webhook body, in bytes.
    pub body_limit_bytes: usize,
    /// Most alerts one webhook call may carry.
    pub max_alerts_per_request: usize,
    /// The policy: first match wins; no match records a no-op decision.
    pub rules: Vec<Rule>,
}

/// One rule of the policy. Every condition given must hold; an absent one holds.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// Alert types it matches (drift, data_quality, decay, estimated_decay, validation,
    /// error_rate, external); empty: any.
    #[serde(default)]
    pub alert_types: Vec<String>,
    /// The newest check's drift share must be above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_share_above: Option<f64>,
    /// ... and at most this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_share_at_most: Option<f64>,
    /// true: the Production version was promoted within `agent.rollback_window_hours`
    /// (false: it was not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_rollback_window: Option<bool>,
    /// true: the newest check of the Production version measured decay on labelled traffic
    /// (false: it did not). An alert's word alone is not a measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay_measured: Option<bool>,
    /// true: fewer than `agent.min_labels` labelled feedback rows can be learned from (false: at
    /// least that many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub too_few_labels: Option<bool>,
    /// For data-quality alerts: the failed rule must be one of these (constant, out_of_range,
    /// unseen_category, missing); empty: any.
    #[serde(default)]
    pub quality_rules: Vec<String>,
    /// retrain, promote, rollback, notify, quarantine, validate or noop.
    pub action: String,
    /// The action waits for a person (for a retrain: its challenger's promotion does).
    #[serde(default)]
    pub approval: bool,
    /// Also write a notification.
    #[serde(default)]
    pub notify: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown_minutes: Option<u64>,
}

impl AgentSettings {
    /// Checks what serde cannot; returns the key and the message.
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |key: String, message: &str| Err((key, message.to_owned()));
        if self.tick_secs == 0 || self.tick_secs > 3600 {
            return bad("agent.tick_secs".into(), "must be between 1 and 3600");
        }
        if self.redecide_after_secs > 7 * 24 * 3600 {
            return bad("agent.redecide_after_secs".into(), "must be at most 604800");
        }
        if !(1..=1_000_000).contains(&self.max_open_incidents) {
            return bad(
                "agent.max_open_incidents".into(),
                "must be between 1 and 1000000",
            );
        }
        if self.max_actions_per_hour == 0 {
            return bad(
                "agent.max_actions_per_hour".into(),
                "must be at least 1 (pause the agent to stop its actions)",
            );
        }
        if !(self.approval_ttl_hours > 0.0 && self.approval_ttl_hours <= 2160.0) {
            return bad(
                "agent.approval_ttl_hours".into(),
                "must be above 0 and at most 2160",
            );
        }
        if self.rollback_window_hours > 24 * 365 {
            return bad("agent.rollback_window_hours".into(), "must be at most 8760");
        }
        if self.cooldown_minutes > 60 * 24 * 365 {
            return bad("agent.cooldown_minutes".into(), "must be at most 525600");
        }
        if !self.promotion_margin.is_finite() || self.promotion_margin.abs() > 1.0 {
            return bad("agent.promotion_margin".into(), "must be between -1 and 1");
        }
        if super::retrain::metric_direction(&self.promotion_metric).is_none() {
            return bad(
                "agent.promotion_metric".into(),
                "must be one of accuracy, f1, roc_auc, pr_auc, log_loss, brier",
            );
        }
        if self.alerts_role.parse::<crate::auth::Role>().is_err() {
            return bad(
                "agent.alerts_role".into(),
                "must be viewer, approver or admin",
            );
        }
        let secret = self.webhook_secret.expose_secret();
        if !secret.is_empty() && secret.len() < 16 {
            return bad(
                "agent.webhook_secret".into(),
                "must be empty (no signatures) or at least 16 characters",
            );
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.body_limit_bytes) {
            return bad(
                "agent.body_limit_bytes".into(),
                "must be between 1024 and 16777216",
            );
        }
        if !(1..=10_000).contains(&self.max_alerts_per_request) {
            return bad(
                "agent.max_alerts_per_request".into(),
                "must be between 1 and 10000",
            );
        }
        if self.rules.len() > 100 {
            return bad("agent.rules".into(), "at most 100 rules");
        }
        let mut names = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let key = |field: &str| format!("agent.rules[{i}].{field}");
            if !crate::data::schema::is_identifier(&rule.name) {
                return bad(key("name"), "must be 1-64 letters, digits, '_' or '-'");
            }
            if names.contains(&rule.name) {
                return bad(key("name"), "is used by an earlier rule");
            }
            names.push(rule.name.clone());
            for t in &rule.alert_types {
                if !ALERT_TYPES.contains(&t.as_str()) {
                    return bad(
                        key("alert_types"),
                        "each must be one of drift, data_quality, decay, estimated_decay, \
                         validation, error_rate, external",
                    );
                }
            }
            for q in &rule.quality_rules {
                if !QUALITY_RULES.contains(&q.as_str()) {
                    return bad(
                        key("quality_rules"),
                        "each must be one of constant, out_of_range, unseen_category, missing",
                    );
                }
            }
            for (field, limit) in [
                ("drift_share_above", rule.drift_share_above),
                ("drift_share_at_most", rule.drift_share_at_most),
            ] {
                if limit.is_some_and(|share| !(0.0..=1.0).contains(&share)) {
                    return bad(key(field), "must be between 0 and 1");
                }
            }
            let Ok(action) = rule.action.parse::<Action>() else {
                return bad(
                    key("action"),
                    "must be one of retrain, promote, rollback, notify, quarantine, validate, noop",
                );
            };
            if action == Action::Promote {
                return bad(
                    key("action"),
                    "promote is what a retrain does with a better challenger; a rule cannot \
                     promote a version by itself",
                );
            }
            if rule.cooldown_minutes.is_some_and(|m| m > 60 * 24 * 365) {
                return bad(key("cooldown_minutes"), "must be at most 525600");
            }
        }
        Ok(())
    }

    /// The role `alerts_role` names (checked at load).
    pub fn alerts_role(&self) -> crate::auth::Role {
        self.alerts_role.parse().unwrap_or(crate::auth::Role::Admin)
    }
}
