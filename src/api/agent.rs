//! The agent over the API: Alertmanager's webhook (`POST /agent/alerts`), incidents with their
//! timelines, decisions, approvals (approve or reject with a comment), notifications, the
//! policy, and the kill switch.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::agent::intake::{self, Taken, WebhookBody};
use crate::agent::{self, policy, store};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::body::{OptionalJson, parse_object};
use crate::state::AppState;

/// The header a signing sender puts its HMAC-SHA256 in: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Steward-Signature";
/// Most rows one list answers.
const MAX_LIST: i64 = 500;

/// Checks `sha256=<hex>` against the HMAC-SHA256 of `body` under `secret`, in constant time.
fn signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(given) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

/// Takes Alertmanager's webhook (version 4). Answers 200 with what each alert did once the
/// incidents are stored (the decisions follow in the agent's worker); 4xx, with the field named,
/// for a bad payload or credential; 5xx only when nothing could be stored, so Alertmanager's
/// retry is right.
pub async fn post_alerts(
    state: web::Data<AppState>,
    req: HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let settings = &state.settings.agent;
    let signature = match req.headers().get_all(SIGNATURE_HEADER).count() {
        0 => None,
        1 => Some(
            req.headers()
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| {
                    AppError::BadRequest(format!("the {SIGNATURE_HEADER} header is not text"))
                })?,
        ),
        _ => {
            return Err(AppError::BadRequest(format!(
                "the {SIGNATURE_HEADER} header is given twice"
            )));
        }
    };
    let mut actor = "alertmanager:signed".to_owned();
    if signature.is_none() {
        // A token (or a session with its CSRF token) is checked before the body is read.
        let identity = crate::http::identity::resolve(&req).await?;
        let user = identity.require(settings.alerts_role())?;
        actor = format!("user:{}", user.username);
    } else if settings.webhook_secret.expose_secret().is_empty() {
        return Err(AppError::Unauthenticated(
            "signed alerts are not accepted here (agent.webhook_secret is not set); send a bearer token"
                .into(),
        ));
    }
    if crate::http::body::mime(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "send the alerts as application/json".into(),
        ));
    }
    let limit = settings.body_limit_bytes;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::new();
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| AppError::BadRequest(format!("reading the body: {e}")))?;
            if body.len() + chunk.len() > limit {
                return Err(AppError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    tokio::time::timeout(
        std::time::Duration::from_secs(state.settings.serving.body_read_secs),
        read,
    )
    .await
    .map_err(|_| AppError::Timeout("the body did not arrive in time".into()))??;
    if let Some(sig) = &signature {
        if !signature_ok(settings.webhook_secret.expose_secret(), &body, sig) {
            return Err(AppError::Unauthenticated(format!(
                "the {SIGNATURE_HEADER} signature does not match the body"
            )));
        }
    }
    let parsed: WebhookBody = parse_object(&body)?;
    let alerts = intake::parse_webhook(
        parsed,
        &state.settings.registry.model,
        settings.max_alerts_per_request,
        &actor,
    )?;
    let count = alerts.len();
    // One transaction for the whole call: a 5xx means nothing was taken.
    let taken = agent::take(&state.db, &state.settings, alerts)
        .await
        .map_err(|e| match e {
            e @ (AppError::Unavailable(_) | AppError::Overloaded { .. }) => e,
            other => {
                tracing::error!(error = %other, %actor, "alerts not stored");
                AppError::Unavailable(
                    "the alerts could not be stored; nothing was taken, retry".into(),
                )
            }
        })?;
    state.agent.nudge();
    let tally = |t: Taken| taken.iter().filter(|(_, k)| *k == t).count();
    let incidents: Vec<&str> = taken.iter().filter_map(|(id, _)| id.as_deref()).collect();
    Ok(HttpResponse::Ok().json(json!({
        "alerts": count,
        "opened": tally(Taken::Opened),
        "repeated": tally(Taken::Repeated),
        "resolved": tally(Taken::Resolved),
        "ignored": tally(Taken::Ignored),
        "incidents": incidents,
    })))
}

fn check_limit(limit: Option<i64>) -> Result<i64, AppError> {
    let limit = limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(AppError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIST}"),
        ));
    }
    Ok(limit)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub status: Option<String>,
    pub limit: Option<i64>,
}

/// Incidents, newest first (`?status=open|resolved`).
pub async fn list_incidents(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<IncidentQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let IncidentQuery { status, limit } = query.into_inner();
    let limit = check_limit(limit)?;
    if let Some(s) = &status {
        if !matches!(s.as_str(), "open" | "resolved") {
            return Err(AppError::validation("status", "must be open or resolved"));
        }
    }
    let rows = state
        .db
        .run(move |conn| store::list_incidents(conn, status.as_deref(), limit))
        .await?;
    // Lists carry no labels or evidence (one incident's page has them): a list's size follows
    // its length, not what senders put in their alerts.
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.remove("labels_json");
                o.remove("evidence_json");
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(rows))
}

/// One incident with its timeline: decisions, approvals, actions, notifications.
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
    let detail = state
        .db
        .run(move |conn| store::incident_detail(conn, &id))
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionQuery {
    pub action: Option<String>,
    pub limit: Option<i64>,
}

