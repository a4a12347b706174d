//! The prediction endpoints: `POST /predict`, MLflow's `POST /invocations`, `GET /model/info`
//! and `POST /feedback`. Bodies are read and parsed here by hand (not by actix extractors), so
//! that a malformed body (400), a wrong content type (415), an oversized body (413) and bad
//! fields (422, every field named) each get their own answer, in the JSON error contract.

use std::time::Instant;

use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::auth::{Identity, Role};
use crate::error::{AppError, FieldError};
use crate::ml::explain;
use crate::ml::features::Raw;
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

/// The body, refused past the limit without reading it all.
async fn read_body(
    mut payload: web::Payload,
    req: &HttpRequest,
    limit: usize,
) -> Result<web::BytesMut, AppError> {
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(AppError::PayloadTooLarge { limit });
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn mime(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
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
        ParseError::Invalid(errors) => {
            count_failures(state, &errors);
            let message = format!(
                "{} invalid field{}: {}",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" },
                errors
                    .iter()
                    .take(5)
                    .map(|e| format!("{} {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            AppError::Validation {
                message,
                details: errors,
            }
        }
    }
}

/// Scores rows and queues them for the prediction log; returns (request id, probability, class).
async fn score(
    state: &AppState,
    model: &ServedModel,
    rows: &[Vec<Raw>],
    endpoint: &'static str,
    started: Instant,
) -> Result<Vec<(String, f64, i32)>, AppError> {
    let timer = Instant::now();
    let probabilities = model.predict(rows)?;
    model
        .inference_duration
        .record(timer.elapsed().as_secs_f64());
    let threshold = model.threshold();
    let version = model.version.version;
    let now = crate::db::now();
    let latency = started.elapsed().as_micros() as i64;
    let mut out = Vec::with_capacity(rows.len());
    let mut log = Vec::with_capacity(rows.len());
    let mut positives = 0_u64;
    for (row, p) in rows.iter().zip(probabilities) {
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
        });
        out.push((id, p, class));
    }
    model.predictions[0].increment(rows.len() as u64 - positives);
    model.predictions[1].increment(positives);
    state.serving.log.record(log).await?;
    Ok(out)
}

#[derive(Deserialize, utoipa::IntoParams)]
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

/// Scores one patient (an object of features) or a batch (`{"instances": [...]}`).
#[utoipa::path(
    post,
    path = "/predict",
    tag = "serving",
    params(PredictQuery),
    request_body(content = Object, description = "An object of named features, or {\"instances\": [objects]}", content_type = "application/json"),
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
    let body = read_body(payload, &req, serving.body_limit_bytes).await?;
    if mime(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "POST /predict takes Content-Type: application/json".into(),
        ));
    }
    let parsed = request::parse_predict(&state.serving.schema, &body, serving.max_batch)
        .map_err(|e| parse_error(&state, e))?;
    let model = current_model(&state)?;
    let explanations = if query.explain {
        let e = explain::explain(&model.trained, parsed.rows.iter())
            .map_err(|m| AppError::validation("explain", m))?;
        Some(e)
    } else {
        None
    };
    let scored = score(&state, &model, &parsed.rows, "predict", started).await?;
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
    if parsed.batch {
        Ok(HttpResponse::Ok().json(answers))
    } else {
        Ok(HttpResponse::Ok().json(&answers[0]))
    }
}

/// MLflow's error body: `{"error_code": "BAD_REQUEST", "message": ...}`.
fn mlflow_error(status: actix_web::http::StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error_code": "BAD_REQUEST", "message": message }))
}

/// MLflow's scoring protocol: `dataframe_split`, `dataframe_records`, `instances` or `inputs`
/// as JSON, or CSV with a header row; answers `{"predictions": [classes]}`.
#[utoipa::path(
    post,
    path = "/invocations",
    tag = "serving",
    request_body(content = Object, description = "MLflow input: exactly one of dataframe_split, dataframe_records, instances, inputs; or text/csv"),
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
) -> Result<HttpResponse, AppError> {
    let started = Instant::now();
    authorize(&state, &req).await?;
    let serving = &state.settings.serving;
    let body = read_body(payload, &req, serving.body_limit_bytes).await?;
    let schema = &state.serving.schema;
    let parsed = match mime(&req).as_str() {
        "application/json" => request::parse_invocations_json(schema, &body, serving.max_batch),
        "text/csv" => request::parse_invocations_csv(
            schema,
            &body,
            serving.max_batch,
            &state.settings.dataset.missing_values,
        ),
        other => {
            return Ok(HttpResponse::UnsupportedMediaType()
                .content_type("text/plain")
                .body(format!(
                    "This predictor only supports the following content types: Types: ['text/csv', 'application/json']. Got '{other}'."
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
    let scored = score(&state, &model, &rows, "invocations", started).await?;
    let predictions: Vec<i32> = scored.into_iter().map(|(_, _, c)| c).collect();
    Ok(HttpResponse::Ok().json(json!({ "predictions": predictions })))
}

/// The model being served: version, stage, when it was trained, on which dataset version, its
/// metrics and the feature schema a request must follow.
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

/// Records the true label of an earlier prediction.
#[utoipa::path(
    post,
    path = "/feedback",
    tag = "serving",
    request_body = FeedbackRequest,
    responses(
        (status = 201, body = Feedback),
        (status = 404, description = "No prediction has this request_id"),
        (status = 409, description = "This request already has a label"),
        (status = 422, description = "The label is not 0 or 1"),
    )
)]
pub async fn post_feedback(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let actor = authorize(&state, &req).await?;
    let body = read_body(payload, &req, 64 * 1024).await?;
    if mime(&req) != "application/json" {
        return Err(AppError::UnsupportedMediaType(
            "POST /feedback takes Content-Type: application/json".into(),
        ));
    }
    let request: FeedbackRequest = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("malformed feedback: {e}")))?;
    let request = std::sync::Arc::new(request);
    let store = || {
        let (request, actor) = (request.clone(), actor.clone());
        state
            .db
            .run(move |conn| feedback::record(conn, &request, &actor))
    };
    let stored = match store().await {
        // The prediction may still be in the log's queue: wait for it to be stored, once.
        Err(AppError::NotFound(_)) => {
            state.serving.log.flush().await?;
            store().await?
        }
        other => other?,
    };
    Ok(HttpResponse::Created().json(stored))
}

#[derive(Deserialize)]
pub struct RecentQuery {
    limit: Option<i64>,
}

/// `GET /api/v1/predictions`: the prediction log's size and newest rows (viewer).
pub async fn list_predictions(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<RecentQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let limit = query.limit.unwrap_or(50);
    let recent = state
        .db
        .run(move |conn| crate::serving::log::recent(conn, limit))
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
                "label": label,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "total": recent.total,
        "labelled": recent.labelled,
        "predictions": rows,
    })))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Steward", description = "Predictions from the production model, and the probes."),
    paths(predict, invocations, model_info, post_feedback, super::probes::get_health, super::probes::get_ready),
    components(schemas(PredictResponse, ModelInfo, Feedback, FeedbackRequest)),
    tags((name = "serving", description = "Predictions and feedback"), (name = "probes", description = "Liveness and readiness"))
)]
pub struct ApiDoc;

pub async fn openapi_json() -> HttpResponse {
    use utoipa::OpenApi;
    HttpResponse::Ok().json(ApiDoc::openapi())
}
