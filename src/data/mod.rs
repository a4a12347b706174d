//! Data: versioned datasets (like DVC) and expectation suites (like Great Expectations).
//!
//! Owns the dataset tables and the blob store's dataset blobs. The functions here are what the
//! CLI, the JSON API, the dashboard and the first start call; each change lands with its audit
//! event. Parsing and statistics are blocking work: callers run them off the async workers.

pub mod blob;
pub mod catalog;
pub mod expectations;
pub mod infer;
pub mod profile;
pub mod schema;
pub mod stream;
pub mod table;

use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use self::blob::{BlobStore, hash_bytes};
use self::catalog::{DatasetVersion, ValidationRun};
use self::expectations::{Suite, SuiteError};
use self::schema::DatasetSettings;
use self::table::{DataError, Table, read_table};
use crate::audit::{self, NewEvent};
use crate::db::{Db, DbConnection, now};
use crate::error::{AppError, FieldError};
use crate::telemetry::{BLOB_REPAIRS_TOTAL, DATASET_VERSIONS_ADDED_TOTAL, VALIDATION_RUNS_TOTAL};

/// Checks a name that becomes a key in the store and a label (a dataset or a suite name):
/// 1–64 letters, digits, `_`, `-` or `.`, not starting with `.`. A suite name is never a path.
pub fn check_name(field: &str, name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::validation(
            field,
            "must be 1-64 letters, digits, '_', '-' or '.', not starting with '.'",
        ))
    }
}

/// A file name as Steward keeps it: the last path segment, at most 200 characters, no control
/// characters or quotes; an empty name becomes `upload`.
pub fn clean_file_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '\''))
        .take(200)
        .collect();
    let cleaned = cleaned.trim().to_owned();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "upload".to_owned()
    } else {
        cleaned
    }
}

impl From<DataError> for AppError {
    fn from(e: DataError) -> Self {
        let message = e.to_string();
        AppError::Validation {
            details: vec![FieldError {
                field: "file".into(),
                message: message.clone(),
            }],
            message,
        }
    }
}

impl From<SuiteError> for AppError {
    fn from(e: SuiteError) -> Self {
        AppError::validation("suite", e.to_string())
    }
}

impl From<blob::BlobError> for AppError {
    fn from(e: blob::BlobError) -> Self {
        match e {
            blob::BlobError::Corrupt { .. } | blob::BlobError::Missing { .. } => {
                AppError::Unavailable(e.to_string())
            }
            // The endpoint, bucket and the store's error body stay in the log.
            blob::BlobError::Remote { .. } => {
                tracing::error!(error = %e, "the artifact store failed");
                AppError::Unavailable("the artifact store did not answer; retry later".into())
            }
            other => AppError::Internal(other.into()),
        }
    }
}

/// What `add_version` did, and what validating the new version found.
#[derive(Debug, Clone, Serialize)]
pub struct AddOutcome {
    pub version: DatasetVersion,
    /// False when these bytes were already a version of the dataset.
    pub created: bool,
    /// The version is the dataset's current one now (a new version becomes current when its
    /// validation passed).
    pub current: bool,
    pub validation: Option<ValidationRun>,
    /// Why the new version could not be validated, if it could not (it is then not current).
    pub validation_error: Option<String>,
    /// When the bytes were already a version but its stored blob was corrupt or missing: what
    /// was wrong; the blob was rewritten from these bytes.
    pub repaired: Option<String>,
}

/// A file offered as a new version of a dataset.
pub struct Upload<'a> {
    pub dataset: &'a str,
    pub bytes: &'a [u8],
    pub file_name: &'a str,
    pub message: &'a str,
    /// The version it derives from (default: the dataset's current one).
    pub parent: Option<i32>,
}

