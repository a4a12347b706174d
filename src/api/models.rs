//! `/api/v1/experiments`, `/api/v1/runs` and `/api/v1/models`: tracking and the registry over
//! HTTP. Reads need a viewer (or `auth.public_read`); training needs an admin; stage changes
//! and rollbacks need an approver.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::ml::models::ModelKind;
use crate::registry::{self, ModelVersion, Stage, StageTransition};
use crate::state::AppState;
use crate::tracking::{self, runs_table};
use crate::training::{self, TrainRequest};

pub async fn list_experiments(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let list = state.db.run(tracking::list_experiments).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    /// Sort by this metric, best first.
    sort: Option<String>,
    limit: Option<i64>,
}

pub async fn list_experiment_runs(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let name = path.into_inner();
    let q = query.into_inner();
    let rows = state
        .db
        .run(move |conn| runs_table(conn, Some(&name), q.sort.as_deref(), q.limit.unwrap_or(200)))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn list_runs(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let q = query.into_inner();
    let rows = state
        .db
        .run(move |conn| runs_table(conn, None, q.sort.as_deref(), q.limit.unwrap_or(200)))
        .await?;
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn get_run(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let id = path.into_inner();
    let detail = state
        .db
        .run(move |conn| tracking::run_detail(conn, &id))
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// An artifact's bytes, with its media type; verified against its hash on the way out.
pub async fn get_run_artifact(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let (id, name) = path.into_inner();
    let blobs = state.blobs.clone();
    let (artifact, bytes) = state
        .db
        .run(move |conn| {
            let run = tracking::find_run(conn, &id)?;
            tracking::read_artifact(conn, blobs.as_ref(), &run.id, &name)
        })
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(artifact.media_type)
        .insert_header(("X-Content-Hash", format!("blake3:{}", artifact.hash)))
        .body(bytes))
}

#[derive(Deserialize)]
pub struct CompareQuery {
    a: String,
    b: String,
}

pub async fn compare_runs(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<CompareQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let q = query.into_inner();
    let c = state
        .db
        .run(move |conn| tracking::compare(conn, &q.a, &q.b))
        .await?;
    Ok(HttpResponse::Ok().json(c))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TrainBody {
    dataset: Option<String>,
    dataset_version: Option<i32>,
    models: Option<Vec<ModelKind>>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    register: bool,
    #[serde(default)]
    promote: bool,
    experiment: Option<String>,
}

/// Trains now and answers when the runs have ended (seconds on the bundled data).
pub async fn create_runs(
    state: web::Data<AppState>,
    identity: Identity,
    body: Option<web::Json<TrainBody>>,
) -> Result<HttpResponse, AppError> {
    let actor = identity.require(Role::Admin)?;
    let actor = format!("user:{}", actor.username);
    let body = body.map(|b| b.into_inner()).unwrap_or_default();
    let request = TrainRequest {
        dataset: body.dataset,
        version: body.dataset_version,
        models: body.models,
        force: body.force,
        register: body.register || body.promote,
        promote: body.promote,
        experiment: body.experiment,
        source: "api".into(),
    };
    let outcome = run_training(&state, request, actor).await?;
    if outcome.promoted.is_some() {
        state.refresh_serving().await;
    }
    Ok(HttpResponse::Created().json(outcome))
}

/// Runs a training on the blocking pool with one store connection.
pub async fn run_training(
    state: &AppState,
    request: TrainRequest,
    actor: String,
) -> Result<training::TrainOutcome, AppError> {
    let settings = state.settings.clone();
    let blobs = state.blobs.clone();
    state
        .db
        .run(move |conn| {
            training::train(
                conn,
                blobs.as_ref(),
                &settings,
                &request,
                &actor,
                &|_, _, _| {},
            )
        })
        .await
}

pub async fn list_models(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let list = state.db.run(registry::list_models).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Serialize)]
pub struct ModelDetail {
    pub name: String,
    pub production: Option<i32>,
    pub versions: Vec<VersionRow>,
    pub transitions: Vec<StageTransition>,
}

#[derive(Serialize)]
pub struct VersionRow {
    #[serde(flatten)]
    pub version: ModelVersion,
    pub metrics: std::collections::BTreeMap<String, f64>,
}

pub fn model_detail(
    conn: &mut crate::db::DbConnection,
    name: &str,
) -> Result<ModelDetail, AppError> {
    let versions: Vec<VersionRow> = registry::list_versions(conn, name)?
        .into_iter()
        .map(|v| VersionRow {
            metrics: v.metrics(),
            version: v,
        })
        .collect();
    Ok(ModelDetail {
        name: name.to_owned(),
        production: versions
            .iter()
            .find(|v| v.version.stage == Stage::Production.as_str())
            .map(|v| v.version.version),
        transitions: registry::transitions(conn, name)?,
        versions,
    })
}

pub async fn get_model(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let name = path.into_inner();
    let detail = state
        .db
        .run(move |conn| {
            let d = model_detail(conn, &name)?;
            if d.versions.is_empty() {
                return Err(AppError::NotFound(format!("no registered model `{name}`")));
            }
            Ok(d)
        })
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

pub async fn get_model_version(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let (name, version) = path.into_inner();
    let v = state
        .db
        .run(move |conn| registry::find_version(conn, &name, version))
        .await?;
    Ok(HttpResponse::Ok().json(VersionRow {
        metrics: v.metrics(),
        version: v,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageBody {
    stage: String,
    #[serde(default)]
    reason: String,
}

pub async fn set_stage(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, i32)>,
    body: web::Json<StageBody>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    let actor = format!("user:{}", user.username);
    let (name, version) = path.into_inner();
    let body = body.into_inner();
    let stage: Stage = body
        .stage
        .parse()
        .map_err(|e: String| AppError::validation("stage", e))?;
    let out = state
        .db
        .run(move |conn| registry::transition(conn, &name, version, stage, &actor, &body.reason))
        .await?;
    state.refresh_serving().await;
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[serde(default)]
    reason: String,
}

pub async fn rollback_model(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    body: Option<web::Json<RollbackBody>>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    let actor = format!("user:{}", user.username);
    let name = path.into_inner();
    let reason = body.map(|b| b.into_inner().reason).unwrap_or_default();
    let out = state
        .db
        .run(move |conn| registry::rollback(conn, &name, &actor, &reason))
        .await?;
    state.refresh_serving().await;
    Ok(HttpResponse::Ok().json(out))
}
