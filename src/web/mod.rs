//! The HTMX dashboard: askama pages, their partials, login, and the embedded static files.
//!
//! Each view is a partial plus a page that wraps it in the layout; an htmx request (`HX-Request`)
//! gets just the partial ([`crate::http::page_or_partial`]). The route table is [`ROUTES`]. It
//! calls the domain modules and `crate::http`, never the JSON API. Errors are presented by [`errors::present`]: a toast for htmx, the
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
use actix_web::web;

use crate::auth::users::User;
use crate::auth::{Identity, Role};
use crate::http::Access::{Open, Read, Role as Needs, Sensitive};

pub use crate::http::hx::html;

crate::route_table! { ROUTES, handlers;
    get "/" => overview::get_overview, Read;
    get "/login" => login::get_login, Open;
    post "/login" => login::post_login, Open;
    post "/logout" => login::post_logout, Open;
    get "/activity" => activity::get_activity, Read;
    get "/datasets" => datasets::get_datasets, Read;
    get "/datasets/{name}/versions/{version}" => datasets::get_version, Read;
    get "/datasets/{name}/diff" => datasets::get_diff, Read;
    post "/datasets/{name}/current" => datasets::post_current, Needs(Role::Admin);
    get "/validations/{id}" => datasets::get_validation, Sensitive;
    get "/access" => access::get_access, Needs(Role::Viewer);
    post "/access/users" => access::create_user, Needs(Role::Admin);
    post "/access/users/{username}/disable" => access::disable_user, Needs(Role::Admin);
    post "/access/tokens" => access::create_token, Needs(Role::Viewer);
    post "/access/tokens/{id}/revoke" => access::revoke_token, Needs(Role::Viewer);
    get "/experiments" => models::get_experiments, Read;
    post "/experiments/train" => models::post_train, Needs(Role::Admin);
    get "/experiments/compare" => models::get_compare, Read;
    get "/runs/{id}" => models::get_run, Read;
    post "/runs/{id}/register" => models::post_register, Needs(Role::Admin);
    get "/models" => models::get_models, Read;
    post "/models/versions/{version}/stage" => models::post_stage, Needs(Role::Approver);
    post "/models/rollback" => models::post_rollback, Needs(Role::Approver);
    get "/performance" => models::get_performance, Read;
    get "/predictions" => predictions::get_predictions, Sensitive;
    get "/{page}" => planned::get_planned_page, Read;
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/static/{file:.*}", web::get().to(assets::get_asset))
        .service(
            web::scope("")
                .wrap(from_fn(errors::present))
                .wrap(from_fn(crate::http::headers::dashboard))
                .configure(|cfg| crate::http::routes::register(cfg, ROUTES, handlers())),
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

/// Formats a stored UTC timestamp for people.
pub fn when(at: &chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}
