//! The JSON API under `/api/v1`, and the open probes (`/health`, `/ready`, `/metrics`).
//! The route table is this one function; one module per resource, handlers named `verb_noun`.

mod audit;
mod datasets;
pub mod models;
mod overview;
pub mod probes;
pub mod serving;
mod tokens;
mod users;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(probes::get_health))
        .route("/ready", web::get().to(probes::get_ready))
        .route("/metrics", web::get().to(probes::get_metrics))
        .route("/predict", web::post().to(serving::predict))
        .route("/invocations", web::post().to(serving::invocations))
        .route("/model/info", web::get().to(serving::model_info))
        .route("/feedback", web::post().to(serving::post_feedback))
        .route("/openapi.json", web::get().to(serving::openapi_json))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", {
                use utoipa::OpenApi;
                serving::ApiDoc::openapi()
            }),
        )
        .service(
            web::scope("/api/v1")
                .route("/overview", web::get().to(overview::get_overview))
                .route("/settings", web::get().to(overview::get_settings))
                .route("/me", web::get().to(users::get_me))
                .route("/users", web::get().to(users::list_users))
                .route("/users", web::post().to(users::create_user))
                .route(
                    "/users/{username}/disable",
                    web::post().to(users::disable_user),
                )
                .route("/tokens", web::get().to(tokens::list_tokens))
                .route("/tokens", web::post().to(tokens::create_token))
                .route("/tokens/{id}", web::delete().to(tokens::revoke_token))
                .route("/audit", web::get().to(audit::list_audit))
                .route("/audit/verify", web::get().to(audit::verify_audit))
                .route("/datasets", web::get().to(datasets::list_datasets))
                .route(
                    "/datasets/{name}/versions",
                    web::get().to(datasets::list_versions),
                )
                .route(
                    "/datasets/{name}/versions",
                    web::post().to(datasets::add_version),
                )
                .route(
                    "/datasets/{name}/versions/{version}",
                    web::get().to(datasets::get_version),
                )
                .route(
                    "/datasets/{name}/versions/{version}/content",
                    web::get().to(datasets::get_version_content),
                )
                .route(
                    "/datasets/{name}/diff",
                    web::get().to(datasets::diff_versions),
                )
                .route(
                    "/datasets/{name}/current",
                    web::put().to(datasets::set_current),
                )
                .route("/validations", web::get().to(datasets::list_validations))
                .route("/validations", web::post().to(datasets::create_validation))
                .route("/validations/{id}", web::get().to(datasets::get_validation))
                .route(
                    "/expectations/{suite}/suggest",
                    web::get().to(datasets::suggest_suite),
                )
                .route("/predictions", web::get().to(serving::list_predictions))
                .route("/experiments", web::get().to(models::list_experiments))
                .route(
                    "/experiments/{name}/runs",
                    web::get().to(models::list_experiment_runs),
                )
                .route("/runs", web::get().to(models::list_runs))
                .route("/runs", web::post().to(models::create_runs))
                .route("/runs/compare", web::get().to(models::compare_runs))
                .route("/runs/{id}", web::get().to(models::get_run))
                .route(
                    "/runs/{id}/artifacts/{name}",
                    web::get().to(models::get_run_artifact),
                )
                .route("/models", web::get().to(models::list_models))
                .route("/models/{name}", web::get().to(models::get_model))
                .route(
                    "/models/{name}/versions/{version}",
                    web::get().to(models::get_model_version),
                )
                .route(
                    "/models/{name}/versions/{version}/stage",
                    web::post().to(models::set_stage),
                )
                .route(
                    "/models/{name}/rollback",
                    web::post().to(models::rollback_model),
                )
                .default_service(web::to(|| async {
                    Err::<actix_web::HttpResponse, _>(crate::error::AppError::NotFound(
                        "no such API route".into(),
                    ))
                })),
        );
}
