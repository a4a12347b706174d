//! Notifications: routes the outbox's events ([`crate::outbox`]) to channels (email, Slack,
//! webhooks) and delivers them with retries and exponential backoff, so that nothing is lost
//! across restarts: at least once per delivery row, and once unless a worker dies between a send
//! and its record (the repeat carries the same delivery id).
//!
//! Owns the `notification_deliveries` table, `[notify]` settings, the channel senders and signed
//! approval links. Reads the outbox and the blob store (attachments). Domain modules never
//! import it: they write outbox rows. It knows no HTTP or screens.

pub mod channels;
pub mod links;
pub mod settings;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::data::blob::BlobStore;
use crate::db::Db;
use crate::error::AppError;
use crate::outbox;
use crate::telemetry::{NOTIFICATIONS_PENDING, NOTIFICATIONS_TOTAL};
use channels::{Outgoing, SendError};
use store::{Delivery, Outcome};

/// Events routed at a time.
const BATCH: i64 = 50;

/// Channels sent to side by side.
const PARALLEL_CHANNELS: usize = 8;

/// Most deliveries one channel sends in a pass (then the pass ends and routes anew).
const PER_CHANNEL: usize = 100;

/// Seconds a claim stays this worker's before another may take the delivery again. A worker
/// claims one delivery at a time, just before sending it, so the lease covers one send: SMTP's
/// timeout applies to each step (connect, each command), so it is many timeouts, and at least 10
/// minutes.
pub fn lease_secs(settings: &Settings) -> i64 {
    i64::try_from(settings.notify.timeout_secs.saturating_mul(20).max(600)).unwrap_or(i64::MAX / 4)
}

/// The outbox worker: every `notify.poll_secs`, a [`pass`], until `stop`.
pub async fn run_worker(
    db: Db,
    blobs: Arc<dyn BlobStore>,
    settings: Arc<Settings>,
    stop: CancellationToken,
) {
    let every = Duration::from_secs(settings.notify.poll_secs);
    loop {
        if let Err(e) = pass(&db, &blobs, &settings, &stop).await {
            tracing::warn!(error = %e, "notification pass failed; the next pass retries");
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One pass: route, then send what is due, each channel on its own task (at most
/// [`PARALLEL_CHANNELS`] at once, the longest-waiting first), until nothing of it is due, a
/// send to it fails for now (its next try waits out its backoff), or `stop`. A slow or dead
/// channel holds its own task only: the others go on sending, and the pass ends when the last
/// one is done (a dead channel costs the pass one timeout, not one per message).
pub async fn pass(
    db: &Db,
    blobs: &Arc<dyn BlobStore>,
    settings: &Arc<Settings>,
    stop: &CancellationToken,
) -> Result<(), AppError> {
    let s = settings.clone();
    db.run(move |conn| store::route_pending(conn, &s.notify, BATCH, None))
        .await?;
    let lease = lease_secs(settings);
    let channels = db
        .run(move |conn| store::channels_due(conn, lease, PARALLEL_CHANNELS))
        .await?;
    let mut tasks = tokio::task::JoinSet::new();
    for channel in channels {
        let (db, blobs, settings, stop) =
            (db.clone(), blobs.clone(), settings.clone(), stop.clone());
        tasks.spawn(async move { drain(&db, &blobs, &settings, &stop, channel).await });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a channel's sends stopped; the next pass goes on")
            }
            Err(e) => tracing::error!(error = %e, "a channel's send task failed"),
            Ok(Ok(())) => {}
        }
    }
    let (waiting, _) = db.run(store::counts).await?;
    metrics::gauge!(NOTIFICATIONS_PENDING).set(waiting as f64);
    Ok(())
}

/// Sends one channel's due deliveries in order, each claimed just before its send, until none
/// is due, one fails for now, [`PER_CHANNEL`] were sent, or `stop`.
async fn drain(
    db: &Db,
    blobs: &Arc<dyn BlobStore>,
    settings: &Arc<Settings>,
    stop: &CancellationToken,
    channel: String,
) -> Result<(), AppError> {
    let lease = lease_secs(settings);
    for _ in 0..PER_CHANNEL {
        if stop.is_cancelled() {
            break;
        }
        let ch = channel.clone();
        let Some(delivery) = db
            .run(move |conn| store::claim_next(conn, lease, &ch))
            .await?
        else {
            break;
        };
        let (db, blobs, s) = (db.clone(), blobs.clone(), settings.clone());
        let (status, _) =
            tokio::task::spawn_blocking(move || deliver(&db, blobs.as_ref(), &s, &delivery))
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("delivery task: {e}")))??;
        if status == "pending" {
            // Down for now: the rest of this channel waits for the next pass.
            break;
        }
    }
    Ok(())
}

