//! The drift report: a check (or a `drift compare`) as one HTML file, laid out for print
//! (sections do not break across pages). Its size is bounded by the schema (features × bins),
//! not by the window: histograms hold shares, never rows.

use askama::Template;

use super::document::{Document, Section};
use crate::monitoring::check::CheckReport;
use crate::monitoring::drift::{DriftReport, FeatureDrift, Histogram};

/// One feature's row, formatted.
pub struct FeatureRow {
    pub feature: String,
    pub kind: String,
    pub n_unique: String,
    pub stattest: String,
    pub score: String,
    pub threshold: String,
    pub drifted: bool,
    pub effect_size: String,
    pub psi: String,
    pub missing: String,
    pub skipped: String,
}

#[derive(Template)]
#[template(path = "reports/drift.html")]
pub struct DriftReportPage {
    pub title: String,
    pub facts: Vec<(String, String)>,
    pub verdict: String,
    pub dataset_drift: bool,
    pub features: Vec<FeatureRow>,
    pub other_drift: Vec<FeatureRow>,
    pub quality_failures: Vec<String>,
    pub quality: Vec<QualityRow>,
    pub performance: Vec<(String, String, String, String)>,
    pub alerts: Vec<(String, String, String)>,
    pub charts: Vec<String>,
    pub generated: String,
}

pub fn fmt(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(v) if !v.is_finite() => format!("{v}"),
        Some(v) if v != 0.0 && v.abs() < 1e-3 => format!("{v:.2e}"),
        Some(v) => format!("{v:.4}"),
    }
}

pub fn feature_row(f: &FeatureDrift) -> FeatureRow {
    FeatureRow {
        feature: f.feature.clone(),
        kind: f.kind.clone(),
        n_unique: f.n_unique.to_string(),
        stattest: f
            .stattest
            .map(|t| t.as_str().to_owned())
            .unwrap_or_default(),
        score: fmt(f.score),
        threshold: fmt(f.threshold),
        drifted: f.drifted,
        effect_size: fmt(f.effect_size),
        psi: fmt(f.psi),
        missing: format!("{} / {}", f.missing_reference, f.missing_current),
        skipped: f.skipped.clone().unwrap_or_default(),
    }
}

fn drift_parts(d: &DriftReport, facts: &mut Vec<(String, String)>) -> (String, Vec<FeatureRow>) {
    facts.push(("Reference rows".into(), d.reference_rows.to_string()));
    facts.push(("Current rows".into(), d.current_rows.to_string()));
    facts.push((
        "Drifted features".into(),
        format!(
            "{} of {} (share {:.3})",
            d.drifted_features, d.tested_features, d.drift_share
        ),
    ));
    let verdict = if d.dataset_drift {
        format!(
            "Dataset drift: {:.0}% of the features drifted",
            d.drift_share * 100.0
        )
    } else {
        format!(
            "No dataset drift: {:.0}% of the features drifted",
            d.drift_share * 100.0
        )
    };
    (verdict, d.features.iter().map(feature_row).collect())
}

fn charts(histograms: &[Histogram]) -> Vec<String> {
    histograms
        .iter()
        .map(|h| {
            crate::charts::histogram(
                &format!(
                    "{}: reference against current (shares of non-missing values)",
                    h.feature
                ),
                &h.labels,
                &h.reference,
                &h.current,
            )
        })
        .collect()
}

/// Prediction and target drift, as feature rows.
pub fn other_drift_rows(r: &CheckReport) -> Vec<FeatureRow> {
    [r.prediction_drift.as_ref(), r.target_drift.as_ref()]
        .into_iter()
        .flatten()
        .map(feature_row)
        .collect()
}

/// Data quality: the failures, and per feature (name, missing %, outside the schema, outside
/// the reference, examples or "constant").
pub type QualityRow = (String, String, String, String, String);

