//! MLflow's model registry endpoints: registered models, versions, stages and aliases.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Answer, Body, MlflowError, Query, VersionField, invalid, max_results, millis, ok_empty,
    parse_page_token,
};
use crate::auth::Identity;
use crate::error::AppError;
use crate::registry::external::{self, CHAMPION, ModelRow};
use crate::registry::{self, ModelVersion, Stage};
use crate::state::AppState;
use crate::tracking::search;

const MAX_MODELS: usize = 1000;
const MAX_VERSIONS: usize = 10_000;

fn version_json(v: &ModelVersion, aliases: &[(String, i32)]) -> Value {
    json!({
        "name": v.model,
        "version": v.version.to_string(),
        "creation_timestamp": millis(v.created_at),
        "last_updated_timestamp": millis(v.created_at),
        "user_id": v.created_by,
        "current_stage": v.stage,
        "description": v.description.clone().unwrap_or_default(),
        "source": v.source.clone().unwrap_or_else(|| format!("runs:/{}/model", v.run_id)),
        "run_id": v.run_id,
        "run_link": "",
        "status": "READY",
        "tags": [],
        "aliases": aliases.iter().filter(|(_, n)| *n == v.version).map(|(a, _)| a.clone()).collect::<Vec<_>>(),
    })
}

fn model_json(m: &ModelRow, latest: &[ModelVersion], aliases: &[(String, i32)]) -> Value {
    let updated = latest
        .iter()
        .map(|v| v.created_at)
        .max()
        .unwrap_or(m.created_at)
        .max(m.created_at);
    json!({
        "name": m.name,
        "creation_timestamp": millis(m.created_at),
        "last_updated_timestamp": millis(updated),
        "description": m.description.clone().unwrap_or_default(),
        "latest_versions": latest.iter().map(|v| version_json(v, aliases)).collect::<Vec<_>>(),
        "aliases": aliases.iter().map(|(a, n)| json!({ "alias": a, "version": n.to_string() })).collect::<Vec<_>>(),
        "tags": [],
    })
}

/// A registered model as MLflow shows it.
fn model_view(conn: &mut crate::db::DbConnection, name: &str) -> Result<Value, AppError> {
    let m = external::find_model(conn, name)?;
    let latest = external::latest_versions(conn, name, &[])?;
    let aliases = external::aliases(conn, name)?;
    Ok(model_json(&m, &latest, &aliases))
}

fn version_view(
    conn: &mut crate::db::DbConnection,
    name: &str,
    version: i32,
) -> Result<Value, AppError> {
    let v = registry::find_version(conn, name, version)?;
    let aliases = external::aliases(conn, name)?;
    Ok(version_json(&v, &aliases))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyValue {
    key: String,
    #[allow(dead_code)]
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    name: String,
    #[serde(default)]
    tags: Vec<KeyValue>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    deployment_job_id: Option<String>,
}

fn no_tags(tags: &[KeyValue]) -> Result<(), MlflowError> {
    match tags.first() {
        Some(t) => Err(invalid(
            "tags",
            format!(
                "Steward keeps no tags on models or versions (got `{}`)",
                crate::error::bounded(&t.key, 64)
            ),
        )),
        None => Ok(()),
    }
}

pub async fn create_model(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<CreateModel>,
) -> Answer {
    let b = body.0;
    no_tags(&b.tags)?;
    if b.deployment_job_id
        .as_deref()
        .is_some_and(|d| !d.is_empty())
    {
        return Err(invalid(
            "deployment_job_id",
            "Steward runs no deployment jobs",
        ));
    }
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let view = state
        .db
        .run(move |conn| {
            external::create_model(conn, &b.name, b.description.as_deref(), &actor)?;
            model_view(conn, &b.name)
        })
        .await
        .map_err(MlflowError::exists)?;
    Ok(HttpResponse::Ok().json(json!({ "registered_model": view })))
}

pub async fn get_model(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["name"])?;
    let name = query.required("name")?.to_owned();
    let view = state.db.run(move |conn| model_view(conn, &name)).await?;
    Ok(HttpResponse::Ok().json(json!({ "registered_model": view })))
}

