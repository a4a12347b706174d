//! The actions: each re-checks its preconditions when it runs (state may have changed since the
//! decision or the approval), and returns its outcome as JSON for the action's row and its audit
//! event. A precondition that no longer holds is a skip, not a failure. Blocking: call from the
//! blocking pool.

use diesel::prelude::*;
use serde_json::{Value, json};

use super::retrain::{self, Retrained};
use super::store::{self, Incident, Notification};
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::schema::{agent_quarantine, predictions};
use crate::db::{Db, DbConnection};
use crate::error::AppError;
use crate::monitoring::stattests::Values;
use crate::outbox::{self, Event, Kind, Severity};
use crate::registry::{self, Change, Stage};
use crate::serving::Serving;

/// How an action ended.
pub enum Ended {
    Succeeded {
        outcome: Value,
        version: Option<i32>,
    },
    /// A precondition no longer held: nothing was done.
    Skipped { why: String },
    /// A retrain whose better challenger waits for a person's approval to be promoted.
    AwaitingApproval { retrained: Box<Retrained> },
    /// It failed after doing part of its work: what it did, and why it stopped.
    Failed { outcome: Value, error: String },
}

/// What an action needs of the process.
pub struct Tools<'a> {
    pub db: &'a Db,
    pub blobs: &'a dyn BlobStore,
    pub settings: &'a Settings,
    pub serving: &'a Serving,
    /// `Some(why)` when the action may no longer change anything (this process lost the
    /// agent's lease, or another marked the action interrupted). Asked before a promotion's or
    /// rollback's preconditions, and again by the registry inside the change's transaction,
    /// after the model loaded ([`registry::Servable::fenced`]).
    pub fence: &'a registry::Fence<'a>,
}

/// Writes a notification of the incident's kind into the outbox (the notify worker routes and
/// sends it); with `link`, the message links to that dashboard path.
pub fn notify(
    conn: &mut DbConnection,
    incident: Option<&Incident>,
    severity: Severity,
    subject: &str,
    body: &str,
) -> Result<Notification, AppError> {
    let kind = incident.map_or(Kind::Alert, |i| Kind::of_alert(&i.alert_type));
    let mut event =
        Event::new(kind, severity, subject, body).incident(incident.map(|i| i.id.as_str()));
    if let Some(i) = incident {
        event = event
            .fact("Model", &i.model)
            .fact("Alert", &i.alert_type)
            .fact("Alerts", i.alert_count)
            .link(format!("/agent/incidents/{}", i.id));
        if let Some(v) = i.version {
            event = event.fact("Version", v);
        }
    }
    outbox::push(conn, event)
}

