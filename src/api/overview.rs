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
    let leases = state.db.run(crate::db::lease::list).await?;
    let now = crate::db::now();
    let leases: Vec<serde_json::Value> = leases
        .into_iter()
        .map(|l| {
            serde_json::json!({
                "name": l.name,
                "holder": if admin && !l.holder.is_empty() { Some(l.holder) } else { None },
                "held": l.expires_at >= now,
                "expires_at": l.expires_at,
                "last_started_at": (l.runs > 0).then_some(l.started_at),
                "runs": l.runs,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "role": state.settings.server.role.as_str(),
        "holder": if admin { Some(crate::tracking::owner()) } else { None },
        "agent_leading": state.agent.is_leading(),
        "lease_secs": state.settings.scheduler.lease_secs,
        "leases": leases,
    })))
}
