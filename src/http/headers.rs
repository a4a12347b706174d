//! Headers and error shapes every response of a face gets.
//!
//! - [`dashboard`]: a Content-Security-Policy that fits htmx (scripts and styles from this
//!   origin only, no inline code), no framing, `nosniff`, a strict referrer policy,
//!   `Cache-Control: no-store` (pages show tokens and patient data) and `Vary: HX-Request`.
//! - [`json_errors`]: on the API and the serving endpoints, an error that left actix without
//!   a JSON body (a 405 for a known path with another method, say) gets the JSON error
//!   contract, so every error a client sees has one shape.

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;

use crate::error::{AppError, ErrorBody, MAX_MESSAGE_CHARS, bounded};

/// The policy of a self-contained report: its own inline style and inline SVG, nothing else
/// (no script at all, no request anywhere).
pub const REPORT_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; sandbox";

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub async fn dashboard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    // Only the report's own policy (inline style, no script, sandboxed) replaces the pages'.
    let report = headers
        .get(header::CONTENT_SECURITY_POLICY)
        .is_some_and(|v| v.as_bytes() == REPORT_CONTENT_SECURITY_POLICY.as_bytes());
    if !report {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("HX-Request"));
    }
    Ok(response)
}

/// Headers every response gets unless its face set them: `nosniff`, no framing (also as CSP
/// `frame-ancestors`, so Swagger UI on `/docs/` can't be framed on this origin either) and a
/// strict referrer policy.
pub async fn every_response(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    ] {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    Ok(response)
}

/// Paths whose errors follow the JSON contract.
pub(crate) fn speaks_json(path: &str) -> bool {
    path.starts_with("/api/")
        || matches!(
            path,
            "/predict"
                | "/invocations"
                | "/feedback"
                | "/agent/alerts"
                | "/model/info"
                | "/openapi.json"
                | "/health"
                | "/ready"
                | "/metrics"
                | "/ping"
                | "/version"
        )
}

pub async fn json_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let json = speaks_json(req.path());
    let response = next.call(req).await?.map_into_boxed_body();
    let status = response.status();
    let has_type = response.headers().contains_key(header::CONTENT_TYPE);
    if !json || status.as_u16() < 400 || has_type {
        return Ok(response);
    }
    let message = response
        .response()
        .error()
        .map(|e| e.to_string())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
    let code = match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        s if s >= 500 => "internal",
        _ => "bad_request",
    };
    let (request, original) = response.into_parts();
    let mut replacement = HttpResponse::build(status).json(ErrorBody {
        error: code,
        message: bounded(&message, MAX_MESSAGE_CHARS),
        details: &[],
    });
    for (name, value) in original.headers() {
        if name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, replacement))
}

/// Unknown paths under `/api/`: the JSON 404.
pub async fn api_not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("no such API route".into()))
}