/// Registry facts for a filter: attributes by name; no tags are kept, so a tag reads as the
/// empty string (MLflow's client adds ``tags.`mlflow.prompt.is_prompt` != 'true'`` to every
/// model search, which then holds).
struct RegistryFacts(Vec<(&'static str, String)>);

impl search::Facts for RegistryFacts {
    fn text(&self, entity: search::Entity, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        match entity {
            search::Entity::Attribute => self
                .0
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str().into()),
            search::Entity::Tag => Some("".into()),
            _ => None,
        }
    }

    fn number(&self, _: search::Entity, _: &str) -> Option<f64> {
        None
    }
}

/// `name [ASC|DESC]` or a timestamp key (then newest first); the name ascending by default.
fn registry_order(order_by: &[String]) -> Result<bool, MlflowError> {
    let Some((key, descending)) = super::first_order(order_by)? else {
        return Ok(false);
    };
    match key.as_str() {
        "name"
        | "version_number"
        | "creation_timestamp"
        | "last_updated_timestamp"
        | "timestamp" => Ok(descending),
        _ => Err(invalid(
            "order_by",
            "order by name, version_number or a timestamp",
        )),
    }
}

pub async fn search_models(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["filter", "max_results", "order_by", "page_token"])?;
    let clauses =
        search::parse_filter_for(query.get("filter").unwrap_or_default(), search::MODELS)?;
    let limit = max_results(query.number("max_results")?, 100, MAX_MODELS)?;
    let offset = parse_page_token(query.get("page_token"))?;
    let descending = registry_order(&query.all("order_by"))?;
    let turn = super::search_turn(&state).await?;
    let (views, total) = state
        .db
        .run(move |conn| {
            // The turn ends with the work, also if the request is dropped meanwhile.
            let _turn = turn;
            let all = external::models(conn, 100_000)?;
            let mut spent: u64 = 0;
            let mut models = Vec::new();
            for m in all {
                let facts = RegistryFacts(vec![("name", m.name.clone())]);
                spent = spent.saturating_add(search::like_cost(&facts, &clauses));
                if spent > search::LIKE_BUDGET {
                    return Err(AppError::validation(
                        "filter",
                        "its LIKE patterns cost too much over the registry: shorten them",
                    ));
                }
                if search::matches(&facts, &clauses) {
                    models.push(m);
                }
            }
            if descending {
                models.reverse();
            }
            let total = models.len();
            let mut views = Vec::new();
            for m in models.iter().skip(offset).take(limit) {
                views.push(model_view(conn, &m.name)?);
            }
            Ok((views, total))
        })
        .await?;
    let next = search::next_page(offset, views.len(), total);
    Ok(super::paged("registered_models", views, next))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    deployment_job_id: Option<String>,
}

pub async fn update_model(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<UpdateModel>,
) -> Answer {
    let b = body.0;
    if b.deployment_job_id
        .as_deref()
        .is_some_and(|d| !d.is_empty())
    {
        return Err(invalid(
            "deployment_job_id",
            "Steward runs no deployment jobs",
        ));
    }
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let view = state
        .db
        .run(move |conn| {
            if let Some(d) = &b.description {
                external::describe_model(conn, &b.name, d, &actor)?;
            }
            model_view(conn, &b.name)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "registered_model": view })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    name: String,
}

pub async fn delete_model(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<ModelRef>,
) -> Answer {
    let name = body.0.name;
    let actor = super::writer(&identity, crate::auth::Role::Admin)?;
    // The served model's versions key the prediction log, monitoring and the agent's records:
    // it is never deleted (its versions are archived instead).
    if name == state.settings.registry.model {
        return Err(AppError::Conflict(format!(
            "`{name}` is the model Steward serves (registry.model); it is not deleted"
        ))
        .into());
    }
    state
        .db
        .run(move |conn| external::delete_model(conn, &name, &actor))
        .await?;
    Ok(ok_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatestVersions {
    name: String,
    #[serde(default)]
    stages: Vec<String>,
}

fn stages(names: &[String]) -> Result<Vec<Stage>, MlflowError> {
    names
        .iter()
        .map(|s| s.parse::<Stage>().map_err(|e| invalid("stages", e)))
        .collect()
}

async fn latest(state: &AppState, name: String, stage_names: Vec<String>) -> Answer {
    let wanted = stages(&stage_names)?;
    let views = state
        .db
        .run(move |conn| {
            let versions = external::latest_versions(conn, &name, &wanted)?;
            let aliases = external::aliases(conn, &name)?;
            Ok(versions
                .iter()
                .map(|v| version_json(v, &aliases))
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "model_versions": views })))
}

pub async fn latest_versions(state: web::Data<AppState>, body: Body<LatestVersions>) -> Answer {
    let b = body.0;
    latest(&state, b.name, b.stages).await
}

pub async fn latest_versions_get(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["name", "stages"])?;
    let name = query.required("name")?.to_owned();
    latest(&state, name, query.all("stages")).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    name: String,
    alias: String,
    version: VersionField,
}

