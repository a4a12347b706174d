//! Predictions: the newest rows of the prediction log with their feedback labels, polled live
//! by htmx, beside what is being served and how full the log's queue is.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, when};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::serving::log;
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;

/// Which page of the log the table shows, and its filters (the query string, so a page can be
/// linked and reloaded).
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct LogFilter {
    /// A model version number, or empty for all.
    #[serde(default)]
    version: String,
    /// `0`, `1`, or empty for both.
    #[serde(default)]
    class: String,
    /// `yes` (a label came back), `no`, or empty for both.
    #[serde(default)]
    labelled: String,
    /// Rows older than this request id (the previous page's last).
    #[serde(default)]
    before: String,
}

impl LogFilter {
    fn query(&self) -> Result<log::LogQuery, AppError> {
        let int = |field: &str, v: &str| -> Result<Option<i32>, AppError> {
            if v.is_empty() {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| AppError::validation(field, "must be a whole number"))
        };
        let class = int("class", &self.class)?;
        if class.is_some_and(|c| !(0..=1).contains(&c)) {
            return Err(AppError::validation("class", "must be 0 or 1"));
        }
        let labelled = match self.labelled.as_str() {
            "" => None,
            "yes" => Some(true),
            "no" => Some(false),
            _ => return Err(AppError::validation("labelled", "must be yes or no")),
        };
        let before = self.before.trim();
        if before.len() > 64 || !before.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(AppError::validation("before", "must be a request id"));
        }
        Ok(log::LogQuery {
            limit: PAGE_SIZE,
            version: int("version", &self.version)?,
            class,
            labelled,
            before: (!before.is_empty()).then(|| before.to_owned()),
        })
    }

    /// The query string of this filter with another `before`.
    fn link(&self, before: &str) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("version", &self.version)
            .append_pair("class", &self.class)
            .append_pair("labelled", &self.labelled)
            .append_pair("before", before)
            .finish()
    }
}

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
    filter: LogFilter,
    /// The versions the log has served, for the filter.
    versions: Vec<i32>,
    /// The query string of the next (older) page, when there may be one.
    older: Option<String>,
    /// The query string of this filter's first page, when this is a later one.
    newest: Option<String>,
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
    filter: web::Query<LogFilter>,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    // Patient features: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let filter = filter.into_inner();
    let query = filter.query()?;
    let model = state.settings.registry.model.clone();
    let (recent, dead, versions) = state
        .db
        .run(move |conn| {
            let versions = crate::registry::list_versions(conn, &model)?
                .into_iter()
                .map(|v| v.version)
                .collect::<Vec<i32>>();
            Ok((
                log::page(conn, &query)?,
                log::dead_letters(conn, 20)?,
                versions,
            ))
        })
        .await?;
    let older = (recent.rows.len() as i64 == PAGE_SIZE)
        .then(|| recent.rows.last().map(|(r, _)| filter.link(&r.request_id)))
        .flatten();
    let newest = (!filter.before.is_empty()).then(|| filter.link(""));
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
                // A batch's rows share its latency: say so rather than pass it off as the row's.
                latency: if r.batch_rows > 1 {
                    format!(
                        "{:.2} ms for a batch of {}",
                        r.latency_us as f64 / 1000.0,
                        r.batch_rows
                    )
                } else {
                    format!("{:.2} ms", r.latency_us as f64 / 1000.0)
                },
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
        filter,
        versions,
        older,
        newest,
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
