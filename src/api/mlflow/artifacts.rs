//! MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/
//! <path>`): an MLflow client's files stored as blobs of its run, as a run's artifact URI
//! (`mlflow-artifacts:/<experiment>/<run>/artifacts`) tells the client to send them.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{Answer, Query, invalid};
use crate::auth::Identity;
use crate::error::AppError;
use crate::state::AppState;
use crate::tracking::{self, external};

/// `<experiment>/<run>/artifacts[/<path>]` into the run and the path under it.
fn split(path: &str) -> Result<(String, String, Option<String>), super::MlflowError> {
    let mut parts = path.trim_matches('/').splitn(4, '/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(exp), Some(run), Some("artifacts"), rest) if !exp.is_empty() && !run.is_empty() => {
            Ok((
                exp.to_owned(),
                run.to_owned(),
                rest.filter(|r| !r.is_empty()).map(str::to_owned),
            ))
        }
        _ => Err(invalid(
            "path",
            "is no artifact path of a run: <experiment_id>/<run_id>/artifacts/<path>",
        )),
    }
}

/// The run, when it belongs to the experiment the path names.
fn run_in(
    conn: &mut crate::db::DbConnection,
    exp: &str,
    run_id: &str,
) -> Result<tracking::Run, AppError> {
    let run = external::find(conn, run_id)?;
    let experiment = external::experiment_by_id(conn, exp, false)?;
    if experiment.name != run.experiment {
        return Err(AppError::NotFound(format!(
            "run {run_id} is not in experiment {}",
            crate::error::bounded(exp, 32)
        )));
    }
    Ok(run)
}

pub async fn upload(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Answer {
    let (exp, run_id, name) = split(&path.into_inner())?;
    let name = name.ok_or_else(|| invalid("path", "names no file under the run's artifacts"))?;
    external::check_artifact_path(&name)?;
    let limit = state.settings.storage.artifact_limit_bytes;
    let mut payload = payload.into_inner();
    // Uploads held at once share room for two of the largest (503 with Retry-After past it).
    let (bytes, _room) = state
        .artifact_bodies
        .read(&mut payload, &req, limit)
        .await?;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let run = run_id.clone();
    state
        .db
        .run(move |conn| {
            run_in(conn, &exp, &run)?;
            external::writable(conn, &run).map(|_| ())
        })
        .await?;
    // The file goes to the blob store off the workers and holding no store connection; the
    // row that names it is written after (a crash between leaves an unnamed blob, no row).
    let blobs = state.blobs.clone();
    let size = bytes.len();
    let stored = tokio::task::spawn_blocking(move || blobs.put(&bytes))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("storing an artifact: {e}")))?
        .map_err(AppError::from)?;
    state
        .db
        .run(move |conn| external::record_artifact(conn, &run_id, &name, stored.hash, size, &actor))
        .await?;
    Ok(HttpResponse::Ok().json(json!({})))
}

pub async fn download(state: web::Data<AppState>, path: web::Path<String>) -> Answer {
    let (exp, run_id, name) = split(&path.into_inner())?;
    let name = name.ok_or_else(|| invalid("path", "names no file under the run's artifacts"))?;
    let artifact = state
        .db
        .run(move |conn| {
            run_in(conn, &exp, &run_id)?;
            tracking::find_artifact(conn, &run_id, &name)
        })
        .await?;
    let bytes = state.read_blob(artifact.hash.clone()).await?;
    Ok(HttpResponse::Ok()
        .content_type(artifact.media_type)
        .body(bytes))
}

pub async fn list(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["path"])?;
    let (exp, run_id, under) = split(query.required("path")?)?;
    let files = state
        .db
        .run(move |conn| {
            run_in(conn, &exp, &run_id)?;
            tracking::artifacts_of(conn, &run_id)
        })
        .await?;
    let prefix = under
        .map(|u| format!("{}/", u.trim_end_matches('/')))
        .unwrap_or_default();
    // The entries right under the folder, by name (MLflow's server gives base names; the
    // client joins them to the path it asked for): files, and folders once each.
    let mut entries: Vec<serde_json::Value> = Vec::new();
    let mut folders: Vec<String> = Vec::new();
    for f in files {
        let Some(rest) = f.name.strip_prefix(&prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((folder, _)) => {
                if !folders.iter().any(|f| f == folder) {
                    folders.push(folder.to_owned());
                    entries.push(json!({ "path": folder, "is_dir": true }));
                }
            }
            None => {
                entries.push(json!({ "path": rest, "is_dir": false, "file_size": f.size_bytes }))
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({ "files": entries })))
}
