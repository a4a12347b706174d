//! The registry as MLflow's REST API changes it (`crate::api::mlflow`): descriptions, versions
//! registered from any run (also an MLflow client's), aliases, deletions.
//!
//! Steward's rules hold whatever the client asks: one Production version per model, and what
//! is in Production is what is served, so a version Steward cannot load (an MLflow client's
//! model, whose flavour Steward does not serve) is never promoted, and a model or version in
//! Production is not deleted. MLflow's `champion` alias is the Production version: setting it
//! promotes (through the serving slot, by the caller), reading it reads Production. Other
//! aliases are stored. Every change is one transaction with its audit event.

use diesel::prelude::*;
use serde_json::json;

use super::{ModelVersion, Stage, find_version, production};
use crate::audit::{self, NewEvent};
use crate::db::schema::{model_aliases, model_versions, registered_models, stage_transitions};
use crate::db::{DbConnection, now};
use crate::error::{AppError, bounded};
use crate::tracking::{self, EXTERNAL_KIND, Run};

/// The alias that names the Production version.
pub const CHAMPION: &str = "champion";
/// Longest description kept, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 5000;
/// Longest alias (MLflow's limit).
pub const MAX_ALIAS_CHARS: usize = 255;
/// The model kind of a version registered from an MLflow client's run: `mlflow:<flavour>`.
pub const KIND_PREFIX: &str = "mlflow:";

/// The MLflow flavour of a version Steward cannot load, `None` for Steward's own.
pub fn flavour_of(version: &ModelVersion) -> Option<&str> {
    version.model_kind.strip_prefix(KIND_PREFIX)
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = registered_models)]
pub struct ModelRow {
    pub name: String,
    pub created_at: chrono::NaiveDateTime,
    pub description: Option<String>,
}

/// A registered model's name follows MLflow's key rule (no slashes: it is a path segment on
/// the dashboard).
pub fn check_model_name(name: &str) -> Result<(), AppError> {
    tracking::external::check_key("name", name)?;
    if name.contains('/') {
        return Err(AppError::validation("name", "must not contain `/`"));
    }
    Ok(())
}

fn check_description(description: &str) -> Result<(), AppError> {
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(AppError::validation(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

pub fn find_model(conn: &mut DbConnection, name: &str) -> Result<ModelRow, AppError> {
    registered_models::table
        .find(name)
        .select(ModelRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "Registered Model with name={} not found",
                bounded(name, 100)
            ))
        })
}

/// Every registered model, by name (at most `limit`).
pub fn models(conn: &mut DbConnection, limit: i64) -> Result<Vec<ModelRow>, AppError> {
    Ok(registered_models::table
        .order(registered_models::name.asc())
        .limit(limit)
        .select(ModelRow::as_select())
        .load(conn)?)
}

/// Creates a registered model; one that exists is a conflict (MLflow's
/// RESOURCE_ALREADY_EXISTS).
pub fn create_model(
    conn: &mut DbConnection,
    name: &str,
    description: Option<&str>,
    actor: &str,
) -> Result<ModelRow, AppError> {
    check_model_name(name)?;
    if let Some(d) = description {
        check_description(d)?;
    }
    audit::with_event(conn, |conn| {
        if find_model(conn, name).is_ok() {
            return Err(AppError::Conflict(format!(
                "Registered Model (name={}) already exists.",
                bounded(name, 100)
            )));
        }
        diesel::insert_into(registered_models::table)
            .values((
                registered_models::name.eq(name),
                registered_models::created_at.eq(now()),
                registered_models::description.eq(description),
            ))
            .execute(conn)?;
        let event = NewEvent::new(actor, "model.create", format!("model:{name}"))
            .after(json!({ "description": description.map(|d| bounded(d, 200)) }));
        Ok(((), event))
    })?;
    find_model(conn, name)
}

