//! The prediction endpoints: `POST /predict`, MLflow's `POST /invocations`, `GET /model/info`
//! and `POST /feedback`. Bodies are read and parsed here by hand (not by actix extractors), so
//! that a malformed body (400), a wrong content type (415), an oversized body (413) and bad
//! fields (422, every field named) each get their own answer, in the JSON error contract.

use std::time::Instant;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::{Identity, Role};
use crate::error::{AppError, FieldError};
use crate::http::body::mime;
use crate::serving::feedback::{self, Feedback, FeedbackRequest};
use crate::serving::log::PredictionRow;
use crate::serving::request::{self, ParseError};
use crate::serving::{ModelInfo, ServedModel};
use crate::state::AppState;
use crate::telemetry::VALIDATION_FAILURES_TOTAL;

/// With `serving.require_token`, the prediction endpoints need a caller of any role.
async fn authorize(state: &AppState, req: &HttpRequest) -> Result<String, AppError> {
    if !state.settings.serving.require_token {
        return Ok("anonymous".into());
    }
    let identity = Identity::extract(req).await?;
    let user = identity.require(Role::Viewer)?;
    Ok(format!("user:{}", user.username))
}

/// Reads a prediction body within `serving.inflight_body_bytes` (shared by every request) and
/// `serving.body_read_secs`; the permit holds its room until the handler is done with it.
async fn body(
    state: &AppState,
    payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<(web::BytesMut, tokio::sync::OwnedSemaphorePermit), AppError> {
    let mut payload = payload.into_inner();
    state.serving_bodies.read(&mut payload, req, limit).await
}

/// Bodies longer than this are parsed on the blocking pool, behind the batch slots
/// (`serving.offload_concurrency`): parsing megabytes of JSON would hold a worker.
const PARSE_OFF_WORKERS_BYTES: usize = 64 * 1024;

/// Parses a body: on the worker when it is small, else off the workers (503 with Retry-After
/// when every batch slot stays busy for `serving.offload_wait_ms`).
async fn parse_off_workers<T: Send + 'static>(
    state: &AppState,
    body: web::BytesMut,
    parse: impl FnOnce(&request::FeatureSchema, &[u8]) -> T + Send + 'static,
) -> Result<T, AppError> {
    if body.len() <= PARSE_OFF_WORKERS_BYTES {
        return Ok(parse(&state.serving.schema, &body));
    }
    let serving = state.serving.clone();
    state
        .serving
        .offload(move || parse(&serving.schema, &body))
        .await
}

fn current_model(state: &AppState) -> Result<std::sync::Arc<ServedModel>, AppError> {
    state.serving.current().ok_or_else(|| {
        AppError::Unavailable(format!(
            "no version of `{}` is in Production; promote one first",
            state.settings.registry.model
        ))
    })
}

/// Counts validation failures per field; instance prefixes are cut and unknown fields share one
/// label, so the label set stays the schema's columns.
fn count_failures(state: &AppState, errors: &[FieldError]) {
    if !errors.is_empty() {
        state.serving.count_rejected();
    }
    for e in errors {
        let name = e.field.rsplit('.').next().unwrap_or(&e.field);
        let label = if state.serving.schema.columns.iter().any(|c| c.name == name) {
            name.to_owned()
        } else if e.message.starts_with("unknown field") {
            "unknown_field".to_owned()
        } else {
            "body".to_owned()
        };
        metrics::counter!(VALIDATION_FAILURES_TOTAL, "field" => label).increment(1);
    }
}

fn parse_error(state: &AppState, e: ParseError) -> AppError {
    match e {
        ParseError::Malformed(m) | ParseError::MlflowFormat(m) => {
            metrics::counter!(VALIDATION_FAILURES_TOTAL, "field" => "body").increment(1);
            AppError::BadRequest(m)
        }
        ParseError::TooMany { rows, max } => AppError::Validation {
            message: format!("{rows} rows is more than serving.max_batch ({max})"),
            details: vec![FieldError {
                field: "instances".into(),
                message: format!("at most {max} rows per request"),
            }],
        },
        ParseError::Invalid { errors, total } => {
            count_failures(state, &errors);
            const LISTED: usize = 5;
            let more = total.saturating_sub(LISTED);
            let message = format!(
                "{} invalid field{}: {}{}",
                total,
                if total == 1 { "" } else { "s" },
                errors
                    .iter()
                    .take(LISTED)
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                if more > 0 {
                    format!("; and {more} more (see details)")
                } else {
                    String::new()
                }
            );
            AppError::Validation {
                message,
                details: errors,
            }
        }
    }
}

