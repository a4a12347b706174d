//! MLflow's tracking endpoints: experiments and runs.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Answer, Body, MlflowError, Query, invalid, max_results, millis, ok_empty, parse_page_token,
};
use crate::auth::Identity;
use crate::error::AppError;
use crate::state::AppState;
use crate::tracking::external::{self, Batch, Point, RunView, ViewType};
use crate::tracking::{self, Experiment, search};

/// MLflow's limit on one search's results (`SEARCH_MAX_RESULTS_THRESHOLD`).
const MAX_SEARCH_RESULTS: usize = 50_000;
/// Most points one `get-history` page returns.
const MAX_HISTORY: usize = 25_000;

fn experiment_id(e: &Experiment) -> String {
    e.mlflow_id.map(|i| i.to_string()).unwrap_or_default()
}

pub(super) fn experiment_json(e: &Experiment) -> Value {
    let id = experiment_id(e);
    json!({
        "experiment_id": id,
        "name": e.name,
        "artifact_location": format!("mlflow-artifacts:/{id}"),
        "lifecycle_stage": "active",
        "creation_time": millis(e.created_at),
        "last_update_time": millis(e.created_at),
        "tags": [],
    })
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<Value> {
    map.iter()
        .map(|(k, v)| json!({ "key": k, "value": v }))
        .collect()
}

fn run_info(view: &RunView, experiment_id: &str) -> Value {
    let run = &view.run;
    let mut info = json!({
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": view.tags.get(external::RUN_NAME_TAG).cloned().unwrap_or_else(|| run.short_id().to_owned()),
        "experiment_id": experiment_id,
        "user_id": run.created_by,
        "status": external::status_to_mlflow(&run.status),
        "start_time": millis(run.started_at),
        "artifact_uri": format!("mlflow-artifacts:/{experiment_id}/{}/artifacts", run.id),
        "lifecycle_stage": run.lifecycle_stage,
    });
    if let (Some(end), Some(map)) = (run.finished_at, info.as_object_mut()) {
        map.insert("end_time".into(), json!(millis(end)));
    }
    info
}

fn run_json(view: &RunView, experiment_id: &str) -> Value {
    json!({
        "info": run_info(view, experiment_id),
        "data": {
            "metrics": view.metrics.iter().map(|m| json!({
                "key": m.name,
                "value": m.value,
                "timestamp": millis(m.recorded_at),
                "step": m.step,
            })).collect::<Vec<_>>(),
            "params": pairs(&view.params),
            "tags": pairs(&view.tags),
        },
        "inputs": {},
    })
}

/// The MLflow ids of experiments, by name.
fn ids_by_name(experiments: &[Experiment]) -> BTreeMap<String, String> {
    experiments
        .iter()
        .map(|e| (e.name.clone(), experiment_id(e)))
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateExperiment {
    name: String,
    #[serde(default)]
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create_experiment(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<CreateExperiment>,
) -> Answer {
    let body = body.0;
    external::check_key("name", &body.name)?;
    if body
        .artifact_location
        .as_deref()
        .is_some_and(|l| !l.is_empty())
    {
        return Err(invalid(
            "artifact_location",
            "Steward stores every run's artifacts itself (its artifact proxy); leave it out",
        ));
    }
    if !body.tags.is_empty() {
        return Err(invalid("tags", "Steward keeps no experiment tags"));
    }
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let created = state
        .db
        .run(move |conn| {
            crate::audit::with_event(conn, |conn| {
                if tracking::find_experiment(conn, &body.name)?.is_some() {
                    return Err(AppError::Conflict(format!(
                        "Experiment(name={}) already exists.",
                        crate::error::bounded(&body.name, 100)
                    )));
                }
                let e = tracking::ensure_experiment(conn, &body.name)?;
                let event = crate::audit::NewEvent::new(
                    &actor,
                    "experiment.create",
                    format!("experiment:{}", e.name),
                )
                .after(json!({ "mlflow_id": e.mlflow_id }));
                Ok((e, event))
            })
        })
        .await
        .map_err(MlflowError::exists)?;
    Ok(HttpResponse::Ok().json(json!({ "experiment_id": experiment_id(&created) })))
}

pub async fn get_experiment(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["experiment_id"])?;
    let id = query.required("experiment_id")?.to_owned();
    let e = state
        .db
        .run(move |conn| external::experiment_by_id(conn, &id, false))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "experiment": experiment_json(&e) })))
}

