//! The deliveries: one row per (event, channel), made when the worker routes an event, then
//! claimed, sent and recorded. A claim is a conditional update (`pending` → `sending`, with the
//! claim's time), so two workers (two replicas) never send one row at once; a claim older than
//! the lease (a worker that died mid-send) may be taken again, and its message goes out again
//! with the same delivery id, which receivers use to drop the repeat.

use diesel::prelude::*;
use serde::Serialize;

use super::settings::NotifySettings;
use crate::db::DbConnection;
use crate::db::schema::{notification_deliveries as d, notifications as n};
use crate::error::AppError;
use crate::outbox::{self, Kind, Notification, Severity};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = d)]
pub struct Delivery {
    pub id: String,
    pub notification_id: String,
    pub channel: String,
    /// email, slack or webhook.
    pub channel_kind: String,
    /// pending, sending, sent or failed.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: chrono::NaiveDateTime,
    pub last_error: Option<String>,
    pub claimed_at: Option<chrono::NaiveDateTime>,
    pub sent_at: Option<chrono::NaiveDateTime>,
    pub created_at: chrono::NaiveDateTime,
}

/// Routes up to `limit` unrouted events: each gets one pending delivery per channel its routes
/// (or its own `channel`, for a test) name (`only`: that event alone), in one transaction with marking it routed, so an
/// event is routed once however many workers look. Returns the events routed.
pub fn route_pending(
    conn: &mut DbConnection,
    settings: &NotifySettings,
    limit: i64,
    only: Option<&str>,
) -> Result<usize, AppError> {
    let mut q = n::table.filter(n::routed_at.is_null()).into_boxed();
    if let Some(id) = only {
        q = q.filter(n::id.eq(id.to_owned()));
    }
    let waiting: Vec<Notification> = q
        .order(n::id.asc())
        .limit(limit)
        .select(Notification::as_select())
        .load(conn)?;
    let mut routed = 0;
    let too_old = crate::db::now() - chrono::Duration::hours(i64::from(settings.max_age_hours));
    for event in waiting {
        // Written while no worker ran for longer than max_age_hours: news no more (an old
        // approval request, last month's summary). Kept in the outbox, sent nowhere.
        let stale = event.created_at < too_old;
        if stale {
            tracing::warn!(notification = %event.id, kind = %event.kind, "notification too old to send; kept, not sent");
        }
        let channels = match &event.channel {
            _ if stale => Vec::new(),
            Some(name) => settings.channel(name).into_iter().collect(),
            None => {
                let kind = Kind::parse(&event.kind).unwrap_or(Kind::Alert);
                let severity = Severity::parse(&event.severity).unwrap_or(Severity::Info);
                settings.channels_for(kind, severity)
            }
        };
        let done = conn.transaction(|conn| {
            let now = crate::db::now();
            let claimed = diesel::update(n::table.find(&event.id).filter(n::routed_at.is_null()))
                .set(n::routed_at.eq(Some(now)))
                .execute(conn)?;
            if claimed == 0 {
                return Ok::<_, AppError>(false);
            }
            for c in &channels {
                diesel::insert_into(d::table)
                    .values(Delivery {
                        id: uuid::Uuid::now_v7().to_string(),
                        notification_id: event.id.clone(),
                        channel: c.name().to_owned(),
                        channel_kind: c.kind().to_owned(),
                        status: "pending".into(),
                        attempts: 0,
                        next_attempt_at: now,
                        last_error: None,
                        claimed_at: None,
                        sent_at: None,
                        created_at: now,
                    })
                    .execute(conn)?;
            }
            Ok(true)
        })?;
        routed += usize::from(done);
    }
    Ok(routed)
}

/// Claims delivery `id` if it is due (pending and due, or claimed longer than `lease_secs` ago
/// by a worker that never recorded the result): a conditional update, so two workers never both
/// get it.
pub fn claim(
    conn: &mut DbConnection,
    lease_secs: i64,
    id: &str,
) -> Result<Option<Delivery>, AppError> {
    let now = crate::db::now();
    let stale = now - chrono::Duration::seconds(lease_secs);
    let took = diesel::update(d::table.find(id).filter(due_now(now, stale)))
        .set((
            d::status.eq("sending"),
            d::claimed_at.eq(Some(now)),
            d::attempts.eq(d::attempts + 1),
        ))
        .execute(conn)?;
    if took == 0 {
        return Ok(None);
    }
    Ok(Some(
        d::table
            .find(id)
            .select(Delivery::as_select())
            .first(conn)?,
    ))
}

