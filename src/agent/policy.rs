//! The policy: an incident's context and the ordered rules of `[[agent.rules]]`, evaluated
//! first match wins. A decision records the rule that matched and, for each earlier rule, the
//! condition that did not hold, so `steward agent decisions` can say why.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::settings::{AgentSettings, Rule};

/// Alert types an incident can have (monitoring's four, a failed validation, an error rate and
/// anything else Alertmanager sends).
pub const ALERT_TYPES: [&str; 7] = [
    "drift",
    "data_quality",
    "decay",
    "estimated_decay",
    "validation",
    "error_rate",
    "external",
];

/// Data-quality rules a check can fail (monitoring's names).
pub const QUALITY_RULES: [&str; 4] = ["constant", "out_of_range", "unseen_category", "missing"];

/// What the agent can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Train a challenger on the current data plus labelled feedback, compare, promote if better.
    Retrain,
    /// Promote a retrained challenger (only after a retrain, by approval).
    Promote,
    /// Roll Production back to the version before.
    Rollback,
    /// Write a notification.
    Notify,
    /// Keep the offending rows of the window out of retraining data.
    Quarantine,
    /// Validate the dataset's current version against its suite.
    Validate,
    /// Record and keep watching.
    Noop,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Retrain,
        Action::Promote,
        Action::Rollback,
        Action::Notify,
        Action::Quarantine,
        Action::Validate,
        Action::Noop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Retrain => "retrain",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Notify => "notify",
            Action::Quarantine => "quarantine",
            Action::Validate => "validate",
            Action::Noop => "noop",
        }
    }
}

impl FromStr for Action {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Action::ALL.into_iter().find(|a| a.as_str() == s).ok_or(())
    }
}

/// What the policy sees of an incident and the state around it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Context {
    pub alert_type: String,
    /// For a data-quality incident, the rule it failed and its feature.
    pub quality_rule: Option<String>,
    pub feature: Option<String>,
    pub model: String,
    /// The Production version, its promotion time and its age in hours.
    pub production_version: Option<i32>,
    pub promoted_at: Option<chrono::NaiveDateTime>,
    pub production_age_hours: Option<f64>,
    /// The newest completed check of the Production version.
    pub check_id: Option<String>,
    pub drift_share: Option<f64>,
    /// Drifted features with their scores and tests.
    pub drifted_features: Vec<DriftedFeature>,
    pub window_rows: Option<u64>,
    pub accuracy_live: Option<f64>,
    pub accuracy_estimated: Option<f64>,
    pub accuracy_holdout: Option<f64>,
    /// The newest check measured decay on labelled traffic.
    #[serde(default)]
    pub decay_measured: bool,
    /// Labelled feedback rows a retrain could learn from (by signed-in users, not quarantined).
    pub labels: u64,
    /// The agent's actions on this model in the last 24 hours, newest first (at most 10).
    pub recent_actions: Vec<String>,
    /// Stage changes of this model in the last 24 hours, newest first (at most 10).
    pub recent_promotions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DriftedFeature {
    pub feature: String,
    pub stattest: String,
    pub score: f64,
}

/// Why a rule did or did not match.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuleCheck {
    pub rule: String,
    pub matched: bool,
    /// The first condition that failed, or what held.
    pub reason: String,
}

/// The policy's verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// The matching rule, `None` when none did (a no-op).
    pub rule: Option<String>,
    pub action: Action,
    pub approval: bool,
    pub notify: bool,
    pub cooldown_minutes: u64,
    /// The rule waits for something (too few labels): the incident is decided again on its
    /// next alert.
    pub wait: bool,
    /// Every rule tried, in order, up to and including the match.
    pub checks: Vec<RuleCheck>,
}