/// Scores rows (off the workers when they are many or need the library) and queues them for
/// the prediction log; returns (request id, probability, class) per row, and explanations.
async fn score(
    state: &AppState,
    model: &std::sync::Arc<ServedModel>,
    rows: Vec<Vec<crate::ml::features::Raw>>,
    explain: bool,
    endpoint: &'static str,
    started: Instant,
) -> Result<
    (
        Vec<(String, f64, i32)>,
        Option<Vec<crate::ml::explain::Explanation>>,
    ),
    AppError,
> {
    let scored = state.serving.score(model, rows, explain).await?;
    let threshold = model.threshold();
    let version = model.version.version;
    let now = crate::db::now();
    let latency = started.elapsed().as_micros() as i64;
    let batch_rows = i32::try_from(scored.rows.len()).unwrap_or(i32::MAX);
    let mut out = Vec::with_capacity(scored.rows.len());
    let mut log = Vec::with_capacity(scored.rows.len());
    let mut positives = 0_u64;
    for (row, p) in scored.rows.iter().zip(scored.probabilities) {
        let class = i32::from(p >= threshold);
        positives += class as u64;
        // Time-ordered ids: the log's primary key grows at its end.
        let id = uuid::Uuid::now_v7().to_string();
        log.push(PredictionRow {
            request_id: id.clone(),
            created_at: now,
            model: model.version.model.clone(),
            model_version: version,
            endpoint: endpoint.to_owned(),
            features_json: PredictionRow::encode_features(row),
            probability: p,
            prediction: class,
            latency_us: latency,
            batch_rows,
        });
        out.push((id, p, class));
    }
    state.serving.log.record(log).await?;
    // Counted once logged: a request refused for a full log scored nothing it answered.
    model.predictions[0].increment(out.len() as u64 - positives);
    model.predictions[1].increment(positives);
    Ok((out, scored.explanations))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PredictQuery {
    /// Add per-feature contributions (XGBoost SHAP values, or LR coefficient × value).
    #[serde(default)]
    explain: bool,
}

/// One prediction.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PredictResponse {
    /// The class at the model's threshold: 1 = heart disease.
    prediction: i32,
    /// Probability of class 1.
    probability: f64,
    model_version: i32,
    /// Quote it in `POST /feedback` to record the true label.
    request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    explanation: Option<Value>,
}

/// Score one patient or a batch
///
/// One object of named features, or a batch as `{"instances": [...]}`.
#[utoipa::path(
    post,
    path = "/predict",
    tag = "serving",
    params(PredictQuery),
    request_body(content = Object, description = "An object of named features, or {\"instances\": [objects]}", content_type = "application/json",
        example = json!({"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2, "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6})),
    responses(
        (status = 200, description = "The prediction, or a list for a batch", body = PredictResponse),
        (status = 400, description = "Malformed JSON"),
        (status = 413, description = "Body or batch too large"),
        (status = 415, description = "Not application/json"),
        (status = 422, description = "Fields missing, unknown, of the wrong type, out of range or of an unknown category; all named"),
        (status = 503, description = "No model in Production"),
    )
)]
pub async fn predict(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<PredictQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let started = Instant::now();
    authorize(&state, &req).await?;
    let serving = &state.settings.serving;
    let (body, _room) = body(&state, payload, &req, serving.body_limit_bytes).await?;
    if mime(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "POST /predict takes Content-Type: application/json".into(),
        ));
    }
    let max_batch = serving.max_batch;
    let parsed = parse_off_workers(&state, body, move |schema, body| {
        request::parse_predict(schema, body, max_batch)
    })
    .await?
    .map_err(|e| parse_error(&state, e))?;
    let model = current_model(&state)?;
    let batch = parsed.batch;
    let (scored, explanations) = score(
        &state,
        &model,
        parsed.rows,
        query.explain,
        "predict",
        started,
    )
    .await?;
    let version = model.version.version;
    let mut answers: Vec<PredictResponse> = scored
        .into_iter()
        .map(|(request_id, probability, prediction)| PredictResponse {
            prediction,
            probability,
            model_version: version,
            request_id,
            explanation: None,
        })
        .collect();
    if let Some(explanations) = explanations {
        for (answer, e) in answers.iter_mut().zip(explanations) {
            let contributions: Map<String, Value> = e
                .contributions
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
            answer.explanation = Some(json!({
                "space": "log-odds",
                "bias": e.bias,
                "contributions": contributions,
            }));
        }
    }
    if batch {
        return Ok(HttpResponse::Ok().json(answers));
    }
    match answers.into_iter().next() {
        Some(one) => Ok(HttpResponse::Ok().json(one)),
        None => Err(AppError::Internal(anyhow::anyhow!(
            "no answer for a scored request"
        ))),
    }
}

/// MLflow's error body: `{"error_code": "BAD_REQUEST", "message": ...}`.
fn mlflow_error(status: actix_web::http::StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error_code": "BAD_REQUEST", "message": message }))
}

