//! The outbox: the one narrow interface through which the domain (the agent, training, the
//! report schedule) says that something happened that people may want to hear of. A domain
//! module writes an event row here: the agent's in the transaction of what they report (a
//! decision, an approval request, an action's end), training's and the weekly summary's right
//! after theirs (a failure there loses the message, never the work); [`crate::notify`]
//! routes each row to its channels and delivers it. This module sends nothing and knows no
//! channel: domain modules import it, never `notify`.
//!
//! Owns the `notifications` table. Bounds: a subject of at most 200 characters, a body of at
//! most 4000, at most 12 key figures of at most 60 + 200 characters.

use diesel::prelude::*;
use serde::Serialize;

use crate::db::DbConnection;
use crate::db::schema::notifications;
use crate::error::{AppError, bounded};

/// What an event is about: the routing key of `[[notify.routes]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An approval request waits for a person.
    ApprovalNeeded,
    /// The agent finished an action (retrain, promote, quarantine, validate).
    ActionTaken,
    /// The agent rolled Production back.
    Rollback,
    /// A drift incident the policy notifies of.
    DriftDetected,
    /// A data-quality incident (missing, constant, out-of-range values).
    DataQuality,
    /// A training finished (the best candidate, what was registered and promoted).
    TrainingFinished,
    /// A dataset version failed its expectations.
    ValidationFailed,
    /// The weekly summary report.
    WeeklySummary,
    /// Any other incident the policy notifies of (decay, error rate, an external alert).
    Alert,
    /// `steward notify test CHANNEL`: sent to that channel alone.
    Test,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::ApprovalNeeded,
        Kind::ActionTaken,
        Kind::Rollback,
        Kind::DriftDetected,
        Kind::DataQuality,
        Kind::TrainingFinished,
        Kind::ValidationFailed,
        Kind::WeeklySummary,
        Kind::Alert,
        Kind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApprovalNeeded => "approval_needed",
            Kind::ActionTaken => "action_taken",
            Kind::Rollback => "rollback",
            Kind::DriftDetected => "drift_detected",
            Kind::DataQuality => "data_quality",
            Kind::TrainingFinished => "training_finished",
            Kind::ValidationFailed => "validation_failed",
            Kind::WeeklySummary => "weekly_summary",
            Kind::Alert => "alert",
            Kind::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The kind of an incident's notification, from its alert type.
    pub fn of_alert(alert_type: &str) -> Kind {
        match alert_type {
            "drift" => Kind::DriftDetected,
            "data_quality" => Kind::DataQuality,
            "validation" => Kind::ValidationFailed,
            _ => Kind::Alert,
        }
    }
}

/// How much an event matters; routes take events at or above their `min_severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = notifications)]
pub struct Notification {
    pub id: String,
    pub incident_id: Option<String>,
    /// info, warning or critical.
    pub severity: String,
    pub subject: String,
    pub body: String,
    pub created_at: chrono::NaiveDateTime,
    /// One of [`Kind::as_str`].
    pub kind: String,
    /// The key figures: a JSON array of `[name, value]` pairs.
    pub facts_json: String,
    /// A dashboard path (`/approvals#approval-…`) the message links to.
    pub link: Option<String>,
    pub approval_id: Option<String>,
    /// A file sent with an email: its blob (content hash)...
    pub attachment_blob: Option<String>,
    /// ...and its file name.
    pub attachment_name: Option<String>,
    /// One event per key: a second push with the same key returns the first.
    pub dedupe_key: Option<String>,
    /// A test message's one channel (routing is skipped).
    pub channel: Option<String>,
    /// When the notify worker made its deliveries; `None`: not yet.
    pub routed_at: Option<chrono::NaiveDateTime>,
}

impl Notification {
    /// The key figures as pairs (an unreadable value is no figures).
    pub fn facts(&self) -> Vec<(String, String)> {
        serde_json::from_str(&self.facts_json).unwrap_or_default()
    }
}

/// An event to write: build with [`Event::new`], then the `with_*` setters.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: Kind,
    pub severity: Severity,
    pub subject: String,
    pub body: String,
    pub facts: Vec<(String, String)>,
    pub link: Option<String>,
    pub incident_id: Option<String>,
    pub approval_id: Option<String>,
    pub attachment: Option<(String, String)>,
    pub dedupe_key: Option<String>,
    pub channel: Option<String>,
}

/// Most key figures one event carries.
pub const MAX_FACTS: usize = 12;

