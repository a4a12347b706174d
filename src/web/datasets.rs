//! Datasets: versions with their validation status, a version's profile, a diff of two
//! versions, and the data-docs page of each validation run.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, html, when};
use crate::auth::{Identity, Role};
use crate::data::catalog::{self, ValidationRun};
use crate::data::expectations::ExpectationResult;
use crate::data::profile::{ColumnDiff, ColumnProfile, show};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::state::AppState;

pub struct VersionRow {
    pub version: i32,
    pub hash: String,
    pub rows: i64,
    pub columns: i32,
    pub file_name: String,
    pub created: String,
    pub created_by: String,
    pub message: String,
    pub current: bool,
    pub status: String,
    pub run_id: String,
}

#[derive(Template)]
#[template(path = "datasets_partial.html")]
struct VersionsPartial {
    dataset: String,
    versions: Vec<VersionRow>,
    /// Every recent validation run, of a dataset version or of a file (`steward validate
    /// --file`): (id, when, suite, what was validated, status).
    runs: Vec<(String, String, String, String, String)>,
    is_admin: bool,
    notice: Option<String>,
    /// Making a version current past its failed validation, shown for a second click.
    confirm: Option<(i32, Vec<String>)>,
}

#[derive(Template)]
#[template(path = "datasets.html")]
struct DatasetsPage {
    chrome: Chrome,
    names: Vec<String>,
    partial: VersionsPartial,
}

#[derive(Deserialize)]
pub struct Which {
    name: Option<String>,
}

async fn versions_partial(
    state: &AppState,
    dataset: String,
    is_admin: bool,
    notice: Option<String>,
) -> Result<VersionsPartial, AppError> {
    let name = dataset.clone();
    let (current, versions, runs, recent) = state
        .db
        .run(move |conn| {
            Ok((
                catalog::find_dataset(conn, &name)?.and_then(|d| d.current_version),
                catalog::list_versions(conn, &name)?,
                catalog::latest_runs_by_version(conn, &name)?,
                catalog::list_runs(conn, None, 50)?,
            ))
        })
        .await?;
    let recent = recent
        .into_iter()
        .map(|r| {
            let what = match (&r.dataset, r.version) {
                (Some(d), Some(v)) => format!("{d} v{v}"),
                _ => format!("file {}", r.source),
            };
            (
                r.id.clone(),
                when(&r.created_at),
                r.suite.clone(),
                what,
                r.status().to_owned(),
            )
        })
        .collect();
    let versions = versions
        .into_iter()
        .map(|v| {
            let run = runs.get(&v.version);
            VersionRow {
                version: v.version,
                hash: v.hash.chars().take(12).collect(),
                rows: v.row_count,
                columns: v.column_count,
                created: when(&v.created_at),
                created_by: v.created_by,
                message: v.message,
                file_name: v.file_name,
                current: current == Some(v.version),
                status: run
                    .map(ValidationRun::status)
                    .unwrap_or("not validated")
                    .to_owned(),
                run_id: run.map(|r| r.id.clone()).unwrap_or_default(),
            }
        })
        .collect();
    Ok(VersionsPartial {
        dataset,
        versions,
        runs: recent,
        is_admin,
        notice,
        confirm: None,
    })
}

