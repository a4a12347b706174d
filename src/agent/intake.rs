//! Intake: alerts from monitoring (in process), from a failed validation, and from Prometheus
//! Alertmanager's webhook (version 4), normalised and deduplicated by fingerprint into
//! incidents. A repeat updates its incident's count and last-seen time; a `resolved` alert
//! closes it. Every step is idempotent: a retried webhook call changes counts, never creates a
//! second incident, and an incident's opening and closing are audited with it.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::policy::ALERT_TYPES;
use super::store::{self, Incident};
use crate::audit::{self, NewEvent};
use crate::db::DbConnection;
use crate::db::schema::agent_incidents;
use crate::error::AppError;
use crate::monitoring::check::Alert;

/// Most labels (and annotations) one alert may carry, and their sizes in characters.
const MAX_LABELS: usize = 64;
const MAX_KEY_CHARS: usize = 128;
const MAX_LABEL_CHARS: usize = 1024;
const MAX_ANNOTATION_CHARS: usize = 4096;
/// Most bytes of an alert's labels, as stored.
const MAX_LABELS_BYTES: usize = 8192;
/// Annotations kept in an incident's evidence, and the characters kept of each.
const EVIDENCE_ANNOTATIONS: usize = 16;
const EVIDENCE_CHARS: usize = 1024;
/// Longest summary kept on an incident.
const SUMMARY_CHARS: usize = 300;

/// Invisible format characters: bidi marks, embeddings, overrides and isolates, zero widths,
/// line and paragraph separators, the byte-order mark.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
    )
}

/// A sender's text as kept: control and invisible characters dropped, bounded.
fn clean(text: &str, max: usize) -> String {
    let kept: String = text
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible(c))
        .collect();
    crate::error::bounded(&kept, max)
}

/// An alert from any source, normalised.
#[derive(Debug, Clone, Serialize)]
pub struct NewAlert {
    pub fingerprint: String,
    /// monitoring, alertmanager or validation.
    pub source: &'static str,
    pub alert_type: String,
    pub alertname: String,
    pub severity: String,
    pub model: String,
    pub version: Option<i32>,
    pub summary: String,
    pub labels: BTreeMap<String, String>,
    pub evidence: serde_json::Value,
    pub check_id: Option<String>,
    /// The alert says the problem is over.
    pub resolved: bool,
    /// Who sent it, as the audit log names it (`monitoring`, `agent`, `user:NAME` for a token,
    /// `alertmanager:signed` for a signature).
    pub poster: String,
}

impl NewAlert {
    /// One of monitoring's alerts.
    pub fn from_monitoring(alert: &Alert) -> NewAlert {
        let mut labels = BTreeMap::new();
        labels.insert("alert_type".into(), alert.alert_type.as_str().to_owned());
        labels.insert("model".into(), alert.model.clone());
        labels.insert("version".into(), alert.version.to_string());
        for key in ["feature", "rule"] {
            if let Some(v) = alert.evidence.get(key).and_then(|v| v.as_str()) {
                labels.insert(key.into(), crate::error::bounded(v, 64));
            }
        }
        NewAlert {
            fingerprint: alert.fingerprint.clone(),
            source: "monitoring",
            alert_type: alert.alert_type.as_str().to_owned(),
            alertname: format!("steward_{}", alert.alert_type.as_str()),
            severity: match alert.severity {
                crate::monitoring::check::Severity::Warning => "warning".into(),
                crate::monitoring::check::Severity::Critical => "critical".into(),
            },
            model: alert.model.clone(),
            version: Some(alert.version),
            summary: crate::error::bounded(&alert.summary, SUMMARY_CHARS),
            labels,
            evidence: alert.evidence.clone(),
            check_id: Some(alert.check_id.clone()),
            resolved: false,
            poster: "monitoring".into(),
        }
    }
}

/// Alertmanager's webhook body, version 4
/// (<https://prometheus.io/docs/alerting/latest/configuration/#webhook_config>). Every field
/// it documents is known; any other is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookBody {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub starts_at: Option<String>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: Option<String>,
}

