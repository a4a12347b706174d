//! `/api/v1/datasets` and `/api/v1/validations`: the dataset catalogue over HTTP.

use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::auth::{Identity, Role};
use crate::data::catalog::{self, Dataset, DatasetVersion, ValidationRun};
use crate::data::expectations::{Suite, ValidationResult};
use crate::data::profile::{ProfileDiff, TableProfile};
use crate::data::{self as datasets, AddOutcome};
use crate::error::AppError;
use crate::http::body::StrictJson;
use crate::state::AppState;

#[derive(Serialize)]
struct DatasetSummary {
    #[serde(flatten)]
    dataset: Dataset,
    versions: usize,
}

pub async fn list_datasets(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let list = state
        .db
        .run(|conn| {
            catalog::list_datasets(conn)?
                .into_iter()
                .map(|d| {
                    let versions = catalog::list_versions(conn, &d.name)?.len();
                    Ok(DatasetSummary {
                        dataset: d,
                        versions,
                    })
                })
                .collect::<Result<Vec<_>, AppError>>()
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

pub async fn list_versions(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let name = path.into_inner();
    let versions = state
        .db
        .run(move |conn| catalog::list_versions(conn, &name))
        .await?;
    Ok(HttpResponse::Ok().json(versions))
}

#[derive(Serialize)]
struct VersionDetail {
    #[serde(flatten)]
    version: DatasetVersion,
    current: bool,
    profile: TableProfile,
    validations: Vec<ValidationRun>,
}

pub async fn get_version(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let (name, number) = path.into_inner();
    let detail = state
        .db
        .run(move |conn| {
            let version = catalog::find_version(conn, &name, number)?;
            let current =
                catalog::find_dataset(conn, &name)?.and_then(|d| d.current_version) == Some(number);
            let validations = catalog::runs_for_version(conn, &name, number)?;
            Ok(VersionDetail {
                profile: version.profile()?,
                version,
                current,
                validations,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(detail))
}

/// The version's file, byte for byte; the blob is verified against its hash first.
pub async fn get_version_content(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, AppError> {
    // The file is patient data: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let (name, number) = path.into_inner();
    let version = state
        .db
        .run(move |conn| catalog::find_version(conn, &name, number))
        .await?;
    let bytes = state.read_blob(version.hash.clone()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("ETag", format!("\"{}\"", version.hash)))
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}\"",
                version.file_name.replace('"', "")
            ),
        ))
        .body(bytes))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddQuery {
    #[serde(default)]
    message: String,
    file_name: Option<String>,
}

/// Adds the request body (CSV or Parquet) as a new version. Admins only.
///
/// The body is streamed to a temporary file in the storage folder (bounded by
/// `dataset.upload_limit_bytes`), so an upload is never buffered in memory while it arrives
/// and holds no store connection; the file is then read and added on the blocking pool.
pub async fn add_version(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<AddQuery>,
    req: actix_web::HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, AppError> {
    use tokio::io::AsyncWriteExt;
    identity.require(Role::Admin)?;
    let name = path.into_inner();
    datasets::check_name("dataset", &name)?;
    let AddQuery { message, file_name } = query.into_inner();
    let file_name = datasets::clean_file_name(file_name.as_deref().unwrap_or("upload"));
    let limit = state.settings.dataset.upload_limit_bytes;
    // A declared length past the limit is refused before a byte is spooled.
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    let internal = |e: std::io::Error| AppError::Internal(anyhow::anyhow!("upload spool: {e}"));
    let spool = tempfile::NamedTempFile::new_in(&state.settings.storage.dir).map_err(internal)?;
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(internal)?);
    let mut size = 0_usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("reading the upload: {e}")))?;
        size += chunk.len();
        if size > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    let actor = identity.actor();
    let (settings, blobs, db) = (
        state.settings.clone(),
        state.blobs.clone(),
        state.db.clone(),
    );
    let outcome: AddOutcome = tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(spool.path()).map_err(internal)?;
        let upload = datasets::Upload {
            dataset: &name,
            bytes: &bytes,
            file_name: &file_name,
            message: &message,
            parent: None,
        };
        datasets::add_version(&db, blobs.as_ref(), &settings.dataset, upload, &actor)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("adding a version failed: {e}")))??;
    let mut response = if outcome.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response.json(outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: i32,
    to: i32,
}

