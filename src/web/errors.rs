//! Presents dashboard errors: the login page for anonymous visitors, a toast for htmx requests,
//! and an error page otherwise. JSON API errors are left to `AppError`'s own body.

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::middleware::Next;
use askama::Template;

#[derive(Template)]
#[template(path = "toast.html")]
struct Toast<'a> {
    message: &'a str,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: &'a str,
}

pub async fn present(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let htmx = req.headers().contains_key("HX-Request");
    let wanted = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    let response = next.call(req).await?;
    let status = response.status();
    let Some(message) = response.response().error().map(ToString::to_string) else {
        return Ok(response.map_into_boxed_body());
    };
    let (request, original) = response.into_parts();

    let replacement = if status == StatusCode::UNAUTHORIZED {
        let login = format!("/login?next={}", url_encode(&wanted));
        if htmx {
            HttpResponse::Ok()
                .insert_header(("HX-Redirect", login))
                .finish()
        } else {
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, login))
                .finish()
        }
    } else if htmx {
        let body = Toast { message: &message }
            .render()
            .unwrap_or(message.clone());
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .insert_header(("HX-Retarget", "#toasts"))
            .insert_header(("HX-Reswap", "beforeend"))
            .body(body)
    } else {
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(page.render().unwrap_or(message.clone()))
    };
    let mut replacement = replacement;
    // Keep what the error said beyond its body, such as Retry-After.
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement
                .headers_mut()
                .insert(name.clone(), value.clone());
        }
    }
    Ok(ServiceResponse::new(request, replacement))
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
