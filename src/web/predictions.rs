//! Predictions: the newest rows of the prediction log with their feedback labels, polled live
//! by htmx, beside what is being served and how full the log's queue is.

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{Chrome, html, is_htmx, when};
use crate::auth::Identity;
use crate::error::AppError;
use crate::serving::log;
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;

pub struct PredictionView {
    pub at: String,
    pub request_id: String,
    pub version: i32,
    pub endpoint: String,
    pub probability: String,
    pub prediction: i32,
    pub latency: String,
    /// The feedback label, or empty while none arrived.
    pub label: String,
    pub features: String,
}

#[derive(Template)]
#[template(path = "predictions_partial.html")]
struct PredictionsPartial {
    total: i64,
    labelled: i64,
    queued: usize,
    served: Option<String>,
    rows: Vec<PredictionView>,
}

#[derive(Template)]
#[template(path = "predictions.html")]
struct PredictionsPage {
    chrome: Chrome,
    partial: PredictionsPartial,
}

pub async fn get_predictions(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state)?;
    let recent = state.db.run(|conn| log::recent(conn, PAGE_SIZE)).await?;
    let names = state.serving.schema.names();
    let rows = recent
        .rows
        .into_iter()
        .map(|(r, label)| {
            let features = r
                .named_features(&names)
                .into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::String(category) => format!("{name}={category}"),
                    other => format!("{name}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ");
            PredictionView {
                at: when(&r.created_at),
                request_id: r.request_id,
                version: r.model_version,
                endpoint: r.endpoint,
                probability: format!("{:.3}", r.probability),
                prediction: r.prediction,
                latency: format!("{:.2} ms", r.latency_us as f64 / 1000.0),
                label: label.map(|l| l.to_string()).unwrap_or_default(),
                features,
            }
        })
        .collect();
    let partial = PredictionsPartial {
        total: recent.total,
        labelled: recent.labelled,
        queued: state.serving.log.depth(),
        served: state
            .serving
            .current()
            .map(|m| format!("{} v{}", m.version.model, m.version.version)),
        rows,
    };
    if is_htmx(&req) {
        return Ok(html(partial.render()?));
    }
    let page = PredictionsPage {
        chrome: Chrome::new(&identity, "/predictions"),
        partial,
    };
    Ok(html(page.render()?))
}
