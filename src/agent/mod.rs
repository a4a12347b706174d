//! The agent: alerts → incidents → decisions → actions, with approvals, safety limits and a
//! causal audit trail (alert → incident → decision → approval → action → model version).
//!
//! Owns: `intake` (alerts from monitoring's channel, failed validations and Alertmanager's
//! webhook, deduplicated into incidents), `policy` (the ordered rules of `[[agent.rules]]`),
//! `retrain` (a challenger on fresh labelled data, compared with the champion), `actions`,
//! `store` (its tables) and `settings`. May read and change data, training, the registry and
//! serving's slot (promotions and rollbacks keep it in step); reads monitoring's checks; never
//! knows the web layer, the API or the shared state: the server hands it its [`Deps`].
//!
//! Runs in the server as two tasks: the intake of monitoring's channel, and the worker, which
//! wakes on every alert and every `agent.tick_secs`. The request path never waits on either:
//! the webhook stores incidents and wakes the worker.

pub mod actions;
pub mod intake;
pub mod policy;
pub mod retrain;
pub mod settings;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use actions::Ended;
use intake::{NewAlert, Taken};
use policy::{Action, Context, DriftedFeature};
use store::{ActionRow, Approval, Decision, Incident};

use crate::audit::{self, NewEvent};
use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::schema::{agent_actions, agent_approvals, agent_incidents};
use crate::db::{Db, DbConnection};
use crate::error::AppError;
use crate::outbox::{self, Event, Kind, Severity};
use crate::serving::Serving;
use crate::telemetry::{
    AGENT_ACTIONS_TOTAL, AGENT_ALERTS_TOTAL, AGENT_DECISIONS_TOTAL, AGENT_INCIDENTS_OPEN,
    AGENT_PAUSED, APPROVALS_PENDING,
};
use crate::training::TrainingGate;

/// Incidents decided per pass (the rest wait for the next).
const DECISIONS_PER_PASS: i64 = 20;

/// What the agent needs of the process.
#[derive(Clone)]
pub struct Deps {
    pub db: Db,
    pub blobs: Arc<dyn BlobStore>,
    pub settings: Arc<Settings>,
    pub serving: Arc<Serving>,
    pub training_gate: Arc<TrainingGate>,
}

/// The agent's share of the process: the worker's wake-up call, and which checks' alerts it
/// took from where.
#[derive(Default)]
pub struct Agent {
    wake: tokio::sync::Notify,
    /// Checks whose alerts were taken, newest last (at most [`CLAIMS`]): by the channel
    /// (`false`) or by the poll of stored checks (`true`), so no check's alerts are taken twice.
    claims: std::sync::Mutex<std::collections::VecDeque<(String, bool)>>,
    /// Whether this process holds the agent's lease ([`AGENT_LEASE`]) now: only the holder
    /// takes alerts, decides and acts; the other replicas' agents wait.
    leading: std::sync::atomic::AtomicBool,
}

/// The lease one process at a time holds to run the agent, among replicas sharing a store.
pub const AGENT_LEASE: &str = "agent";

/// Actions of this process running beside the worker (retrains): while any runs, a stopping
/// process keeps the agent's lease (see [`Agent::work`]), so no other replica recovers an
/// action that is still going.
static IN_FLIGHT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One action in [`IN_FLIGHT`] until dropped.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        IN_FLIGHT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Checks remembered in [`Agent::claims`].
const CLAIMS: usize = 64;

impl Agent {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the worker now (an alert came, an approval was given, the switch moved).
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Claims a check's alerts for the channel (`polled` false) or the poll: false when the
    /// poll took them already, or (for the poll) when anyone did.
    fn claim(&self, check: &str, polled: bool) -> bool {
        let Ok(mut claims) = self.claims.lock() else {
            return false;
        };
        if let Some((_, by_poll)) = claims.iter().find(|(c, _)| c == check) {
            return !polled && !*by_poll;
        }
        claims.push_back((check.to_owned(), polled));
        while claims.len() > CLAIMS {
            claims.pop_front();
        }
        true
    }

    /// Forgets a claim whose alerts could not be stored, so the poll takes them again.
    fn unclaim(&self, check: &str) {
        if let Ok(mut claims) = self.claims.lock() {
            claims.retain(|(c, _)| c != check);
        }
    }

    /// Alerts of checks stored by another process (the CLI's `steward drift run`, another
    /// replica), taken from the newest completed check of the Production version when no
    /// channel brought them. Checks from before this process started are not taken again.
    async fn poll_checks(&self, deps: &Deps) -> Result<(), AppError> {
        let model = deps.settings.registry.model.clone();
        let newest = deps
            .db
            .run(move |conn| crate::monitoring::check::newest_for_production(conn, &model))
            .await?;
        let Some(check) = newest else { return Ok(()) };
        if check.alerts.is_empty() || !self.claim(&check.id, true) {
            return Ok(());
        }
        let alerts = check.alerts.iter().map(NewAlert::from_monitoring).collect();
        if let Err(e) = take(&deps.db, &deps.settings, alerts).await {
            self.unclaim(&check.id);
            return Err(e);
        }
        Ok(())
    }

