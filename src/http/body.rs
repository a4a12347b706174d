//! Request bodies read by hand: bounded, and parsed strictly.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::state::AppState;

/// The body, refused past `limit` bytes without reading it all.
pub async fn read_body(
    payload: &mut Payload,
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

/// The media type of a request, lower-cased, without parameters.
pub fn mime(req: &HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// A JSON body that may be left out. An empty body is `T::default()`; anything else must be
/// `application/json` and parse strictly as `T` (whose `deny_unknown_fields` refuses a
/// misspelt key): malformed JSON or an unknown field is a 400 naming it, never the defaults.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let limit = req
                .app_data::<web::Data<AppState>>()
                .map(|s| s.settings.server.body_limit_bytes)
                .unwrap_or(1 << 20);
            let bytes = read_body(&mut payload, &req, limit).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            if mime(&req) != "application/json" {
                return Err(AppError::UnsupportedMediaType(
                    "a body must be Content-Type: application/json (or left empty)".into(),
                ));
            }
            serde_json::from_slice(&bytes)
                .map(OptionalJson)
                .map_err(|e| AppError::BadRequest(format!("malformed JSON body: {e}")))
        })
    }
}
