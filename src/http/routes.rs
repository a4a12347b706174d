//! Route tables: each face declares its routes once, as data ([`RouteSpec`]: method, path
//! pattern, and who may call it), with [`route_table!`]. The same declaration registers the
//! handlers and wraps each resource in a guard that enforces the declared [`Access`] before any
//! extractor reads the body, so an anonymous caller gets 401 and a viewer 403 whatever they
//! sent. Handlers still check their role themselves; the guard leaves the caller's identity in
//! the request, so that costs no second lookup. The tables are public so that a test walks
//! every route of them: a new route cannot be left out of the role checks.

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, web};

use super::identity;
use crate::auth::{Identity, Role};
use crate::config::Settings;
use crate::error::AppError;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: probes, the login form (it has its own CSRF check), static files.
    Open,
    /// The prediction endpoints: open, or any role with `serving.require_token` (checked by
    /// the handler, so that the hot path carries no guard).
    Serving,
    /// `POST /feedback`: at least `serving.feedback_role` (approver by default: labels drive
    /// live performance and decay alerts), anyone when `serving.feedback_requires_token` is off.
    Feedback,
    /// Reads: a viewer, or anyone with `auth.public_read`.
    Read,
    /// Reads of patient data or files (the prediction log, dataset contents, validation
    /// details): a viewer even with `auth.public_read`.
    Sensitive,
    /// At least this role.
    Role(Role),
    /// `POST /agent/alerts`: a token (or session) of at least `agent.alerts_role`, or an
    /// HMAC-SHA256 signature of the body with `agent.webhook_secret`; checked by the handler,
    /// which must read the body to check a signature.
    Alerts,
}

impl Access {
    /// Checks `identity` against this access under `settings`.
    pub fn check(self, identity: &Identity, settings: &Settings) -> Result<(), AppError> {
        match self {
            Access::Open => Ok(()),
            Access::Serving if !settings.serving.require_token => Ok(()),
            Access::Feedback if !settings.serving.feedback_requires_token => Ok(()),
            Access::Feedback => {
                let role = settings
                    .serving
                    .feedback_role
                    .parse::<Role>()
                    .unwrap_or(Role::Admin);
                identity.require(role).map(|_| ())
            }
            Access::Serving | Access::Sensitive => identity.require(Role::Viewer).map(|_| ()),
            Access::Read => identity.require_read(&settings.auth),
            Access::Role(role) => identity.require(role).map(|_| ()),
            Access::Alerts => identity.require(settings.agent.alerts_role()).map(|_| ()),
        }
    }

    /// Whether the guard resolves the caller (Open and Serving routes carry no guard).
    pub fn guarded(self) -> bool {
        !matches!(self, Access::Open | Access::Serving | Access::Alerts)
    }

    /// The least role that passes under the default configuration; `None` when anyone does.
    pub fn least_role(self) -> Option<Role> {
        match self {
            Access::Open | Access::Serving => None,
            Access::Feedback | Access::Alerts => Some(Role::Approver),
            Access::Read | Access::Sensitive => Some(Role::Viewer),
            Access::Role(role) => Some(role),
        }
    }
}

/// One route: its method (`get`, `post`, `put`, `delete`), its path pattern, its access and
/// what it does (the OpenAPI summary).
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
}

impl RouteSpec {
    /// Whether the route changes something (needs CSRF through a session).
    pub fn mutating(&self) -> bool {
        !matches!(self.method, "get" | "head")
    }
}

/// Declares a route table: `pub const NAME: &[RouteSpec]` and `fn handlers() -> Vec<Route>`
/// from one list of `method "path" => handler, access, "summary";` lines, in matching order.
#[macro_export]
macro_rules! route_table {
    ($table:ident, $handlers:ident; $( $method:ident $path:literal => $handler:expr, $access:expr, $summary:literal; )*) => {
        /// Every route of this face: method, path pattern, who may call it, what it does.
        pub const $table: &[$crate::http::RouteSpec] = &[
            $( $crate::http::RouteSpec { method: stringify!($method), path: $path, access: $access, summary: $summary }, )*
        ];
        fn $handlers() -> Vec<actix_web::Route> {
            vec![ $( actix_web::web::$method().to($handler), )* ]
        }
    };
}

/// Registers a table's handlers, one resource per path (in the table's order, which is the
/// matching order), each wrapped in the guard when any of its routes needs one.
pub fn register(
    cfg: &mut web::ServiceConfig,
    table: &'static [RouteSpec],
    handlers: Vec<actix_web::Route>,
) {
    let mut groups: Vec<(&'static str, Vec<actix_web::Route>)> = Vec::new();
    for (spec, route) in table.iter().zip(handlers) {
        match groups.iter_mut().find(|(path, _)| *path == spec.path) {
            Some((_, routes)) => routes.push(route),
            None => groups.push((spec.path, vec![route])),
        }
    }
    for (path, routes) in groups {
        let resource = routes
            .into_iter()
            .fold(web::resource(path), |resource, route| resource.route(route));
        let guarded = table
            .iter()
            .any(|spec| spec.path == path && spec.access.guarded());
        if guarded {
            cfg.service(
                resource.wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                    guard(table, path, req, next)
                })),
            );
        } else {
            cfg.service(resource);
        }
    }
}

/// Enforces the access the table declares for this path and method. A refusal is returned as
/// a response carrying the error, so the face's own error presenter (JSON, toast, login page)
/// still gets to show it.
async fn guard(
    table: &'static [RouteSpec],
    path: &'static str,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let access = table
        .iter()
        .find(|spec| spec.path == path && req.method().as_str().eq_ignore_ascii_case(spec.method))
        .map(|spec| spec.access)
        .filter(|access| access.guarded());
    if let Some(access) = access {
        let checked = match req.app_data::<web::Data<AppState>>().cloned() {
            None => Err(AppError::Internal(anyhow::anyhow!(
                "AppState is not registered"
            ))),
            Some(state) => match identity::resolve(req.request()).await {
                Ok(identity) => access.check(&identity, &state.settings).map(|()| identity),
                Err(e) => Err(e),
            },
        };
        match checked {
            Ok(identity) => {
                req.extensions_mut().insert(identity);
            }
            // MLflow's clients read MLflow's error shape (`error_code`, `message`).
            Err(e) if identity::accepts_basic(req.path()) => {
                let code = crate::error::mlflow_code(&e, false);
                let status = crate::error::mlflow_status(code, &e);
                return Ok(req.into_response(crate::error::mlflow_response(&e, code, status)));
            }
            Err(e) => return Ok(req.error_response(e)),
        }
    }
    next.call(req).await
}