    /// Takes monitoring's alerts from its channel into incidents until `stop`.
    pub async fn listen(
        self: Arc<Self>,
        deps: Deps,
        mut alerts: tokio::sync::broadcast::Receiver<crate::monitoring::check::Alert>,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let alert = tokio::select! {
                () = stop.cancelled() => return,
                a = alerts.recv() => a,
            };
            match alert {
                Ok(alert) => {
                    // Another replica leads: its poll takes the stored check.
                    if !self.is_leading() || !self.claim(&alert.check_id, false) {
                        continue;
                    }
                    let check = alert.check_id.clone();
                    let alert = NewAlert::from_monitoring(&alert);
                    match take(&deps.db, &deps.settings, vec![alert]).await {
                        Ok(_) => self.nudge(),
                        Err(e) => {
                            // The poll of stored checks takes them again.
                            self.unclaim(&check);
                            tracing::error!(error = %e, "an alert from monitoring was not taken");
                        }
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    // The next check raises them again while the problem lasts.
                    tracing::warn!(missed = n, "the agent fell behind monitoring's alerts");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Whether this process holds the agent's lease now.
    pub fn is_leading(&self) -> bool {
        self.leading.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The worker: passes over incidents and approvals at every wake-up and every
    /// `agent.tick_secs` while it holds the agent's lease ([`AGENT_LEASE`], renewed every third
    /// of `scheduler.lease_secs`), until `stop`. Replicas sharing a store wait for the lease;
    /// whoever takes it first recovers what the last holder left running (it died, or stalled
    /// past its lease), so an action runs in one process at a time.
    pub async fn work(self: Arc<Self>, deps: Deps, stop: tokio_util::sync::CancellationToken) {
        use std::sync::atomic::Ordering;
        // The newest stored check at start is not news: its alerts were taken before.
        let model = deps.settings.registry.model.clone();
        if let Ok(Some(check)) = deps
            .db
            .run(move |conn| crate::monitoring::check::newest_for_production(conn, &model))
            .await
        {
            self.claim(&check.id, true);
        }
        let holder: Arc<str> = crate::tracking::lease_holder().into();
        let ttl = chrono::Duration::seconds(
            i64::try_from(deps.settings.scheduler.lease_secs).unwrap_or(30),
        );
        let tick = Duration::from_secs(deps.settings.agent.tick_secs);
        let mut renewing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let me = holder.clone();
            let lead = deps
                .db
                .run(move |conn| {
                    crate::db::lease::take(
                        conn,
                        AGENT_LEASE,
                        &me,
                        ttl,
                        crate::db::lease::Take::Lead,
                        &crate::tracking::lease_holder_gone,
                    )
                })
                .await;
            // A store error leaves the state as it was (the next pass will tell); only a
            // tenure taken from another holder (or from nobody) recovers what was left running:
            // this process's own actions keep running through a renewal.
            let (leading, new_tenure) = match lead {
                Ok(crate::db::lease::Taken::New) => (true, true),
                Ok(crate::db::lease::Taken::Renewed) => (true, false),
                Ok(crate::db::lease::Taken::No) => (false, false),
                Err(e) => {
                    tracing::error!(error = %e, "taking the agent's lease failed");
                    (self.is_leading(), false)
                }
            };
            let was = self.leading.swap(leading, Ordering::SeqCst);
            metrics::gauge!(crate::telemetry::AGENT_LEADING).set(if leading { 1.0 } else { 0.0 });
            if leading && !was {
                tracing::info!("this process runs the agent now (it holds the agent's lease)");
            }
            let renewer_gone = renewing.as_ref().is_none_or(|r| r.is_finished());
            if leading && renewer_gone {
                renewing = Some(crate::db::lease::keep_renewed(
                    deps.db.clone(),
                    AGENT_LEASE.into(),
                    holder.clone(),
                    ttl,
                ));
            } else if !leading && was {
                tracing::warn!("another process runs the agent now");
                if let Some(r) = renewing.take() {
                    r.abort();
                }
            }
            if !leading {
                // The leader's pass sets these; a follower's would go stale.
                metrics::gauge!(APPROVALS_PENDING).set(f64::NAN);
                metrics::gauge!(AGENT_INCIDENTS_OPEN).set(f64::NAN);
                metrics::gauge!(AGENT_PAUSED).set(f64::NAN);
            }
            if new_tenure {
                match deps.db.run(recover).await {
                    Ok(n) if n > 0 => tracing::warn!(
                        actions = n,
                        "actions left running by a stopped process marked failed"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "recovering the agent's running actions"),
                }
            }
            if leading {
                if let Err(e) = self.poll_checks(&deps).await {
                    tracing::error!(error = %e, "taking stored checks' alerts failed");
                }
                if let Err(e) = resume_unstarted(&deps).await {
                    tracing::error!(error = %e, "resuming decided actions failed");
                }
                if let Err(e) = pass(&deps).await {
                    tracing::error!(error = %e, "agent pass failed; tried again at the next");
                }
            }
            // A follower looks again within a third of the lease, a leader at its tick.
            let wait = if leading {
                tick
            } else {
                tick.min(Duration::from_secs(
                    deps.settings.scheduler.lease_secs.div_ceil(3),
                ))
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(wait) => {},
            }
        }
        // An action still running here keeps the lease (renewed) for at most the shutdown's
        // grace; one that outlives it is left to the lease's expiry, after which the next
        // holder marks it interrupted. Then hand over at once rather than after the expiry.
        let grace = std::time::Instant::now()
            + Duration::from_secs(deps.settings.server.shutdown_timeout_secs);
        while self.is_leading()
            && IN_FLIGHT.load(Ordering::SeqCst) > 0
            && std::time::Instant::now() < grace
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(r) = renewing.take() {
            r.abort();
        }
        if self.is_leading() && IN_FLIGHT.load(Ordering::SeqCst) > 0 {
            tracing::warn!("an action still runs: the agent's lease is left to expire");
            return;
        }
        if self.leading.swap(false, Ordering::SeqCst) {
            let me = holder.clone();
            if let Err(e) = deps
                .db
                .run(move |conn| crate::db::lease::release(conn, AGENT_LEASE, &me))
                .await
            {
                tracing::warn!(error = %e, "freeing the agent's lease failed");
            }
        }
    }
}

/// Runs the actions of decisions taken but never started (the process stopped between the
/// decision and its action), unless paused; each re-checks its preconditions as it runs.
async fn resume_unstarted(deps: &Deps) -> Result<(), AppError> {
    let settings = deps.settings.clone();
    let todo = deps
        .db
        .run(move |conn| {
            if is_paused(conn, &settings)? {
                return Ok(Vec::new());
            }
            let mut out = Vec::new();
            for d in store::unstarted_decisions(conn)? {
                let incident = store::find_incident(conn, &d.incident_id)?;
                if settings.agent.dry_run {
                    drop_decision(conn, &d, "the agent runs dry now")?;
                } else if incident.status == "open" {
                    out.push((d, incident));
                } else {
                    drop_decision(conn, &d, "its incident closed before its action started")?;
                }
            }
            Ok(out)
        })
        .await?;
    for (decision, incident) in todo {
        let action: Action = decision.action.parse().unwrap_or(Action::Noop);
        tracing::warn!(decision = %decision.id, action = action.as_str(), "running a decided action the stopped process never started");
        run_action(deps, &decision, &incident, action, decision.approval, None).await?;
    }
    Ok(())
}

/// Defers a decision whose action can't start now (a training runs): decided again after
/// `redecide_after_secs` (see [`reopen_waiting`]). Audited.
fn defer_decision(conn: &mut DbConnection, d: &Decision, why: &str) -> Result<(), AppError> {
    settle_decision(conn, d, "deferred", "agent.decision.deferred", why)
}

/// Marks a decision whose action will not run as dropped, audited.
fn drop_decision(conn: &mut DbConnection, d: &Decision, why: &str) -> Result<(), AppError> {
    settle_decision(conn, d, "dropped", "agent.decision.dropped", why)
}

/// Moves an `acted` decision whose action never started to `status` (deferred ones are taken
/// again later), with its audit event; nothing when it moved meanwhile.
fn settle_decision(
    conn: &mut DbConnection,
    d: &Decision,
    status: &str,
    event: &'static str,
    why: &str,
) -> Result<(), AppError> {
    use crate::db::schema::agent_decisions as table;
    audit::with_events(conn, |conn, events| {
        let n = diesel::update(table::table.find(&d.id).filter(table::status.eq("acted")))
            .set((
                table::status.eq(status),
                table::redecide.eq(status == "deferred"),
            ))
            .execute(conn)?;
        if n == 1 {
            let mut after = causal(&d.incident_id, Some(&d.id), None, None, None);
            if let Some(o) = after.as_object_mut() {
                o.insert("why".into(), json!(crate::error::bounded(why, 300)));
            }
            events.push(NewEvent::new("agent", event, format!("decision:{}", d.id)).after(after));
        }
        Ok(())
    })
}

/// Takes alerts into incidents in one blocking call and one transaction (all or none).
/// Counts them by source and type.
pub async fn take(
    db: &Db,
    settings: &Settings,
    alerts: Vec<NewAlert>,
) -> Result<Vec<(Option<String>, Taken)>, AppError> {
    let redecide = settings.agent.redecide_after_secs;
    let max_open = settings.agent.max_open_incidents;
    db.run(move |conn| {
        let out = intake::ingest_all(conn, &alerts, redecide, Some(max_open))?;
        for alert in &alerts {
            let kind = policy::ALERT_TYPES
                .iter()
                .find(|t| **t == alert.alert_type)
                .copied()
                .unwrap_or("external");
            metrics::counter!(AGENT_ALERTS_TOTAL, "source" => alert.source, "type" => kind)
                .increment(1);
        }
        Ok(out)
    })
    .await
}

/// Marks actions left running (the process stopped mid-way) failed, with audit events.
pub fn recover(conn: &mut DbConnection) -> Result<usize, AppError> {
    let running = store::running_actions(conn)?;
    for a in &running {
        finish(
            conn,
            a,
            "failed",
            json!({ "error": "interrupted: the process stopped while it ran" }),
            Some("interrupted: the process stopped while it ran".into()),
            None,
        )?;
    }
    Ok(running.len())
}

/// The kill switch: on when `agent.paused` is set (config holds it on whatever the store says)
/// or when it was pulled (`steward agent pause`, the API, the Agent page).
pub fn is_paused(conn: &mut DbConnection, settings: &Settings) -> Result<bool, AppError> {
    Ok(settings.agent.paused || store::paused(conn)?.is_some_and(|(p, _, _)| p))
}

/// Turns the kill switch on or off, audited. No new decision or action starts while it is on
/// (one already running ends). Releasing it while `agent.paused` holds it on is refused (409).
pub fn set_paused(
    conn: &mut DbConnection,
    settings: &Settings,
    paused: bool,
    actor: &str,
) -> Result<(), AppError> {
    if !paused && settings.agent.paused {
        return Err(AppError::Conflict(
            "agent.paused = true in the configuration holds the kill switch on; change it there"
                .into(),
        ));
    }
    audit::with_event(conn, |conn| {
        store::set_paused(conn, paused, actor)?;
        Ok((
            (),
            NewEvent::new(
                actor,
                if paused {
                    "agent.paused"
                } else {
                    "agent.resumed"
                },
                "agent",
            )
            .after(json!({ "paused": paused })),
        ))
    })?;
    // `steward_agent_paused` is not set here: the process that takes the request may run no
    // agent (an `api` replica, the CLI) and would keep its value after a resume elsewhere. The
    // leader's pass publishes the store's switch at its next tick (the API nudges it).
    Ok(())
}

/// What `GET /api/v1/agent/status` and `steward agent status` show.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub enabled: bool,
    pub paused: bool,
    /// `agent.paused` in the configuration holds the switch on (resuming changes nothing).
    pub paused_by_config: bool,
    pub paused_by: Option<String>,
    pub paused_at: Option<chrono::NaiveDateTime>,
    pub dry_run: bool,
    pub open_incidents: i64,
    pub pending_approvals: i64,
    pub running_actions: Vec<ActionRow>,
    pub actions_last_hour: i64,
    pub max_actions_per_hour: u32,
    pub quarantined_rows: i64,
    pub usable_labels: u64,
    pub rules: usize,
}

pub fn status(conn: &mut DbConnection, settings: &Settings) -> Result<Status, AppError> {
    let stored = store::paused(conn)?;
    let hour_ago = crate::db::now() - chrono::Duration::hours(1);
    Ok(Status {
        enabled: settings.agent.enabled,
        paused: settings.agent.paused || stored.as_ref().is_some_and(|s| s.0),
        paused_by_config: settings.agent.paused,
        paused_by: stored.as_ref().map(|s| s.1.clone()),
        paused_at: stored.as_ref().map(|s| s.2),
        dry_run: settings.agent.dry_run,
        open_incidents: store::count_open_incidents(conn)?,
        pending_approvals: store::count_pending(conn)?,
        running_actions: store::running_actions(conn)?,
        actions_last_hour: store::actions_since(conn, hour_ago)?,
        max_actions_per_hour: settings.agent.max_actions_per_hour,
        quarantined_rows: store::count_quarantined(conn)?,
        usable_labels: retrain::usable_labels(conn, &settings.registry.model)?,
        rules: settings.agent.rules.len(),
    })
}

/// One pass: expire approvals, resolve what monitoring no longer raises, take failed
/// validations in, then (unless paused) decide new incidents and run approved actions.
pub async fn pass(deps: &Deps) -> Result<(), AppError> {
    let settings = deps.settings.clone();
    let paused = deps
        .db
        .run(move |conn| {
            // The switch is published first, whatever the steps below meet.
            let paused = is_paused(conn, &settings)?;
            metrics::gauge!(AGENT_PAUSED).set(if paused { 1.0 } else { 0.0 });
            expire(conn)?;
            reopen_waiting(conn, &settings)?;
            sweep_monitoring(conn, &settings)?;
            take_validation(conn, &settings)?;
            metrics::gauge!(APPROVALS_PENDING).set(store::count_pending(conn)? as f64);
            metrics::gauge!(AGENT_INCIDENTS_OPEN).set(store::count_open_incidents(conn)? as f64);
            Ok(paused)
        })
        .await?;
    if paused {
        return Ok(());
    }
    let todo = deps
        .db
        .run(|conn| store::undecided(conn, DECISIONS_PER_PASS))
        .await?;
    for incident in todo {
        // The switch is read again before each decision: it stops new actions at once.
        let settings = deps.settings.clone();
        if deps.db.run(move |conn| is_paused(conn, &settings)).await? {
            return Ok(());
        }
        if let Err(e) = decide_and_act(deps, incident).await {
            tracing::error!(error = %e, "deciding an incident failed");
        }
    }
    let approved = deps.db.run(store::approved_unstarted).await?;
    for approval in approved {
        let settings = deps.settings.clone();
        if deps.db.run(move |conn| is_paused(conn, &settings)).await? {
            return Ok(());
        }
        if let Err(e) = act_on_approval(deps, approval).await {
            tracing::error!(error = %e, "acting on an approval failed");
        }
    }
    Ok(())
}

/// Decisions that waited on time (a cooldown, the cap, a training running) are taken again
/// once `redecide_after_secs` have passed, whether or not their incident repeats.
fn reopen_waiting(conn: &mut DbConnection, settings: &Settings) -> Result<(), AppError> {
    let before =
        crate::db::now() - chrono::Duration::seconds(settings.agent.redecide_after_secs as i64);
    let now = crate::db::now();
    for (incident, decision) in store::stale_waiting(conn, before)? {
        // A cooldown is waited out whole: one decision when it ends, not one every pass.
        let d = store::find_decision(conn, &decision)?;
        if d.status == "cooldown" {
            let minutes = d
                .rule
                .as_deref()
                .and_then(|r| settings.agent.rules.iter().find(|x| x.name == r))
                .and_then(|r| r.cooldown_minutes)
                .unwrap_or(settings.agent.cooldown_minutes);
            if d.created_at + chrono::Duration::minutes(minutes as i64) > now {
                continue;
            }
        }
        audit::with_events(conn, |conn, events| {
            intake::reopen_locked(conn, &incident, &decision, "its wait is over", events)
        })?;
    }
    Ok(())
}

/// Pending approvals past their time become expired, each audited.
pub fn expire(conn: &mut DbConnection) -> Result<usize, AppError> {
    let now = crate::db::now();
    let overdue = store::overdue(conn, now)?;
    let mut n = 0;
    for a in overdue {
        let done = audit::with_optional_event(conn, |conn| {
            let changed = diesel::update(
                agent_approvals::table
                    .find(&a.id)
                    .filter(agent_approvals::status.eq("pending")),
            )
            .set((
                agent_approvals::status.eq("expired"),
                agent_approvals::decided_at.eq(Some(now)),
            ))
            .execute(conn)?;
            let event = (changed == 1).then(|| {
                NewEvent::new(
                    "agent",
                    "agent.approval.expired",
                    format!("approval:{}", a.id),
                )
                .after(causal(
                    &a.incident_id,
                    Some(&a.decision_id),
                    Some(&a.id),
                    None,
                    a.version,
                ))
            });
            Ok((changed == 1, event))
        })?;
        n += usize::from(done);
    }
    Ok(n)
}

/// The causal links an agent event carries.
fn causal(
    incident: &str,
    decision: Option<&str>,
    approval: Option<&str>,
    action: Option<&str>,
    version: Option<i32>,
) -> serde_json::Value {
    json!({
        "incident": incident,
        "decision": decision,
        "approval": approval,
        "action": action,
        "model_version": version,
    })
}

/// Open monitoring incidents that the newest completed check of their version no longer
/// raises, or whose version left Production, are resolved.
fn sweep_monitoring(conn: &mut DbConnection, settings: &Settings) -> Result<(), AppError> {
    let open = store::open_from(conn, "monitoring")?;
    if open.is_empty() {
        return Ok(());
    }
    let model = &settings.registry.model;
    let production = crate::registry::production(conn, model)?.map(|v| v.version);
    let newest = crate::monitoring::check::newest_for_production(conn, model)?;
    for incident in open {
        if incident.version.is_some() && incident.version != production {
            intake::resolve(
                conn,
                &incident,
                &format!("v{} left Production", incident.version.unwrap_or_default()),
            )?;
            continue;
        }
        let Some(check) = &newest else { continue };
        let later = incident
            .check_id
            .as_deref()
            .is_some_and(|c| c < check.id.as_str());
        if later
            && check.status == "completed"
            && !check
                .alerts
                .iter()
                .any(|a| a.fingerprint == incident.fingerprint)
        {
            intake::resolve(
                conn,
                &incident,
                &format!("check {} no longer raises it", check.id),
            )?;
        }
    }
    Ok(())
}

/// The newest validation of the dataset's current version: a failure opens an incident (once
/// per validation run); when it passed, the open validation incidents are resolved.
fn take_validation(conn: &mut DbConnection, settings: &Settings) -> Result<(), AppError> {
    let dataset = &settings.dataset.name;
    let Some(current) = crate::data::catalog::current_version(conn, dataset)? else {
        return Ok(());
    };
    let Some(run) = store::newest_validation(conn, dataset, current.version)? else {
        return Ok(());
    };
    let fingerprint = format!("validation:{}", run.id);
    if run.success {
        for open in store::open_from(conn, "validation")? {
            intake::resolve(conn, &open, &format!("validation {} passed", run.id))?;
        }
        return Ok(());
    }
    let known: i64 = agent_incidents::table
        .filter(agent_incidents::fingerprint.eq(&fingerprint))
        .count()
        .get_result(conn)?;
    if known > 0 {
        return Ok(());
    }
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("alert_type".to_owned(), "validation".to_owned());
    labels.insert("dataset".to_owned(), dataset.clone());
    let alert = NewAlert {
        fingerprint,
        source: "validation",
        alert_type: "validation".into(),
        alertname: "steward_validation_failed".into(),
        severity: if run.critical_failures > 0 {
            "critical".into()
        } else {
            "warning".into()
        },
        model: settings.registry.model.clone(),
        version: None,
        summary: format!(
            "validation of {dataset}{} failed {} of {} expectations ({} critical)",
            run.version.map(|v| format!(" v{v}")).unwrap_or_default(),
            run.evaluated - run.successful,
            run.evaluated,
            run.critical_failures
        ),
        labels,
        evidence: json!({ "validation": run.id, "suite": run.suite }),
        check_id: None,
        resolved: false,
        poster: "agent".into(),
    };
    intake::ingest(conn, &alert, settings.agent.redecide_after_secs)?;
    metrics::counter!(AGENT_ALERTS_TOTAL, "source" => "validation", "type" => "validation")
        .increment(1);
    Ok(())
}

/// The incident's context for the policy.
pub fn context(
    conn: &mut DbConnection,
    settings: &Settings,
    incident: &Incident,
) -> Result<Context, AppError> {
    let model = &settings.registry.model;
    let labels: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&incident.labels_json).unwrap_or_default();
    let production = crate::registry::production(conn, model)?;
    let promoted_at = match &production {
        Some(p) => crate::registry::transitions(conn, model)?
            .into_iter()
            .filter(|t| t.version == p.version && t.to_stage == "Production")
            .map(|t| t.created_at)
            .max(),
        None => None,
    };
    let now = crate::db::now();
    let newest = crate::monitoring::check::newest_for_production(conn, model)?;
    let (mut drift_share, mut drifted, mut window_rows) = (None, Vec::new(), None);
    let (mut live, mut estimated, mut holdout) = (None, None, None);
    let mut decay_measured = false;
    if let Some(check) = &newest {
        window_rows = Some(check.window.rows);
        if let Some(d) = &check.drift {
            drift_share = Some(d.drift_share);
            drifted = d
                .features
                .iter()
                .filter(|f| f.drifted)
                .map(|f| DriftedFeature {
                    feature: f.feature.clone(),
                    stattest: f
                        .stattest
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    score: f.score.unwrap_or(f64::NAN),
                })
                .collect();
        }
        if let Some(p) = &check.performance {
            // A measurement counts only when made after the version last entered Production:
            // an old one says nothing of the promotion the rollback would undo.
            decay_measured = p.decay && promoted_at.is_none_or(|at| check.created_at > at);
            live = p.live.as_ref().map(|l| l.accuracy);
            estimated = p.estimated.as_ref().map(|e| e.accuracy);
            holdout = p.holdout.get("holdout_accuracy").copied();
        }
    }
    let day_ago = now - chrono::Duration::hours(24);
    let recent_actions = store::actions_of_model_since(conn, model, day_ago)?
        .into_iter()
        .map(|a| {
            format!(
                "{} {} at {}",
                a.action,
                a.status,
                a.started_at.format("%Y-%m-%d %H:%M")
            )
        })
        .collect();
    let mut transitions = crate::registry::transitions(conn, model)?;
    transitions.retain(|t| t.created_at >= day_ago);
    transitions.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    let recent_promotions = transitions
        .into_iter()
        .take(10)
        .map(|t| {
            format!(
                "v{} {} → {} at {}",
                t.version,
                t.from_stage,
                t.to_stage,
                t.created_at.format("%Y-%m-%d %H:%M")
            )
        })
        .collect();
    Ok(Context {
        alert_type: incident.alert_type.clone(),
        quality_rule: labels.get("rule").cloned(),
        feature: labels.get("feature").cloned(),
        model: model.clone(),
        production_version: production.as_ref().map(|p| p.version),
        promoted_at,
        production_age_hours: promoted_at
            .map(|at| (now - at).num_milliseconds().max(0) as f64 / 3_600_000.0),
        check_id: newest.as_ref().map(|c| c.id.clone()),
        drift_share,
        drifted_features: drifted,
        window_rows,
        accuracy_live: live,
        accuracy_estimated: estimated,
        accuracy_holdout: holdout,
        decay_measured,
        labels: retrain::usable_labels(conn, model)?,
        recent_actions,
        recent_promotions,
    })
}

/// Decides one incident (once: a second decider finds it decided and stops), records the
/// decision with its audit event, then acts, asks for approval, or records why it does not.
async fn decide_and_act(deps: &Deps, incident: Incident) -> Result<(), AppError> {
    let settings = deps.settings.clone();
    let decided = deps
        .db
        .run(move |conn| decide(conn, &settings, &incident))
        .await?;
    let Some((decision, incident, verdict)) = decided else {
        return Ok(());
    };
    if decision.status != "acted" {
        return Ok(());
    }
    run_action(
        deps,
        &decision,
        &incident,
        verdict.action,
        verdict.approval,
        None,
    )
    .await
}

/// The decision for an incident, stored with its audit event and the incident's link to it;
/// `None` when it was decided meanwhile. An approval-gated action other than a retrain gets
/// its request in the same transaction.
pub fn decide(
    conn: &mut DbConnection,
    settings: &Settings,
    incident: &Incident,
) -> Result<Option<(Decision, Incident, policy::Verdict)>, AppError> {
    let ctx = context(conn, settings, incident)?;
    let verdict = policy::evaluate(&settings.agent, &ctx);
    let now = crate::db::now();
    let agent = &settings.agent;
    let cooling = match &verdict.rule {
        Some(rule) if verdict.cooldown_minutes > 0 => store::last_acted(conn, rule, &ctx.model)?
            .is_some_and(|at| {
                at > now - chrono::Duration::minutes(verdict.cooldown_minutes as i64)
            }),
        _ => false,
    };
    let status = if verdict.action == Action::Noop {
        "recorded"
    } else if agent.dry_run {
        "dry_run"
    } else if cooling {
        "cooldown"
    } else if verdict.action != Action::Notify
        && store::actions_since(conn, now - chrono::Duration::hours(1))?
            >= i64::from(agent.max_actions_per_hour)
    {
        "capped"
    } else if verdict.approval && verdict.action != Action::Retrain {
        "awaiting_approval"
    } else {
        "acted"
    };
    let decision = Decision {
        id: store::new_id(),
        incident_id: incident.id.clone(),
        model: ctx.model.clone(),
        rule: verdict.rule.clone(),
        action: verdict.action.as_str().to_owned(),
        approval: verdict.approval,
        status: status.to_owned(),
        redecide: verdict.wait || matches!(status, "cooldown" | "capped"),
        explanation_json: serde_json::to_string(&verdict.checks).unwrap_or_else(|_| "[]".into()),
        context_json: serde_json::to_string(&ctx).unwrap_or_else(|_| "{}".into()),
        created_at: now,
    };
    let done = audit::with_events(conn, |conn, events| {
        let linked = diesel::update(
            agent_incidents::table
                .find(&incident.id)
                .filter(agent_incidents::decision_id.is_null()),
        )
        .set(agent_incidents::decision_id.eq(Some(&decision.id)))
        .execute(conn)?;
        if linked == 0 {
            return Ok(false);
        }
        diesel::insert_into(crate::db::schema::agent_decisions::table)
            .values(&decision)
            .execute(conn)?;
        let mut after = causal(
            &incident.id,
            Some(&decision.id),
            None,
            None,
            ctx.production_version,
        );
        if let Some(o) = after.as_object_mut() {
            o.insert("rule".into(), json!(decision.rule));
            o.insert("action".into(), json!(decision.action));
            o.insert("approval".into(), json!(decision.approval));
            o.insert("status".into(), json!(decision.status));
            o.insert("drift_share".into(), json!(ctx.drift_share));
            o.insert(
                "why".into(),
                json!(verdict.checks.last().map(|c| c.reason.clone())),
            );
        }
        events.push(
            NewEvent::new(
                "agent",
                "agent.decision",
                format!("decision:{}", decision.id),
            )
            .after(after),
        );
        // The rule's "also notify", in the decision's transaction: it acts (or watches) and
        // says so; a decision held back (dry run, cooldown, cap) notifies nothing.
        if verdict.notify
            && verdict.action != Action::Notify
            && matches!(status, "acted" | "recorded")
        {
            actions::notify(
                conn,
                Some(incident),
                actions::severity_of(incident),
                &actions::subject(incident),
                &incident.summary,
            )?;
        }
        if status == "awaiting_approval" {
            let approval = new_approval(
                settings,
                &decision,
                incident,
                verdict.action,
                None,
                json!({ "context": ctx, "check": ctx.check_id, "incident_summary": incident.summary }),
            );
            request_approval_locked(conn, events, &approval, None)?;
        }
        Ok(true)
    })?;
    if !done {
        return Ok(None);
    }
    metrics::counter!(AGENT_DECISIONS_TOTAL, "action" => verdict.action.as_str()).increment(1);
    if verdict.action == Action::Noop && verdict.rule.is_some() {
        // "Log a warning and keep watching".
        tracing::warn!(
            incident = %incident.id,
            rule = verdict.rule.as_deref().unwrap_or(""),
            summary = %incident.summary,
            "agent: watching, no action"
        );
    } else {
        tracing::info!(
            incident = %incident.id,
            rule = verdict.rule.as_deref().unwrap_or("(none)"),
            action = verdict.action.as_str(),
            status,
            "agent decision"
        );
    }
    let incident = store::find_incident(conn, &incident.id)?;
    Ok(Some((decision, incident, verdict)))
}

/// Stores an approval request with its audit event, inside the caller's transaction.
fn request_approval_locked(
    conn: &mut DbConnection,
    events: &mut Vec<NewEvent>,
    approval: &Approval,
    action: Option<&str>,
) -> Result<(), AppError> {
    diesel::insert_into(agent_approvals::table)
        .values(approval)
        .execute(conn)?;
    let what = match approval.version {
        Some(v) => format!("{} {} v{v}", approval.action, approval.model),
        None => format!("{} on {}", approval.action, approval.model),
    };
    // What the person decides on, in the message itself: why, and the comparison.
    let evidence: serde_json::Value =
        serde_json::from_str(&approval.evidence_json).unwrap_or_default();
    let why = evidence
        .get("incident_summary")
        .and_then(|s| s.as_str())
        .map(|s| format!(" Why: {}.", crate::error::bounded(s, 300)))
        .unwrap_or_default();
    let mut message = Event::new(
        Kind::ApprovalNeeded,
        Severity::Warning,
        &format!("Approval needed: {what}"),
        &format!(
            "The agent asks a person to approve {what}.{why} Open the request to see all its \
             evidence; it expires at {} UTC.",
            approval.expires_at.format("%Y-%m-%d %H:%M")
        ),
    )
    .incident(Some(&approval.incident_id))
    .approval(&approval.id)
    .fact("Action", &approval.action)
    .fact("Model", &approval.model)
    .fact(
        "Expires (UTC)",
        approval.expires_at.format("%Y-%m-%d %H:%M"),
    )
    .link(format!("/approvals#approval-{}", approval.id));
    if let Some(v) = approval.version {
        message = message.fact("Version", v);
    }
    if let Some(verdict) = evidence
        .get("retrain")
        .and_then(|r| r.get("verdict"))
        .and_then(|v| v.as_str())
    {
        message = message.fact("Comparison", verdict);
    }
    outbox::push(conn, message)?;
    events.push(
        NewEvent::new(
            "agent",
            "agent.approval.requested",
            format!("approval:{}", approval.id),
        )
        .after(causal(
            &approval.incident_id,
            Some(&approval.decision_id),
            Some(&approval.id),
            action,
            approval.version,
        )),
    );
    Ok(())
}

fn new_approval(
    settings: &Settings,
    decision: &Decision,
    incident: &Incident,
    action: Action,
    version: Option<i32>,
    evidence: serde_json::Value,
) -> Approval {
    let now = crate::db::now();
    Approval {
        id: store::new_id(),
        decision_id: decision.id.clone(),
        incident_id: incident.id.clone(),
        action: action.as_str().to_owned(),
        model: settings.registry.model.clone(),
        version,
        status: "pending".into(),
        evidence_json: evidence.to_string(),
        requested_at: now,
        expires_at: now
            + chrono::Duration::milliseconds(
                (settings.agent.approval_ttl_hours * 3_600_000.0) as i64,
            ),
        decided_by: None,
        decided_at: None,
        comment: None,
        action_id: None,
    }
}

/// Starts an action: its row, status running, with its audit event. With an approval, claims
/// it in the same transaction (`None` when another worker did).
fn start(
    conn: &mut DbConnection,
    decision: &Decision,
    incident: &Incident,
    action: Action,
    approval: Option<&Approval>,
) -> Result<Option<ActionRow>, AppError> {
    let row = ActionRow {
        id: store::new_id(),
        decision_id: decision.id.clone(),
        approval_id: approval.map(|a| a.id.clone()),
        incident_id: incident.id.clone(),
        action: action.as_str().to_owned(),
        model: decision.model.clone(),
        status: "running".into(),
        started_at: crate::db::now(),
        finished_at: None,
        outcome_json: None,
        error: None,
        model_version: approval.and_then(|a| a.version),
    };
    let holder = crate::tracking::lease_holder();
    audit::with_optional_event(conn, |conn| {
        // Fencing: a process that lost the agent's lease (it stalled past its expiry and
        // another took over) starts nothing more; and a decision starts one action, whoever
        // starts it.
        if !crate::db::lease::holds(conn, AGENT_LEASE, &holder)? {
            tracing::warn!(decision = %decision.id, "not started: this process no longer holds the agent's lease");
            return Ok((None, None));
        }
        let of_decision = agent_actions::table.filter(agent_actions::decision_id.eq(&decision.id));
        let started: i64 = match approval {
            Some(a) => of_decision
                .filter(agent_actions::approval_id.eq(&a.id))
                .count()
                .get_result(conn)?,
            None => of_decision
                .filter(agent_actions::approval_id.is_null())
                .count()
                .get_result(conn)?,
        };
        if started > 0 {
            return Ok((None, None));
        }
        if let Some(a) = approval {
            let claimed = diesel::update(
                agent_approvals::table
                    .find(&a.id)
                    .filter(agent_approvals::status.eq("approved"))
                    .filter(agent_approvals::action_id.is_null()),
            )
            .set(agent_approvals::action_id.eq(Some(&row.id)))
            .execute(conn)?;
            if claimed == 0 {
                return Ok((None, None));
            }
        }
        diesel::insert_into(agent_actions::table)
            .values(&row)
            .execute(conn)?;
        let event = NewEvent::new(
            "agent",
            "agent.action.started",
            format!("action:{}", row.id),
        )
        .after(causal(
            &incident.id,
            Some(&decision.id),
            approval.map(|a| a.id.as_str()),
            Some(&row.id),
            row.model_version,
        ));
        Ok((Some(row.clone()), Some(event)))
    })
}

/// Ends an action: its status, outcome and model version, with its audit event.
fn finish(
    conn: &mut DbConnection,
    row: &ActionRow,
    status: &str,
    outcome: serde_json::Value,
    error: Option<String>,
    version: Option<i32>,
) -> Result<(), AppError> {
    finish_then(conn, row, status, outcome, error, version, |_, _| Ok(()))
}

/// [`finish`], and `then` in the same transaction (only when the row was still running).
fn finish_then(
    conn: &mut DbConnection,
    row: &ActionRow,
    status: &str,
    outcome: serde_json::Value,
    error: Option<String>,
    version: Option<i32>,
    then: impl FnOnce(&mut DbConnection, &mut Vec<NewEvent>) -> Result<(), AppError>,
) -> Result<(), AppError> {
    let now = crate::db::now();
    let error = error.map(|e| crate::error::bounded(&e, 1000));
    let finished = audit::with_events(conn, |conn, events| {
        let n = diesel::update(
            agent_actions::table
                .find(&row.id)
                .filter(agent_actions::status.eq("running")),
        )
        .set((
            agent_actions::status.eq(status),
            agent_actions::finished_at.eq(Some(now)),
            agent_actions::outcome_json.eq(Some(outcome.to_string())),
            agent_actions::error.eq(error.clone()),
            agent_actions::model_version.eq(version.or(row.model_version)),
        ))
        .execute(conn)?;
        // Ended already (say, marked interrupted): nothing to record twice.
        if n == 0 {
            return Ok(false);
        }
        let mut after = causal(
            &row.incident_id,
            Some(&row.decision_id),
            row.approval_id.as_deref(),
            Some(&row.id),
            version.or(row.model_version),
        );
        if let Some(o) = after.as_object_mut() {
            o.insert("action_kind".into(), json!(row.action));
            o.insert("outcome".into(), json!(status));
            if let Some(e) = &error {
                o.insert("error".into(), json!(e));
            }
        }
        then(conn, events)?;
        if !matches!(row.action.as_str(), "notify" | "noop") {
            outbox::push(
                conn,
                action_message(row, status, &outcome, error.as_deref(), version),
            )?;
        }
        events.push(
            NewEvent::new(
                "agent",
                "agent.action.finished",
                format!("action:{}", row.id),
            )
            .after(after),
        );
        Ok(true)
    })?;
    if !finished {
        return Ok(());
    }
    let action = Action::ALL
        .iter()
        .find(|a| a.as_str() == row.action)
        .map_or("noop", |a| a.as_str());
    let outcome: &'static str = match status {
        "succeeded" => "succeeded",
        "skipped" => "skipped",
        _ => "failed",
    };
    metrics::counter!(AGENT_ACTIONS_TOTAL, "action" => action, "outcome" => outcome).increment(1);
    Ok(())
}

/// The notification of a finished action: a rollback is its own kind; a failure is critical.
fn action_message(
    row: &ActionRow,
    status: &str,
    outcome: &serde_json::Value,
    error: Option<&str>,
    version: Option<i32>,
) -> Event {
    // A rollback that was skipped rolled nothing back: it is an action's outcome like any other.
    let kind = if row.action == "rollback" && status != "skipped" {
        Kind::Rollback
    } else {
        Kind::ActionTaken
    };
    let severity = match (status, kind) {
        ("failed", _) => Severity::Critical,
        (_, Kind::Rollback) => Severity::Warning,
        _ => Severity::Info,
    };
    let version = version.or(row.model_version);
    let on = version.map(|v| format!(" (v{v})")).unwrap_or_default();
    let mut body = format!("The agent's {} action {status}{on}.", row.action);
    if let Some(why) = outcome.get("reason").and_then(|r| r.as_str()) {
        body.push_str(&format!(" {}", crate::error::bounded(why, 300)));
    }
    if let Some(e) = error {
        body.push_str(&format!(" Error: {e}"));
    }
    let mut message = Event::new(
        kind,
        severity,
        &format!("Agent {}: {status}{on}", row.action),
        &body,
    )
    .incident(Some(&row.incident_id))
    .fact("Action", &row.action)
    .fact("Outcome", status)
    .link(format!("/agent/incidents/{}", row.incident_id));
    if let Some(v) = version {
        message = message.fact("Version", v);
    }
    message
}

/// Runs an action to its end on the blocking pool (a retrain behind the training gate).
async fn run_action(
    deps: &Deps,
    decision: &Decision,
    incident: &Incident,
    action: Action,
    approval_required: bool,
    approval: Option<Approval>,
) -> Result<(), AppError> {
    if action == Action::Noop {
        return Ok(());
    }
    // One training at a time in the process; the gate is held across the whole retrain. A
    // retrain that finds it taken waits: its decision is deferred, and the incident's next
    // alert decides again.
    let permit = if action == Action::Retrain {
        match deps.training_gate.try_enter() {
            Ok(p) => Some(p),
            Err(e) => {
                let (d, why) = (decision.clone(), e.to_string());
                return deps
                    .db
                    .run(move |conn| defer_decision(conn, &d, &why))
                    .await;
            }
        }
    } else {
        None
    };
    let row = {
        let (d, i, a) = (decision.clone(), incident.clone(), approval.clone());
        deps.db
            .run(move |conn| start(conn, &d, &i, action, a.as_ref()))
            .await?
    };
    let Some(row) = row else {
        return Ok(());
    };
    let deps2 = deps.clone();
    let (inc, dec, appr, row2) = (
        incident.clone(),
        decision.clone(),
        approval.clone(),
        row.clone(),
    );
    let handle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let holder = crate::tracking::lease_holder();
        let action_id = row2.id.clone();
        let fence = move |conn: &mut DbConnection| -> Result<Option<String>, AppError> {
            if !crate::db::lease::holds(conn, AGENT_LEASE, &holder)? {
                return Ok(Some("this process lost the agent's lease".into()));
            }
            let status: String = agent_actions::table
                .find(&action_id)
                .select(agent_actions::status)
                .first(conn)?;
            Ok((status != "running").then(|| format!("the action is {status} already")))
        };
        let tools = actions::Tools {
            db: &deps2.db,
            blobs: deps2.blobs.as_ref(),
            settings: &deps2.settings,
            serving: &deps2.serving,
            fence: &fence,
        };
        let result = match action {
            Action::Notify => actions::run_notify(&tools, &inc),
            Action::Quarantine => actions::run_quarantine(&tools, &inc),
            Action::Validate => actions::run_validate(&tools),
            Action::Rollback => actions::run_rollback(&tools, &inc),
            Action::Retrain => actions::run_retrain(&tools, &inc, approval_required),
            Action::Promote => match &appr {
                Some(a) => promote_approved(&tools, a),
                None => Ok(Ended::Skipped {
                    why: "a promotion needs an approval".into(),
                }),
            },
            Action::Noop => Ok(Ended::Skipped {
                why: "no-op".into(),
            }),
        };
        let mut conn = deps2.db.get()?;
        match result {
            Ok(Ended::Succeeded { outcome, version }) => {
                finish(&mut conn, &row2, "succeeded", outcome, None, version)
            }
            Ok(Ended::Failed { outcome, error }) => {
                finish(&mut conn, &row2, "failed", outcome, Some(error), None)
            }
            Ok(Ended::Skipped { why }) => finish(
                &mut conn,
                &row2,
                "skipped",
                json!({ "skipped": why }),
                None,
                None,
            ),
            Ok(Ended::AwaitingApproval { retrained }) => {
                let version = retrained.challenger.version;
                let evidence = json!({
                    "check": inc.check_id,
                    "incident_summary": inc.summary,
                    "retrain": *retrained,
                });
                let approval = new_approval(
                    &deps2.settings,
                    &dec,
                    &inc,
                    Action::Promote,
                    Some(version),
                    evidence,
                );
                // The request and the action's end commit together.
                finish_then(
                    &mut conn,
                    &row2,
                    "succeeded",
                    json!({
                        "promoted": false,
                        "awaiting_approval": approval.id,
                        "challenger": version,
                        "verdict": retrained.verdict,
                        "validation_failures": retrained.validation_failures,
                    }),
                    None,
                    Some(version),
                    |conn, events| request_approval_locked(conn, events, &approval, Some(&row2.id)),
                )
            }
            Err(e) => {
                let message = match &e {
                    AppError::Internal(_) => {
                        tracing::error!(error = %e, action = action.as_str(), "agent action failed");
                        "internal error (see the server log)".to_owned()
                    }
                    other => other.to_string(),
                };
                finish(
                    &mut conn,
                    &row2,
                    "failed",
                    json!({ "error": message }),
                    Some(message.clone()),
                    None,
                )
            }
        }
    });
    let ended = async move {
        let ended = handle
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("agent action task failed: {e}")))
            .and_then(|r| r);
        if let Err(e) = &ended {
            tracing::error!(action = row.action, error = %e, "an agent action could not record its end");
        }
        ended
    };
    if action == Action::Retrain {
        // A retrain takes a while: it ends beside the worker, so the other incidents are
        // decided and acted on meanwhile (its row is written already; one training at a time).
        let running = InFlight::enter();
        tokio::spawn(async move {
            let _running = running;
            ended.await
        });
        return Ok(());
    }
    ended.await
}

