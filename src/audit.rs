//! The audit log: an append-only, hash-chained record of every action that changes Steward.
//!
//! Each event's hash covers its own fields and the previous event's hash, so a changed, removed or
//! reordered row breaks the chain from that row on. The database refuses UPDATE and DELETE on the
//! table (triggers), and `audit_head` keeps the newest hash so a cut tail is noticed too.
//! A change and its event are written together through [`with_event`].

use diesel::prelude::*;
use serde::Serialize;

use crate::db::schema::{audit_events, audit_head};
use crate::db::{DbConnection, now};
use crate::error::AppError;

/// The hash the first event chains to.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = audit_events)]
pub struct AuditEvent {
    pub seq: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub before_json: Option<String>,
    pub after_json: Option<String>,
    pub created_at: chrono::NaiveDateTime,
    pub prev_hash: String,
    pub hash: String,
}

/// What a caller records; the chain fields are filled in by [`append`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub actor: String,
    pub action: &'static str,
    pub subject: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl NewEvent {
    pub fn new(actor: impl Into<String>, action: &'static str, subject: impl Into<String>) -> Self {
        NewEvent {
            actor: actor.into(),
            action,
            subject: subject.into(),
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, value: serde_json::Value) -> Self {
        self.before = Some(value);
        self
    }

    pub fn after(mut self, value: serde_json::Value) -> Self {
        self.after = Some(value);
        self
    }
}

impl AuditEvent {
    /// The chain hash of an event: BLAKE3 over a canonical JSON array of its fields and the
    /// previous hash.
    pub fn compute_hash(&self) -> String {
        let canonical = serde_json::json!([
            self.seq,
            self.actor,
            self.action,
            self.subject,
            self.before_json,
            self.after_json,
            self.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            self.prev_hash,
        ]);
        blake3::hash(canonical.to_string().as_bytes())
            .to_hex()
            .to_string()
    }
}

/// Appends one event to the chain, atomically.
pub fn append(conn: &mut DbConnection, event: NewEvent) -> Result<AuditEvent, AppError> {
    conn.transaction(|conn| {
        lock_head(conn)?;
        append_locked(conn, event)
    })
}

/// Runs a change and records the event it returns, in one transaction: both land or neither.
///
/// The transaction begins by locking the chain head, a write, so that SQLite takes its write lock
/// before `change` reads anything and concurrent writers queue instead of failing.
pub fn with_event<T>(
    conn: &mut DbConnection,
    change: impl FnOnce(&mut DbConnection) -> Result<(T, NewEvent), AppError>,
) -> Result<T, AppError> {
    conn.transaction(|conn| {
        lock_head(conn)?;
        let (value, event) = change(conn)?;
        append_locked(conn, event)?;
        Ok(value)
    })
}

/// Writing the head row takes the write lock on both backends, so concurrent appenders queue
/// here and each sees the head the previous one left.
fn lock_head(conn: &mut DbConnection) -> Result<(), AppError> {
    diesel::update(audit_head::table.find(1))
        .set(audit_head::seq.eq(audit_head::seq))
        .execute(conn)?;
    Ok(())
}

fn append_locked(conn: &mut DbConnection, event: NewEvent) -> Result<AuditEvent, AppError> {
    let (head_seq, head_hash): (i64, String) = audit_head::table
        .find(1)
        .select((audit_head::seq, audit_head::hash))
        .first(conn)?;
    let mut row = AuditEvent {
        seq: head_seq + 1,
        actor: event.actor,
        action: event.action.to_owned(),
        subject: event.subject,
        before_json: event.before.map(|v| v.to_string()),
        after_json: event.after.map(|v| v.to_string()),
        created_at: now(),
        prev_hash: head_hash,
        hash: String::new(),
    };
    row.hash = row.compute_hash();
    diesel::insert_into(audit_events::table)
        .values(&row)
        .execute(conn)?;
    diesel::update(audit_head::table.find(1))
        .set((audit_head::seq.eq(row.seq), audit_head::hash.eq(&row.hash)))
        .execute(conn)?;
    metrics::counter!(crate::telemetry::AUDIT_EVENTS_TOTAL, "action" => event.action).increment(1);
    Ok(row)
}

/// Newest events first, optionally only those older than `before_seq`.
pub fn list(
    conn: &mut DbConnection,
    limit: i64,
    before_seq: Option<i64>,
) -> Result<Vec<AuditEvent>, AppError> {
    let mut query = audit_events::table
        .select(AuditEvent::as_select())
        .order(audit_events::seq.desc())
        .limit(limit.clamp(1, 1000))
        .into_boxed();
    if let Some(before) = before_seq {
        query = query.filter(audit_events::seq.lt(before));
    }
    Ok(query.load(conn)?)
}

pub fn count(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(audit_events::table.count().get_result(conn)?)
}

/// The newest event with this action, if any.
pub fn latest_with_action(
    conn: &mut DbConnection,
    action: &str,
) -> Result<Option<AuditEvent>, AppError> {
    Ok(audit_events::table
        .filter(audit_events::action.eq(action))
        .order(audit_events::seq.desc())
        .select(AuditEvent::as_select())
        .first(conn)
        .optional()?)
}

/// Where the chain first breaks.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Break {
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub events_checked: u64,
    pub first_break: Option<Break>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Walks the whole chain in order and reports the first row that does not hold.
pub fn verify(conn: &mut DbConnection) -> Result<Verification, AppError> {
    const PAGE: i64 = 1000;
    let mut expected_seq = 1_i64;
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut checked = 0_u64;
    loop {
        let rows: Vec<AuditEvent> = audit_events::table
            .filter(audit_events::seq.ge(expected_seq))
            .order(audit_events::seq.asc())
            .limit(PAGE)
            .select(AuditEvent::as_select())
            .load(conn)?;
        let page_len = rows.len();
        for row in rows {
            let broken = |reason: String| Verification {
                events_checked: checked,
                first_break: Some(Break {
                    seq: row.seq,
                    reason,
                }),
            };
            if row.seq != expected_seq {
                return Ok(broken(format!(
                    "event {expected_seq} is missing (next present is {})",
                    row.seq
                )));
            }
            if row.prev_hash != prev_hash {
                return Ok(broken(
                    "prev_hash does not match the previous event's hash".into(),
                ));
            }
            if row.compute_hash() != row.hash {
                return Ok(broken(
                    "contents do not match the stored hash (the row was altered)".into(),
                ));
            }
            prev_hash = row.hash;
            expected_seq += 1;
            checked += 1;
        }
        if page_len < PAGE as usize {
            break;
        }
    }
    let (head_seq, head_hash): (i64, String) = audit_head::table
        .find(1)
        .select((audit_head::seq, audit_head::hash))
        .first(conn)?;
    if head_seq != expected_seq - 1 || head_hash != prev_hash {
        return Ok(Verification {
            events_checked: checked,
            first_break: Some(Break {
                seq: expected_seq,
                reason: format!(
                    "the log ends at event {} but its head records event {head_seq}",
                    expected_seq - 1
                ),
            }),
        });
    }
    Ok(Verification {
        events_checked: checked,
        first_break: None,
    })
}
