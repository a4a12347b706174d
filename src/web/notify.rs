//! The Notifications page (the outbox with each delivery's status, the channels with a test
//! button, a retry for failed deliveries, the reports to download) and the signed approval
//! links that messages carry.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, html};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::hx::HxRequest;
use crate::notify::{self, links, store};
use crate::state::AppState;

/// One delivery, formatted: (channel, kind, status, attempts, next try or sent, last error, id).
pub struct DeliveryRow {
    pub id: String,
    pub channel: String,
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub when: String,
    pub error: String,
}

pub struct EventRow {
    pub when: String,
    pub kind: String,
    pub severity: String,
    pub subject: String,
    pub link: String,
    pub attachment: String,
    pub routed: bool,
    pub deliveries: Vec<DeliveryRow>,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    chrome: Chrome,
    enabled: bool,
    /// (name, kind, target)
    channels: Vec<(String, String, String)>,
    /// (events, channels, min severity)
    routes: Vec<(String, String, String)>,
    events: Vec<EventRow>,
    waiting: i64,
    failed: i64,
    status: String,
    is_admin: bool,
    production: Option<i32>,
    weekly_cron: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub status: Option<String>,
}

fn when(t: &chrono::NaiveDateTime) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub async fn get_notifications(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let (status, _) = store::check_list(query.into_inner().status.filter(|s| !s.is_empty()), 100)?;
    let filter = status.clone();
    let model = state.settings.registry.model.clone();
    let (entries, (waiting, failed), production) = state
        .db
        .run(move |conn| {
            Ok((
                store::list(conn, filter.as_deref(), 100)?,
                store::counts(conn)?,
                crate::registry::production(conn, &model)?.map(|v| v.version),
            ))
        })
        .await?;
    let n = &state.settings.notify;
    let page = NotificationsPage {
        chrome: Chrome::new(&identity, "/notifications"),
        enabled: n.enabled,
        channels: n
            .channels
            .iter()
            .map(|c| (c.name().to_owned(), c.kind().to_owned(), c.target()))
            .collect(),
        routes: n
            .routes
            .iter()
            .map(|r| {
                (
                    r.events.join(", "),
                    r.channels.join(", "),
                    r.min_severity.clone(),
                )
            })
            .collect(),
        events: entries
            .into_iter()
            .map(|e| EventRow {
                when: when(&e.notification.created_at),
                kind: e.notification.kind.clone(),
                severity: e.notification.severity.clone(),
                subject: e.notification.subject.clone(),
                link: e
                    .notification
                    .link
                    .clone()
                    .filter(|l| l.starts_with('/') && !l.starts_with("//"))
                    .unwrap_or_default(),
                attachment: e.notification.attachment_name.clone().unwrap_or_default(),
                routed: e.notification.routed_at.is_some(),
                deliveries: e
                    .deliveries
                    .into_iter()
                    .map(|d| DeliveryRow {
                        when: match (&d.sent_at, d.status.as_str()) {
                            (Some(t), _) => format!("sent {}", when(t)),
                            (None, "pending") => format!("next try {}", when(&d.next_attempt_at)),
                            _ => String::new(),
                        },
                        id: d.id,
                        channel: d.channel,
                        kind: d.channel_kind,
                        status: d.status,
                        attempts: d.attempts,
                        error: d.last_error.unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
        waiting,
        failed,
        status: status.unwrap_or_default(),
        is_admin: identity.require(Role::Admin).is_ok(),
        production,
        weekly_cron: state.settings.reports.weekly_cron.clone(),
    };
    Ok(html(page.render()?))
}

fn back(hx: &HxRequest) -> HttpResponse {
    if hx.0 {
        return HttpResponse::Ok()
            .insert_header(("HX-Redirect", "/notifications"))
            .finish();
    }
    HttpResponse::SeeOther()
        .insert_header(("Location", "/notifications"))
        .finish()
}

/// "Send a test" on a channel (admins): sent now, recorded in the outbox.
pub async fn post_test(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Admin)?;
    let actor = format!("user:{}", user.username);
    let channel = path.into_inner();
    if state.settings.notify.channel(&channel).is_none() {
        return Err(AppError::NotFound("no such channel".into()));
    }
    let (db, blobs, settings) = (
        state.db.clone(),
        state.blobs.clone(),
        state.settings.clone(),
    );
    tokio::task::spawn_blocking(move || {
        notify::send_test(&db, blobs.as_ref(), &settings, &channel, &actor)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("test send: {e}")))??;
    Ok(back(&hx))
}

/// "Retry" on a failed delivery (admins).
pub async fn post_retry(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Admin)?;
    let actor = format!("user:{}", user.username);
    let id = path.into_inner();
    state
        .db
        .run(move |conn| store::retry_audited(conn, &id, &actor))
        .await?;
    Ok(back(&hx))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkQuery {
    pub expires: i64,
    pub sig: String,
}

/// A signed approval link from a message: valid, it opens the request on the Approvals page
/// (which asks for a login first); changed or expired, it says so and opens nothing.
pub async fn get_approval_link(
    path: web::Path<String>,
    query: web::Query<LinkQuery>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let q = query.into_inner();
    // An approval id is a UUID; anything else never had a signature.
    if uuid::Uuid::parse_str(&id).is_err() || q.sig.len() != 64 {
        return Err(AppError::Forbidden(
            "this approval link is not valid; open the Approvals page instead".into(),
        ));
    }
    match links::verify(&id, q.expires, &q.sig) {
        Ok(()) => Ok(HttpResponse::SeeOther()
            .insert_header(("Location", format!("/approvals#approval-{id}")))
            .finish()),
        Err(links::LinkError::Expired) => Err(AppError::Forbidden(
            "this approval link has expired; open the Approvals page instead".into(),
        )),
        Err(links::LinkError::Invalid) => Err(AppError::Forbidden(
            "this approval link is not valid; open the Approvals page instead".into(),
        )),
    }
}
