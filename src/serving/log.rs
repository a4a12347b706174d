//! The prediction log: every prediction is stored (request id, time, model version, features,
//! probability, class, latency) for monitoring and feedback.
//!
//! Handlers hand rows to a queue bounded in rows (a semaphore of `serving.log_queue` permits,
//! returned once the rows are stored) and one writer thread stores them in batches, one
//! transaction each. When the queue is full a request waits for room (backpressure), up to
//! `serving.log_wait_ms`; then it is answered 503 (counted) and its rows are not queued, so a
//! store that is down slows and then refuses new requests instead of hanging them. Nothing
//! queued is dropped. `flush` waits until everything queued before it is stored; shutdown
//! calls it after the HTTP server has drained, so SIGTERM loses nothing.
//!
//! A batch the store refuses is retried a few times, then stored row by row. A row the store
//! refuses on its own while it takes other writes (a poison row) is set aside in
//! `prediction_dead_letters` with the store's error, counted and shown on the Predictions page,
//! so one bad row never holds up the log; while the store is unavailable, rows are retried.
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

use crate::db::schema::{prediction_dead_letters, predictions};
use crate::db::{Db, DbConnection};
use crate::error::AppError;
use crate::telemetry::{
    PREDICTION_LOG_DEAD_LETTERS_TOTAL, PREDICTION_LOG_FLUSH_SECONDS, PREDICTION_LOG_QUEUE_DEPTH,
    PREDICTION_LOG_REJECTED_TOTAL, PREDICTION_LOG_ROWS_TOTAL,
};

/// Whole-batch attempts before a batch is stored row by row.
const BATCH_ATTEMPTS: u32 = 3;

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
    /// The request's latency: for a batch, the whole batch's.
    pub latency_us: i64,
    /// Rows the request scored (1, or the batch's size).
    pub batch_rows: i32,
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
    wait: Duration,
    /// Held by every handle, never read: the writer holds it weakly to know when they are
    /// all gone.
    _handles: Arc<()>,
}

