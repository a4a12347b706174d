//! Runs logged by an MLflow client through MLflow's REST API (`crate::api::mlflow`), with
//! MLflow's rules: params are immutable once logged (the same value again is fine), metrics are
//! append-only points (step, timestamp, value), tags can be set and deleted, a run can be
//! deleted (kept, hidden) and restored. Limits are MLflow's own: keys of at most 250
//! characters, param values of 6000, tag values of 8000, and a batch of at most 1000 metrics,
//! 100 params and 100 tags.
//!
//! Only runs an MLflow client started ([`super::EXTERNAL_KIND`]) can be changed this way: a
//! run Steward trained is the record behind its registered versions and stays as trained.
//! Every change is one transaction with its audit event.

use std::collections::BTreeMap;

use diesel::prelude::*;
use serde_json::json;

use super::{
    ACTIVE, DELETED, EXTERNAL_KIND, FAILED, FINISHED, KILLED, RUNNING, Run, RunMetric, RunTag,
    ensure_experiment,
};
use crate::audit::{self, NewEvent};
use crate::db::schema::{run_metrics, run_tags, runs};
use crate::db::{DbConnection, now};
use crate::error::{AppError, bounded};

/// Longest key of a param, metric or tag (MLflow's `MAX_ENTITY_KEY_LENGTH`).
pub const MAX_KEY_CHARS: usize = 250;
/// Longest param value (MLflow's `MAX_PARAM_VAL_LENGTH`).
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;
/// Longest tag value (MLflow's `MAX_TAG_VAL_LENGTH`).
pub const MAX_TAG_VALUE_CHARS: usize = 8000;
/// Most metrics, params and tags in one `log-batch` (MLflow's `MAX_METRICS_PER_BATCH`,
/// `MAX_PARAMS_TAGS_PER_BATCH`).
pub const MAX_BATCH_METRICS: usize = 1000;
pub const MAX_BATCH_PARAMS: usize = 100;
pub const MAX_BATCH_TAGS: usize = 100;
/// The tag MLflow keeps a run's name in.
pub const RUN_NAME_TAG: &str = "mlflow.runName";
/// Who owns an MLflow client's run: no process of ours.
pub const OWNER: &str = "mlflow-client";

/// One metric point: a value at a step and a time (milliseconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub key: String,
    pub value: f64,
    pub timestamp_ms: i64,
    pub step: i64,
}

/// What one `log-batch` (or `log-metric`, `log-parameter`, `set-tag`) records.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<Point>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// MLflow's rule for a key: letters, digits, `_`, `-`, `.`, ` `, `/` and `:`, at most
/// [`MAX_KEY_CHARS`]; a 400 naming `field` otherwise.
pub fn check_key(field: &str, key: &str) -> Result<(), AppError> {
    if key.is_empty() {
        return Err(AppError::validation(field, "must not be empty"));
    }
    if key.chars().count() > MAX_KEY_CHARS {
        return Err(AppError::validation(
            field,
            format!("must be at most {MAX_KEY_CHARS} characters"),
        ));
    }
    let ok = key
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':'));
    if !ok || key.starts_with('/') || key.split('/').any(|part| part == "..") {
        return Err(AppError::validation(
            field,
            format!(
                "`{}` is no valid name: use letters, digits, underscores (_), dashes (-), \
                 periods (.), spaces ( ), colons (:) and slashes (/)",
                bounded(key, 64)
            ),
        ));
    }
    Ok(())
}

