//! Building and running the one process: store, state, HTTP server and scheduler.
//!
//! `Application::build` binds its listener before anything serves, so port 0 works and tests
//! can ask which port they got. `run_until_stopped` drives the server and the jobs until a
//! shutdown signal, then drains in-flight requests and stops the jobs.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Service;
use actix_web::http::ConnectionType;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, NewEvent};
use crate::auth::accounts;
use crate::auth::sessions;
use crate::auth::throttle::LoginThrottle;
use crate::config::Settings;
use crate::data::{self, blob::BlobStore};
use crate::db::{self, Db};
use crate::error;
use crate::scheduler::{Scheduler, Scope};
use crate::serving::Serving;
use crate::serving::log::{Batching, PredictionLog};
use crate::serving::request::FeatureSchema;
use crate::state::AppState;
use crate::telemetry::{self, Telemetry};
use crate::{tracking, training};

/// How long one MLflow artifact upload may take to arrive (408 past it).
const ARTIFACT_READ_SECS: u64 = 600;
/// MLflow searches (runs, versions, models, experiments) run at once; more wait up to 5 s,
/// then get 503 with Retry-After.
const MLFLOW_SEARCHES: usize = 2;

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    state: AppState,
    scheduler: Scheduler,
    /// Set on shutdown: answers then close their keep-alive connection, so busy clients
    /// let go (and reconnect elsewhere) instead of holding the drain until its timeout.
    draining: Arc<AtomicBool>,
}

