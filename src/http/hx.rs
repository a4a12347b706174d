//! htmx requests: the `HxRequest` extractor and the one page-or-partial answer.

use std::convert::Infallible;
use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use askama::Template;

use crate::error::AppError;

/// Whether the request came from htmx (`HX-Request`), which wants a partial, not a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HxRequest(pub bool);

impl FromRequest for HxRequest {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(HxRequest(req.headers().contains_key("HX-Request"))))
    }
}

/// An HTML answer; `Vary: HX-Request`, since the same URL answers a partial or a page.
pub fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Vary", "HX-Request"))
        .body(body)
}

/// The partial alone for htmx, else the whole page built around it by `page`.
pub fn page_or_partial<P: Template>(
    hx: HxRequest,
    partial: P,
    page: impl FnOnce(P) -> Result<String, askama::Error>,
) -> Result<HttpResponse, AppError> {
    let body = if hx.0 {
        partial.render()?
    } else {
        page(partial)?
    };
    Ok(html(body))
}
