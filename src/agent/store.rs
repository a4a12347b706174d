//! The agent's rows: incidents, decisions, approvals, actions, notifications, quarantined
//! prediction rows and the kill switch. Reads and small writes; what must commit with an audit
//! event is written inside the callers' `audit::with_event`.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::DbConnection;
use crate::db::schema::{
    agent_actions, agent_approvals, agent_decisions, agent_incidents, agent_quarantine, agent_state,
};
use crate::error::AppError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = agent_incidents)]
pub struct Incident {
    pub id: String,
    pub fingerprint: String,
    /// monitoring, alertmanager or validation.
    pub source: String,
    #[serde(rename = "type")]
    pub alert_type: String,
    pub alertname: String,
    pub severity: String,
    pub model: String,
    pub version: Option<i32>,
    pub summary: String,
    pub labels_json: String,
    pub evidence_json: String,
    pub check_id: Option<String>,
    /// open or resolved.
    pub status: String,
    /// Alerts taken into it (the first and every repeat).
    pub alert_count: i64,
    pub first_seen: chrono::NaiveDateTime,
    pub last_seen: chrono::NaiveDateTime,
    pub resolved_at: Option<chrono::NaiveDateTime>,
    pub resolution: Option<String>,
    pub decision_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = agent_decisions)]
pub struct Decision {
    pub id: String,
    pub incident_id: String,
    pub model: String,
    /// The rule that matched (`None`: none did).
    pub rule: Option<String>,
    pub action: String,
    pub approval: bool,
    /// acted (its action ran; the action's row has the outcome), awaiting_approval, dry_run,
    /// cooldown, capped, deferred (a training was running), recorded (a no-op) or dropped (its
    /// action never started, and its incident closed meanwhile).
    pub status: String,
    /// Taken again on the incident's next alert: it waited (a cooldown, the hourly cap, too
    /// few labels).
    pub redecide: bool,
    /// The rules tried, each with why it did (not) match.
    pub explanation_json: String,
    /// The incident's context (see `policy::Context`).
    pub context_json: String,
    pub created_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = agent_approvals)]
pub struct Approval {
    pub id: String,
    pub decision_id: String,
    pub incident_id: String,
    /// What approving does: promote (a retrained challenger), or the rule's action.
    pub action: String,
    pub model: String,
    /// The version approving would promote, when there is one.
    pub version: Option<i32>,
    /// pending, approved, rejected or expired.
    pub status: String,
    /// The drift check and, for a promotion, the challenger's and champion's metrics.
    pub evidence_json: String,
    pub requested_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<chrono::NaiveDateTime>,
    pub comment: Option<String>,
    /// The action approving started.
    pub action_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = agent_actions)]
pub struct ActionRow {
    pub id: String,
    pub decision_id: String,
    pub approval_id: Option<String>,
    pub incident_id: String,
    pub action: String,
    pub model: String,
    /// running, succeeded, failed or skipped (a precondition no longer held).
    pub status: String,
    pub started_at: chrono::NaiveDateTime,
    pub finished_at: Option<chrono::NaiveDateTime>,
    pub outcome_json: Option<String>,
    pub error: Option<String>,
    /// The model version the action produced or moved to.
    pub model_version: Option<i32>,
}

pub use crate::outbox::Notification;

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn find_incident(conn: &mut DbConnection, id: &str) -> Result<Incident, AppError> {
    agent_incidents::table
        .find(id)
        .select(Incident::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound("no such incident".into()))
}

pub fn open_incident(
    conn: &mut DbConnection,
    fingerprint: &str,
) -> Result<Option<Incident>, AppError> {
    Ok(agent_incidents::table
        .filter(agent_incidents::fingerprint.eq(fingerprint))
        .filter(agent_incidents::status.eq("open"))
        .select(Incident::as_select())
        .first(conn)
        .optional()?)
}

