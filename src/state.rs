//! `AppState`: what every handler, job and (later) the agent share inside one process.

use std::sync::Arc;

use crate::audit::VerifiedPosition;
use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::Db;
use crate::serving::Serving;
use crate::telemetry::Telemetry;
use crate::training::TrainingGate;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    /// Content-addressed artifacts: dataset files and model artifacts.
    pub blobs: Arc<dyn BlobStore>,
    pub telemetry: Telemetry,
    pub login_throttle: Arc<LoginThrottle>,
    /// HTTP Basic pairs checked lately (MLflow's client sends them with every call).
    pub basic_auth: Arc<crate::auth::basic::BasicCache>,
    /// Room for MLflow artifact uploads held in memory at once (twice
    /// `storage.artifact_limit_bytes`).
    pub artifact_bodies: Arc<crate::http::body::BodyBudget>,
    /// MLflow searches at once (each reads many rows and holds a store connection).
    pub search_gate: Arc<tokio::sync::Semaphore>,
    /// Reports rendered at once (`reports.concurrency`).
    pub report_gate: Arc<tokio::sync::Semaphore>,
    /// Password checks (argon2) running at once, at most `auth.login_concurrency`.
    pub login_gate: Arc<tokio::sync::Semaphore>,
    /// `server.trusted_proxies`, parsed once.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The production model's slot, the request schema and the prediction log.
    pub serving: Arc<Serving>,
    /// One training at a time in this process.
    pub training_gate: Arc<TrainingGate>,
    /// How far the audit chain was last verified intact, so page views re-hash only what is new.
    pub audit_verified: Arc<VerifiedPosition>,
    /// Room for prediction bodies held at once (`serving.inflight_body_bytes`).
    pub serving_bodies: Arc<crate::http::body::BodyBudget>,
    /// One write of a token's last use at a time (see `http::identity`).
    pub token_touch_gate: Arc<tokio::sync::Semaphore>,
    /// Monitoring's checks and alert channel.
    pub monitor: Arc<crate::monitoring::Monitor>,
    /// The agent's wake-up call (its tasks run beside the scheduler).
    pub agent: Arc<crate::agent::Agent>,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

impl AppState {
    /// A blob's bytes, verified against its hash, read on the blocking pool holding no store
    /// connection: an S3 store may take its time (a try may last 5 minutes), and the pool's
    /// connections stay free for everyone else. For request handlers of both faces (API
    /// downloads, dashboard pages): find the hash on a connection, give it back, then read.
    /// At most 8 reads at once across the process; one that waits 10 s for its turn fails.
    ///
    /// Errors: `Overloaded` (retry after 5 s) when no turn comes; the blob store's (not found,
    /// corrupt, remote).
    pub async fn read_blob(&self, hash: String) -> Result<Vec<u8>, crate::error::AppError> {
        static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);
        let turn = tokio::time::timeout(std::time::Duration::from_secs(10), READS.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| crate::error::AppError::Overloaded {
                message: "too many artifact reads at once; retry shortly".into(),
                retry_after_secs: 5,
            })?;
        let blobs = self.blobs.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            blobs.get(&hash)
        })
        .await
        .map_err(|e| crate::error::AppError::Internal(anyhow::anyhow!("reading a blob: {e}")))?
        .map_err(crate::error::AppError::from)
    }

    /// What the agent's tasks and its API calls need of the process.
    pub fn agent_deps(&self) -> crate::agent::Deps {
        crate::agent::Deps {
            db: self.db.clone(),
            blobs: self.blobs.clone(),
            settings: self.settings.clone(),
            serving: self.serving.clone(),
            training_gate: self.training_gate.clone(),
        }
    }

    /// Runs a monitoring check of the Production version now (see
    /// [`crate::monitoring::Monitor::run_check`]), after letting the prediction log store its
    /// queue (at most `serving.log_wait_ms`; a slow store only makes the window older), so what
    /// was just predicted is in the window.
    pub async fn run_drift_check(
        &self,
        trigger: &'static str,
        actor: String,
    ) -> Result<crate::monitoring::check::CheckReport, crate::error::AppError> {
        let _ = self.serving.log.flush_within_wait().await;
        self.monitor
            .run_check(
                &self.db,
                self.blobs.clone(),
                self.settings.clone(),
                Some(self.serving.rejected_total()),
                trigger,
                actor,
            )
            .await
    }
}
