//! The model card of one registered version (after Mitchell et al., "Model Cards for Model
//! Reporting", 2019): what it learned from and whether that data passed its expectations, how it
//! was trained, its metrics with their cross-validation spread, per-slice metrics, calibration,
//! feature importance, its stage history, and its latest live and estimated performance from
//! monitoring. Reads the store and the run's artifacts; blocking.

use diesel::prelude::*;

use super::document::{Document, Section};
use crate::data::blob::BlobStore;
use crate::db::DbConnection;
use crate::db::schema::drift_checks;
use crate::error::AppError;
use crate::{charts, registry, tracking, training};

fn f3(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.3}")
    } else {
        "–".into()
    }
}

/// The newest completed monitoring check of this version: (when, window rows, labelled rows,
/// live accuracy, estimated accuracy, drift share).
type Latest = (
    chrono::NaiveDateTime,
    i64,
    i64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
);

fn latest_check(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
) -> Result<Option<Latest>, AppError> {
    Ok(drift_checks::table
        .filter(drift_checks::model.eq(model))
        .filter(drift_checks::version.eq(version))
        .filter(drift_checks::status.eq("completed"))
        .order(drift_checks::id.desc())
        .select((
            drift_checks::created_at,
            drift_checks::window_rows,
            drift_checks::labelled_rows,
            drift_checks::accuracy_live,
            drift_checks::accuracy_estimated,
            drift_checks::drift_share,
        ))
        .first(conn)
        .optional()?)
}

