//! Liveness, readiness and metrics: open to every caller, as load balancers and Prometheus
//! expect.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: the store answers and every embedded migration is applied.
pub async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    let pending = state
        .db
        .run(|conn| db::pending_migrations(conn).map_err(Into::into))
        .await;
    let (ready, database, migrations) = match pending {
        Ok(0) => (true, "ok".to_owned(), "ok".to_owned()),
        Ok(n) => (false, "ok".to_owned(), format!("{n} pending")),
        Err(e) => (false, e.to_string(), "unknown".to_owned()),
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "migrations": migrations },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.telemetry.render())
}