/// Sets a model's description.
pub fn describe_model(
    conn: &mut DbConnection,
    name: &str,
    description: &str,
    actor: &str,
) -> Result<ModelRow, AppError> {
    check_description(description)?;
    audit::with_event(conn, |conn| {
        let before = find_model(conn, name)?;
        diesel::update(registered_models::table.find(name))
            .set(registered_models::description.eq(Some(description)))
            .execute(conn)?;
        let event = NewEvent::new(actor, "model.update", format!("model:{name}"))
            .before(json!({ "description": before.description.map(|d| bounded(&d, 200)) }))
            .after(json!({ "description": bounded(description, 200) }));
        Ok(((), event))
    })?;
    find_model(conn, name)
}

fn refuse_production(model: &str, version: Option<i32>) -> AppError {
    AppError::Conflict(format!(
        "{model}{} is in Production and is what Steward serves: move another version into \
         Production (or roll back) first",
        version.map(|v| format!(" v{v}")).unwrap_or_default()
    ))
}

/// Deletes a model, its versions and aliases (its stage history goes too; the audit log
/// keeps it). A model with a version in Production is refused.
pub fn delete_model(conn: &mut DbConnection, name: &str, actor: &str) -> Result<(), AppError> {
    audit::with_event(conn, |conn| {
        find_model(conn, name)?;
        if let Some(p) = production(conn, name)? {
            return Err(refuse_production(name, Some(p.version)));
        }
        let versions: Vec<i32> = model_versions::table
            .filter(model_versions::model.eq(name))
            .select(model_versions::version)
            .load(conn)?;
        diesel::delete(model_aliases::table.filter(model_aliases::model.eq(name))).execute(conn)?;
        diesel::delete(model_versions::table.filter(model_versions::model.eq(name)))
            .execute(conn)?;
        diesel::delete(stage_transitions::table.filter(stage_transitions::model.eq(name)))
            .execute(conn)?;
        diesel::delete(registered_models::table.find(name)).execute(conn)?;
        let event = NewEvent::new(actor, "model.delete", format!("model:{name}"))
            .before(json!({ "versions": versions }));
        Ok(((), event))
    })
}

/// The flavour an MLflow client's run logged (the first of its `MLmodel` file's `flavors`
/// other than `python_function`, which every MLflow model has), or `unknown`.
fn flavour_logged(
    conn: &mut DbConnection,
    blobs: &dyn crate::data::blob::BlobStore,
    run: &Run,
    source: &str,
) -> String {
    let path = source
        .strip_prefix(&format!("runs:/{}/", run.id))
        .map(|p| p.trim_end_matches('/'));
    let artifacts = tracking::artifacts_of(conn, &run.id).unwrap_or_default();
    let mlmodel = artifacts.iter().find(|a| match path {
        Some(p) => a.name == format!("{p}/MLmodel"),
        None => a.name.ends_with("MLmodel"),
    });
    let Some(artifact) = mlmodel else {
        return "unknown".into();
    };
    let Ok(bytes) = blobs.get(&artifact.hash) else {
        return "unknown".into();
    };
    flavour_from_mlmodel(&String::from_utf8_lossy(&bytes))
}

/// The flavours listed under `flavors:` in an `MLmodel` file (YAML: two-space keys).
pub fn flavour_from_mlmodel(text: &str) -> String {
    let mut inside = false;
    let mut found: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("flavors:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with(' ') && !line.trim().is_empty() {
                break;
            }
            let indent = line.len() - line.trim_start().len();
            if indent == 2 {
                if let Some(name) = line.trim().strip_suffix(':') {
                    found.push(name.to_owned());
                }
            }
        }
    }
    found
        .iter()
        .find(|f| f.as_str() != "python_function")
        .or(found.first())
        .map(|f| bounded(f, 64))
        .unwrap_or_else(|| "unknown".into())
}