/// Promotes an approved challenger, if the champion it was compared with still serves.
fn promote_approved(tools: &actions::Tools<'_>, approval: &Approval) -> Result<Ended, AppError> {
    let Some(version) = approval.version else {
        return Ok(Ended::Skipped {
            why: "the request names no version".into(),
        });
    };
    let evidence: serde_json::Value =
        serde_json::from_str(&approval.evidence_json).unwrap_or_default();
    let champion = evidence
        .pointer("/retrain/champion")
        .and_then(serde_json::Value::as_i64)
        .map(|v| v as i32);
    // The person saw the failed expectations in the request's evidence.
    let failures: Vec<String> = evidence
        .pointer("/retrain/validation_failures")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let reason = format!(
        "agent retrain approved by {} (approval {}){}{}",
        approval.decided_by.as_deref().unwrap_or("?"),
        approval.id,
        approval
            .comment
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .map(|c| format!(": {}", crate::error::bounded(c, 200)))
            .unwrap_or_default(),
        if failures.is_empty() {
            String::new()
        } else {
            format!(
                "; its data failed {}",
                crate::error::bounded(&failures.join(", "), 150)
            )
        }
    );
    let mut conn = tools.db.get()?;
    actions::promote(
        tools,
        &mut conn,
        version,
        champion,
        &reason,
        !failures.is_empty(),
    )
}