pub async fn get_experiment_by_name(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["experiment_name"])?;
    let name = query.required("experiment_name")?.to_owned();
    let e = state
        .db
        .run(move |conn| tracking::find_experiment(conn, &name))
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "Could not find experiment with name '{}'",
                crate::error::bounded(query.get("experiment_name").unwrap_or_default(), 100)
            ))
        })?;
    Ok(HttpResponse::Ok().json(json!({ "experiment": experiment_json(&e) })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SearchExperiments {
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    view_type: Option<String>,
}

/// Experiment facts for a filter: `name`, and tags (none are kept: a missing tag reads as
/// the empty string, so MLflow's own `tags.x != 'true'` clauses hold).
struct ExperimentFacts<'a>(&'a Experiment);

impl search::Facts for ExperimentFacts<'_> {
    fn text(&self, entity: search::Entity, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        match (entity, key) {
            (search::Entity::Attribute, "name") => Some(self.0.name.as_str().into()),
            (search::Entity::Tag, _) => Some("".into()),
            _ => None,
        }
    }

    fn number(&self, _: search::Entity, _: &str) -> Option<f64> {
        None
    }
}

pub async fn search_experiments(
    state: web::Data<AppState>,
    body: Body<SearchExperiments>,
) -> Answer {
    let body = body.0;
    let limit = max_results(body.max_results, 1000, MAX_SEARCH_RESULTS)?;
    let offset = parse_page_token(body.page_token.as_deref())?;
    let clauses =
        search::parse_filter_for(body.filter.as_deref().unwrap_or_default(), search::MODELS)?;
    if let Some(v) = body.view_type.as_deref() {
        if !matches!(v, "ACTIVE_ONLY" | "ALL" | "DELETED_ONLY") {
            return Err(invalid(
                "view_type",
                "must be ACTIVE_ONLY, DELETED_ONLY or ALL",
            ));
        }
    }
    let deleted_only = body.view_type.as_deref() == Some("DELETED_ONLY");
    let descending_name = order_names(&body.order_by)?;
    let turn = super::search_turn(&state).await?;
    let (page, total) = state
        .db
        .run(move |conn| {
            // The turn ends with the work, also if the request is dropped meanwhile.
            let _turn = turn;
            let all = external::experiments(conn, MAX_SEARCH_RESULTS as i64)?;
            let mut spent: u64 = 0;
            let mut found: Vec<&Experiment> = Vec::new();
            for e in &all {
                spent = spent.saturating_add(search::like_cost(&ExperimentFacts(e), &clauses));
                if spent > search::LIKE_BUDGET {
                    return Err(AppError::validation(
                        "filter",
                        "its LIKE patterns cost too much over the experiments: shorten them",
                    ));
                }
                if !deleted_only && search::matches(&ExperimentFacts(e), &clauses) {
                    found.push(e);
                }
            }
            match descending_name {
                Some(true) => found.sort_by(|a, b| b.name.cmp(&a.name)),
                Some(false) => found.sort_by(|a, b| a.name.cmp(&b.name)),
                // MLflow's default: the most recently made first.
                None => found.sort_by(|a, b| {
                    b.created_at
                        .cmp(&a.created_at)
                        .then(a.mlflow_id.cmp(&b.mlflow_id))
                }),
            }
            let total = found.len();
            let page: Vec<Value> = found
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(experiment_json)
                .collect();
            Ok((page, total))
        })
        .await?;
    let next = search::next_page(offset, page.len(), total);
    Ok(super::paged("experiments", page, next))
}