/// How the writer batches: at most `batch` rows per transaction, and after the first row of a
/// batch arrives it waits `linger` for more, so a busy server commits every few milliseconds
/// instead of once per handful of rows (each commit costs SQLite its page writes and locks).
/// A request waits at most `wait` for room in a full queue.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub batch: usize,
    pub linger: Duration,
    pub wait: Duration,
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
                ..batching
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
            wait: batching.wait,
            _handles: handles,
        })
    }

    /// Queues rows; waits while the queue holds `serving.log_queue` rows, at most
    /// `serving.log_wait_ms` (then 503 with Retry-After, and nothing is queued). A request
    /// larger than the whole queue waits for it to be empty.
    pub async fn record(&self, rows: Vec<PredictionRow>) -> Result<(), AppError> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len().min(self.capacity) as u32;
        // The permits come back when the writer has stored the rows.
        match tokio::time::timeout(self.wait, self.room.acquire_many(n)).await {
            Ok(permit) => permit.map_err(|_| stopped())?.forget(),
            Err(_) => {
                metrics::counter!(PREDICTION_LOG_REJECTED_TOTAL).increment(1);
                return Err(AppError::Overloaded {
                    message: "the prediction log is full (the store is slow or unavailable); \
                              nothing was scored or logged; try again shortly"
                        .into(),
                    retry_after_secs: 1,
                });
            }
        }
        self.tx.send(Message::Rows(rows)).map_err(|_| stopped())
    }

    /// Waits until every row queued before this call is stored.
    pub async fn flush(&self) -> Result<(), AppError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Message::Flush(done)).map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())
    }

    /// [`Self::flush`], waiting at most `serving.log_wait_ms`: then 503 with Retry-After (the
    /// store is slow or unavailable; the rows stay queued).
    pub async fn flush_within_wait(&self) -> Result<(), AppError> {
        match tokio::time::timeout(self.wait, self.flush()).await {
            Ok(flushed) => flushed,
            Err(_) => Err(AppError::Overloaded {
                message: "the prediction log is behind (the store is slow or unavailable); \
                          try again shortly"
                    .into(),
                retry_after_secs: 1,
            }),
        }
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
            // And as the store leaves it (else the gauge keeps the depth before the last batch).
            metrics::gauge!(PREDICTION_LOG_QUEUE_DEPTH)
                .set(self.capacity.saturating_sub(self.room.available_permits()) as f64);
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

    /// Stores a batch, whole: while the store is unavailable it is retried as it is (requests
    /// meanwhile wait, then get 503). When the store refuses it [`BATCH_ATTEMPTS`] times while
    /// taking a probe row each time (so the refusal is the batch's, not the store's), it
    /// is stored row by row ([`Writer::store_one`]), so that a poison row is found and set
    /// aside. Nothing is dropped; the one exception is a log whose handles are all gone
    /// without a flush: then there is nobody left to retry for.
    fn store(&mut self, rows: &[PredictionRow]) {
        if rows.is_empty() {
            return;
        }
        let mut backoff = Duration::from_millis(50);
        let mut refusals = 0;
        loop {
            let started = Instant::now();
            match self.sink.insert(rows) {
                Ok(()) => {
                    metrics::histogram!(PREDICTION_LOG_FLUSH_SECONDS)
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!(PREDICTION_LOG_ROWS_TOTAL).increment(rows.len() as u64);
                    return;
                }
                Err(e) if self.abandoned() => {
                    tracing::error!(error = %e, rows = rows.len(), "the prediction log was closed with rows it could not store");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, rows = rows.len(), "storing predictions failed");
                    if matches!(e, SinkError::Refused(_)) && self.sink.probe().is_ok() {
                        refusals += 1;
                        if refusals >= BATCH_ATTEMPTS {
                            break;
                        }
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        for row in rows {
            self.store_one(row);
        }
    }

    /// Every handle was dropped without a flush (shutdown flushes first): the process is
    /// tearing down and no caller is left to wait.
    fn abandoned(&self) -> bool {
        self.handles.strong_count() == 0
    }

    /// Stores one row. While the store is unavailable the row is retried. When the store
    /// answers and refuses the row while it takes a probe row ([`Sink::probe`]), the row goes
    /// to the dead letters; if the store can't take that
    /// either, the store is the trouble, and the row is retried from the start.
    fn store_one(&mut self, row: &PredictionRow) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let error = match self.sink.insert(std::slice::from_ref(row)) {
                Ok(()) => {
                    metrics::counter!(PREDICTION_LOG_ROWS_TOTAL).increment(1);
                    return;
                }
                Err(SinkError::Refused(why)) if self.sink.probe().is_ok() => {
                    match self.sink.dead_letter(row, &why) {
                        Ok(()) => {
                            metrics::counter!(PREDICTION_LOG_DEAD_LETTERS_TOTAL).increment(1);
                            tracing::error!(request_id = %row.request_id, error = %why, "the store refused a prediction-log row; it is set aside in prediction_dead_letters");
                            return;
                        }
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            if self.abandoned() {
                tracing::error!(error = %error, request_id = %row.request_id, "the prediction log was closed with a row it could not store");
                return;
            }
            tracing::error!(error = %error, request_id = %row.request_id, "storing a prediction failed; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

/// Why the store did not take rows.
#[derive(Debug, thiserror::Error)]
enum SinkError {
    /// The store is unavailable, busy or out of space: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The store answered and refused the statement (a constraint, a trigger, a type).
    #[error("{0}")]
    Refused(String),
}

impl From<AppError> for SinkError {
    fn from(e: AppError) -> Self {
        SinkError::Unavailable(e.to_string())
    }
}

impl From<rusqlite::Error> for SinkError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        let refused = match &e {
            rusqlite::Error::SqliteFailure(f, _) => matches!(
                f.code,
                C::ConstraintViolation | C::TypeMismatch | C::TooBig | C::ParameterOutOfRange
            ),
            rusqlite::Error::ToSqlConversionFailure(_) => true,
            _ => false,
        };
        let text = format!("SQLite: {e}");
        if refused {
            SinkError::Refused(text)
        } else {
            SinkError::Unavailable(text)
        }
    }
}

impl From<diesel::result::Error> for SinkError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::DatabaseErrorKind as K;
        use diesel::result::Error as E;
        match &e {
            // The server answered this statement with an error of its own.
            E::DatabaseError(
                K::UnableToSendCommand
                | K::ClosedConnection
                | K::SerializationFailure
                | K::ReadOnlyTransaction,
                _,
            ) => SinkError::Unavailable(format!("PostgreSQL: {e}")),
            // A lock or statement timeout says so in its words: the store is busy, the rows
            // are fine (a probe might pass in the gap between two locks and blame them).
            E::DatabaseError(K::Unknown, info) if crate::error::is_busy(info.message()) => {
                SinkError::Unavailable(format!("PostgreSQL: {e}"))
            }
            // A constraint, a type, or another error diesel can't name (a full disk and a
            // shutdown among them): the writer tells the row's refusal from the store's
            // trouble with a probe row.
            E::DatabaseError(_, _) | E::SerializationError(_) => {
                SinkError::Refused(format!("PostgreSQL: {e}"))
            }
            _ => SinkError::Unavailable(format!("PostgreSQL: {e}")),
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
     model_version, endpoint, features_json, probability, prediction, latency_us, batch_rows) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// Rows per INSERT statement on Postgres: 10 columns each stays far under its parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

impl Sink {
    /// The writer's SQLite connection, opened on first use. The file is never created: the
    /// store and its tables exist before the log starts, and a missing file is an error to
    /// retry, not a new store.
    fn sqlite(
        path: &std::path::Path,
        conn: &mut Option<rusqlite::Connection>,
    ) -> Result<rusqlite::Connection, SinkError> {
        if let Some(c) = conn.take() {
            return Ok(c);
        }
        let unavailable = |e: rusqlite::Error| SinkError::Unavailable(format!("SQLite: {e}"));
        let opened = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        opened
            .execute_batch(crate::db::SQLITE_PRAGMAS)
            .map_err(unavailable)?;
        Ok(opened)
    }

    /// One transaction per batch: it is stored whole or not at all.
    fn insert(&mut self, rows: &[PredictionRow]) -> Result<(), SinkError> {
        match self {
            Sink::Sqlite { path, conn } => {
                let mut c = Self::sqlite(path, conn)?;
                sqlite_insert(&mut c, rows)?;
                // Kept only after a success: a retry gets a fresh connection, whatever state
                // a failure left this one in.
                *conn = Some(c);
                Ok(())
            }
            Sink::Pool(db) => {
                let mut pooled = db.get()?;
                let DbConnection::Postgres(c) = &mut *pooled else {
                    return Err(SinkError::Unavailable(
                        "SQLite prediction logs are written by their own connection".into(),
                    ));
                };
                c.transaction(|c| {
                    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                        diesel::insert_into(predictions::table)
                            .values(chunk)
                            .execute(c)?;
                    }
                    Ok::<_, diesel::result::Error>(())
                })?;
                Ok(())
            }
        }
    }

    /// Whether the store takes a row now: a well-formed row inserted and rolled back, taking
    /// the same locks and space a real one would. A refusal that the probe shares is the
    /// store's trouble (a lock or statement timeout, a full disk, a shutdown: PostgreSQL's
    /// errors reach us without their SQLSTATE), not the row's.
    fn probe(&mut self) -> Result<(), SinkError> {
        let row = PredictionRow {
            request_id: uuid::Uuid::now_v7().to_string(),
            created_at: crate::db::now(),
            model: "probe".into(),
            model_version: 0,
            endpoint: "probe".into(),
            features_json: "[]".into(),
            probability: 0.5,
            prediction: 0,
            latency_us: 0,
            batch_rows: 1,
        };
        match self {
            Sink::Sqlite { path, conn } => {
                let mut c = Self::sqlite(path, conn)?;
                sqlite_insert_then(&mut c, std::slice::from_ref(&row), false)?;
                *conn = Some(c);
                Ok(())
            }
            Sink::Pool(db) => {
                let mut pooled = db.get()?;
                let DbConnection::Postgres(c) = &mut *pooled else {
                    return Err(SinkError::Unavailable("not a PostgreSQL store".into()));
                };
                let outcome = c.transaction(|c| {
                    diesel::insert_into(predictions::table)
                        .values(&row)
                        .execute(c)?;
                    Err::<(), _>(diesel::result::Error::RollbackTransaction)
                });
                match outcome {
                    Err(diesel::result::Error::RollbackTransaction) | Ok(()) => Ok(()),
                    Err(e) => Err(SinkError::Unavailable(format!("PostgreSQL: {e}"))),
                }
            }
        }
    }

    /// Sets a row aside with the error the store gave for it (once: a row already set aside
    /// stays as it was).
    fn dead_letter(&mut self, row: &PredictionRow, error: &str) -> Result<(), SinkError> {
        let letter = DeadLetter {
            request_id: row.request_id.clone(),
            created_at: row.created_at,
            row_json: serde_json::to_string(row).unwrap_or_default(),
            error: crate::error::bounded(error, 500),
            failed_at: crate::db::now(),
        };
        match self {
            Sink::Sqlite { path, conn } => {
                let c = Self::sqlite(path, conn)?;
                c.execute(
                    "INSERT OR IGNORE INTO prediction_dead_letters \
                     (request_id, created_at, row_json, error, failed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        letter.request_id,
                        sqlite_timestamp(&letter.created_at),
                        letter.row_json,
                        letter.error,
                        sqlite_timestamp(&letter.failed_at),
                    ],
                )
                .map_err(|e| SinkError::Unavailable(format!("SQLite: {e}")))?;
                *conn = Some(c);
                Ok(())
            }
            Sink::Pool(db) => {
                let mut pooled = db.get()?;
                let DbConnection::Postgres(c) = &mut *pooled else {
                    return Err(SinkError::Unavailable("not a PostgreSQL store".into()));
                };
                diesel::insert_into(prediction_dead_letters::table)
                    .values(&letter)
                    .on_conflict_do_nothing()
                    .execute(c)
                    .map_err(|e| SinkError::Unavailable(format!("PostgreSQL: {e}")))?;
                Ok(())
            }
        }
    }
}

/// A prediction-log row the store refused, with the store's error.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = prediction_dead_letters)]
pub struct DeadLetter {
    pub request_id: String,
    pub created_at: chrono::NaiveDateTime,
    /// The row as JSON (the prediction log's columns).
    pub row_json: String,
    pub error: String,
    pub failed_at: chrono::NaiveDateTime,
}

/// How many rows are set aside, and the newest of them.
#[derive(Debug)]
pub struct DeadLetters {
    pub total: i64,
    pub rows: Vec<DeadLetter>,
}

pub fn dead_letters(conn: &mut DbConnection, limit: i64) -> Result<DeadLetters, AppError> {
    let total: i64 = prediction_dead_letters::table.count().get_result(conn)?;
    let rows = prediction_dead_letters::table
        .order(prediction_dead_letters::failed_at.desc())
        .limit(limit.clamp(0, 1000))
        .select(DeadLetter::as_select())
        .load(conn)?;
    Ok(DeadLetters { total, rows })
}

/// An immediate transaction takes the write lock (or waits for it, up to the busy timeout)
/// before the first row; the prepared statement is stepped once per row.
fn sqlite_insert(conn: &mut rusqlite::Connection, rows: &[PredictionRow]) -> rusqlite::Result<()> {
    sqlite_insert_then(conn, rows, true)
}

/// Inserts `rows` in one transaction, committed or (a probe) rolled back.
fn sqlite_insert_then(
    conn: &mut rusqlite::Connection,
    rows: &[PredictionRow],
    commit: bool,
) -> rusqlite::Result<()> {
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
                row.batch_rows,
            ])?;
        }
    }
    if commit { tx.commit() } else { tx.rollback() }
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
    page(
        conn,
        &LogQuery {
            limit,
            ..LogQuery::default()
        },
    )
}