impl Event {
    pub fn new(kind: Kind, severity: Severity, subject: &str, body: &str) -> Self {
        Event {
            kind,
            severity,
            subject: subject.to_owned(),
            body: body.to_owned(),
            facts: Vec::new(),
            link: None,
            incident_id: None,
            approval_id: None,
            attachment: None,
            dedupe_key: None,
            channel: None,
        }
    }

    pub fn fact(mut self, name: &str, value: impl ToString) -> Self {
        self.facts.push((name.to_owned(), value.to_string()));
        self
    }

    pub fn link(mut self, path: impl Into<String>) -> Self {
        self.link = Some(path.into());
        self
    }

    pub fn incident(mut self, id: Option<&str>) -> Self {
        self.incident_id = id.map(str::to_owned);
        self
    }

    pub fn approval(mut self, id: &str) -> Self {
        self.approval_id = Some(id.to_owned());
        self
    }

    /// A file for email channels: a blob's content hash and the name it is sent under.
    pub fn attach(mut self, blob: &str, name: &str) -> Self {
        self.attachment = Some((blob.to_owned(), name.to_owned()));
        self
    }

    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    /// Sends to this channel alone (a test message), whatever the routes say.
    pub fn only_to(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_owned());
        self
    }
}

/// Writes an event (inside the caller's transaction, if any). With a dedupe key already
/// written, nothing new is written and the first event is returned. Errors: a dedupe key over
/// 200 characters (a caller's bug).
pub fn push(conn: &mut DbConnection, event: Event) -> Result<Notification, AppError> {
    if let Some(key) = &event.dedupe_key {
        if key.chars().count() > 200 {
            return Err(AppError::Internal(anyhow::anyhow!(
                "an outbox dedupe key is longer than 200 characters"
            )));
        }
    }
    let facts: Vec<(String, String)> = event
        .facts
        .iter()
        .take(MAX_FACTS)
        .map(|(k, v)| (bounded(k, 60), bounded(v, 200)))
        .collect();
    let row = Notification {
        id: uuid::Uuid::now_v7().to_string(),
        incident_id: event.incident_id,
        severity: event.severity.as_str().to_owned(),
        subject: bounded(&event.subject, 200),
        body: bounded(&event.body, 4000),
        created_at: crate::db::now(),
        kind: event.kind.as_str().to_owned(),
        facts_json: serde_json::to_string(&facts).unwrap_or_else(|_| "[]".into()),
        link: event.link.map(|l| bounded(&l, 300)),
        approval_id: event.approval_id,
        attachment_blob: event.attachment.as_ref().map(|a| a.0.clone()),
        attachment_name: event.attachment.map(|a| bounded(&a.1, 100)),
        dedupe_key: event.dedupe_key,
        channel: event.channel,
        routed_at: None,
    };
    // Two writers of one key (two replicas' weekly job): the first row stays, the second
    // writes nothing and gets the first.
    let insert = diesel::insert_into(notifications::table)
        .values(&row)
        .on_conflict_do_nothing();
    let written = match conn {
        DbConnection::Sqlite(c) => insert.execute(c)?,
        DbConnection::Postgres(c) => insert.execute(c)?,
    };
    if written == 0 {
        if let Some(key) = &row.dedupe_key {
            return notifications::table
                .filter(notifications::dedupe_key.eq(key))
                .select(Notification::as_select())
                .first(conn)
                .map_err(AppError::from);
        }
    }
    Ok(row)
}

/// The newest events, newest first; with `incident`, that incident's only, oldest first.
pub fn list(
    conn: &mut DbConnection,
    incident: Option<&str>,
    limit: i64,
) -> Result<Vec<Notification>, AppError> {
    let mut q = notifications::table
        .select(Notification::as_select())
        .into_boxed();
    if let Some(id) = incident {
        q = q
            .filter(notifications::incident_id.eq(id.to_owned()))
            .order(notifications::id.asc());
    } else {
        q = q.order(notifications::id.desc());
    }
    Ok(q.limit(limit).load(conn)?)
}

/// Whether an event with this dedupe key was written.
pub fn exists(conn: &mut DbConnection, dedupe_key: &str) -> Result<bool, AppError> {
    Ok(notifications::table
        .filter(notifications::dedupe_key.eq(dedupe_key))
        .select(notifications::id)
        .first::<String>(conn)
        .optional()?
        .is_some())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Notification, AppError> {
    notifications::table
        .find(id)
        .select(Notification::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| AppError::NotFound(format!("notification {} not found", bounded(id, 64))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_severities_read_back() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("nope"), None);
        assert!(Severity::Critical > Severity::Warning && Severity::Warning > Severity::Info);
        assert_eq!(Kind::of_alert("drift"), Kind::DriftDetected);
        assert_eq!(Kind::of_alert("decay"), Kind::Alert);
    }
}