fn check_map(
    field: &str,
    map: &BTreeMap<String, String>,
    value_chars: usize,
) -> Result<(), AppError> {
    if map.len() > MAX_LABELS {
        return Err(AppError::validation(
            field,
            format!("at most {MAX_LABELS} entries"),
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > MAX_KEY_CHARS {
            return Err(AppError::validation(
                field,
                format!("names must be 1-{MAX_KEY_CHARS} characters"),
            ));
        }
        if v.chars().count() > value_chars {
            return Err(AppError::validation(
                field,
                format!(
                    "the value of {} is longer than {value_chars} characters",
                    crate::error::bounded(k, 40)
                ),
            ));
        }
    }
    Ok(())
}

fn check_time(field: &str, value: &Option<String>) -> Result<(), AppError> {
    match value {
        Some(t) if chrono::DateTime::parse_from_rfc3339(t).is_err() => {
            Err(AppError::validation(field, "must be an RFC 3339 time"))
        }
        _ => Ok(()),
    }
}

/// A fingerprint of the labels when Alertmanager sent none (16 hex digits, as its own).
fn labels_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (k, v) in labels {
        h.update(k.as_bytes());
        h.update([0xff]);
        h.update(v.as_bytes());
        h.update([0xff]);
    }
    hex::encode(h.finalize()).chars().take(16).collect()
}

/// Checks a webhook body and normalises its alerts for `model`. Errors (422) name the field:
/// a version other than "4", too many alerts, a status other than firing/resolved, oversized
/// labels, a type Steward does not know, a model it does not watch.
pub fn parse_webhook(
    body: WebhookBody,
    model: &str,
    max_alerts: usize,
    poster: &str,
) -> Result<Vec<NewAlert>, AppError> {
    if body.version != "4" {
        return Err(AppError::validation(
            "version",
            "Alertmanager's webhook version 4 is the one understood",
        ));
    }
    if !matches!(body.status.as_str(), "firing" | "resolved") {
        return Err(AppError::validation("status", "must be firing or resolved"));
    }
    if body.alerts.is_empty() {
        return Err(AppError::validation(
            "alerts",
            "must hold at least one alert",
        ));
    }
    if body.alerts.len() > max_alerts {
        return Err(AppError::validation(
            "alerts",
            format!("at most {max_alerts} alerts per call (agent.max_alerts_per_request)"),
        ));
    }
    for (field, map, chars) in [
        ("groupLabels", &body.group_labels, MAX_LABEL_CHARS),
        ("commonLabels", &body.common_labels, MAX_LABEL_CHARS),
        (
            "commonAnnotations",
            &body.common_annotations,
            MAX_ANNOTATION_CHARS,
        ),
    ] {
        check_map(field, map, chars)?;
    }
    for (field, text) in [
        ("groupKey", &body.group_key),
        ("receiver", &body.receiver),
        ("externalURL", &body.external_url),
    ] {
        if text.chars().count() > MAX_ANNOTATION_CHARS {
            return Err(AppError::validation(
                field,
                format!("at most {MAX_ANNOTATION_CHARS} characters"),
            ));
        }
    }
    let mut out = Vec::with_capacity(body.alerts.len());
    for (i, a) in body.alerts.into_iter().enumerate() {
        let field = |f: &str| format!("alerts[{i}].{f}");
        if !matches!(a.status.as_str(), "firing" | "resolved") {
            return Err(AppError::validation(
                &field("status"),
                "must be firing or resolved",
            ));
        }
        check_map(&field("labels"), &a.labels, MAX_LABEL_CHARS)?;
        if serde_json::to_string(&a.labels).map_or(0, |t| t.len()) > MAX_LABELS_BYTES {
            return Err(AppError::validation(
                &field("labels"),
                format!("at most {MAX_LABELS_BYTES} bytes in all"),
            ));
        }
        check_map(&field("annotations"), &a.annotations, MAX_ANNOTATION_CHARS)?;
        check_time(&field("startsAt"), &a.starts_at)?;
        check_time(&field("endsAt"), &a.ends_at)?;
        if a.generator_url.chars().count() > MAX_ANNOTATION_CHARS {
            return Err(AppError::validation(
                &field("generatorURL"),
                format!("at most {MAX_ANNOTATION_CHARS} characters"),
            ));
        }
        let fingerprint = match &a.fingerprint {
            Some(f) if !f.is_empty() => {
                if f.len() > 64 || !f.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(AppError::validation(
                        &field("fingerprint"),
                        "must be 1-64 hex digits",
                    ));
                }
                format!("am:{}", f.to_ascii_lowercase())
            }
            _ => format!("am:{}", labels_fingerprint(&a.labels)),
        };
        let alert_type = a
            .labels
            .get("alert_type")
            .map(String::as_str)
            .unwrap_or("external")
            .to_owned();
        if !ALERT_TYPES.contains(&alert_type.as_str()) {
            return Err(AppError::validation(
                &field("labels.alert_type"),
                "must be one of drift, data_quality, decay, estimated_decay, validation, \
                 error_rate, external",
            ));
        }
        if let Some(m) = a.labels.get("model") {
            if m != model {
                return Err(AppError::validation(
                    &field("labels.model"),
                    format!("this server watches the model {model}"),
                ));
            }
        }
        // `model_version`: the registered model's version the alert is about (a `version`
        // label is often an application's, and is left alone).
        let version = match a.labels.get("model_version") {
            Some(v) => Some(v.parse::<i32>().map_err(|_| {
                AppError::validation(&field("labels.model_version"), "must be a version number")
            })?),
            None => None,
        };
        let alertname = a
            .labels
            .get("alertname")
            .cloned()
            .unwrap_or_else(|| "alert".into());
        // Any severity a routing tree uses (critical, page, warning, info, ...), kept short.
        let severity = a
            .labels
            .get("severity")
            .map(|s| crate::error::bounded(s, 32))
            .unwrap_or_else(|| "warning".into());
        let summary = a
            .annotations
            .get("summary")
            .or_else(|| a.annotations.get("description"))
            .or_else(|| body.common_annotations.get("summary"))
            .cloned()
            .unwrap_or_else(|| alertname.clone());
        let annotations: BTreeMap<&String, String> = a
            .annotations
            .iter()
            .take(EVIDENCE_ANNOTATIONS)
            .map(|(k, v)| (k, crate::error::bounded(v, EVIDENCE_CHARS)))
            .collect();
        let evidence = json!({
            "annotations": annotations,
            "startsAt": a.starts_at,
            "endsAt": a.ends_at,
            "generatorURL": crate::error::bounded(&a.generator_url, EVIDENCE_CHARS),
            "groupKey": crate::error::bounded(&body.group_key, EVIDENCE_CHARS),
            "truncatedAlerts": body.truncated_alerts,
        });
        let mut labels = a.labels;
        labels
            .entry("alertname".into())
            .or_insert(alertname.clone());
        out.push(NewAlert {
            fingerprint,
            source: "alertmanager",
            alert_type,
            alertname: clean(&alertname, 128),
            severity: clean(&severity, 32),
            model: model.to_owned(),
            version,
            summary: clean(&summary, SUMMARY_CHARS),
            labels,
            evidence,
            check_id: None,
            resolved: a.status == "resolved",
            poster: poster.to_owned(),
        });
    }
    Ok(out)
}