/// Runs what an approved request asks for (once: the request is claimed when its action
/// starts).
async fn act_on_approval(deps: &Deps, approval: Approval) -> Result<(), AppError> {
    let (decision, incident) = {
        let a = approval.clone();
        deps.db
            .run(move |conn| {
                Ok((
                    store::find_decision(conn, &a.decision_id)?,
                    store::find_incident(conn, &a.incident_id)?,
                ))
            })
            .await?
    };
    let action: Action = approval.action.parse().unwrap_or(Action::Noop);
    // An approval answers the state of its day: one the agent could not act on within
    // approval_ttl_hours (it was paused) is not acted on at all.
    let ttl = chrono::Duration::milliseconds(
        (deps.settings.agent.approval_ttl_hours * 3_600_000.0) as i64,
    );
    let stale = approval
        .decided_at
        .is_some_and(|at| at + ttl < crate::db::now());
    // A promotion stands on its own comparison (re-checked as it runs); any other approved
    // action is about its incident, and a closed incident needs nothing.
    if stale || (action != Action::Promote && incident.status != "open") {
        let why = if stale {
            "approved longer ago than approval_ttl_hours; ask again"
        } else {
            "the incident was resolved before the action ran"
        };
        let (d, i, a) = (decision.clone(), incident.clone(), approval.clone());
        return deps
            .db
            .run(move |conn| {
                if let Some(row) = start(conn, &d, &i, action, Some(&a))? {
                    finish(conn, &row, "skipped", json!({ "skipped": why }), None, None)?;
                }
                Ok(())
            })
            .await;
    }
    run_action(deps, &decision, &incident, action, false, Some(approval)).await
}