/// A version's stage transitions, oldest first (at most the newest 500).
fn version_transitions(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
) -> Result<Vec<registry::StageTransition>, AppError> {
    use crate::db::schema::stage_transitions as t;
    let mut rows: Vec<registry::StageTransition> = t::table
        .filter(t::model.eq(model))
        .filter(t::version.eq(version))
        .order(t::seq.desc())
        .limit(500)
        .select(registry::StageTransition::as_select())
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// The card of `model` version `version`. Errors: NotFound when there is no such version.
pub fn build(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    model: &str,
    version: i32,
) -> Result<Document, AppError> {
    let v = registry::find_version(conn, model, version)?;
    // The run's row and params only: an MLflow client's run may carry any number of metric
    // points, which the card never reads.
    let run = tracking::find_run(conn, &v.run_id)?;
    // Steward's own report of the training; an MLflow client's run has none (its artifacts
    // are the client's, never read as Steward's).
    let report = if run.model_kind == tracking::EXTERNAL_KIND {
        None
    } else {
        training::report_of(conn, blobs, &v.run_id)?
    };
    let gate = training::ValidationGate::of(conn, &v.dataset, v.dataset_version)?;
    let history = version_transitions(conn, model, version)?;
    let latest = latest_check(conn, model, version)?;

    let mut sections = Vec::new();
    let mut overview = vec![
        ("Model".to_owned(), format!("{model} v{version}")),
        ("Stage".to_owned(), v.stage.clone()),
        ("Kind".to_owned(), v.model_kind.clone()),
        (
            "Registered".to_owned(),
            format!(
                "{} UTC by {}",
                v.created_at.format("%Y-%m-%d %H:%M"),
                v.created_by
            ),
        ),
        ("Run".to_owned(), v.run_id.clone()),
    ];
    if let Some(d) = &v.description {
        overview.push(("Description".to_owned(), crate::error::bounded(d, 500)));
    }
    sections.push(Section::new("Overview").facts(overview).note(
        "A binary classifier of the target column (1: disease present). Intended for the \
         population its data describes; the slices below show where it is weaker.",
    ));

    let validation = if !gate.validated {
        "never validated".to_owned()
    } else if gate.failed.is_empty() {
        "passed every expectation".to_owned()
    } else {
        format!("failed {}", gate.failed.join("; "))
    };
    let mut data = Section::new("Data").facts(vec![
        (
            "Dataset".into(),
            format!("{} v{}", v.dataset, v.dataset_version),
        ),
        ("Content hash".into(), v.dataset_hash.clone()),
        ("Validation".into(), crate::error::bounded(&validation, 600)),
    ]);
    if let Some(r) = &report {
        data = data.facts(vec![
            ("Rows".into(), r.rows.to_string()),
            ("Positives".into(), r.positives.to_string()),
            ("Training rows".into(), r.train_rows.to_string()),
            ("Holdout rows".into(), r.holdout_rows.len().to_string()),
        ]);
    }
    if !gate.critical.is_empty() {
        data = data.verdict(
            format!("Critical expectations failed: {}", gate.critical.join("; ")),
            true,
        );
    }
    sections.push(data);

    let params = serde_json::to_string(&run.params()).unwrap_or_default();
    let mut training_facts = vec![(
        "Parameters".to_owned(),
        crate::error::bounded(&params, 1500),
    )];
    if let Some(r) = &report {
        training_facts.push(("Imbalance".into(), format!("{:?}", r.imbalance)));
        training_facts.push(("Seed".into(), r.seed.to_string()));
        training_facts.push(("Fit".into(), format!("{:.2} s", r.fit_seconds)));
        training_facts.push((
            "F1-optimal threshold".into(),
            format!(
                "{} (F1 {} there)",
                f3(r.f1_optimal_threshold.0),
                f3(r.f1_optimal_threshold.1)
            ),
        ));
    }
    sections.push(Section::new("Training").facts(training_facts));

    match &report {
        Some(r) => {
            let cv = &r.cv;
            let h = &r.holdout;
            let row = |name: &str, s: crate::ml::cv::Spread, holdout: f64| {
                vec![name.to_owned(), f3(s.mean), f3(s.std), f3(holdout)]
            };
            let rows = vec![
                row("accuracy", cv.accuracy, h.accuracy),
                row("precision", cv.precision, h.precision),
                row("recall", cv.recall, h.recall),
                row("F1", cv.f1, h.f1),
                row("ROC-AUC", cv.roc_auc, h.roc_auc),
                row("PR-AUC", cv.pr_auc, h.pr_auc),
                row("log-loss", cv.log_loss, h.log_loss),
                row("Brier", cv.brier, h.brier),
            ];
            sections.push(
                Section::new("Metrics")
                    .note(format!(
                        "Stratified {}-fold cross-validation (mean and standard deviation over the \
                         folds) and the held-out rows, at threshold {}.",
                        cv.folds.len(),
                        h.threshold
                    ))
                    .table(
                        &["metric", "CV mean", "CV std", "holdout"],
                        &[false, true, true, true],
                        rows,
                        "no metrics",
                    )
                    .chart(charts::roc(&[(
                        "cross-validation".to_owned(),
                        r.roc.as_slice(),
                    )])),
            );
            let mut slices = Section::new("Slices");
            for s in &r.slices {
                slices = slices.table(
                    &[
                        &s.column,
                        "rows",
                        "positives",
                        "accuracy",
                        "recall",
                        "F1",
                        "ROC-AUC",
                    ],
                    &[false, true, true, true, true, true, true],
                    s.groups
                        .iter()
                        .map(|g| {
                            vec![
                                g.label.clone(),
                                g.rows.to_string(),
                                g.positives.to_string(),
                                f3(g.accuracy),
                                f3(g.recall),
                                f3(g.f1),
                                g.roc_auc.map(f3).unwrap_or_else(|| "–".into()),
                            ]
                        })
                        .collect(),
                    "no rows",
                );
            }
            if r.slices.is_empty() {
                slices = slices.note("No slices are configured (training.slices).");
            }
            sections.push(slices);
            sections.push(
                Section::new("Calibration")
                    .chart(charts::calibration("cross-validation", &r.calibration))
                    .note("Out-of-fold predicted probability against the observed rate of positives, per bin; the diagonal is perfect calibration."),
            );
            sections.push(
                Section::new("Feature importance")
                    .chart(charts::importance(&r.importance, 13))
                    .table(
                        &["feature", "importance"],
                        &[false, true],
                        {
                            let mut items: Vec<_> = r.importance.iter().collect();
                            items.sort_by(|a, b| b.importance.total_cmp(&a.importance));
                            items
                                .iter()
                                .map(|f| vec![f.feature.clone(), f3(f.importance)])
                                .collect()
                        },
                        "no importances",
                    ),
            );
        }
        None => {
            sections.push(
                Section::new("Metrics")
                    .note("This version was not trained by Steward: its metrics are the summary registered with it.")
                    .table(
                        &["metric", "value"],
                        &[false, true],
                        v.metrics()
                            .iter()
                            .take(100)
                            .map(|(k, x)| vec![k.clone(), f3(*x)])
                            .collect(),
                        "no metrics registered",
                    ),
            );
        }
    }

    sections.push(
        Section::new("Stage history").table(
            &["when (UTC)", "from", "to", "by", "reason"],
            &[false, false, false, false, false],
            history
                .iter()
                .map(|t| {
                    vec![
                        t.created_at.format("%Y-%m-%d %H:%M").to_string(),
                        t.from_stage.clone(),
                        t.to_stage.clone(),
                        t.actor.clone(),
                        crate::error::bounded(&t.reason, 200),
                    ]
                })
                .collect(),
            "Never moved between stages.",
        ),
    );

    let live = match latest {
        None => Section::new("Live performance")
            .note("No completed monitoring check of this version yet."),
        Some((at, rows, labelled, live, estimated, drift)) => {
            let holdout = report.as_ref().map(|r| r.holdout.accuracy);
            let mut facts = vec![
                (
                    "Checked".to_owned(),
                    format!("{} UTC", at.format("%Y-%m-%d %H:%M")),
                ),
                (
                    "Window".to_owned(),
                    format!("{rows} predictions, {labelled} labelled"),
                ),
                (
                    "Live accuracy".to_owned(),
                    live.map(f3).unwrap_or_else(|| "too few labels".into()),
                ),
                (
                    "Estimated accuracy".to_owned(),
                    estimated.map(f3).unwrap_or_else(|| "–".into()),
                ),
                (
                    "Drift share".to_owned(),
                    drift.map(f3).unwrap_or_else(|| "–".into()),
                ),
            ];
            if let Some(h) = holdout {
                facts.push(("Holdout accuracy".to_owned(), f3(h)));
            }
            Section::new("Live performance").facts(facts).note(
                "Live: labelled traffic (POST /feedback). Estimated: confidence-based performance \
                 estimation (NannyML's CBPE) over the whole window.",
            )
        }
    };
    sections.push(live);

    Ok(Document {
        kind: "model_card",
        title: format!("Model card: {model} v{version}"),
        subtitle: format!(
            "{} trained on {} v{}",
            v.model_kind, v.dataset, v.dataset_version
        ),
        sections,
        generated: format!("{} UTC", chrono::Utc::now().format("%Y-%m-%d %H:%M")),
    })
}
