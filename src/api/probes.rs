//! Liveness, readiness and metrics: open to every caller, as load balancers and Prometheus
//! expect.

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db;
use crate::state::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "probes", responses((status = 200, description = "{\"status\": \"ok\"}")))]
pub async fn get_health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// MLflow's scoring-server probe (`ScoringServerClient.wait_server_ready` polls it): 200 with
/// an empty body while a model is served, 503 before.
#[utoipa::path(get, path = "/ping", tag = "probes", responses(
    (status = 200, description = "A model is served (empty body)"),
    (status = 503, description = "No model is served yet"),
))]
pub async fn get_ping(state: web::Data<AppState>) -> HttpResponse {
    if state.serving.current().is_some() {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "error": "unavailable", "message": "no model is served yet" }))
    }
}

/// Steward's version as plain text, as MLflow's scoring server answers `/version` with its own.
#[utoipa::path(get, path = "/version", tag = "probes", responses((status = 200, description = "The version, e.g. 0.1.0")))]
pub async fn get_version() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(env!("CARGO_PKG_VERSION"))
}

/// Readiness: the store answers, every embedded migration is applied, and a model is loaded.
#[utoipa::path(get, path = "/ready", tag = "probes", responses(
    (status = 200, description = "Ready"),
    (status = 503, description = "Not ready; `checks` says which part"),
))]
pub async fn get_ready(state: web::Data<AppState>) -> HttpResponse {
    let pending = state
        .db
        .run(|conn| db::pending_migrations(conn).map_err(Into::into))
        .await;
    let (mut ready, database, migrations) = match pending {
        Ok(0) => (true, "ok".to_owned(), "ok".to_owned()),
        Ok(n) => (false, "ok".to_owned(), format!("{n} pending")),
        Err(e) => (false, e.to_string(), "unknown".to_owned()),
    };
    let name = state.settings.registry.model.clone();
    let registry_says = state
        .db
        .run(move |conn| crate::registry::production(conn, &name))
        .await
        .ok()
        .flatten();
    let model = match state.serving.current() {
        // Serving, but not what the registry says (a promotion by another process not picked
        // up yet, or a version that failed to load): still ready, and said.
        Some(m) if registry_says.as_ref().is_some_and(|p| p.id != m.version.id) => format!(
            "{} v{} (the registry's Production is v{}: the slot follows at its next refresh)",
            m.version.model,
            m.version.version,
            registry_says.map(|p| p.version).unwrap_or_default()
        ),
        Some(m) => format!("{} v{}", m.version.model, m.version.version),
        None => {
            ready = false;
            format!(
                "no version of {} in Production",
                state.settings.registry.model
            )
        }
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": { "database": database, "migrations": migrations, "model": model },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn get_metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut body = state.telemetry.render();
    let served = state.serving.current();
    body.push_str(&crate::serving::model_info_exposition(served.as_deref()));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}