/// Incidents newest first; `status` open or resolved, or both when `None`.
pub fn list_incidents(
    conn: &mut DbConnection,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Incident>, AppError> {
    let mut q = agent_incidents::table
        .select(Incident::as_select())
        .order(agent_incidents::first_seen.desc())
        .then_order_by(agent_incidents::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(agent_incidents::status.eq(s.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// Open incidents no decision was taken on yet, oldest first: Steward's own (monitoring,
/// validation) before Alertmanager's, so a flood of outside alerts never holds them up.
pub fn undecided(conn: &mut DbConnection, limit: i64) -> Result<Vec<Incident>, AppError> {
    let mut own: Vec<Incident> = agent_incidents::table
        .filter(agent_incidents::status.eq("open"))
        .filter(agent_incidents::decision_id.is_null())
        .filter(agent_incidents::source.ne("alertmanager"))
        .select(Incident::as_select())
        .order(agent_incidents::first_seen.asc())
        .limit(limit)
        .load(conn)?;
    let room = limit - own.len() as i64;
    if room > 0 {
        own.extend(
            agent_incidents::table
                .filter(agent_incidents::status.eq("open"))
                .filter(agent_incidents::decision_id.is_null())
                .filter(agent_incidents::source.eq("alertmanager"))
                .select(Incident::as_select())
                .order(agent_incidents::first_seen.asc())
                .limit(room)
                .load::<Incident>(conn)?,
        );
    }
    Ok(own)
}

pub fn count_open_from(conn: &mut DbConnection, source: &str) -> Result<i64, AppError> {
    Ok(agent_incidents::table
        .filter(agent_incidents::status.eq("open"))
        .filter(agent_incidents::source.eq(source))
        .count()
        .get_result(conn)?)
}

pub fn open_from(conn: &mut DbConnection, source: &str) -> Result<Vec<Incident>, AppError> {
    Ok(agent_incidents::table
        .filter(agent_incidents::status.eq("open"))
        .filter(agent_incidents::source.eq(source))
        .select(Incident::as_select())
        .load(conn)?)
}

pub fn count_open_incidents(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(agent_incidents::table
        .filter(agent_incidents::status.eq("open"))
        .count()
        .get_result(conn)?)
}

pub fn find_decision(conn: &mut DbConnection, id: &str) -> Result<Decision, AppError> {
    agent_decisions::table
        .find(id)
        .select(Decision::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound("no such decision".into()))
}

/// Decisions newest first, optionally of one action.
pub fn list_decisions(
    conn: &mut DbConnection,
    action: Option<&str>,
    limit: i64,
) -> Result<Vec<Decision>, AppError> {
    let mut q = agent_decisions::table
        .select(Decision::as_select())
        .order(agent_decisions::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(a) = action {
        q = q.filter(agent_decisions::action.eq(a.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// When `rule` last led to an action that did something (not skipped) or to an approval
/// request, on `model`: what its cooldown counts from.
pub fn last_acted(
    conn: &mut DbConnection,
    rule: &str,
    model: &str,
) -> Result<Option<chrono::NaiveDateTime>, AppError> {
    let recent: Vec<(String, String, chrono::NaiveDateTime)> = agent_decisions::table
        .filter(agent_decisions::rule.eq(rule))
        .filter(agent_decisions::model.eq(model))
        .filter(agent_decisions::status.eq_any(["acted", "awaiting_approval"]))
        .select((
            agent_decisions::id,
            agent_decisions::status,
            agent_decisions::created_at,
        ))
        .order(agent_decisions::created_at.desc())
        .limit(20)
        .load(conn)?;
    for (id, status, at) in recent {
        if status == "awaiting_approval" {
            return Ok(Some(at));
        }
        let did: i64 = agent_actions::table
            .filter(agent_actions::decision_id.eq(&id))
            .filter(agent_actions::status.ne("skipped"))
            .count()
            .get_result(conn)?;
        if did > 0 {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Open incidents whose decision waited on time (a cooldown, the cap, a training running) and
/// was taken before `before`: due to be decided again.
pub fn stale_waiting(
    conn: &mut DbConnection,
    before: chrono::NaiveDateTime,
) -> Result<Vec<(Incident, String)>, AppError> {
    let waiting: Vec<(String, String)> = agent_decisions::table
        .filter(agent_decisions::status.eq_any(["cooldown", "capped", "deferred"]))
        .filter(agent_decisions::created_at.le(before))
        .select((agent_decisions::id, agent_decisions::incident_id))
        .order(agent_decisions::created_at.asc())
        .limit(200)
        .load(conn)?;
    let mut out = Vec::new();
    for (decision, incident) in waiting {
        let i = find_incident(conn, &incident)?;
        if i.status == "open" && i.decision_id.as_deref() == Some(decision.as_str()) {
            out.push((i, decision));
        }
        if out.len() >= 20 {
            break;
        }
    }
    Ok(out)
}

/// Decisions to act whose action never started (the process stopped between the two).
pub fn unstarted_decisions(conn: &mut DbConnection) -> Result<Vec<Decision>, AppError> {
    Ok(agent_decisions::table
        .filter(agent_decisions::status.eq("acted"))
        .filter(diesel::dsl::not(agent_decisions::id.eq_any(
            agent_actions::table.select(agent_actions::decision_id),
        )))
        .select(Decision::as_select())
        .order(agent_decisions::id.asc())
        .limit(100)
        .load(conn)?)
}

pub fn find_approval(conn: &mut DbConnection, id: &str) -> Result<Approval, AppError> {
    agent_approvals::table
        .find(id)
        .select(Approval::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound("no such approval request".into()))
}

pub fn list_approvals(
    conn: &mut DbConnection,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<Approval>, AppError> {
    let mut q = agent_approvals::table
        .select(Approval::as_select())
        .order(agent_approvals::id.desc())
        .limit(limit)
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(agent_approvals::status.eq(s.to_owned()));
    }
    Ok(q.load(conn)?)
}

pub fn count_pending(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(agent_approvals::table
        .filter(agent_approvals::status.eq("pending"))
        .count()
        .get_result(conn)?)
}

/// Approved requests whose action has not started yet.
pub fn approved_unstarted(conn: &mut DbConnection) -> Result<Vec<Approval>, AppError> {
    Ok(agent_approvals::table
        .filter(agent_approvals::status.eq("approved"))
        .filter(agent_approvals::action_id.is_null())
        .select(Approval::as_select())
        .order(agent_approvals::id.asc())
        .load(conn)?)
}

/// Pending requests past their expiry.
pub fn overdue(
    conn: &mut DbConnection,
    now: chrono::NaiveDateTime,
) -> Result<Vec<Approval>, AppError> {
    Ok(agent_approvals::table
        .filter(agent_approvals::status.eq("pending"))
        .filter(agent_approvals::expires_at.le(now))
        .select(Approval::as_select())
        .load(conn)?)
}

pub fn list_actions(conn: &mut DbConnection, limit: i64) -> Result<Vec<ActionRow>, AppError> {
    Ok(agent_actions::table
        .select(ActionRow::as_select())
        .order(agent_actions::id.desc())
        .limit(limit)
        .load(conn)?)
}

pub fn running_actions(conn: &mut DbConnection) -> Result<Vec<ActionRow>, AppError> {
    Ok(agent_actions::table
        .filter(agent_actions::status.eq("running"))
        .select(ActionRow::as_select())
        .load(conn)?)
}

/// Actions started since `since` (the hourly cap), notifications aside.
pub fn actions_since(
    conn: &mut DbConnection,
    since: chrono::NaiveDateTime,
) -> Result<i64, AppError> {
    Ok(agent_actions::table
        .filter(agent_actions::started_at.ge(since))
        .filter(agent_actions::status.ne("skipped"))
        .filter(agent_actions::action.ne("notify"))
        .count()
        .get_result(conn)?)
}

pub fn actions_of_model_since(
    conn: &mut DbConnection,
    model: &str,
    since: chrono::NaiveDateTime,
) -> Result<Vec<ActionRow>, AppError> {
    Ok(agent_actions::table
        .filter(agent_actions::model.eq(model))
        .filter(agent_actions::started_at.ge(since))
        .select(ActionRow::as_select())
        .order(agent_actions::id.desc())
        .limit(10)
        .load(conn)?)
}

/// The newest notifications (the outbox's events), newest first.
pub fn list_notifications(
    conn: &mut DbConnection,
    limit: i64,
) -> Result<Vec<Notification>, AppError> {
    crate::outbox::list(conn, None, limit)
}

/// Everything recorded about one incident, for its timeline.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub decisions: Vec<Decision>,
    pub approvals: Vec<Approval>,
    pub actions: Vec<ActionRow>,
    pub notifications: Vec<Notification>,
    pub quarantined_rows: i64,
}

pub fn incident_detail(conn: &mut DbConnection, id: &str) -> Result<IncidentDetail, AppError> {
    let incident = find_incident(conn, id)?;
    Ok(IncidentDetail {
        decisions: agent_decisions::table
            .filter(agent_decisions::incident_id.eq(id))
            .select(Decision::as_select())
            .order(agent_decisions::id.asc())
            .load(conn)?,
        approvals: agent_approvals::table
            .filter(agent_approvals::incident_id.eq(id))
            .select(Approval::as_select())
            .order(agent_approvals::id.asc())
            .load(conn)?,
        actions: agent_actions::table
            .filter(agent_actions::incident_id.eq(id))
            .select(ActionRow::as_select())
            .order(agent_actions::id.asc())
            .load(conn)?,
        notifications: crate::outbox::list(conn, Some(id), 200)?,
        quarantined_rows: agent_quarantine::table
            .filter(agent_quarantine::incident_id.eq(id))
            .count()
            .get_result(conn)?,
        incident,
    })
}

/// Prediction rows already quarantined, among `ids`.
pub fn quarantined_among(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<std::collections::HashSet<String>, AppError> {
    let mut out = std::collections::HashSet::new();
    for chunk in ids.chunks(500) {
        let found: Vec<String> = agent_quarantine::table
            .filter(agent_quarantine::request_id.eq_any(chunk))
            .select(agent_quarantine::request_id)
            .load(conn)?;
        out.extend(found);
    }
    Ok(out)
}

/// The newest validation run of a dataset version, if any.
pub fn newest_validation(
    conn: &mut DbConnection,
    dataset: &str,
    version: i32,
) -> Result<Option<crate::data::catalog::ValidationRun>, AppError> {
    use crate::db::schema::validation_runs;
    Ok(validation_runs::table
        .filter(validation_runs::dataset.eq(dataset))
        .filter(validation_runs::version.eq(version))
        .order(validation_runs::created_at.desc())
        .select(crate::data::catalog::ValidationRun::as_select())
        .first(conn)
        .optional()?)
}

pub fn count_quarantined(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(agent_quarantine::table.count().get_result(conn)?)
}

/// The kill switch as stored (`None`: never set, the config's `agent.paused` holds).
pub fn paused(
    conn: &mut DbConnection,
) -> Result<Option<(bool, String, chrono::NaiveDateTime)>, AppError> {
    let row: Option<(String, String, chrono::NaiveDateTime)> = agent_state::table
        .find("paused")
        .select((
            agent_state::value,
            agent_state::updated_by,
            agent_state::updated_at,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(v, by, at)| (v == "true", by, at)))
}

pub fn set_paused(conn: &mut DbConnection, paused: bool, actor: &str) -> Result<(), AppError> {
    let now = crate::db::now();
    let value = if paused { "true" } else { "false" };
    let updated = diesel::update(agent_state::table.find("paused"))
        .set((
            agent_state::value.eq(value),
            agent_state::updated_by.eq(actor),
            agent_state::updated_at.eq(now),
        ))
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(agent_state::table)
            .values((
                agent_state::key.eq("paused"),
                agent_state::value.eq(value),
                agent_state::updated_by.eq(actor),
                agent_state::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(())
}