/// Moves a version into Production through the serving slot (what the registry says is what
/// is served). A version Steward cannot load is refused first, naming its flavour; one already
/// in Production is left as it is.
fn promote(
    conn: &mut crate::db::DbConnection,
    state: &AppState,
    name: &str,
    version: i32,
    actor: &str,
    why: &str,
) -> Result<(), AppError> {
    let v = registry::find_version(conn, name, version)?;
    if let Some(flavour) = external::flavour_of(&v) {
        return Err(AppError::Conflict(format!(
            "{name} v{version} cannot be served: its MLflow flavour `{flavour}` is not one \
             Steward loads (Steward serves the models it trains); it stays in {}",
            v.stage
        )));
    }
    if v.stage == Stage::Production.as_str() {
        return Ok(());
    }
    let change = registry::Change {
        actor,
        reason: why,
        force: false,
    };
    match state.serving.transition(
        conn,
        state.blobs.as_ref(),
        name,
        version,
        Stage::Production,
        change,
    ) {
        // Promoted meanwhile by another request: the same outcome, as MLflow answers it.
        Err(AppError::Conflict(_))
            if registry::find_version(conn, name, version)?.stage == Stage::Production.as_str() =>
        {
            Ok(())
        }
        other => other.map(|_| ()),
    }
}

pub async fn set_alias(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<SetAlias>,
) -> Answer {
    let b = body.0;
    let version = b.version.number()?;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let app = state.clone();
    state
        .db
        .run(move |conn| {
            if b.alias.eq_ignore_ascii_case(CHAMPION) {
                promote(
                    conn,
                    &app,
                    &b.name,
                    version,
                    &actor,
                    "MLflow: alias `champion` set",
                )
            } else {
                external::set_alias(conn, &b.name, &b.alias, version, &actor)
            }
        })
        .await?;
    Ok(ok_empty())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasRef {
    name: String,
    alias: String,
}

pub async fn delete_alias(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<AliasRef>,
) -> Answer {
    let b = body.0;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    state
        .db
        .run(move |conn| external::delete_alias(conn, &b.name, &b.alias, &actor))
        .await?;
    Ok(ok_empty())
}

pub async fn get_by_alias(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["name", "alias"])?;
    let name = query.required("name")?.to_owned();
    let alias = query.required("alias")?.to_owned();
    let view = state
        .db
        .run(move |conn| {
            let v = external::version_by_alias(conn, &name, &alias)?;
            let aliases = external::aliases(conn, &name)?;
            Ok(version_json(&v, &aliases))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "model_version": view })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVersion {
    name: String,
    source: String,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    #[serde(default)]
    run_link: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    model_id: Option<String>,
}

pub async fn create_version(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<CreateVersion>,
) -> Answer {
    let b = body.0;
    no_tags(&b.tags)?;
    let _ = b.run_link;
    if b.model_id.as_deref().is_some_and(|m| !m.is_empty()) {
        return Err(invalid(
            "model_id",
            "Steward keeps no MLflow logged models; register a run",
        ));
    }
    let run_id = b
        .run_id
        .filter(|r| !r.is_empty())
        .or_else(|| {
            // `runs:/<id>/...` names the run too.
            b.source
                .strip_prefix("runs:/")
                .and_then(|rest| rest.split('/').next())
                .map(str::to_owned)
        })
        .ok_or_else(|| {
            invalid(
                "run_id",
                "is required: Steward registers a version from a run",
            )
        })?;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    // Registering a run Steward trained is an admin's, as on Steward's own API.
    let may_register_trained = identity.has(crate::auth::Role::Admin);
    let blobs = state.blobs.clone();
    let view = state
        .db
        .run(move |conn| {
            let v = external::create_version(
                conn,
                blobs.as_ref(),
                &b.name,
                &b.source,
                &run_id,
                b.description.as_deref(),
                &actor,
                may_register_trained,
            )?;
            version_view(conn, &b.name, v.version)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "model_version": view })))
}

pub async fn get_version(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["name", "version"])?;
    let name = query.required("name")?.to_owned();
    let version = VersionField::Text(query.required("version")?.to_owned()).number()?;
    let view = state
        .db
        .run(move |conn| version_view(conn, &name, version))
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "model_version": view })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateVersion {
    name: String,
    version: VersionField,
    #[serde(default)]
    description: Option<String>,
}