/// What preparing the store found, for the start-up log.
struct Prepared {
    db: Db,
    blobs: Arc<dyn BlobStore>,
    bootstrapped: Option<data::AddOutcome>,
    trained: Option<training::TrainOutcome>,
    interrupted_runs: Vec<String>,
    migrations_applied: Vec<String>,
    generated_admin_password: Option<String>,
    audit: audit::Prepared,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let telemetry = Telemetry::install()?;
        std::fs::create_dir_all(&settings.storage.dir).with_context(|| {
            format!(
                "cannot create storage.dir {}",
                settings.storage.dir.display()
            )
        })?;
        let settings = Arc::new(settings);
        let prepared = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || prepare_store(&settings)).await??
        };
        for version in &prepared.migrations_applied {
            tracing::info!(%version, "applied migration");
        }
        match &prepared.audit.source {
            audit::KeySource::Generated(path) => tracing::warn!(
                path = %path.display(),
                "generated the audit chain key; keep this file with the database's backups"
            ),
            audit::KeySource::File(path) => {
                tracing::info!(path = %path.display(), "audit chain key read")
            }
            audit::KeySource::Config => tracing::info!("audit chain key from audit.key"),
        }
        if let Some(seq) = prepared.audit.keyed_now {
            tracing::warn!(
                event = seq,
                "the audit chain verified intact and is keyed from this event on"
            );
        }
        metrics::gauge!(telemetry::AUDIT_CHAIN_INTACT).set(if prepared.audit.broken.is_some() {
            0.0
        } else {
            1.0
        });
        if let Some(added) = &prepared.bootstrapped {
            tracing::info!(
                dataset = %added.version.dataset,
                version = added.version.version,
                rows = added.version.row_count,
                validation = added.validation.as_ref().map(|r| r.status()).unwrap_or("not run"),
                "registered the bundled data set"
            );
        }
        for run in &prepared.interrupted_runs {
            tracing::warn!(%run, "marked an interrupted training run as failed");
        }
        if let Some(trained) = &prepared.trained {
            tracing::info!(
                dataset = %trained.dataset,
                version = trained.dataset_version,
                candidates = trained.candidates.len(),
                production = trained.registered.as_ref().map(|v| v.version),
                model = trained.registered.as_ref().map(|v| v.model_kind.as_str()),
                seconds = trained.seconds,
                "trained the first model and promoted it to Production"
            );
        }
        if let Some(password) = &prepared.generated_admin_password {
            show_generated_password(password, &settings.storage.dir)?;
        }

        let serving = Arc::new(Serving::new(
            settings.registry.model.clone(),
            FeatureSchema::from_dataset(&settings.dataset),
            PredictionLog::start(
                prepared.db.clone(),
                settings.serving.log_queue,
                Batching {
                    batch: settings.serving.log_batch,
                    linger: Duration::from_millis(settings.serving.log_linger_ms),
                    wait: Duration::from_millis(settings.serving.log_wait_ms),
                },
            )
            .context("starting the prediction-log writer")?,
            &settings.serving,
        ));
        // A refusal (say, a tampered artifact) is logged; /ready then says no model is loaded.
        if let Err(e) = serving.refresh(&prepared.db, prepared.blobs.clone()).await {
            tracing::error!(error = %e, "no model loaded");
        }
        let state = AppState {
            serving,
            login_throttle: Arc::new(LoginThrottle::new(settings.auth.login_attempts_per_minute)),
            basic_auth: Arc::new(crate::auth::basic::BasicCache::default()),
            artifact_bodies: Arc::new(crate::http::body::BodyBudget::new(
                settings.storage.artifact_limit_bytes.saturating_mul(2),
                Duration::from_secs(5),
                Duration::from_secs(ARTIFACT_READ_SECS),
            )),
            search_gate: Arc::new(tokio::sync::Semaphore::new(MLFLOW_SEARCHES)),
            report_gate: Arc::new(tokio::sync::Semaphore::new(settings.reports.concurrency)),
            login_gate: Arc::new(tokio::sync::Semaphore::new(settings.auth.login_concurrency)),
            trusted_proxies: Arc::new(settings.server.trusted_networks()),
            training_gate: Arc::new(training::TrainingGate::default()),
            token_touch_gate: Arc::new(tokio::sync::Semaphore::new(1)),
            monitor: Arc::new(crate::monitoring::Monitor::new()),
            agent: Arc::new(crate::agent::Agent::new()),
            serving_bodies: Arc::new(crate::http::body::BodyBudget::new(
                settings.serving.inflight_body_bytes,
                Duration::from_millis(settings.serving.offload_wait_ms),
                Duration::from_secs(settings.serving.body_read_secs),
            )),
            audit_verified: Arc::new(audit::VerifiedPosition::new(
                &settings.storage.dir,
                prepared.audit.broken.clone(),
            )),
            settings: settings.clone(),
            db: prepared.db,
            blobs: prepared.blobs,
            telemetry,
            started_at: chrono::Utc::now(),
        };

        let address = (settings.server.host.as_str(), settings.server.port);
        let listener = TcpListener::bind(address).with_context(|| {
            format!(
                "cannot listen on {}:{} (server.host, server.port)",
                settings.server.host, settings.server.port
            )
        })?;
        let port = listener.local_addr()?.port();
        let limit = settings.server.body_limit_bytes;
        let data = web::Data::new(state.clone());
        let draining = Arc::new(AtomicBool::new(false));
        let draining_flag = draining.clone();
        let mut server = HttpServer::new(move || {
            let draining = draining_flag.clone();
            App::new()
                .wrap_fn(move |req, service| {
                    let close = draining.load(Ordering::Relaxed);
                    let answer = service.call(req);
                    async move {
                        let mut response = answer.await?;
                        if close {
                            let head = response.response_mut().head_mut();
                            head.set_connection_type(ConnectionType::Close);
                        }
                        Ok(response)
                    }
                })
                .wrap(from_fn(crate::http::headers::json_errors))
                .wrap(from_fn(crate::http::headers::every_response))
                .wrap(Compress::default())
                .wrap(from_fn(telemetry::record_http))
                .app_data(data.clone())
                .app_data(web::QueryConfig::default().error_handler(error::query_error))
                .app_data(web::PathConfig::default().error_handler(error::path_error))
                .app_data(
                    web::JsonConfig::default()
                        .limit(limit)
                        .error_handler(move |e, _| error::json_error(e, limit)),
                )
                .app_data(
                    web::FormConfig::default()
                        .limit(limit)
                        .error_handler(move |e, _| error::form_error(e, limit)),
                )
                .app_data(web::PayloadConfig::new(limit))
                .configure(crate::api::routes)
                .configure(crate::web::routes)
        })
        .listen(listener)?
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let mut scheduler = Scheduler::default();
        register_jobs(&mut scheduler, &settings);

        Ok(Application {
            port,
            server: server.run(),
            state,
            scheduler,
            draining,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves (or the server stops by itself), then lets in-flight
    /// requests finish and stops the scheduled jobs.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let stop_jobs = CancellationToken::new();
        let role = self.state.settings.server.role;
        let mut jobs = if self.state.settings.scheduler.enabled {
            tracing::info!(jobs = ?self.scheduler.job_names(role), role = role.as_str(), "scheduler started");
            self.scheduler
                .start(self.state.clone(), stop_jobs.clone(), role)
        } else {
            tokio::task::JoinSet::new()
        };
        if self.state.settings.agent.enabled && role.works() {
            let deps = self.state.agent_deps();
            let agent = self.state.agent.clone();
            // Subscribed before anything runs, so no alert of the first check is missed.
            let alerts = self.state.monitor.subscribe();
            jobs.spawn(
                agent
                    .clone()
                    .listen(deps.clone(), alerts, stop_jobs.clone()),
            );
            jobs.spawn(agent.work(deps, stop_jobs.clone()));
            tracing::info!("agent started");
        }
        if self.state.settings.notify.enabled && role.works() {
            jobs.spawn(crate::notify::run_worker(
                self.state.db.clone(),
                self.state.blobs.clone(),
                self.state.settings.clone(),
                stop_jobs.clone(),
            ));
            tracing::info!(
                channels = self.state.settings.notify.channels.len(),
                "notification worker started"
            );
        }
        tracing::info!(
            port = self.port,
            backend = %self.state.db.backend(),
            artifacts = %self.state.blobs.describe(),
            role = role.as_str(),
            "steward is serving"
        );
        let handle = self.server.handle();
        let server = self.server;
        tokio::pin!(server);
        let outcome = tokio::select! {
            result = &mut server => result,
            () = shutdown => {
                tracing::info!("shutdown requested; draining in-flight requests");
                self.draining.store(true, Ordering::Relaxed);
                // The server future itself carries out the stop, so keep polling it.
                let (_, result) = tokio::join!(handle.stop(true), &mut server);
                result
            }
        }
        .context("HTTP server failed");
        // The audit head, outside the database, as the process leaves it (a tail cut while it
        // is down shows at the next start).
        let dir = self.state.settings.storage.dir.clone();
        let known_broken = self.state.audit_verified.is_broken();
        let recorded = self
            .state
            .db
            .run(move |conn| {
                if known_broken {
                    return Ok(());
                }
                audit::extend_head_record(conn, &dir)
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "recording the audit head at shutdown");
        }
        // No request is in flight now: store what the prediction log still holds, waiting
        // for the store at most server.shutdown_timeout_secs.
        let drain = Duration::from_secs(self.state.settings.server.shutdown_timeout_secs);
        match tokio::time::timeout(drain, self.state.serving.log.flush()).await {
            Ok(Ok(())) => tracing::info!("prediction log flushed"),
            Ok(Err(e)) => tracing::error!(error = %e, "flushing the prediction log"),
            Err(_) => tracing::error!(
                queued = self.state.serving.log.depth(),
                "the store did not take the prediction log's last rows in time; they are lost"
            ),
        }
        stop_jobs.cancel();
        while jobs.join_next().await.is_some() {}
        tracing::info!("stopped");
        outcome
    }
}