/// MLflow's `create-model-version`: the next version of `model` from `run_id`. A run Steward
/// trained registers as usual (servable), only when `may_register_trained` (an admin, as
/// Steward's own registering needs); an MLflow client's run registers as a version of kind
/// `mlflow:<flavour>`, kept and listed but never served. A run is registered once.
#[allow(clippy::too_many_arguments)]
pub fn create_version(
    conn: &mut DbConnection,
    blobs: &dyn crate::data::blob::BlobStore,
    model: &str,
    source: &str,
    run_id: &str,
    description: Option<&str>,
    actor: &str,
    may_register_trained: bool,
) -> Result<ModelVersion, AppError> {
    if source.chars().count() > 2000 {
        return Err(AppError::validation(
            "source",
            "must be at most 2000 characters",
        ));
    }
    if let Some(d) = description {
        check_description(d)?;
    }
    find_model(conn, model)?;
    let run = tracking::external::find(conn, run_id)?;
    if run.model_kind != EXTERNAL_KIND {
        if !may_register_trained {
            return Err(AppError::Forbidden(format!(
                "run {} was trained by Steward: registering it needs the admin role",
                run.id
            )));
        }
        return super::register_with(conn, model, &run, actor, Some(source), description);
    }
    let flavour = flavour_logged(conn, blobs, &run, source);
    super::insert_version(
        conn,
        model,
        &run,
        &format!("{KIND_PREFIX}{flavour}"),
        "",
        Some(source),
        description,
        actor,
    )
}

/// Sets a version's description.
pub fn describe_version(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
    description: &str,
    actor: &str,
) -> Result<ModelVersion, AppError> {
    check_description(description)?;
    audit::with_event(conn, |conn| {
        let before = find_version(conn, model, version)?;
        diesel::update(model_versions::table.find(&before.id))
            .set(model_versions::description.eq(Some(description)))
            .execute(conn)?;
        let event = NewEvent::new(
            actor,
            "model.version.update",
            format!("model:{model}/{version}"),
        )
        .after(json!({ "description": bounded(description, 200) }));
        Ok(((), event))
    })?;
    find_version(conn, model, version)
}

/// Deletes a version and its aliases; the version in Production is refused. Its number is
/// not used again.
pub fn delete_version(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
    actor: &str,
) -> Result<(), AppError> {
    audit::with_event(conn, |conn| {
        let v = find_version(conn, model, version)?;
        if v.stage == Stage::Production.as_str() {
            return Err(refuse_production(model, Some(version)));
        }
        // A version a rollback would go back to stays: the Production history replays it.
        if super::production_stack(conn, model)?.contains(&version) {
            return Err(AppError::Conflict(format!(
                "{model} v{version} is in the Production history (a rollback goes back to it); \
                 it is kept"
            )));
        }
        diesel::delete(
            model_aliases::table
                .filter(model_aliases::model.eq(model))
                .filter(model_aliases::version.eq(version)),
        )
        .execute(conn)?;
        diesel::delete(model_versions::table.find(&v.id)).execute(conn)?;
        let up_to: i32 = registered_models::table
            .find(model)
            .select(registered_models::deleted_up_to)
            .first(conn)?;
        diesel::update(registered_models::table.find(model))
            .set(registered_models::deleted_up_to.eq(up_to.max(version)))
            .execute(conn)?;
        let event = NewEvent::new(
            actor,
            "model.version.delete",
            format!("model:{model}/{version}"),
        )
        .before(json!({ "stage": v.stage, "run_id": v.run_id }));
        Ok(((), event))
    })
}

/// MLflow's alias rule: letters, digits, `_` and `-`, at most 255 characters, and not
/// `latest` or `v<number>` (those name versions already).
pub fn check_alias(alias: &str) -> Result<(), AppError> {
    let lower = alias.to_ascii_lowercase();
    let versionlike = lower
        .strip_prefix('v')
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()));
    if alias.is_empty()
        || alias.chars().count() > MAX_ALIAS_CHARS
        || !alias
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        || lower == "latest"
        || versionlike
    {
        return Err(AppError::validation(
            "alias",
            format!(
                "`{}` is no valid alias: letters, digits, `_` and `-`, at most \
                 {MAX_ALIAS_CHARS} characters, and not `latest` or `v<number>`",
                bounded(alias, 64)
            ),
        ));
    }
    Ok(())
}