/// Decisions, newest first (`?action=retrain`), each with the rule that matched and why the
/// earlier ones did not.
pub async fn list_decisions(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<DecisionQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let DecisionQuery { action, limit } = query.into_inner();
    let limit = check_limit(limit)?;
    if let Some(a) = &action {
        if a.parse::<policy::Action>().is_err() {
            return Err(AppError::validation(
                "action",
                "must be one of retrain, promote, rollback, notify, quarantine, validate, noop",
            ));
        }
    }
    let rows = state
        .db
        .run(move |conn| store::list_decisions(conn, action.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalQuery {
    pub status: Option<String>,
    pub limit: Option<i64>,
}

/// Approval requests, newest first (`?status=pending|approved|rejected|expired`).
pub async fn list_approvals(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<ApprovalQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let ApprovalQuery { status, limit } = query.into_inner();
    let limit = check_limit(limit)?;
    if let Some(s) = &status {
        if !matches!(s.as_str(), "pending" | "approved" | "rejected" | "expired") {
            return Err(AppError::validation(
                "status",
                "must be pending, approved, rejected or expired",
            ));
        }
    }
    let rows = state
        .db
        .run(move |conn| store::list_approvals(conn, status.as_deref(), limit))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    #[serde(default)]
    pub comment: String,
}

async fn answer(
    state: web::Data<AppState>,
    identity: Identity,
    id: String,
    body: AnswerBody,
    approve: bool,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(AppError::NotFound("no such approval request".into()));
    }
    let actor = format!("user:{}", user.username);
    let approval = state
        .db
        .run(move |conn| agent::answer(conn, &id, approve, &actor, &body.comment))
        .await?;
    state.agent.nudge();
    Ok(HttpResponse::Ok().json(approval))
}

/// Approves a pending request; its action runs once, in the agent's worker.
pub async fn approve(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    body: OptionalJson<AnswerBody>,
) -> Result<HttpResponse, AppError> {
    answer(state, identity, path.into_inner(), body.0, true).await
}

/// Rejects a pending request; nothing runs.
pub async fn reject(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    body: OptionalJson<AnswerBody>,
) -> Result<HttpResponse, AppError> {
    answer(state, identity, path.into_inner(), body.0, false).await
}

/// The agent's switches and counts.
pub async fn get_status(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let settings = state.settings.clone();
    let status = state
        .db
        .run(move |conn| agent::status(conn, &settings))
        .await?;
    Ok(HttpResponse::Ok().json(status))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {}

async fn switch(
    state: web::Data<AppState>,
    identity: Identity,
    paused: bool,
) -> Result<HttpResponse, AppError> {
    // Stopping the agent is for anyone who may act; starting it again is for admins.
    let user = identity.require(if paused { Role::Approver } else { Role::Admin })?;
    let actor = format!("user:{}", user.username);
    let settings = state.settings.clone();
    let status = state
        .db
        .run(move |conn| {
            agent::set_paused(conn, &settings, paused, &actor)?;
            agent::status(conn, &settings)
        })
        .await?;
    state.agent.nudge();
    Ok(HttpResponse::Ok().json(status))
}

/// The kill switch on: no new decision or action starts (one running ends).
pub async fn pause(
    state: web::Data<AppState>,
    identity: Identity,
    _body: OptionalJson<SwitchBody>,
) -> Result<HttpResponse, AppError> {
    switch(state, identity, true).await
}

/// The kill switch off (admins).
pub async fn resume(
    state: web::Data<AppState>,
    identity: Identity,
    _body: OptionalJson<SwitchBody>,
) -> Result<HttpResponse, AppError> {
    switch(state, identity, false).await
}

/// The policy as loaded: the rules, and the same text `steward agent policy --explain` prints.
pub async fn get_policy(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let a = &state.settings.agent;
    Ok(HttpResponse::Ok().json(json!({
        "rules": a.rules,
        "explain": policy::explain(a),
        "dry_run": a.dry_run,
        "cooldown_minutes": a.cooldown_minutes,
        "max_actions_per_hour": a.max_actions_per_hour,
        "approval_ttl_hours": a.approval_ttl_hours,
        "rollback_window_hours": a.rollback_window_hours,
        "promotion_metric": a.promotion_metric,
        "promotion_margin": a.promotion_margin,
        "min_labels": a.min_labels,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    pub limit: Option<i64>,
}

/// Notifications the agent wrote, newest first.
pub async fn list_notifications(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let limit = check_limit(query.into_inner().limit)?;
    let rows = state
        .db
        .run(move |conn| store::list_notifications(conn, limit))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

/// The agent's actions, newest first.
pub async fn list_actions(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let limit = check_limit(query.into_inner().limit)?;
    let rows = state
        .db
        .run(move |conn| store::list_actions(conn, limit))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[cfg(test)]
mod tests {
    use super::signature_ok;

    #[test]
    fn signatures_are_checked_over_the_body() {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"0123456789abcdef").expect("key");
        mac.update(b"{}");
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert!(signature_ok("0123456789abcdef", b"{}", &sig));
        assert!(!signature_ok("0123456789abcdef", b"{ }", &sig));
        assert!(!signature_ok("another-secret-xx", b"{}", &sig));
        assert!(!signature_ok("0123456789abcdef", b"{}", "sha1=00"));
    }
}
