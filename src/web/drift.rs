//! The Drift and Trends pages: the newest (or a chosen) monitoring check with its per-feature
//! table, the reference-against-current histogram of a chosen feature, data quality, live and
//! estimated performance and alerts; a button to run a check now; the checks' history as line
//! charts; and each check's self-contained HTML report.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, html};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::monitoring::check::{self, CheckReport, CheckSummary};
use crate::reports::drift::{
    FeatureRow, QualityRow, alert_rows, feature_row, fmt, other_drift_rows, performance_rows,
    quality_rows,
};
use crate::state::AppState;

/// Checks offered in the page's selector, and plotted on Trends.
const RECENT: i64 = 50;
const TREND_POINTS: i64 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    pub check: Option<String>,
    pub feature: Option<String>,
}

#[derive(Template)]
#[template(path = "drift.html")]
struct DriftPage {
    chrome: Chrome,
    body: DriftPartial,
}

#[derive(Template)]
#[template(path = "drift_partial.html")]
struct DriftPartial {
    model: String,
    can_run: bool,
    notice: Option<String>,
    checks: Vec<(String, String)>,
    selected: Option<Selected>,
}

struct Selected {
    id: String,
    title: String,
    status: String,
    reason: String,
    cards: Vec<(String, String, String)>,
    features: Vec<FeatureRow>,
    other: Vec<FeatureRow>,
    feature: String,
    chart: String,
    failures: Vec<String>,
    quality: Vec<QualityRow>,
    performance: Vec<(String, String, String, String)>,
    alerts: Vec<(String, String, String)>,
}

fn selected(report: &CheckReport, feature: Option<&str>) -> Selected {
    let drift = report.drift.as_ref();
    let mut cards = vec![(
        "Window".to_owned(),
        format!("{} rows", report.window.rows),
        format!("{} labelled", report.window.labelled_rows),
    )];
    if let Some(d) = drift {
        cards.push((
            "Drift share".into(),
            format!("{:.2}", d.drift_share),
            format!(
                "{} of {} features{}",
                d.drifted_features,
                d.tested_features,
                if d.dataset_drift {
                    ": dataset drift"
                } else {
                    ""
                }
            ),
        ));
    }
    if let Some(p) = &report.performance {
        cards.push((
            "Accuracy, live".into(),
            fmt(p.live.as_ref().map(|l| l.accuracy)),
            format!(
                "holdout {}",
                fmt(p.holdout.get("holdout_accuracy").copied())
            ),
        ));
        cards.push((
            "Accuracy, estimated".into(),
            fmt(p.estimated.as_ref().map(|e| e.accuracy)),
            p.estimated.as_ref().map_or("no rows".into(), |e| {
                format!(
                    "95% band {}–{}",
                    fmt(Some(e.accuracy_band[0])),
                    fmt(Some(e.accuracy_band[1]))
                )
            }),
        ));
    }
    let chosen = feature
        .and_then(|f| report.histograms.iter().find(|h| h.feature == f))
        .or_else(|| {
            // Default: the most drifted feature by effect size.
            let best = drift.and_then(|d| {
                d.features
                    .iter()
                    .filter(|f| f.effect_size.is_some())
                    .max_by(|a, b| {
                        a.effect_size
                            .unwrap_or(0.0)
                            .total_cmp(&b.effect_size.unwrap_or(0.0))
                    })
            })?;
            report.histograms.iter().find(|h| h.feature == best.feature)
        });
    let chart = chosen.map_or(String::new(), |h| {
        crate::charts::histogram(
            &format!(
                "{}: reference against current (shares of non-missing values)",
                h.feature
            ),
            &h.labels,
            &h.reference,
            &h.current,
        )
    });
    let (failures, quality) = quality_rows(report);
    Selected {
        id: report.id.clone(),
        title: format!(
            "Check of {} v{} at {} UTC ({} by {})",
            report.model,
            report.version,
            report.created_at.format("%Y-%m-%d %H:%M:%S"),
            report.trigger,
            report.actor
        ),
        status: report.status.clone(),
        reason: report.reason.clone().unwrap_or_default(),
        cards,
        features: drift
            .map(|d| d.features.iter().map(feature_row).collect())
            .unwrap_or_default(),
        other: other_drift_rows(report),
        feature: chosen.map(|h| h.feature.clone()).unwrap_or_default(),
        chart,
        failures,
        quality,
        performance: performance_rows(report),
        alerts: alert_rows(report),
    }
}

fn option_label(c: &CheckSummary) -> String {
    format!(
        "{} UTC · v{} · {} rows · {}{} · {}",
        c.created_at.format("%Y-%m-%d %H:%M:%S"),
        c.version,
        c.window_rows,
        c.status,
        c.drift_share
            .map_or(String::new(), |s| format!(", share {s:.2}")),
        c.trigger_kind
    )
}

