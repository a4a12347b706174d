//! The agent's pages: Approvals (pending requests with their evidence, approved or rejected in
//! place, and the history), Agent activity (the switch, the feed of incidents, decisions,
//! approvals and actions, filterable by type and model version, and the notifications) and an
//! incident's timeline.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, html, when};
use crate::agent::{self, policy, store};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::state::AppState;

const HISTORY: i64 = 50;
const PENDING: i64 = 200;
const FEED: i64 = 100;

/// A request as the Approvals page shows it.
pub struct ApprovalView {
    pub id: String,
    pub action: String,
    pub model: String,
    pub version: String,
    pub status: String,
    pub requested: String,
    pub expires: String,
    pub decided: String,
    pub comment: String,
    pub incident: String,
    pub summary: String,
    /// (label, value) lines of evidence.
    pub evidence: Vec<(String, String)>,
    /// (metric, challenger, champion) rows, when a retrain's challenger waits.
    pub scores: Vec<(String, String, String)>,
    pub verdict: String,
    /// Why a person decides: the policy asked, or the data failed expectations.
    pub why: String,
    /// The drift check the request rests on.
    pub check: Option<String>,
}

/// The value at a JSON pointer, or null.
fn at<'a>(v: &'a serde_json::Value, pointer: &str) -> &'a serde_json::Value {
    v.pointer(pointer).unwrap_or(&serde_json::Value::Null)
}

fn num(v: &serde_json::Value) -> String {
    v.as_f64().map_or("–".into(), |x| format!("{x:.4}"))
}

