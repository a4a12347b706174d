//! `AppState`: what every handler, job and (later) the agent share inside one process.

use std::sync::Arc;

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::Db;
use crate::telemetry::Telemetry;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    /// Content-addressed artifacts: dataset files now, model artifacts later.
    pub blobs: Arc<dyn BlobStore>,
    pub telemetry: Telemetry,
    pub login_throttle: Arc<LoginThrottle>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}