async fn partial(
    state: &AppState,
    identity: &Identity,
    check_id: Option<String>,
    feature: Option<String>,
    notice: Option<String>,
) -> Result<DriftPartial, AppError> {
    if let Some(id) = &check_id {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(AppError::NotFound("no such drift check".into()));
        }
    }
    let (checks, report) = state
        .db
        .run(move |conn| {
            let checks = check::list(conn, RECENT)?;
            let id = check_id.or_else(|| checks.first().map(|c| c.id.clone()));
            let report = id.map(|id| check::get(conn, &id)).transpose()?;
            Ok((checks, report))
        })
        .await?;
    let report: Option<CheckReport> = report.map(check::parse_stored).transpose()?;
    Ok(DriftPartial {
        model: state.settings.registry.model.clone(),
        can_run: identity.has(Role::Approver),
        notice,
        checks: checks
            .iter()
            .map(|c| (c.id.clone(), option_label(c)))
            .collect(),
        selected: report.as_ref().map(|r| selected(r, feature.as_deref())),
    })
}

pub async fn get_drift(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<DriftQuery>,
) -> Result<HttpResponse, AppError> {
    // Example values of patients' features: a viewer at least, even with public reads.
    identity.require(Role::Viewer)?;
    let DriftQuery { check, feature } = query.into_inner();
    let body = partial(&state, &identity, check, feature, None).await?;
    Ok(html(
        DriftPage {
            chrome: Chrome::new(&identity, "/drift"),
            body,
        }
        .render()?,
    ))
}

/// Runs a check now and answers the page's body with it.
pub async fn post_run(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Approver)?;
    let report = state
        .run_drift_check("manual", format!("user:{}", user.username))
        .await?;
    let notice = format!(
        "Check {}: {}{}.",
        report.status,
        report
            .drift
            .as_ref()
            .map_or(report.reason.clone().unwrap_or_default(), |d| format!(
                "drift share {:.2}",
                d.drift_share
            )),
        if report.alerts.is_empty() {
            String::new()
        } else {
            format!(", {} alert(s)", report.alerts.len())
        }
    );
    let url = format!("/drift?check={}", report.id);
    let mut response = html(
        partial(&state, &identity, Some(report.id), None, Some(notice))
            .await?
            .render()?,
    );
    // The address bar names the check shown, so a reload shows it again.
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&url) {
        response.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("hx-push-url"),
            value,
        );
    }
    Ok(response)
}

/// A check's self-contained HTML report (its own strict policy: inline style, no script).
pub async fn get_report(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Viewer)?;
    let id = path.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(AppError::NotFound("no such drift check".into()));
    }
    let value = state.db.run(move |conn| check::get(conn, &id)).await?;
    let report: CheckReport = check::parse_stored(value)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_SECURITY_POLICY,
            crate::http::headers::REPORT_CONTENT_SECURITY_POLICY,
        ))
        .body(crate::reports::drift::check_report(&report)))
}

#[derive(Template)]
#[template(path = "trends.html")]
struct TrendsPage {
    chrome: Chrome,
    checks: usize,
    charts: Vec<String>,
}

/// The history of the stored checks as line charts, oldest to newest.
pub async fn get_trends(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let mut checks = state.db.run(|conn| check::list(conn, TREND_POINTS)).await?;
    checks.retain(|c| c.status == "completed");
    checks.reverse();
    let series = |f: &dyn Fn(&CheckSummary) -> Option<f64>| -> Vec<(f64, f64)> {
        checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some(((i + 1) as f64, f(c)?)))
            .filter(|(_, v)| v.is_finite())
            .collect()
    };
    let mut charts = Vec::new();
    if !checks.is_empty() {
        let n = checks.len().max(2) as f64;
        let flat = |v: f64| -> Vec<(f64, f64)> { vec![(1.0, v), (n, v)] };
        let share = state.settings.monitoring.drift_share;
        charts.push(crate::charts::trend_unit(
            "Drift share",
            "share of features drifted",
            &[
                ("drift share".into(), series(&|c| c.drift_share)),
                (format!("dataset drift at {share}"), flat(share)),
            ],
        ));
        let model = state.settings.registry.model.clone();
        let holdout = state
            .db
            .run(move |conn| {
                Ok(crate::registry::production(conn, &model)?
                    .and_then(|v| v.metrics().get("holdout_accuracy").copied()))
            })
            .await?;
        let mut lines = vec![
            (
                "live (labelled rows)".to_owned(),
                series(&|c| c.accuracy_live),
            ),
            (
                "estimated (no labels)".to_owned(),
                series(&|c| c.accuracy_estimated),
            ),
        ];
        if let Some(h) = holdout {
            lines.push(("Production's holdout".to_owned(), flat(h)));
        }
        charts.push(crate::charts::trend_unit("Accuracy", "accuracy", &lines));
        charts.push(crate::charts::trend(
            "Request volume",
            "predictions per hour in the window",
            &[(
                "per hour".into(),
                series(&|c| {
                    let (s, e) = (c.window_start?, c.window_end?);
                    let hours = (e - s).num_milliseconds() as f64 / 3_600_000.0;
                    (hours > 0.0).then(|| c.window_rows as f64 / hours)
                }),
            )],
        ));
        charts.push(crate::charts::trend(
            "p99 latency",
            "milliseconds",
            &[("p99 of the window".into(), series(&|c| c.p99_latency_ms))],
        ));
        charts.push(crate::charts::trend_unit(
            "Missing values",
            "share missing, mean over features",
            &[("missing".into(), series(&|c| c.missing_ratio))],
        ));
    }
    Ok(html(
        TrendsPage {
            chrome: Chrome::new(&identity, "/trends"),
            checks: checks.len(),
            charts,
        }
        .render()?,
    ))
}
