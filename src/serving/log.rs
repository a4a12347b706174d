//! The prediction log: every prediction is stored (request id, time, model version, features,
//! probability, class, latency) for monitoring and feedback.
//!
//! Handlers hand rows to a queue bounded in rows (a semaphore of `serving.log_queue` permits,
//! returned once the rows are stored) and one writer task stores them in batches, one
//! multi-row insert per statement. When the queue is full a request waits for room
//! (backpressure): nothing is dropped. `flush` waits until everything queued before it is stored; shutdown
//! calls it after the HTTP server has drained, so SIGTERM loses nothing.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

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
    tx: mpsc::UnboundedSender<Message>,
    room: Arc<Semaphore>,
    capacity: usize,
}

impl PredictionLog {
    /// Starts the writer task; it ends when every handle is dropped and the queue is empty.
    pub fn start(db: Db, capacity: usize, batch: usize) -> PredictionLog {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(capacity));
        tokio::spawn(writer(db, rx, batch.max(1), room.clone(), capacity));
        PredictionLog { tx, room, capacity }
    }

    /// Queues rows; waits while the queue holds `serving.log_queue` rows. A request larger
    /// than the whole queue waits for it to be empty.
    pub async fn record(&self, rows: Vec<PredictionRow>) -> Result<(), AppError> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len().min(self.capacity) as u32;
        let stopped = || AppError::Unavailable("the prediction log has stopped".into());
        // The permits come back when the writer has stored the rows.
        self.room
            .acquire_many(n)
            .await
            .map_err(|_| stopped())?
            .forget();
        self.tx.send(Message::Rows(rows)).map_err(|_| stopped())?;
        Ok(())
    }

    /// Waits until every row queued before this call is stored.
    pub async fn flush(&self) -> Result<(), AppError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Message::Flush(done))
            .map_err(|_| AppError::Unavailable("the prediction log has stopped".into()))?;
        wait.await
            .map_err(|_| AppError::Unavailable("the prediction log has stopped".into()))
    }

    /// Rows waiting in the queue.
    pub fn depth(&self) -> usize {
        self.capacity.saturating_sub(self.room.available_permits())
    }
}

async fn writer(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<Message>,
    batch: usize,
    room: Arc<Semaphore>,
    // Passed in, not read from `room`: rows may be queued before this task first runs.
    capacity: usize,
) {
    while let Some(first) = rx.recv().await {
        let mut rows = Vec::new();
        let mut waiters = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Rows(r) => rows.extend(r),
                // Everything before the flush is in `rows` now; answer once it is stored.
                Message::Flush(done) => waiters.push(done),
            }
            next = if rows.len() < batch {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        metrics::gauge!(PREDICTION_LOG_QUEUE_DEPTH)
            .set(capacity.saturating_sub(room.available_permits()) as f64);
        let n = rows.len();
        store(&db, rows).await;
        room.add_permits(n.min(capacity));
        for done in waiters {
            let _ = done.send(());
        }
    }
}

/// Stores a batch, retrying until the store takes it: rows are never dropped, and while the
/// store is down the queue fills and requests wait.
async fn store(db: &Db, rows: Vec<PredictionRow>) {
    if rows.is_empty() {
        return;
    }
    let mut backoff = Duration::from_millis(50);
    let rows = Arc::new(rows);
    let n = rows.len();
    loop {
        let started = Instant::now();
        let batch = rows.clone();
        match db.run(move |conn| insert(conn, &batch)).await {
            Ok(()) => {
                metrics::histogram!(PREDICTION_LOG_FLUSH_SECONDS)
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(PREDICTION_LOG_ROWS_TOTAL).increment(n as u64);
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, rows = n, "storing predictions failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Rows per INSERT statement on Postgres: 9 columns each stays far under its parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

fn insert(conn: &mut DbConnection, rows: &[PredictionRow]) -> Result<(), AppError> {
    conn.transaction(|conn| {
        match conn {
            // SQLite has no round trips to save: one cached prepared single-row statement,
            // stepped per row inside the transaction, is its fastest bulk insert (a multi-row
            // statement is rebuilt and re-prepared for every batch).
            DbConnection::Sqlite(c) => {
                for row in rows {
                    diesel::insert_into(predictions::table)
                        .values(row)
                        .execute(c)?;
                }
            }
            // Multi-row inserts need the concrete connection; the multi-backend one has none.
            DbConnection::Postgres(c) => {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    diesel::insert_into(predictions::table)
                        .values(chunk)
                        .execute(c)?;
                }
            }
        }
        Ok(())
    })
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
        .order(predictions::created_at.desc())
        .then_order_by(predictions::request_id.asc())
        .limit(limit.clamp(0, 1000))
        .select((PredictionRow::as_select(), feedback::label.nullable()))
        .load(conn)?;
    Ok(Recent {
        total,
        labelled,
        rows,
    })
}