/// MLflow's scoring protocol
///
/// `dataframe_split`, `dataframe_records`, `instances` or `inputs` as JSON, or CSV with a
/// header row; answers `{"predictions": [classes]}`.
#[utoipa::path(
    post,
    path = "/invocations",
    tag = "serving",
    request_body(content = Object, description = "MLflow input: exactly one of dataframe_split, dataframe_records, instances, inputs; or text/csv", content_type = "application/json",
        example = json!({"dataframe_split": {"columns": ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca", "thal"], "data": [[63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3, 3, 0, 6]]}})),
    responses(
        (status = 200, description = "{\"predictions\": [0 or 1, ...]}"),
        (status = 400, description = "MLflow's BAD_REQUEST: none or several input keys, malformed JSON or CSV"),
        (status = 415, description = "Neither application/json nor text/csv"),
        (status = 422, description = "Invalid fields, all named"),
    )
)]
pub async fn invocations(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    // Every error in MLflow's shape (`{"error_code", "message"}`), with Steward's statuses
    // (422 for an invalid field, 503 with Retry-After when saturated).
    match invocations_inner(state, req, payload).await {
        Ok(response) => response,
        Err(e) => {
            let code = crate::error::mlflow_code(&e, true);
            crate::error::mlflow_response(&e, code, actix_web::ResponseError::status_code(&e))
        }
    }
}

async fn invocations_inner(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let started = Instant::now();
    authorize(&state, &req).await?;
    let serving = &state.settings.serving;
    let (body, _room) = body(&state, payload, &req, serving.body_limit_bytes).await?;
    let max_batch = serving.max_batch;
    let parsed = match mime(&req).as_str() {
        "application/json" => {
            parse_off_workers(&state, body, move |schema, body| {
                // MLflow's client spells missing values NaN (Python's json): read them as
                // MLflow's server does. /predict stays strict JSON.
                let body = request::mlflow_literals(body);
                request::parse_invocations_json(schema, &body, max_batch)
            })
            .await?
        }
        "text/csv" => {
            // pandas (and so MLflow's server) reads `NaN` in a CSV as a missing value.
            let mut missing = state.settings.dataset.missing_values.clone();
            if !missing.iter().any(|m| m == "NaN") {
                missing.push("NaN".into());
            }
            parse_off_workers(&state, body, move |schema, body| {
                request::parse_invocations_csv(schema, body, max_batch, &missing)
            })
            .await?
        }
        other => {
            return Ok(HttpResponse::UnsupportedMediaType()
                .content_type("text/plain")
                .body(format!(
                    "This predictor only supports the following content types: Types: ['text/csv', 'application/json']. Got '{}'.",
                    crate::error::bounded(other, 100)
                )));
        }
    };
    let rows = match parsed {
        Ok(rows) => rows,
        Err(ParseError::MlflowFormat(m)) => {
            metrics::counter!(VALIDATION_FAILURES_TOTAL, "field" => "body").increment(1);
            return Ok(mlflow_error(actix_web::http::StatusCode::BAD_REQUEST, m));
        }
        Err(e) => return Err(parse_error(&state, e)),
    };
    let model = current_model(&state)?;
    let (scored, _) = score(&state, &model, rows, false, "invocations", started).await?;
    let predictions: Vec<i32> = scored.into_iter().map(|(_, _, c)| c).collect();
    Ok(HttpResponse::Ok().json(json!({ "predictions": predictions })))
}

/// The model being served
///
/// Version, stage, when it was trained, on which dataset version, its metrics and the feature
/// schema a request must follow.
#[utoipa::path(
    get,
    path = "/model/info",
    tag = "serving",
    responses((status = 200, body = ModelInfo), (status = 503, description = "No model in Production"))
)]
pub async fn model_info(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    authorize(&state, &req).await?;
    let info = state.serving.info().ok_or_else(|| {
        AppError::Unavailable(format!(
            "no version of `{}` is in Production",
            state.settings.registry.model
        ))
    })?;
    Ok(HttpResponse::Ok().json(info))
}