pub async fn diff_versions(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let name = path.into_inner();
    let DiffQuery { from, to } = query.into_inner();
    let diff: ProfileDiff = state
        .db
        .run(move |conn| crate::data::diff_versions(conn, &name, from, to))
        .await?;
    Ok(HttpResponse::Ok().json(diff))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseBody {
    version: i32,
}

/// Moves the dataset's current version. Admins only; audited.
pub async fn set_current(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    body: StrictJson<UseBody>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let name = path.into_inner();
    let version = body.version;
    let actor = identity.actor();
    let (v, warnings) = state
        .db
        .run(move |conn| {
            let warnings =
                crate::training::ValidationGate::of(conn, &name, version)?.warnings(&name, version);
            let v = datasets::use_version(conn, &name, version, &actor)?;
            Ok((v, warnings))
        })
        .await?;
    // The version, and what its validation failed (or that it has none): the dashboard asks
    // again before this; an API caller is told.
    let mut body = serde_json::to_value(&v).map_err(|e| AppError::Internal(e.into()))?;
    if let Some(object) = body.as_object_mut() {
        object.insert("validation_warnings".into(), warnings.into());
    }
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    suite: Option<String>,
    dataset: String,
    version: Option<i32>,
}

#[derive(Serialize)]
struct RunWithResult {
    #[serde(flatten)]
    run: ValidationRun,
    status: &'static str,
    result: ValidationResult,
}

impl RunWithResult {
    fn new(run: ValidationRun) -> Result<Self, AppError> {
        Ok(RunWithResult {
            status: run.status(),
            result: run.result()?,
            run,
        })
    }
}

/// Validates a stored dataset version against a suite and stores the run. Approvers and up.
pub async fn create_validation(
    state: web::Data<AppState>,
    identity: Identity,
    body: StrictJson<ValidateBody>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Approver)?;
    let ValidateBody {
        suite,
        dataset,
        version,
    } = body.into_inner();
    let actor = identity.actor();
    let settings = state.settings.clone();
    let blobs = state.blobs.clone();
    let run = state
        .db
        .run(move |conn| {
            let schema = &settings.dataset;
            let suite = Suite::load(
                &schema.suites_dir,
                suite.as_deref().unwrap_or(&schema.suite),
            )?;
            datasets::validate_version(
                conn,
                blobs.as_ref(),
                schema,
                &suite,
                &dataset,
                version,
                &actor,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(RunWithResult::new(run)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    dataset: Option<String>,
    limit: Option<i64>,
}

pub async fn list_validations(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<RunsQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let RunsQuery { dataset, limit } = query.into_inner();
    let runs = state
        .db
        .run(move |conn| catalog::list_runs(conn, dataset.as_deref(), limit.unwrap_or(100)))
        .await?;
    Ok(HttpResponse::Ok().json(runs))
}

pub async fn get_validation(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // Unexpected values are rows of the data: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let id = path.into_inner();
    let run = state
        .db
        .run(move |conn| catalog::find_run(conn, &id))
        .await?;
    Ok(HttpResponse::Ok().json(RunWithResult::new(run)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestQuery {
    dataset: Option<String>,
    version: Option<i32>,
}

/// Drafts a suite from a dataset version, as `steward expectations suggest` does.
pub async fn suggest_suite(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<SuggestQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let name = path.into_inner();
    let SuggestQuery { dataset, version } = query.into_inner();
    let settings = state.settings.clone();
    let suite = state
        .db
        .run(move |conn| {
            let dataset = dataset.unwrap_or_else(|| settings.dataset.name.clone());
            datasets::suggest_suite(conn, &settings.dataset, &name, &dataset, version)
        })
        .await?;
    Ok(HttpResponse::Ok().json(suite))
}
