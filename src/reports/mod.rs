//! Reports: the model card of a version, the drift report of a monitoring check and the weekly
//! summary, each built once as a [`document::Document`] from what the store keeps and rendered
//! as self-contained HTML (inline style, inline SVG charts, no script, never raw rows) or as PDF
//! ([`pdf`], Typst as a library, fonts embedded). The weekly summary is also sent on
//! `reports.weekly_cron`: its PDF goes into the blob store and an outbox event carries it.
//!
//! Reads domain results and the store; writes only blobs and outbox rows. Domain modules never
//! import it; it knows no HTTP or screens. Rendering is blocking (call from the blocking pool).

pub mod document;
pub mod drift;
pub mod model_card;
pub mod pdf;
pub mod weekly;

use serde::{Deserialize, Serialize};

use crate::data::blob::BlobStore;
use crate::db::DbConnection;
use crate::error::AppError;
use crate::telemetry::REPORTS_TOTAL;
use document::Document;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsSettings {
    /// When the weekly summary is made and sent (standard five-field cron, UTC), e.g.
    /// "0 8 * * 1" for Mondays at 08:00. Empty: never.
    pub weekly_cron: String,
    /// Seconds between looks at the schedule.
    pub check_secs: u64,
    /// Reports rendered at once (PDF layout takes a core for a fraction of a second).
    pub concurrency: usize,
}

/// A standard five-field cron expression (minute, hour, day of month, month, day of week): no
/// seconds, no years.
pub fn parse_cron(text: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Disallowed)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(text.trim())
}

impl ReportsSettings {
    pub fn check(&self) -> Result<(), (String, String)> {
        if !self.weekly_cron.trim().is_empty() {
            parse_cron(&self.weekly_cron).map_err(|e| {
                (
                    "reports.weekly_cron".to_owned(),
                    format!("must be a five-field cron expression ({e})"),
                )
            })?;
        }
        if self.check_secs == 0 || self.check_secs > 3600 {
            return Err((
                "reports.check_secs".into(),
                "must be between 1 and 3600".into(),
            ));
        }
        if !(1..=16).contains(&self.concurrency) {
            return Err((
                "reports.concurrency".into(),
                "must be between 1 and 16".into(),
            ));
        }
        Ok(())
    }
}

/// Which report.
#[derive(Debug, Clone)]
pub enum Report {
    /// The model card of this version of the served model.
    ModelCard(i32),
    /// The drift report of this stored check.
    Drift(String),
    /// The weekly summary of the seven days (7 × 24 h) before this time (UTC).
    Weekly(chrono::NaiveDateTime),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    Pdf,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "html" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Html => "text/html; charset=utf-8",
            Format::Pdf => "application/pdf",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }
}

impl Report {
    /// A file name for downloads: `model-card-heart-disease-v2.pdf`.
    pub fn file_name(&self, model: &str, format: Format) -> String {
        let stem = match self {
            Report::ModelCard(v) => format!("model-card-{model}-v{v}"),
            Report::Drift(id) => format!("drift-{}", crate::error::bounded(id, 40)),
            Report::Weekly(end) => format!("weekly-{model}-{}", end.format("%Y-%m-%d")),
        };
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("{stem}.{}", format.extension())
    }
}

/// Parses a weekly summary's end: `YYYY-MM-DDTHH:MM:SS` (UTC), RFC 3339 (`…Z`, `…+01:00`) or
/// `YYYY-MM-DD` (midnight UTC), from 2000-01-01 to a day from now.
pub fn parse_end(text: &str) -> Result<chrono::NaiveDateTime, AppError> {
    let bad = || {
        AppError::validation(
            "end",
            "must be a time from 2000-01-01 to a day from now: YYYY-MM-DDTHH:MM:SS (UTC), \
             RFC 3339, or YYYY-MM-DD",
        )
    };
    let end = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc).naive_utc())
        })
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
        .map_err(|_| bad())?;
    let earliest = chrono::NaiveDate::from_ymd_opt(2000, 1, 1)
        .map(|d| d.and_time(chrono::NaiveTime::MIN))
        .ok_or_else(bad)?;
    if end < earliest || end > crate::db::now() + chrono::Duration::days(1) {
        return Err(bad());
    }
    Ok(end)
}

/// The report's content, read from the store.
pub fn build(
    conn: &mut DbConnection,
    blobs: &dyn BlobStore,
    model: &str,
    report: &Report,
) -> Result<Document, AppError> {
    match report {
        Report::ModelCard(v) => model_card::build(conn, blobs, model, *v),
        Report::Drift(id) => {
            let check =
                crate::monitoring::check::parse_stored(crate::monitoring::check::get(conn, id)?)?;
            Ok(drift::check_document(&check))
        }
        Report::Weekly(end) => weekly::build(conn, model, *end),
    }
}

/// The document in a format: HTML, or PDF laid out by Typst (CPU-bound: the blocking pool,
/// with the caller bounding how many run at once).
pub fn render(doc: &Document, format: Format) -> Result<Vec<u8>, AppError> {
    let bytes = match format {
        Format::Html => doc
            .html()
            .map(String::into_bytes)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("HTML report: {e}")))?,
        Format::Pdf => pdf::render(doc.typst())?,
    };
    let f = match format {
        Format::Html => "html",
        Format::Pdf => "pdf",
    };
    metrics::counter!(REPORTS_TOTAL, "report" => doc.kind, "format" => f).increment(1);
    Ok(bytes)
}