/// Whether `rule` matches `ctx`; the reason names the first failed condition, or the ones that
/// held.
pub fn check_rule(rule: &Rule, ctx: &Context, settings: &AgentSettings) -> RuleCheck {
    let no = |reason: String| RuleCheck {
        rule: rule.name.clone(),
        matched: false,
        reason,
    };
    let mut held = Vec::new();
    if !rule.alert_types.is_empty() {
        if !rule.alert_types.contains(&ctx.alert_type) {
            return no(format!(
                "alert type {} is not one of {}",
                ctx.alert_type,
                rule.alert_types.join(", ")
            ));
        }
        held.push(format!("alert type {}", ctx.alert_type));
    }
    if !rule.quality_rules.is_empty() {
        match &ctx.quality_rule {
            Some(q) if rule.quality_rules.contains(q) => held.push(format!("quality rule {q}")),
            Some(q) => {
                return no(format!(
                    "quality rule {q} is not one of {}",
                    rule.quality_rules.join(", ")
                ));
            }
            None => return no("the incident names no data-quality rule".into()),
        }
    }
    if let Some(limit) = rule.drift_share_above {
        match ctx.drift_share {
            Some(share) if share > limit => {
                held.push(format!("drift share {share:.3} > {limit}"));
            }
            Some(share) => return no(format!("drift share {share:.3} is not above {limit}")),
            None => return no("no completed check gives a drift share".into()),
        }
    }
    if let Some(limit) = rule.drift_share_at_most {
        match ctx.drift_share {
            Some(share) if share <= limit => {
                held.push(format!("drift share {share:.3} ≤ {limit}"));
            }
            Some(share) => return no(format!("drift share {share:.3} is above {limit}")),
            None => return no("no completed check gives a drift share".into()),
        }
    }
    if let Some(want) = rule.within_rollback_window {
        let hours = settings.rollback_window_hours as f64;
        let within = ctx.production_age_hours.is_some_and(|age| age <= hours);
        if within != want {
            return no(match ctx.production_age_hours {
                Some(age) if want => format!(
                    "Production was promoted {age:.1} h ago, outside the {hours} h rollback window"
                ),
                Some(age) => format!(
                    "Production was promoted {age:.1} h ago, within the {hours} h rollback window"
                ),
                None => "nothing is in Production".into(),
            });
        }
        held.push(if within {
            format!("promoted within {hours} h")
        } else {
            format!("promoted more than {hours} h ago")
        });
    }
    if let Some(want) = rule.decay_measured {
        if ctx.decay_measured != want {
            return no(if want {
                "the newest check of Production measured no decay on labelled traffic".into()
            } else {
                "the newest check of Production measured decay".into()
            });
        }
        held.push(if want {
            "decay measured by the newest check".into()
        } else {
            "no decay measured".into()
        });
    }
    if let Some(want) = rule.too_few_labels {
        let few = ctx.labels < settings.min_labels;
        if few != want {
            return no(format!(
                "{} labelled rows ({} needed)",
                ctx.labels, settings.min_labels
            ));
        }
        held.push(format!(
            "{} labelled rows ({} needed)",
            ctx.labels, settings.min_labels
        ));
    }
    RuleCheck {
        rule: rule.name.clone(),
        matched: true,
        reason: if held.is_empty() {
            "no conditions".into()
        } else {
            held.join("; ")
        },
    }
}

/// Evaluates the rules in order; the first match gives the verdict, none gives a no-op.
pub fn evaluate(settings: &AgentSettings, ctx: &Context) -> Verdict {
    let mut checks = Vec::new();
    for rule in &settings.rules {
        let check = check_rule(rule, ctx, settings);
        let matched = check.matched;
        checks.push(check);
        if matched {
            return Verdict {
                rule: Some(rule.name.clone()),
                action: rule.action.parse().unwrap_or(Action::Noop),
                approval: rule.approval,
                notify: rule.notify,
                cooldown_minutes: rule.cooldown_minutes.unwrap_or(settings.cooldown_minutes),
                wait: rule.too_few_labels == Some(true),
                checks,
            };
        }
    }
    Verdict {
        rule: None,
        action: Action::Noop,
        approval: false,
        notify: false,
        cooldown_minutes: settings.cooldown_minutes,
        wait: false,
        checks,
    }
}

