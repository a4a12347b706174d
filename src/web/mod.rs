//! The HTMX dashboard: askama pages, their partials, login, and the embedded static files.
//!
//! Each view is a partial plus a page that wraps it in the layout; an htmx request (`HX-Request`)
//! gets just the partial ([`crate::http::page_or_partial`]). The route table is [`ROUTES`]. It
//! calls the domain modules and `crate::http`, never the JSON API. Errors are presented by [`errors::present`]: a toast for htmx, the
//! login page for an anonymous visitor, an error page otherwise.

mod access;
mod activity;
mod agent;
mod assets;
mod datasets;
mod drift;
mod errors;
mod login;
mod models;
mod notify;
mod overview;
mod predictions;

use actix_web::middleware::from_fn;
use actix_web::web;

use crate::auth::users::User;
use crate::auth::{Identity, Role};
use crate::http::Access::{Open, Read, Role as Needs, Sensitive};

pub use crate::http::hx::html;

crate::route_table! { ROUTES, handlers;
    get "/" => overview::get_overview, Read, "Overview";
    get "/login" => login::get_login, Open, "The login page";
    post "/login" => login::post_login, Open, "Log in";
    post "/logout" => login::post_logout, Open, "Log out";
    get "/activity" => activity::get_activity, Read, "Activity: the audit feed";
    get "/datasets" => datasets::get_datasets, Read, "Datasets and their versions";
    get "/datasets/{name}/versions/{version}" => datasets::get_version, Read, "A dataset version's profile";
    get "/datasets/{name}/diff" => datasets::get_diff, Read, "Two versions side by side";
    post "/datasets/{name}/current" => datasets::post_current, Needs(Role::Admin), "Make a version current";
    get "/validations/{id}" => datasets::get_validation, Sensitive, "A validation run's data docs";
    get "/access" => access::get_access, Needs(Role::Viewer), "Users and API tokens";
    post "/access/users" => access::create_user, Needs(Role::Admin), "Add a user";
    post "/access/users/{username}/disable" => access::disable_user, Needs(Role::Admin), "Disable a user";
    post "/access/tokens" => access::create_token, Needs(Role::Viewer), "Create a token";
    post "/access/tokens/{id}/revoke" => access::revoke_token, Needs(Role::Viewer), "Revoke a token";
    get "/experiments" => models::get_experiments, Read, "Experiments and runs";
    post "/experiments/train" => models::post_train, Needs(Role::Admin), "Train now";
    get "/experiments/compare" => models::get_compare, Read, "Compare two runs";
    get "/runs/{id}" => models::get_run, Read, "A run";
    post "/runs/{id}/register" => models::post_register, Needs(Role::Admin), "Register a run's model";
    get "/models" => models::get_models, Read, "The model registry";
    post "/models/versions/{version}/stage" => models::post_stage, Needs(Role::Approver), "Move a version to a stage";
    post "/models/rollback" => models::post_rollback, Needs(Role::Approver), "Roll Production back";
    get "/performance" => models::get_performance, Read, "Model performance";
    get "/predictions" => predictions::get_predictions, Sensitive, "The prediction log";
    get "/drift" => drift::get_drift, Sensitive, "Drift analysis: the newest monitoring check";
    post "/drift/run" => drift::post_run, Needs(Role::Approver), "Run a monitoring check now";
    get "/drift/checks/{id}/report" => drift::get_report, Sensitive, "A check's HTML report";
    get "/trends" => drift::get_trends, Read, "Historical trends of the checks";
    get "/approvals" => agent::get_approvals, Read, "Approvals: the agent's requests with their evidence";
    post "/approvals/{id}/approve" => agent::post_approve, Needs(Role::Approver), "Approve a request";
    post "/approvals/{id}/reject" => agent::post_reject, Needs(Role::Approver), "Reject a request";
    get "/agent" => agent::get_agent, Read, "Agent activity: the switch, the feed, notifications, the policy";
    get "/agent/incidents/{id}" => agent::get_incident, Read, "An incident's timeline";
    post "/agent/pause" => agent::post_pause, Needs(Role::Approver), "Pause the agent (kill switch)";
    post "/agent/resume" => agent::post_resume, Needs(Role::Admin), "Resume the agent";
    get "/notifications" => notify::get_notifications, Read, "Notifications: the outbox, channels, reports";
    post "/notifications/channels/{name}/test" => notify::post_test, Needs(Role::Admin), "Send a test message to a channel";
    post "/notifications/deliveries/{id}/retry" => notify::post_retry, Needs(Role::Admin), "Send a failed delivery again";
    get "/approvals/open/{id}" => notify::get_approval_link, Open, "A signed approval link from a message";
    get "/favicon.ico" => assets::get_favicon, Open, "The icon";
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
        title: "Performance",
    },
    NavItem {
        path: "/predictions",
        title: "Predictions",
    },
    NavItem {
        path: "/drift",
        title: "Drift",
    },
    NavItem {
        path: "/approvals",
        title: "Approvals",
    },
    NavItem {
        path: "/trends",
        title: "Trends",
    },
    NavItem {
        path: "/agent",
        title: "Agent",
    },
    NavItem {
        path: "/notifications",
        title: "Notifications",
    },
    NavItem {
        path: "/activity",
        title: "Activity",
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

/// Formats a stored UTC timestamp for people (always saying UTC).
pub fn when(at: &chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// Compact JSON with a space after each comma and colon outside strings, so a page can wrap it
/// between values, never inside a number (`10000000` must not read as `1000000` / `0`).
pub fn spaced_json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        out.push(c);
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else if c == ',' || c == ':' {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_is_spaced_between_values_only() {
        let v = serde_json::json!({"max_value": 10000000, "set": [1, 2], "s": "a,b:\\\"c"});
        assert_eq!(
            super::spaced_json(&v),
            r#"{"max_value": 10000000, "s": "a,b:\\\"c", "set": [1, 2]}"#
        );
    }
}
