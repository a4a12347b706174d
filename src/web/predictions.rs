//! Predictions: the newest rows of the prediction log with their feedback labels, polled live
//! by htmx, beside what is being served and how full the log's queue is.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{Chrome, when};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
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
    /// Rows the store refused on their own, set aside (newest first).
    dead_letters: i64,
    dead: Vec<DeadLetterView>,
}

pub struct DeadLetterView {
    pub request_id: String,
    pub at: String,
    pub failed: String,
    pub error: String,
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
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    // Patient features: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let (recent, dead) = state
        .db
        .run(|conn| Ok((log::recent(conn, PAGE_SIZE)?, log::dead_letters(conn, 20)?)))
        .await?;
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
        dead_letters: dead.total,
        dead: dead
            .rows
            .into_iter()
            .map(|d| DeadLetterView {
                request_id: d.request_id,
                at: when(&d.created_at),
                failed: when(&d.failed_at),
                error: d.error,
            })
            .collect(),
    };
    page_or_partial(hx, partial, |partial| {
        PredictionsPage {
            chrome: Chrome::new(&identity, "/predictions"),
            partial,
        }
        .render()
    })
}