fn approval_view(a: &store::Approval) -> ApprovalView {
    let ev: serde_json::Value = serde_json::from_str(&a.evidence_json).unwrap_or_default();
    let mut evidence = Vec::new();
    let mut scores = Vec::new();
    let retrain = at(&ev, "/retrain");
    if retrain.is_object() {
        let ch = at(retrain, "/challenger_scores");
        let cp = at(retrain, "/champion_scores");
        for m in ["roc_auc", "accuracy", "f1", "pr_auc", "log_loss", "brier"] {
            scores.push((
                m.to_owned(),
                num(at(ch, &format!("/{m}"))),
                num(at(cp, &format!("/{m}"))),
            ));
        }
        evidence.push((
            "Challenger".into(),
            format!(
                "v{} ({}) trained on {} v{}: v{} + {} feedback rows",
                at(retrain, "/challenger/version"),
                at(retrain, "/challenger/model_kind").as_str().unwrap_or(""),
                at(retrain, "/dataset").as_str().unwrap_or(""),
                at(retrain, "/dataset_version"),
                at(retrain, "/parent_version"),
                at(retrain, "/feedback_rows")
            ),
        ));
        evidence.push((
            "Champion".into(),
            at(retrain, "/champion")
                .as_i64()
                .map_or("none".into(), |v| format!("v{v} (Production)")),
        ));
        evidence.push((
            "Compared on".into(),
            format!(
                "{} rows: {}",
                at(retrain, "/comparison_rows"),
                at(retrain, "/comparison").as_str().unwrap_or("")
            ),
        ));
    }
    let failures: Vec<&str> = at(retrain, "/validation_failures")
        .as_array()
        .map(|f| f.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    let why = if !failures.is_empty() {
        format!(
            "The data it learned from failed {} expectation{}: {}. A model trained on it is \
             promoted only by a person.",
            failures.len(),
            if failures.len() == 1 { "" } else { "s" },
            failures.join(", ")
        )
    } else if a.action == "promote" {
        "The policy's rule asks a person before a retrained model is promoted.".to_owned()
    } else {
        format!("The policy's rule asks a person before a {}.", a.action)
    };
    let check = at(&ev, "/check").as_str().map(str::to_owned);
    let ctx = at(&ev, "/context");
    if ctx.is_object() {
        if let Some(s) = at(ctx, "/drift_share").as_f64() {
            evidence.push(("Drift share".into(), format!("{s:.3}")));
        }
        if let Some(f) = at(ctx, "/drifted_features").as_array() {
            let names: Vec<&str> = f
                .iter()
                .filter_map(|x| at(x, "/feature").as_str())
                .collect();
            evidence.push(("Drifted features".into(), names.join(", ")));
        }
        evidence.push(("Labels".into(), at(ctx, "/labels").to_string()));
    }
    ApprovalView {
        id: a.id.clone(),
        action: a.action.clone(),
        model: a.model.clone(),
        version: a.version.map(|v| format!("v{v}")).unwrap_or_default(),
        status: a.status.clone(),
        requested: when(&a.requested_at),
        expires: when(&a.expires_at),
        decided: match (&a.decided_by, &a.decided_at) {
            (Some(by), Some(at)) => format!("{by}, {}", when(at)),
            (None, Some(at)) => when(at),
            _ => String::new(),
        },
        comment: a.comment.clone().unwrap_or_default(),
        incident: a.incident_id.clone(),
        summary: at(&ev, "/incident_summary")
            .as_str()
            .unwrap_or("")
            .to_owned(),
        evidence,
        scores,
        verdict: at(retrain, "/verdict").as_str().unwrap_or("").to_owned(),
        why,
        check,
    }
}

#[derive(Template)]
#[template(path = "approvals_partial.html")]
struct ApprovalsPartial {
    can_answer: bool,
    notice: Option<String>,
    pending: Vec<ApprovalView>,
    history: Vec<ApprovalView>,
}

#[derive(Template)]
#[template(path = "approvals.html")]
struct ApprovalsPage {
    chrome: Chrome,
    body: ApprovalsPartial,
}

async fn approvals_partial(
    state: &AppState,
    identity: &Identity,
    notice: Option<String>,
) -> Result<ApprovalsPartial, AppError> {
    // Every pending request (up to PENDING), and the newest answered or expired ones.
    let (pending, answered) = state
        .db
        .run(|conn| {
            let pending = store::list_approvals(conn, Some("pending"), PENDING)?;
            let mut answered = store::list_approvals(conn, None, HISTORY + PENDING)?;
            answered.retain(|a| a.status != "pending");
            answered.truncate(HISTORY as usize);
            Ok((pending, answered))
        })
        .await?;
    let now = crate::db::now();
    Ok(ApprovalsPartial {
        can_answer: identity.has(Role::Approver),
        notice,
        // One past its time is expired, whether or not the agent has marked it yet.
        pending: pending
            .iter()
            .filter(|a| a.expires_at > now)
            .map(approval_view)
            .collect(),
        history: answered.iter().map(approval_view).collect(),
    })
}

pub async fn get_approvals(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let body = approvals_partial(&state, &identity, None).await?;
    page_or_partial(hx, body, |body| {
        ApprovalsPage {
            chrome: Chrome::new(&identity, "/approvals"),
            body,
        }
        .render()
    })
}

async fn answer(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
    id: String,
    approve: bool,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(AppError::NotFound("no such approval request".into()));
    }
    // htmx sends the person's answer to hx-prompt in this header.
    let comment = req
        .headers()
        .get("HX-Prompt")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let actor = format!("user:{}", user.username);
    let a = state
        .db
        .run(move |conn| agent::answer(conn, &id, approve, &actor, &comment))
        .await?;
    state.agent.nudge();
    let notice = format!(
        "Request {} {}{}.",
        a.id.chars().take(8).collect::<String>(),
        a.status,
        if approve {
            ": the agent runs it now"
        } else {
            ""
        }
    );
    Ok(html(
        approvals_partial(&state, &identity, Some(notice))
            .await?
            .render()?,
    ))
}

pub async fn post_approve(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    answer(state, identity, req, path.into_inner(), true).await
}

pub async fn post_reject(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    answer(state, identity, req, path.into_inner(), false).await
}

