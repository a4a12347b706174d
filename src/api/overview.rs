use actix_web::{HttpResponse, web};

use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::overview;
use crate::state::AppState;

pub async fn get_overview(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let admin = identity.has(Role::Admin);
    Ok(HttpResponse::Ok().json(overview::collect(&state, admin).await?))
}

/// The effective configuration, secrets masked. Admins only: it describes the deployment.
pub async fn get_settings(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    Ok(HttpResponse::Ok().json(state.settings.redacted()))
}

/// The replicas' division of work: this process's role and holder id, and every lease in the
/// store (`job:<name>` for a scheduled job, `agent`) with its holder, expiry and runs so far.
/// Holder ids name a host and pid, so they are for admins; others see `holder: null`.
pub async fn get_scheduler(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let admin = identity.has(Role::Admin);
    Ok(HttpResponse::Ok().json(overview::scheduler(&state, admin).await?))
}
