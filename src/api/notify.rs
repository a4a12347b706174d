//! Notifications and reports over JSON and files: the outbox (events with their deliveries), the
//! channels as configured (never their secrets), a test send, a retry of a failed delivery, and
//! the reports as HTML or PDF downloads.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::body::{OptionalJson, StrictJson};
use crate::notify::{self, store};
use crate::reports::{self, Format, Report};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    /// pending (with sending), sent or failed.
    pub status: Option<String>,
    pub limit: Option<i64>,
}

/// The outbox, newest first: each event with its deliveries (channel, status, attempts, last
/// error, next attempt).
pub async fn list_outbox(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<OutboxQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let q = query.into_inner();
    let (status, limit) = store::check_list(q.status, q.limit.unwrap_or(50))?;
    let (rows, (waiting, failed)) = state
        .db
        .run(move |conn| {
            Ok((
                store::list(conn, status.as_deref(), limit)?,
                store::counts(conn)?,
            ))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({
        "waiting": waiting,
        "failed": failed,
        "notifications": rows,
    })))
}

/// The configured channels and routes: names, kinds and where they send, never a secret.
pub async fn list_channels(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let n = &state.settings.notify;
    Ok(HttpResponse::Ok().json(json!({
        "enabled": n.enabled,
        "channels": n.channels.iter().map(|c| json!({
            "name": c.name(),
            "kind": c.kind(),
            "target": c.target(),
        })).collect::<Vec<_>>(),
        "routes": n.routes,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    pub channel: String,
}

/// Sends a test message to one channel now (admins), recorded in the outbox and audited.
/// Answers with the delivery's status (sent, pending: it will be retried, failed) and error.
pub async fn test_channel(
    state: web::Data<AppState>,
    identity: Identity,
    body: StrictJson<TestBody>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Admin)?;
    let actor = format!("user:{}", user.username);
    let channel = body.into_inner().channel;
    if state.settings.notify.channel(&channel).is_none() {
        return Err(AppError::NotFound(format!(
            "no channel `{}` in notify.channels",
            crate::error::bounded(&channel, 64)
        )));
    }
    let (db, blobs, settings) = (
        state.db.clone(),
        state.blobs.clone(),
        state.settings.clone(),
    );
    let (delivery, status, error) = tokio::task::spawn_blocking(move || {
        notify::send_test(&db, blobs.as_ref(), &settings, &channel, &actor)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("test send: {e}")))??;
    Ok(HttpResponse::Ok().json(json!({
        "delivery": delivery.id,
        "channel": delivery.channel,
        "status": status,
        "error": error,
    })))
}

/// No body, or `{}`: anything else is refused.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// A failed delivery back to pending, due now (admins); audited.
pub async fn retry_delivery(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    _body: OptionalJson<NoBody>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Admin)?;
    let actor = format!("user:{}", user.username);
    let id = path.into_inner();
    let row = state
        .db
        .run(move |conn| store::retry_audited(conn, &id, &actor))
        .await?;
    Ok(HttpResponse::Ok().json(row))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// html (default) or pdf.
    pub format: Option<String>,
    /// The weekly summary's end, UTC (`2026-11-30T08:00:00`); now by default.
    pub end: Option<String>,
}

fn format_of(q: &ReportQuery) -> Result<Format, AppError> {
    match q.format.as_deref() {
        None => Ok(Format::Html),
        Some(f) => {
            Format::parse(f).ok_or_else(|| AppError::validation("format", "must be html or pdf"))
        }
    }
}

/// Builds and renders a report behind the report gate (`reports.concurrency` at once; others
/// wait up to 10 s, then 503), on the blocking pool.
pub async fn render_report(
    state: &AppState,
    report: Report,
    format: Format,
) -> Result<HttpResponse, AppError> {
    let turn = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.report_gate.clone().acquire_owned(),
    )
    .await
    .map_err(|_| AppError::Overloaded {
        message: "reports are being rendered; try again shortly".into(),
        retry_after_secs: 5,
    })?
    .map_err(|e| AppError::Internal(anyhow::anyhow!("report gate: {e}")))?;
    let (blobs, model) = (state.blobs.clone(), state.settings.registry.model.clone());
    let name = report.file_name(&model, format);
    // The store is read with a connection; the layout runs without one.
    let doc = state
        .db
        .run(move |conn| reports::build(conn, blobs.as_ref(), &model, &report))
        .await?;
    let bytes = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        reports::render(&doc, format)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("report task: {e}")))??;
    let disposition = match format {
        Format::Pdf => format!("attachment; filename=\"{name}\""),
        Format::Html => format!("inline; filename=\"{name}\""),
    };
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header(("Content-Disposition", disposition))
        .body(bytes))
}

/// A model version's card (of the served model).
pub async fn model_card(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let q = query.into_inner();
    if q.end.is_some() {
        return Err(AppError::validation(
            "end",
            "only the weekly summary takes an end",
        ));
    }
    let format = format_of(&q)?;
    let version: i32 = path.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
        AppError::validation("version", "must be a version number, 1 to 2147483647")
    })?;
    render_report(&state, Report::ModelCard(version), format).await
}

/// A stored monitoring check's drift report.
pub async fn drift_report(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Viewer)?;
    let q = query.into_inner();
    if q.end.is_some() {
        return Err(AppError::validation(
            "end",
            "only the weekly summary takes an end",
        ));
    }
    let format = format_of(&q)?;
    let id = path.into_inner();
    if id.len() > 64 {
        return Err(AppError::validation("id", "must be a check id"));
    }
    render_report(&state, Report::Drift(id), format).await
}

/// The weekly summary of the seven days (7 × 24 h) before `end` (now by default).
pub async fn weekly_report(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let q = query.into_inner();
    let format = format_of(&q)?;
    let end = match &q.end {
        Some(e) => reports::parse_end(e)?,
        None => crate::db::now(),
    };
    render_report(&state, Report::Weekly(end), format).await
}
