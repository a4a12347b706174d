//! The store: one Diesel connection type over SQLite or PostgreSQL, its pool, and the embedded
//! migrations.
//!
//! The backend is chosen from the URL scheme, and an unknown scheme is an error, so a typo can't
//! quietly create an empty SQLite file. All Diesel calls are blocking: handlers reach the store
//! through [`Db::run`], which moves the work onto tokio's blocking pool.

pub mod lease;
pub mod schema;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::ExposeSecret;

use crate::config::{DatabaseSettings, DatabaseUrl, redact_url};
use crate::error::AppError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// One connection to whichever backend the URL named.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

fn backend_of(url: &DatabaseUrl) -> Backend {
    match url {
        DatabaseUrl::Sqlite(_) => Backend::Sqlite,
        DatabaseUrl::Postgres(_) => Backend::Postgres,
    }
}

/// Every SQLite connection's settings. WAL lets readers run beside the one writer;
/// busy_timeout makes writers queue instead of failing at once. A 32 MiB page cache keeps the
/// prediction log's hot pages in memory under load.
pub const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768;";

/// r2d2 manager that opens the variant the URL named, with our per-connection settings.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    connect_timeout: Duration,
}

impl ConnectionManager {
    fn open(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    r2d2::Error::ConnectionError(ConnectionError::InvalidConnectionUrl(
                        "SQLite path is not UTF-8".into(),
                    ))
                })?;
                let mut conn =
                    SqliteConnection::establish(path).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_PRAGMAS)
                    .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => {
                let url = with_connect_timeout(url, self.connect_timeout);
                let conn = PgConnection::establish(&url).map_err(r2d2::Error::ConnectionError)?;
                Ok(DbConnection::Postgres(conn))
            }
        }
    }
}

/// libpq waits forever for an unreachable host unless told otherwise.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}connect_timeout={}", timeout.as_secs().max(1))
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        self.open()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        r2d2::R2D2Connection::ping(conn).map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        r2d2::R2D2Connection::is_broken(conn)
    }
}

pub type DbPool = Pool<ConnectionManager>;
pub type PooledDb = PooledConnection<ConnectionManager>;

/// The shared handle to the store.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    /// For a connection outside the pool (the start lock).
    opener: std::sync::Arc<ConnectionManager>,
    /// The SQLite file, for the one writer that opens its own connection (the prediction log).
    sqlite_path: Option<PathBuf>,
    backend: Backend,
}

impl Db {
    /// Opens the pool. One connection is made first, directly, so that a bad password or an
    /// unreachable host is reported as such rather than as a pool time-out.
    pub fn connect(settings: &DatabaseSettings) -> anyhow::Result<Self> {
        let raw = settings.url.expose_secret();
        let shown = redact_url(raw);
        let url = DatabaseUrl::parse(raw).with_context(|| format!("database URL {shown}"))?;
        if let DatabaseUrl::Sqlite(path) = &url {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create the SQLite folder {}", parent.display())
                })?;
            }
        }
        let backend = backend_of(&url);
        if backend == Backend::Postgres {
            init_tls();
        }
        let sqlite_path = match &url {
            DatabaseUrl::Sqlite(path) => Some(path.clone()),
            DatabaseUrl::Postgres(_) => None,
        };
        let timeout = Duration::from_secs(settings.connect_timeout_secs);
        let manager = ConnectionManager {
            url,
            connect_timeout: timeout,
        };
        let first = manager
            .connect()
            .map_err(|e| anyhow::anyhow!("cannot connect to the database {shown}: {e}"))?;
        let opener = std::sync::Arc::new(manager.clone());
        let pool = Pool::builder()
            .max_size(settings.pool_size)
            // No idle connections kept warm: connections open on demand (r2d2 still opens them
            // on its own threads, which is why `init_tls` exists).
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .build_unchecked(manager);
        // Hand the checked connection to the pool's users by dropping it: r2d2 will open its own.
        drop(first);
        Ok(Db {
            pool,
            opener,
            backend,
            sqlite_path,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite file when the store is SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// A connection for blocking code that is already off the async workers (CLI, jobs).
    /// The pool's error text (libpq's, say) stays in the log: it may name hosts and users.
    pub fn get(&self) -> Result<PooledDb, AppError> {
        self.pool.get().map_err(|e| {
            tracing::warn!(error = %e, "no database connection");
            AppError::Unavailable("the store is unavailable; try again shortly".into())
        })
    }

    /// Runs blocking store work on tokio's blocking pool, keeping the caller's tracing span.
    /// A panic inside becomes an internal error instead of tearing down the worker.
    pub async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
    {
        let db = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = db.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("store task failed: {e}")))?
    }
}

/// Applies every pending migration; returns the versions applied.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => {
            // Replicas starting together (and CLI commands beside them) migrate one at a time:
            // the others wait, then find nothing pending.
            pg_lock(c, MIGRATIONS_LOCK)?;
            let applied = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<String>>())
                .map_err(|e| anyhow::anyhow!("running migrations: {e}"));
            pg_unlock(c, MIGRATIONS_LOCK)?;
            return applied;
        }
    }
    .map_err(|e| anyhow::anyhow!("running migrations: {e}"))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// PostgreSQL advisory lock keys (session locks, 64-bit): migrating, and a start's
