//! The `datasets`, `dataset_versions` and `validation_runs` tables.
//!
//! A dataset version is a row plus a blob: the row records the blob's hash, size, shape,
//! profile, parent and message; the bytes live in the blob store under that hash.

use diesel::prelude::*;
use serde::Serialize;

use super::expectations::ValidationResult;
use super::profile::TableProfile;
use crate::db::schema::{dataset_versions, datasets, validation_runs};
use crate::db::{DbConnection, now};
use crate::error::AppError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = datasets)]
pub struct Dataset {
    pub name: String,
    pub current_version: Option<i32>,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = dataset_versions)]
pub struct DatasetVersion {
    pub id: String,
    pub dataset: String,
    pub version: i32,
    pub hash: String,
    pub size_bytes: i64,
    pub format: String,
    pub file_name: String,
    pub row_count: i64,
    pub column_count: i32,
    pub parent_version: Option<i32>,
    pub message: String,
    #[serde(skip)]
    pub profile_json: String,
    pub created_by: String,
    pub created_at: chrono::NaiveDateTime,
}

impl DatasetVersion {
    pub fn profile(&self) -> Result<TableProfile, AppError> {
        serde_json::from_str(&self.profile_json).map_err(|e| {
            AppError::Internal(anyhow::anyhow!(
                "profile of {} v{}: {e}",
                self.dataset,
                self.version
            ))
        })
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = validation_runs)]
pub struct ValidationRun {
    pub id: String,
    pub suite: String,
    pub suite_hash: String,
    pub dataset: Option<String>,
    pub version: Option<i32>,
    pub source: String,
    pub success: bool,
    pub evaluated: i32,
    pub successful: i32,
    pub critical_failures: i32,
    #[serde(skip)]
    pub result_json: String,
    pub created_by: String,
    pub created_at: chrono::NaiveDateTime,
}

impl ValidationRun {
    pub fn result(&self) -> Result<ValidationResult, AppError> {
        serde_json::from_str(&self.result_json)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("validation run {}: {e}", self.id)))
    }

    /// passed, failed (only non-critical expectations) or blocked (a critical one failed).
    pub fn status(&self) -> &'static str {
        if self.success {
            "passed"
        } else if self.critical_failures > 0 {
            "blocked"
        } else {
            "failed"
        }
    }
}

pub fn list_datasets(conn: &mut DbConnection) -> Result<Vec<Dataset>, AppError> {
    Ok(datasets::table
        .order(datasets::name.asc())
        .select(Dataset::as_select())
        .load(conn)?)
}

pub fn find_dataset(conn: &mut DbConnection, name: &str) -> Result<Option<Dataset>, AppError> {
    Ok(datasets::table
        .find(name)
        .select(Dataset::as_select())
        .first(conn)
        .optional()?)
}

/// Creates the dataset row on its first version.
pub fn ensure_dataset(conn: &mut DbConnection, name: &str) -> Result<Dataset, AppError> {
    if let Some(d) = find_dataset(conn, name)? {
        return Ok(d);
    }
    let at = now();
    let d = Dataset {
        name: name.to_owned(),
        current_version: None,
        created_at: at,
        updated_at: at,
    };
    diesel::insert_into(datasets::table)
        .values(&d)
        .execute(conn)?;
    Ok(d)
}

