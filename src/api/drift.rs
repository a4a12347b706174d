//! Monitoring over the API: run a check now, read the stored checks and the open alerts.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::body::OptionalJson;
use crate::monitoring::check;
use crate::state::AppState;

/// Most checks one list answers.
const MAX_LIST: i64 = 500;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RunBody {}

/// Runs a check of the Production version now and answers it whole (the shape of
/// `steward drift run --json`). 409 when nothing is in Production; 503 while a check runs.
pub async fn run_check(
    state: web::Data<AppState>,
    identity: Identity,
    _body: OptionalJson<RunBody>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    let report = state
        .run_drift_check("manual", format!("user:{}", user.username))
        .await?;
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
}

/// Stored checks, newest first (summaries; `GET /api/v1/drift/checks/{id}` has the whole).
pub async fn list_checks(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(AppError::validation(
            "limit",
            format!("must be between 1 and {MAX_LIST}"),
        ));
    }
    let checks = state.db.run(move |conn| check::list(conn, limit)).await?;
    Ok(HttpResponse::Ok().json(checks))
}

/// One stored check, whole.
pub async fn get_check(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // Example values of patients' features: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let id = path.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(AppError::NotFound("no such drift check".into()));
    }
    let report = state.db.run(move |conn| check::get(conn, &id)).await?;
    Ok(HttpResponse::Ok().json(report))
}

/// The alerts of the Production version's newest completed check (open until a later check no
/// longer raises them).
pub async fn list_alerts(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let model = state.settings.registry.model.clone();
    let alerts = state
        .db
        .run(move |conn| check::open_alerts(conn, &model))
        .await?;
    Ok(HttpResponse::Ok().json(alerts))
}