/// Adds a file as the next version of its dataset; the same bytes again give the existing
/// version (and a stored blob that no longer matches is rewritten from them, audited). The file
/// is read and checked before anything is written, and a failed add leaves neither a row nor a
/// new blob. The new version is validated against the dataset's suite and becomes current only
/// when that validation passed: a version that failed (or could not be validated) is kept,
/// and made current by a person who saw its failures ([`use_version`]). Bytes added again
/// whose version was never validated (an add interrupted before its validation) are validated
/// now, as a new version would be. Store connections are taken per step, never while the file
/// is parsed.
pub fn add_version(
    db: &Db,
    blobs: &dyn BlobStore,
    schema: &DatasetSettings,
    upload: Upload<'_>,
    actor: &str,
) -> Result<AddOutcome, AppError> {
    let Upload {
        dataset,
        bytes,
        file_name,
        message,
        parent,
    } = upload;
    check_name("dataset", dataset)?;
    let file_name = &clean_file_name(file_name);
    if message.chars().count() > 1000 {
        return Err(AppError::validation(
            "message",
            "must be at most 1000 characters",
        ));
    }
    if message
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(AppError::validation(
            "message",
            "must not hold control characters",
        ));
    }
    let hash = hash_bytes(bytes);
    let existing = catalog::find_by_hash(&mut *db.get()?, dataset, &hash)?;
    if let Some(existing) = existing {
        let repaired = repair_blob(db, blobs, &existing, bytes, actor)?;
        let validated = catalog::latest_runs_by_version(&mut *db.get()?, dataset)?
            .contains_key(&existing.version);
        if !validated {
            // Parsed before a connection is taken.
            let table = read_table(bytes, file_name, schema)?;
            let mut conn = db.get()?;
            let mut outcome =
                validate_added(&mut conn, schema, existing, &table, file_name, actor)?;
            outcome.created = false;
            outcome.repaired = repaired;
            return Ok(outcome);
        }
        let current = catalog::find_dataset(&mut *db.get()?, dataset)?
            .and_then(|d| d.current_version)
            == Some(existing.version);
        return Ok(AddOutcome {
            version: existing,
            created: false,
            current,
            validation: None,
            validation_error: None,
            repaired,
        });
    }
    let table = read_table(bytes, file_name, schema)?;
    let profile = profile::profile(&table, schema);
    let stored = blobs.put(bytes)?;
    let profile_json = serde_json::to_string(&profile)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("profile: {e}")))?;
    let mut conn = db.get()?;
    let conn = &mut *conn;
    let inserted = audit::with_event(conn, |conn| {
        // Re-checked under the lock: a concurrent add of the same bytes may have won.
        if catalog::find_by_hash(conn, dataset, &hash)?.is_some() {
            return Err(AppError::Conflict("already added".into()));
        }
        let current = catalog::ensure_dataset(conn, dataset)?.current_version;
        let version = DatasetVersion {
            id: uuid::Uuid::new_v4().to_string(),
            dataset: dataset.to_owned(),
            version: catalog::next_version(conn, dataset)?,
            hash: hash.clone(),
            size_bytes: bytes.len() as i64,
            format: table.format.as_str().to_owned(),
            file_name: file_name.to_owned(),
            row_count: table.rows() as i64,
            column_count: table.file_columns.len() as i32,
            parent_version: parent.or(current),
            message: message.to_owned(),
            profile_json,
            created_by: actor.to_owned(),
            created_at: now(),
        };
        catalog::insert_version(conn, &version)?;
        let event = NewEvent::new(actor, "dataset.add", format!("dataset:{dataset}"))
            // The current version does not move here (validation moves it, as dataset.use):
            // before and after say so, and nothing reads as "current cleared".
            .before(json!({ "current_version": current }))
            .after(json!({
                "current_version": current,
                "version": version.version,
                "hash": version.hash,
                "rows": version.row_count,
                "file_name": version.file_name,
                "message": version.message,
            }));
        Ok((version, event))
    });
    let version = match inserted {
        Ok(v) => v,
        Err(AppError::Conflict(_)) => {
            let existing = catalog::find_by_hash(conn, dataset, &hash)?
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("lost version {hash}")))?;
            return Ok(AddOutcome {
                version: existing,
                created: false,
                current: false,
                validation: None,
                validation_error: None,
                repaired: None,
            });
        }
        Err(e) => {
            if stored.created && !catalog::hash_is_referenced(conn, &hash).unwrap_or(true) {
                let _ = blobs.delete(&hash);
            }
            return Err(e);
        }
    };
    // A label from a fixed set: the configured dataset, or `other` (names come from clients).
    let label = if dataset == schema.name {
        dataset.to_owned()
    } else {
        "other".to_owned()
    };
    metrics::counter!(DATASET_VERSIONS_ADDED_TOTAL, "dataset" => label).increment(1);
    validate_added(conn, schema, version, &table, file_name, actor)
}

