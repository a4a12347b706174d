//! What the store holds, at a glance: the data behind the Overview page and `GET /api/v1/overview`.
//! Each capability adds its counts here (monitoring's alerts, the agent's incidents and approvals).

use serde::Serialize;

use crate::auth::{sessions, tokens, users};
use crate::data::catalog;
use crate::db::{self, Backend, DbConnection};
use crate::error::AppError;
use crate::{audit, registry, state::AppState, tracking};

#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub version: &'static str,
    pub backend: Backend,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub uptime_secs: i64,
    pub migrations: Vec<String>,
    pub users: i64,
    pub active_tokens: i64,
    pub live_sessions: i64,
    pub audit_events: i64,
    pub dataset: DatasetOverview,
    pub model: ModelOverview,
    pub recent_events: Vec<audit::AuditEvent>,
    /// Monitoring's open alerts (those of the newest completed check).
    pub open_alerts: Vec<crate::monitoring::check::StoredAlert>,
    /// The newest check: when, its status and drift share.
    pub last_check: Option<crate::monitoring::check::CheckSummary>,
    /// The agent's open incidents (newest 10) and pending approval requests (newest 10).
    pub open_incidents: Vec<crate::agent::store::Incident>,
    pub pending_approvals: Vec<crate::agent::store::Approval>,
    /// The kill switch.
    pub agent_paused: bool,
}

/// The configured dataset: its version count, current version and that version's validation.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetOverview {
    pub name: String,
    pub versions: usize,
    pub current_version: Option<i32>,
    pub current_rows: Option<i64>,
    pub validation: Option<String>,
}

/// The registered model: its Production version and how many runs were tracked.
#[derive(Debug, Clone, Serialize)]
pub struct ModelOverview {
    pub name: String,
    pub versions: usize,
    pub production: Option<i32>,
    pub production_kind: Option<String>,
    pub production_roc_auc: Option<f64>,
    pub runs: i64,
}

/// What the store holds. `admin` says whether the reader may see the details of admin-only
/// audit events ([`audit::is_admin_only`]).
pub async fn collect(state: &AppState, admin: bool) -> Result<Overview, AppError> {
    let backend = state.db.backend();
    let dataset_name = state.settings.dataset.name.clone();
    let started_at = state.started_at;
    let model_name = state.settings.registry.model.clone();
    let settings = state.settings.clone();
    state
        .db
        .run(move |conn: &mut DbConnection| {
            Ok(Overview {
                version: env!("CARGO_PKG_VERSION"),
                backend,
                started_at,
                uptime_secs: (chrono::Utc::now() - started_at).num_seconds(),
                migrations: db::applied_migrations(conn)?,
                users: users::count(conn)?,
                active_tokens: tokens::count_active(conn)?,
                live_sessions: sessions::count_live(conn)?,
                audit_events: audit::count(conn)?,
                dataset: {
                    let versions = catalog::list_versions(conn, &dataset_name)?;
                    let current = catalog::current_version(conn, &dataset_name)?;
                    // Only the current version's newest run, not every run's stored result.
                    let validation = match &current {
                        Some(v) => catalog::runs_for_version(conn, &dataset_name, v.version)?
                            .first()
                            .map(|r| r.status().to_owned()),
                        None => None,
                    };
                    DatasetOverview {
                        versions: versions.len(),
                        current_version: current.as_ref().map(|v| v.version),
                        current_rows: current.as_ref().map(|v| v.row_count),
                        validation,
                        name: dataset_name,
                    }
                },
                model: {
                    let versions = registry::list_versions(conn, &model_name)?;
                    let production = versions
                        .iter()
                        .find(|v| v.stage == registry::Stage::Production.as_str());
                    ModelOverview {
                        versions: versions.len(),
                        production: production.map(|v| v.version),
                        production_kind: production.map(|v| v.model_kind.clone()),
                        production_roc_auc: production
                            .and_then(|v| v.metrics().get("cv_roc_auc_mean").copied()),
                        runs: tracking::list_experiments(conn)?
                            .iter()
                            .map(|e| e.runs)
                            .sum(),
                        name: model_name.clone(),
                    }
                },
                open_alerts: crate::monitoring::check::open_alerts(conn, &model_name)?,
                last_check: crate::monitoring::check::list(conn, 1)?.into_iter().next(),
                open_incidents: crate::agent::store::list_incidents(conn, Some("open"), 10)?,
                pending_approvals: crate::agent::store::list_approvals(conn, Some("pending"), 10)?,
                agent_paused: crate::agent::is_paused(conn, &settings)?,
                recent_events: {
                    let mut events = audit::list(conn, 10, None)?;
                    audit::redact_for(&mut events, admin);
                    events
                },
            })
        })
        .await
}

/// The replicas' division of work ([`crate::db::lease`]), as `GET /api/v1/scheduler`, the
/// Overview page and `steward jobs` show it.
#[derive(Debug, Clone, Serialize)]
pub struct SchedulerView {
    /// This process's `server.role` (`all`, `api`, `worker`); `None` from the CLI.
    pub role: Option<&'static str>,
    /// This process's holder id (`host:pid:start`), for admins.
    pub holder: Option<String>,
    /// Whether this process runs the agent now (holds its lease).
    pub agent_leading: bool,
    pub lease_secs: u64,
    pub leases: Vec<LeaseView>,
}

/// One lease: `job:<name>` for a scheduled job of the store, `agent` for the agent.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseView {
    pub name: String,
    /// Who holds it or ran it last (host and pid), for admins; `None` otherwise or never.
    pub holder: Option<String>,
    /// A run (or the agent) holds it now.
    pub held: bool,
    pub expires_at: chrono::NaiveDateTime,
    /// When its latest run started; `None` before the first.
    pub last_started_at: Option<chrono::NaiveDateTime>,
    pub runs: i64,
}

/// The leases in the store, shaped for `admin` or not (holder ids name hosts and pids).
///
/// Errors: the store's.
pub fn leases(conn: &mut DbConnection, admin: bool) -> Result<Vec<LeaseView>, AppError> {
    let now = db::now();
    Ok(db::lease::list(conn)?
        .into_iter()
        .map(|l| LeaseView {
            holder: (admin && !l.holder.is_empty()).then_some(l.holder),
            held: l.expires_at >= now,
            last_started_at: (l.runs > 0).then_some(l.started_at),
            name: l.name,
            expires_at: l.expires_at,
            runs: l.runs,
        })
        .collect())
}

/// This process's [`SchedulerView`].
///
/// Errors: the store's.
pub async fn scheduler(state: &AppState, admin: bool) -> Result<SchedulerView, AppError> {
    let leases = state.db.run(move |conn| leases(conn, admin)).await?;
    Ok(SchedulerView {
        role: Some(state.settings.server.role.as_str()),
        holder: admin.then(crate::tracking::lease_holder),
        agent_leading: state.agent.is_leading(),
        lease_secs: state.settings.scheduler.lease_secs,
        leases,
    })
}
