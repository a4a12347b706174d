//! Experiment tracking, as MLflow's: experiments hold runs; a run records its params, metrics
//! (each a series over steps), tags, the dataset version it learned from, the Steward version,
//! its status and duration, and artifacts (bytes in the blob store, named per run).
//!
//! A run is `running` until it is marked `finished` or `failed`. Each run names its owner
//! (`host:pid`) and beats a heartbeat while it works, so a run whose process died is marked
//! failed on the next start (same host, process gone) or once its heartbeat is stale.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde::Serialize;
use serde_json::json;

use crate::audit::{self, NewEvent};
use crate::data::blob::BlobStore;
use crate::db::schema::{experiments, run_artifacts, run_metrics, run_tags, runs};
use crate::db::{DbConnection, now};
use crate::error::AppError;

pub const RUNNING: &str = "running";
pub const FINISHED: &str = "finished";
pub const FAILED: &str = "failed";
/// A run an MLflow client ended with status KILLED.
pub const KILLED: &str = "killed";

/// The model kind of a run logged by an MLflow client ([`external`]): Steward trained
/// nothing, owns no process behind it, and never sweeps it as interrupted.
pub const EXTERNAL_KIND: &str = "mlflow";
/// Lifecycle stages, as MLflow names them.
pub const ACTIVE: &str = "active";
pub const DELETED: &str = "deleted";

pub mod external;
pub mod search;

/// A running run whose heartbeat is older than this is taken for dead.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = experiments)]
pub struct Experiment {
    pub name: String,
    pub created_at: chrono::NaiveDateTime,
    /// MLflow's experiment id (`Default` is 0, the others count up from 1).
    pub mlflow_id: Option<i64>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = runs)]
pub struct Run {
    pub id: String,
    pub experiment: String,
    pub model_kind: String,
    pub status: String,
    #[serde(skip)]
    pub params_json: String,
    pub dataset: String,
    pub dataset_version: i32,
    pub dataset_hash: String,
    pub steward_version: String,
    pub owner: String,
    pub error: Option<String>,
    pub created_by: String,
    pub started_at: chrono::NaiveDateTime,
    pub heartbeat_at: chrono::NaiveDateTime,
    pub finished_at: Option<chrono::NaiveDateTime>,
    pub duration_ms: Option<i64>,
    /// MLflow's lifecycle: `active`, or `deleted` (kept, hidden from lists, restorable).
    pub lifecycle_stage: String,
}

impl Run {
    pub fn params(&self) -> serde_json::Value {
        serde_json::from_str(&self.params_json).unwrap_or(serde_json::Value::Null)
    }

    pub fn short_id(&self) -> &str {
        self.id.get(..8).unwrap_or(&self.id)
    }

    /// The start of the dataset's hash, to tell versions apart at a glance.
    pub fn short_hash(&self) -> &str {
        self.dataset_hash.get(..12).unwrap_or(&self.dataset_hash)
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = run_metrics)]
pub struct RunMetric {
    #[serde(skip)]
    pub run_id: String,
    pub name: String,
    pub step: i32,
    pub value: f64,
    pub recorded_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = run_tags)]
pub struct RunTag {
    #[serde(skip)]
    pub run_id: String,
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = run_artifacts)]
pub struct RunArtifact {
    #[serde(skip)]
    pub run_id: String,
    pub name: String,
    pub hash: String,
    pub media_type: String,
    pub size_bytes: i64,
}

/// Whether a metric is a count (of rows: `rows`, `train_rows`, `holdout_rows`, or any
/// `*_rows`), printed as a whole number; every other metric is a measurement and keeps its
/// decimals, also when it happens to be whole (a ROC-AUC of 1.000).
pub fn is_count(name: &str) -> bool {
    name == "rows" || name.ends_with("_rows")
}

/// Metric series Steward records step by step: per-fold values (`cv_fold_*`), grid points
/// (`grid_*`) and per-round losses (`*_by_round`), and the per-fold `cv_<m>` series of runs
/// recorded before they were renamed. Their last step is no summary, so summaries (runs
/// tables, sort keys, registered versions, `/model/info`) leave them out; run pages plot them.
pub fn is_series(name: &str) -> bool {
    const LEGACY_FOLDS: [&str; 8] = [
        "cv_accuracy",
        "cv_precision",
        "cv_recall",
        "cv_f1",
        "cv_roc_auc",
        "cv_pr_auc",
        "cv_log_loss",
        "cv_brier",
    ];
    name.starts_with("cv_fold_")
        || name.starts_with("grid_")
        || name.ends_with("_by_round")
        || LEGACY_FOLDS.contains(&name)
}

