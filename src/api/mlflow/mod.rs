//! MLflow's REST API (`/api/2.0/mlflow/...`) and its artifact proxy (`/api/2.0/mlflow-artifacts/...`), so that
//! MLflow's client (`mlflow.set_tracking_uri("http://steward:8080")`) tracks runs and uses the
//! registry unchanged, and what it logs shows in Steward's pages like any other run.
//!
//! The route table is [`ROUTES`]. Bodies are MLflow's JSON (strict: an unknown field is a
//! 400), GET parameters are in the query string (a list repeats its key); answers and errors
//! are MLflow's shapes (`{"error_code", "message"}`, with MLflow's codes and statuses). Auth is
//! a bearer token (`MLFLOW_TRACKING_TOKEN`) or Basic (`MLFLOW_TRACKING_USERNAME` and
//! `PASSWORD`), mapped to Steward's users and roles: reads need a viewer, writes an approver,
//! deleting a registered model or registering a run Steward trained an admin. The domain work is `crate::tracking::external` and
//! `crate::registry::external`; this module only speaks the protocol.

mod artifacts;
mod registry;
mod tracking;

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine;
use serde::de::DeserializeOwned;

use crate::auth::Role;
use crate::error::AppError;
use crate::http::Access::{Read, Role as Needs};

