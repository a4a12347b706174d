//! Retraining: a new dataset version (a base version plus the labelled feedback rows recorded
//! by signed-in users, minus quarantined rows) recorded with its parent, a challenger trained on
//! it as tracked runs and registered, and the challenger and the champion scored on the same
//! rows: the challenger's holdout less every row the champion trained on (matched by content),
//! which is the champion's own holdout plus the recent labelled traffic the challenger did not
//! train on.
//!
//! The base is the newest dataset version not built by the agent, so feedback is never counted
//! twice however many retrains run. Blocking: call from the blocking pool.

use diesel::prelude::*;
use serde::Serialize;

use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::data::{self as datasets, catalog};
use crate::db::schema::{agent_quarantine, feedback, predictions};
use crate::db::{Db, DbConnection};
use crate::error::AppError;
use crate::ml::features::Examples;
use crate::registry::{self, ModelVersion};
use crate::training::{self, TrainRequest};

/// Messages of dataset versions the agent builds start with this.
pub const AGENT_MESSAGE: &str = "agent retrain:";
/// Newest feedback rows one retrain learns from.
const MAX_FEEDBACK_ROWS: i64 = 200_000;
/// Fewest rows a comparison is made on; below it the challenger is not promoted.
pub const MIN_COMPARISON_ROWS: usize = 20;

/// A row's content (its features and label) as a key, to tell rows apart across versions.
fn row_key(examples: &Examples, i: usize) -> Option<String> {
    let row = examples.rows.get(i)?;
    let label = examples.labels.get(i)?;
    Some(format!("{row:?}|{label}"))
}

/// Whether higher is better for a metric a challenger is compared on (`None`: not one).
pub fn metric_direction(metric: &str) -> Option<bool> {
    match metric {
        "accuracy" | "f1" | "roc_auc" | "pr_auc" => Some(true),
        "log_loss" | "brier" => Some(false),
        _ => None,
    }
}

/// Labelled feedback rows a retrain can learn from: predictions of `model` labelled by a
/// signed-in user, not quarantined.
pub fn usable_labels(conn: &mut DbConnection, model: &str) -> Result<u64, AppError> {
    let n: i64 = feedback::table
        .inner_join(predictions::table)
        .filter(predictions::model.eq(model))
        .filter(feedback::actor.like("user:%"))
        .filter(
            feedback::request_id
                .ne_all(agent_quarantine::table.select(agent_quarantine::request_id)),
        )
        .count()
        .get_result(conn)?;
    Ok(n.max(0) as u64)
}

/// Figures of one model on the comparison rows.
#[derive(Debug, Clone, Serialize)]
pub struct Scored {
    pub version: i32,
    pub accuracy: f64,
    pub f1: f64,
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub log_loss: f64,
    pub brier: f64,
}

impl Scored {
    fn of(version: i32, m: &crate::ml::metrics::Metrics) -> Self {
        Scored {
            version,
            accuracy: m.accuracy,
            f1: m.f1,
            roc_auc: m.roc_auc,
            pr_auc: m.pr_auc,
            log_loss: m.log_loss,
            brier: m.brier,
        }
    }
}

/// What a retrain produced, before any promotion.
#[derive(Debug, Clone, Serialize)]
pub struct Retrained {
    pub dataset: String,
    pub dataset_version: i32,
    pub parent_version: i32,
    pub base_rows: usize,
    pub feedback_rows: usize,
    pub quarantined_left_out: usize,
    pub challenger: ModelVersion,
    pub champion: Option<i32>,
    pub metric: String,
    pub margin: f64,
    pub comparison_rows: usize,
    /// How the comparison rows were chosen.
    pub comparison: String,
    pub challenger_scores: Option<Scored>,
    pub champion_scores: Option<Scored>,
    /// The challenger is better than the champion by at least the margin (and there were
    /// enough rows to tell).
    pub better: bool,
    /// Why it is or is not better, in a sentence.
    pub verdict: String,
    /// Expectations the new dataset version failed: a challenger trained on it is promoted
    /// only by a person (the registry's data gate), so a better one waits for approval.
    pub validation_failures: Vec<String>,
}

/// The newest version of `dataset` not built by the agent, at or below `from`.
fn base_version(
    conn: &mut DbConnection,
    dataset: &str,
    from: i32,
) -> Result<catalog::DatasetVersion, AppError> {
    let mut v = catalog::find_version(conn, dataset, from)?;
    for _ in 0..10_000 {
        if !v.message.starts_with(AGENT_MESSAGE) {
            return Ok(v);
        }
        match v.parent_version {
            Some(p) => v = catalog::find_version(conn, dataset, p)?,
            None => break,
        }
    }
    Err(AppError::Conflict(format!(
        "{dataset} has no version that was not built by the agent to retrain from"
    )))
}