/// The severity of an incident's notification.
pub fn severity_of(incident: &Incident) -> Severity {
    if incident.severity == "critical" {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// A notification's subject: what kind of problem, on which model version.
pub fn subject(incident: &Incident) -> String {
    let what = match incident.alert_type.as_str() {
        "drift" => "Drift",
        "data_quality" => "Data quality",
        "decay" => "Performance decay",
        "estimated_decay" => "Estimated performance decay",
        "validation" => "Validation failed",
        "error_rate" => "Error rate",
        _ => "Alert",
    };
    // A data-quality incident is one per feature and rule: the subject names them.
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&incident.labels_json).unwrap_or_default();
    let what = match (labels.get("feature"), labels.get("rule")) {
        (Some(f), Some(r)) if incident.alert_type == "data_quality" => format!(
            "{what} ({}: {})",
            crate::error::bounded(f, 40),
            crate::error::bounded(r, 20)
        ),
        _ => what.to_owned(),
    };
    match incident.version {
        Some(v) => format!("{what} on {} v{v}", incident.model),
        None if incident.source == "alertmanager" => {
            format!("{what}: {}", crate::error::bounded(&incident.alertname, 80))
        }
        None => format!("{what} on {}", incident.model),
    }
}

pub fn run_notify(tools: &Tools<'_>, incident: &Incident) -> Result<Ended, AppError> {
    let n = notify(
        &mut *tools.db.get()?,
        Some(incident),
        severity_of(incident),
        &subject(incident),
        &incident.summary,
    )?;
    Ok(Ended::Succeeded {
        outcome: json!({ "notification": n.id, "severity": n.severity, "subject": n.subject }),
        version: None,
    })
}

/// Quarantines the rows of the incident's check window that break its data-quality rule
/// (a constant feature: every row of the window).
pub fn run_quarantine(tools: &Tools<'_>, incident: &Incident) -> Result<Ended, AppError> {
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&incident.labels_json).unwrap_or_default();
    let (Some(feature), Some(rule)) = (labels.get("feature"), labels.get("rule")) else {
        return Ok(Ended::Skipped {
            why: "the incident names no feature and data-quality rule".into(),
        });
    };
    let Some(check_id) = &incident.check_id else {
        return Ok(Ended::Skipped {
            why: "the incident comes from no monitoring check".into(),
        });
    };
    let mut conn = tools.db.get()?;
    let check = crate::monitoring::check::parse_stored(crate::monitoring::check::get(
        &mut conn, check_id,
    )?)?;
    let (Some(start), Some(end)) = (check.window.start, check.window.end) else {
        return Ok(Ended::Skipped {
            why: "the check's window is empty".into(),
        });
    };
    let features = tools.settings.dataset.feature_names();
    let Some(at) = features.iter().position(|f| f == feature) else {
        return Ok(Ended::Skipped {
            why: format!(
                "{} is not a feature of the schema",
                crate::error::bounded(feature, 40)
            ),
        });
    };
    let profile = crate::monitoring::profile::stored(&mut conn, &check.model, check.version)?;
    let range = profile.as_ref().and_then(|p| p.range(feature));
    let seen: Option<std::collections::BTreeMap<String, u64>> = profile.as_ref().and_then(|p| {
        p.side()
            .features
            .into_iter()
            .find(|f| &f.name == feature)
            .and_then(|f| match f.values {
                Values::Categorical(c) => Some(c),
                Values::Numeric(_) => None,
            })
    });
    let rows: Vec<(String, String)> = predictions::table
        .filter(predictions::model.eq(&check.model))
        .filter(predictions::model_version.eq(check.version))
        .filter(predictions::created_at.ge(start))
        .filter(predictions::created_at.le(end))
        .select((predictions::request_id, predictions::features_json))
        .order(predictions::request_id.desc())
        .limit(check.window.max_rows.min(10_000_000) as i64)
        .load(&mut *conn)?;
    let offending = |value: Option<&serde_json::Value>| -> bool {
        match (rule.as_str(), value) {
            ("constant", _) => true,
            ("missing", Some(Value::Null) | None) => true,
            ("out_of_range", Some(Value::Number(x))) => x
                .as_f64()
                .is_some_and(|x| range.is_some_and(|(lo, hi)| x < lo || x > hi)),
            ("unseen_category", Some(Value::String(c))) => {
                seen.as_ref().is_some_and(|s| !s.contains_key(c))
            }
            _ => false,
        }
    };
    let now = crate::db::now();
    let mut picked: Vec<String> = Vec::new();
    for (id, json) in &rows {
        let values: Vec<Value> = serde_json::from_str(json).unwrap_or_default();
        if offending(values.get(at)) {
            picked.push(id.clone());
        }
    }
    let already = store::quarantined_among(&mut conn, &picked)?;
    let fresh: Vec<&String> = picked.iter().filter(|id| !already.contains(*id)).collect();
    conn.transaction(|conn| {
        for id in &fresh {
            diesel::insert_into(agent_quarantine::table)
                .values((
                    agent_quarantine::request_id.eq(*id),
                    agent_quarantine::incident_id.eq(&incident.id),
                    agent_quarantine::feature.eq(feature),
                    agent_quarantine::rule.eq(rule),
                    agent_quarantine::created_at.eq(now),
                ))
                .execute(conn)?;
        }
        Ok::<_, AppError>(())
    })?;
    Ok(Ended::Succeeded {
        outcome: json!({
            "feature": feature,
            "rule": rule,
            "check": check_id,
            "window_rows": rows.len(),
            "quarantined": fresh.len(),
            "already_quarantined": already.len(),
        }),
        version: Some(check.version),
    })
}

