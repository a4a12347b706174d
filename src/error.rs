//! `AppError`: the one error type of the HTTP surface, and the JSON error contract.
//!
//! Every error body is `{"error": "<code>", "message": "…", "details": [...]}`, where `code` is
//! the snake_case name of the variant. HTTP statuses are mapped here and nowhere else. An internal
//! error never shows its cause to the client; the cause goes to the log.
//!
//! Bodies are bounded whatever went wrong: a message is cut at [`MAX_MESSAGE_CHARS`], and at
//! most [`MAX_DETAILS`] field errors are listed, the rest counted in one last entry, so an error
//! never echoes an unbounded input back.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// One offending input field, for validation errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("CSRF token missing or invalid; reload the page and try again")]
    Csrf,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{message}")]
    Validation {
        message: String,
        details: Vec<FieldError>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body did not arrive in time: 408.
    #[error("{0}")]
    Timeout(String),
    #[error("too many failed attempts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// Saturated for now (a full queue, every library slot taken): 503 with `Retry-After`.
    #[error("{message}")]
    Overloaded {
        message: String,
        retry_after_secs: u64,
    },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

#[derive(Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    pub details: &'a [FieldError],
}

impl AppError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError::Validation {
            message: format!("{field}: {message}"),
            details: vec![FieldError {
                field: field.to_owned(),
                message,
            }],
        }
    }

    /// The stable, snake_case code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::Csrf => "csrf_failed",
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Validation { .. } => "validation_failed",
            AppError::BadRequest(_) => "bad_request",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::Timeout(_) => "request_timeout",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Overloaded { .. } => "overloaded",
            AppError::Internal(_) => "internal",
        }
    }
}

impl AppError {
    /// What every error answer starts from, whatever its body's shape: the cause of an internal
    /// error logged (never shown), `Retry-After` on the errors worth retrying, and the field
    /// errors to list (bounded).
    fn response_parts(
        &self,
        status: StatusCode,
    ) -> (actix_web::HttpResponseBuilder, Vec<FieldError>) {
        if let AppError::Internal(cause) = self {
            tracing::error!(error = ?cause, "internal error");
        }
        let mut response = HttpResponse::build(status);
        match self {
            AppError::RateLimited { retry_after_secs }
            | AppError::Overloaded {
                retry_after_secs, ..
            } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            // Unavailable for now (a store that did not answer, no model yet): try again.
            AppError::Unavailable(_) => {
                response.insert_header(("Retry-After", "1"));
            }
            _ => {}
        }
        let details = match self {
            AppError::Validation { details, .. } => bounded_details(details),
            _ => Vec::new(),
        };
        (response, details)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (mut response, details) = self.response_parts(self.status_code());
        response.json(ErrorBody {
            error: self.code(),
            message: bounded(&self.to_string(), MAX_MESSAGE_CHARS),
            details: &details,
        })
    }
}

/// MLflow's error code for an error: the protocol's names (`RESOURCE_DOES_NOT_EXIST`,
/// `INVALID_PARAMETER_VALUE`, ...). On the scoring endpoint (`scoring`), input errors are
/// MLflow's scoring server's `BAD_REQUEST`.
pub fn mlflow_code(err: &AppError, scoring: bool) -> &'static str {
    match err {
        AppError::Unauthenticated(_) => "UNAUTHENTICATED",
        AppError::Forbidden(_) | AppError::Csrf => "PERMISSION_DENIED",
        AppError::NotFound(_) => "RESOURCE_DOES_NOT_EXIST",
        AppError::Conflict(_) => "INVALID_STATE",
        AppError::Validation { .. } | AppError::BadRequest(_) if scoring => "BAD_REQUEST",
        AppError::Validation { .. } | AppError::BadRequest(_) => "INVALID_PARAMETER_VALUE",
        AppError::UnsupportedMediaType(_) => "BAD_REQUEST",
        AppError::PayloadTooLarge { .. } => "REQUEST_LIMIT_EXCEEDED",
        AppError::Timeout(_) => "DEADLINE_EXCEEDED",
        AppError::RateLimited { .. } => "REQUEST_LIMIT_EXCEEDED",
        AppError::Unavailable(_) | AppError::Overloaded { .. } => "TEMPORARILY_UNAVAILABLE",
        AppError::Internal(_) => "INTERNAL_ERROR",
    }
}

/// The HTTP status MLflow's server gives a code (`mlflow.exceptions`), where it differs from
/// Steward's own for the error: 400 for invalid parameters and states (Steward: 422, 409).
pub fn mlflow_status(code: &str, err: &AppError) -> StatusCode {
    match code {
        "INVALID_PARAMETER_VALUE" | "INVALID_STATE" | "RESOURCE_ALREADY_EXISTS" => {
            StatusCode::BAD_REQUEST
        }
        _ => err.status_code(),
    }
}

/// An error in MLflow's shape: `{"error_code": "...", "message": "..."}` (with Steward's
/// `details` when fields are named), under `status`; `Retry-After` as Steward sends it.
pub fn mlflow_response(err: &AppError, code: &str, status: StatusCode) -> HttpResponse {
    let (mut response, details) = err.response_parts(status);
    let mut body = serde_json::json!({
        "error_code": code,
        "message": bounded(&err.to_string(), MAX_MESSAGE_CHARS),
    });
    if !details.is_empty() {
        if let Some(map) = body.as_object_mut() {
            map.insert(
                "details".into(),
                serde_json::to_value(&details).unwrap_or_default(),
            );
        }
    }
    response.json(body)
}