pub async fn get_datasets(
    state: web::Data<AppState>,
    identity: Identity,
    which: web::Query<Which>,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let dataset = which
        .into_inner()
        .name
        .unwrap_or_else(|| state.settings.dataset.name.clone());
    let is_admin = identity.has(Role::Admin);
    let partial = versions_partial(&state, dataset, is_admin, None).await?;
    let names = if hx.0 {
        Vec::new()
    } else {
        state
            .db
            .run(|conn| {
                Ok(catalog::list_datasets(conn)?
                    .into_iter()
                    .map(|d| d.name)
                    .collect())
            })
            .await?
    };
    page_or_partial(hx, partial, |partial| {
        DatasetsPage {
            chrome: Chrome::new(&identity, "/datasets"),
            names,
            partial,
        }
        .render()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UseForm {
    version: i32,
    /// "true" after the person saw the version's validation failures and confirmed.
    #[serde(default)]
    force: String,
}

/// "Make current". A version whose validation failed (or was never recorded) first shows the
/// failures and asks again.
pub async fn post_current(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    form: web::Form<UseForm>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let dataset = path.into_inner();
    let UseForm { version, force } = form.into_inner();
    if force != "true" {
        let name = dataset.clone();
        let failures = state
            .db
            .run(move |conn| {
                catalog::find_version(conn, &name, version)?;
                Ok(crate::training::ValidationGate::of(conn, &name, version)?
                    .warnings(&name, version))
            })
            .await?;
        if !failures.is_empty() {
            let mut partial = versions_partial(&state, dataset, true, None).await?;
            partial.confirm = Some((version, failures));
            return Ok(html(partial.render()?));
        }
    }
    let actor = identity.actor();
    let name = dataset.clone();
    state
        .db
        .run(move |conn| crate::data::use_version(conn, &name, version, &actor))
        .await?;
    let notice = format!("{dataset} now uses v{version}.");
    let partial = versions_partial(&state, dataset, true, Some(notice)).await?;
    Ok(html(partial.render()?))
}

/// A profile row as the pages show it.
pub struct ProfileRow {
    pub name: String,
    pub kind: String,
    pub count: u64,
    pub missing: String,
    pub mean: String,
    pub std: String,
    pub min: String,
    pub p50: String,
    pub max: String,
    pub categories: String,
}

impl From<&ColumnProfile> for ProfileRow {
    fn from(c: &ColumnProfile) -> Self {
        ProfileRow {
            name: c.name.clone(),
            kind: format!("{:?}", c.kind).to_lowercase(),
            count: c.count,
            missing: format!("{} ({:.1}%)", c.missing, c.missing_percent),
            mean: show(c.mean),
            std: show(c.std),
            min: show(c.min),
            p50: show(c.p50),
            max: show(c.max),
            categories: c
                .categories
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

#[derive(Template)]
#[template(path = "dataset_version.html")]
struct VersionPage {
    chrome: Chrome,
    dataset: String,
    version: i32,
    hash: String,
    file_name: String,
    format: String,
    size_bytes: i64,
    rows: i64,
    columns: i32,
    parent: String,
    message: String,
    created: String,
    created_by: String,
    profile: Vec<ProfileRow>,
    runs: Vec<(String, String, String, String)>,
}

pub async fn get_version(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<(String, i32)>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let (dataset, number) = path.into_inner();
    let name = dataset.clone();
    let (v, runs) = state
        .db
        .run(move |conn| {
            let v = catalog::find_version(conn, &name, number)?;
            let runs: Vec<ValidationRun> = catalog::runs_for_version(conn, &name, number)?;
            Ok((v, runs))
        })
        .await?;
    let page = VersionPage {
        chrome: Chrome::new(&identity, "/datasets"),
        profile: v.profile()?.columns.iter().map(ProfileRow::from).collect(),
        dataset,
        version: v.version,
        hash: v.hash,
        file_name: v.file_name,
        format: v.format,
        size_bytes: v.size_bytes,
        rows: v.row_count,
        columns: v.column_count,
        parent: v
            .parent_version
            .map(|p| format!("v{p}"))
            .unwrap_or_else(|| "–".into()),
        message: v.message,
        created: when(&v.created_at),
        created_by: v.created_by,
        runs: runs
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    when(&r.created_at),
                    r.suite.clone(),
                    r.status().to_owned(),
                )
            })
            .collect(),
    };
    Ok(html(page.render()?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    from: i32,
    to: i32,
}

pub struct DiffRow {
    pub name: String,
    /// The distribution moved past what the row counts explain (see `Shift`).
    pub changed: bool,
    /// The effect size in words: `d = 0.52`, `TVD = 0.12`, `missing +30.0 pp`.
    pub effect: String,
    pub left: Option<ProfileRow>,
    pub right: Option<ProfileRow>,
    pub changes: Vec<String>,
}

impl From<&ColumnDiff> for DiffRow {
    fn from(c: &ColumnDiff) -> Self {
        let effect = c
            .shift
            .as_ref()
            .map(|s| {
                let measure = if s.measure == "cohens_d" { "d" } else { "TVD" };
                let mut text = format!("{measure} = {:.2}", s.value);
                if s.missing_pp.abs() >= 0.05 {
                    text.push_str(&format!(", missing {:+.1} pp", s.missing_pp));
                }
                text
            })
            .unwrap_or_else(|| "–".into());
        DiffRow {
            name: c.name.clone(),
            changed: c.shift.as_ref().is_some_and(|s| s.shifted)
                || c.left.is_none()
                || c.right.is_none(),
            effect,
            left: c.left.as_ref().map(ProfileRow::from),
            right: c.right.as_ref().map(ProfileRow::from),
            changes: c.changes.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "dataset_diff.html")]
struct DiffPage {
    chrome: Chrome,
    dataset: String,
    from: i32,
    to: i32,
    rows: (u64, u64),
    added: Vec<String>,
    removed: Vec<String>,
    columns: Vec<DiffRow>,
}

pub async fn get_diff(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    query: web::Query<DiffQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let dataset = path.into_inner();
    let DiffQuery { from, to } = query.into_inner();
    let name = dataset.clone();
    let diff = state
        .db
        .run(move |conn| crate::data::diff_versions(conn, &name, from, to))
        .await?;
    let page = DiffPage {
        chrome: Chrome::new(&identity, "/datasets"),
        dataset,
        from,
        to,
        rows: diff.rows,
        added: diff.columns_added.clone(),
        removed: diff.columns_removed.clone(),
        columns: diff.columns.iter().map(DiffRow::from).collect(),
    };
    Ok(html(page.render()?))
}

/// One expectation of a data-docs page.
pub struct ExpectationRow {
    pub success: bool,
    pub critical: bool,
    pub kind: String,
    pub column: String,
    pub kwargs: String,
    pub observed: String,
    pub unexpected: String,
    pub rows: String,
    pub values: String,
    pub error: String,
}

impl From<&ExpectationResult> for ExpectationRow {
    fn from(r: &ExpectationResult) -> Self {
        let mut kwargs = r
            .expectation_config
            .get("kwargs")
            .cloned()
            .unwrap_or_default();
        if let Some(map) = kwargs.as_object_mut() {
            map.remove("column");
        }
        let join = |v: Vec<String>| v.join(", ");
        ExpectationRow {
            success: r.success,
            critical: r.is_critical(),
            kind: r.kind().to_owned(),
            column: r.column().unwrap_or("").to_owned(),
            kwargs: super::spaced_json(&kwargs),
            observed: match &r.result.observed_value {
                Some(serde_json::Value::Number(n))
                    if n.as_f64().is_some_and(|x| x.fract() != 0.0) =>
                {
                    show(n.as_f64())
                }
                Some(v) => super::spaced_json(v),
                None => String::new(),
            },
            unexpected: match (r.result.unexpected_count, r.result.unexpected_percent) {
                (Some(n), Some(p)) => format!("{n} ({p:.1}%)"),
                _ => String::new(),
            },
            rows: join(
                r.result
                    .partial_unexpected_index_list
                    .iter()
                    .map(u64::to_string)
                    .collect(),
            ),
            // Not-null failures list nulls, which say nothing more than the rows do.
            values: if r.result.partial_unexpected_list.iter().all(|v| v.is_null()) {
                String::new()
            } else {
                join(
                    r.result
                        .partial_unexpected_list
                        .iter()
                        .map(|v| v.to_string())
                        .collect(),
                )
            },
            error: r
                .exception_info
                .exception_message
                .clone()
                .unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "validation_run.html")]
struct RunPage {
    chrome: Chrome,
    id: String,
    suite: String,
    source: String,
    status: String,
    created: String,
    created_by: String,
    evaluated: i32,
    successful: i32,
    success_percent: String,
    dataset_link: Option<String>,
    expectations: Vec<ExpectationRow>,
}

pub async fn get_validation(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    // Unexpected values are rows of the data: never open to public reads.
    identity.require(Role::Viewer)?;
    let id = path.into_inner();
    let run = state
        .db
        .run(move |conn| catalog::find_run(conn, &id))
        .await?;
    let result = run.result()?;
    let page = RunPage {
        chrome: Chrome::new(&identity, "/datasets"),
        dataset_link: match (&run.dataset, run.version) {
            (Some(d), Some(v)) => Some(format!("/datasets/{d}/versions/{v}")),
            _ => None,
        },
        id: run.id.clone(),
        suite: run.suite.clone(),
        source: run.source.clone(),
        status: run.status().to_owned(),
        created: when(&run.created_at),
        created_by: run.created_by.clone(),
        evaluated: run.evaluated,
        successful: run.successful,
        success_percent: format!("{:.1}", result.statistics.success_percent),
        expectations: result.results.iter().map(ExpectationRow::from).collect(),
    };
    Ok(html(page.render()?))
}
