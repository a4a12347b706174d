//! Experiments (runs sortable by any metric, a side-by-side comparison), a run's page, Models
//! (versions, stages, history, promote and rollback) and Model performance (the production
//! model by default). Charts are the SVG the server rendered (`crate::charts`).

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, html, when};
use crate::auth::{Identity, Role};
use crate::charts;
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::ml::CandidateReport;
use crate::ml::slices::SliceReport;
use crate::registry::ModelDetail;
use crate::registry::{self, Stage};
use crate::state::AppState;
use crate::tracking::{self, RunDetail, RunRow, runs_table};
use crate::training::{self, TrainRequest};

/// Columns of the runs table: (metric, heading).
/// Few enough to fit 1280 px; a run's page has every metric, and sorting by another adds its
/// column first.
const RUN_COLUMNS: &[(&str, &str)] = &[
    ("cv_roc_auc_mean", "CV ROC-AUC"),
    ("cv_accuracy_mean", "CV accuracy"),
    ("cv_f1_mean", "CV F1"),
    ("holdout_roc_auc", "Holdout ROC-AUC"),
    ("fit_seconds", "Fit s"),
];

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

fn fmt_delta(name: &str, v: Option<f64>) -> String {
    match v {
        Some(v) if tracking::is_count(name) => format!("{v:+.0}"),
        Some(v) => format!("{v:+.3}"),
        None => String::new(),
    }
}

pub struct RunLine {
    pub id: String,
    pub short: String,
    pub model: String,
    pub status: String,
    pub dataset: String,
    pub values: Vec<String>,
    pub started: String,
    pub registered: String,
}

#[derive(Template)]
#[template(path = "experiments_partial.html")]
struct RunsPartial {
    experiment: String,
    sort: String,
    columns: Vec<(String, String)>,
    metric_names: Vec<String>,
    runs: Vec<RunLine>,
    /// The dataset versions the experiment's runs learned from: ("dataset:version", label).
    data_options: Vec<(String, String)>,
    /// The one shown, when filtered ("dataset:version").
    data: String,
    /// How many dataset versions the rows shown span (a ranking across several compares data
    /// as much as models).
    data_versions: usize,
    is_admin: bool,
    notice: Option<String>,
    /// Training past the data gate, shown for a second, deliberate click: the failures.
    confirm: Vec<String>,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    chrome: Chrome,
    experiments: Vec<String>,
    partial: RunsPartial,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    experiment: Option<String>,
    sort: Option<String>,
    /// Only runs on this dataset version, as `dataset:version` (empty: all).
    data: Option<String>,
}

/// A metric's name as a column heading: `holdout_f1` → "Holdout F1", `cv_pr_auc_mean` →
/// "CV PR-AUC".
fn metric_heading(name: &str) -> String {
    let (prefix, rest) = if let Some(rest) = name.strip_prefix("cv_") {
        ("CV ", rest.strip_suffix("_mean").unwrap_or(rest))
    } else if let Some(rest) = name.strip_prefix("holdout_") {
        ("Holdout ", rest)
    } else {
        ("", name)
    };
    let metric = match rest {
        "roc_auc" => "ROC-AUC".to_owned(),
        "pr_auc" => "PR-AUC".to_owned(),
        "f1" => "F1".to_owned(),
        "log_loss" => "log-loss".to_owned(),
        other => other.replace('_', " "),
    };
    format!("{prefix}{metric}")
}

/// What the runs table shows: an experiment, sorted by a metric, maybe on one dataset version.
struct RunsView {
    experiment: String,
    sort: String,
    data: String,
}

