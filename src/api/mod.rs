//! The JSON API under `/api/v1`, the prediction endpoints and the open probes (`/health`,
//! `/ready`, `/metrics`). The route table is [`ROUTES`]: each line names its method, path,
//! handler and who may call it; one module per resource, handlers named `verb_noun`. It calls
//! the domain modules and `crate::http`, never the dashboard.

mod agent;
mod audit;
mod datasets;
mod drift;
pub mod mlflow;
mod models;
mod notify;
pub mod openapi;
mod overview;
pub mod probes;
pub mod serving;
mod tokens;
mod users;

use actix_web::web;

use crate::auth::Role;
use crate::http::Access::{Alerts, Feedback, Open, Read, Role as Needs, Sensitive, Serving};
use crate::http::headers::api_not_found;

crate::route_table! { ROUTES, handlers;
    get "/health" => probes::get_health, Open, "Liveness: the process answers";
    get "/ready" => probes::get_ready, Open, "Readiness: store, migrations and a served model";
    get "/metrics" => probes::get_metrics, Open, "Prometheus metrics";
    get "/ping" => probes::get_ping, Open, "MLflow's scoring-server probe: 200 (empty) while a model is served";
    get "/version" => probes::get_version, Open, "Steward's version, as MLflow's scoring server answers /version";
    post "/predict" => serving::predict, Serving, "Score one patient or a batch";
    post "/invocations" => serving::invocations, Serving, "MLflow's scoring protocol";
    get "/model/info" => serving::model_info, Serving, "The model being served";
    post "/feedback" => serving::post_feedback, Feedback, "Record the true label of a logged prediction";
    get "/openapi.json" => serving::openapi_json, Open, "This OpenAPI description";
    get "/api/v1/overview" => overview::get_overview, Read, "What the store holds";
    get "/api/v1/scheduler" => overview::get_scheduler, Read, "This replica's role, and the store's job leases: which replica runs what";
    get "/api/v1/settings" => overview::get_settings, Needs(Role::Admin), "The effective configuration, secrets masked";
    get "/api/v1/me" => users::get_me, Needs(Role::Viewer), "The caller";
    get "/api/v1/users" => users::list_users, Needs(Role::Admin), "List users";
    post "/api/v1/users" => users::create_user, Needs(Role::Admin), "Create a user";
    post "/api/v1/users/{username}/disable" => users::disable_user, Needs(Role::Admin), "Disable a user and end their sessions";
    get "/api/v1/tokens" => tokens::list_tokens, Needs(Role::Viewer), "List API tokens (yours; everyone's for an admin)";
    post "/api/v1/tokens" => tokens::create_token, Needs(Role::Viewer), "Create an API token, shown once";
    delete "/api/v1/tokens/{id}" => tokens::revoke_token, Needs(Role::Viewer), "Revoke an API token";
    get "/api/v1/audit" => audit::list_audit, Read, "The audit log, newest first";
    get "/api/v1/audit/verify" => audit::verify_audit, Read, "Verify the audit chain";
    get "/api/v1/datasets" => datasets::list_datasets, Read, "List datasets";
    get "/api/v1/datasets/{name}/versions" => datasets::list_versions, Read, "List a dataset's versions";
    post "/api/v1/datasets/{name}/versions" => datasets::add_version, Needs(Role::Admin), "Add a file (the body) as a new version";
    get "/api/v1/datasets/{name}/versions/{version}" => datasets::get_version, Read, "A version with its profile and validations";
    get "/api/v1/datasets/{name}/versions/{version}/content" => datasets::get_version_content, Sensitive, "A version's file, byte for byte";
    get "/api/v1/datasets/{name}/diff" => datasets::diff_versions, Read, "Two versions' profiles side by side, with effect sizes";
    put "/api/v1/datasets/{name}/current" => datasets::set_current, Needs(Role::Admin), "Move a dataset's current version";
    get "/api/v1/validations" => datasets::list_validations, Read, "List validation runs";
    post "/api/v1/validations" => datasets::create_validation, Needs(Role::Approver), "Validate a stored version against a suite";
    get "/api/v1/validations/{id}" => datasets::get_validation, Sensitive, "A validation run's result, in GX's shape";
    get "/api/v1/expectations/{suite}/suggest" => datasets::suggest_suite, Read, "Draft an expectation suite from a version";
    get "/api/v1/predictions" => serving::list_predictions, Sensitive, "The prediction log, newest first";
    get "/api/v1/predictions/dead-letters" => serving::list_dead_letters, Sensitive, "Prediction-log rows the store refused";
    get "/api/v1/experiments" => models::list_experiments, Read, "List experiments";
    get "/api/v1/experiments/{name}/runs" => models::list_experiment_runs, Read, "An experiment's runs, best first by a metric";
    get "/api/v1/runs" => models::list_runs, Read, "List runs, best first by a metric";
    post "/api/v1/runs" => models::create_runs, Needs(Role::Admin), "Train now; answers when the runs have ended";
    get "/api/v1/runs/compare" => models::compare_runs, Read, "Two runs side by side";
    get "/api/v1/runs/{id}" => models::get_run, Read, "A run: params, metrics with steps, tags, artifacts";
    get "/api/v1/runs/{id}/artifacts/{name:.*}" => models::get_run_artifact, Read, "An artifact's bytes, verified by hash";
    get "/api/v1/models" => models::list_models, Read, "List registered models";
    get "/api/v1/models/{name}" => models::get_model, Read, "A model's versions, stages and history";
    get "/api/v1/models/{name}/versions/{version}" => models::get_model_version, Read, "One model version";
    post "/api/v1/models/{name}/versions/{version}/stage" => models::set_stage, Needs(Role::Approver), "Move a version to a stage";
    post "/api/v1/models/{name}/rollback" => models::rollback_model, Needs(Role::Approver), "Roll Production back";
    post "/api/v1/drift/run" => drift::run_check, Needs(Role::Approver), "Run a monitoring check of the Production version now";
    get "/api/v1/drift/checks" => drift::list_checks, Read, "Stored monitoring checks, newest first";
    get "/api/v1/drift/checks/{id}" => drift::get_check, Sensitive, "One monitoring check: drift, data quality with example values, performance, alerts";
    get "/api/v1/drift/alerts" => drift::list_alerts, Read, "Open monitoring alerts (those of the newest check)";
    post "/agent/alerts" => agent::post_alerts, Alerts, "Alertmanager's webhook (version 4): alerts become incidents";
    get "/api/v1/incidents" => agent::list_incidents, Read, "The agent's incidents, newest first";
    get "/api/v1/incidents/{id}" => agent::get_incident, Read, "An incident with its timeline: decisions, approvals, actions";
    get "/api/v1/decisions" => agent::list_decisions, Read, "The agent's decisions, with the rule that matched and why";
    get "/api/v1/approvals" => agent::list_approvals, Read, "Approval requests, newest first";
    post "/api/v1/approvals/{id}/approve" => agent::approve, Needs(Role::Approver), "Approve a request; its action runs once";
    post "/api/v1/approvals/{id}/reject" => agent::reject, Needs(Role::Approver), "Reject a request; nothing runs";
    get "/api/v1/agent/status" => agent::get_status, Read, "The agent's switches and counts";
    post "/api/v1/agent/pause" => agent::pause, Needs(Role::Approver), "Kill switch on: no new decisions or actions";
    post "/api/v1/agent/resume" => agent::resume, Needs(Role::Admin), "Kill switch off";
    get "/api/v1/agent/policy" => agent::get_policy, Read, "The policy's rules, explained";
    get "/api/v1/agent/actions" => agent::list_actions, Read, "The agent's actions and their outcomes";
    get "/api/v1/agent/notifications" => agent::list_notifications, Read, "Notifications (the outbox's events), newest first";
    get "/api/v1/notifications" => notify::list_outbox, Read, "The notification outbox: events with their deliveries per channel";
    get "/api/v1/notifications/channels" => notify::list_channels, Read, "The notification channels and routes (no secrets)";
    post "/api/v1/notifications/test" => notify::test_channel, Needs(Role::Admin), "Send a test message to one channel now";
    post "/api/v1/notifications/deliveries/{id}/retry" => notify::retry_delivery, Needs(Role::Admin), "Send a failed delivery again";
    get "/api/v1/reports/model-card/{version}" => notify::model_card, Read, "A model version's card, as HTML or PDF";
    get "/api/v1/reports/drift/{id}" => notify::drift_report, Sensitive, "A monitoring check's drift report, as HTML or PDF";
    get "/api/v1/reports/weekly" => notify::weekly_report, Read, "The weekly summary, as HTML or PDF";
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    crate::http::routes::register(cfg, ROUTES, handlers());
    mlflow::routes(cfg);
    cfg.route(
        "/docs",
        web::get().to(|| async {
            actix_web::HttpResponse::PermanentRedirect()
                .insert_header(("Location", "/docs/"))
                .finish()
        }),
    )
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi::document()),
    )
    .route("/api/{tail:.*}", web::to(api_not_found));
}
