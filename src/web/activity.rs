//! Agent activity: the audit feed, newest first, polled live by htmx. The agent's decisions and
//! actions will land here beside the user and configuration events recorded today.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, when};
use crate::audit::{self, AuditEvent};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;

/// An audit event as the dashboard shows it.
pub struct EventView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub change: String,
    pub hash: String,
}

impl EventView {
    /// The event as `reader` may see it: configuration, user, token and login details are for
    /// admins; others see that the event happened.
    pub fn new(e: &AuditEvent, admin: bool) -> Self {
        let change = if audit::is_admin_only(&e.action) && !admin {
            "(details are shown to admins)".to_owned()
        } else {
            match (&e.before_json, &e.after_json) {
                (Some(b), Some(a)) => format!("{b} → {a}"),
                (None, Some(a)) => a.clone(),
                (Some(b), None) => format!("{b} → (none)"),
                (None, None) => String::new(),
            }
        };
        EventView {
            seq: e.seq,
            at: when(&e.created_at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            change,
            hash: e.hash.chars().take(12).collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "activity_partial.html")]
struct ActivityPartial {
    events: Vec<EventView>,
    older: Option<i64>,
}

/// The full page also walks the hash chain; the 10-second poll only fetches the newest events,
/// so an open tab does not re-verify the whole log every time.
#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    verification: audit::Verification,
    partial: ActivityPartial,
}

#[derive(Deserialize)]
pub struct Paging {
    before: Option<i64>,
}

pub async fn get_activity(
    state: web::Data<AppState>,
    identity: Identity,
    paging: web::Query<Paging>,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let before = paging.before;
    let events = state
        .db
        .run(move |conn| audit::list(conn, PAGE_SIZE, before))
        .await?;
    let older = (events.len() as i64 == PAGE_SIZE)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let admin = identity.has(Role::Admin);
    let partial = ActivityPartial {
        events: events.iter().map(|e| EventView::new(e, admin)).collect(),
        older,
    };
    let verification = if hx.0 {
        None
    } else {
        let cache = state.audit_verified.clone();
        Some(state.db.run(move |conn| cache.verify(conn)).await?)
    };
    page_or_partial(hx, partial, |partial| match verification {
        Some(verification) => ActivityPage {
            chrome: Chrome::new(&identity, "/activity"),
            verification,
            partial,
        }
        .render(),
        None => partial.render(),
    })
}
