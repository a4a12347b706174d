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
    // What the client declares is not what it sends: start small, grow with what arrives.
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit).min(64 * 1024));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Room for request bodies held in memory at once, across requests: what an open endpoint's
/// bodies may cost together. Counted in KiB.
pub struct BodyBudget {
    room: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long a body waits for room before its request is answered 503.
    wait: std::time::Duration,
    /// How long a body may take to arrive (408 past it).
    read: std::time::Duration,
}

impl BodyBudget {
    pub fn new(bytes: usize, wait: std::time::Duration, read: std::time::Duration) -> Self {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX >> 3);
        BodyBudget {
            room: std::sync::Arc::new(tokio::sync::Semaphore::new(kib as usize)),
            wait,
            read,
        }
    }

    /// `kib` of room: at once when there is some, else waiting up to `self.wait`.
    async fn room(&self, kib: u32) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = self.room.clone().try_acquire_many_owned(kib) {
            return Some(permit);
        }
        match tokio::time::timeout(self.wait, self.room.clone().acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Some(permit),
            _ => None,
        }
    }

    /// Reads a body as [`read_body`] does, holding room for it: the room comes back when the
    /// returned permit is dropped (keep it while the body is used). 503 with Retry-After when
    /// there is no room for `serving.offload_wait_ms`; 408 when the body takes longer than
    /// its read limit to arrive.
    pub async fn read(
        &self,
        payload: &mut Payload,
        req: &HttpRequest,
        limit: usize,
    ) -> Result<(web::BytesMut, tokio::sync::OwnedSemaphorePermit), AppError> {
        let declared = declared_length(req);
        if declared.is_some_and(|n| n > limit) {
            return Err(AppError::PayloadTooLarge { limit });
        }
        let full = || AppError::Overloaded {
            message: "too many request bodies are being received at once; try again shortly".into(),
            retry_after_secs: 1,
        };
        let kib = |bytes: usize| u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        // Room for what the client declares (all of it, at once), else as the chunks arrive;
        // without a wait (and its timer) when there is room.
        let mut held = self
            .room(kib(declared.unwrap_or(0)))
            .await
            .ok_or_else(full)?;
        let read = async {
            let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(64 * 1024));
            while let Some(chunk) = payload.next().await {
                let chunk =
                    chunk.map_err(|e| AppError::BadRequest(format!("reading the body: {e}")))?;
                if body.len() + chunk.len() > limit {
                    return Err(AppError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
                let needed = kib(body.len()).saturating_sub(held.num_permits() as u32);
                if needed > 0 {
                    held.merge(self.room(needed).await.ok_or_else(full)?);
                }
            }
            Ok(body)
        };
        match tokio::time::timeout(self.read, read).await {
            Ok(body) => Ok((body?, held)),
            Err(_) => Err(AppError::Timeout(format!(
                "the body took longer than {} s to arrive",
                self.read.as_secs()
            ))),
        }
    }
}

/// The Content-Length a request declares, if it declares one that parses.
fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
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

/// serde's message for a body that did not parse, in words a client knows: "expected i32"
/// becomes "expected an integer".
pub fn json_error_text(e: &serde_json::Error) -> String {
    let mut text = e.to_string();
    for (rust, words) in [
        ("i32", "an integer"),
        ("i64", "an integer"),
        ("u32", "a whole number"),
        ("u64", "a whole number"),
        ("usize", "a whole number"),
        ("f64", "a number"),
        ("f32", "a number"),
    ] {
        text = text.replace(&format!("expected {rust}"), &format!("expected {words}"));
    }
    text
}

/// Parses a JSON object as `T`. Only an object: serde would also fill a struct from an array,
/// positionally, so `[null, true]` would set fields nobody named.
pub fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(AppError::BadRequest(
            "the body must be a JSON object with named fields".into(),
        ));
    }
    refuse_nul(bytes)?;
    serde_json::from_slice(bytes)
        .map_err(|e| AppError::BadRequest(format!("malformed JSON body: {}", json_error_text(&e))))
}

/// No text Steward keeps may hold a NUL (PostgreSQL refuses it; nobody means it): a JSON body
/// that spells one (`\u0000`) is a 400.
pub fn refuse_nul(bytes: &[u8]) -> Result<(), AppError> {
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        return Err(AppError::BadRequest(
            "the body holds a NUL character (\\u0000), which no field takes".into(),
        ));
    }
    Ok(())
}

/// The limit on a request body, from the configuration.
fn limit_of(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.body_limit_bytes)
        .unwrap_or(1 << 20)
}

/// A JSON object body, required: `application/json`, parsed strictly as `T` (whose
/// `deny_unknown_fields` refuses a misspelt key; a field given twice is refused too). Anything
/// else is a 400 or 415 naming the problem.
pub struct StrictJson<T>(pub T);

impl<T> StrictJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for StrictJson<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for StrictJson<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            if mime(&req) != "application/json" {
                return Err(AppError::UnsupportedMediaType(
                    "the body must be Content-Type: application/json".into(),
                ));
            }
            let bytes = read_body(&mut payload, &req, limit_of(&req)).await?;
            parse_object(&bytes).map(StrictJson)
        })
    }
}

/// A JSON body that may be left out. An empty body is `T::default()`; anything else must be
/// an `application/json` object and parse strictly as `T` (whose `deny_unknown_fields` refuses
/// a misspelt key): malformed JSON, an array or an unknown field is a 400 naming it, never the
/// defaults.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalJson<T> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let bytes = read_body(&mut payload, &req, limit_of(&req)).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            if mime(&req) != "application/json" {
                return Err(AppError::UnsupportedMediaType(
                    "a body must be Content-Type: application/json (or left empty)".into(),
                ));
            }
            parse_object(&bytes).map(OptionalJson)
        })
    }
}