/// The rules as `steward agent policy --explain` prints them: one paragraph each.
pub fn explain(settings: &AgentSettings) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{} rules, first match wins; no match records a no-op.\n\n",
        settings.rules.len()
    ));
    for (i, rule) in settings.rules.iter().enumerate() {
        let mut when = Vec::new();
        if !rule.alert_types.is_empty() {
            when.push(format!("the alert is {}", rule.alert_types.join(" or ")));
        }
        if !rule.quality_rules.is_empty() {
            when.push(format!(
                "the failed quality rule is {}",
                rule.quality_rules.join(" or ")
            ));
        }
        if let Some(s) = rule.drift_share_above {
            when.push(format!("the drift share is above {s}"));
        }
        if let Some(s) = rule.drift_share_at_most {
            when.push(format!("the drift share is at most {s}"));
        }
        match rule.within_rollback_window {
            Some(true) => when.push(format!(
                "Production was promoted within {} h",
                settings.rollback_window_hours
            )),
            Some(false) => when.push(format!(
                "Production was promoted more than {} h ago",
                settings.rollback_window_hours
            )),
            None => {}
        }
        match rule.decay_measured {
            Some(true) => when.push("the newest check measured decay on labelled traffic".into()),
            Some(false) => when.push("the newest check measured no decay".into()),
            None => {}
        }
        match rule.too_few_labels {
            Some(true) => when.push(format!(
                "fewer than {} labelled rows can be learned from",
                settings.min_labels
            )),
            Some(false) => when.push(format!(
                "at least {} labelled rows can be learned from",
                settings.min_labels
            )),
            None => {}
        }
        let when = if when.is_empty() {
            "always".to_owned()
        } else {
            format!("when {}", when.join(", and "))
        };
        let what = match rule.action.as_str() {
            "retrain" if rule.approval => {
                "retrain; the challenger is promoted only after a person approves".to_owned()
            }
            "retrain" => format!(
                "retrain, and promote the challenger if it beats the champion by {} on {}",
                settings.promotion_margin, settings.promotion_metric
            ),
            "noop" => "log a warning and keep watching".to_owned(),
            other if rule.approval => format!("{other}, after a person approves"),
            other => other.to_owned(),
        };
        out.push_str(&format!(
            "{}. {}: {when}, {what}{}; cooldown {} min.\n",
            i + 1,
            rule.name,
            if rule.notify { ", and notify" } else { "" },
            rule.cooldown_minutes.unwrap_or(settings.cooldown_minutes)
        ));
    }
    if settings.dry_run {
        out.push_str("\nDry run: decisions are recorded, nothing is acted on.\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AgentSettings {
        crate::config::Settings::defaults().expect("defaults").agent
    }

    fn ctx(alert_type: &str, share: Option<f64>, labels: u64) -> Context {
        Context {
            alert_type: alert_type.into(),
            quality_rule: None,
            feature: None,
            model: "heart".into(),
            production_version: Some(1),
            promoted_at: None,
            production_age_hours: Some(100.0),
            check_id: None,
            drift_share: share,
            drifted_features: Vec::new(),
            window_rows: None,
            accuracy_live: None,
            accuracy_estimated: None,
            accuracy_holdout: None,
            decay_measured: false,
            labels,
            recent_actions: Vec::new(),
            recent_promotions: Vec::new(),
        }
    }

    /// The default policy is the specification's tree.
    #[test]
    fn the_default_policy_is_the_specifications_tree() {
        let s = settings();
        let v = evaluate(&s, &ctx("drift", Some(0.95), 100));
        assert_eq!((v.action, v.approval), (Action::Retrain, true));
        assert_eq!(v.rule.as_deref(), Some("severe-drift"));
        let v = evaluate(&s, &ctx("drift", Some(0.8), 100));
        assert_eq!((v.action, v.approval), (Action::Noop, false));
        let v = evaluate(&s, &ctx("drift", Some(0.6), 100));
        assert_eq!((v.action, v.approval), (Action::Retrain, false));
        // Each earlier rule says why it did not match.
        let why: Vec<&str> = v.checks.iter().map(|c| c.reason.as_str()).collect();
        assert!(
            why.contains(&"drift share 0.600 is not above 0.9"),
            "{why:?}"
        );
        let v = evaluate(&s, &ctx("drift", Some(0.6), 3));
        assert_eq!(v.action, Action::Notify);
        assert_eq!(v.rule.as_deref(), Some("too-few-labels"));
        let v = evaluate(&s, &ctx("drift", Some(0.95), 3));
        assert_eq!(v.rule.as_deref(), Some("too-few-labels"));
        // A strong drift is watched whatever the labels.
        let v = evaluate(&s, &ctx("drift", Some(0.8), 3));
        assert_eq!(
            (v.rule.as_deref(), v.action),
            (Some("strong-drift"), Action::Noop)
        );
        let v = evaluate(&s, &ctx("drift", Some(0.5), 100));
        assert_eq!((v.rule, v.action), (None, Action::Noop));

        let mut decay = ctx("decay", None, 100);
        decay.production_age_hours = Some(2.0);
        // An alert saying "decay" without Steward's own measurement rolls nothing back.
        assert_eq!(evaluate(&s, &decay).action, Action::Notify);
        decay.decay_measured = true;
        let v = evaluate(&s, &decay);
        assert_eq!(v.action, Action::Rollback);
        decay.production_age_hours = Some(48.0);
        assert_eq!(evaluate(&s, &decay).action, Action::Notify);

        let mut quality = ctx("data_quality", None, 0);
        quality.quality_rule = Some("constant".into());
        let v = evaluate(&s, &quality);
        assert_eq!((v.action, v.notify), (Action::Quarantine, true));
        quality.quality_rule = Some("missing".into());
        assert_eq!(evaluate(&s, &quality).action, Action::Notify);
    }

    #[test]
    fn bad_rules_are_refused_with_their_key() {
        let mut s = settings();
        s.rules[0].action = "explode".into();
        assert_eq!(
            s.check().map_err(|e| e.0),
            Err("agent.rules[0].action".to_owned())
        );
        let mut s = settings();
        s.rules[1].alert_types = vec!["weather".into()];
        assert_eq!(
            s.check().map_err(|e| e.0),
            Err("agent.rules[1].alert_types".to_owned())
        );
        let mut s = settings();
        s.rules[2].name = s.rules[0].name.clone();
        assert_eq!(
            s.check().map_err(|e| e.0),
            Err("agent.rules[2].name".to_owned())
        );
        let mut s = settings();
        s.promotion_metric = "vibes".into();
        assert!(s.check().is_err());
        assert!(explain(&settings()).contains("1. quarantine-bad-values"));
    }
}