/// Longest error message a body carries, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Most field errors a body lists; the rest are counted in one last entry.
pub const MAX_DETAILS: usize = 100;
/// Longest field name and field message in a body, in characters.
const MAX_FIELD_CHARS: usize = 200;

/// `text` cut to at most `max` characters (an ellipsis marks the cut).
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => {
            let mut cut = text.get(..end).unwrap_or_default().to_owned();
            cut.push('…');
            cut
        }
    }
}

/// At most [`MAX_DETAILS`] field errors, each bounded, and one entry counting the rest.
pub fn bounded_details(details: &[FieldError]) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = details
        .iter()
        .take(MAX_DETAILS)
        .map(|d| FieldError {
            field: bounded(&d.field, MAX_FIELD_CHARS),
            message: bounded(&d.message, MAX_FIELD_CHARS),
        })
        .collect();
    if details.len() > MAX_DETAILS {
        out.push(FieldError {
            field: "…".into(),
            message: format!("{} more errors not listed", details.len() - MAX_DETAILS),
        });
    }
    out
}

impl From<diesel::result::Error> for AppError {
    /// A store too busy to answer in time (SQLite's busy timeout passed while another writer
    /// held the lock; PostgreSQL's lock or statement timeout) is a 503 with Retry-After, not
    /// an internal error: the request may simply be tried again.
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match e {
            E::NotFound => AppError::NotFound("not found".into()),
            E::DatabaseError(K::Unknown, ref info) if is_busy(info.message()) => {
                tracing::warn!(error = %e, "the store was busy");
                AppError::Overloaded {
                    message: "the store is busy; try again shortly".into(),
                    retry_after_secs: 1,
                }
            }
            other => AppError::Internal(other.into()),
        }
    }
}

/// The store's words for "busy, try later": SQLite's SQLITE_BUSY/SQLITE_LOCKED, and
/// PostgreSQL's lock and statement timeouts (diesel passes no SQLSTATE for these).
pub fn is_busy(message: &str) -> bool {
    [
        "database is locked",
        "database table is locked",
        "canceling statement due to lock timeout",
        "canceling statement due to statement timeout",
    ]
    .iter()
    .any(|m| message.contains(m))
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(anyhow::anyhow!("template: {e}"))
    }
}

/// Maps actix's body extractor errors onto the contract (413 for oversize, 400 otherwise).
pub fn json_error(err: actix_web::error::JsonPayloadError, limit: usize) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    match err {
        J::OverflowKnownLength { .. } | J::Overflow { .. } => {
            AppError::PayloadTooLarge { limit }.into()
        }
        J::ContentType => {
            AppError::UnsupportedMediaType("expected Content-Type: application/json".into()).into()
        }
        J::Deserialize(e) => AppError::BadRequest(format!("malformed JSON: {e}")).into(),
        other => AppError::BadRequest(other.to_string()).into(),
    }
}

pub fn form_error(err: actix_web::error::UrlencodedError, limit: usize) -> actix_web::Error {
    use actix_web::error::UrlencodedError as U;
    match err {
        U::Overflow { .. } => AppError::PayloadTooLarge { limit }.into(),
        other => AppError::BadRequest(format!("malformed form: {other}")).into(),
    }
}

/// A query string that does not fit its handler: 400 in the contract, naming what is wrong.
pub fn query_error(
    err: actix_web::error::QueryPayloadError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    AppError::BadRequest(format!("bad query string: {err}")).into()
}

/// A path parameter that does not parse (`/versions/abc`): 400 in the contract.
pub fn path_error(
    err: actix_web::error::PathError,
    _: &actix_web::HttpRequest,
) -> actix_web::Error {
    AppError::BadRequest(format!("bad path parameter: {err}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_store_is_a_503_with_retry_after() {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        let busy = E::DatabaseError(K::Unknown, Box::new("database is locked".to_owned()));
        let e = AppError::from(busy);
        assert!(
            matches!(
                e,
                AppError::Overloaded {
                    retry_after_secs: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.status_code(),
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        );
        let other = E::DatabaseError(K::Unknown, Box::new("syntax error".to_owned()));
        assert!(matches!(AppError::from(other), AppError::Internal(_)));
    }

    #[test]
    fn bodies_are_bounded() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcdé", 4), "abcd…");
        assert_eq!(bounded("ééé", 1), "é…");
        let many: Vec<FieldError> = (0..250)
            .map(|i| FieldError {
                field: format!("f{i}{}", "x".repeat(1000)),
                message: "m".repeat(1000),
            })
            .collect();
        let out = bounded_details(&many);
        assert_eq!(out.len(), MAX_DETAILS + 1);
        assert!(
            out.iter()
                .all(|d| d.field.chars().count() <= MAX_FIELD_CHARS + 1)
        );
        assert_eq!(out[MAX_DETAILS].message, "150 more errors not listed");
    }
}