type DueNow = diesel::dsl::Or<
    diesel::dsl::And<
        diesel::dsl::Eq<d::status, &'static str>,
        diesel::dsl::LtEq<d::next_attempt_at, chrono::NaiveDateTime>,
    >,
    diesel::dsl::And<
        diesel::dsl::Eq<d::status, &'static str>,
        diesel::dsl::Lt<d::claimed_at, chrono::NaiveDateTime>,
    >,
>;

/// Whether a delivery is due now: pending and due, or claimed longer than the lease ago.
fn due_now(now: chrono::NaiveDateTime, stale: chrono::NaiveDateTime) -> DueNow {
    d::status
        .eq("pending")
        .and(d::next_attempt_at.le(now))
        .or(d::status.eq("sending").and(d::claimed_at.lt(stale)))
}

/// The channels with something due, those waiting longest first, at most `limit`.
pub fn channels_due(
    conn: &mut DbConnection,
    lease_secs: i64,
    limit: usize,
) -> Result<Vec<String>, AppError> {
    let now = crate::db::now();
    let stale = now - chrono::Duration::seconds(lease_secs);
    let mut due: Vec<(String, Option<chrono::NaiveDateTime>)> = d::table
        .filter(due_now(now, stale))
        .group_by(d::channel)
        .select((d::channel, diesel::dsl::min(d::next_attempt_at)))
        .limit(256)
        .load(conn)?;
    due.sort_by_key(|(_, oldest)| *oldest);
    Ok(due.into_iter().take(limit).map(|(c, _)| c).collect())
}