/// One line of the feed.
pub struct FeedRow {
    pub at: chrono::NaiveDateTime,
    pub when: String,
    pub kind: &'static str,
    pub what: String,
    pub status: String,
    pub version: String,
    pub incident: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedQuery {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub version: Option<String>,
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    chrome: Chrome,
    status: agent::Status,
    can_pause: bool,
    can_resume: bool,
    kind: String,
    version: String,
    versions: Vec<i32>,
    feed: Vec<FeedRow>,
    notifications: Vec<(String, String, String, String)>,
    policy: String,
}

pub async fn get_agent(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let FeedQuery { kind, version } = query.into_inner();
    let kind = kind.filter(|k| !k.is_empty());
    if let Some(k) = &kind {
        if !matches!(k.as_str(), "incident" | "decision" | "approval" | "action") {
            return Err(AppError::validation(
                "type",
                "must be incident, decision, approval or action",
            ));
        }
    }
    let version = match version.filter(|v| !v.is_empty()) {
        Some(v) => Some(
            v.parse::<i32>()
                .map_err(|_| AppError::validation("version", "must be a version number"))?,
        ),
        None => None,
    };
    let settings = state.settings.clone();
    let (status, incidents, decisions, approvals, actions, notes) = state
        .db
        .run(move |conn| {
            Ok((
                agent::status(conn, &settings)?,
                store::list_incidents(conn, None, FEED)?,
                store::list_decisions(conn, None, FEED)?,
                store::list_approvals(conn, None, FEED)?,
                store::list_actions(conn, FEED)?,
                store::list_notifications(conn, 20)?,
            ))
        })
        .await?;
    let mut feed: Vec<RawRow> = Vec::new();
    let incident_version = |id: &str| {
        incidents
            .iter()
            .find(|i| i.id == id)
            .and_then(|i| i.version)
    };
    for i in &incidents {
        feed.push(RawRow {
            at: i.first_seen,
            when: when(&i.first_seen),
            kind: "incident",
            what: format!(
                "{} ({} alert{}): {}",
                i.alert_type,
                i.alert_count,
                if i.alert_count == 1 { "" } else { "s" },
                i.summary
            ),
            status: i.status.clone(),
            version: i.version,
            incident: i.id.clone(),
        });
    }
    for d in &decisions {
        let ctx: serde_json::Value = serde_json::from_str(&d.context_json).unwrap_or_default();
        feed.push(RawRow {
            at: d.created_at,
            when: when(&d.created_at),
            kind: "decision",
            what: format!(
                "{}{} by rule {}",
                d.action,
                if d.approval { " (with approval)" } else { "" },
                d.rule.as_deref().unwrap_or("(none)")
            ),
            status: d.status.clone(),
            version: at(&ctx, "/production_version").as_i64().map(|v| v as i32),
            incident: d.incident_id.clone(),
        });
    }
    for a in &approvals {
        feed.push(RawRow {
            at: a.requested_at,
            when: when(&a.requested_at),
            kind: "approval",
            what: format!("{} requested", a.action),
            status: a.status.clone(),
            version: a.version,
            incident: a.incident_id.clone(),
        });
    }
    for a in &actions {
        feed.push(RawRow {
            at: a.started_at,
            when: when(&a.started_at),
            kind: "action",
            what: format!(
                "{}{}",
                a.action,
                a.error
                    .as_deref()
                    .map(|e| format!(": {}", crate::error::bounded(e, 120)))
                    .unwrap_or_default()
            ),
            status: a.status.clone(),
            version: a.model_version.or_else(|| incident_version(&a.incident_id)),
            incident: a.incident_id.clone(),
        });
    }
    let mut versions: Vec<i32> = Vec::new();
    let mut rows: Vec<FeedRow> = Vec::new();
    for r in feed {
        if let Some(v) = r.version {
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
        if kind.as_deref().is_some_and(|k| k != r.kind)
            || version.is_some_and(|v| r.version != Some(v))
        {
            continue;
        }
        rows.push(FeedRow {
            at: r.at,
            when: r.when,
            kind: r.kind,
            what: r.what,
            status: r.status,
            version: r.version.map(|v| format!("v{v}")).unwrap_or_default(),
            incident: r.incident,
        });
    }
    versions.sort_unstable();
    rows.sort_by_key(|r| std::cmp::Reverse(r.at));
    rows.truncate(FEED as usize);
    let page = AgentPage {
        chrome: Chrome::new(&identity, "/agent"),
        status,
        can_pause: identity.has(Role::Approver),
        can_resume: identity.has(Role::Admin),
        kind: kind.unwrap_or_default(),
        version: version.map(|v| v.to_string()).unwrap_or_default(),
        versions,
        feed: rows,
        notifications: notes
            .into_iter()
            .map(|n| (when(&n.created_at), n.severity, n.subject, n.body))
            .collect(),
        policy: policy::explain(&state.settings.agent),
    };
    Ok(html(page.render()?))
}

/// A feed line before filtering (its version still a number).
struct RawRow {
    at: chrono::NaiveDateTime,
    when: String,
    kind: &'static str,
    what: String,
    status: String,
    version: Option<i32>,
    incident: String,
}

async fn switch(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
    paused: bool,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(if paused { Role::Approver } else { Role::Admin })?;
    let actor = format!("user:{}", user.username);
    let settings = state.settings.clone();
    state
        .db
        .run(move |conn| agent::set_paused(conn, &settings, paused, &actor))
        .await?;
    state.agent.nudge();
    // htmx follows a 303 itself and would swap the whole page into the button: it gets a
    // plain answer that tells it to load the page again.
    if hx.0 {
        return Ok(HttpResponse::Ok()
            .insert_header(("HX-Redirect", "/agent"))
            .finish());
    }
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", "/agent"))
        .finish())
}

pub async fn post_pause(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    switch(state, identity, hx, true).await
}

pub async fn post_resume(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    switch(state, identity, hx, false).await
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    chrome: Chrome,
    incident: store::Incident,
    labels: Vec<(String, String)>,
    /// (when, kind, what, status, details)
    timeline: Vec<(String, String, String, String, Vec<String>)>,
    quarantined: i64,
}

pub async fn get_incident(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let id = path.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(AppError::NotFound("no such incident".into()));
    }
    let d = state
        .db
        .run(move |conn| store::incident_detail(conn, &id))
        .await?;
    let i = &d.incident;
    let mut timeline: Vec<(
        chrono::NaiveDateTime,
        String,
        String,
        String,
        String,
        Vec<String>,
    )> = vec![(
        i.first_seen,
        when(&i.first_seen),
        "alert".into(),
        format!("{} from {}: {}", i.alertname, i.source, i.summary),
        i.severity.clone(),
        vec![format!(
            "{} alert{} in all, the last at {}",
            i.alert_count,
            if i.alert_count == 1 { "" } else { "s" },
            when(&i.last_seen)
        )],
    )];
    for x in &d.decisions {
        let checks: Vec<policy::RuleCheck> =
            serde_json::from_str(&x.explanation_json).unwrap_or_default();
        timeline.push((
            x.created_at,
            when(&x.created_at),
            "decision".into(),
            format!(
                "{}{} by rule {}",
                x.action,
                if x.approval { " (with approval)" } else { "" },
                x.rule.as_deref().unwrap_or("(none)")
            ),
            x.status.clone(),
            checks
                .iter()
                .map(|c| {
                    format!(
                        "{} {}: {}",
                        if c.matched { "✓" } else { "✗" },
                        c.rule,
                        c.reason
                    )
                })
                .collect(),
        ));
    }
    for a in &d.approvals {
        let mut details = vec![format!("expires {}", when(&a.expires_at))];
        if let Some(by) = &a.decided_by {
            details.push(format!(
                "answered by {by}{}",
                a.comment
                    .as_deref()
                    .filter(|c| !c.is_empty())
                    .map(|c| format!(": “{c}”"))
                    .unwrap_or_default()
            ));
        }
        timeline.push((
            a.requested_at,
            when(&a.requested_at),
            "approval".into(),
            format!(
                "{}{} requested",
                a.action,
                a.version.map(|v| format!(" v{v}")).unwrap_or_default()
            ),
            a.status.clone(),
            details,
        ));
    }
    for a in &d.actions {
        let outcome: serde_json::Value = a
            .outcome_json
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        let mut details = Vec::new();
        if let Some(v) = at(&outcome, "/retrain/verdict").as_str() {
            details.push(v.to_owned());
        }
        if let Some(v) = at(&outcome, "/verdict").as_str() {
            details.push(v.to_owned());
        }
        if let Some(v) = at(&outcome, "/skipped").as_str() {
            details.push(format!("skipped: {v}"));
        }
        if let Some(e) = &a.error {
            details.push(e.clone());
        }
        if let Some(v) = a.model_version {
            details.push(format!("model version v{v}"));
        }
        timeline.push((
            a.started_at,
            when(&a.started_at),
            "action".into(),
            a.action.clone(),
            a.status.clone(),
            details,
        ));
    }
    for n in &d.notifications {
        timeline.push((
            n.created_at,
            when(&n.created_at),
            "notification".into(),
            n.subject.clone(),
            n.severity.clone(),
            vec![n.body.clone()],
        ));
    }
    if let Some(at) = &i.resolved_at {
        timeline.push((
            *at,
            when(at),
            "resolved".into(),
            i.resolution.clone().unwrap_or_default(),
            "resolved".into(),
            Vec::new(),
        ));
    }
    timeline.sort_by_key(|t| t.0);
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&i.labels_json).unwrap_or_default();
    let page = IncidentPage {
        chrome: Chrome::new(&identity, "/agent"),
        labels: labels.into_iter().collect(),
        timeline: timeline
            .into_iter()
            .map(|(_, w, k, what, s, d)| (w, k, what, s, d))
            .collect(),
        quarantined: d.quarantined_rows,
        incident: d.incident,
    };
    Ok(html(page.render()?))
}
