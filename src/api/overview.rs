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