/// Points a stored alias (not `champion`, which the caller turns into a promotion) at a
/// version.
pub fn set_alias(
    conn: &mut DbConnection,
    model: &str,
    alias: &str,
    version: i32,
    actor: &str,
) -> Result<(), AppError> {
    check_alias(alias)?;
    audit::with_event(conn, |conn| {
        find_version(conn, model, version)?;
        let before: Option<i32> = model_aliases::table
            .find((model, alias))
            .select(model_aliases::version)
            .first(conn)
            .optional()?;
        diesel::delete(model_aliases::table.find((model, alias))).execute(conn)?;
        diesel::insert_into(model_aliases::table)
            .values((
                model_aliases::model.eq(model),
                model_aliases::alias.eq(alias),
                model_aliases::version.eq(version),
                model_aliases::created_at.eq(now()),
            ))
            .execute(conn)?;
        let event = NewEvent::new(actor, "model.alias.set", format!("model:{model}@{alias}"))
            .before(json!({ "version": before }))
            .after(json!({ "version": version }));
        Ok(((), event))
    })
}

/// Removes a stored alias; `champion` is refused (it is Production: move that instead).
pub fn delete_alias(
    conn: &mut DbConnection,
    model: &str,
    alias: &str,
    actor: &str,
) -> Result<(), AppError> {
    if alias.eq_ignore_ascii_case(CHAMPION) {
        return Err(AppError::Conflict(format!(
            "`{CHAMPION}` is {model}'s Production version: move another version into \
             Production instead"
        )));
    }
    check_alias(alias)?;
    audit::with_event(conn, |conn| {
        find_model(conn, model)?;
        let n = diesel::delete(model_aliases::table.find((model, alias))).execute(conn)?;
        if n == 0 {
            return Err(AppError::NotFound(format!(
                "Registered model alias {} not found.",
                bounded(alias, 64)
            )));
        }
        let event = NewEvent::new(
            actor,
            "model.alias.delete",
            format!("model:{model}@{alias}"),
        )
        .before(json!({ "alias": alias }));
        Ok(((), event))
    })
}

/// The version an alias names (`champion`: the Production version).
pub fn version_by_alias(
    conn: &mut DbConnection,
    model: &str,
    alias: &str,
) -> Result<ModelVersion, AppError> {
    find_model(conn, model)?;
    if alias.eq_ignore_ascii_case(CHAMPION) {
        return production(conn, model)?.ok_or_else(|| {
            AppError::NotFound(format!(
                "Registered model alias {CHAMPION} not found: {model} has no Production version"
            ))
        });
    }
    let version: i32 = model_aliases::table
        .find((model, alias))
        .select(model_aliases::version)
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "Registered model alias {} not found.",
                bounded(alias, 64)
            ))
        })?;
    find_version(conn, model, version)
}

/// The aliases of a model: `(alias, version)`, `champion` first when a version is in
/// Production.
pub fn aliases(conn: &mut DbConnection, model: &str) -> Result<Vec<(String, i32)>, AppError> {
    let mut out: Vec<(String, i32)> = Vec::new();
    if let Some(p) = production(conn, model)? {
        out.push((CHAMPION.to_owned(), p.version));
    }
    let stored: Vec<(String, i32)> = model_aliases::table
        .filter(model_aliases::model.eq(model))
        .order(model_aliases::alias.asc())
        .select((model_aliases::alias, model_aliases::version))
        .load(conn)?;
    out.extend(stored);
    Ok(out)
}

/// Most versions one registry search reads; past it the search is refused (400), so its
/// cost stays bounded.
pub const MAX_SCANNED_VERSIONS: i64 = 100_000;

/// Each model's aliases: `(alias, version)`.
pub type AliasMap = std::collections::BTreeMap<String, Vec<(String, i32)>>;