/// bootstrap (the first admin, the bundled data, the first model).
const MIGRATIONS_LOCK: i64 = 0x5354_4557_0001;
const STARTUP_LOCK: i64 = 0x5354_4557_0002;

fn pg_lock(c: &mut PgConnection, key: i64) -> anyhow::Result<()> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(c)
        .map_err(|e| anyhow::anyhow!("waiting for the store's lock: {e}"))?;
    Ok(())
}

fn pg_unlock(c: &mut PgConnection, key: i64) -> anyhow::Result<()> {
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(key)
        .execute(c)
        .map_err(|e| anyhow::anyhow!("releasing the store's lock: {e}"))?;
    Ok(())
}

/// Sets OpenSSL up for libpq without OpenSSL's exit handlers (`OPENSSL_INIT_NO_ATEXIT`,
/// rust-openssl's own choice in `openssl_sys::init`). r2d2 opens connections on threads of its
/// own that nothing joins; one still inside libpq's SCRAM or TLS set-up when the process exits
/// crashed with SIGSEGV in the locks OpenSSL's exit handler had freed (a core dump of a
/// `steward serve` stopped right after its start). OpenSSL's first initialisation decides, so
/// this runs before anything in the process opens a PostgreSQL connection: [`Db::connect`]
/// calls it, as does the CLI's `main` and the tests' database set-up. Idempotent and cheap.
pub fn init_tls() {
    openssl_sys::init();
}

/// Holds the start lock on a connection of its own until dropped (PostgreSQL; nothing on
/// SQLite, whose writers queue on the file): replicas starting together prepare the store
/// (the first admin, the bundled data set, the first model) one at a time.
pub struct StartLock {
    /// A connection outside the pool (a pool of one stays usable); closing it frees the lock.
    conn: Option<DbConnection>,
}

impl StartLock {
    /// Waits for the lock.
    ///
    /// Errors: the store's.
    pub fn acquire(db: &Db) -> anyhow::Result<Self> {
        if db.backend != Backend::Postgres {
            return Ok(StartLock { conn: None });
        }
        let mut conn = db
            .opener
            .open()
            .map_err(|e| anyhow::anyhow!("connecting for the start lock: {e}"))?;
        if let DbConnection::Postgres(c) = &mut conn {
            pg_lock(c, STARTUP_LOCK)?;
        }
        Ok(StartLock { conn: Some(conn) })
    }
}

impl Drop for StartLock {
    fn drop(&mut self) {
        if let Some(DbConnection::Postgres(c)) = self.conn.as_mut() {
            if let Err(e) = pg_unlock(c, STARTUP_LOCK) {
                tracing::warn!(error = %e, "releasing the start lock");
            }
        }
    }
}

/// Reverts every applied migration, newest first (used by `steward db reset` and the tests).
pub fn revert_all_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let reverted = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("reverting migrations: {e}"))?;
    Ok(reverted.iter().map(ToString::to_string).collect())
}

/// Reverts the newest applied migration; answers its version (a test of a data migration
/// steps back one, writes rows as the older schema would, and migrates again).
pub fn revert_last_migration(conn: &mut DbConnection) -> anyhow::Result<String> {
    let reverted = match conn {
        DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
    }
    .map_err(|e| anyhow::anyhow!("reverting a migration: {e}"))?;
    Ok(reverted.to_string())
}

/// Migrations embedded in this binary that the store has not applied yet.
pub fn pending_migrations(conn: &mut DbConnection) -> anyhow::Result<usize> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.pending_migrations(SQLITE_MIGRATIONS).map(|p| p.len()),
        DbConnection::Postgres(c) => c.pending_migrations(POSTGRES_MIGRATIONS).map(|p| p.len()),
    }
    .map_err(|e| anyhow::anyhow!("listing migrations: {e}"))?;
    Ok(pending)
}

/// Versions the store has applied, oldest first.
pub fn applied_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Sqlite(c) => MigrationHarness::applied_migrations(c),
        DbConnection::Postgres(c) => MigrationHarness::applied_migrations(c),
    }
    .map_err(|e| anyhow::anyhow!("listing migrations: {e}"))?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// The current time as stored: UTC, truncated to microseconds so both backends keep it exactly.
pub fn now() -> chrono::NaiveDateTime {
    use chrono::SubsecRound;
    chrono::Utc::now().naive_utc().trunc_subsecs(6)
}

/// Table names of the store, for the schema comparison in the migration tests.
pub fn table_names(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }
    let sql = match conn {
        DbConnection::Sqlite(_) => {
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name != '__diesel_schema_migrations' ORDER BY name"
        }
        DbConnection::Postgres(_) => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_name != '__diesel_schema_migrations' \
             ORDER BY table_name"
        }
    };
    let rows: Vec<Name> = diesel::sql_query(sql).load(conn)?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}
