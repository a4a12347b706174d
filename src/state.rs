//! `AppState`: what every handler, job and (later) the agent share inside one process.

use std::sync::Arc;

use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::Db;
use crate::serving::Serving;
use crate::telemetry::Telemetry;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    /// Content-addressed artifacts: dataset files now, model artifacts later.
    pub blobs: Arc<dyn BlobStore>,
    pub telemetry: Telemetry,
    pub login_throttle: Arc<LoginThrottle>,
    /// The production model's slot, the request schema and the prediction log.
    pub serving: Arc<Serving>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    /// Brings the serving slot in line with the registry right away, after a promotion or a
    /// rollback in this process. A refused model is logged; the slot keeps what it had.
    pub async fn refresh_serving(&self) {
        if let Err(e) = self.serving.refresh(&self.db, self.blobs.clone()).await {
            tracing::error!(error = %e, "the serving slot kept its model");
        }
    }
}