/// `order_by` for experiments: `name [ASC|DESC]`, or the times (newest first by default).
/// `Some(descending)` for a name order, `None` for the default.
fn order_names(order_by: &[String]) -> Result<Option<bool>, MlflowError> {
    let Some((key, descending)) = super::first_order(order_by)? else {
        return Ok(None);
    };
    match key.as_str() {
        "name" | "attributes.name" => Ok(Some(descending)),
        "creation_time" | "last_update_time" | "experiment_id" => Ok(None),
        _ => Err(invalid(
            "order_by",
            "experiments are ordered by name, creation_time or last_update_time",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    #[serde(default)]
    experiment_id: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    #[serde(default)]
    run_name: Option<String>,
}

pub async fn create_run(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<CreateRun>,
) -> Answer {
    let body = body.0;
    // The client's own user name is its tag (`mlflow.user`); the run is recorded as the
    // Steward user who sent it.
    let _ = body.user_id;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let experiment = body.experiment_id.unwrap_or_else(|| "0".into());
    let (view, id) = state
        .db
        .run(move |conn| {
            let e = external::experiment_by_id(conn, &experiment, true)?;
            let run = external::start(
                conn,
                external::NewRun {
                    experiment: &e.name,
                    run_name: body.run_name.as_deref(),
                    start_time_ms: body.start_time,
                    tags: body.tags.into_iter().map(|t| (t.key, t.value)).collect(),
                },
                &actor,
            )?;
            let view = external::views(conn, vec![run])?;
            Ok((view, experiment_id(&e)))
        })
        .await?;
    let view = view
        .first()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the new run is missing")))?;
    Ok(HttpResponse::Ok().json(json!({ "run": run_json(view, &id) })))
}

/// A run's view and its experiment's MLflow id.
async fn load_run(state: &AppState, run_id: String) -> Result<(RunView, String), MlflowError> {
    let (views, id) = state
        .db
        .run(move |conn| {
            let run = external::find(conn, &run_id)?;
            let e = tracking::find_experiment(conn, &run.experiment)?;
            let id = e.as_ref().map(experiment_id).unwrap_or_default();
            Ok((external::views(conn, vec![run])?, id))
        })
        .await?;
    let view = views
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the run is missing")))?;
    Ok((view, id))
}

pub async fn get_run(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["run_id", "run_uuid"])?;
    let run_id = query
        .get("run_id")
        .or(query.get("run_uuid"))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("run_id", "is required"))?
        .to_owned();
    let (view, id) = load_run(&state, run_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "run": run_json(&view, &id) })))
}