/// What taking one alert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Taken {
    /// A new incident.
    Opened,
    /// A repeat of an open incident.
    Repeated,
    /// It closed an open incident.
    Resolved,
    /// A resolution of nothing open.
    Ignored,
}

/// Takes a batch of alerts into the incidents in one transaction (all or none), with the
/// audit events of the incidents opened and closed; returns each alert's incident and what
/// happened.
pub fn ingest_all(
    conn: &mut DbConnection,
    alerts: &[NewAlert],
    redecide_after_secs: u64,
    max_open_alertmanager: Option<u64>,
) -> Result<Vec<(Option<String>, Taken)>, AppError> {
    let now = crate::db::now();
    let redecide_before = now - chrono::Duration::seconds(redecide_after_secs as i64);
    audit::with_events(conn, |conn, events| {
        // Alertmanager's incidents never fill the store: a call that would open more than
        // `max` takes nothing (503; the sender retries). Repeats and resolutions always pass,
        // so the incidents that make room can.
        if let Some(max) = max_open_alertmanager {
            let mut new: Vec<&str> = Vec::new();
            for a in alerts
                .iter()
                .filter(|a| a.source == "alertmanager" && !a.resolved)
            {
                if !new.contains(&a.fingerprint.as_str()) && same_problem(conn, a)?.is_none() {
                    new.push(&a.fingerprint);
                }
            }
            if !new.is_empty()
                && store::count_open_from(conn, "alertmanager")? + new.len() as i64 > max as i64
            {
                return Err(AppError::Overloaded {
                    message: format!(
                        "{max} incidents from Alertmanager may be open \
                         (agent.max_open_incidents); nothing was taken, retry later"
                    ),
                    retry_after_secs: 60,
                });
            }
        }
        let mut out = Vec::with_capacity(alerts.len());
        for alert in alerts {
            out.push(ingest_locked(conn, alert, now, redecide_before, events)?);
        }
        Ok(out)
    })
}

