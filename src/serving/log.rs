//! The prediction log: every prediction is stored (request id, time, model version, features,
//! probability, class, latency) for monitoring and feedback.
//!
//! Handlers hand rows to a queue bounded in rows (a semaphore of `serving.log_queue` permits,
//! returned once the rows are stored) and one writer thread stores them in batches, one
//! transaction each. When the queue is full a request waits for room (backpressure): nothing
//! is dropped. `flush` waits until everything queued before it is stored; shutdown calls it
//! after the HTTP server has drained, so SIGTERM loses nothing.
//!
//! The log is written at the request rate, so its insert is the one place that leaves diesel:
//! on SQLite the writer keeps its own rusqlite connection and steps one prepared statement per
//! row (diesel rebuilds and re-binds the query for every row, which cost about twice SQLite's
//! own work). On Postgres it sends diesel multi-row inserts through the pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use tokio::sync::{Semaphore, oneshot};

use crate::db::schema::predictions;
use crate::db::{Db, DbConnection};
use crate::error::AppError;
use crate::telemetry::{
    PREDICTION_LOG_FLUSH_SECONDS, PREDICTION_LOG_QUEUE_DEPTH, PREDICTION_LOG_ROWS_TOTAL,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = predictions)]
pub struct PredictionRow {
    pub request_id: String,
    pub created_at: chrono::NaiveDateTime,
    pub model: String,
    pub model_version: i32,
    pub endpoint: String,
    pub features_json: String,
    pub probability: f64,
    pub prediction: i32,
    pub latency_us: i64,
}

impl PredictionRow {
    /// The features as the log stores them: a JSON array in the model's feature order
    /// (compact, since the log is written at the request rate).
    pub fn encode_features(row: &[crate::ml::features::Raw]) -> String {
        // Numbers, strings and nulls always serialize.
        serde_json::to_string(row).unwrap_or_else(|_| "[]".into())
    }

    /// The stored features named again, in the schema's order.
    pub fn named_features<'a>(&self, names: &'a [String]) -> Vec<(&'a str, serde_json::Value)> {
        let values: Vec<serde_json::Value> =
            serde_json::from_str(&self.features_json).unwrap_or_default();
        names.iter().map(String::as_str).zip(values).collect()
    }
}

enum Message {
    Rows(Vec<PredictionRow>),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct PredictionLog {
    tx: mpsc::Sender<Message>,
    room: Arc<Semaphore>,
    capacity: usize,
    /// Held by every handle, never read: the writer holds it weakly to know when they are
    /// all gone.
    _handles: Arc<()>,
}

/// How the writer batches: at most `batch` rows per transaction, and after the first row of a
/// batch arrives it waits `linger` for more, so a busy server commits every few milliseconds
/// instead of once per handful of rows (each commit costs SQLite its page writes and locks).
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub batch: usize,
    pub linger: Duration,
}

impl PredictionLog {
    /// Starts the writer thread; it ends when every handle is dropped and the queue is empty.
    pub fn start(db: Db, capacity: usize, batching: Batching) -> std::io::Result<PredictionLog> {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::channel();
        let room = Arc::new(Semaphore::new(capacity));
        let handles = Arc::new(());
        let sink = match db.sqlite_path() {
            Some(path) => Sink::Sqlite {
                path: path.to_owned(),
                conn: None,
            },
            None => Sink::Pool(db),
        };
        let writer = Writer {
            sink,
            rx,
            batching: Batching {
                batch: batching.batch.max(1),
                linger: batching.linger,
            },
            room: room.clone(),
            capacity,
            handles: Arc::downgrade(&handles),
        };
        // A thread of its own, not a task: the store calls block, and one long-lived thread
        // keeps its connection and prepared statement instead of hopping across the blocking
        // pool for every batch.
        std::thread::Builder::new()
            .name("prediction-log".into())
            .spawn(move || writer.run())?;
        Ok(PredictionLog {
            tx,
            room,
            capacity,
            _handles: handles,
        })
    }

    /// Queues rows; waits while the queue holds `serving.log_queue` rows. A request larger
    /// than the whole queue waits for it to be empty.
    pub async fn record(&self, rows: Vec<PredictionRow>) -> Result<(), AppError> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len().min(self.capacity) as u32;
        // The permits come back when the writer has stored the rows.
        self.room
            .acquire_many(n)
            .await
            .map_err(|_| stopped())?
            .forget();
        self.tx.send(Message::Rows(rows)).map_err(|_| stopped())
    }

    /// Waits until every row queued before this call is stored.
    pub async fn flush(&self) -> Result<(), AppError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Message::Flush(done)).map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())
    }

    /// Rows waiting in the queue.
    pub fn depth(&self) -> usize {
        self.capacity.saturating_sub(self.room.available_permits())
    }
}