pub fn quality_rows(r: &CheckReport) -> (Vec<String>, Vec<QualityRow>) {
    r.data_quality
        .as_ref()
        .map(|q| {
            (
                q.failures.clone(),
                q.features
                    .iter()
                    .map(|f| {
                        (
                            f.feature.clone(),
                            format!("{:.1}%", f.missing_ratio * 100.0),
                            f.outside_schema.to_string(),
                            f.outside_reference.to_string(),
                            if f.constant {
                                "constant".to_owned()
                            } else {
                                f.examples.join(", ")
                            },
                        )
                    })
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// Per metric: (name, live, estimated — the accuracy with its 95% band —, holdout).
pub fn performance_rows(r: &CheckReport) -> Vec<(String, String, String, String)> {
    let Some(p) = &r.performance else {
        return Vec::new();
    };
    let holdout = |k: &str| fmt(p.holdout.get(k).copied());
    let live = p.live.as_ref();
    let est = p.estimated.as_ref();
    vec![
        (
            "accuracy".into(),
            fmt(live.map(|l| l.accuracy)),
            est.map_or("–".into(), |e| {
                format!(
                    "{} ({}–{})",
                    fmt(Some(e.accuracy)),
                    fmt(Some(e.accuracy_band[0])),
                    fmt(Some(e.accuracy_band[1]))
                )
            }),
            holdout("holdout_accuracy"),
        ),
        (
            "F1".into(),
            fmt(live.map(|l| l.f1)),
            fmt(est.map(|e| e.f1)),
            holdout("holdout_f1"),
        ),
        (
            "ROC-AUC".into(),
            fmt(live.and_then(|l| l.roc_auc)),
            fmt(est.and_then(|e| e.roc_auc)),
            holdout("holdout_roc_auc"),
        ),
    ]
}

/// Per alert: (type, severity, summary).
pub fn alert_rows(r: &CheckReport) -> Vec<(String, String, String)> {
    r.alerts
        .iter()
        .map(|a| {
            (
                a.alert_type.as_str().to_owned(),
                format!("{:?}", a.severity).to_lowercase(),
                a.summary.clone(),
            )
        })
        .collect()
}

/// The report of a stored check, as a self-contained HTML file.
pub fn check_report(r: &CheckReport) -> String {
    check_document(r).html().unwrap_or_default()
}

/// The report of a stored check as a document (HTML and PDF from the same content): the facts,
/// the verdict, the features' tests, prediction and target drift, data quality, performance,
/// the alerts raised and each feature's distributions.
pub fn check_document(r: &CheckReport) -> Document {
    document_of(check_page(r))
}

fn document_of(p: DriftReportPage) -> Document {
    let mut sections = vec![
        Section::new("Summary")
            .note(
                "Evidently's statistics (its default test per feature, or the one configured); \
                 scores are p-values for ks, chisquare and z, distances for wasserstein, \
                 jensenshannon and psi. Effect size: normalised Wasserstein (numeric) or \
                 Jensen–Shannon distance (categorical).",
            )
            .facts(p.facts)
            .verdict(p.verdict, p.dataset_drift),
    ];
    let drift_row = |f: &FeatureRow, with_kind: bool| {
        let mut row = vec![f.feature.clone()];
        if with_kind {
            row.push(f.kind.clone());
            row.push(f.n_unique.clone());
        }
        if f.skipped.is_empty() {
            row.extend([
                f.stattest.clone(),
                f.score.clone(),
                f.threshold.clone(),
                if f.drifted {
                    "drifted".into()
                } else {
                    "–".into()
                },
                f.effect_size.clone(),
                f.psi.clone(),
            ]);
        } else {
            row.extend([
                format!("skipped: {}", f.skipped),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        if with_kind {
            row.push(f.missing.clone());
        }
        row
    };
    if !p.features.is_empty() {
        sections.push(Section::new("Features").table(
            &[
                "feature",
                "kind",
                "unique",
                "stattest",
                "score",
                "threshold",
                "drift",
                "effect size",
                "PSI",
                "missing (ref / cur)",
            ],
            &[
                false, false, true, false, true, true, false, true, true, true,
            ],
            p.features.iter().map(|f| drift_row(f, true)).collect(),
            "no features",
        ));
    }
    if !p.other_drift.is_empty() {
        sections.push(Section::new("Prediction and target drift").table(
            &[
                "what",
                "stattest",
                "score",
                "threshold",
                "drift",
                "effect size",
                "PSI",
            ],
            &[false, false, true, true, false, true, true],
            p.other_drift.iter().map(|f| drift_row(f, false)).collect(),
            "none",
        ));
    }
    if !p.quality.is_empty() {
        let mut q = Section::new("Data quality");
        if p.quality_failures.is_empty() {
            q = q.text("No data-quality failure.");
        }
        for f in &p.quality_failures {
            q = q.verdict(f.clone(), true);
        }
        sections.push(
            q.table(
                &[
                    "feature",
                    "missing",
                    "outside the schema",
                    "outside the reference",
                    "examples",
                ],
                &[false, true, true, true, false],
                p.quality
                    .into_iter()
                    .map(|(a, b, c, d, e)| vec![a, b, c, d, e])
                    .collect(),
                "none",
            ),
        );
    }
    if !p.performance.is_empty() {
        sections.push(
            Section::new("Performance").table(
                &[
                    "metric",
                    "live (labelled rows)",
                    "estimated (95% band)",
                    "holdout at registration",
                ],
                &[false, true, true, true],
                p.performance
                    .into_iter()
                    .map(|(a, b, c, d)| vec![a, b, c, d])
                    .collect(),
                "none",
            ),
        );
    }
    if !p.alerts.is_empty() {
        sections.push(
            Section::new("Alerts").table(
                &["type", "severity", "summary"],
                &[false, false, false],
                p.alerts
                    .into_iter()
                    .map(|(a, b, c)| vec![a, b, c])
                    .collect(),
                "none",
            ),
        );
    }
    if !p.charts.is_empty() {
        let mut charts = Section::new("Distributions");
        for c in p.charts {
            charts = charts.chart(c);
        }
        sections.push(charts);
    }
    Document {
        kind: "drift",
        title: p.title,
        subtitle: p.generated,
        sections,
        generated: format!("{} UTC", chrono::Utc::now().format("%Y-%m-%d %H:%M")),
    }
}

fn check_page(r: &CheckReport) -> DriftReportPage {
    let mut facts = vec![
        ("Model".into(), format!("{} v{}", r.model, r.version)),
        ("Check".into(), r.id.clone()),
        (
            "When (UTC)".into(),
            r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
        ),
        ("Trigger".into(), format!("{} by {}", r.trigger, r.actor)),
        ("Status".into(), r.status.clone()),
        (
            "Window".into(),
            format!(
                "{} rows ({} labelled), at most {}{}",
                r.window.rows,
                r.window.labelled_rows,
                r.window.max_rows,
                if r.window.hours > 0 {
                    format!(" of the last {} h", r.window.hours)
                } else {
                    String::new()
                }
            ),
        ),
    ];
    if let Some(reference) = &r.reference {
        facts.push((
            "Reference".into(),
            format!(
                "{} v{} ({} rows: the dataset version the model was trained on, its holdout included)",
                reference.dataset, reference.dataset_version, reference.rows
            ),
        ));
    }
    if let (Some(s), Some(e)) = (r.window.start, r.window.end) {
        facts.push((
            "Window span (UTC)".into(),
            format!(
                "{} to {}",
                s.format("%Y-%m-%d %H:%M:%S"),
                e.format("%Y-%m-%d %H:%M:%S")
            ),
        ));
    }
    let (verdict, features, dataset_drift) = match &r.drift {
        Some(d) => {
            let (v, f) = drift_parts(d, &mut facts);
            (v, f, d.dataset_drift)
        }
        None => (
            format!("Skipped: {}", r.reason.clone().unwrap_or_default()),
            Vec::new(),
            false,
        ),
    };
    let other_drift = other_drift_rows(r);
    let (quality_failures, quality) = quality_rows(r);
    let performance = performance_rows(r);
    DriftReportPage {
        title: format!("Drift report: {} v{}", r.model, r.version),
        facts,
        verdict,
        dataset_drift,
        features,
        other_drift,
        quality_failures,
        quality,
        performance,
        alerts: alert_rows(r),
        charts: charts(&r.histograms),
        generated: format!("Steward {}", env!("CARGO_PKG_VERSION")),
    }
}

/// The report of an ad-hoc comparison of two files.
pub fn compare_report(
    reference: &str,
    current: &str,
    d: &DriftReport,
    histograms: &[Histogram],
) -> String {
    let mut facts = vec![
        ("Reference".into(), reference.to_owned()),
        ("Current".into(), current.to_owned()),
    ];
    let (verdict, features) = drift_parts(d, &mut facts);
    DriftReportPage {
        title: "Drift comparison".into(),
        facts,
        verdict,
        dataset_drift: d.dataset_drift,
        features,
        other_drift: Vec::new(),
        quality_failures: Vec::new(),
        quality: Vec::new(),
        performance: Vec::new(),
        alerts: Vec::new(),
        charts: charts(histograms),
        generated: format!("Steward {}", env!("CARGO_PKG_VERSION")),
    }
    .render()
    .unwrap_or_default()
}