/// `run_id`, or the older `run_uuid` MLflow's client still sends beside it.
fn the_run(run_id: Option<String>, run_uuid: Option<String>) -> Result<String, MlflowError> {
    match (run_id, run_uuid) {
        (Some(a), Some(b)) if !a.is_empty() && !b.is_empty() && a != b => {
            Err(invalid("run_uuid", "names another run than run_id"))
        }
        (Some(a), _) if !a.is_empty() => Ok(a),
        (_, Some(b)) if !b.is_empty() => Ok(b),
        _ => Err(invalid("run_id", "is required")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRun {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    run_name: Option<String>,
}

pub async fn update_run(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<UpdateRun>,
) -> Answer {
    let body = body.0;
    let run_id = the_run(body.run_id, body.run_uuid)?;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let id = run_id.clone();
    state
        .db
        .run(move |conn| {
            external::update(
                conn,
                &id,
                body.status.as_deref(),
                body.end_time,
                body.run_name.as_deref(),
                &actor,
            )
        })
        .await?;
    let (view, exp) = load_run(&state, run_id).await?;
    Ok(HttpResponse::Ok().json(json!({ "run_info": run_info(&view, &exp) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRef {
    run_id: String,
}

async fn lifecycle(state: &AppState, identity: &Identity, run_id: String, deleted: bool) -> Answer {
    let actor = super::writer(identity, crate::auth::Role::Approver)?;
    state
        .db
        .run(move |conn| external::set_lifecycle(conn, &run_id, deleted, &actor))
        .await?;
    Ok(ok_empty())
}

pub async fn delete_run(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<RunRef>,
) -> Answer {
    lifecycle(&state, &identity, body.0.run_id, true).await
}

pub async fn restore_run(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<RunRef>,
) -> Answer {
    lifecycle(&state, &identity, body.0.run_id, false).await
}

async fn log(state: &AppState, identity: &Identity, run_id: String, batch: Batch) -> Answer {
    let actor = super::writer(identity, crate::auth::Role::Approver)?;
    state
        .db
        .run(move |conn| external::log_batch(conn, &run_id, &batch, &actor))
        .await?;
    Ok(ok_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricBody {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    key: String,
    value: Value,
    timestamp: i64,
    #[serde(default)]
    step: Option<i64>,
    /// MLflow 3's logged-model and dataset links: Steward keeps neither, and refuses them
    /// rather than drop them unseen.
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

/// A metric value: a number. MLflow's client sends NaN and infinities as the strings
/// `"NaN"`, `"Infinity"`, `"-Infinity"`; Steward keeps finite values only and says so.
fn metric_value(field: &str, value: &Value) -> Result<f64, MlflowError> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| invalid(field, "must be a number")),
        Value::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => Err(invalid(
            field,
            format!("is {s}: Steward keeps finite metric values only (leave this point out)"),
        )),
        _ => Err(invalid(field, "must be a number")),
    }
}

fn no_links(
    model_id: &Option<String>,
    dataset: &Option<String>,
    digest: &Option<String>,
) -> Result<(), MlflowError> {
    for (field, value) in [
        ("model_id", model_id),
        ("dataset_name", dataset),
        ("dataset_digest", digest),
    ] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(invalid(
                field,
                "Steward does not link metrics to logged models or datasets",
            ));
        }
    }
    Ok(())
}

pub async fn log_metric(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<MetricBody>,
) -> Answer {
    let b = body.0;
    no_links(&b.model_id, &b.dataset_name, &b.dataset_digest)?;
    let run_id = the_run(b.run_id, b.run_uuid)?;
    let batch = Batch {
        metrics: vec![Point {
            value: metric_value("value", &b.value)?,
            key: b.key,
            timestamp_ms: b.timestamp,
            step: b.step.unwrap_or(0),
        }],
        ..Batch::default()
    };
    log(&state, &identity, run_id, batch).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamBody {
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    run_uuid: Option<String>,
    key: String,
    value: String,
}

pub async fn log_param(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<ParamBody>,
) -> Answer {
    let b = body.0;
    let run_id = the_run(b.run_id, b.run_uuid)?;
    let batch = Batch {
        params: vec![(b.key, b.value)],
        ..Batch::default()
    };
    log(&state, &identity, run_id, batch).await
}

pub async fn set_tag(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<ParamBody>,
) -> Answer {
    let b = body.0;
    let run_id = the_run(b.run_id, b.run_uuid)?;
    let batch = Batch {
        tags: vec![(b.key, b.value)],
        ..Batch::default()
    };
    log(&state, &identity, run_id, batch).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteTag {
    run_id: String,
    key: String,
}

pub async fn delete_tag(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<DeleteTag>,
) -> Answer {
    let b = body.0;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    state
        .db
        .run(move |conn| external::delete_tag(conn, &b.run_id, &b.key, &actor))
        .await?;
    Ok(ok_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchMetric {
    /// MLflow's client repeats the batch's run id in each metric.
    #[serde(default)]
    run_id: Option<String>,
    key: String,
    value: Value,
    timestamp: i64,
    #[serde(default)]
    step: Option<i64>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    dataset_name: Option<String>,
    #[serde(default)]
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogBatch {
    run_id: String,
    #[serde(default)]
    metrics: Vec<BatchMetric>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn log_batch(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<LogBatch>,
) -> Answer {
    let b = body.0;
    for m in &b.metrics {
        no_links(&m.model_id, &m.dataset_name, &m.dataset_digest)?;
        if m.run_id
            .as_deref()
            .is_some_and(|r| !r.is_empty() && r != b.run_id)
        {
            return Err(invalid(
                "metrics.run_id",
                "names another run than the batch's run_id",
            ));
        }
    }
    let mut metrics = Vec::with_capacity(b.metrics.len());
    for (i, m) in b.metrics.into_iter().enumerate() {
        metrics.push(Point {
            value: metric_value(&format!("metrics[{i}].value"), &m.value)?,
            key: m.key,
            timestamp_ms: m.timestamp,
            step: m.step.unwrap_or(0),
        });
    }
    let batch = Batch {
        metrics,
        params: b.params.into_iter().map(|p| (p.key, p.value)).collect(),
        tags: b.tags.into_iter().map(|t| (t.key, t.value)).collect(),
    };
    log(&state, &identity, b.run_id, batch).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRuns {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    run_view_type: Option<String>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<String>,
    #[serde(default)]
    page_token: Option<String>,
}

/// Most experiments one search names.
const MAX_SEARCH_EXPERIMENTS: usize = 100;

pub async fn search_runs(state: web::Data<AppState>, body: Body<SearchRuns>) -> Answer {
    let b = body.0;
    if b.experiment_ids.len() > MAX_SEARCH_EXPERIMENTS {
        return Err(invalid(
            "experiment_ids",
            format!("at most {MAX_SEARCH_EXPERIMENTS} experiments per search"),
        ));
    }
    let clauses = search::parse_filter(b.filter.as_deref().unwrap_or_default())?;
    let order = search::parse_order(&b.order_by)?;
    let view = match b.run_view_type.as_deref() {
        None | Some("ACTIVE_ONLY") => ViewType::ActiveOnly,
        Some("DELETED_ONLY") => ViewType::DeletedOnly,
        Some("ALL") => ViewType::All,
        Some(_) => {
            return Err(invalid(
                "run_view_type",
                "must be ACTIVE_ONLY, DELETED_ONLY or ALL",
            ));
        }
    };
    let limit = max_results(b.max_results, 1000, MAX_SEARCH_RESULTS)?;
    let offset = parse_page_token(b.page_token.as_deref())?;
    let ids = b.experiment_ids;
    let turn = super::search_turn(&state).await?;
    let (page, next, names) = state
        .db
        .run(move |conn| {
            // The turn ends with the work, also if the request is dropped meanwhile.
            let _turn = turn;
            let mut experiments = Vec::new();
            for id in &ids {
                experiments.push(external::experiment_by_id(conn, id, false)?);
            }
            let names: Vec<String> = experiments.iter().map(|e| e.name.clone()).collect();
            let (page, next) =
                external::search_runs(conn, &names, &clauses, &order, view, offset, limit)?;
            Ok((page, next, ids_by_name(&experiments)))
        })
        .await?;
    let runs: Vec<Value> = page
        .iter()
        .map(|v| {
            run_json(
                v,
                names
                    .get(&v.run.experiment)
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
        })
        .collect();
    Ok(super::paged("runs", runs, next))
}

pub async fn get_metric_history(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&[
        "run_id",
        "run_uuid",
        "metric_key",
        "max_results",
        "page_token",
    ])?;
    let run_id = the_run(
        query.get("run_id").map(str::to_owned),
        query.get("run_uuid").map(str::to_owned),
    )?;
    let key = query.required("metric_key")?.to_owned();
    let limit = max_results(query.number("max_results")?, MAX_HISTORY, MAX_HISTORY)?;
    let offset = parse_page_token(query.get("page_token"))?;
    let start = i64::try_from(offset).map_err(|_| invalid("page_token", "is out of range"))?;
    let points = state
        .db
        .run(move |conn| external::history(conn, &run_id, &key, start, limit as i64 + 1))
        .await?;
    let more = points.len() > limit;
    let metrics: Vec<Value> = points
        .iter()
        .take(limit)
        .map(|m| json!({ "key": m.name, "value": m.value, "timestamp": millis(m.recorded_at), "step": m.step }))
        .collect();
    let next = more.then(|| offset.saturating_add(limit));
    Ok(super::paged("metrics", metrics, next))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchLoggedModels {
    #[serde(default)]
    experiment_ids: Vec<String>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    datasets: Vec<Value>,
    #[serde(default)]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<Value>,
    #[serde(default)]
    page_token: Option<String>,
}

/// MLflow 3's logged models: Steward keeps none (a run's files are its artifacts, its models
/// are registry versions), so every search finds nothing. MLflow's client asks this before it
/// reads a `runs:/` artifact, and then reads the run's own files.
pub async fn search_logged_models(body: Body<SearchLoggedModels>) -> Answer {
    let b = body.0;
    if b.experiment_ids.len() > MAX_SEARCH_EXPERIMENTS {
        return Err(invalid(
            "experiment_ids",
            format!("at most {MAX_SEARCH_EXPERIMENTS} experiments per search"),
        ));
    }
    let _ = (b.filter, b.datasets, b.order_by, b.page_token);
    max_results(b.max_results, 100, MAX_SEARCH_RESULTS)?;
    Ok(HttpResponse::Ok().json(json!({ "models": [] })))
}
