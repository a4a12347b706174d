//! The in-process job scheduler: named jobs on fixed intervals, on the tokio runtime, stopped
//! by a cancellation token at shutdown. Capabilities register their jobs in
//! [`crate::startup::register_jobs`]; a job's store work goes through `Db::run`.
//!
//! A job is of the store ([`Scope::Store`]: drift checks, the weekly report, sweeps) or of the
//! process ([`Scope::Process`]: its serving slot, its gauges). Replicas sharing a store run a
//! store job once per interval between them: at each tick a process takes the job's lease
//! ([`crate::db::lease`]) only when no run holds it and the last run started an interval ago
//! (within a tenth), renews it every third of `scheduler.lease_secs` while the job runs, and
//! frees it at the end. A replica killed mid-run holds the lease until it expires; then the
//! next replica's tick takes the job. Only `api` replicas run no store job.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Role;
use crate::db::lease;
use crate::state::AppState;
use crate::telemetry::{
    SCHEDULER_JOB_DURATION_SECONDS, SCHEDULER_JOB_PANICS_TOTAL, SCHEDULER_JOB_RUNS_TOTAL,
};

type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type JobFn = Arc<dyn Fn(AppState) -> JobFuture + Send + Sync>;

/// Whose a job is: the store's (once per interval across replicas) or each process's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Store,
    Process,
}

struct Job {
    name: &'static str,
    every: Duration,
    scope: Scope,
    run: JobFn,
}

/// The name of a store job's lease.
pub fn lease_name(job: &str) -> String {
    format!("job:{job}")
}

#[derive(Default)]
pub struct Scheduler {
    jobs: Vec<Job>,
}

impl Scheduler {
    pub fn register<F, Fut>(&mut self, name: &'static str, every: Duration, scope: Scope, job: F)
    where
        F: Fn(AppState) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.jobs.push(Job {
            name,
            every,
            scope,
            run: Arc::new(move |state| Box::pin(job(state))),
        });
    }

    /// The jobs a process of this role runs.
    pub fn job_names(&self, role: Role) -> Vec<&'static str> {
        self.jobs
            .iter()
            .filter(|j| role.works() || j.scope == Scope::Process)
            .map(|j| j.name)
            .collect()
    }

    /// Starts the jobs of `role`; each first runs one interval after start. A job that fails
    /// or panics is logged and counted, and runs again at its next tick: a panic ends that
    /// run, never the job's loop. A store job's tick that another replica's run holds or ran
    /// within the interval is counted as `skipped`.
    pub fn start(self, state: AppState, stop: CancellationToken, role: Role) -> JoinSet<()> {
        let mut set = JoinSet::new();
        let holder: Arc<str> = crate::tracking::lease_holder().into();
        for job in self.jobs {
            if !role.works() && job.scope == Scope::Store {
                continue;
            }
            let state = state.clone();
            let stop = stop.clone();
            let holder = holder.clone();
            set.spawn(async move {
                let mut ticks = tokio::time::interval_at(
                    tokio::time::Instant::now() + job.every,
                    job.every,
                );
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = ticks.tick() => {}
                    }
                    let started = Instant::now();
                    let outcome = match job.scope {
                        Scope::Process => tick(job.name, || (job.run)(state.clone())).await,
                        Scope::Store => store_tick(&state, &job, &holder).await,
                    };
                    if outcome == "skipped" {
                        metrics::counter!(SCHEDULER_JOB_RUNS_TOTAL, "job" => job.name, "outcome" => outcome)
                            .increment(1);
                        continue;
                    }
                    metrics::counter!(SCHEDULER_JOB_RUNS_TOTAL, "job" => job.name, "outcome" => outcome)
                        .increment(1);
                    metrics::histogram!(SCHEDULER_JOB_DURATION_SECONDS, "job" => job.name)
                        .record(started.elapsed().as_secs_f64());
                }
            });
        }
        set
    }
}

/// One tick of a store job: takes its lease for one run (or "skipped"), runs it with the lease
/// renewed every third of `scheduler.lease_secs`, then frees the lease.
async fn store_tick(state: &AppState, job: &Job, holder: &Arc<str>) -> &'static str {
    let name = lease_name(job.name);
    let ttl = lease_ttl(state);
    // Within a tenth of the interval: replicas' ticks drift apart by their start times.
    let gap =
        chrono::Duration::from_std(job.every.mul_f64(0.9)).unwrap_or(chrono::Duration::zero());
    let (lease, me) = (name.clone(), holder.clone());
    let taken = state
        .db
        .run(move |conn| {
            lease::take(
                conn,
                &lease,
                &me,
                ttl,
                lease::Take::Run { gap },
                &crate::tracking::lease_holder_gone,
            )
        })
        .await;
    match taken {
        Ok(t) if t.held() => {}
        Ok(_) => return "skipped",
        Err(e) => {
            tracing::warn!(job = job.name, error = %e, "taking the job's lease failed");
            return "failure";
        }
    }
    let renewing = lease::keep_renewed(state.db.clone(), name.clone(), holder.clone(), ttl);
    let outcome = tick(job.name, || (job.run)(state.clone())).await;
    renewing.abort();
    let me = holder.clone();
    if let Err(e) = state
        .db
        .run(move |conn| lease::release(conn, &name, &me))
        .await
    {
        // It expires by itself.
        tracing::warn!(job = job.name, error = %e, "freeing the job's lease failed");
    }
    outcome
}

/// A lease's length, `scheduler.lease_secs`.
pub fn lease_ttl(state: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(state.settings.scheduler.lease_secs).unwrap_or(30))
}

/// Runs one tick of a job: "success", "failure", or "panic" (logged and counted; the job's
/// loop goes on). Building the future may panic as well as running it.
async fn tick(name: &'static str, make: impl FnOnce() -> JobFuture) -> &'static str {
    let run = std::panic::AssertUnwindSafe(async move { make().await });
    match run.catch_unwind().await {
        Ok(Ok(())) => "success",
        Ok(Err(e)) => {
            tracing::warn!(job = name, error = %e, "scheduled job failed");
            "failure"
        }
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".into());
            tracing::error!(job = name, panic = %why, "scheduled job panicked; it runs again at its next tick");
            metrics::counter!(SCHEDULER_JOB_PANICS_TOTAL, "job" => name).increment(1);
            "panic"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A tick that panics, in building its future or in running it, is an outcome like any
    /// other, and the next tick runs.
    #[tokio::test]
    async fn a_panicking_job_runs_again() {
        let runs = AtomicUsize::new(0);
        let mut outcomes = Vec::new();
        for n in 0..4 {
            runs.fetch_add(1, Ordering::SeqCst);
            let outcome = tick("test", move || -> JobFuture {
                if n == 0 {
                    panic!("building the run fails hard");
                }
                Box::pin(async move {
                    if n == 1 {
                        panic!("running fails hard");
                    }
                    if n == 2 {
                        anyhow::bail!("an ordinary failure");
                    }
                    Ok(())
                })
            })
            .await;
            outcomes.push(outcome);
        }
        assert_eq!(outcomes, ["panic", "panic", "failure", "success"]);
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }
}