/// Record the true label of a logged prediction
///
/// Needs a bearer token of at least `serving.feedback_role` (approver by default: labels
/// drive live performance and decay alerts), or such a dashboard session with its CSRF token,
/// unless `serving.feedback_requires_token = false`.
#[utoipa::path(
    post,
    path = "/feedback",
    tag = "serving",
    request_body(content = FeedbackRequest, content_type = "application/json",
        example = json!({"request_id": "0190b5d2-7c1e-7a3b-9f4e-2d8c6a1b3e5f", "label": 1})),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Feedback),
        (status = 401, description = "No token, with serving.feedback_requires_token (the default)"),
        (status = 403, description = "A token below serving.feedback_role (approver by default)"),
        (status = 404, description = "No prediction has this request_id"),
        (status = 409, description = "This request already has a label"),
        (status = 422, description = "The label is not 0 or 1"),
    )
)]
pub async fn post_feedback(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    // The route guard has checked the caller (serving.feedback_requires_token); each label is
    // stored with who sent it.
    let actor = identity.actor();
    let (body, _room) = body(&state, payload, &req, 64 * 1024).await?;
    if mime(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "POST /feedback takes Content-Type: application/json".into(),
        ));
    }
    let request: FeedbackRequest = crate::http::body::parse_object(&body)?;
    let request = std::sync::Arc::new(request);
    let store = || {
        let (request, actor) = (request.clone(), actor.clone());
        state
            .db
            .run(move |conn| feedback::record(conn, &request, &actor))
    };
    // Read before the first attempt: a row committed between that attempt and a later look at
    // the queue would otherwise be missed (its permit back, the queue empty, the label 404).
    let queued = state.serving.log.depth() > 0;
    let stored = match store().await {
        // A prediction may still be in the log's queue: wait for it to be stored, once and at
        // most serving.log_wait_ms. With nothing queued when the label arrived, or an id that
        // is no prediction of the last hour (its UUIDv7 time), there is nothing to wait for.
        Err(AppError::NotFound(_))
            if (queued || state.serving.log.depth() > 0)
                && feedback::may_be_queued(&request.request_id) =>
        {
            state.serving.log.flush_within_wait().await?;
            store().await?
        }
        other => other?,
    };
    Ok(HttpResponse::Created().json(stored))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecentQuery {
    limit: Option<i64>,
    /// Only this model version.
    version: Option<i32>,
    /// Only this predicted class (0 or 1).
    class: Option<i32>,
    /// Only rows with (`true`) or without (`false`) a feedback label.
    labelled: Option<bool>,
    /// Rows older than this request id: the last one of the previous page.
    before: Option<String>,
}

/// `GET /api/v1/predictions`: the prediction log's size and newest rows (viewer).
pub async fn list_predictions(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<RecentQuery>,
) -> Result<HttpResponse, AppError> {
    // Patient features: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let q = query.into_inner();
    if q.before.as_ref().is_some_and(|b| b.len() > 64) {
        return Err(AppError::validation("before", "must be a request id"));
    }
    let log_query = crate::serving::log::LogQuery {
        limit: q.limit.unwrap_or(50),
        version: q.version,
        class: q.class,
        labelled: q.labelled,
        before: q.before,
    };
    let (recent, dead) = state
        .db
        .run(move |conn| {
            Ok((
                crate::serving::log::page(conn, &log_query)?,
                crate::serving::log::dead_letters(conn, 0)?,
            ))
        })
        .await?;
    let names = state.serving.schema.names();
    let rows: Vec<Value> = recent
        .rows
        .into_iter()
        .map(|(r, label)| {
            let features: Map<String, Value> = r
                .named_features(&names)
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            json!({
                "request_id": r.request_id,
                "created_at": r.created_at,
                "model": r.model,
                "model_version": r.model_version,
                "endpoint": r.endpoint,
                "features": features,
                "probability": r.probability,
                "prediction": r.prediction,
                "latency_us": r.latency_us,
                "batch_rows": r.batch_rows,
                "label": label,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": recent.total,
        "labelled": recent.labelled,
        "dead_letters": dead.total,
        "predictions": rows,
    })))
}

/// `GET /api/v1/predictions/dead-letters`: rows the store refused on their own, set aside so
/// they could not block the log, newest first (viewer).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    limit: Option<i64>,
}

pub async fn list_dead_letters(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<LimitQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Viewer)?;
    let limit = query.limit.unwrap_or(100);
    let dead = state
        .db
        .run(move |conn| crate::serving::log::dead_letters(conn, limit))
        .await?;
    let rows: Vec<Value> = dead
        .rows
        .into_iter()
        .map(|d| {
            json!({
                "request_id": d.request_id,
                "created_at": d.created_at,
                "failed_at": d.failed_at,
                "error": d.error,
                "row": serde_json::from_str::<Value>(&d.row_json).unwrap_or(Value::Null),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "total": dead.total, "dead_letters": rows })))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Steward", description = "Steward's HTTP API: predictions from the Production model and their feedback, the probes, and the JSON API under /api/v1 (datasets, validations, runs, the model registry, the prediction log, the audit log, users and tokens). Send `Authorization: Bearer <token>` (Authorize, above) for routes that need a role."),
    paths(predict, invocations, model_info, post_feedback, super::probes::get_health, super::probes::get_ready, super::probes::get_ping, super::probes::get_version),
    components(schemas(PredictResponse, ModelInfo, Feedback, FeedbackRequest)),
    tags((name = "serving", description = "Predictions and feedback"), (name = "probes", description = "Liveness and readiness"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    // Built once: the description is fixed for the binary.
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| {
        serde_json::to_string(&super::openapi::document()).unwrap_or_else(|_| "{}".into())
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}
