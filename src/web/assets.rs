//! Static files (htmx, css), embedded in the binary. Debug builds read them from disk, so edits
//! show without a rebuild.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

pub async fn get_asset(path: web::Path<String>) -> HttpResponse {
    match Assets::get(&path) {
        Some(file) => HttpResponse::Ok()
            .content_type(file.metadata.mimetype())
            // File names carry versions (htmx-2.0.11.min.js), so they can be cached long.
            .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
            .body(file.data.into_owned()),
        None => HttpResponse::NotFound().body("no such file"),
    }
}

/// Browsers ask for `/favicon.ico` whatever the page says: send them to the SVG.
pub async fn get_favicon() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/static/favicon.svg"))
        .finish()
}