/// Takes one alert (see [`ingest_all`]).
pub fn ingest(
    conn: &mut DbConnection,
    alert: &NewAlert,
    redecide_after_secs: u64,
) -> Result<(Option<String>, Taken), AppError> {
    Ok(
        ingest_all(conn, std::slice::from_ref(alert), redecide_after_secs, None)?
            .pop()
            .unwrap_or((None, Taken::Ignored)),
    )
}

/// One alert, under the audit lock of the caller's transaction: a new incident, a repeat or a
/// resolution.
fn ingest_locked(
    conn: &mut DbConnection,
    alert: &NewAlert,
    now: chrono::NaiveDateTime,
    redecide_before: chrono::NaiveDateTime,
    events: &mut Vec<NewEvent>,
) -> Result<(Option<String>, Taken), AppError> {
    if alert.resolved {
        let Some(open) = store::open_incident(conn, &alert.fingerprint)? else {
            return Ok((None, Taken::Ignored));
        };
        resolve_locked(conn, &open, &format!("resolved by {}", alert.source), now)?;
        events.push(
            NewEvent::new(
                alert.poster.clone(),
                "agent.incident.resolved",
                format!("incident:{}", open.id),
            )
            .after(json!({
                "incident": open.id,
                "fingerprint": open.fingerprint,
                "alerts": open.alert_count,
            })),
        );
        return Ok((Some(open.id), Taken::Resolved));
    }
    if let Some(id) = repeat(conn, alert, now, redecide_before, events)? {
        return Ok((Some(id), Taken::Repeated));
    }
    let incident = Incident {
        id: store::new_id(),
        fingerprint: alert.fingerprint.clone(),
        source: alert.source.to_owned(),
        alert_type: alert.alert_type.clone(),
        alertname: alert.alertname.clone(),
        severity: alert.severity.clone(),
        model: alert.model.clone(),
        version: alert.version,
        summary: alert.summary.clone(),
        labels_json: serde_json::to_string(&alert.labels).unwrap_or_else(|_| "{}".into()),
        evidence_json: alert.evidence.to_string(),
        check_id: alert.check_id.clone(),
        status: "open".into(),
        alert_count: 1,
        first_seen: now,
        last_seen: now,
        resolved_at: None,
        resolution: None,
        decision_id: None,
    };
    diesel::insert_into(agent_incidents::table)
        .values(&incident)
        .execute(conn)?;
    events.push(
        NewEvent::new(
            alert.poster.clone(),
            "agent.alert",
            format!("incident:{}", incident.id),
        )
        .after(json!({
            "incident": incident.id,
            "fingerprint": incident.fingerprint,
            "source": incident.source,
            "type": incident.alert_type,
            "alertname": incident.alertname,
            "severity": incident.severity,
            "model": incident.model,
            "version": incident.version,
            "check": incident.check_id,
            "summary": incident.summary,
        })),
    );
    Ok((Some(incident.id), Taken::Opened))
}