async fn runs_partial(
    state: &AppState,
    view: RunsView,
    is_admin: bool,
    notice: Option<String>,
    confirm: Vec<String>,
) -> Result<RunsPartial, AppError> {
    let RunsView {
        experiment,
        mut sort,
        data,
    } = view;
    let (exp, key, model) = (
        experiment.clone(),
        sort.clone(),
        state.settings.registry.model.clone(),
    );
    // Steward sorts its own experiments by a training summary; an MLflow client's experiment
    // holds its own metrics, so it is listed newest first unless a sort is asked for.
    let foreign = experiment != state.settings.training.experiment;
    let (rows, registered): (Vec<RunRow>, BTreeMap<String, String>) = state
        .db
        .run(move |conn| {
            let sort_key = (!foreign || !key.is_empty()).then_some(key.as_str());
            let rows = match runs_table(conn, Some(&exp), sort_key, 500) {
                // The configured experiment has no runs before the first training.
                Err(AppError::NotFound(_)) => Vec::new(),
                // An MLflow experiment's runs may lack the default sort metric.
                Err(AppError::Validation { .. }) if foreign => {
                    runs_table(conn, Some(&exp), None, 500)?
                }
                other => other?,
            };
            let ids: Vec<String> = rows.iter().map(|r| r.run.id.clone()).collect();
            let registered = registry::versions_of_runs(conn, &ids)?
                .into_iter()
                .map(|v| {
                    let label = if v.model == model {
                        format!("v{} {}", v.version, v.stage)
                    } else {
                        format!("{} v{} {}", v.model, v.version, v.stage)
                    };
                    (v.run_id, label)
                })
                .collect();
            Ok((rows, registered))
        })
        .await?;
    let key = |r: &RunRow| format!("{}:{}", r.run.dataset, r.run.dataset_version);
    let mut data_options: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                key(r),
                data_of(&r.run.dataset, r.run.dataset_version, &r.run.dataset_hash),
            )
        })
        .collect();
    data_options.sort();
    data_options.dedup();
    let rows: Vec<RunRow> = rows
        .into_iter()
        .filter(|r| data.is_empty() || key(r) == data)
        .collect();
    let mut hashes: Vec<&str> = rows.iter().map(|r| r.run.dataset_hash.as_str()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let data_versions = hashes.len();
    // What ranking by means something: the summaries training produces (not counts, seconds
    // or the per-run threshold), those present in these runs.
    let selectable = crate::ml::selectable_metrics();
    let mut metric_names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.metrics.keys().cloned())
        .filter(|name| selectable.contains(name))
        .collect();
    metric_names.sort();
    metric_names.dedup();
    let mut columns: Vec<(String, String)> = RUN_COLUMNS
        .iter()
        .map(|(k, h)| ((*k).to_owned(), (*h).to_owned()))
        .collect();
    if foreign
        && rows
            .iter()
            .all(|r| r.run.model_kind == tracking::EXTERNAL_KIND)
    {
        // An MLflow client's runs: the metrics they logged (a few), not Steward's summaries.
        let mut logged: Vec<String> = rows
            .iter()
            .flat_map(|r| r.metrics.keys().cloned())
            .collect();
        logged.sort();
        logged.dedup();
        columns = logged.into_iter().take(8).map(|k| (k.clone(), k)).collect();
        metric_names = columns.iter().map(|(k, _)| k.clone()).collect();
        if !columns.iter().any(|(k, _)| *k == sort) {
            sort.clear();
        }
    }
    if !columns.iter().any(|(k, _)| *k == sort) && !sort.is_empty() {
        columns.insert(0, (sort.clone(), metric_heading(&sort)));
    }
    let runs = rows
        .into_iter()
        .map(|r| RunLine {
            values: columns
                .iter()
                .map(|(k, _)| fmt(r.metrics.get(k).copied()))
                .collect(),
            registered: registered.get(&r.run.id).cloned().unwrap_or_default(),
            short: r.run.short_id().to_owned(),
            model: r.run.model_kind.clone(),
            status: r.run.status.clone(),
            dataset: data_of(&r.run.dataset, r.run.dataset_version, &r.run.dataset_hash),
            started: when(&r.run.started_at),
            id: r.run.id,
        })
        .collect();
    Ok(RunsPartial {
        experiment,
        sort,
        columns,
        metric_names,
        runs,
        data_options,
        data,
        data_versions,
        // "Train now" trains the configured candidates into the configured experiment.
        is_admin: is_admin && !foreign,
        notice,
        confirm,
    })
}

fn is_role(identity: &Identity, role: Role) -> bool {
    identity.has(role)
}

pub async fn get_experiments(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<RunsQuery>,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let q = query.into_inner();
    let experiment = q
        .experiment
        .unwrap_or_else(|| state.settings.training.experiment.clone());
    let sort = q.sort.unwrap_or_else(|| "cv_roc_auc_mean".into());
    let is_admin = is_role(&identity, Role::Admin);
    let view = RunsView {
        experiment,
        sort,
        data: q.data.unwrap_or_default(),
    };
    let partial = runs_partial(&state, view, is_admin, None, Vec::new()).await?;
    let experiments = if hx.0 {
        Vec::new()
    } else {
        state
            .db
            .run(|conn| {
                Ok(tracking::list_experiments(conn)?
                    .into_iter()
                    .map(|e| e.name)
                    .collect())
            })
            .await?
    };
    page_or_partial(hx, partial, |partial| {
        ExperimentsPage {
            chrome: Chrome::new(&identity, "/experiments"),
            experiments,
            partial,
        }
        .render()
    })
}

/// "Train now" on the Experiments page: the configured candidates on the current version,
/// recorded as runs (registration stays a separate, deliberate step on the Models page).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TrainForm {
    /// "true" after the person saw the data's validation failures and confirmed.
    #[serde(default)]
    force: String,
}