pub fn set_current(conn: &mut DbConnection, name: &str, version: i32) -> Result<(), AppError> {
    diesel::update(datasets::table.find(name))
        .set((
            datasets::current_version.eq(Some(version)),
            datasets::updated_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn list_versions(
    conn: &mut DbConnection,
    dataset: &str,
) -> Result<Vec<DatasetVersion>, AppError> {
    Ok(dataset_versions::table
        .filter(dataset_versions::dataset.eq(dataset))
        .order(dataset_versions::version.desc())
        .select(DatasetVersion::as_select())
        .load(conn)?)
}

pub fn find_version(
    conn: &mut DbConnection,
    dataset: &str,
    version: i32,
) -> Result<DatasetVersion, AppError> {
    dataset_versions::table
        .filter(dataset_versions::dataset.eq(dataset))
        .filter(dataset_versions::version.eq(version))
        .select(DatasetVersion::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("dataset `{dataset}` has no version {version}")))
}

pub fn find_by_hash(
    conn: &mut DbConnection,
    dataset: &str,
    hash: &str,
) -> Result<Option<DatasetVersion>, AppError> {
    Ok(dataset_versions::table
        .filter(dataset_versions::dataset.eq(dataset))
        .filter(dataset_versions::hash.eq(hash))
        .select(DatasetVersion::as_select())
        .first(conn)
        .optional()?)
}

pub fn hash_is_referenced(conn: &mut DbConnection, hash: &str) -> Result<bool, AppError> {
    let n: i64 = dataset_versions::table
        .filter(dataset_versions::hash.eq(hash))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

pub fn next_version(conn: &mut DbConnection, dataset: &str) -> Result<i32, AppError> {
    let max: Option<i32> = dataset_versions::table
        .filter(dataset_versions::dataset.eq(dataset))
        .select(diesel::dsl::max(dataset_versions::version))
        .first(conn)?;
    Ok(max.unwrap_or(0) + 1)
}

pub fn insert_version(conn: &mut DbConnection, v: &DatasetVersion) -> Result<(), AppError> {
    diesel::insert_into(dataset_versions::table)
        .values(v)
        .execute(conn)?;
    Ok(())
}

/// The version a dataset name points at now.
pub fn current_version(
    conn: &mut DbConnection,
    dataset: &str,
) -> Result<Option<DatasetVersion>, AppError> {
    match find_dataset(conn, dataset)?.and_then(|d| d.current_version) {
        Some(v) => find_version(conn, dataset, v).map(Some),
        None => Ok(None),
    }
}

pub fn count_versions(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(dataset_versions::table.count().get_result(conn)?)
}

pub fn insert_run(conn: &mut DbConnection, run: &ValidationRun) -> Result<(), AppError> {
    diesel::insert_into(validation_runs::table)
        .values(run)
        .execute(conn)?;
    Ok(())
}

pub fn find_run(conn: &mut DbConnection, id: &str) -> Result<ValidationRun, AppError> {
    validation_runs::table
        .find(id)
        .select(ValidationRun::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("no validation run `{id}`")))
}

/// Newest first; only one dataset's when `dataset` is given.
pub fn list_runs(
    conn: &mut DbConnection,
    dataset: Option<&str>,
    limit: i64,
) -> Result<Vec<ValidationRun>, AppError> {
    let mut query = validation_runs::table
        .select(ValidationRun::as_select())
        .order(validation_runs::created_at.desc())
        .limit(limit.clamp(1, 1000))
        .into_boxed();
    if let Some(d) = dataset {
        query = query.filter(validation_runs::dataset.eq(d.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// The runs of one version, newest first.
pub fn runs_for_version(
    conn: &mut DbConnection,
    dataset: &str,
    version: i32,
) -> Result<Vec<ValidationRun>, AppError> {
    Ok(validation_runs::table
        .filter(validation_runs::dataset.eq(dataset))
        .filter(validation_runs::version.eq(version))
        .order(validation_runs::created_at.desc())
        .select(ValidationRun::as_select())
        .load(conn)?)
}

/// The newest run for each version of a dataset, keyed by version.
pub fn latest_runs_by_version(
    conn: &mut DbConnection,
    dataset: &str,
) -> Result<std::collections::HashMap<i32, ValidationRun>, AppError> {
    let runs: Vec<ValidationRun> = validation_runs::table
        .filter(validation_runs::dataset.eq(dataset))
        .order(validation_runs::created_at.asc())
        .select(ValidationRun::as_select())
        .load(conn)?;
    Ok(runs
        .into_iter()
        .filter_map(|r| r.version.map(|v| (v, r)))
        .collect())
}