fn check_value(field: &str, value: &str, max: usize) -> Result<(), AppError> {
    if value.chars().count() > max {
        return Err(AppError::validation(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Milliseconds since the epoch as a time; a 400 naming `field` when out of range.
pub fn from_millis(field: &str, ms: i64) -> Result<chrono::NaiveDateTime, AppError> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.naive_utc())
        .filter(|t| t.and_utc().timestamp() >= 0)
        .ok_or_else(|| AppError::validation(field, "is no time (milliseconds since 1970)"))
}

pub fn millis(t: chrono::NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

impl Batch {
    /// Checks the batch against MLflow's limits and rules before anything is written.
    pub fn check(&self) -> Result<(), AppError> {
        for (field, n, max) in [
            ("metrics", self.metrics.len(), MAX_BATCH_METRICS),
            ("params", self.params.len(), MAX_BATCH_PARAMS),
            ("tags", self.tags.len(), MAX_BATCH_TAGS),
        ] {
            if n > max {
                return Err(AppError::validation(
                    field,
                    format!(
                        "A batch logging request can contain at most {max} {field}. Got {n} {field}."
                    ),
                ));
            }
        }
        for (i, p) in self.metrics.iter().enumerate() {
            check_key(&format!("metrics[{i}].key"), &p.key)?;
            if !p.value.is_finite() {
                return Err(AppError::validation(
                    &format!("metrics[{i}].value"),
                    "must be a finite number (Steward stores no NaN or infinite metric values)",
                ));
            }
            if i32::try_from(p.step).is_err() {
                return Err(AppError::validation(
                    &format!("metrics[{i}].step"),
                    format!("must be between {} and {}", i32::MIN, i32::MAX),
                ));
            }
            from_millis(&format!("metrics[{i}].timestamp"), p.timestamp_ms)?;
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (i, (k, v)) in self.params.iter().enumerate() {
            check_key(&format!("params[{i}].key"), k)?;
            check_value(&format!("params[{i}].value"), v, MAX_PARAM_VALUE_CHARS)?;
            if seen.insert(k, v).is_some_and(|earlier| earlier != v) {
                return Err(AppError::validation(
                    &format!("params[{i}].key"),
                    format!(
                        "Duplicate parameter keys have been submitted: `{}` with different values",
                        bounded(k, 64)
                    ),
                ));
            }
        }
        for (i, (k, v)) in self.tags.iter().enumerate() {
            check_key(&format!("tags[{i}].key"), k)?;
            check_value(&format!("tags[{i}].value"), v, MAX_TAG_VALUE_CHARS)?;
        }
        Ok(())
    }
}

/// A new MLflow client run: its experiment, name, start time and first tags.
pub struct NewRun<'a> {
    pub experiment: &'a str,
    pub run_name: Option<&'a str>,
    pub start_time_ms: Option<i64>,
    pub tags: Vec<(String, String)>,
}

/// Starts a run for an MLflow client, in `RUNNING`, with its tags (the run's name becomes the
/// `mlflow.runName` tag, as MLflow keeps it).
pub fn start(conn: &mut DbConnection, new: NewRun<'_>, actor: &str) -> Result<Run, AppError> {
    let mut tags = new.tags;
    if let Some(name) = new.run_name.filter(|n| !n.is_empty()) {
        tags.retain(|(k, _)| k != RUN_NAME_TAG);
        tags.push((RUN_NAME_TAG.to_owned(), name.to_owned()));
    }
    Batch {
        tags: tags.clone(),
        ..Batch::default()
    }
    .check()?;
    let started = match new.start_time_ms {
        Some(ms) => from_millis("start_time", ms)?,
        None => now(),
    };
    ensure_experiment(conn, new.experiment)?;
    let run = Run {
        id: uuid::Uuid::new_v4().simple().to_string(),
        experiment: new.experiment.to_owned(),
        model_kind: EXTERNAL_KIND.to_owned(),
        status: RUNNING.to_owned(),
        params_json: "{}".to_owned(),
        dataset: String::new(),
        dataset_version: 0,
        dataset_hash: String::new(),
        steward_version: env!("CARGO_PKG_VERSION").to_owned(),
        owner: OWNER.to_owned(),
        error: None,
        created_by: actor.to_owned(),
        started_at: started,
        heartbeat_at: now(),
        finished_at: None,
        duration_ms: None,
        lifecycle_stage: ACTIVE.to_owned(),
    };
    audit::with_event(conn, |conn| {
        diesel::insert_into(runs::table)
            .values(&run)
            .execute(conn)?;
        for (k, v) in &tags {
            diesel::insert_into(run_tags::table)
                .values(RunTag {
                    run_id: run.id.clone(),
                    name: k.clone(),
                    value: v.clone(),
                })
                .execute(conn)?;
        }
        let event = NewEvent::new(actor, "run.start", format!("run:{}", run.id)).after(json!({
            "experiment": run.experiment,
            "model": EXTERNAL_KIND,
            "source": "mlflow",
            "run_name": new.run_name.map(|n| bounded(n, 100)),
        }));
        Ok(((), event))
    })?;
    Ok(run)
}

/// The experiment with MLflow id `id`. `"0"` is `Default`: made when a run is started in it
/// (`create`, a write whose `run.start` event names it); a read of it before then sees it
/// empty and writes nothing.
pub fn experiment_by_id(
    conn: &mut DbConnection,
    id: &str,
    create: bool,
) -> Result<super::Experiment, AppError> {
    use crate::db::schema::experiments;
    if id == "0" {
        if create {
            return ensure_experiment(conn, super::DEFAULT_EXPERIMENT);
        }
        return Ok(
            super::find_experiment(conn, super::DEFAULT_EXPERIMENT)?.unwrap_or(super::Experiment {
                name: super::DEFAULT_EXPERIMENT.to_owned(),
                created_at: now(),
                mlflow_id: Some(0),
            }),
        );
    }
    let not_found =
        || AppError::NotFound(format!("No Experiment with id={} exists", bounded(id, 64)));
    // Ids are written as MLflow writes them: digits, no sign, no leading zero.
    if id.is_empty() || id.starts_with('0') || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(not_found());
    }
    let number: i64 = id.parse().map_err(|_| not_found())?;
    experiments::table
        .filter(experiments::mlflow_id.eq(number))
        .select(super::Experiment::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)
}

/// Every experiment, oldest first (at most `limit`).
pub fn experiments(
    conn: &mut DbConnection,
    limit: i64,
) -> Result<Vec<super::Experiment>, AppError> {
    use crate::db::schema::experiments;
    Ok(experiments::table
        .order(experiments::created_at.asc())
        .then_order_by(experiments::name.asc())
        .limit(limit)
        .select(super::Experiment::as_select())
        .load(conn)?)
}

/// The run by its exact id (MLflow's ids are whole; no prefixes here).
pub fn find(conn: &mut DbConnection, run_id: &str) -> Result<Run, AppError> {
    runs::table
        .find(run_id)
        .select(Run::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("Run with id={} not found", bounded(run_id, 64))))
}

/// The run, when an MLflow client may change it: one of its own, and active.
pub fn writable(conn: &mut DbConnection, run_id: &str) -> Result<Run, AppError> {
    let run = find(conn, run_id)?;
    if run.model_kind != EXTERNAL_KIND {
        return Err(AppError::Conflict(format!(
            "run {} was trained by Steward: its record is read-only through MLflow's API",
            run.id
        )));
    }
    if run.lifecycle_stage != ACTIVE {
        return Err(AppError::validation(
            "run_id",
            format!(
                "The run {} must be in the 'active' state. Current state is {}.",
                run.id, run.lifecycle_stage
            ),
        ));
    }
    Ok(run)
}

/// A run's params as MLflow sees them: strings (a param Steward recorded as a number or a
/// list shows as its JSON text).
pub fn params_of(run: &Run) -> BTreeMap<String, String> {
    match run.params() {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Records a batch in one transaction with one audit event. A param logged before with
/// another value refuses the whole batch (400 naming it); a metric point logged twice (same
/// step, time and value) is kept once.
pub fn log_batch(
    conn: &mut DbConnection,
    run_id: &str,
    batch: &Batch,
    actor: &str,
) -> Result<(), AppError> {
    batch.check()?;
    audit::with_event(conn, |conn| {
        let run = writable(conn, run_id)?;
        if !batch.params.is_empty() {
            let mut params = match run.params() {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            let known = params_of(&run);
            for (k, v) in &batch.params {
                match known.get(k) {
                    Some(old) if old != v => {
                        return Err(AppError::validation(
                            "params",
                            format!(
                                "Changing param values is not allowed. Param with key='{}' was \
                                 already logged with value='{}' for run ID='{}'. Attempted \
                                 logging new value '{}'.",
                                bounded(k, 100),
                                bounded(old, 100),
                                run.id,
                                bounded(v, 100)
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        params.insert(k.clone(), serde_json::Value::String(v.clone()));
                    }
                }
            }
            diesel::update(runs::table.find(&run.id))
                .set(runs::params_json.eq(serde_json::Value::Object(params).to_string()))
                .execute(conn)?;
        }
        for p in &batch.metrics {
            let point = RunMetric {
                run_id: run.id.clone(),
                name: p.key.clone(),
                step: i32::try_from(p.step).unwrap_or(i32::MAX),
                value: p.value,
                recorded_at: from_millis("timestamp", p.timestamp_ms)?,
            };
            // The same point again is the same point (MLflow keeps it once, too).
            let exists: i64 = run_metrics::table
                .filter(run_metrics::run_id.eq(&point.run_id))
                .filter(run_metrics::name.eq(&point.name))
                .filter(run_metrics::step.eq(point.step))
                .filter(run_metrics::recorded_at.eq(point.recorded_at))
                .filter(run_metrics::value.eq(point.value))
                .count()
                .get_result(conn)?;
            if exists == 0 {
                diesel::insert_into(run_metrics::table)
                    .values(&point)
                    .execute(conn)?;
            }
        }
        for (k, v) in &batch.tags {
            diesel::delete(run_tags::table.find((&run.id, k))).execute(conn)?;
            diesel::insert_into(run_tags::table)
                .values(RunTag {
                    run_id: run.id.clone(),
                    name: k.clone(),
                    value: v.clone(),
                })
                .execute(conn)?;
        }
        diesel::update(runs::table.find(&run.id))
            .set(runs::heartbeat_at.eq(now()))
            .execute(conn)?;
        // The event names what was logged, a bounded number of keys of each kind.
        let keys = |it: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            it.take(20).map(|k| bounded(k, 100)).collect()
        };
        let event = NewEvent::new(actor, "run.log", format!("run:{}", run.id)).after(json!({
            "metrics": batch.metrics.len(),
            "params": batch.params.len(),
            "tags": batch.tags.len(),
            "metric_keys": keys(&mut batch.metrics.iter().map(|p| &p.key)),
            "param_keys": keys(&mut batch.params.iter().map(|(k, _)| k)),
            "tag_keys": keys(&mut batch.tags.iter().map(|(k, _)| k)),
        }));
        Ok(((), event))
    })
}

/// Deletes a tag; a tag the run does not have is a 404, as in MLflow.
pub fn delete_tag(
    conn: &mut DbConnection,
    run_id: &str,
    key: &str,
    actor: &str,
) -> Result<(), AppError> {
    check_key("key", key)?;
    audit::with_event(conn, |conn| {
        let run = writable(conn, run_id)?;
        let n = diesel::delete(run_tags::table.find((&run.id, key))).execute(conn)?;
        if n == 0 {
            return Err(AppError::NotFound(format!(
                "No tag with name: {} in run with id {}",
                bounded(key, 100),
                run.id
            )));
        }
        let event = NewEvent::new(actor, "run.tag.delete", format!("run:{}", run.id))
            .before(json!({ "tag": bounded(key, 100) }));
        Ok(((), event))
    })
}

/// MLflow's run statuses and Steward's.
pub fn status_from_mlflow(status: &str) -> Result<&'static str, AppError> {
    match status {
        "RUNNING" | "SCHEDULED" => Ok(RUNNING),
        "FINISHED" => Ok(FINISHED),
        "FAILED" => Ok(FAILED),
        "KILLED" => Ok(KILLED),
        _ => Err(AppError::validation(
            "status",
            "must be one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED",
        )),
    }
}

pub fn status_to_mlflow(status: &str) -> &'static str {
    match status {
        RUNNING => "RUNNING",
        FINISHED => "FINISHED",
        KILLED => "KILLED",
        _ => "FAILED",
    }
}

/// MLflow's `update-run`: a new status (ending the run when it is not RUNNING), an end time,
/// a new name.
pub fn update(
    conn: &mut DbConnection,
    run_id: &str,
    status: Option<&str>,
    end_time_ms: Option<i64>,
    run_name: Option<&str>,
    actor: &str,
) -> Result<Run, AppError> {
    let status = status.map(status_from_mlflow).transpose()?;
    let end = end_time_ms
        .map(|ms| from_millis("end_time", ms))
        .transpose()?;
    if let Some(name) = run_name {
        check_value("run_name", name, MAX_TAG_VALUE_CHARS)?;
    }
    audit::with_event(conn, |conn| {
        let run = writable(conn, run_id)?;
        if let Some(status) = status {
            let ended = status != RUNNING;
            let finished = if ended {
                Some(end.unwrap_or_else(now))
            } else {
                None
            };
            let duration = finished.map(|f| (f - run.started_at).num_milliseconds().max(0));
            diesel::update(runs::table.find(&run.id))
                .set((
                    runs::status.eq(status),
                    runs::finished_at.eq(finished),
                    runs::duration_ms.eq(duration),
                    runs::heartbeat_at.eq(now()),
                ))
                .execute(conn)?;
        } else if let Some(end) = end {
            diesel::update(runs::table.find(&run.id))
                .set(runs::finished_at.eq(Some(end)))
                .execute(conn)?;
        }
        if let Some(name) = run_name.filter(|n| !n.is_empty()) {
            diesel::delete(run_tags::table.find((&run.id, RUN_NAME_TAG))).execute(conn)?;
            diesel::insert_into(run_tags::table)
                .values(RunTag {
                    run_id: run.id.clone(),
                    name: RUN_NAME_TAG.to_owned(),
                    value: name.to_owned(),
                })
                .execute(conn)?;
        }
        let event = NewEvent::new(actor, "run.update", format!("run:{}", run.id))
            .before(json!({ "status": run.status }))
            .after(json!({
                "status": status.unwrap_or(&run.status),
                "run_name": run_name.map(|n| bounded(n, 100)),
            }));
        Ok(((), event))
    })?;
    find(conn, run_id)
}

/// Deletes (`deleted`) or restores (`active`) a run: it is kept either way.
pub fn set_lifecycle(
    conn: &mut DbConnection,
    run_id: &str,
    deleted: bool,
    actor: &str,
) -> Result<(), AppError> {
    audit::with_event(conn, |conn| {
        let run = find(conn, run_id)?;
        if run.model_kind != EXTERNAL_KIND {
            return Err(AppError::Conflict(format!(
                "run {} was trained by Steward: its record is read-only through MLflow's API",
                run.id
            )));
        }
        let to = if deleted { DELETED } else { ACTIVE };
        diesel::update(runs::table.find(&run.id))
            .set(runs::lifecycle_stage.eq(to))
            .execute(conn)?;
        let action = if deleted { "run.delete" } else { "run.restore" };
        let event = NewEvent::new(actor, action, format!("run:{}", run.id))
            .before(json!({ "lifecycle_stage": run.lifecycle_stage }))
            .after(json!({ "lifecycle_stage": to }));
        Ok(((), event))
    })
}

/// The latest point of every metric of each run (the highest step, then the latest time, then
/// the highest value): MLflow's `run.data.metrics`. Chosen by the store (a window function, on
/// both backends), so only one row per run and key comes back, whatever the runs logged.
pub fn latest_points(
    conn: &mut DbConnection,
    run_ids: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, RunMetric>>, AppError> {
    #[derive(QueryableByName)]
    struct Latest {
        #[diesel(sql_type = diesel::sql_types::Text)]
        run_id: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Integer)]
        step: i32,
        #[diesel(sql_type = diesel::sql_types::Double)]
        value: f64,
        #[diesel(sql_type = diesel::sql_types::Timestamp)]
        recorded_at: chrono::NaiveDateTime,
    }
    let mut out: BTreeMap<String, BTreeMap<String, RunMetric>> = BTreeMap::new();
    for chunk in run_ids.chunks(500) {
        // Run ids come from the store and are uuids: written into the statement only after
        // checking that they hold nothing but hex digits and dashes.
        let ids: Vec<String> = chunk
            .iter()
            .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
            .map(|id| format!("'{id}'"))
            .collect();
        if ids.is_empty() {
            continue;
        }
        let sql = format!(
            "SELECT run_id, name, step, value, recorded_at FROM (\
               SELECT run_id, name, step, value, recorded_at, ROW_NUMBER() OVER (\
                 PARTITION BY run_id, name ORDER BY step DESC, recorded_at DESC, value DESC\
               ) AS rn FROM run_metrics WHERE run_id IN ({})\
             ) latest WHERE rn = 1",
            ids.join(", ")
        );
        let rows: Vec<Latest> = diesel::sql_query(sql).load(conn)?;
        for m in rows {
            out.entry(m.run_id.clone()).or_default().insert(
                m.name.clone(),
                RunMetric {
                    run_id: m.run_id,
                    name: m.name,
                    step: m.step,
                    value: m.value,
                    recorded_at: m.recorded_at,
                },
            );
        }
    }
    Ok(out)
}

/// Tags of each run.
pub fn tags_of_runs(
    conn: &mut DbConnection,
    run_ids: &[String],
) -> Result<BTreeMap<String, BTreeMap<String, String>>, AppError> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for chunk in run_ids.chunks(500) {
        let rows: Vec<RunTag> = run_tags::table
            .filter(run_tags::run_id.eq_any(chunk))
            .select(RunTag::as_select())
            .load(conn)?;
        for t in rows {
            out.entry(t.run_id).or_default().insert(t.name, t.value);
        }
    }
    Ok(out)
}

/// A metric's points in step order (then time), from `offset`, at most `limit`.
pub fn history(
    conn: &mut DbConnection,
    run_id: &str,
    key: &str,
    offset: i64,
    limit: i64,
) -> Result<Vec<RunMetric>, AppError> {
    find(conn, run_id)?;
    Ok(run_metrics::table
        .filter(run_metrics::run_id.eq(run_id))
        .filter(run_metrics::name.eq(key))
        .order((
            run_metrics::step.asc(),
            run_metrics::recorded_at.asc(),
            run_metrics::value.asc(),
        ))
        .offset(offset.max(0))
        .limit(limit.clamp(1, 100_000))
        .select(RunMetric::as_select())
        .load(conn)?)
}

/// Longest artifact path kept, in characters.
pub const MAX_ARTIFACT_PATH_CHARS: usize = 1000;

/// An artifact path under a run: `/`-separated, no empty, `.` or `..` segment, no control
/// characters, at most [`MAX_ARTIFACT_PATH_CHARS`].
pub fn check_artifact_path(path: &str) -> Result<(), AppError> {
    let ok = !path.is_empty()
        && path.chars().count() <= MAX_ARTIFACT_PATH_CHARS
        && !path.chars().any(|c| c.is_control() || c == '\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if ok {
        Ok(())
    } else {
        Err(AppError::validation(
            "path",
            format!(
                "is no artifact path: `/`-separated names, no `.`, `..` or `\\`, at most \
                 {MAX_ARTIFACT_PATH_CHARS} characters"
            ),
        ))
    }
}

/// Records a file an MLflow client uploaded (already in the blob store as `hash`) as an
/// artifact of one of its runs, replacing one of the same path, as MLflow does.
pub fn record_artifact(
    conn: &mut DbConnection,
    run_id: &str,
    path: &str,
    hash: String,
    size_bytes: usize,
    actor: &str,
) -> Result<super::RunArtifact, AppError> {
    use crate::db::schema::run_artifacts;
    check_artifact_path(path)?;
    let media_type = match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("txt" | "md" | "yaml" | "yml" | "MLmodel") => "text/plain",
        _ if path.ends_with("MLmodel") => "text/plain",
        _ => "application/octet-stream",
    };
    let artifact = super::RunArtifact {
        run_id: run_id.to_owned(),
        name: path.to_owned(),
        hash,
        media_type: media_type.to_owned(),
        size_bytes: size_bytes as i64,
    };
    audit::with_event(conn, |conn| {
        writable(conn, run_id)?;
        diesel::delete(run_artifacts::table.find((run_id, path))).execute(conn)?;
        diesel::insert_into(run_artifacts::table)
            .values(&artifact)
            .execute(conn)?;
        let event = NewEvent::new(actor, "run.artifact", format!("run:{run_id}")).after(json!({
            "path": bounded(path, 200),
            "hash": artifact.hash,
            "size_bytes": artifact.size_bytes,
        }));
        Ok(((), event))
    })?;
    Ok(artifact)
}

/// A run as MLflow shows it: its record, the latest point of each metric, params and tags.
#[derive(Debug, Clone)]
pub struct RunView {
    pub run: Run,
    pub metrics: Vec<RunMetric>,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

impl RunView {
    pub fn facts(&self) -> super::search::RunFacts {
        super::search::RunFacts {
            run_id: self.run.id.clone(),
            run_name: self.tags.get(RUN_NAME_TAG).cloned().unwrap_or_default(),
            status: status_to_mlflow(&self.run.status).to_owned(),
            start_time: millis(self.run.started_at),
            end_time: self.run.finished_at.map(millis),
            user_id: self.run.created_by.clone(),
            lifecycle_stage: self.run.lifecycle_stage.clone(),
            metrics: self
                .metrics
                .iter()
                .map(|m| (m.name.clone(), m.value))
                .collect(),
            params: self.params.clone(),
            tags: self.tags.clone(),
        }
    }
}

/// Views of these runs, in their order.
pub fn views(conn: &mut DbConnection, runs: Vec<Run>) -> Result<Vec<RunView>, AppError> {
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let mut points = latest_points(conn, &ids)?;
    let mut tags = tags_of_runs(conn, &ids)?;
    Ok(runs
        .into_iter()
        .map(|run| RunView {
            metrics: points
                .remove(&run.id)
                .map(|m| m.into_values().collect())
                .unwrap_or_default(),
            params: params_of(&run),
            tags: tags.remove(&run.id).unwrap_or_default(),
            run,
        })
        .collect())
}

/// Which runs a search sees, by lifecycle (MLflow's `run_view_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewType {
    ActiveOnly,
    DeletedOnly,
    All,
}

/// Most runs one search reads; a search over more is refused with a 400 asking for fewer
/// experiments, so its cost stays bounded.
pub const MAX_SCANNED_RUNS: i64 = 20_000;

/// MLflow's `search-runs`: the runs of `experiments` that meet `clauses`, in `order`, from
/// `offset`, at most `max_results`; with the offset of the next page when there is one.
pub fn search_runs(
    conn: &mut DbConnection,
    experiments: &[String],
    clauses: &[super::search::Clause],
    order: &[super::search::Order],
    view: ViewType,
    offset: usize,
    max_results: usize,
) -> Result<(Vec<RunView>, Option<usize>), AppError> {
    let mut q = runs::table
        .filter(runs::experiment.eq_any(experiments))
        .select(Run::as_select())
        .limit(MAX_SCANNED_RUNS + 1)
        .into_boxed();
    q = match view {
        ViewType::ActiveOnly => q.filter(runs::lifecycle_stage.eq(ACTIVE)),
        ViewType::DeletedOnly => q.filter(runs::lifecycle_stage.eq(DELETED)),
        ViewType::All => q,
    };
    let found = q.load(conn)?;
    if found.len() as i64 > MAX_SCANNED_RUNS {
        return Err(AppError::validation(
            "experiment_ids",
            format!("these experiments hold more than {MAX_SCANNED_RUNS} runs; search fewer"),
        ));
    }
    let all = views(conn, found)?;
    let mut spent: u64 = 0;
    let mut kept: Vec<(super::search::RunFacts, RunView)> = Vec::new();
    for v in all {
        let facts = v.facts();
        spent = spent.saturating_add(super::search::like_cost(&facts, clauses));
        if spent > super::search::LIKE_BUDGET {
            return Err(AppError::validation(
                "filter",
                "its LIKE patterns cost too much over these runs: shorten them or add a clause",
            ));
        }
        if super::search::matches(&facts, clauses) {
            kept.push((facts, v));
        }
    }
    let mut facts: Vec<super::search::RunFacts> = kept.iter().map(|(f, _)| f.clone()).collect();
    super::search::sort(&mut facts, order);
    let rank: BTreeMap<String, usize> = facts
        .iter()
        .enumerate()
        .map(|(i, f)| (f.run_id.clone(), i))
        .collect();
    kept.sort_by_key(|(f, _)| rank.get(&f.run_id).copied().unwrap_or(usize::MAX));
    let total = kept.len();
    let page: Vec<RunView> = kept
        .into_iter()
        .skip(offset)
        .take(max_results)
        .map(|(_, v)| v)
        .collect();
    let next = super::search::next_page(offset, page.len(), total);
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_mlflows_rule() {
        assert!(check_key("k", "train/loss:v1 .x-y_z").is_ok());
        assert!(check_key("k", "").is_err());
        assert!(check_key("k", "a;b").is_err());
        assert!(check_key("k", "../x").is_err());
        assert!(check_key("k", "/abs").is_err());
        assert!(check_key("k", &"k".repeat(251)).is_err());
    }

    #[test]
    fn a_batch_is_held_to_mlflows_limits() {
        let point = |i: usize| Point {
            key: format!("m{i}"),
            value: 1.0,
            timestamp_ms: 1_700_000_000_000,
            step: 0,
        };
        let ok = Batch {
            metrics: (0..1000).map(point).collect(),
            ..Batch::default()
        };
        assert!(ok.check().is_ok());
        let over = Batch {
            metrics: (0..1001).map(point).collect(),
            ..Batch::default()
        };
        let err = over
            .check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("at most 1000 metrics"), "{err}");
        let params = Batch {
            params: (0..101).map(|i| (format!("p{i}"), "v".into())).collect(),
            ..Batch::default()
        };
        assert!(params.check().is_err());
        let dup = Batch {
            params: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            ..Batch::default()
        };
        assert!(dup.check().is_err());
        let nan = Batch {
            metrics: vec![Point {
                value: f64::NAN,
                ..point(0)
            }],
            ..Batch::default()
        };
        assert!(nan.check().is_err());
    }
}