/// "Train now". On a version whose validation failed (or was never recorded), the failures
/// are shown first and a second, deliberate click trains anyway (the runs are tagged).
pub async fn post_train(
    state: web::Data<AppState>,
    identity: Identity,
    form: web::Form<TrainForm>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let force = form.into_inner().force == "true";
    if !force {
        let dataset = state.settings.dataset.name.clone();
        let failures = state
            .db
            .run(move |conn| {
                let number = crate::data::resolve_version(conn, &dataset, None)?;
                let gate = training::ValidationGate::of(conn, &dataset, number)?;
                Ok(gate.warnings(&dataset, number))
            })
            .await?;
        if !failures.is_empty() {
            let view = RunsView {
                experiment: state.settings.training.experiment.clone(),
                sort: "cv_roc_auc_mean".into(),
                data: String::new(),
            };
            let partial = runs_partial(&state, view, true, None, failures).await?;
            return Ok(html(partial.render()?));
        }
    }
    let request = TrainRequest {
        source: "dashboard".into(),
        force,
        ..TrainRequest::default()
    };
    let outcome = training::run(
        state.db.clone(),
        state.blobs.clone(),
        state.settings.clone(),
        state.training_gate.clone(),
        request,
        identity.actor(),
        state.serving.promoter(state.blobs.clone()),
    )
    .await?;
    let finished = outcome
        .candidates
        .iter()
        .filter(|c| c.report.is_some())
        .count();
    let notice = format!(
        "Trained {} of {} candidates on {} v{} in {:.1} s.",
        finished,
        outcome.candidates.len(),
        outcome.dataset,
        outcome.dataset_version,
        outcome.seconds
    );
    let view = RunsView {
        experiment: outcome.experiment,
        sort: "cv_roc_auc_mean".into(),
        data: String::new(),
    };
    let partial = runs_partial(&state, view, true, Some(notice), Vec::new()).await?;
    Ok(html(partial.render()?))
}

pub struct Card {
    pub label: String,
    pub value: String,
    pub sub: String,
}

pub struct SliceTable {
    pub column: String,
    pub rows: Vec<[String; 7]>,
}