fn stopped() -> AppError {
    AppError::Unavailable("the prediction log has stopped".into())
}

struct Writer {
    sink: Sink,
    rx: mpsc::Receiver<Message>,
    batching: Batching,
    room: Arc<Semaphore>,
    // Passed in, not read from `room`: rows may be queued before the thread first runs.
    capacity: usize,
    handles: std::sync::Weak<()>,
}

impl Writer {
    fn run(mut self) {
        while let Ok(first) = self.rx.recv() {
            let mut rows = Vec::new();
            let mut waiters = Vec::new();
            Self::take(first, &mut rows, &mut waiters);
            self.drain(&mut rows, &mut waiters);
            // Linger only for a batch that is not full and that nobody waits on, so the writer
            // keeps up at any rate and a flush is answered at once.
            if rows.len() < self.batching.batch
                && waiters.is_empty()
                && !self.batching.linger.is_zero()
            {
                std::thread::sleep(self.batching.linger);
                self.drain(&mut rows, &mut waiters);
            }
            metrics::gauge!(PREDICTION_LOG_QUEUE_DEPTH)
                .set(self.capacity.saturating_sub(self.room.available_permits()) as f64);
            self.store(&rows);
            self.room.add_permits(rows.len().min(self.capacity));
            for done in waiters {
                let _ = done.send(());
            }
        }
    }

    fn take(
        message: Message,
        rows: &mut Vec<PredictionRow>,
        waiters: &mut Vec<oneshot::Sender<()>>,
    ) {
        match message {
            Message::Rows(r) => rows.extend(r),
            // Everything before the flush is in `rows` now; answer once it is stored.
            Message::Flush(done) => waiters.push(done),
        }
    }

    /// Takes what is queued, up to a full batch.
    fn drain(&self, rows: &mut Vec<PredictionRow>, waiters: &mut Vec<oneshot::Sender<()>>) {
        while rows.len() < self.batching.batch {
            let Ok(message) = self.rx.try_recv() else {
                break;
            };
            Self::take(message, rows, waiters);
        }
    }