/// Claims the oldest due delivery of `channel`, if any.
pub fn claim_next(
    conn: &mut DbConnection,
    lease_secs: i64,
    channel: &str,
) -> Result<Option<Delivery>, AppError> {
    let now = crate::db::now();
    let stale = now - chrono::Duration::seconds(lease_secs);
    // Another worker may take the oldest first: then the next.
    let candidates: Vec<String> = d::table
        .filter(d::channel.eq(channel))
        .filter(due_now(now, stale))
        .order(d::next_attempt_at.asc())
        .select(d::id)
        .limit(5)
        .load(conn)?;
    for id in candidates {
        if let Some(d) = claim(conn, lease_secs, &id)? {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// The wait before try `attempts + 1`: `backoff_secs` doubled per try, capped.
pub fn backoff(settings: &NotifySettings, attempts: i32) -> u64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    settings
        .backoff_secs
        .saturating_mul(1_u64 << doublings)
        .min(settings.max_backoff_secs)
}

/// How a claimed delivery ended.
pub enum Outcome<'a> {
    Sent,
    /// Retried later, unless it has used its tries.
    Retry(&'a str),
    Failed(&'a str),
}

/// Records a claimed delivery's result (only while the claim is still this one). Returns the
/// status written: sent, pending (a retry waits) or failed; or "lost" when the claim was taken
/// over by another worker and nothing was written.
pub fn record(
    conn: &mut DbConnection,
    settings: &NotifySettings,
    delivery: &Delivery,
    outcome: Outcome<'_>,
) -> Result<&'static str, AppError> {
    let now = crate::db::now();
    let mine = d::table
        .find(&delivery.id)
        .filter(d::status.eq("sending"))
        .filter(d::claimed_at.eq(delivery.claimed_at));
    let (status, written) = match outcome {
        Outcome::Sent => {
            let n = diesel::update(mine)
                .set((
                    d::status.eq("sent"),
                    d::sent_at.eq(Some(now)),
                    d::last_error.eq(None::<String>),
                ))
                .execute(conn)?;
            ("sent", n)
        }
        Outcome::Retry(e) if delivery.attempts < settings.max_attempts => {
            let wait = i64::try_from(backoff(settings, delivery.attempts)).unwrap_or(i64::MAX / 4);
            let n = diesel::update(mine)
                .set((
                    d::status.eq("pending"),
                    d::next_attempt_at.eq(now + chrono::Duration::seconds(wait)),
                    d::last_error.eq(Some(crate::error::bounded(e, 500))),
                ))
                .execute(conn)?;
            ("pending", n)
        }
        Outcome::Retry(e) | Outcome::Failed(e) => {
            let n = diesel::update(mine)
                .set((
                    d::status.eq("failed"),
                    d::last_error.eq(Some(crate::error::bounded(e, 500))),
                ))
                .execute(conn)?;
            ("failed", n)
        }
    };
    // Not ours any more: another worker took the claim over after its lease ran out.
    Ok(if written == 0 { "lost" } else { status })
}

/// One event with its deliveries, for the outbox's listings.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    pub notification: Notification,
    pub deliveries: Vec<Delivery>,
}

/// Checks an outbox listing's filter: a known status (pending, sent, failed) and a limit of
/// 1..=500.
pub fn check_list(status: Option<String>, limit: i64) -> Result<(Option<String>, i64), AppError> {
    if let Some(s) = &status {
        if !["pending", "sent", "failed"].contains(&s.as_str()) {
            return Err(AppError::validation(
                "status",
                "must be pending, sent or failed",
            ));
        }
    }
    if !(1..=500).contains(&limit) {
        return Err(AppError::validation("limit", "must be between 1 and 500"));
    }
    Ok((status, limit))
}

/// The newest `limit` events with their deliveries; `status` keeps the events with a delivery
/// in that status (pending takes sending too).
pub fn list(
    conn: &mut DbConnection,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxEntry>, AppError> {
    let events: Vec<Notification> = match status {
        None => outbox::list(conn, None, limit)?,
        Some(s) => {
            let statuses: Vec<&str> = if s == "pending" {
                vec!["pending", "sending"]
            } else {
                vec![s]
            };
            let ids = d::table
                .filter(d::status.eq_any(statuses))
                .select(d::notification_id);
            n::table
                .filter(n::id.eq_any(ids))
                .order(n::id.desc())
                .limit(limit)
                .select(Notification::as_select())
                .load(conn)?
        }
    };
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let mut deliveries: Vec<Delivery> = d::table
        .filter(d::notification_id.eq_any(&ids))
        .order(d::id.asc())
        .select(Delivery::as_select())
        .load(conn)?;
    Ok(events
        .into_iter()
        .map(|e| {
            let (mine, rest): (Vec<Delivery>, Vec<Delivery>) = std::mem::take(&mut deliveries)
                .into_iter()
                .partition(|x| x.notification_id == e.id);
            deliveries = rest;
            OutboxEntry {
                notification: e,
                deliveries: mine,
            }
        })
        .collect())
}

/// A person's retry of a failed delivery ([`retry`]) with its `notify.retry` audit event, in one
/// transaction.
pub fn retry_audited(conn: &mut DbConnection, id: &str, actor: &str) -> Result<Delivery, AppError> {
    crate::audit::with_event(conn, |conn| {
        let row = retry(conn, id)?;
        let event = crate::audit::NewEvent::new(
            actor,
            "notify.retry",
            format!("delivery:{}", row.id),
        )
        .after(serde_json::json!({ "channel": row.channel, "notification": row.notification_id }));
        Ok((row, event))
    })
}

/// A failed delivery back to pending, due now, with a fresh count of tries.
pub fn retry(conn: &mut DbConnection, id: &str) -> Result<Delivery, AppError> {
    let n = diesel::update(d::table.find(id).filter(d::status.eq("failed")))
        .set((
            d::status.eq("pending"),
            d::attempts.eq(0),
            d::next_attempt_at.eq(crate::db::now()),
        ))
        .execute(conn)?;
    let row = d::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "delivery {} not found",
                crate::error::bounded(id, 64)
            ))
        })?;
    if n == 0 {
        return Err(AppError::Conflict(format!(
            "delivery {} is {}, not failed; only a failed delivery is retried",
            row.id, row.status
        )));
    }
    Ok(row)
}

/// Deliveries waiting (pending or being sent) and failed.
pub fn counts(conn: &mut DbConnection) -> Result<(i64, i64), AppError> {
    let waiting = d::table
        .filter(d::status.eq_any(["pending", "sending"]))
        .count()
        .get_result(conn)?;
    let failed = d::table
        .filter(d::status.eq("failed"))
        .count()
        .get_result(conn)?;
    Ok((waiting, failed))
}

/// Deletes events older than `keep_days` whose deliveries have all ended (sent or failed), with
/// those deliveries; an incident's stay with it (its timeline). Returns the events deleted.
pub fn prune(conn: &mut DbConnection, keep_days: u32) -> Result<usize, AppError> {
    let before = crate::db::now() - chrono::Duration::days(i64::from(keep_days));
    conn.transaction(|conn| {
        let open = d::table
            .filter(d::status.eq_any(["pending", "sending"]))
            .select(d::notification_id);
        let old: Vec<String> = n::table
            .filter(n::created_at.lt(before))
            .filter(n::incident_id.is_null())
            .filter(n::id.ne_all(open))
            .select(n::id)
            .limit(10_000)
            .load(conn)?;
        diesel::delete(d::table.filter(d::notification_id.eq_any(&old))).execute(conn)?;
        Ok(diesel::delete(n::table.filter(n::id.eq_any(&old))).execute(conn)?)
    })
}