pub async fn update_version(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<UpdateVersion>,
) -> Answer {
    let b = body.0;
    let version = b.version.number()?;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let view = state
        .db
        .run(move |conn| {
            if let Some(d) = &b.description {
                external::describe_version(conn, &b.name, version, d, &actor)?;
            }
            version_view(conn, &b.name, version)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "model_version": view })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionRef {
    name: String,
    version: VersionField,
}

pub async fn delete_version(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<VersionRef>,
) -> Answer {
    let b = body.0;
    let version = b.version.number()?;
    // The served model's versions key the prediction log, monitoring and the agent's
    // requests: they are archived, never deleted.
    if b.name == state.settings.registry.model {
        return Err(AppError::Conflict(format!(
            "`{}` is the model Steward serves: its versions are kept (archive one instead)",
            b.name
        ))
        .into());
    }
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    state
        .db
        .run(move |conn| external::delete_version(conn, &b.name, version, &actor))
        .await?;
    Ok(ok_empty())
}

pub async fn search_versions(state: web::Data<AppState>, query: Query) -> Answer {
    query.only(&["filter", "max_results", "order_by", "page_token"])?;
    let clauses =
        search::parse_filter_for(query.get("filter").unwrap_or_default(), search::VERSIONS)?;
    let limit = max_results(query.number("max_results")?, MAX_VERSIONS, MAX_VERSIONS)?;
    let offset = parse_page_token(query.get("page_token"))?;
    let descending = registry_order(&query.all("order_by"))?;
    let turn = super::search_turn(&state).await?;
    let (views, total) = state
        .db
        .run(move |conn| {
            // The turn ends with the work, also if the request is dropped meanwhile.
            let _turn = turn;
            let (versions, aliases) = external::all_versions(conn)?;
            let none = Vec::new();
            let mut spent: u64 = 0;
            let mut found: Vec<(&ModelVersion, &Vec<(String, i32)>)> = Vec::new();
            for v in &versions {
                let facts = RegistryFacts(vec![
                    ("name", v.model.clone()),
                    ("run_id", v.run_id.clone()),
                    ("source", v.source.clone().unwrap_or_default()),
                    ("version", v.version.to_string()),
                    ("current_stage", v.stage.clone()),
                ]);
                spent = spent.saturating_add(search::like_cost(&facts, &clauses));
                if spent > search::LIKE_BUDGET {
                    return Err(AppError::validation(
                        "filter",
                        "its LIKE patterns cost too much over the registry: shorten them",
                    ));
                }
                if search::matches(&facts, &clauses) {
                    found.push((v, aliases.get(&v.model).unwrap_or(&none)));
                }
            }
            if descending {
                found.reverse();
            }
            let total = found.len();
            let views: Vec<Value> = found
                .iter()
                .skip(offset)
                .take(limit)
                .map(|(v, a)| version_json(v, a))
                .collect();
            Ok((views, total))
        })
        .await?;
    let next = search::next_page(offset, views.len(), total);
    Ok(super::paged("model_versions", views, next))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    name: String,
    version: VersionField,
    stage: String,
    #[serde(default)]
    archive_existing_versions: bool,
}

/// MLflow's `transition-stage`. Steward keeps one Production version, so moving a version into
/// Production always archives the one it replaces (whatever `archive_existing_versions` says);
/// for Staging, `archive_existing_versions` archives the other Staging versions.
pub async fn transition_stage(
    state: web::Data<AppState>,
    identity: Identity,
    body: Body<Transition>,
) -> Answer {
    let b = body.0;
    let version = b.version.number()?;
    let stage: Stage = b.stage.parse().map_err(|e: String| invalid("stage", e))?;
    let actor = super::writer(&identity, crate::auth::Role::Approver)?;
    let app = state.clone();
    let view = state
        .db
        .run(move |conn| {
            let reason = format!("MLflow: transition-stage to {stage}");
            if stage == Stage::Production {
                promote(conn, &app, &b.name, version, &actor, &reason)?;
            } else {
                let served = b.name == app.settings.registry.model;
                let change = registry::Change {
                    actor: &actor,
                    reason: &reason,
                    force: false,
                };
                // Checked and changed under the serving slot's order lock, so no promotion
                // lands between the check and the change.
                app.serving
                    .apply(conn, app.blobs.as_ref(), |conn, servable| {
                        let current = registry::find_version(conn, &b.name, version)?;
                        // What is served leaves Production only for another version (or a
                        // rollback): through MLflow's API, as `champion` cannot be deleted.
                        if current.stage == Stage::Production.as_str() && served {
                            return Err(AppError::Conflict(format!(
                                "{} v{version} is in Production and is what Steward serves: move \
                             another version into Production instead (or roll back)",
                                b.name
                            )));
                        }
                        if current.stage != stage.as_str() {
                            registry::transition(conn, &b.name, version, stage, change, servable)?;
                        }
                        Ok(())
                    })?;
                if b.archive_existing_versions && stage == Stage::Staging {
                    external::archive_others(conn, &b.name, version, stage, &actor)?;
                }
            }
            version_view(conn, &b.name, version)
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "model_version": view })))
}
