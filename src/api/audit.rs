use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::audit;
use crate::auth::Identity;
use crate::error::AppError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

/// Newest first; page back with `?before=<seq>`.
pub async fn list_audit(
    state: web::Data<AppState>,
    identity: Identity,
    page: web::Query<Page>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let Page { limit, before } = page.into_inner();
    let events = state
        .db
        .run(move |conn| audit::list(conn, limit.unwrap_or(100), before))
        .await?;
    Ok(HttpResponse::Ok().json(events))
}

pub async fn verify_audit(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let report = state.db.run(audit::verify).await?;
    Ok(HttpResponse::Ok().json(report))
}