crate::route_table! { ROUTES, handlers;
    post "/api/2.0/mlflow/experiments/create" => tracking::create_experiment, Needs(Role::Approver), "MLflow: create an experiment";
    get "/api/2.0/mlflow/experiments/get" => tracking::get_experiment, Read, "MLflow: an experiment by id";
    get "/api/2.0/mlflow/experiments/get-by-name" => tracking::get_experiment_by_name, Read, "MLflow: an experiment by name";
    post "/api/2.0/mlflow/experiments/search" => tracking::search_experiments, Read, "MLflow: search experiments";
    post "/api/2.0/mlflow/runs/create" => tracking::create_run, Needs(Role::Approver), "MLflow: start a run";
    get "/api/2.0/mlflow/runs/get" => tracking::get_run, Read, "MLflow: a run with its latest metrics, params and tags";
    post "/api/2.0/mlflow/runs/update" => tracking::update_run, Needs(Role::Approver), "MLflow: set a run's status, end time or name";
    post "/api/2.0/mlflow/runs/delete" => tracking::delete_run, Needs(Role::Approver), "MLflow: delete a run (kept, restorable)";
    post "/api/2.0/mlflow/runs/restore" => tracking::restore_run, Needs(Role::Approver), "MLflow: restore a deleted run";
    post "/api/2.0/mlflow/runs/log-metric" => tracking::log_metric, Needs(Role::Approver), "MLflow: log a metric point";
    post "/api/2.0/mlflow/runs/log-parameter" => tracking::log_param, Needs(Role::Approver), "MLflow: log a param (immutable once logged)";
    post "/api/2.0/mlflow/runs/log-batch" => tracking::log_batch, Needs(Role::Approver), "MLflow: log metrics, params and tags at once";
    post "/api/2.0/mlflow/runs/set-tag" => tracking::set_tag, Needs(Role::Approver), "MLflow: set a run's tag";
    post "/api/2.0/mlflow/runs/delete-tag" => tracking::delete_tag, Needs(Role::Approver), "MLflow: delete a run's tag";
    post "/api/2.0/mlflow/runs/search" => tracking::search_runs, Read, "MLflow: search runs (filter, order_by, pages)";
    get "/api/2.0/mlflow/metrics/get-history" => tracking::get_metric_history, Read, "MLflow: a metric's points";
    post "/api/2.0/mlflow/logged-models/search" => tracking::search_logged_models, Read, "MLflow 3: logged models (Steward keeps none: always empty)";
    post "/api/2.0/mlflow/logged-models" => no_logged_models, Needs(Role::Approver), "MLflow 3: create a logged model (not kept: 400 NOT_IMPLEMENTED saying what to do)";
    post "/api/2.0/mlflow/experiments/set-experiment-tag" => no_tags_kept, Needs(Role::Approver), "MLflow: experiment tags (not kept: 400)";
    post "/api/2.0/mlflow/registered-models/set-tag" => no_tags_kept, Needs(Role::Approver), "MLflow: model tags (not kept: 400)";
    delete "/api/2.0/mlflow/registered-models/delete-tag" => no_tags_kept, Needs(Role::Approver), "MLflow: model tags (not kept: 400)";
    post "/api/2.0/mlflow/model-versions/set-tag" => no_tags_kept, Needs(Role::Approver), "MLflow: version tags (not kept: 400)";
    delete "/api/2.0/mlflow/model-versions/delete-tag" => no_tags_kept, Needs(Role::Approver), "MLflow: version tags (not kept: 400)";
    post "/api/2.0/mlflow/registered-models/create" => registry::create_model, Needs(Role::Approver), "MLflow: create a registered model";
    get "/api/2.0/mlflow/registered-models/get" => registry::get_model, Read, "MLflow: a registered model";
    get "/api/2.0/mlflow/registered-models/search" => registry::search_models, Read, "MLflow: search registered models";
    patch "/api/2.0/mlflow/registered-models/update" => registry::update_model, Needs(Role::Approver), "MLflow: set a model's description";
    delete "/api/2.0/mlflow/registered-models/delete" => registry::delete_model, Needs(Role::Admin), "MLflow: delete a model (not the served one, none of its versions in Production)";
    post "/api/2.0/mlflow/registered-models/get-latest-versions" => registry::latest_versions, Read, "MLflow: the newest version in each stage";
    get "/api/2.0/mlflow/registered-models/get-latest-versions" => registry::latest_versions_get, Read, "MLflow: the newest version in each stage";
    post "/api/2.0/mlflow/registered-models/alias" => registry::set_alias, Needs(Role::Approver), "MLflow: point an alias at a version (champion: promote)";
    delete "/api/2.0/mlflow/registered-models/alias" => registry::delete_alias, Needs(Role::Approver), "MLflow: remove an alias";
    get "/api/2.0/mlflow/registered-models/alias" => registry::get_by_alias, Read, "MLflow: the version an alias names";
    post "/api/2.0/mlflow/model-versions/create" => registry::create_version, Needs(Role::Approver), "MLflow: register a run's model as a new version";
    get "/api/2.0/mlflow/model-versions/get" => registry::get_version, Read, "MLflow: a model version";
    patch "/api/2.0/mlflow/model-versions/update" => registry::update_version, Needs(Role::Approver), "MLflow: set a version's description";
    delete "/api/2.0/mlflow/model-versions/delete" => registry::delete_version, Needs(Role::Approver), "MLflow: delete a version (not the served model's, not one in Production or its history)";
    get "/api/2.0/mlflow/model-versions/search" => registry::search_versions, Read, "MLflow: search model versions";
    post "/api/2.0/mlflow/model-versions/transition-stage" => registry::transition_stage, Needs(Role::Approver), "MLflow: move a version to a stage";
    put "/api/2.0/mlflow-artifacts/artifacts/{path:.*}" => artifacts::upload, Needs(Role::Approver), "MLflow's artifact proxy: store a run's file";
    get "/api/2.0/mlflow-artifacts/artifacts/{path:.*}" => artifacts::download, Read, "MLflow's artifact proxy: a run's file";
    get "/api/2.0/mlflow-artifacts/artifacts" => artifacts::list, Read, "MLflow's artifact proxy: list a run's files";
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::http::routes::register(cfg, ROUTES, handlers());
    // Any other MLflow endpoint is MLflow's ENDPOINT_NOT_FOUND (MLflow's own UI, under
    // /ajax-api, is not served: Steward's dashboard shows the same runs).
    for prefix in [
        "/api/2.0/mlflow/{tail:.*}",
        "/ajax-api/2.0/mlflow/{tail:.*}",
        "/api/2.0/mlflow-artifacts/{tail:.*}",
        "/api/3.0/mlflow/{tail:.*}",
    ] {
        cfg.route(prefix, web::to(not_found));
    }
}

/// An endpoint Steward does not have: MLflow's `ENDPOINT_NOT_FOUND` (the client falls back
/// on it where MLflow's own servers differ).
async fn not_found(req: HttpRequest) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error_code": "ENDPOINT_NOT_FOUND",
        "message": format!(
            "No API endpoint {} {} on Steward",
            req.method(),
            crate::error::bounded(req.path(), 120)
        ),
    }))
}