/// Validates the dataset's current version against its suite.
pub fn run_validate(tools: &Tools<'_>) -> Result<Ended, AppError> {
    let schema = &tools.settings.dataset;
    let suite = crate::data::expectations::Suite::load(&schema.suites_dir, &schema.suite)
        .map_err(|e| AppError::Conflict(format!("the suite cannot be read: {e}")))?;
    let run = crate::data::validate_version(
        &mut *tools.db.get()?,
        tools.blobs,
        schema,
        &suite,
        &schema.name,
        None,
        "agent",
    )?;
    Ok(Ended::Succeeded {
        outcome: json!({
            "validation": run.id,
            "dataset": run.dataset,
            "version": run.version,
            "success": run.success,
            "critical_failures": run.critical_failures,
        }),
        version: None,
    })
}

/// Rolls back the Production version the incident is about, if it is still in Production.
pub fn run_rollback(tools: &Tools<'_>, incident: &Incident) -> Result<Ended, AppError> {
    let model = &tools.settings.registry.model;
    // Only the version the alert is about is rolled back (an alert naming none rolls back
    // nothing: it could be about any version).
    let Some(v) = incident.version else {
        return Ok(Ended::Skipped {
            why: "the alert names no model version (label model_version)".into(),
        });
    };
    let reason = format!(
        "agent: {} (incident {})",
        crate::error::bounded(&incident.summary, 200),
        incident.id
    );
    let mut conn = tools.db.get()?;
    let skipped = std::cell::RefCell::new(None::<String>);
    // Checked under the serving slot's order lock, with the change.
    let outcome = tools.serving.apply_fenced(
        &mut conn,
        tools.blobs,
        Some(tools.fence),
        |conn, servable| {
            if let Some(why) = (tools.fence)(conn)? {
                *skipped.borrow_mut() = Some(why);
                return Ok(None);
            }
            let Some(current) = registry::production(conn, model)? else {
                *skipped.borrow_mut() = Some("nothing is in Production".into());
                return Ok(None);
            };
            if v != current.version {
                *skipped.borrow_mut() = Some(format!(
                    "the incident is about v{v}; Production is v{} now",
                    current.version
                ));
                return Ok(None);
            }
            if registry::rollback_target(conn, model)?.is_none() {
                *skipped.borrow_mut() = Some(format!(
                    "v{} has no earlier Production version to roll back to",
                    current.version
                ));
                return Ok(None);
            }
            let rolled = registry::rollback(
                conn,
                model,
                None,
                Change {
                    actor: "agent",
                    reason: &reason,
                    force: false,
                },
                servable,
            );
            fenced_to_skip(tools, conn, rolled, servable, &skipped)
        },
    )?;
    match outcome {
        Some(outcome) => Ok(Ended::Succeeded {
            outcome: json!({
                "from": v,
                "to": outcome.version.version,
            }),
            version: Some(outcome.version.version),
        }),
        None => Ok(Ended::Skipped {
            why: skipped.into_inner().unwrap_or_default(),
        }),
    }
}

/// A registry change's result, with a refusal by the fence turned into a skip with its
/// reason: the action ends skipped, having changed nothing. Any other refusal is checked
/// against the fence too (a deposed leader's change overtaken by the new leader's is refused
/// for another reason first, "already in Production" say): it ends skipped as well.
fn fenced_to_skip<T>(
    tools: &Tools<'_>,
    conn: &mut DbConnection,
    result: Result<T, AppError>,
    servable: &registry::Servable<'_>,
    skipped: &std::cell::RefCell<Option<String>>,
) -> Result<Option<T>, AppError> {
    let e = match result {
        Ok(done) => return Ok(Some(done)),
        Err(e) => e,
    };
    let why = match servable.fenced_because() {
        Some(why) => Some(why),
        None => match (tools.fence)(conn) {
            Ok(why) => why,
            Err(fence_error) => {
                tracing::warn!(error = %fence_error, "asking the fence after a refused change");
                None
            }
        },
    };
    match why {
        Some(why) => {
            // The refusal itself is kept in the log: the skip's reason is the fence's.
            tracing::warn!(error = %e, reason = %why, "a refused change of a fenced-off action");
            *skipped.borrow_mut() = Some(why);
            Ok(None)
        }
        None => Err(e),
    }
}

