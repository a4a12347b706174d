//! The in-process job scheduler: named jobs on fixed intervals, on the tokio runtime, stopped
//! by a cancellation token at shutdown. Capabilities register their jobs in
//! [`crate::startup::register_jobs`]; a job's store work goes through `Db::run`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::telemetry::{SCHEDULER_JOB_DURATION_SECONDS, SCHEDULER_JOB_RUNS_TOTAL};

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

    /// Starts every job; each first runs one interval after start. A job that fails is logged
    /// and counted, and runs again at its next tick.
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
                    let outcome = match (job.run)(state.clone()).await {
                        Ok(()) => "success",
                        Err(e) => {
                            tracing::warn!(job = job.name, error = %e, "scheduled job failed");
                            "failure"
                        }
                    };
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
