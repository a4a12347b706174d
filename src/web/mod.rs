//! The HTMX dashboard: askama pages, their partials, login, and the embedded static files.
//!
//! Each view is a partial plus a page that wraps it in the layout; an htmx request (`HX-Request`)
//! gets just the partial. Errors are presented by [`errors::present`]: a toast for htmx, the
//! login page for an anonymous visitor, an error page otherwise.

mod access;
mod activity;
mod assets;
mod datasets;
mod errors;
mod login;
mod models;
mod overview;
mod planned;
mod predictions;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Identity;
use crate::auth::users::User;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{file:.*}", web::get().to(assets::get_asset))
        .service(
            web::scope("")
                .wrap(from_fn(errors::present))
                .route("/", web::get().to(overview::get_overview))
                .route("/login", web::get().to(login::get_login))
                .route("/login", web::post().to(login::post_login))
                .route("/logout", web::post().to(login::post_logout))
                .route("/activity", web::get().to(activity::get_activity))
                .route("/datasets", web::get().to(datasets::get_datasets))
                .route(
                    "/datasets/{name}/versions/{version}",
                    web::get().to(datasets::get_version),
                )
                .route("/datasets/{name}/diff", web::get().to(datasets::get_diff))
                .route(
                    "/datasets/{name}/current",
                    web::post().to(datasets::post_current),
                )
                .route("/validations/{id}", web::get().to(datasets::get_validation))
                .route("/access", web::get().to(access::get_access))
                .route("/access/users", web::post().to(access::create_user))
                .route(
                    "/access/users/{username}/disable",
                    web::post().to(access::disable_user),
                )
                .route("/access/tokens", web::post().to(access::create_token))
                .route(
                    "/access/tokens/{id}/revoke",
                    web::post().to(access::revoke_token),
                )
                .route("/experiments", web::get().to(models::get_experiments))
                .route("/experiments/train", web::post().to(models::post_train))
                .route("/experiments/compare", web::get().to(models::get_compare))
                .route("/runs/{id}", web::get().to(models::get_run))
                .route("/runs/{id}/register", web::post().to(models::post_register))
                .route("/models", web::get().to(models::get_models))
                .route(
                    "/models/versions/{version}/stage",
                    web::post().to(models::post_stage),
                )
                .route("/models/rollback", web::post().to(models::post_rollback))
                .route("/performance", web::get().to(models::get_performance))
                .route("/predictions", web::get().to(predictions::get_predictions))
                .route("/{page}", web::get().to(planned::get_planned_page)),
        );
}

/// One entry of the navigation bar.
pub struct NavItem {
    pub path: &'static str,
    pub title: &'static str,
}

/// Every page of the dashboard, in menu order (DESIGN.md's list, plus Access).
pub const NAV: &[NavItem] = &[
    NavItem {
        path: "/",
        title: "Overview",
    },
    NavItem {
        path: "/performance",
        title: "Model performance",
    },
    NavItem {
        path: "/predictions",
        title: "Predictions",
    },
    NavItem {
        path: "/drift",
        title: "Drift analysis",
    },
    NavItem {
        path: "/approvals",
        title: "Approvals",
    },
    NavItem {
        path: "/trends",
        title: "Historical trends",
    },
    NavItem {
        path: "/activity",
        title: "Agent activity",
    },
    NavItem {
        path: "/experiments",
        title: "Experiments",
    },
    NavItem {
        path: "/models",
        title: "Models",
    },
    NavItem {
        path: "/datasets",
        title: "Datasets",
    },
    NavItem {
        path: "/access",
        title: "Access",
    },
];

/// What the layout needs on every page: who is logged in, their CSRF token, the active page.
pub struct Chrome {
    pub user: Option<User>,
    pub csrf_token: String,
    pub active: &'static str,
    pub nav: &'static [NavItem],
    pub version: &'static str,
}

impl Chrome {
    pub fn new(identity: &Identity, active: &'static str) -> Self {
        Chrome {
            user: identity.user().cloned(),
            csrf_token: identity.csrf_token().unwrap_or_default().to_owned(),
            active,
            nav: NAV,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

pub fn is_htmx(req: &HttpRequest) -> bool {
    req.headers().contains_key("HX-Request")
}

pub fn html(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// Formats a stored UTC timestamp for people.
pub fn when(at: &chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
