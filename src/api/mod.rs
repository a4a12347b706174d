//! The JSON API under `/api/v1`, the prediction endpoints and the open probes (`/health`,
//! `/ready`, `/metrics`). The route table is [`ROUTES`]: each line names its method, path,
//! handler and who may call it; one module per resource, handlers named `verb_noun`. It calls
//! the domain modules and `crate::http`, never the dashboard.

mod audit;
mod datasets;
mod models;
mod overview;
pub mod probes;
pub mod serving;
mod tokens;
mod users;

use actix_web::web;

use crate::auth::Role;
use crate::http::Access::{Feedback, Open, Read, Role as Needs, Sensitive, Serving};
use crate::http::headers::api_not_found;

crate::route_table! { ROUTES, handlers;
    get "/health" => probes::get_health, Open;
    get "/ready" => probes::get_ready, Open;
    get "/metrics" => probes::get_metrics, Open;
    post "/predict" => serving::predict, Serving;
    post "/invocations" => serving::invocations, Serving;
    get "/model/info" => serving::model_info, Serving;
    post "/feedback" => serving::post_feedback, Feedback;
    get "/openapi.json" => serving::openapi_json, Open;
    get "/api/v1/overview" => overview::get_overview, Read;
    get "/api/v1/settings" => overview::get_settings, Needs(Role::Admin);
    get "/api/v1/me" => users::get_me, Needs(Role::Viewer);
    get "/api/v1/users" => users::list_users, Needs(Role::Admin);
    post "/api/v1/users" => users::create_user, Needs(Role::Admin);
    post "/api/v1/users/{username}/disable" => users::disable_user, Needs(Role::Admin);
    get "/api/v1/tokens" => tokens::list_tokens, Needs(Role::Viewer);
    post "/api/v1/tokens" => tokens::create_token, Needs(Role::Viewer);
    delete "/api/v1/tokens/{id}" => tokens::revoke_token, Needs(Role::Viewer);
    get "/api/v1/audit" => audit::list_audit, Read;
    get "/api/v1/audit/verify" => audit::verify_audit, Read;
    get "/api/v1/datasets" => datasets::list_datasets, Read;
    get "/api/v1/datasets/{name}/versions" => datasets::list_versions, Read;
    post "/api/v1/datasets/{name}/versions" => datasets::add_version, Needs(Role::Admin);
    get "/api/v1/datasets/{name}/versions/{version}" => datasets::get_version, Read;
    get "/api/v1/datasets/{name}/versions/{version}/content" => datasets::get_version_content, Sensitive;
    get "/api/v1/datasets/{name}/diff" => datasets::diff_versions, Read;
    put "/api/v1/datasets/{name}/current" => datasets::set_current, Needs(Role::Admin);
    get "/api/v1/validations" => datasets::list_validations, Read;
    post "/api/v1/validations" => datasets::create_validation, Needs(Role::Approver);
    get "/api/v1/validations/{id}" => datasets::get_validation, Sensitive;
    get "/api/v1/expectations/{suite}/suggest" => datasets::suggest_suite, Read;
    get "/api/v1/predictions" => serving::list_predictions, Sensitive;
    get "/api/v1/predictions/dead-letters" => serving::list_dead_letters, Sensitive;
    get "/api/v1/experiments" => models::list_experiments, Read;
    get "/api/v1/experiments/{name}/runs" => models::list_experiment_runs, Read;
    get "/api/v1/runs" => models::list_runs, Read;
    post "/api/v1/runs" => models::create_runs, Needs(Role::Admin);
    get "/api/v1/runs/compare" => models::compare_runs, Read;
    get "/api/v1/runs/{id}" => models::get_run, Read;
    get "/api/v1/runs/{id}/artifacts/{name}" => models::get_run_artifact, Read;
    get "/api/v1/models" => models::list_models, Read;
    get "/api/v1/models/{name}" => models::get_model, Read;
    get "/api/v1/models/{name}/versions/{version}" => models::get_model_version, Read;
    post "/api/v1/models/{name}/versions/{version}/stage" => models::set_stage, Needs(Role::Approver);
    post "/api/v1/models/{name}/rollback" => models::rollback_model, Needs(Role::Approver);
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::http::routes::register(cfg, ROUTES, handlers());
    cfg.service(
        utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", {
            use utoipa::OpenApi;
            serving::ApiDoc::openapi()
        }),
    )
    .route("/api/{tail:.*}", web::to(api_not_found));
}
