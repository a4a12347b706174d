//! `/api/v1/experiments`, `/api/v1/runs` and `/api/v1/models`: tracking and the registry over
//! HTTP. Reads need a viewer (or `auth.public_read`); training needs an admin; stage changes
//! and rollbacks need an approver.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::OptionalJson;
use crate::http::body::StrictJson;
use crate::ml::models::ModelKind;
use crate::registry::{self, Stage};
use crate::state::AppState;
use crate::tracking::{self, runs_table};
use crate::training::{self, TrainRequest};

pub async fn list_experiments(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let list = state.db.run(tracking::list_experiments).await?;
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    identity.require_read(&state.settings.auth)?;
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
    identity.require_read(&state.settings.auth)?;
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
    identity.require_read(&state.settings.auth)?;
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
    identity.require_read(&state.settings.auth)?;
    let (id, name) = path.into_inner();
    let artifact = state
        .db
        .run(move |conn| {
            let run = tracking::find_run(conn, &id)?;
            tracking::find_artifact(conn, &run.id, &name)
        })
        .await?;
    // The bytes (from S3, perhaps) are read holding no store connection.
    let bytes = state.read_blob(artifact.hash.clone()).await?;
    Ok(HttpResponse::Ok()
        .content_type(artifact.media_type)
        .insert_header(("X-Content-Hash", format!("blake3:{}", artifact.hash)))
        .body(bytes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    a: String,
    b: String,
}

pub async fn compare_runs(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<CompareQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
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
    /// Why; recorded with the promotion, and needed to force one past failed validation.
    reason: Option<String>,
}

/// Trains now and answers when the runs have ended (seconds on the bundled data). An empty
/// body trains with the defaults; any other body is parsed strictly. 409 while another
/// training runs.
pub async fn create_runs(
    state: web::Data<AppState>,
    identity: Identity,
    body: OptionalJson<TrainBody>,
) -> Result<HttpResponse, AppError> {
    let actor = identity.require(Role::Admin)?;
    let actor = format!("user:{}", actor.username);
    let body = body.0;
    let request = TrainRequest {
        dataset: body.dataset,
        version: body.dataset_version,
        models: body.models,
        force: body.force,
        register: body.register || body.promote,
        promote: body.promote,
        experiment: body.experiment,
        reason: body.reason,
        source: "api".into(),
    };
    let outcome = train(&state, request, actor).await?;
    Ok(HttpResponse::Created().json(outcome))
}

/// Trains through the process's training gate; a promotion goes through the serving slot's
/// ordered transition, so what the registry says is what is served.
async fn train(
    state: &AppState,
    request: TrainRequest,
    actor: String,
) -> Result<training::TrainOutcome, AppError> {
    let promote = state.serving.promoter(state.blobs.clone());
    training::run(
        state.db.clone(),
        state.blobs.clone(),
        state.settings.clone(),
        state.training_gate.clone(),
        request,
        actor,
        promote,
    )
    .await
}

pub async fn list_models(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let list = state.db.run(registry::list_models).await?;
    Ok(HttpResponse::Ok().json(list))
}

pub async fn get_model(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let name = path.into_inner();
    let detail = state
        .db
        .run(move |conn| {
            let d = registry::model_detail(conn, &name)?;
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
    identity.require_read(&state.settings.auth)?;
    let (name, version) = path.into_inner();
    let v = state
        .db
        .run(move |conn| {
            let v = registry::find_version(conn, &name, version)?;
            registry::version_row(conn, v)
        })
        .await?;
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageBody {
    stage: String,
    #[serde(default)]
    reason: String,
    /// Promote a version trained on data whose validation failed (needs a reason).
    #[serde(default)]
    force: bool,
}

pub async fn set_stage(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, i32)>,
    body: StrictJson<StageBody>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    let actor = format!("user:{}", user.username);
    let (name, version) = path.into_inner();
    let body = body.into_inner();
    let stage: Stage = body
        .stage
        .parse()
        .map_err(|e: String| AppError::validation("stage", e))?;
    let (serving, blobs) = (state.serving.clone(), state.blobs.clone());
    let out = state
        .db
        .run(move |conn| {
            let change = registry::Change {
                actor: &actor,
                reason: &body.reason,
                force: body.force,
            };
            serving.transition(conn, blobs.as_ref(), &name, version, stage, change)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[serde(default)]
    reason: String,
    /// Roll back to this version (one that was in Production before); default: walk back the
    /// Production history, skipping versions rolled back from.
    #[serde(default)]
    to: Option<i32>,
    /// Roll back even though the target was trained on data whose validation failed (needs a
    /// reason; audited).
    #[serde(default)]
    force: bool,
}

/// Rolls Production back. An empty body has no reason; any other body is parsed strictly.
pub async fn rollback_model(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    body: OptionalJson<RollbackBody>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    let actor = format!("user:{}", user.username);
    let name = path.into_inner();
    let RollbackBody { reason, to, force } = body.0;
    let (serving, blobs) = (state.serving.clone(), state.blobs.clone());
    let out = state
        .db
        .run(move |conn| {
            let change = registry::Change {
                actor: &actor,
                reason: &reason,
                force,
            };
            serving.rollback(conn, blobs.as_ref(), &name, to, change)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}
