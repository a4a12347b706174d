//! The weekly summary: the seven days (7 × 24 h, UTC) before `end`: traffic per day, the monitoring checks
//! and their drift, the incidents, the agent's actions, the approvals and the model changes.
//! Reads the store (bounded: counts per day, at most [`super::document::MAX_ROWS`] rows a
//! list); blocking.

use diesel::prelude::*;

use super::document::{Document, Section};
use crate::db::DbConnection;
use crate::db::schema::{
    agent_actions, agent_approvals, agent_incidents, drift_checks, feedback, predictions,
    stage_transitions,
};
use crate::error::AppError;

/// Rows read per list (one more than shown, to say "and more").
const LIST: i64 = super::document::MAX_ROWS as i64 + 1;

fn when(t: &chrono::NaiveDateTime) -> String {
    t.format("%a %m-%d %H:%M").to_string()
}

/// The summary of the seven days (7 × 24 h) before `end` (exclusive), so consecutive weekly
/// summaries meet without a gap.
pub fn build(
    conn: &mut DbConnection,
    model: &str,
    end: chrono::NaiveDateTime,
) -> Result<Document, AppError> {
    let start = end - chrono::Duration::days(7);
    let mut sections = Vec::new();

    // Traffic: predictions per day, and the labels that came back.
    let mut days = Vec::new();
    let mut total = 0_i64;
    for d in 0..7 {
        let from = start + chrono::Duration::days(d);
        let to = from + chrono::Duration::days(1);
        let n: i64 = predictions::table
            .filter(predictions::created_at.ge(from))
            .filter(predictions::created_at.lt(to))
            .count()
            .get_result(conn)?;
        total += n;
        // Each day is named by its start (24 h from it).
        days.push((from.format("%a %m-%d %H:%M").to_string(), n));
    }
    let labels: i64 = feedback::table
        .filter(feedback::received_at.ge(start))
        .filter(feedback::received_at.lt(end))
        .count()
        .get_result(conn)?;
    let bars: Vec<(String, f64)> = days.iter().map(|(d, n)| (d.clone(), *n as f64)).collect();
    sections.push(
        Section::new("Traffic")
            .facts(vec![
                ("Predictions".into(), total.to_string()),
                ("Labels received".into(), labels.to_string()),
            ])
            .chart(crate::charts::bars("Predictions per day", &bars))
            .table(
                &["24 h from (UTC)", "predictions"],
                &[false, true],
                days.iter()
                    .map(|(d, n)| vec![d.clone(), n.to_string()])
                    .collect(),
                "no days",
            ),
    );

    // Drift: the week's checks.
    type CheckRow = (
        chrono::NaiveDateTime,
        i32,
        String,
        Option<f64>,
        bool,
        Option<f64>,
        Option<f64>,
    );
    let checks: Vec<CheckRow> = drift_checks::table
        .filter(drift_checks::model.eq(model))
        .filter(drift_checks::created_at.ge(start))
        .filter(drift_checks::created_at.lt(end))
        .order(drift_checks::id.asc())
        .limit(LIST)
        .select((
            drift_checks::created_at,
            drift_checks::version,
            drift_checks::status,
            drift_checks::drift_share,
            drift_checks::dataset_drift,
            drift_checks::accuracy_live,
            drift_checks::accuracy_estimated,
        ))
        .load(conn)?;
    // Counted by the store: the list below is capped, the counts are not.
    let week_checks = drift_checks::table
        .filter(drift_checks::model.eq(model))
        .filter(drift_checks::created_at.ge(start))
        .filter(drift_checks::created_at.lt(end));
    let checked: i64 = week_checks.count().get_result(conn)?;
    let drifted: i64 = week_checks
        .filter(drift_checks::dataset_drift.eq(true))
        .count()
        .get_result(conn)?;
    let points: Vec<(f64, f64)> = checks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.3.map(|s| (i as f64 + 1.0, s)))
        .collect();
    let mut drift = Section::new("Drift").facts(vec![
        ("Checks".into(), checked.to_string()),
        ("With dataset drift".into(), drifted.to_string()),
    ]);
    if points.len() > 1 {
        drift = drift.chart(crate::charts::trend_unit(
            "Drift share per check",
            "share of drifted features",
            &[("drift share".to_owned(), points)],
        ));
    }
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "–".into());
    drift = drift.table(
        &[
            "when (UTC)",
            "version",
            "status",
            "drift share",
            "drift",
            "live acc.",
            "est. acc.",
        ],
        &[false, true, false, true, false, true, true],
        checks
            .iter()
            .map(|c| {
                vec![
                    when(&c.0),
                    c.1.to_string(),
                    c.2.clone(),
                    f(c.3),
                    if c.4 { "yes".into() } else { "–".into() },
                    f(c.5),
                    f(c.6),
                ]
            })
            .collect(),
        "No monitoring checks this week.",
    );
    sections.push(drift);

    // Incidents opened this week.
    let incidents: Vec<(chrono::NaiveDateTime, String, String, String, String, i64)> =
        agent_incidents::table
            .filter(agent_incidents::first_seen.ge(start))
            .filter(agent_incidents::first_seen.lt(end))
            .order(agent_incidents::first_seen.asc())
            .limit(LIST)
            .select((
                agent_incidents::first_seen,
                agent_incidents::alert_type,
                agent_incidents::severity,
                agent_incidents::status,
                agent_incidents::summary,
                agent_incidents::alert_count,
            ))
            .load(conn)?;
    sections.push(
        Section::new("Incidents").table(
            &[
                "opened (UTC)",
                "type",
                "severity",
                "status",
                "alerts",
                "summary",
            ],
            &[false, false, false, false, true, false],
            incidents
                .iter()
                .map(|i| {
                    vec![
                        when(&i.0),
                        i.1.clone(),
                        i.2.clone(),
                        i.3.clone(),
                        i.5.to_string(),
                        crate::error::bounded(&i.4, 160),
                    ]
                })
                .collect(),
            "No incidents this week.",
        ),
    );

    // The agent's actions.
    type ActionRow = (
        chrono::NaiveDateTime,
        String,
        String,
        Option<i32>,
        Option<String>,
    );
    let actions: Vec<ActionRow> = agent_actions::table
        .filter(agent_actions::started_at.ge(start))
        .filter(agent_actions::started_at.lt(end))
        .order(agent_actions::started_at.asc())
        .limit(LIST)
        .select((
            agent_actions::started_at,
            agent_actions::action,
            agent_actions::status,
            agent_actions::model_version,
            agent_actions::error,
        ))
        .load(conn)?;
    sections.push(
        Section::new("Actions").table(
            &["started (UTC)", "action", "outcome", "version", "error"],
            &[false, false, false, true, false],
            actions
                .iter()
                .map(|a| {
                    vec![
                        when(&a.0),
                        a.1.clone(),
                        a.2.clone(),
                        a.3.map(|v| v.to_string()).unwrap_or_default(),
                        a.4.as_deref()
                            .map(|e| crate::error::bounded(e, 120))
                            .unwrap_or_default(),
                    ]
                })
                .collect(),
            "The agent took no action this week.",
        ),
    );

    // Approvals requested this week.
    type ApprovalRow = (
        chrono::NaiveDateTime,
        String,
        Option<i32>,
        String,
        Option<String>,
        Option<String>,
    );
    let approvals: Vec<ApprovalRow> = agent_approvals::table
        .filter(agent_approvals::requested_at.ge(start))
        .filter(agent_approvals::requested_at.lt(end))
        .order(agent_approvals::requested_at.asc())
        .limit(LIST)
        .select((
            agent_approvals::requested_at,
            agent_approvals::action,
            agent_approvals::version,
            agent_approvals::status,
            agent_approvals::decided_by,
            agent_approvals::comment,
        ))
        .load(conn)?;
    sections.push(
        Section::new("Approvals").table(
            &[
                "requested (UTC)",
                "action",
                "version",
                "status",
                "by",
                "comment",
            ],
            &[false, false, true, false, false, false],
            approvals
                .iter()
                .map(|a| {
                    vec![
                        when(&a.0),
                        a.1.clone(),
                        a.2.map(|v| v.to_string()).unwrap_or_default(),
                        a.3.clone(),
                        a.4.clone().unwrap_or_default(),
                        a.5.as_deref()
                            .map(|c| crate::error::bounded(c, 120))
                            .unwrap_or_default(),
                    ]
                })
                .collect(),
            "No approval requests this week.",
        ),
    );

    // Model changes.
    let changes: Vec<(
        chrono::NaiveDateTime,
        i32,
        String,
        String,
        String,
        String,
        bool,
    )> = stage_transitions::table
        .filter(stage_transitions::model.eq(model))
        .filter(stage_transitions::created_at.ge(start))
        .filter(stage_transitions::created_at.lt(end))
        .order(stage_transitions::seq.asc())
        .limit(LIST)
        .select((
            stage_transitions::created_at,
            stage_transitions::version,
            stage_transitions::from_stage,
            stage_transitions::to_stage,
            stage_transitions::actor,
            stage_transitions::reason,
            stage_transitions::rollback,
        ))
        .load(conn)?;
    let production = crate::registry::production(conn, model)?;
    sections.push(
        Section::new("Model changes")
            .facts(vec![(
                "In Production now".into(),
                production
                    .map(|v| format!("{model} v{} ({})", v.version, v.model_kind))
                    .unwrap_or_else(|| "none".into()),
            )])
            .table(
                &["when (UTC)", "version", "from", "to", "by", "reason"],
                &[false, true, false, false, false, false],
                changes
                    .iter()
                    .map(|c| {
                        vec![
                            when(&c.0),
                            c.1.to_string(),
                            c.2.clone(),
                            if c.6 {
                                format!("{} (rollback)", c.3)
                            } else {
                                c.3.clone()
                            },
                            c.4.clone(),
                            crate::error::bounded(&c.5, 160),
                        ]
                    })
                    .collect(),
                "No stage changes this week.",
            ),
    );

    Ok(Document {
        kind: "weekly",
        title: format!("Weekly summary: {model}"),
        subtitle: format!(
            "{} to {} UTC",
            start.format("%Y-%m-%d %H:%M"),
            end.format("%Y-%m-%d %H:%M")
        ),
        sections,
        generated: format!("{} UTC", chrono::Utc::now().format("%Y-%m-%d %H:%M")),
    })
}