/// The base file's records in the schema's column order (its header, when it has one, says
/// the order).
fn base_records(bytes: &[u8], columns: &[String]) -> Result<Vec<Vec<String>>, AppError> {
    if bytes.starts_with(b"PAR1") {
        return Err(AppError::Conflict(
            "the base dataset version is Parquet; the agent retrains from CSV versions".into(),
        ));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let mut out = Vec::new();
    let mut order: Option<Vec<usize>> = None;
    for (i, record) in reader.records().enumerate() {
        let record =
            record.map_err(|e| AppError::Conflict(format!("reading the base version: {e}")))?;
        let fields: Vec<String> = record.iter().map(str::to_owned).collect();
        if i == 0 {
            let mut sorted = fields.clone();
            sorted.sort();
            let mut names = columns.to_vec();
            names.sort();
            if sorted == names {
                order = Some(
                    columns
                        .iter()
                        .map(|c| fields.iter().position(|f| f == c).unwrap_or(0))
                        .collect(),
                );
                continue;
            }
        }
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        let row = match &order {
            Some(order) => order
                .iter()
                .map(|&j| fields.get(j).cloned().unwrap_or_default())
                .collect(),
            None => fields,
        };
        out.push(row);
    }
    Ok(out)
}

/// The target cell that the schema's rule reads as `label`.
fn target_cell(rule: &crate::data::schema::TargetRule, label: i32) -> String {
    use crate::data::schema::TargetRule;
    match rule {
        TargetRule::GreaterThan(t) => {
            if label == 1 {
                format!("{}", t.floor() + 1.0)
            } else {
                format!("{t}")
            }
        }
        TargetRule::OneOf(positive) => {
            if label == 1 {
                positive.first().cloned().unwrap_or_else(|| "1".into())
            } else {
                ["0", "no", "negative", "false"]
                    .iter()
                    .find(|c| !positive.iter().any(|p| p.eq_ignore_ascii_case(c)))
                    .map(|c| (*c).to_owned())
                    .unwrap_or_else(|| "__negative__".into())
            }
        }
    }
}

/// Builds the training set: the base version's rows, then the usable feedback rows (oldest
/// first), as a new CSV version of the dataset with the base as its parent. Returns the new
/// version, the base, the counts and the feedback's request ids in row order.
fn build_dataset(
    db: &Db,
    blobs: &dyn BlobStore,
    settings: &Settings,
    incident: &str,
) -> Result<
    (
        datasets::AddOutcome,
        catalog::DatasetVersion,
        usize,
        usize,
        usize,
    ),
    AppError,
> {
    let schema = &settings.dataset;
    let model = &settings.registry.model;
    let mut conn = db.get()?;
    let current = catalog::current_version(&mut conn, &schema.name)?.ok_or_else(|| {
        AppError::Conflict(format!("dataset {} has no current version", schema.name))
    })?;
    let base = base_version(&mut conn, &schema.name, current.version)?;
    let rows: Vec<(String, String, i32)> = feedback::table
        .inner_join(predictions::table)
        .filter(predictions::model.eq(model))
        .filter(feedback::actor.like("user:%"))
        .select((
            feedback::request_id,
            predictions::features_json,
            feedback::label,
        ))
        .order((feedback::received_at.desc(), feedback::request_id.desc()))
        .limit(MAX_FEEDBACK_ROWS)
        .load(&mut *conn)?;
    let ids: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let quarantined = super::store::quarantined_among(&mut conn, &ids)?;
    drop(conn);
    let bytes = blobs.get(&base.hash)?;
    let columns: Vec<String> = schema.columns.iter().map(|c| c.name.clone()).collect();
    let base_rows = base_records(&bytes, &columns)?;
    let features = schema.feature_names();
    let missing = schema
        .missing_values
        .first()
        .cloned()
        .unwrap_or_else(|| "?".into());
    let mut writer = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| AppError::Internal(anyhow::anyhow!("writing the training set: {e}"));
    writer.write_record(&columns).map_err(io)?;
    for r in &base_rows {
        writer.write_record(r).map_err(io)?;
    }
    let mut used = 0usize;
    let mut left_out = 0usize;
    // Oldest first, so the rows' order is the order the labels came in.
    for (id, features_json, label) in rows.iter().rev() {
        if quarantined.contains(id) {
            left_out += 1;
            continue;
        }
        let values: Vec<serde_json::Value> = match serde_json::from_str(features_json) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if values.len() != features.len() {
            continue;
        }
        let mut record = Vec::with_capacity(columns.len());
        for c in &columns {
            if *c == schema.target {
                record.push(target_cell(&schema.target_rule, *label));
                continue;
            }
            let at = features.iter().position(|f| f == c);
            let cell = match at.and_then(|i| values.get(i)) {
                Some(serde_json::Value::Number(x)) => x.to_string(),
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => missing.clone(),
            };
            record.push(cell);
        }
        writer.write_record(&record).map_err(io)?;
        used += 1;
    }
    let csv = writer
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing the training set: {e}")))?;
    let message = format!(
        "{AGENT_MESSAGE} v{} + {used} labelled feedback rows ({left_out} quarantined left out), incident {incident}",
        base.version
    );
    let outcome = datasets::add_version(
        db,
        blobs,
        schema,
        datasets::Upload {
            dataset: &schema.name,
            bytes: &csv,
            file_name: "agent-retrain.csv",
            message: &message,
            parent: Some(base.version),
        },
        "agent",
    )?;
    Ok((outcome, base, base_rows.len(), used, left_out))
}

/// Retrains: builds the dataset version, trains and registers the challenger (never promoted
/// here), and scores it beside the Production version. Errors: no current dataset version,
/// too few labels, a version that failed validation, training already running (Conflict).
pub fn retrain(
    db: &Db,
    blobs: &dyn BlobStore,
    settings: &Settings,
    incident: &str,
) -> Result<Retrained, AppError> {
    let agent = &settings.agent;
    let model = &settings.registry.model;
    let labels = usable_labels(&mut *db.get()?, model)?;
    if labels < agent.min_labels {
        return Err(AppError::Conflict(format!(
            "{labels} labelled feedback rows can be learned from; a retrain needs {}",
            agent.min_labels
        )));
    }
    let (added, base, base_rows, feedback_rows, left_out) =
        build_dataset(db, blobs, settings, incident)?;
    let version = added.version.version;
    let request = TrainRequest {
        dataset: Some(settings.dataset.name.clone()),
        version: Some(version),
        register: true,
        promote: false,
        source: "agent".into(),
        ..TrainRequest::default()
    };
    let no_promotion = |_: &mut DbConnection,
                        _: &str,
                        _: i32,
                        _: registry::Change<'_>|
     -> Result<registry::TransitionOutcome, AppError> {
        Err(AppError::Conflict("the agent promotes separately".into()))
    };
    let outcome = training::train(
        db,
        blobs,
        settings,
        &request,
        "agent",
        &|_, _, _| {},
        &no_promotion,
    )?;
    let challenger = outcome
        .registered
        .ok_or_else(|| AppError::Conflict("no challenger was registered".into()))?;
    let metric = agent.promotion_metric.clone();
    let higher = metric_direction(&metric).unwrap_or(true);

    // The rows both are scored on.
    let mut conn = db.get()?;
    let champion = registry::production(&mut conn, model)?;
    let (_, table) = datasets::load_version(
        &mut conn,
        blobs,
        &settings.dataset,
        &settings.dataset.name,
        version,
    )?;
    let examples = Examples::from_table(&table, &settings.dataset).map_err(AppError::BadRequest)?;
    let challenger_report = training::report_of(&mut conn, blobs, &challenger.run_id)?
        .ok_or_else(|| AppError::Conflict("the challenger's run has no report".into()))?;
    // The challenger's holdout, less rows whose very content it also trained on (a duplicate
    // in its data would flatter it).
    let challenger_holdout: std::collections::HashSet<usize> =
        challenger_report.holdout_rows.iter().copied().collect();
    let challenger_trained: std::collections::HashSet<String> = (0..examples.labels.len())
        .filter(|i| !challenger_holdout.contains(i))
        .filter_map(|i| row_key(&examples, i))
        .collect();
    let holdout: Vec<usize> = challenger_report
        .holdout_rows
        .iter()
        .copied()
        .filter(|&r| row_key(&examples, r).is_some_and(|k| !challenger_trained.contains(&k)))
        .collect();
    let (rows, comparison) = match &champion {
        Some(champ) => {
            // What the champion learned from: its dataset version's rows less its holdout,
            // matched by content (features and label), so a row it saw in any version is
            // never scored.
            let (_, seen_table) = datasets::load_version(
                &mut conn,
                blobs,
                &settings.dataset,
                &champ.dataset,
                champ.dataset_version,
            )?;
            let seen = Examples::from_table(&seen_table, &settings.dataset)
                .map_err(AppError::BadRequest)?;
            let champion_holdout: std::collections::HashSet<usize> =
                training::report_of(&mut conn, blobs, &champ.run_id)?
                    .map(|r| r.holdout_rows.into_iter().collect())
                    .unwrap_or_default();
            let trained_on: std::collections::HashSet<String> = (0..seen.labels.len())
                .filter(|i| !champion_holdout.contains(i))
                .filter_map(|i| row_key(&seen, i))
                .collect();
            let rows: Vec<usize> = holdout
                .iter()
                .copied()
                .filter(|&r| row_key(&examples, r).is_some_and(|k| !trained_on.contains(&k)))
                .collect();
            (
                rows,
                format!(
                    "rows neither model trained on (by content): the challenger's holdout less \
                     every row the champion (v{}) trained on from {} v{}",
                    champ.version, champ.dataset, champ.dataset_version
                ),
            )
        }
        None => (holdout.clone(), "the challenger's holdout".into()),
    };
    let subset = examples.subset(&rows);
    let score = |trained: &crate::ml::TrainedModel, version: i32| -> Option<Scored> {
        if rows.is_empty() {
            return None;
        }
        trained
            .evaluate(&subset)
            .ok()
            .map(|m| Scored::of(version, &m))
    };
    let (_, challenger_model) = registry::load(&mut conn, blobs, model, challenger.version)?;
    let challenger_scores = score(&challenger_model, challenger.version);
    let champion_scores = match &champion {
        Some(c) => {
            let (_, m) = registry::load(&mut conn, blobs, model, c.version)?;
            score(&m, c.version)
        }
        None => None,
    };
    let labels_both = {
        let ones = subset.labels.iter().filter(|&&l| l == 1).count();
        ones > 0 && ones < subset.labels.len()
    };
    let (better, verdict) = match (&challenger_scores, &champion_scores) {
        _ if rows.len() < MIN_COMPARISON_ROWS || !labels_both => (
            false,
            format!(
                "kept: {} comparison rows{}, too few to tell the two apart (at least {MIN_COMPARISON_ROWS} with both classes)",
                rows.len(),
                if labels_both { "" } else { " with one class" }
            ),
        ),
        (Some(ch), Some(cp)) => {
            let (a, b) = (
                metric_value_scored(ch, &metric),
                metric_value_scored(cp, &metric),
            );
            let gain = if higher { a - b } else { b - a };
            if gain.is_finite() && gain >= agent.promotion_margin {
                (
                    true,
                    format!(
                        "better: {metric} {a:.4} against the champion's {b:.4} on {} rows (gain {gain:+.4} ≥ margin {})",
                        rows.len(),
                        agent.promotion_margin
                    ),
                )
            } else {
                (
                    false,
                    format!(
                        "kept: {metric} {a:.4} against the champion's {b:.4} on {} rows (gain {gain:+.4} < margin {})",
                        rows.len(),
                        agent.promotion_margin
                    ),
                )
            }
        }
        (Some(_), None) => (true, "better: nothing is in Production".into()),
        _ => (false, "kept: the challenger could not be scored".into()),
    };
    let validation_failures =
        training::ValidationGate::of(&mut conn, &settings.dataset.name, version)?.failed;
    Ok(Retrained {
        validation_failures,
        dataset: settings.dataset.name.clone(),
        dataset_version: version,
        parent_version: base.version,
        base_rows,
        feedback_rows,
        quarantined_left_out: left_out,
        challenger,
        champion: champion.map(|c| c.version),
        metric,
        margin: agent.promotion_margin,
        comparison_rows: rows.len(),
        comparison,
        challenger_scores,
        champion_scores,
        better,
        verdict,
    })
}

fn metric_value_scored(s: &Scored, metric: &str) -> f64 {
    match metric {
        "accuracy" => s.accuracy,
        "f1" => s.f1,
        "roc_auc" => s.roc_auc,
        "pr_auc" => s.pr_auc,
        "log_loss" => s.log_loss,
        "brier" => s.brier,
        _ => f64::NAN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_records_follow_the_header_or_the_schema() {
        let cols: Vec<String> = ["a", "b", "num"].iter().map(|s| (*s).to_owned()).collect();
        let headed = base_records(b"b,num,a\n2,0,1\n", &cols).expect("read");
        assert_eq!(headed, vec![vec!["1", "2", "0"]]);
        let bare = base_records(b"1,2,0\n\n3,4,1\n", &cols).expect("read");
        assert_eq!(bare.len(), 2);
        use crate::data::schema::TargetRule;
        assert_eq!(target_cell(&TargetRule::GreaterThan(0.0), 1), "1");
        assert_eq!(target_cell(&TargetRule::GreaterThan(0.0), 0), "0");
        assert_eq!(target_cell(&TargetRule::OneOf(vec!["yes".into()]), 0), "0");
    }
}
