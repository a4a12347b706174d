//! The current window: the newest `monitoring.window_rows` logged predictions of one model
//! version (within `monitoring.window_hours` when set, and never from before the version first
//! went into Production), read newest first in pages by key range on the time-ordered (UUIDv7)
//! request id, so the scan stops at the window's start and memory holds the window's values,
//! never its rows.

use diesel::prelude::*;

use super::drift::{Side, SideBuilder};
use crate::db::DbConnection;
use crate::db::schema::{feedback, predictions};
use crate::error::AppError;

const PAGE: i64 = 5_000;

/// What a check reads of its window.
pub struct Window {
    /// The model's features as logged.
    pub side: Side,
    /// Each row's predicted probability.
    pub probabilities: Vec<f64>,
    /// (label, probability, predicted class) of the rows with feedback.
    pub labelled: Vec<(u32, f64, i32)>,
    pub start: Option<chrono::NaiveDateTime>,
    pub end: Option<chrono::NaiveDateTime>,
    /// Request latencies in microseconds (per request; a batch counts once per row).
    pub latencies_us: Vec<i64>,
}

type LogRow = (
    String,
    chrono::NaiveDateTime,
    String,
    f64,
    i32,
    i64,
    Option<i32>,
);

/// The smallest UUIDv7 text made at `ms` (Unix milliseconds).
pub fn key_at(ms: i64) -> String {
    let ms = u64::try_from(ms).unwrap_or(0) & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

/// Reads the window of `model` v`version`: its newest `max_rows` rows made at or after `since`. `features` are the model's features with whether
/// each is numeric, in the order the log stores them.
pub fn read(
    conn: &mut DbConnection,
    model: &str,
    version: i32,
    features: &[(String, bool)],
    max_rows: u64,
    since: Option<chrono::NaiveDateTime>,
) -> Result<Window, AppError> {
    let mut builder = SideBuilder::new(features.iter().cloned());
    let mut window = Window {
        side: Side {
            rows: 0,
            features: Vec::new(),
        },
        probabilities: Vec::new(),
        labelled: Vec::new(),
        start: None,
        end: None,
        latencies_us: Vec::new(),
    };
    // The time bound as a key bound: a UUIDv7 begins with its millisecond timestamp, so every
    // id made at or after `since` sorts at or after this one (the log has no time index).
    let from_key = since.map(|t| key_at(t.and_utc().timestamp_millis()));
    let mut cursor: Option<String> = None;
    let mut left = max_rows as i64;
    while left > 0 {
        let mut q = predictions::table
            .left_join(feedback::table)
            .filter(predictions::model.eq(model))
            .filter(predictions::model_version.eq(version))
            .into_boxed();
        if let Some(from) = &from_key {
            q = q.filter(predictions::request_id.ge(from.clone()));
        }
        if let Some(c) = &cursor {
            q = q.filter(predictions::request_id.lt(c.clone()));
        }
        let rows: Vec<LogRow> = q
            .order(predictions::request_id.desc())
            .limit(left.min(PAGE))
            .select((
                predictions::request_id,
                predictions::created_at,
                predictions::features_json,
                predictions::probability,
                predictions::prediction,
                predictions::latency_us,
                feedback::label.nullable(),
            ))
            .load(conn)?;
        let Some(last) = rows.last() else { break };
        cursor = Some(last.0.clone());
        left -= rows.len() as i64;
        let page_full = rows.len() as i64 == PAGE;
        for (_, at, json, p, class, latency, label) in rows {
            window.end = Some(window.end.map_or(at, |e| e.max(at)));
            window.start = Some(window.start.map_or(at, |s| s.min(at)));
            let values: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap_or_default();
            for (slot, (_, numeric)) in features.iter().enumerate() {
                match values.get(slot) {
                    Some(serde_json::Value::Number(n)) if *numeric => builder.num(slot, n.as_f64()),
                    Some(serde_json::Value::String(s)) if !*numeric => {
                        builder.text(slot, Some(s.as_str()));
                    }
                    // A number logged for a categorical feature: its text is the category.
                    Some(serde_json::Value::Number(n)) => builder.text(slot, Some(&n.to_string())),
                    _ => builder.missing(slot),
                }
            }
            builder.row_done();
            window.probabilities.push(p);
            window.latencies_us.push(latency);
            if let Some(label) = label {
                window.labelled.push((u32::from(label == 1), p, class));
            }
        }
        if !page_full {
            break;
        }
    }
    window.side = builder.finish();
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::key_at;

    #[test]
    fn a_time_bound_is_a_key_bound() {
        let ms: i64 = 1_764_470_000_123;
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        ))
        .to_string();
        let bound = key_at(ms);
        assert!(bound.as_str() <= id.as_str(), "{bound} {id}");
        assert!(key_at(ms + 1).as_str() > id.as_str());
        assert_eq!(id.get(..13), bound.get(..13));
    }
}
