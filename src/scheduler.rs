//! The in-process job scheduler: named jobs on fixed intervals, on the tokio runtime, stopped
//! by a cancellation token at shutdown. Capabilities register their jobs in
//! [`crate::startup::register_jobs`]; a job's store work goes through `Db::run`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::telemetry::{
    SCHEDULER_JOB_DURATION_SECONDS, SCHEDULER_JOB_PANICS_TOTAL, SCHEDULER_JOB_RUNS_TOTAL,
};

type JobFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type JobFn = Arc<dyn Fn(AppState) -> JobFuture + Send + Sync>;

struct Job {
    name: &'static str,
    every: Duration,
    run: JobFn,
}

#[derive(Default)]
pub struct Scheduler {
    jobs: Vec<Job>,
}

impl Scheduler {
    pub fn register<F, Fut>(&mut self, name: &'static str, every: Duration, job: F)
    where
        F: Fn(AppState) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.jobs.push(Job {
            name,
            every,
            run: Arc::new(move |state| Box::pin(job(state))),
        });
    }

    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|j| j.name).collect()
    }

    /// Starts every job; each first runs one interval after start. A job that fails or panics
    /// is logged and counted, and runs again at its next tick: a panic ends that run, never
    /// the job's loop.
    pub fn start(self, state: AppState, stop: CancellationToken) -> JoinSet<()> {
        let mut set = JoinSet::new();
        for job in self.jobs {
            let state = state.clone();
            let stop = stop.clone();
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
                    let outcome = tick(job.name, || (job.run)(state.clone())).await;
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
