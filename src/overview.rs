//! What the store holds, at a glance: the data behind the Overview page and `GET /api/v1/overview`.
//! Later capabilities add their counts (datasets, runs, models, drift) here.

use serde::Serialize;

use crate::auth::{sessions, tokens, users};
use crate::db::{self, Backend, DbConnection};
use crate::error::AppError;
use crate::{audit, state::AppState};

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
    pub recent_events: Vec<audit::AuditEvent>,
}

pub async fn collect(state: &AppState) -> Result<Overview, AppError> {
    let backend = state.db.backend();
    let started_at = state.started_at;
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
                recent_events: audit::list(conn, 10, None)?,
            })
        })
        .await
}