fn slice_tables(slices: &[SliceReport]) -> Vec<SliceTable> {
    slices
        .iter()
        .map(|s| SliceTable {
            column: s.column.clone(),
            rows: s
                .groups
                .iter()
                .map(|g| {
                    [
                        g.label.clone(),
                        g.rows.to_string(),
                        g.positives.to_string(),
                        format!("{:.3}", g.accuracy),
                        format!("{:.3}", g.recall),
                        format!("{:.3}", g.f1),
                        fmt(g.roc_auc),
                    ]
                })
                .collect(),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    chrome: Chrome,
    detail: RunDetail,
    /// The model version this run became, if registered.
    registered: Option<String>,
    can_register: bool,
    /// The model its version belongs to, when it is not the served one.
    registered_model: Option<String>,
    params: String,
    duration: String,
    started: String,
    cards: Vec<Card>,
    charts: Vec<String>,
    /// Metric series plotted over their steps (per fold, per boosting round, per step).
    histories: Vec<String>,
    /// Summary metrics, each value formatted for its kind.
    metrics: Vec<(String, String)>,
    slices: Vec<SliceTable>,
    grid: Vec<(String, String)>,
}

/// A metric's value as people read it: counts as integers, the rest to four places.
pub fn fmt_metric(name: &str, value: f64) -> String {
    if tracking::is_count(name) {
        format!("{value:.0}")
    } else {
        format!("{value:.4}")
    }
}

/// The run's metric series as charts: the per-fold values of the main metrics in one, and
/// every other series (XGBoost's holdout log-loss per round, an MLflow run's steps) in its own.
fn history_charts(detail: &RunDetail) -> Vec<String> {
    let points = |h: &Vec<(i32, f64)>, offset: f64| -> Vec<(f64, f64)> {
        h.iter()
            .map(|&(step, v)| (f64::from(step) + offset, v))
            .collect()
    };
    let mut out = Vec::new();
    let folds: Vec<(String, Vec<(f64, f64)>)> = [
        ("roc_auc", "ROC-AUC"),
        ("accuracy", "accuracy"),
        ("f1", "F1"),
    ]
    .iter()
    .filter_map(|(m, label)| {
        detail
            .history
            .get(&format!("cv_fold_{m}"))
            .map(|h| ((*label).to_owned(), points(h, 1.0)))
    })
    .collect();
    if !folds.is_empty() {
        out.push(charts::history(
            "Each cross-validation fold",
            "fold",
            "metric on the fold's held-out rows",
            &folds,
        ));
    }
    if let Some(h) = detail.history.get("holdout_logloss_by_round") {
        out.push(charts::history(
            "Holdout log-loss by boosting round",
            "round",
            "log-loss",
            &[("holdout".into(), points(h, 1.0))],
        ));
    }
    let others = detail.history.iter().filter(|(name, _)| {
        !name.starts_with("cv_fold_") && name.as_str() != "holdout_logloss_by_round"
    });
    for (name, h) in others.take(6) {
        out.push(charts::history(
            name,
            "step",
            name,
            &[(name.clone(), points(h, 0.0))],
        ));
    }
    out
}

/// Where a run's report and charts are stored (their blobs' hashes), found on a store
/// connection; [`RunFiles::read`] reads the bytes after the connection is given back, so a slow
/// artifact store (S3) holds no connection.
struct RunFiles {
    run_id: String,
    report: Option<String>,
    charts: Vec<String>,
}

impl RunFiles {
    /// The hashes of `metrics.json` and of those of `charts` the run has, in page order.
    fn find(
        conn: &mut crate::db::DbConnection,
        run_id: &str,
        charts: &[&str],
    ) -> Result<Self, AppError> {
        let mut hash = |name: &str| match tracking::find_artifact(conn, run_id, name) {
            Ok(a) => Ok(Some(a.hash)),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
        let report = hash(training::REPORT_ARTIFACT)?;
        let mut found = Vec::new();
        for name in charts {
            if let Some(h) = hash(name)? {
                found.push(h);
            }
        }
        Ok(RunFiles {
            run_id: run_id.to_owned(),
            report,
            charts: found,
        })
    }

    /// The report and the SVG charts, read one blob at a time through the process's bounded
    /// reader.
    async fn read(
        self,
        state: &AppState,
    ) -> Result<(Option<CandidateReport>, Vec<String>), AppError> {
        let report = match self.report {
            Some(h) => Some(training::parse_report(
                &self.run_id,
                &state.read_blob(h).await?,
            )?),
            None => None,
        };
        let mut charts = Vec::with_capacity(self.charts.len());
        for h in self.charts {
            charts.push(String::from_utf8_lossy(&state.read_blob(h).await?).into_owned());
        }
        Ok((report, charts))
    }
}

const RUN_CHARTS: &[&str] = &[
    "confusion_matrix.svg",
    "roc.svg",
    "calibration.svg",
    "feature_importance.svg",
];

fn report_cards(r: &CandidateReport, configured_threshold: f64) -> Vec<Card> {
    let spread =
        |s: crate::ml::cv::Spread| format!("± {:.3} over {} folds", s.std, r.cv.folds.len());
    vec![
        Card {
            label: "CV ROC-AUC".into(),
            value: format!("{:.3}", r.cv.roc_auc.mean),
            sub: spread(r.cv.roc_auc),
        },
        Card {
            label: "CV accuracy".into(),
            value: format!("{:.3}", r.cv.accuracy.mean),
            sub: spread(r.cv.accuracy),
        },
        Card {
            label: "CV F1".into(),
            value: format!("{:.3}", r.cv.f1.mean),
            sub: spread(r.cv.f1),
        },
        Card {
            label: "Holdout ROC-AUC".into(),
            value: format!("{:.3}", r.holdout.roc_auc),
            sub: format!("{} held-out rows", r.holdout_rows.len()),
        },
        Card {
            label: "F1-optimal threshold".into(),
            value: format!("{:.3}", r.f1_optimal_threshold.0),
            sub: format!(
                "F1 {:.3} there; configured {configured_threshold}",
                r.f1_optimal_threshold.1
            ),
        },
    ]
}

pub async fn get_run(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let id = path.into_inner();
    let model = state.settings.registry.model.clone();
    let (detail, files, registered) = state
        .db
        .run(move |conn| {
            let detail = tracking::run_detail(conn, &id)?;
            let files = RunFiles::find(conn, &detail.run.id, RUN_CHARTS)?;
            // A run is registered once, under any model (an MLflow client may name another).
            let registered = registry::version_of_run(conn, &detail.run.id)?;
            Ok((detail, files, registered))
        })
        .await?;
    let (report, charts) = files.read(&state).await?;
    let registered_model = registered
        .as_ref()
        .filter(|v| v.model != model)
        .map(|v| v.model.clone());
    let registered = registered.map(|v| format!("{} v{} ({})", v.model, v.version, v.stage));
    let can_register = registered.is_none()
        && detail.run.status == tracking::FINISHED
        && detail.run.model_kind != tracking::EXTERNAL_KIND
        && is_role(&identity, Role::Admin);
    let threshold = state.settings.training.threshold;
    let page = RunPage {
        chrome: Chrome::new(&identity, "/experiments"),
        registered,
        registered_model,
        can_register,
        params: serde_json::to_string_pretty(&detail.params).unwrap_or_default(),
        duration: detail
            .run
            .duration_ms
            .map(|ms| format!("{:.2} s", ms as f64 / 1000.0))
            .unwrap_or_else(|| "still running".into()),
        started: when(&detail.run.started_at),
        cards: report
            .as_ref()
            .map(|r| report_cards(r, threshold))
            .unwrap_or_default(),
        slices: report
            .as_ref()
            .map(|r| slice_tables(&r.slices))
            .unwrap_or_default(),
        grid: report
            .as_ref()
            .map(|r| {
                r.grid
                    .iter()
                    .map(|g| {
                        (
                            serde_json::to_string(&g.spec).unwrap_or_default(),
                            format!("{:.3} ± {:.3}", g.roc_auc.mean, g.roc_auc.std),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        charts,
        histories: history_charts(&detail),
        metrics: detail
            .metrics
            .iter()
            .map(|(name, v)| (name.clone(), fmt_metric(name, *v)))
            .collect(),
        detail,
    };
    Ok(html(page.render()?))
}

/// "Register" on a finished run's page: the next version of the registered model, in stage
/// None; the browser then goes to the Models page to promote it. A run trained on data whose
/// validation failed first shows the failures and asks again.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegisterForm {
    #[serde(default)]
    force: String,
}

#[derive(Template)]
#[template(path = "register_confirm.html")]
struct RegisterConfirm {
    run_id: String,
    data: String,
    failures: Vec<String>,
}

pub async fn post_register(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
    form: web::Form<RegisterForm>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let id = path.into_inner();
    let force = form.into_inner().force == "true";
    let (model, actor) = (state.settings.registry.model.clone(), identity.actor());
    let outcome = state
        .db
        .run(move |conn| {
            let run = tracking::find_run(conn, &id)?;
            let gate = training::ValidationGate::of(conn, &run.dataset, run.dataset_version)?;
            let warnings = gate.warnings(&run.dataset, run.dataset_version);
            if !force && !warnings.is_empty() {
                return Ok(Err(RegisterConfirm {
                    data: format!("{} v{}", run.dataset, run.dataset_version),
                    run_id: run.id,
                    failures: warnings,
                }));
            }
            registry::register(conn, &model, &run, &actor).map(Ok)
        })
        .await?;
    match outcome {
        Ok(_) => Ok(HttpResponse::Ok()
            .insert_header(("HX-Redirect", "/models"))
            .finish()),
        Err(confirm) => Ok(html(confirm.render()?)),
    }
}

#[derive(Template)]
#[template(path = "run_compare.html")]
struct ComparePage {
    chrome: Chrome,
    a: RunDetail,
    b: RunDetail,
    params: Vec<(String, String, String, bool)>,
    metrics: Vec<(String, String, String, String)>,
    roc: String,
}

#[derive(Deserialize)]
pub struct CompareQuery {
    a: String,
    b: String,
}

pub async fn get_compare(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<CompareQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let q = query.into_inner();
    let (c, fa, fb) = state
        .db
        .run(move |conn| {
            let c = tracking::compare(conn, &q.a, &q.b)?;
            let fa = RunFiles::find(conn, &c.a.run.id, &[])?;
            let fb = RunFiles::find(conn, &c.b.run.id, &[])?;
            Ok((c, fa, fb))
        })
        .await?;
    let (ra, _) = fa.read(&state).await?;
    let (rb, _) = fb.read(&state).await?;
    let mut curves = Vec::new();
    for (run, report) in [(&c.a.run, &ra), (&c.b.run, &rb)] {
        if let Some(r) = report {
            curves.push((
                format!("{} {}", run.short_id(), run.model_kind),
                r.roc.as_slice(),
            ));
        }
    }
    let roc = if curves.is_empty() {
        String::new()
    } else {
        charts::roc(&curves)
    };
    let show = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "–".into(),
    };
    // Figures learned from different data are shown, not subtracted.
    let same_data = c.a.run.dataset == c.b.run.dataset
        && c.a.run.dataset_version == c.b.run.dataset_version
        && c.a.run.dataset_hash == c.b.run.dataset_hash;
    let page = ComparePage {
        chrome: Chrome::new(&identity, "/experiments"),
        params: c
            .params
            .iter()
            .map(|p| (p.name.clone(), show(&p.a), show(&p.b), p.a != p.b))
            .collect(),
        metrics: c
            .metrics
            .iter()
            .filter(|m| !tracking::is_series(&m.name))
            .map(|m| {
                let delta = if same_data {
                    fmt_delta(&m.name, m.delta())
                } else {
                    String::new()
                };
                let shown = |v: Option<f64>| {
                    v.map(|v| fmt_metric(&m.name, v))
                        .unwrap_or_else(|| "–".into())
                };
                (m.name.clone(), shown(m.a), shown(m.b), delta)
            })
            .collect(),
        roc,
        a: c.a,
        b: c.b,
    };
    Ok(html(page.render()?))
}

/// A promotion past the data gate, shown for a second, deliberate click.
pub struct GateConfirm {
    pub version: i32,
    pub dataset: String,
    pub failures: Vec<String>,
    /// The reason given with the first click, carried to the second (asked again only when
    /// none was given).
    pub reason: String,
    /// `reason` as JSON for the button's hx-vals.
    pub vals: String,
}

#[derive(Template)]
#[template(path = "models_partial.html")]
struct ModelsPartial {
    detail: ModelDetail,
    can_approve: bool,
    /// Every registered model (the page shows one; MLflow's client may register others).
    models: Vec<String>,
    /// The page shows the model Steward serves (`registry.model`): its stage actions apply.
    served: bool,
    /// MLflow's aliases of its versions (`champion` is the Production one).
    aliases: Vec<(String, i32)>,
    /// Where "Roll back" goes, and how the button asks.
    rollback_to: Option<RollbackOffer>,
    confirm: Option<GateConfirm>,
    notice: Option<String>,
}

/// The "Roll back" button: its target, and its one question, which names the target with its
/// figures (and its data's failed validation, when the rollback must be forced) and asks why.
struct RollbackOffer {
    version: i32,
    prompt: String,
    /// The target's data failed validation: the button forces, and the reason is required.
    force: bool,
}

#[derive(Template)]
#[template(path = "models.html")]
struct ModelsPage {
    chrome: Chrome,
    partial: ModelsPartial,
}

/// A version as a confirmation names it: kind, key figures and its data.
fn describe(v: &registry::ModelVersion) -> String {
    let m = v.metrics();
    format!(
        "{}, CV ROC-AUC {}, holdout ROC-AUC {}, trained on {} v{}",
        v.model_kind,
        fmt(m.get("cv_roc_auc_mean").copied()),
        fmt(m.get("holdout_roc_auc").copied()),
        v.dataset,
        v.dataset_version
    )
}

async fn models_partial(
    state: &AppState,
    model: Option<String>,
    can_approve: bool,
    confirm: Option<GateConfirm>,
    notice: Option<String>,
) -> Result<ModelsPartial, AppError> {
    let configured = state.settings.registry.model.clone();
    let name = model.unwrap_or_else(|| configured.clone());
    let served = name == configured;
    // The stage actions and rollback act on the served model only.
    let can_approve = can_approve && served;
    let (detail, rollback_to, models, aliases) = state
        .db
        .run(move |conn| {
            let models: Vec<String> = registry::list_models(conn)?
                .into_iter()
                .map(|m| m.name)
                .collect();
            if !served && !models.contains(&name) {
                return Err(AppError::NotFound(format!(
                    "no registered model `{}`",
                    crate::error::bounded(&name, 64)
                )));
            }
            let detail = registry::model_detail(conn, &name)?;
            let aliases = if models.contains(&name) {
                registry::external::aliases(conn, &name)?
            } else {
                Vec::new()
            };
            let rollback_to = match registry::rollback_target(conn, &name)? {
                Some((current, target)) => {
                    let failures = registry::data_failures(conn, &target)?;
                    let asked = format!(
                        "Roll back Production from v{} to v{} ({})?",
                        current.version,
                        target.version,
                        describe(&target)
                    );
                    let prompt = if failures.is_empty() {
                        format!("{asked} Why? (kept in the audit log)")
                    } else {
                        format!(
                            "{asked} Its data failed validation: {}. Why roll back to it anyway? \
                             (required, audited with the failures)",
                            failures.join(", ")
                        )
                    };
                    Some(RollbackOffer {
                        version: target.version,
                        prompt,
                        force: !failures.is_empty(),
                    })
                }
                None => None,
            };
            Ok((detail, rollback_to, models, aliases))
        })
        .await?;
    Ok(ModelsPartial {
        detail,
        can_approve,
        models,
        served,
        aliases,
        rollback_to,
        confirm,
        notice,
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelQuery {
    /// A registered model other than the served one (one an MLflow client registered).
    #[serde(default)]
    model: Option<String>,
}

pub async fn get_models(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
    query: web::Query<ModelQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let model = query.into_inner().model.filter(|m| !m.is_empty());
    let partial = models_partial(
        &state,
        model,
        is_role(&identity, Role::Approver),
        None,
        None,
    )
    .await?;
    page_or_partial(hx, partial, |partial| {
        ModelsPage {
            chrome: Chrome::new(&identity, "/models"),
            partial,
        }
        .render()
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageForm {
    stage: String,
    #[serde(default)]
    reason: String,
    /// "true" after the person saw the data gate's failures and confirmed.
    #[serde(default)]
    force: String,
}

/// htmx sends the answer to `hx-prompt` in this header: UTF-8, or (what a browser sends for
/// characters past ASCII in a header) Latin-1.
fn prompt(req: &HttpRequest) -> String {
    let bytes = req
        .headers()
        .get("HX-Prompt")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    match std::str::from_utf8(bytes) {
        Ok(text) => text.trim().to_owned(),
        Err(_) => bytes
            .iter()
            .map(|b| char::from(*b))
            .collect::<String>()
            .trim()
            .to_owned(),
    }
}

/// A stage change. Promoting a version trained on data whose validation failed first shows
/// the failures and asks again; the second click forces it, with a reason (audited).
pub async fn post_stage(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<i32>,
    form: web::Form<StageForm>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Approver)?;
    let version = path.into_inner();
    let form = form.into_inner();
    let stage: Stage = form
        .stage
        .parse()
        .map_err(|e: String| AppError::validation("stage", e))?;
    let reason = if form.reason.is_empty() {
        prompt(&req)
    } else {
        form.reason
    };
    let force = form.force == "true";
    let model = state.settings.registry.model.clone();
    if stage == Stage::Production && !force {
        let name = model.clone();
        let gate = state
            .db
            .run(move |conn| {
                let v = registry::find_version(conn, &name, version)?;
                let failures = registry::data_failures(conn, &v)?;
                Ok((format!("{} v{}", v.dataset, v.dataset_version), failures))
            })
            .await?;
        if !gate.1.is_empty() {
            let vals = serde_json::json!({
                "stage": "Production",
                "force": "true",
                "reason": reason,
            })
            .to_string();
            let confirm = GateConfirm {
                version,
                dataset: gate.0,
                failures: gate.1,
                reason: reason.clone(),
                vals,
            };
            return Ok(html(
                models_partial(&state, None, true, Some(confirm), None)
                    .await?
                    .render()?,
            ));
        }
    }
    let actor = identity.actor();
    let (serving, blobs) = (state.serving.clone(), state.blobs.clone());
    let out = state
        .db
        .run(move |conn| {
            let change = registry::Change {
                actor: &actor,
                reason: &reason,
                force,
            };
            serving.transition(conn, blobs.as_ref(), &model, version, stage, change)
        })
        .await?;
    let archived = out
        .archived
        .map(|a| format!(" v{a} archived."))
        .unwrap_or_default();
    let notice = format!("v{version} moved to {stage}.{archived}");
    Ok(html(
        models_partial(&state, None, true, None, Some(notice))
            .await?
            .render()?,
    ))
}

/// "Roll back": to the version the button named (the form carries it, so a rollback made
/// meanwhile by someone else is not followed by a second, unseen one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackForm {
    to: Option<i32>,
    /// "true" when the button named the target's failed validation and asked for a reason.
    #[serde(default)]
    force: String,
}

pub async fn post_rollback(
    state: web::Data<AppState>,
    identity: Identity,
    form: web::Form<RollbackForm>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Approver)?;
    let reason = prompt(&req);
    let form = form.into_inner();
    let (to, force) = (form.to, form.force == "true");
    let (model, actor) = (state.settings.registry.model.clone(), identity.actor());
    let (serving, blobs) = (state.serving.clone(), state.blobs.clone());
    let out = state
        .db
        .run(move |conn| {
            let change = registry::Change {
                actor: &actor,
                reason: &reason,
                force,
            };
            serving.rollback(conn, blobs.as_ref(), &model, to, change)
        })
        .await?;
    let notice = format!(
        "Rolled back from v{} to v{}: {}.",
        out.archived
            .map(|a| a.to_string())
            .unwrap_or_else(|| "–".into()),
        out.version.version,
        describe(&out.version)
    );
    Ok(html(
        models_partial(&state, None, true, None, Some(notice))
            .await?
            .render()?,
    ))
}

#[derive(Template)]
#[template(path = "performance.html")]
struct PerformancePage {
    chrome: Chrome,
    model: String,
    /// (version, stage, model kind, dataset, run id, short run id)
    version: Option<(i32, String, String, String, String, String)>,
    compared_with: String,
    /// Why the figures are not compared: the two versions learned from different data.
    data_differs: Option<String>,
    cards: Vec<Card>,
    charts: Vec<String>,
    slices: Vec<SliceTable>,
    versions: Vec<(i32, String)>,
}

/// A dataset version as comparisons name it: name, version and the start of its hash.
fn data_of(dataset: &str, version: i32, hash: &str) -> String {
    if dataset.is_empty() {
        // A run an MLflow client logged: its data is its own.
        return "— (MLflow client)".to_owned();
    }
    format!(
        "{dataset} v{version} ({})",
        hash.chars().take(12).collect::<String>()
    )
}

#[derive(Deserialize)]
pub struct PerformanceQuery {
    version: Option<i32>,
}

/// Metric cards: (metric, label), each with its change against the previous production version.
const PERFORMANCE_CARDS: &[(&str, &str)] = &[
    ("cv_roc_auc_mean", "CV ROC-AUC"),
    ("cv_accuracy_mean", "CV accuracy"),
    ("cv_f1_mean", "CV F1"),
    ("holdout_roc_auc", "Holdout ROC-AUC"),
    ("holdout_accuracy", "Holdout accuracy"),
    ("cv_brier_mean", "CV Brier (lower is better)"),
];

pub async fn get_performance(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<PerformanceQuery>,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let wanted = query.into_inner().version;
    let model = state.settings.registry.model.clone();
    let name = model.clone();
    let loaded = state
        .db
        .run(move |conn| {
            let all = registry::list_versions(conn, &name)?;
            let chosen = match wanted {
                Some(v) => Some(registry::find_version(conn, &name, v)?),
                None => registry::production(conn, &name)?,
            };
            let Some(v) = chosen else {
                return Ok((all, None));
            };
            let previous = registry::previous_production(conn, &name, v.version)?
                .map(|p| registry::find_version(conn, &name, p))
                .transpose()?;
            let files = RunFiles::find(
                conn,
                &v.run_id,
                &["confusion_matrix.svg", "roc.svg", "feature_importance.svg"],
            )?;
            Ok((all, Some((v, previous, files))))
        })
        .await?;
    let (all, found) = loaded;
    let found = match found {
        Some((v, previous, files)) => {
            let (report, charts) = files.read(&state).await?;
            Some((v, previous, report, charts))
        }
        None => None,
    };
    let versions = all
        .iter()
        .map(|v| {
            (
                v.version,
                format!("v{} ({}, {})", v.version, v.stage, v.model_kind),
            )
        })
        .collect();
    let mut page = PerformancePage {
        chrome: Chrome::new(&identity, "/performance"),
        model,
        version: None,
        compared_with: String::new(),
        data_differs: None,
        cards: Vec::new(),
        charts: Vec::new(),
        slices: Vec::new(),
        versions,
    };
    if let Some((v, previous, report, charts)) = found {
        let now = v.metrics();
        let before = previous.as_ref().map(|p| p.metrics());
        page.compared_with = previous
            .as_ref()
            .map(|p| format!("v{} ({})", p.version, p.model_kind))
            .unwrap_or_default();
        // Figures on different data are not compared: the change would mix the model's with
        // the data's.
        let same_data = previous
            .as_ref()
            .is_none_or(|p| p.dataset == v.dataset && p.dataset_hash == v.dataset_hash);
        if let (Some(p), false) = (&previous, same_data) {
            page.data_differs = Some(format!(
                "v{} learned from {}, v{} from {}: their figures are not compared.",
                v.version,
                data_of(&v.dataset, v.dataset_version, &v.dataset_hash),
                p.version,
                data_of(&p.dataset, p.dataset_version, &p.dataset_hash)
            ));
        }
        let here = data_of(&v.dataset, v.dataset_version, &v.dataset_hash);
        page.cards = PERFORMANCE_CARDS
            .iter()
            .map(|(k, label)| {
                let value = now.get(*k).copied();
                let delta = value.zip(before.as_ref().and_then(|b| b.get(*k).copied()));
                let sub = match (delta, same_data) {
                    (Some((a, b)), true) => {
                        format!(
                            "{} vs {} on {here}",
                            fmt_delta(k, Some(a - b)),
                            page.compared_with
                        )
                    }
                    (Some(_), false) => format!("on {here}; not compared (different data)"),
                    (None, _) => format!("on {here}; no previous production version"),
                };
                Card {
                    label: (*label).to_owned(),
                    value: fmt(value),
                    sub,
                }
            })
            .collect();
        page.slices = report
            .as_ref()
            .map(|r| slice_tables(&r.slices))
            .unwrap_or_default();
        page.charts = charts;
        page.version = Some((
            v.version,
            v.stage,
            v.model_kind,
            format!("{} v{}", v.dataset, v.dataset_version),
            v.run_id.clone(),
            v.run_id.chars().take(8).collect(),
        ));
    }
    Ok(html(page.render()?))
}