/// Which rows of the log to read: newest first, optionally only one model version, one
/// predicted class, with or without a feedback label, and older than a request id (the
/// previous page's last: the key is UUIDv7, so it pages through time).
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub limit: i64,
    pub version: Option<i32>,
    pub class: Option<i32>,
    pub labelled: Option<bool>,
    pub before: Option<String>,
}

/// A page of the log (`total` and `labelled` count the whole log).
pub fn page(conn: &mut DbConnection, q: &LogQuery) -> Result<Recent, AppError> {
    use crate::db::schema::feedback;
    let total: i64 = predictions::table.count().get_result(conn)?;
    let labelled: i64 = feedback::table.count().get_result(conn)?;
    let mut query = predictions::table
        .left_join(feedback::table)
        // Request ids are UUIDv7, so the key read backwards is newest first (the migration
        // that dropped the created_at index says more).
        .order(predictions::request_id.desc())
        .limit(q.limit.clamp(0, 1000))
        .select((PredictionRow::as_select(), feedback::label.nullable()))
        .into_boxed();
    if let Some(v) = q.version {
        query = query.filter(predictions::model_version.eq(v));
    }
    if let Some(c) = q.class {
        query = query.filter(predictions::prediction.eq(c));
    }
    match q.labelled {
        Some(true) => query = query.filter(feedback::label.is_not_null()),
        Some(false) => query = query.filter(feedback::label.is_null()),
        None => {}
    }
    if let Some(before) = &q.before {
        query = query.filter(predictions::request_id.lt(before.clone()));
    }
    let rows = query.load(conn)?;
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