/// An error in MLflow's shape. `code` overrides the code derived from the error (for
/// `RESOURCE_ALREADY_EXISTS`).
#[derive(Debug)]
pub struct MlflowError {
    error: AppError,
    code: Option<&'static str>,
}

impl std::fmt::Display for MlflowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<AppError> for MlflowError {
    fn from(error: AppError) -> Self {
        MlflowError { error, code: None }
    }
}

impl MlflowError {
    fn code(&self) -> &'static str {
        self.code
            .unwrap_or_else(|| crate::error::mlflow_code(&self.error, false))
    }

    /// A conflict on creation is MLflow's `RESOURCE_ALREADY_EXISTS`.
    fn exists(error: AppError) -> Self {
        let code = matches!(error, AppError::Conflict(_)).then_some("RESOURCE_ALREADY_EXISTS");
        MlflowError { error, code }
    }
}

impl ResponseError for MlflowError {
    fn status_code(&self) -> StatusCode {
        crate::error::mlflow_status(self.code(), &self.error)
    }

    fn error_response(&self) -> HttpResponse {
        crate::error::mlflow_response(&self.error, self.code(), self.status_code())
    }
}

pub type Answer = Result<HttpResponse, MlflowError>;

fn invalid(field: &str, message: impl Into<String>) -> MlflowError {
    AppError::validation(field, message).into()
}

/// A JSON body read strictly as `T` (its `deny_unknown_fields` refuses an unknown key), with
/// errors in MLflow's shape. The body is read only after the route's guard let the caller in.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = MlflowError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, MlflowError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let limit = req
                .app_data::<web::Data<crate::state::AppState>>()
                .map(|s| s.settings.server.body_limit_bytes)
                .unwrap_or(1 << 20);
            let bytes = crate::http::read_body(&mut payload, &req, limit).await?;
            let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                &bytes
            };
            crate::http::body::refuse_nul(text)?;
            let value = crate::serving::request::parse_json(text)
                .map_err(|e| invalid("body", format!("malformed JSON: {e}")))?;
            if !value.is_object() {
                return Err(invalid("body", "must be a JSON object"));
            }
            serde_json::from_value(value)
                .map(Body)
                .map_err(|e| invalid("body", crate::error::bounded(&e.to_string(), 300)))
        })
    }
}

/// Query parameters, as MLflow's client sends a GET's fields: a list repeats its key.
pub struct Query(Vec<(String, String)>);

impl FromRequest for Query {
    type Error = MlflowError;
    type Future = std::future::Ready<Result<Self, MlflowError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(req.query_string().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        // As in bodies: no NUL reaches the store (PostgreSQL refuses it).
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return std::future::ready(Err(invalid("query", "holds a NUL character")));
        }
        std::future::ready(Ok(Query(pairs)))
    }
}

impl Query {
    /// Refuses a key not in `known` (400 naming it).
    fn only(&self, known: &[&str]) -> Result<(), MlflowError> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((k, _)) => Err(invalid(
                &crate::error::bounded(k, 64),
                format!(
                    "unknown parameter; this endpoint takes {}",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn required(&self, key: &str) -> Result<&str, MlflowError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(key, "is required"))
    }

    fn number(&self, key: &str) -> Result<Option<i64>, MlflowError> {
        self.get(key)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| invalid(key, "must be a whole number"))
            })
            .transpose()
    }
}

/// A `max_results` within `1..=max`, `default` when absent.
fn max_results(given: Option<i64>, default: usize, max: usize) -> Result<usize, MlflowError> {
    match given {
        None => Ok(default),
        Some(n) if n >= 1 && (n as u64) <= max as u64 => Ok(n as usize),
        Some(_) => Err(invalid(
            "max_results",
            format!("must be between 1 and {max}"),
        )),
    }
}

/// The furthest page a token may point at (every search reads fewer rows than this).
const MAX_OFFSET: usize = 10_000_000;

/// Page tokens are opaque to clients: base64 of `offset:<n>`.
fn page_token(offset: Option<usize>) -> Option<String> {
    offset.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("offset:{n}")))
}

fn parse_page_token(token: Option<&str>) -> Result<usize, MlflowError> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(0);
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse().ok()))
        .filter(|n: &usize| *n <= MAX_OFFSET)
        .ok_or_else(|| invalid("page_token", "is no page token of this server"))
}