/// Approves or rejects a pending request, with the person's comment, audited. Approving twice,
/// or an expired or rejected request, is refused (409); the action runs in the worker, once.
pub fn answer(
    conn: &mut DbConnection,
    id: &str,
    approve: bool,
    actor: &str,
    comment: &str,
) -> Result<Approval, AppError> {
    if comment.chars().count() > 1000 {
        return Err(AppError::validation(
            "comment",
            "must be at most 1000 characters",
        ));
    }
    // Control characters, and the invisible ones (bidi marks and overrides, zero widths), never.
    if comment
        .chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || intake::is_invisible(c))
    {
        return Err(AppError::validation(
            "comment",
            "must not hold control characters",
        ));
    }
    let now = crate::db::now();
    audit::with_event(conn, |conn| {
        let a = store::find_approval(conn, id)?;
        if a.status != "pending" {
            return Err(AppError::Conflict(format!(
                "the request is {} already",
                a.status
            )));
        }
        if a.expires_at <= now {
            return Err(AppError::Conflict(
                "the request has expired; it can no longer be answered".into(),
            ));
        }
        let status = if approve { "approved" } else { "rejected" };
        let changed = diesel::update(
            agent_approvals::table
                .find(id)
                .filter(agent_approvals::status.eq("pending")),
        )
        .set((
            agent_approvals::status.eq(status),
            agent_approvals::decided_by.eq(Some(actor)),
            agent_approvals::decided_at.eq(Some(now)),
            agent_approvals::comment.eq(Some(comment)),
        ))
        .execute(conn)?;
        if changed == 0 {
            return Err(AppError::Conflict(
                "the request was answered meanwhile".into(),
            ));
        }
        let mut after = causal(
            &a.incident_id,
            Some(&a.decision_id),
            Some(&a.id),
            None,
            a.version,
        );
        if let Some(o) = after.as_object_mut() {
            o.insert("comment".into(), json!(crate::error::bounded(comment, 200)));
        }
        let updated = store::find_approval(conn, id)?;
        Ok((
            updated,
            NewEvent::new(
                actor,
                if approve {
                    "agent.approval.approved"
                } else {
                    "agent.approval.rejected"
                },
                format!("approval:{id}"),
            )
            .after(after),
        ))
    })
}