/// Listens for SIGTERM (what Render and Docker send) and SIGINT (Ctrl-C) from the moment it is
/// called, and returns a future that resolves on the first of them. The handlers are installed
/// here, not when the future is first polled: a SIGTERM that comes after the "steward is
/// serving" line (a health check passing, an orchestrator stopping at once) must find them, or
/// the default action kills the process without draining or flushing. A signal that comes
/// before the future is polled is kept and ends it at the first poll.
///
/// Off Unix it waits for Ctrl-C alone, from the first poll.
///
/// Panics outside a Tokio runtime with I/O enabled (as `tokio::signal` does); call it inside
/// the runtime that will poll the future.
pub fn shutdown_signal() -> impl Future<Output = ()> + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, signal = name, "cannot listen for the signal");
                None
            }
        };
        let mut terminate = listen(SignalKind::terminate(), "SIGTERM");
        let mut interrupt = listen(SignalKind::interrupt(), "SIGINT");
        async fn wait(s: Option<&mut tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        async move {
            tokio::select! {
                () = wait(terminate.as_mut()) => {},
                () = wait(interrupt.as_mut()) => {},
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Connects, migrates, loads the audit chain key and verifies the chain (refusing to go on
/// with a broken one unless `audit.allow_broken`), creates the first admin on an empty store,
/// records a configuration change in the audit log, marks runs of dead processes failed,
/// registers the bundled data set on an empty store, and trains the first model when none is
/// registered.
fn prepare_store(settings: &Settings) -> anyhow::Result<Prepared> {
    let db = Db::connect(&settings.database)?;
    // Replicas starting together on one PostgreSQL prepare it one after another.
    let _start = db::StartLock::acquire(&db)?;
    let mut conn = db.get()?;
    let migrations_applied = db::run_migrations(&mut conn)?;
    let audit = audit::prepare(
        &mut conn,
        settings.audit.key.expose_secret(),
        &settings.storage.dir,
        audit::Opening::Start,
        "system",
    )?;
    if let Some(broken) = &audit.broken {
        // A chain that has events but no keyed part takes no events at all until it is keyed:
        // serving over it is no option, whatever the flag says.
        if audit::head(&mut conn)?.keyed_from.is_none() {
            anyhow::bail!(
                "the audit log can't take events: {} (event {}). Nothing was started.",
                broken.reason,
                broken.seq
            );
        }
        if !settings.audit.allow_broken {
            anyhow::bail!(
                "the audit log is broken at event {}: {}. Nothing was started. Investigate with \
                 `steward audit verify`; to serve anyway, start with `steward serve \
                 --allow-broken-audit`",
                broken.seq,
                broken.reason
            );
        }
        tracing::error!(
            event = broken.seq,
            reason = %broken.reason,
            "THE AUDIT LOG IS BROKEN. Serving anyway because of --allow-broken-audit; new events \
             chain from the current head. Investigate with `steward audit verify`."
        );
        // The log itself says that the server ran over a broken chain, and where it broke.
        audit::append(
            &mut conn,
            audit::NewEvent::new("system", "audit.started_broken", "audit")
                .after(serde_json::json!({ "first_break": broken.seq, "reason": broken.reason })),
        )?;
    }
    let generated_admin_password =
        accounts::bootstrap_admin(&mut conn, settings.auth.admin_password.expose_secret())?;
    record_config_change(&mut conn, settings)?;
    let blobs: Arc<dyn BlobStore> = crate::data::blob::open(&settings.storage)?;
    let interrupted_runs = tracking::sweep_interrupted(&mut conn)?;
    drop(conn);
    let bootstrapped = data::bootstrap(&db, blobs.as_ref(), &settings.dataset)?;
    let trained = training::bootstrap(&db, blobs.as_ref(), settings)?;
    // The head as this start leaves it (the first-start training's events included); a broken
    // chain's head record stays as it was: it is the evidence.
    if audit.broken.is_none() {
        audit::record_head(&mut *db.get()?, &settings.storage.dir)?;
    }
    Ok(Prepared {
        db,
        blobs,
        bootstrapped,
        trained,
        interrupted_runs,
        migrations_applied,
        generated_admin_password,
        audit,
    })
}

/// Shows the generated first-admin password once: on the terminal when there is one, never in
/// the log stream. Without a terminal (a container's log, say) it goes to a file readable by
/// its owner alone, and the log says where.
fn show_generated_password(password: &str, storage_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let user = accounts::BOOTSTRAP_ADMIN;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  Created the first user `{user}` with the generated password:\n\n      {password}\n\n  \
             It is shown only now. Set STEWARD_ADMIN_PASSWORD to choose it instead.\n"
        );
        return Ok(());
    }
    let path = storage_dir.join("initial-admin-password");
    audit::write_private(&path, &format!("{password}\n"))
        .with_context(|| format!("writing the first admin's password to {}", path.display()))?;
    tracing::warn!(
        user,
        path = %path.display(),
        "created the first user with a generated password, written to this file (owner-only); \
         read it, log in, then delete the file"
    );
    Ok(())
}

/// Appends `config.applied` when the effective (redacted) configuration differs from the one
/// the previous start recorded.
fn record_config_change(conn: &mut db::DbConnection, settings: &Settings) -> anyhow::Result<()> {
    let current = settings.redacted();
    let previous = audit::latest_with_action(conn, "config.applied")?
        .and_then(|e| e.after_json)
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok());
    if previous.as_ref() != Some(&current) {
        let mut event = NewEvent::new("system", "config.applied", "config").after(current);
        if let Some(previous) = previous {
            event = event.before(previous);
        }
        audit::append(conn, event)?;
    }
    Ok(())
}

/// Every scheduled job of every capability is registered here.
pub fn register_jobs(scheduler: &mut Scheduler, settings: &Settings) {
    // The login throttle's buckets are this process's own.
    scheduler.register(
        "login_throttle_sweep",
        Duration::from_secs(settings.scheduler.session_sweep_secs),
        Scope::Process,
        |state: AppState| async move {
            state.login_throttle.sweep();
            Ok(())
        },
    );
    scheduler.register(
        "session_sweep",
        Duration::from_secs(settings.scheduler.session_sweep_secs),
        Scope::Store,
        |state: AppState| async move {
            let removed = state.db.run(sessions::sweep_expired).await?;
            if removed > 0 {
                tracing::info!(removed, "expired sessions removed");
            }
            Ok(())
        },
    );
    // Promotions made by another process sharing the store reach this one's serving slot.
    scheduler.register(
        "serving_refresh",
        Duration::from_secs(settings.serving.refresh_secs),
        Scope::Process,
        |state: AppState| async move {
            if let crate::serving::Refresh::Loaded { version } = state
                .serving
                .refresh(&state.db, state.blobs.clone())
                .await?
            {
                tracing::info!(version, "serving slot refreshed from the store");
            }
            Ok(())
        },
    );
    // The whole chain re-verified, and its head written outside the database (a cut tail
    // shows against it); a break sets steward_audit_chain_intact to 0 and keeps the record.
    scheduler.register(
        "audit_head",
        Duration::from_secs(settings.audit.head_log_secs),
        Scope::Process,
        |state: AppState| async move {
            let dir = state.settings.storage.dir.clone();
            let cache = state.audit_verified.clone();
            state
                .db
                .run(move |conn| {
                    let report = cache.verify_full(conn)?;
                    if let Some(b) = report.first_break {
                        return Err(crate::error::AppError::Internal(anyhow::anyhow!(
                            "the audit log is broken at event {}: {}; its head record is kept",
                            b.seq,
                            b.reason
                        )));
                    }
                    audit::record_head(conn, &dir)
                })
                .await?;
            Ok(())
        },
    );
    // Monitoring: a check of the Production version's window every interval, and reference
    // profiles for versions that have none yet (one per tick; a check builds its own too).
    if settings.monitoring.enabled {
        scheduler.register(
            "drift_check",
            Duration::from_secs(settings.monitoring.interval_secs),
            Scope::Store,
            |state: AppState| async move {
                let outcome = state.run_drift_check("scheduled", "scheduler".into()).await;
                match outcome {
                    Ok(report) => {
                        tracing::info!(
                            check = %report.id,
                            status = %report.status,
                            drift_share = report.drift.as_ref().map(|d| d.drift_share),
                            alerts = report.alerts.len(),
                            "drift check stored"
                        );
                        Ok(())
                    }
                    // Nothing in Production, or a check already running: nothing to do now.
                    Err(crate::error::AppError::Conflict(why)) => {
                        tracing::debug!(%why, "drift check skipped");
                        Ok(())
                    }
                    Err(crate::error::AppError::Overloaded { .. }) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            },
        );
        // The gauges follow the newest completed check of the Production version, whichever
        // process stored it (the CLI, another replica), and go NaN after a promotion.
        scheduler.register(
            "drift_gauges",
            Duration::from_secs(30),
            Scope::Process,
            |state: AppState| async move {
                state
                    .monitor
                    .refresh_gauges(
                        &state.db,
                        state.settings.registry.model.clone(),
                        state.settings.dataset.feature_names(),
                    )
                    .await?;
                Ok(())
            },
        );
        scheduler.register(
            "reference_profiles",
            Duration::from_secs(60),
            Scope::Store,
            |state: AppState| async move {
                state
                    .monitor
                    .profile_versions(&state.db, state.blobs.clone(), state.settings.clone())
                    .await?;
                Ok(())
            },
        );
    }
    // The weekly summary, made once per scheduled time (its outbox event's key is the time).
    if !settings.reports.weekly_cron.trim().is_empty() {
        scheduler.register(
            "weekly_report",
            Duration::from_secs(settings.reports.check_secs),
            Scope::Store,
            |state: AppState| async move {
                let Some(at) = crate::reports::weekly_due(
                    &state.settings.reports.weekly_cron,
                    chrono::Utc::now(),
                ) else {
                    return Ok(());
                };
                let _turn = state
                    .report_gate
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| anyhow::anyhow!("report gate: {e}"))?;
                let (db, blobs, model) = (
                    state.db.clone(),
                    state.blobs.clone(),
                    state.settings.registry.model.clone(),
                );
                let made = tokio::task::spawn_blocking(move || {
                    let _turn = _turn;
                    crate::reports::send_weekly(&db, blobs.as_ref(), &model, at)
                })
                .await
                .map_err(|e| anyhow::anyhow!("weekly report task: {e}"))??;
                if made {
                    tracing::info!(%at, "weekly summary made and queued for sending");
                }
                Ok(())
            },
        );
    }
    // Sent and failed notifications older than notify.keep_days go.
    scheduler.register(
        "notification_prune",
        Duration::from_secs(3600),
        Scope::Store,
        |state: AppState| async move {
            let days = state.settings.notify.keep_days;
            let removed = state
                .db
                .run(move |conn| crate::notify::store::prune(conn, days))
                .await?;
            if removed > 0 {
                tracing::info!(removed, "old notifications removed");
            }
            Ok(())
        },
    );
    // A training run in another process sharing the store may die without ending its run.
    scheduler.register(
        "interrupted_run_sweep",
        Duration::from_secs(300),
        Scope::Store,
        |state: AppState| async move {
            for run in state.db.run(tracking::sweep_interrupted).await? {
                tracing::warn!(%run, "marked an interrupted training run as failed");
            }
            Ok(())
        },
    );
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    /// The handlers exist once `shutdown_signal` returns: a SIGTERM sent before the future is
    /// first polled ends it at that poll. (When they were installed at the first poll, the
    /// default action killed the process: this test binary would die of it.)
    #[test]
    fn a_sigterm_before_the_first_poll_is_kept() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let stop = super::shutdown_signal();
            let sent = std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status()
                .expect("kill");
            assert!(sent.success());
            tokio::time::timeout(Duration::from_secs(10), stop)
                .await
                .expect("the SIGTERM sent before the first poll ends the future");
        });
    }
}