/// Every version of every model, by model then number (at most [`MAX_SCANNED_VERSIONS`]),
/// with each model's aliases (`champion` for the Production version).
pub fn all_versions(conn: &mut DbConnection) -> Result<(Vec<ModelVersion>, AliasMap), AppError> {
    let versions: Vec<ModelVersion> = model_versions::table
        .order((model_versions::model.asc(), model_versions::version.asc()))
        .limit(MAX_SCANNED_VERSIONS + 1)
        .select(ModelVersion::as_select())
        .load(conn)?;
    if versions.len() as i64 > MAX_SCANNED_VERSIONS {
        return Err(AppError::validation(
            "filter",
            format!(
                "the registry holds more than {MAX_SCANNED_VERSIONS} versions; search one model's"
            ),
        ));
    }
    let mut aliases: std::collections::BTreeMap<String, Vec<(String, i32)>> =
        std::collections::BTreeMap::new();
    for v in versions
        .iter()
        .filter(|v| v.stage == Stage::Production.as_str())
    {
        aliases
            .entry(v.model.clone())
            .or_default()
            .push((CHAMPION.to_owned(), v.version));
    }
    let stored: Vec<(String, String, i32)> = model_aliases::table
        .order((model_aliases::model.asc(), model_aliases::alias.asc()))
        .select((
            model_aliases::model,
            model_aliases::alias,
            model_aliases::version,
        ))
        .load(conn)?;
    for (model, alias, version) in stored {
        aliases.entry(model).or_default().push((alias, version));
    }
    Ok((versions, aliases))
}

/// The highest version in each of `stages` (every stage when empty): MLflow's
/// `get-latest-versions`.
pub fn latest_versions(
    conn: &mut DbConnection,
    model: &str,
    stages: &[Stage],
) -> Result<Vec<ModelVersion>, AppError> {
    find_model(conn, model)?;
    let all = super::list_versions(conn, model)?;
    let wanted: Vec<Stage> = if stages.is_empty() {
        vec![
            Stage::None,
            Stage::Staging,
            Stage::Production,
            Stage::Archived,
        ]
    } else {
        stages.to_vec()
    };
    let mut out: Vec<ModelVersion> = wanted
        .iter()
        .filter_map(|stage| {
            // `list_versions` is newest first.
            all.iter().find(|v| v.stage == stage.as_str()).cloned()
        })
        .collect();
    out.sort_by_key(|v| v.version);
    out.dedup_by_key(|v| v.version);
    Ok(out)
}

/// Archives every other version of `model` in `stage` (MLflow's
/// `archive_existing_versions`, for a stage other than Production: Steward archives the
/// Production version it replaces itself).
pub fn archive_others(
    conn: &mut DbConnection,
    model: &str,
    keep: i32,
    stage: Stage,
    actor: &str,
) -> Result<Vec<i32>, AppError> {
    let others: Vec<i32> = model_versions::table
        .filter(model_versions::model.eq(model))
        .filter(model_versions::stage.eq(stage.as_str()))
        .filter(model_versions::version.ne(keep))
        .select(model_versions::version)
        .load(conn)?;
    let mut archived = Vec::new();
    for v in others {
        let change = super::Change {
            actor,
            reason: &format!("archive_existing_versions: v{keep} moved to {stage}"),
            force: false,
        };
        let moved = audit::with_optional_event(conn, |conn| {
            let current = find_version(conn, model, v)?;
            if current.stage != stage.as_str() {
                return Ok((false, None));
            }
            super::record(
                conn,
                model,
                v,
                &current.stage,
                Stage::Archived,
                change.actor,
                change.reason,
                false,
            )?;
            let event = NewEvent::new(actor, "model.transition", format!("model:{model}/{v}"))
                .before(json!({ "stage": current.stage }))
                .after(json!({ "stage": Stage::Archived.as_str(), "reason": change.reason }));
            Ok((true, Some(event)))
        })?;
        if !moved {
            continue;
        }
        archived.push(v);
    }
    Ok(archived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_follow_mlflows_rule() {
        assert!(check_alias("champion").is_ok());
        assert!(check_alias("candidate-2_b").is_ok());
        for bad in ["", "latest", "v3", "V12", "a b", "x/y"] {
            assert!(check_alias(bad).is_err(), "{bad}");
        }
        assert!(check_alias("v").is_ok());
    }

    #[test]
    fn the_flavour_is_read_from_mlmodel() {
        let text = "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    sklearn_version: 1.5.0\nmlflow_version: 3.17.2\n";
        assert_eq!(flavour_from_mlmodel(text), "sklearn");
        assert_eq!(
            flavour_from_mlmodel("flavors:\n  python_function:\n    x: 1\n"),
            "python_function"
        );
        assert_eq!(flavour_from_mlmodel("nothing here"), "unknown");
    }
}
