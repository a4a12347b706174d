use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::audit;
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

/// Newest first; page back with `?before=<seq>`. The actor, subject and before/after of
/// configuration, user, token and login events are for admins: others get the event with them
/// left out and `redacted: true` (the hashes still let anyone check the chain with the admin's copy).
pub async fn list_audit(
    state: web::Data<AppState>,
    identity: Identity,
    page: web::Query<Page>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let Page { limit, before } = page.into_inner();
    let events = state
        .db
        .run(move |conn| audit::list(conn, limit.unwrap_or(100), before))
        .await?;
    let admin = identity.has(Role::Admin);
    let shown: Vec<serde_json::Value> = events
        .into_iter()
        .map(|mut e| {
            let redacted = audit::redact(&mut e, admin);
            let mut value = serde_json::to_value(&e).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.insert("redacted".into(), redacted.into());
            }
            value
        })
        .collect();
    Ok(HttpResponse::Ok().json(shown))
}

/// Verifies the chain from the last position verified intact (the whole chain the first
/// time), reading the head first: appends made meanwhile are left for the next call.
pub async fn verify_audit(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let cache = state.audit_verified.clone();
    let report = state.db.run(move |conn| cache.verify(conn)).await?;
    Ok(HttpResponse::Ok().json(report))
}