/// Metrics where lower is better, for sorting runs best first.
pub fn lower_is_better(metric: &str) -> bool {
    ["log_loss", "brier", "logloss", "seconds", "_std"]
        .iter()
        .any(|m| metric.contains(m))
}

/// `host:pid:start@tag` of this process: who owns the runs it starts and the leases it holds.
/// `start` is the process's start time in clock ticks since boot (`/proc/<pid>/stat`, field
/// 22), so a later process that reuses the pid is not taken for the owner; `tag` names the pid
/// namespace and boot ([`namespace_tag`]), so a pid is only ever looked up in the namespace it
/// belongs to.
pub fn owner() -> String {
    let pid = std::process::id();
    let base = match process_state(pid) {
        Some((_, start)) => format!("{}:{pid}:{start}", hostname()),
        None => format!("{}:{pid}", hostname()),
    };
    match namespace_tag() {
        "" => base,
        tag => format!("{base}@{tag}"),
    }
}

/// An owner string without its namespace tag, and the tag ("" when it has none).
fn split_tag(owner: &str) -> (&str, &str) {
    owner.rsplit_once('@').unwrap_or((owner, ""))
}

/// A process's state letter and start time, from `/proc/<pid>/stat`; `None` when it is gone.
fn process_state(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state …`: the command may hold spaces and parentheses, so read after the
    // last `)`. The state is field 3 and the start time field 22.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether the process named by an owner string on this host still runs the run: the pid is
/// alive, not a zombie, and (for owners that recorded it) started when the owner did.
fn owner_alive(pid: u32, start: Option<u64>) -> bool {
    match process_state(pid) {
        None => false,
        Some(('Z' | 'X', _)) => false,
        Some((_, now)) => start.is_none_or(|s| s == now),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The experiment called `name`, created when missing with the next MLflow id (`Default` is
/// always 0). Two processes creating experiments at once may pick the same id: the loser's
/// insert fails on the unique index and it tries again.
pub fn ensure_experiment(conn: &mut DbConnection, name: &str) -> Result<Experiment, AppError> {
    for _ in 0..5 {
        if let Some(e) = find_experiment(conn, name)? {
            return Ok(e);
        }
        let next: Option<i64> = experiments::table
            .select(diesel::dsl::max(experiments::mlflow_id))
            .first(conn)?;
        let e = Experiment {
            name: name.to_owned(),
            created_at: now(),
            mlflow_id: Some(if name == DEFAULT_EXPERIMENT {
                0
            } else {
                next.unwrap_or(0).max(0) + 1
            }),
        };
        // In a savepoint: on PostgreSQL a refused insert would otherwise spoil the caller's
        // transaction, and the retry with it.
        match conn.transaction(|conn| {
            diesel::insert_into(experiments::table)
                .values(&e)
                .execute(conn)
        }) {
            Ok(_) => return Ok(e),
            // Created meanwhile (this name, or another with the same id): look again.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(AppError::Unavailable(format!(
        "experiment `{}` could not be created: others were being created at the same time",
        crate::error::bounded(name, 64)
    )))
}

/// MLflow's default experiment (id 0), where a run goes when the client names none.
pub const DEFAULT_EXPERIMENT: &str = "Default";

pub fn find_experiment(
    conn: &mut DbConnection,
    name: &str,
) -> Result<Option<Experiment>, AppError> {
    Ok(experiments::table
        .find(name)
        .select(Experiment::as_select())
        .first(conn)
        .optional()?)
}

#[derive(Debug, Clone, Serialize)]
pub struct ExperimentSummary {
    pub name: String,
    pub created_at: chrono::NaiveDateTime,
    pub runs: i64,
}

pub fn list_experiments(conn: &mut DbConnection) -> Result<Vec<ExperimentSummary>, AppError> {
    let all: Vec<Experiment> = experiments::table
        .order(experiments::name.asc())
        .select(Experiment::as_select())
        .load(conn)?;
    all.into_iter()
        .map(|e| {
            let n: i64 = runs::table
                .filter(runs::experiment.eq(&e.name))
                .filter(runs::lifecycle_stage.eq(ACTIVE))
                .count()
                .get_result(conn)?;
            Ok(ExperimentSummary {
                name: e.name,
                created_at: e.created_at,
                runs: n,
            })
        })
        .collect()
}

/// What a new run records up front.
pub struct NewRun<'a> {
    pub experiment: &'a str,
    pub model_kind: &'a str,
    pub params: serde_json::Value,
    pub dataset: &'a str,
    pub dataset_version: i32,
    pub dataset_hash: &'a str,
}

pub fn start_run(conn: &mut DbConnection, new: NewRun<'_>, actor: &str) -> Result<Run, AppError> {
    ensure_experiment(conn, new.experiment)?;
    let at = now();
    let run = Run {
        id: uuid::Uuid::new_v4().to_string(),
        experiment: new.experiment.to_owned(),
        model_kind: new.model_kind.to_owned(),
        status: RUNNING.to_owned(),
        params_json: new.params.to_string(),
        dataset: new.dataset.to_owned(),
        dataset_version: new.dataset_version,
        dataset_hash: new.dataset_hash.to_owned(),
        steward_version: env!("CARGO_PKG_VERSION").to_owned(),
        owner: owner(),
        error: None,
        created_by: actor.to_owned(),
        started_at: at,
        heartbeat_at: at,
        finished_at: None,
        duration_ms: None,
        lifecycle_stage: ACTIVE.to_owned(),
    };
    audit::with_event(conn, |conn| {
        diesel::insert_into(runs::table)
            .values(&run)
            .execute(conn)?;
        let event = NewEvent::new(actor, "run.start", format!("run:{}", run.id)).after(json!({
            "experiment": run.experiment,
            "model": run.model_kind,
            "dataset": run.dataset,
            "dataset_version": run.dataset_version,
            "params": new.params,
        }));
        Ok(((), event))
    })?;
    Ok(run)
}

/// Replaces a run's params: a grid search knows the chosen point only at the end.
pub fn set_params(
    conn: &mut DbConnection,
    run_id: &str,
    params: &serde_json::Value,
) -> Result<(), AppError> {
    diesel::update(runs::table.find(run_id))
        .set(runs::params_json.eq(params.to_string()))
        .execute(conn)?;
    Ok(())
}

pub fn heartbeat(conn: &mut DbConnection, run_id: &str) -> Result<(), AppError> {
    diesel::update(runs::table.find(run_id))
        .set(runs::heartbeat_at.eq(now()))
        .execute(conn)?;
    Ok(())
}

/// Records metric values; non-finite values (an undefined metric) are left out.
pub fn log_metrics(
    conn: &mut DbConnection,
    run_id: &str,
    values: &[(String, i32, f64)],
) -> Result<(), AppError> {
    let at = now();
    let rows: Vec<RunMetric> = values
        .iter()
        .filter(|(_, _, v)| v.is_finite())
        .map(|(name, step, value)| RunMetric {
            run_id: run_id.to_owned(),
            name: name.clone(),
            step: *step,
            value: *value,
            recorded_at: at,
        })
        .collect();
    // One transaction: one disk sync for the lot (the multi-backend connection has no
    // batch insert).
    conn.transaction(|conn| {
        for row in &rows {
            diesel::insert_into(run_metrics::table)
                .values(row)
                .execute(conn)?;
        }
        Ok(())
    })
}

pub fn set_tag(
    conn: &mut DbConnection,
    run_id: &str,
    name: &str,
    value: &str,
) -> Result<(), AppError> {
    conn.transaction(|conn| {
        diesel::delete(run_tags::table.find((run_id, name))).execute(conn)?;
        diesel::insert_into(run_tags::table)
            .values(RunTag {
                run_id: run_id.to_owned(),
                name: name.to_owned(),
                value: value.to_owned(),
            })
            .execute(conn)?;
        Ok(())
    })
}

/// Stores bytes in the blob store and records them as an artifact of the run.
pub fn add_artifact(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    run_id: &str,
    name: &str,
    media_type: &str,
    bytes: &[u8],
) -> Result<RunArtifact, AppError> {
    let stored = blobs.put(bytes)?;
    let artifact = RunArtifact {
        run_id: run_id.to_owned(),
        name: name.to_owned(),
        hash: stored.hash,
        media_type: media_type.to_owned(),
        size_bytes: bytes.len() as i64,
    };
    diesel::insert_into(run_artifacts::table)
        .values(&artifact)
        .execute(conn)?;
    Ok(artifact)
}

/// Marks a running run finished or failed, with an audit event. A run that is no longer
/// running (say, already swept as failed) is left alone and reported as a conflict.
pub fn end_run(
    conn: &mut DbConnection,
    run_id: &str,
    status: &str,
    error: Option<&str>,
    actor: &str,
) -> Result<Run, AppError> {
    audit::with_event(conn, |conn| {
        let run = find_run(conn, run_id)?;
        if run.status != RUNNING {
            return Err(AppError::Conflict(format!(
                "run {} is already {}",
                run.id, run.status
            )));
        }
        let at = now();
        let duration = (at - run.started_at).num_milliseconds().max(0);
        diesel::update(runs::table.find(run_id))
            .set((
                runs::status.eq(status),
                runs::error.eq(error),
                runs::finished_at.eq(Some(at)),
                runs::heartbeat_at.eq(at),
                runs::duration_ms.eq(Some(duration)),
            ))
            .execute(conn)?;
        let action = if status == FINISHED {
            "run.finish"
        } else {
            "run.fail"
        };
        let event = NewEvent::new(actor, action, format!("run:{run_id}"))
            .after(json!({ "status": status, "error": error, "duration_ms": duration }));
        Ok(((), event))
    })?;
    find_run(conn, run_id)
}

/// This process's lease holder id: its [`owner`] string (host, pid, start time and the tag of
/// its pid namespace and boot).
pub fn lease_holder() -> String {
    owner()
}

/// The pid namespace and boot this process runs in (`/proc/self/ns/pid`'s inode and
/// `/proc/sys/kernel/random/boot_id`), as 16 hex digits, so that two containers sharing a
/// hostname (each with its own pid 1) never take each other's processes for gone; empty when
/// `/proc` can't tell (then no lease holder is taken for gone before its lease expires, and
/// untagged run owners of this host are judged by pid as before).
fn namespace_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let ns = std::fs::read_link("/proc/self/ns/pid")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        if ns.is_empty() || boot.trim().is_empty() {
            return String::new();
        }
        let digest = blake3::hash(format!("{ns}|{}", boot.trim()).as_bytes()).to_hex();
        digest.as_str().get(..16).unwrap_or_default().to_owned()
    })
}

/// Whether the process a [`lease_holder`] id names is known to have ended: it ran in this
/// process's pid namespace on this boot of this host, and its pid is gone (or reused by a
/// later process). Anything else (another host or container, no tag): false, and its lease
/// is waited out.
pub fn lease_holder_gone(holder: &str) -> bool {
    !namespace_tag().is_empty() && owner_gone(holder, &hostname())
}

/// Whether a run's owner is known to be gone: it ran on this host and its process (identified
/// by pid and start time) no longer runs. An owner from before start times were recorded
/// (`host:pid`) counts as gone when its pid is dead or is this process's own.
fn owner_gone(owner: &str, host: &str) -> bool {
    if !owned_here(owner, host) {
        return false;
    }
    let (owner, _) = split_tag(owner);
    let mut parts = owner.rsplitn(3, ':');
    let (last, middle, first) = (parts.next(), parts.next(), parts.next());
    match (first, middle, last) {
        (Some(h), Some(pid), Some(start)) if h == host => {
            match (pid.parse::<u32>(), start.parse::<u64>()) {
                (Ok(pid), Ok(start)) => !owner_alive(pid, Some(start)),
                _ => false,
            }
        }
        (None, Some(h), Some(pid)) if h == host => pid
            .parse::<u32>()
            .is_ok_and(|pid| pid == std::process::id() || !owner_alive(pid, None)),
        _ => false,
    }
}

/// Runs that are running now: their owner is alive (or on another host) and their heartbeat
/// is fresh. Training refuses to start beside one.
pub fn live_runs(conn: &mut DbConnection) -> Result<Vec<Run>, AppError> {
    let host = hostname();
    let stale_before = now() - STALE_AFTER;
    Ok(runs::table
        .filter(runs::status.eq(RUNNING))
        .filter(runs::model_kind.ne(EXTERNAL_KIND))
        .select(Run::as_select())
        .load(conn)?
        .into_iter()
        .filter(|r| {
            (r.heartbeat_at >= stale_before || owned_here(&r.owner, &host))
                && !owner_gone(&r.owner, &host)
        })
        .collect())
}

/// Whether an owner ran on this host in this pid namespace and boot: its liveness
/// [`owner_gone`] can check directly, so its heartbeat's age says nothing (a long fit step
/// writes none). Owners of other hosts or containers are judged by their heartbeat alone.
fn owned_here(owner: &str, host: &str) -> bool {
    let (base, tag) = split_tag(owner);
    base.split(':').next() == Some(host) && tag == namespace_tag()
}

/// Marks failed every running run whose process is gone: one owned by this host whose process
/// no longer runs, or one owned elsewhere whose heartbeat is stale. A run of a live process on
/// this host is never swept, however long its fit step.
pub fn sweep_interrupted(conn: &mut DbConnection) -> Result<Vec<String>, AppError> {
    // An MLflow client's run has no process of ours behind it: its client ends it.
    let running: Vec<Run> = runs::table
        .filter(runs::status.eq(RUNNING))
        .filter(runs::model_kind.ne(EXTERNAL_KIND))
        .select(Run::as_select())
        .load(conn)?;
    let host = hostname();
    let stale_before = now() - STALE_AFTER;
    let mut swept = Vec::new();
    for run in running {
        let stale = run.heartbeat_at < stale_before && !owned_here(&run.owner, &host);
        if owner_gone(&run.owner, &host) || stale {
            let why = format!(
                "interrupted: its process ({}) ended before the run did",
                run.owner
            );
            match end_run(conn, &run.id, FAILED, Some(&why), "system") {
                Ok(_) | Err(AppError::Conflict(_)) => swept.push(run.id),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(swept)
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    #[test]
    fn owners_are_told_apart_by_start_time_and_zombies_are_dead() {
        let host = hostname();
        let me = owner();
        assert!(!owner_gone(&me, &host), "{me}");
        let pid = std::process::id();
        let tagged = |base: String| match namespace_tag() {
            "" => base,
            tag => format!("{base}@{tag}"),
        };
        // The same pid started at another time is another process.
        assert!(owner_gone(&tagged(format!("{host}:{pid}:1")), &host));
        // An old-style owner naming this very process is a run it did not start.
        assert!(owner_gone(&tagged(format!("{host}:{pid}")), &host));
        // Other hosts, and other pid namespaces of this host, are judged by their heartbeat.
        assert!(!owner_gone("elsewhere:1:1", &host));
        assert!(!owner_gone(
            &format!("{host}:{pid}:1@0123456789abcdef"),
            &host
        ));
        // A zombie: a child that exited and is not reaped yet.
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("spawn");
        let child_pid = child.id();
        let (_, start) = process_state(child_pid).expect("the child runs");
        let owner = tagged(format!("{host}:{child_pid}:{start}"));
        assert!(!owner_gone(&owner, &host));
        std::thread::sleep(std::time::Duration::from_millis(800));
        assert_eq!(process_state(child_pid).map(|(s, _)| s), Some('Z'));
        assert!(
            owner_gone(&owner, &host),
            "a zombie holds the pid but runs nothing"
        );
        let _ = child.wait();
    }
}

pub fn find_run(conn: &mut DbConnection, id: &str) -> Result<Run, AppError> {
    if let Some(run) = runs::table
        .find(id)
        .select(Run::as_select())
        .first(conn)
        .optional()?
    {
        return Ok(run);
    }
    // A unique prefix of at least 6 characters also names a run (the CLI shows 8).
    if id.len() >= 6 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        let mut found: Vec<Run> = runs::table
            .filter(runs::id.like(format!("{id}%")))
            .select(Run::as_select())
            .limit(2)
            .load(conn)?;
        if found.len() == 1 {
            return Ok(found.remove(0));
        }
        if found.len() > 1 {
            return Err(AppError::BadRequest(format!(
                "run id prefix `{id}` is ambiguous"
            )));
        }
    }
    Err(AppError::NotFound(format!("no run `{id}`")))
}

pub fn list_runs(
    conn: &mut DbConnection,
    experiment: Option<&str>,
    limit: i64,
) -> Result<Vec<Run>, AppError> {
    // Runs deleted through MLflow's API are kept (restorable) but listed nowhere.
    let mut q = runs::table
        .filter(runs::lifecycle_stage.eq(ACTIVE))
        .select(Run::as_select())
        .order(runs::started_at.desc())
        .then_order_by(runs::id.asc())
        .limit(limit.clamp(1, 10_000))
        .into_boxed();
    if let Some(e) = experiment {
        q = q.filter(runs::experiment.eq(e.to_owned()));
    }
    Ok(q.load(conn)?)
}

#[derive(Serialize)]
pub struct RunRow {
    #[serde(flatten)]
    pub run: Run,
    pub metrics: BTreeMap<String, f64>,
}

/// Runs with their latest metric values, newest first or sorted by a metric (best first).
pub fn runs_table(
    conn: &mut DbConnection,
    experiment: Option<&str>,
    sort: Option<&str>,
    limit: i64,
) -> Result<Vec<RunRow>, AppError> {
    if let Some(name) = experiment {
        let exists: i64 = experiments::table
            .filter(experiments::name.eq(name))
            .count()
            .get_result(conn)?;
        if exists == 0 {
            return Err(AppError::NotFound(format!(
                "no experiment `{}`",
                crate::error::bounded(name, 64)
            )));
        }
    }
    if let Some(key) = sort {
        check_sort_key(conn, key)?;
    }
    let runs = list_runs(conn, experiment, limit)?;
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mut metrics = latest_metrics(conn, &ids)?;
    let mut rows: Vec<RunRow> = runs
        .into_iter()
        .map(|run| RunRow {
            metrics: metrics.remove(&run.id).unwrap_or_default(),
            run,
        })
        .collect();
    if let Some(key) = sort {
        let lower = lower_is_better(key);
        rows.sort_by(|a, b| match (a.metrics.get(key), b.metrics.get(key)) {
            (Some(x), Some(y)) if lower => x.total_cmp(y),
            (Some(x), Some(y)) => y.total_cmp(x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    Ok(rows)
}

/// A sort key must be a summary metric: one training produces (`cv_<m>_mean`, `holdout_<m>`,
/// ...) or one a run recorded; a series (`cv_fold_<m>`, per-round) or an unknown name is a 422
/// naming `sort`, never silently "unsorted".
pub fn check_sort_key(conn: &mut DbConnection, key: &str) -> Result<(), AppError> {
    let known = crate::ml::selectable_metrics().iter().any(|m| m == key) || {
        let recorded: i64 = run_metrics::table
            .filter(run_metrics::name.eq(key))
            .count()
            .get_result(conn)?;
        recorded > 0
    };
    if !known || is_series(key) {
        return Err(AppError::validation(
            "sort",
            format!(
                "`{}` is no summary metric; try cv_roc_auc_mean, cv_f1_mean, holdout_roc_auc or \
                 another cv_<metric>_mean or holdout_<metric>",
                crate::error::bounded(key, 64)
            ),
        ));
    }
    Ok(())
}

pub fn metrics_of(conn: &mut DbConnection, run_id: &str) -> Result<Vec<RunMetric>, AppError> {
    Ok(run_metrics::table
        .filter(run_metrics::run_id.eq(run_id))
        .order((
            run_metrics::name.asc(),
            run_metrics::step.asc(),
            run_metrics::recorded_at.asc(),
        ))
        .select(RunMetric::as_select())
        .load(conn)?)
}

/// The last step's value of each metric, per run (at one step, the last recorded: MLflow's
/// "latest" metric).
pub fn latest_metrics(
    conn: &mut DbConnection,
    run_ids: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, f64>>, AppError> {
    let mut out: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for chunk in run_ids.chunks(500) {
        let rows: Vec<RunMetric> = run_metrics::table
            .filter(run_metrics::run_id.eq_any(chunk))
            .order((run_metrics::step.asc(), run_metrics::recorded_at.asc()))
            .select(RunMetric::as_select())
            .load(conn)?;
        for m in rows.into_iter().filter(|m| !is_series(&m.name)) {
            out.entry(m.run_id).or_default().insert(m.name, m.value);
        }
    }
    Ok(out)
}

pub fn tags_of(conn: &mut DbConnection, run_id: &str) -> Result<Vec<RunTag>, AppError> {
    Ok(run_tags::table
        .filter(run_tags::run_id.eq(run_id))
        .order(run_tags::name.asc())
        .select(RunTag::as_select())
        .load(conn)?)
}

pub fn artifacts_of(conn: &mut DbConnection, run_id: &str) -> Result<Vec<RunArtifact>, AppError> {
    Ok(run_artifacts::table
        .filter(run_artifacts::run_id.eq(run_id))
        .order(run_artifacts::name.asc())
        .select(RunArtifact::as_select())
        .load(conn)?)
}

/// An artifact's record and bytes; the bytes are verified against the recorded hash.
pub fn read_artifact(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    run_id: &str,
    name: &str,
) -> Result<(RunArtifact, Vec<u8>), AppError> {
    let artifact = find_artifact(conn, run_id, name)?;
    let bytes = blobs.get(&artifact.hash)?;
    Ok((artifact, bytes))
}

/// A run's artifact row (its blob's hash and media type), without its bytes: a request
/// handler reads the bytes after giving its store connection back.
///
/// Errors: NotFound when the run has no artifact of that name; the store's.
pub fn find_artifact(
    conn: &mut DbConnection,
    run_id: &str,
    name: &str,
) -> Result<RunArtifact, AppError> {
    run_artifacts::table
        .find((run_id, name))
        .select(RunArtifact::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("run {run_id} has no artifact `{name}`")))
}

/// A run with everything recorded about it.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: Run,
    pub params: serde_json::Value,
    /// The last value of each metric that is no series ([`is_series`]).
    pub metrics: BTreeMap<String, f64>,
    /// Each metric's values over its steps, for those with more than one step.
    pub history: BTreeMap<String, Vec<(i32, f64)>>,
    pub tags: BTreeMap<String, String>,
    pub artifacts: Vec<RunArtifact>,
}

pub fn run_detail(conn: &mut DbConnection, id: &str) -> Result<RunDetail, AppError> {
    let run = find_run(conn, id)?;
    let mut metrics = BTreeMap::new();
    let mut history: BTreeMap<String, Vec<(i32, f64)>> = BTreeMap::new();
    for m in metrics_of(conn, &run.id)? {
        if !is_series(&m.name) {
            metrics.insert(m.name.clone(), m.value);
        }
        history.entry(m.name).or_default().push((m.step, m.value));
    }
    history.retain(|_, v| v.len() > 1);
    let tags = tags_of(conn, &run.id)?
        .into_iter()
        .map(|t| (t.name, t.value))
        .collect();
    Ok(RunDetail {
        params: run.params(),
        artifacts: artifacts_of(conn, &run.id)?,
        run,
        metrics,
        history,
        tags,
    })
}

/// One row of a side-by-side comparison.
#[derive(Debug, Clone, Serialize)]
pub struct CompareRow<T> {
    pub name: String,
    pub a: Option<T>,
    pub b: Option<T>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub a: RunDetail,
    pub b: RunDetail,
    pub params: Vec<CompareRow<serde_json::Value>>,
    pub metrics: Vec<CompareRow<f64>>,
}

impl CompareRow<f64> {
    /// b − a, when both have the metric.
    pub fn delta(&self) -> Option<f64> {
        Some(self.b? - self.a?)
    }
}

pub fn compare(conn: &mut DbConnection, a: &str, b: &str) -> Result<Comparison, AppError> {
    let a = run_detail(conn, a)?;
    let b = run_detail(conn, b)?;
    let obj = |v: &serde_json::Value| v.as_object().cloned().unwrap_or_default();
    let (pa, pb) = (obj(&a.params), obj(&b.params));
    let mut names: Vec<String> = pa.keys().chain(pb.keys()).cloned().collect();
    names.sort();
    names.dedup();
    let params = names
        .into_iter()
        .map(|n| CompareRow {
            a: pa.get(&n).cloned(),
            b: pb.get(&n).cloned(),
            name: n,
        })
        .collect();
    let mut names: Vec<String> = a.metrics.keys().chain(b.metrics.keys()).cloned().collect();
    names.sort();
    names.dedup();
    let metrics = names
        .into_iter()
        .map(|n| CompareRow {
            a: a.metrics.get(&n).copied(),
            b: b.metrics.get(&n).copied(),
            name: n,
        })
        .collect();
    Ok(Comparison {
        a,
        b,
        params,
        metrics,
    })
}