/// The scheduled time of the weekly summary due now: the newest time `cron` names at or before
/// `now`, if it is less than a day old (a process down over a whole day does not send a stale
/// summary; one down for less sends it late, once).
pub fn weekly_due(
    cron: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let cron = parse_cron(cron).ok()?;
    let at = cron.find_previous_occurrence(&now, true).ok()?;
    // The scheduled minute itself, whatever fraction of a second the search carried.
    let at = chrono::Timelike::with_nanosecond(&at, 0)?;
    (now - at < chrono::Duration::days(1)).then_some(at)
}

/// Makes the weekly summary for the scheduled time `at` (once: its outbox event's dedupe key is
/// the time), stores its PDF as a blob and writes the `weekly_summary` event carrying it. A
/// store created after `at` (a first start just after the scheduled time) makes none for it:
/// there was no week to sum up. Blocking; takes store connections per step, none while the
/// PDF is laid out. Returns whether it was made now.
pub fn send_weekly(
    db: &crate::db::Db,
    blobs: &dyn BlobStore,
    model: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<bool, AppError> {
    use crate::outbox::{Event, Kind, Severity};
    // The model's name as a short digest: a key of bounded length for any name.
    let digest: String = crate::data::blob::hash_bytes(model.as_bytes())
        .chars()
        .take(16)
        .collect();
    let key = format!("weekly:{digest}:{}", at.format("%Y-%m-%dT%H:%M"));
    let end = at.naive_utc();
    let report = Report::Weekly(end);
    let doc = {
        let mut conn = db.get()?;
        if crate::outbox::exists(&mut conn, &key)? || store_began_after(&mut conn, end)? {
            return Ok(false);
        }
        build(&mut conn, blobs, model, &report)?
    };
    let pdf = render(&doc, Format::Pdf)?;
    let stored = blobs
        .put(&pdf)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("storing the weekly report: {e}")))?;
    let facts = weekly_facts(&doc);
    let mut event = Event::new(
        Kind::WeeklySummary,
        Severity::Info,
        &format!(
            "Weekly summary: {model}, week to {}",
            end.format("%Y-%m-%d")
        ),
        &format!(
            "Steward's summary of the week {} (traffic, drift, incidents, actions, approvals and \
             model changes) is attached as a PDF.",
            doc.subtitle
        ),
    )
    .attach(&stored.hash, &report.file_name(model, Format::Pdf))
    .dedupe(key)
    .link(format!(
        "/api/v1/reports/weekly?format=pdf&end={}",
        end.format("%Y-%m-%dT%H:%M:%S")
    ));
    for (k, v) in facts {
        event = event.fact(&k, v);
    }
    crate::outbox::push(&mut *db.get()?, event)?;
    Ok(true)
}

/// Whether the store's first audit event (written as it was created) is later than `t`.
fn store_began_after(conn: &mut DbConnection, t: chrono::NaiveDateTime) -> Result<bool, AppError> {
    use crate::db::schema::audit_events;
    use diesel::prelude::*;
    let first: Option<chrono::NaiveDateTime> = audit_events::table
        .order(audit_events::seq.asc())
        .select(audit_events::created_at)
        .first(conn)
        .optional()?;
    Ok(first.is_some_and(|f| f > t))
}

/// The key figures of a weekly summary: the facts of its sections.
fn weekly_facts(doc: &Document) -> Vec<(String, String)> {
    doc.sections
        .iter()
        .flat_map(|s| s.blocks.iter())
        .filter_map(|b| match b {
            document::Block::Facts(f) => Some(f.clone()),
            _ => None,
        })
        .flatten()
        .take(8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weekly_summary_is_due_for_a_day_after_its_time() {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&chrono::Utc)
        };
        // Mondays at 08:00; 2026-11-30 is a Monday.
        let due = weekly_due("0 8 * * 1", t("2026-11-30T09:15:00Z"));
        assert_eq!(due, Some(t("2026-11-30T08:00:00Z")));
        assert_eq!(weekly_due("0 8 * * 1", t("2026-12-01T08:00:01Z")), None);
        assert_eq!(weekly_due("0 8 * * 1", t("2026-11-30T07:59:00Z")), None);
        assert!(weekly_due("not a cron", t("2026-11-30T09:15:00Z")).is_none());
        // Five fields only: no seconds, no years.
        assert!(parse_cron("0 0 8 * * 1").is_err());
        assert!(parse_cron("0 8 * * 1 2027").is_err());
        assert!(parse_cron(" 0 8 * * MON ").is_ok());
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(
            Report::Drift("../x y".into()).file_name("m", Format::Pdf),
            "drift-..-x-y.pdf"
        );
        assert_eq!(
            Report::ModelCard(3).file_name("heart-disease", Format::Html),
            "model-card-heart-disease-v3.html"
        );
    }
}