/// Validates an added version against the dataset's suite and makes it current when it
/// passed: a version nobody checked, or one that failed, never silently becomes what training
/// uses by default.
fn validate_added(
    conn: &mut DbConnection,
    schema: &DatasetSettings,
    version: DatasetVersion,
    table: &Table,
    file_name: &str,
    actor: &str,
) -> Result<AddOutcome, AppError> {
    let (validation, validation_error) = match Suite::load(&schema.suites_dir, &schema.suite) {
        Ok(suite) => {
            let run = validate_table(conn, &suite, table, Some(&version), file_name, actor)?;
            (Some(run), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let current = validation.as_ref().is_some_and(|run| run.success);
    if current {
        use_version(conn, &version.dataset, version.version, actor)?;
    }
    Ok(AddOutcome {
        version,
        created: true,
        current,
        validation,
        validation_error,
        repaired: None,
    })
}

/// Checks the stored blob of a version whose bytes were supplied again; a corrupt or missing
/// blob is rewritten from them (the bytes hash to the version's hash, so they are its content),
/// and the repair is counted and audited. Returns what was wrong, if anything.
fn repair_blob(
    db: &Db,
    blobs: &dyn BlobStore,
    version: &DatasetVersion,
    bytes: &[u8],
    actor: &str,
) -> Result<Option<String>, AppError> {
    let problem = match blobs.get(&version.hash) {
        Ok(_) => return Ok(None),
        Err(e @ (blob::BlobError::Corrupt { .. } | blob::BlobError::Missing { .. })) => {
            e.to_string()
        }
        Err(e) => return Err(e.into()),
    };
    blobs.replace(bytes)?;
    metrics::counter!(BLOB_REPAIRS_TOTAL).increment(1);
    tracing::warn!(
        dataset = %version.dataset,
        version = version.version,
        problem = %problem,
        "rewrote a dataset blob from the bytes added again"
    );
    audit::append(
        &mut *db.get()?,
        NewEvent::new(
            actor,
            "dataset.blob_repair",
            format!("dataset:{}", version.dataset),
        )
        .after(json!({
            "version": version.version,
            "hash": version.hash,
            "problem": problem,
        })),
    )?;
    Ok(Some(problem))
}

/// Reads a stored version back into a table; the blob is verified against its hash.
pub fn load_version(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    schema: &DatasetSettings,
    dataset: &str,
    version: i32,
) -> Result<(DatasetVersion, Table), AppError> {
    let v = catalog::find_version(conn, dataset, version)?;
    let bytes = blobs.get(&v.hash)?;
    let name = format!("{dataset} v{version}");
    let table = read_table(&bytes, &name, schema)?;
    Ok((v, table))
}

/// The version `use`d now, or the given one.
pub fn resolve_version(
    conn: &mut DbConnection,
    dataset: &str,
    version: Option<i32>,
) -> Result<i32, AppError> {
    match version {
        Some(v) => Ok(catalog::find_version(conn, dataset, v)?.version),
        None => catalog::current_version(conn, dataset)?
            .map(|v| v.version)
            .ok_or_else(|| AppError::NotFound(format!("dataset `{dataset}` has no versions"))),
    }
}

/// Two versions' profiles side by side.
pub fn diff_versions(
    conn: &mut DbConnection,
    dataset: &str,
    from: i32,
    to: i32,
) -> Result<profile::ProfileDiff, AppError> {
    let a = catalog::find_version(conn, dataset, from)?;
    let b = catalog::find_version(conn, dataset, to)?;
    Ok(profile::diff(&a.profile()?, &b.profile()?))
}

/// Points the dataset at another of its versions (a rollback of the data).
pub fn use_version(
    conn: &mut DbConnection,
    dataset: &str,
    version: i32,
    actor: &str,
) -> Result<DatasetVersion, AppError> {
    audit::with_event(conn, |conn| {
        let target = catalog::find_version(conn, dataset, version)?;
        let before = catalog::find_dataset(conn, dataset)?.and_then(|d| d.current_version);
        catalog::set_current(conn, dataset, version)?;
        let event = NewEvent::new(actor, "dataset.use", format!("dataset:{dataset}"))
            .before(json!({ "current_version": before }))
            .after(json!({ "current_version": version }));
        Ok((target, event))
    })
}

/// Validates a stored version (its current one when `version` is `None`) and stores the run.
pub fn validate_version(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    schema: &DatasetSettings,
    suite: &Suite,
    dataset: &str,
    version: Option<i32>,
    actor: &str,
) -> Result<ValidationRun, AppError> {
    let number = resolve_version(conn, dataset, version)?;
    let (v, table) = load_version(conn, blobs, schema, dataset, number)?;
    let label = format!("{dataset} v{number}");
    validate_table(conn, suite, &table, Some(&v), &label, actor)
}

/// A drafted suite from a stored version's profile (its current one when `version` is `None`).
pub fn suggest_suite(
    conn: &mut DbConnection,
    schema: &DatasetSettings,
    suite_name: &str,
    dataset: &str,
    version: Option<i32>,
) -> Result<serde_json::Value, AppError> {
    let number = resolve_version(conn, dataset, version)?;
    let v = catalog::find_version(conn, dataset, number)?;
    Ok(expectations::suggest(suite_name, &v.profile()?, schema))
}

/// Validates a table and stores the run (with its audit event).
pub fn validate_table(
    conn: &mut DbConnection,
    suite: &Suite,
    table: &Table,
    version: Option<&DatasetVersion>,
    source_name: &str,
    actor: &str,
) -> Result<ValidationRun, AppError> {
    let started = Instant::now();
    let result = expectations::validate(suite, table, source_name);
    let run = ValidationRun {
        id: uuid::Uuid::new_v4().to_string(),
        suite: suite.name.clone(),
        suite_hash: suite.hash.clone(),
        dataset: version.map(|v| v.dataset.clone()),
        version: version.map(|v| v.version),
        source: source_name.to_owned(),
        success: result.success,
        evaluated: result.statistics.evaluated_expectations as i32,
        successful: result.statistics.successful_expectations as i32,
        critical_failures: result.critical_failures().len() as i32,
        result_json: serde_json::to_string(&result)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("validation result: {e}")))?,
        created_by: actor.to_owned(),
        created_at: now(),
    };
    let failed: Vec<String> = result
        .results
        .iter()
        .filter(|r| !r.success)
        .map(|r| r.label())
        .collect();
    audit::with_event(conn, |conn| {
        catalog::insert_run(conn, &run)?;
        let event =
            NewEvent::new(actor, "validation.run", format!("validation:{}", run.id)).after(json!({
                "suite": run.suite,
                "source": run.source,
                "dataset": run.dataset,
                "version": run.version,
                "status": run.status(),
                "failed": failed,
            }));
        Ok(((), event))
    })?;
    // The label set is the suite files the operator put in `dataset.suites_dir` (a suite is
    // loaded by a checked name, never a path): clients can't add to it.
    metrics::counter!(VALIDATION_RUNS_TOTAL, "suite" => run.suite.clone(), "outcome" => run.status())
        .increment(1);
    metrics::histogram!(crate::telemetry::VALIDATION_DURATION_SECONDS)
        .record(started.elapsed().as_secs_f64());
    Ok(run)
}

/// On an empty store, registers the configured file as version 1 and validates it.
pub fn bootstrap(
    db: &Db,
    blobs: &dyn BlobStore,
    schema: &DatasetSettings,
) -> anyhow::Result<Option<AddOutcome>> {
    if schema.bootstrap_file.is_empty()
        || catalog::find_dataset(&mut *db.get()?, &schema.name)?.is_some()
    {
        return Ok(None);
    }
    let path = std::path::Path::new(&schema.bootstrap_file);
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "configuration key `dataset.bootstrap_file`: cannot read {}: {e}",
            path.display()
        )
    })?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| schema.bootstrap_file.clone());
    let upload = Upload {
        dataset: &schema.name,
        bytes: &bytes,
        file_name: &file_name,
        message: "bundled data set, registered on the first start",
        parent: None,
    };
    let outcome = add_version(db, blobs, schema, upload, "system")
        .map_err(|e| anyhow::anyhow!("registering {}: {e}", path.display()))?;
    Ok(Some(outcome))
}