/// Kinds of problem that Steward's monitoring raises itself and Prometheus may raise too
/// (from the same gauges, through Alertmanager): Alertmanager's alert joins monitoring's
/// incident ([`same_problem`]).
const WATCHED_BOTH_WAYS: [&str; 3] = ["drift", "decay", "estimated_decay"];

/// The version a problem of a kind both sources report is about: the alert's
/// `model_version`, or (a Prometheus rule over the gauges names none) the model's Production
/// version, which the gauges describe. `None` for other kinds, or with neither.
fn problem_version(conn: &mut DbConnection, alert: &NewAlert) -> Result<Option<i32>, AppError> {
    if !WATCHED_BOTH_WAYS.contains(&alert.alert_type.as_str()) {
        return Ok(alert.version);
    }
    match alert.version {
        Some(v) => Ok(Some(v)),
        None => Ok(crate::registry::production(conn, &alert.model)?.map(|p| p.version)),
    }
}

/// The open incident an alert repeats: the one of its fingerprint, or, for an Alertmanager
/// alert of a kind monitoring reports too ([`WATCHED_BOTH_WAYS`]), the oldest open incident
/// monitoring opened for the same kind, model and version ([`problem_version`]). One way
/// only: monitoring's own alerts never join an outside incident, whose decision (made on an
/// outside word, perhaps a no-op) must not hold back what monitoring's evidence decides.
fn same_problem(conn: &mut DbConnection, alert: &NewAlert) -> Result<Option<String>, AppError> {
    if store::open_incident(conn, &alert.fingerprint)?.is_some() {
        return Ok(Some(alert.fingerprint.clone()));
    }
    if alert.source != "alertmanager" || !WATCHED_BOTH_WAYS.contains(&alert.alert_type.as_str()) {
        return Ok(None);
    }
    let Some(version) = problem_version(conn, alert)? else {
        return Ok(None);
    };
    Ok(agent_incidents::table
        .filter(agent_incidents::status.eq("open"))
        .filter(agent_incidents::model.eq(&alert.model))
        .filter(agent_incidents::alert_type.eq(&alert.alert_type))
        .filter(agent_incidents::version.eq(version))
        .filter(agent_incidents::source.eq("monitoring"))
        .order(agent_incidents::first_seen.asc())
        .select(agent_incidents::fingerprint)
        .first(conn)
        .optional()?)
}

/// Counts a repeat into the open incident of the same problem ([`same_problem`]), if there is
/// one.
fn repeat(
    conn: &mut DbConnection,
    alert: &NewAlert,
    now: chrono::NaiveDateTime,
    redecide_before: chrono::NaiveDateTime,
    events: &mut Vec<NewEvent>,
) -> Result<Option<String>, AppError> {
    let Some(fingerprint) = same_problem(conn, alert)? else {
        return Ok(None);
    };
    let target = agent_incidents::table
        .filter(agent_incidents::fingerprint.eq(&fingerprint))
        .filter(agent_incidents::status.eq("open"));
    let updated = match &alert.check_id {
        Some(check) => diesel::update(target)
            .set((
                agent_incidents::alert_count.eq(agent_incidents::alert_count + 1),
                agent_incidents::last_seen.eq(now),
                agent_incidents::check_id.eq(check),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                agent_incidents::alert_count.eq(agent_incidents::alert_count + 1),
                agent_incidents::last_seen.eq(now),
            ))
            .execute(conn)?,
    };
    if updated == 0 {
        return Ok(None);
    }
    let Some(incident) = store::open_incident(conn, &fingerprint)? else {
        return Ok(None);
    };
    // A decision that waited (a cooldown, the hourly cap, too few labels, a training running)
    // is taken again on a repeat that comes `redecide_after_secs` later: the condition may have
    // cleared (a storm of repeats is still one decision).
    if let Some(decision) = &incident.decision_id {
        if store::find_decision(conn, decision)
            .is_ok_and(|d| d.redecide && d.created_at <= redecide_before)
        {
            reopen_locked(conn, &incident, decision, "a repeat alert", events)?;
        }
    }
    Ok(Some(incident.id))
}