/// Promotes `version` if Production is still `champion` (what was compared), and the version
/// is registered and not in Production already. `force` passes the registry's data gate (a
/// person approved it, with the failures in view).
pub fn promote(
    tools: &Tools<'_>,
    conn: &mut DbConnection,
    version: i32,
    champion: Option<i32>,
    reason: &str,
    force: bool,
) -> Result<Ended, AppError> {
    let model = &tools.settings.registry.model;
    // The preconditions are read under the serving slot's order lock, with the change: no other
    // promotion or rollback of this process comes between the check and the move.
    let skipped = std::cell::RefCell::new(None::<String>);
    let outcome =
        tools
            .serving
            .apply_fenced(conn, tools.blobs, Some(tools.fence), |conn, servable| {
                if let Some(why) = (tools.fence)(conn)? {
                    *skipped.borrow_mut() = Some(why);
                    return Ok(None);
                }
                let current = registry::production(conn, model)?.map(|v| v.version);
                let why = if current != champion {
                    Some(format!(
                        "Production changed since the comparison (v{} then, {} now)",
                        champion.map_or("none".into(), |v| v.to_string()),
                        current.map_or("none".into(), |v| format!("v{v}"))
                    ))
                } else {
                    let target = registry::find_version(conn, model, version)?;
                    if target.stage == Stage::Production.as_str() {
                        Some(format!("v{version} is in Production already"))
                    } else if target.stage == Stage::Archived.as_str() {
                        Some(format!("v{version} was archived since"))
                    } else {
                        None
                    }
                };
                if let Some(why) = why {
                    *skipped.borrow_mut() = Some(why);
                    return Ok(None);
                }
                let promoted = registry::transition(
                    conn,
                    model,
                    version,
                    Stage::Production,
                    Change {
                        actor: "agent",
                        reason,
                        force,
                    },
                    servable,
                );
                fenced_to_skip(tools, conn, promoted, servable, &skipped)
            })?;
    match outcome {
        Some(outcome) => Ok(Ended::Succeeded {
            outcome: json!({
                "promoted": version,
                "archived": outcome.archived,
            }),
            version: Some(version),
        }),
        None => Ok(Ended::Skipped {
            why: skipped.into_inner().unwrap_or_default(),
        }),
    }
}

/// Retrains, then promotes a better challenger at once, or (with `approval`) leaves it for a
/// person; a challenger that is not better stays registered, with the reason.
pub fn run_retrain(
    tools: &Tools<'_>,
    incident: &Incident,
    approval: bool,
) -> Result<Ended, AppError> {
    let retrained = retrain::retrain(tools.db, tools.blobs, tools.settings, &incident.id)?;
    let summary = serde_json::to_value(&retrained).unwrap_or(Value::Null);
    if !retrained.better {
        return Ok(Ended::Succeeded {
            outcome: json!({ "promoted": false, "retrain": summary }),
            version: Some(retrained.challenger.version),
        });
    }
    // A person decides when the policy says so, or when the data the challenger learned from
    // failed an expectation (the registry promotes such a model only with a reason).
    if approval || !retrained.validation_failures.is_empty() {
        return Ok(Ended::AwaitingApproval {
            retrained: Box::new(retrained),
        });
    }
    let reason = format!(
        "agent retrain (incident {}): {}",
        incident.id,
        crate::error::bounded(&retrained.verdict, 300)
    );
    let mut conn = tools.db.get()?;
    // The kill switch may have been pulled while it trained: then nothing more is done.
    if super::is_paused(&mut conn, tools.settings)? {
        return Ok(Ended::Succeeded {
            outcome: json!({
                "promoted": false,
                "not_promoted_because": "the agent was paused while it trained",
                "retrain": summary,
            }),
            version: Some(retrained.challenger.version),
        });
    }
    match promote(
        tools,
        &mut conn,
        retrained.challenger.version,
        retrained.champion,
        &reason,
        false,
    ) {
        Ok(Ended::Succeeded { .. }) => Ok(Ended::Succeeded {
            outcome: json!({ "promoted": true, "retrain": summary }),
            version: Some(retrained.challenger.version),
        }),
        Ok(Ended::Skipped { why }) => Ok(Ended::Succeeded {
            outcome: json!({ "promoted": false, "not_promoted_because": why, "retrain": summary }),
            version: Some(retrained.challenger.version),
        }),
        Ok(other) => Ok(other),
        Err(e) => Ok(Ended::Failed {
            outcome: json!({ "promoted": false, "retrain": summary }),
            error: format!(
                "v{} was registered, but its promotion failed: {e}",
                retrained.challenger.version
            ),
        }),
    }
}