/// A version number MLflow sends as a string (`"3"`), or a number.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum VersionField {
    Text(String),
    Number(i64),
}

impl VersionField {
    fn number(&self) -> Result<i32, MlflowError> {
        let n = match self {
            VersionField::Text(t) => t.trim().parse::<i64>().ok(),
            VersionField::Number(n) => Some(*n),
        };
        n.and_then(|n| i32::try_from(n).ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| invalid("version", "must be a version number (1, 2, ...)"))
    }
}

/// The caller's audit name, once they hold `role` (the route's guard checked it already;
/// handlers check again, as every handler does).
fn writer(identity: &crate::auth::Identity, role: Role) -> Result<String, MlflowError> {
    identity.require(role)?;
    Ok(identity.actor())
}

/// Tags on experiments, models and versions: Steward keeps none, and says so (400) rather
/// than drop them.
async fn no_tags_kept(identity: crate::auth::Identity) -> Answer {
    writer(&identity, Role::Approver)?;
    Err(invalid(
        "key",
        "Steward keeps no tags on experiments, registered models or model versions (run tags are kept)",
    ))
}

/// MLflow 3's logged models (`log_model`): not kept. MLflow's `NOT_IMPLEMENTED` code, as a
/// 400 (a refusal of the request, not a server fault, and not retried by the client), with
/// what to do instead.
async fn no_logged_models(identity: crate::auth::Identity) -> Answer {
    writer(&identity, Role::Approver)?;
    Err(MlflowError {
        error: AppError::BadRequest(
            "Steward keeps no MLflow logged models (MLflow 3's log_model): save the model with \
             mlflow.<flavour>.save_model(path) and log the folder with \
             mlflow.log_artifacts(path, \"model\"); register it from runs:/<run_id>/model"
                .into(),
        ),
        code: Some("NOT_IMPLEMENTED"),
    })
}

/// A turn to search: [`crate::state::AppState::search_gate`], waiting up to 5 s, then 503
/// with Retry-After (MLflow's client waits and retries).
async fn search_turn(
    state: &crate::state::AppState,
) -> Result<tokio::sync::OwnedSemaphorePermit, MlflowError> {
    let wait = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        state.search_gate.clone().acquire_owned(),
    );
    match wait.await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AppError::Overloaded {
            message: "other searches are running; try again shortly".into(),
            retry_after_secs: 1,
        }
        .into()),
    }
}

/// A page of `items` under `key`, with MLflow's `next_page_token` when there is more.
fn paged(key: &str, items: Vec<serde_json::Value>, next: Option<usize>) -> HttpResponse {
    let mut out = serde_json::Map::new();
    out.insert(key.to_owned(), serde_json::Value::Array(items));
    if let Some(token) = page_token(next) {
        out.insert("next_page_token".into(), token.into());
    }
    HttpResponse::Ok().json(out)
}

/// The first `order_by` entry as its key and whether it is descending (`<key> [ASC|DESC]`);
/// `None` when none is given.
fn first_order(order_by: &[String]) -> Result<Option<(String, bool)>, MlflowError> {
    let Some(first) = order_by.first() else {
        return Ok(None);
    };
    let mut words = first.split_whitespace();
    let key = words.next().unwrap_or_default().to_owned();
    let descending = match words.next().map(str::to_ascii_uppercase).as_deref() {
        None | Some("ASC") => false,
        Some("DESC") => true,
        Some(_) => return Err(invalid("order_by", "a key is followed by ASC or DESC")),
    };
    Ok(Some((key, descending)))
}

fn ok_empty() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({}))
}

fn millis(t: chrono::NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let token = page_token(Some(120));
        assert_eq!(parse_page_token(token.as_deref()).ok(), Some(120));
        assert_eq!(parse_page_token(None).ok(), Some(0));
        assert!(parse_page_token(Some("bm90LWEtdG9rZW4")).is_err());
    }

    #[test]
    fn versions_come_as_text_or_numbers() {
        assert_eq!(VersionField::Text("3".into()).number().ok(), Some(3));
        assert_eq!(VersionField::Number(2).number().ok(), Some(2));
        assert!(VersionField::Text("x".into()).number().is_err());
        assert!(VersionField::Number(0).number().is_err());
    }
}