/// Sends one claimed delivery and records how it ended. Blocking. Returns the status written
/// (sent, pending or failed; "lost" when another worker took the claim over and nothing was
/// written) and the error, if any.
pub fn deliver(
    db: &Db,
    blobs: &dyn BlobStore,
    settings: &Settings,
    delivery: &Delivery,
) -> Result<(&'static str, Option<String>), AppError> {
    let prepared = (|| -> Result<_, AppError> {
        use crate::db::schema::agent_approvals as a;
        use diesel::prelude::*;
        let mut conn = db.get()?;
        let event = outbox::find(&mut conn, &delivery.notification_id)?;
        let expires: Option<chrono::NaiveDateTime> = match &event.approval_id {
            Some(id) => a::table
                .find(id)
                .select(a::expires_at)
                .first(&mut *conn)
                .optional()?,
            None => None,
        };
        Ok((event, expires))
    })();
    let (event, approval_expires) = match prepared {
        Ok(p) => p,
        Err(e) => {
            // Not sent: the claim goes back as a retry (if the store answers at all; else the
            // lease runs out), never left to wait out the lease for nothing.
            let why = format!("not sent: {e}");
            if let Ok(mut conn) = db.get() {
                let status =
                    store::record(&mut conn, &settings.notify, delivery, Outcome::Retry(&why))?;
                return Ok((status, Some(why)));
            }
            return Err(e);
        }
    };
    let sent = match settings.notify.channel(&delivery.channel) {
        None => Err(SendError::Permanent(format!(
            "channel {} is no longer configured",
            delivery.channel
        ))),
        Some(channel) => {
            match outgoing_parts(blobs, settings, &event, channel.kind(), approval_expires) {
                Err(e) => Err(e),
                Ok((link, attachment)) => {
                    let out = Outgoing {
                        delivery_id: &delivery.id,
                        event: &event,
                        link,
                        attachment,
                    };
                    channels::send(
                        channel,
                        &out,
                        Duration::from_secs(settings.notify.timeout_secs),
                    )
                }
            }
        }
    };
    let error = sent.as_ref().err().map(|e| e.message().to_owned());
    let outcome = match &sent {
        Ok(()) => Outcome::Sent,
        Err(SendError::Transient(e)) => Outcome::Retry(e),
        Err(SendError::Permanent(e)) => Outcome::Failed(e),
    };
    let status = store::record(&mut *db.get()?, &settings.notify, delivery, outcome)?;
    if status == "lost" {
        // Another worker took the delivery over (this one outlived its lease): its result is
        // that worker's to record.
        tracing::warn!(delivery = %delivery.id, "a delivery's claim was taken over; its result is not recorded here");
        return Ok((status, error));
    }
    let label = match status {
        "sent" => "sent",
        "pending" => "retry",
        _ => "failed",
    };
    let kind = match delivery.channel_kind.as_str() {
        "email" => "email",
        "slack" => "slack",
        _ => "webhook",
    };
    metrics::counter!(NOTIFICATIONS_TOTAL, "channel" => kind, "outcome" => label).increment(1);
    if let Some(e) = &error {
        tracing::warn!(delivery = %delivery.id, channel = %delivery.channel, attempt = delivery.attempts, status, error = %e, "notification not sent");
    }
    Ok((status, error))
}

/// A file sent with an email: its name and bytes.
type Attachment = (String, Vec<u8>);