    /// Stores a batch, retrying until the store takes it: rows are never dropped, and while
    /// the store is down the queue fills and requests wait. The one exception is a log whose
    /// handles are all gone without a flush: then there is nobody left to retry for.
    fn store(&mut self, rows: &[PredictionRow]) {
        if rows.is_empty() {
            return;
        }
        let mut backoff = Duration::from_millis(50);
        loop {
            let started = Instant::now();
            match self.sink.insert(rows) {
                Ok(()) => {
                    metrics::histogram!(PREDICTION_LOG_FLUSH_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!(PREDICTION_LOG_ROWS_TOTAL).increment(rows.len() as u64);
                    return;
                }
                Err(e) if self.handles.strong_count() == 0 => {
                    // Every handle was dropped without a flush (shutdown flushes first), so
                    // the process is tearing down and no caller is left to wait for these.
                    tracing::error!(error = %e, rows = rows.len(), "the prediction log was closed with rows it could not store");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), "storing predictions failed; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Where the writer stores its batches.
enum Sink {
    /// The writer's own connection, opened on first use (so a store that is briefly
    /// unavailable is retried like any failed batch) and reopened after an error.
    Sqlite {
        path: PathBuf,
        conn: Option<rusqlite::Connection>,
    },
    /// Postgres, through the pool.
    Pool(Db),
}

/// The same columns and timestamp text as diesel's `Insertable`, so diesel reads the rows back.
const SQLITE_INSERT: &str = "INSERT INTO predictions (request_id, created_at, model, \
     model_version, endpoint, features_json, probability, prediction, latency_us) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Rows per INSERT statement on Postgres: 9 columns each stays far under its parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

impl Sink {
    /// One transaction per batch: it is stored whole or not at all.
    fn insert(&mut self, rows: &[PredictionRow]) -> Result<(), AppError> {
        match self {
            Sink::Sqlite { path, conn } => {
                let fail = |e: rusqlite::Error| AppError::Unavailable(format!("SQLite: {e}"));
                let mut c = match conn.take() {
                    Some(c) => c,
                    None => {
                        // Never create the file: the store and its tables exist before the
                        // log starts, and a missing file is an error to retry, not a new store.
                        let opened = rusqlite::Connection::open_with_flags(
                            &*path,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                                | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                        )
                        .map_err(fail)?;
                        opened
                            .execute_batch(crate::db::SQLITE_PRAGMAS)
                            .map_err(fail)?;
                        opened
                    }
                };
                sqlite_insert(&mut c, rows).map_err(fail)?;
                // Kept only after a success: a retry gets a fresh connection, whatever state
                // a failure left this one in.
                *conn = Some(c);
                Ok(())
            }
            Sink::Pool(db) => db.get()?.transaction(|conn| {
                match &mut **conn {
                    DbConnection::Postgres(c) => {
                        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                            diesel::insert_into(predictions::table)
                                .values(chunk)
                                .execute(c)?;
                        }
                    }
                    // A SQLite store has its own sink.
                    DbConnection::Sqlite(_) => {
                        return Err(AppError::Internal(anyhow::anyhow!(
                            "SQLite prediction logs are written by their own connection"
                        )));
                    }
                }
                Ok(())
            }),
        }
    }
}

/// An immediate transaction takes the write lock (or waits for it, up to the busy timeout)
/// before the first row; the prepared statement is stepped once per row.
fn sqlite_insert(conn: &mut rusqlite::Connection, rows: &[PredictionRow]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let mut statement = tx.prepare_cached(SQLITE_INSERT)?;
        for row in rows {
            statement.execute(rusqlite::params![
                row.request_id,
                sqlite_timestamp(&row.created_at),
                row.model,
                row.model_version,
                row.endpoint,
                row.features_json,
                row.probability,
                row.prediction,
                row.latency_us,
            ])?;
        }
    }
    tx.commit()
}

/// diesel's text for a SQLite `TIMESTAMP` (chrono's `%F %T%.f`), written digit by digit: the
/// log formats one per row, and chrono's formatter cost more than the row's insert itself.
fn sqlite_timestamp(t: &chrono::NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let nanos = t.nanosecond();
    if !(1000..=9999).contains(&t.year()) || nanos >= 1_000_000_000 {
        return t.format("%F %T%.f").to_string();
    }
    fn digits(out: &mut String, value: u32, width: u32) {
        for place in (0..width).rev() {
            let digit = value / 10_u32.pow(place) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
    }
    let mut out = String::with_capacity(29);
    digits(&mut out, t.year() as u32, 4);
    out.push('-');
    digits(&mut out, t.month(), 2);
    out.push('-');
    digits(&mut out, t.day(), 2);
    out.push(' ');
    digits(&mut out, t.hour(), 2);
    out.push(':');
    digits(&mut out, t.minute(), 2);
    out.push(':');
    digits(&mut out, t.second(), 2);
    // `%.f`: no fraction for whole seconds, else 3, 6 or 9 digits, as few as are exact.
    if nanos != 0 {
        out.push('.');
        if nanos % 1_000_000 == 0 {
            digits(&mut out, nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            digits(&mut out, nanos / 1_000, 6);
        } else {
            digits(&mut out, nanos, 9);
        }
    }
    out
}

/// The newest predictions, each with its feedback label once one arrived.
#[derive(Debug)]
pub struct Recent {
    /// Rows in the prediction log.
    pub total: i64,
    /// Predictions that have a feedback label.
    pub labelled: i64,
    pub rows: Vec<(PredictionRow, Option<i32>)>,
}

pub fn recent(conn: &mut DbConnection, limit: i64) -> Result<Recent, AppError> {
    use crate::db::schema::feedback;
    let total: i64 = predictions::table.count().get_result(conn)?;
    let labelled: i64 = feedback::table.count().get_result(conn)?;
    let rows = predictions::table
        .left_join(feedback::table)
        // Request ids are UUIDv7, so the key read backwards is newest first (the migration
        // that dropped the created_at index says more).
        .order(predictions::request_id.desc())
        .limit(limit.clamp(0, 1000))
        .select((PredictionRow::as_select(), feedback::label.nullable()))
        .load(conn)?;
    Ok(Recent {
        total,
        labelled,
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_as_diesel_writes_them() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 9).expect("date");
        for (h, m, sec, nanos) in [
            (0, 0, 0, 0),
            (23, 59, 59, 999_999_000),
            (7, 5, 3, 120_000_000),
            (12, 30, 1, 5_000),
            (12, 30, 1, 123_456_789),
            (12, 30, 1, 1),
        ] {
            let t = day.and_hms_nano_opt(h, m, sec, nanos).expect("time");
            assert_eq!(sqlite_timestamp(&t), t.format("%F %T%.f").to_string());
        }
        let old = chrono::NaiveDate::from_ymd_opt(812, 3, 4)
            .and_then(|d| d.and_hms_micro_opt(1, 2, 3, 4))
            .expect("time");
        assert_eq!(sqlite_timestamp(&old), old.format("%F %T%.f").to_string());
        let now = crate::db::now();
        assert_eq!(sqlite_timestamp(&now), now.format("%F %T%.f").to_string());
    }
}