/// Sets an incident's waiting decision aside so the worker decides again (inside the caller's
/// audited transaction), with its event.
pub fn reopen_locked(
    conn: &mut DbConnection,
    incident: &Incident,
    decision: &str,
    why: &str,
    events: &mut Vec<NewEvent>,
) -> Result<(), AppError> {
    let n = diesel::update(
        agent_incidents::table
            .find(&incident.id)
            .filter(agent_incidents::decision_id.eq(decision)),
    )
    .set(agent_incidents::decision_id.eq(None::<String>))
    .execute(conn)?;
    if n == 1 {
        events.push(
            NewEvent::new(
                "agent",
                "agent.decision.reopened",
                format!("incident:{}", incident.id),
            )
            .after(json!({ "incident": incident.id, "decision": decision, "why": why })),
        );
    }
    Ok(())
}

/// Marks an open incident resolved (inside the caller's audited transaction).
pub fn resolve_locked(
    conn: &mut DbConnection,
    incident: &Incident,
    why: &str,
    now: chrono::NaiveDateTime,
) -> Result<bool, AppError> {
    let n = diesel::update(
        agent_incidents::table
            .find(&incident.id)
            .filter(agent_incidents::status.eq("open")),
    )
    .set((
        agent_incidents::status.eq("resolved"),
        agent_incidents::resolved_at.eq(Some(now)),
        agent_incidents::resolution.eq(Some(crate::error::bounded(why, 300))),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// Resolves an incident with an audit event (the agent's own resolutions: a later check no
/// longer raises it, its version left Production, its action fixed it).
pub fn resolve(conn: &mut DbConnection, incident: &Incident, why: &str) -> Result<bool, AppError> {
    audit::with_optional_event(conn, |conn| {
        let done = resolve_locked(conn, incident, why, crate::db::now())?;
        let event = done.then(|| {
            NewEvent::new(
                "agent",
                "agent.incident.resolved",
                format!("incident:{}", incident.id),
            )
            .after(json!({
                "incident": incident.id,
                "fingerprint": incident.fingerprint,
                "why": crate::error::bounded(why, 300),
            }))
        });
        Ok((done, event))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> WebhookBody {
        serde_json::from_value(v).expect("body")
    }

    #[test]
    fn alertmanager_bodies_are_checked_and_normalised() {
        let good = json!({
            "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
            "receiver": "steward", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am", "alerts": [{
                "status": "firing", "labels": {"alertname": "HighErrorRate", "alert_type": "error_rate"},
                "annotations": {"summary": "5xx above 5%"}, "startsAt": "2026-11-30T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": "ABCDEF0123456789"
            }]
        });
        let alerts = parse_webhook(body(good.clone()), "heart", 10, "test").expect("parsed");
        assert_eq!(alerts[0].fingerprint, "am:abcdef0123456789");
        assert_eq!(alerts[0].alert_type, "error_rate");
        assert_eq!(alerts[0].summary, "5xx above 5%");
        let mut v = good.clone();
        v["version"] = json!("3");
        assert!(parse_webhook(body(v), "heart", 10, "test").is_err());
        let mut v = good.clone();
        v["alerts"][0]["labels"]["alert_type"] = json!("weather");
        let e = parse_webhook(body(v), "heart", 10, "test").expect_err("bad type");
        assert!(e.to_string().contains("alerts[0].labels.alert_type"), "{e}");
        let mut v = good.clone();
        v["alerts"][0]["labels"]["model"] = json!("other");
        assert!(parse_webhook(body(v), "heart", 10, "test").is_err());
        assert!(parse_webhook(body(good.clone()), "heart", 0, "test").is_err());
        let mut v = good;
        v["extra"] = json!(1);
        assert!(serde_json::from_value::<WebhookBody>(v).is_err());
    }
}