/// The absolute link (an approval's signed) and, for email, the attachment's bytes.
fn outgoing_parts(
    blobs: &dyn BlobStore,
    settings: &Settings,
    event: &outbox::Notification,
    channel_kind: &str,
    approval_expires: Option<chrono::NaiveDateTime>,
) -> Result<(Option<String>, Option<Attachment>), SendError> {
    let base = settings.notify.public_url.trim_end_matches('/');
    let link = match (&event.approval_id, &event.link) {
        (Some(approval), _) => {
            // Valid for link_ttl_hours, and never past the request's own expiry.
            let mut until =
                chrono::Utc::now().timestamp() + i64::from(settings.notify.link_ttl_hours) * 3600;
            if let Some(at) = approval_expires {
                until = until.min(at.and_utc().timestamp());
            }
            Some(format!(
                "{base}{}",
                links::approval_path_until(approval, until)
                    .map_err(|e| SendError::Transient(e.to_string()))?
            ))
        }
        (None, Some(path)) => Some(format!("{base}{path}")),
        (None, None) => None,
    };
    let attachment = match (channel_kind, &event.attachment_blob, &event.attachment_name) {
        ("email", Some(blob), Some(name)) => Some((
            name.clone(),
            blobs
                .get(blob)
                .map_err(|e| SendError::Transient(format!("attachment {name}: {e}")))?,
        )),
        _ => None,
    };
    Ok((link, attachment))
}

/// The channels a test is being sent to in this process.
static TESTING: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A channel's turn for a test send, given back when dropped.
struct TestTurn(String);

impl TestTurn {
    fn take(channel: &str) -> Result<TestTurn, AppError> {
        // A test that panicked left nothing half-done behind this lock.
        let mut busy = TESTING.lock().unwrap_or_else(|p| p.into_inner());
        if busy.iter().any(|c| c == channel) {
            return Err(AppError::Conflict(format!(
                "a test message to {channel} is being sent; try again when it is done"
            )));
        }
        busy.push(channel.to_owned());
        Ok(TestTurn(channel.to_owned()))
    }
}

impl Drop for TestTurn {
    fn drop(&mut self) {
        let mut busy = TESTING.lock().unwrap_or_else(|p| p.into_inner());
        busy.retain(|c| *c != self.0);
    }
}

/// `steward notify test CHANNEL`: writes a test event for that channel alone and sends it now,
/// recorded in the outbox like any other. Blocking. Returns the delivery's final status and
/// its error.
pub fn send_test(
    db: &Db,
    blobs: &dyn BlobStore,
    settings: &Settings,
    channel: &str,
    actor: &str,
) -> Result<(Delivery, &'static str, Option<String>), AppError> {
    let Some(c) = settings.notify.channel(channel) else {
        return Err(AppError::NotFound(format!(
            "no channel `{}` in notify.channels",
            crate::error::bounded(channel, 64)
        )));
    };
    let mut conn = db.get()?;
    let message = outbox::Event::new(
        outbox::Kind::Test,
        outbox::Severity::Info,
        &format!("Steward test message to {}", c.name()),
        &format!(
            "A test of the {} channel {}, sent by {actor}. If you read this, Steward's \
                 notifications reach you here.",
            c.kind(),
            c.name()
        ),
    )
    .fact("Channel", c.name())
    .fact("Kind", c.kind())
    .link("/notifications")
    .only_to(c.name());
    // One test at a time per channel (each may wait out that channel's timeout).
    let _one = TestTurn::take(c.name())?;
    let event = crate::audit::with_event(&mut conn, |conn| {
        let event = outbox::push(conn, message)?;
        let audit =
            crate::audit::NewEvent::new(actor, "notify.test", format!("channel:{}", c.name()))
                .after(serde_json::json!({ "notification": event.id, "channel_kind": c.kind() }));
        Ok((event, audit))
    })?;
    store::route_pending(&mut conn, &settings.notify, 1, Some(&event.id))?;
    let delivery: Delivery = {
        use crate::db::schema::notification_deliveries as d;
        use diesel::prelude::*;
        let id: String = d::table
            .filter(d::notification_id.eq(&event.id))
            .select(d::id)
            .first(&mut *conn)?;
        match store::claim(&mut conn, lease_secs(settings), &id)? {
            Some(d) => d,
            // A server's worker took it first: it sends it.
            None => {
                let d = d::table
                    .find(&id)
                    .select(Delivery::as_select())
                    .first(&mut *conn)?;
                let status = if d.status == "sent" {
                    "sent"
                } else {
                    "pending"
                };
                return Ok((d, status, None));
            }
        }
    };
    drop(conn);
    let (status, error) = deliver(db, blobs, settings, &delivery)?;
    Ok((delivery, status, error))
}
