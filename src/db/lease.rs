//! Leases: named rows in the store with a holder and an expiry, through which processes sharing
//! one store (replicas on one PostgreSQL, or a server and the CLI on one SQLite file) agree who
//! runs what. Every change is one conditional `UPDATE`, so two processes racing for a lease get
//! one winner on either backend; no lock is held between statements, except by [`holds`]
//! inside a caller's transaction (PostgreSQL: `FOR SHARE` until its commit).
//!
//! Expiry uses each process's clock (UTC), so replicas' clocks must agree to well within a
//! lease's length (NTP does).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::leases;
use crate::error::AppError;

/// A lease row as stored.
#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = leases)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    pub expires_at: NaiveDateTime,
    pub started_at: NaiveDateTime,
    pub runs: i64,
}

/// How a lease may be taken.
#[derive(Debug, Clone, Copy)]
pub enum Take {
    /// One run of a scheduled job: only when the lease is free (no run holds it) and its last
    /// run started at least `gap` ago, so all processes together start one run per interval.
    Run { gap: chrono::Duration },
    /// Leadership: when the lease is free or already ours (taking it again renews it).
    Lead,
}

/// What [`take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Not taken: another holds it, or (for a run) its last run is too recent.
    No,
    /// Leadership kept: the lease was already the holder's (even past its expiry, as nobody
    /// took it meanwhile).
    Renewed,
    /// Taken anew: from nobody, from an expired holder, or for a new run.
    New,
}

impl Taken {
    pub fn held(self) -> bool {
        self != Taken::No
    }
}

/// The row that stands for "never taken": expired and never started.
fn epoch() -> NaiveDateTime {
    NaiveDateTime::default()
}

/// Takes `name` for `holder` until `ttl` from now, as `how` allows, and says how. The row is
/// created free on first use. A lease held by a process that `gone` says has ended (one of
/// this host and pid namespace whose pid is gone) is freed first rather than waited out.
///
/// Errors: the store's.
pub fn take(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    ttl: chrono::Duration,
    how: Take,
    gone: &dyn Fn(&str) -> bool,
) -> Result<Taken, AppError> {
    let first = take_once(conn, name, holder, ttl, how)?;
    if first.held() {
        return Ok(first);
    }
    let now = crate::db::now();
    let current: Option<(String, NaiveDateTime)> = leases::table
        .find(name)
        .select((leases::holder, leases::expires_at))
        .first(conn)
        .optional()?;
    match current {
        Some((other, until)) if until >= now && other != holder && gone(&other) => {
            let past = now - chrono::Duration::microseconds(1);
            diesel::update(
                leases::table
                    .find(name)
                    .filter(leases::holder.eq(&other))
                    .filter(leases::expires_at.eq(until)),
            )
            .set(leases::expires_at.eq(past))
            .execute(conn)?;
            take_once(conn, name, holder, ttl, how)
        }
        _ => Ok(Taken::No),
    }
}

fn take_once(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    ttl: chrono::Duration,
    how: Take,
) -> Result<Taken, AppError> {
    let insert = diesel::insert_into(leases::table)
        .values((
            leases::name.eq(name),
            leases::holder.eq(""),
            leases::expires_at.eq(epoch()),
            leases::started_at.eq(epoch()),
            leases::runs.eq(0i64),
        ))
        .on_conflict_do_nothing();
    match conn {
        DbConnection::Sqlite(c) => insert.execute(c)?,
        DbConnection::Postgres(c) => insert.execute(c)?,
    };
    let now = crate::db::now();
    let until = now + ttl;
    let row = leases::table.find(name);
    let took = match how {
        Take::Run { gap } => diesel::update(
            row.filter(leases::expires_at.lt(now))
                .filter(leases::started_at.le(now - gap)),
        )
        .set((
            leases::holder.eq(holder),
            leases::expires_at.eq(until),
            leases::started_at.eq(now),
            leases::runs.eq(leases::runs + 1),
        ))
        .execute(conn)?,
        Take::Lead => {
            // Renewing keeps the start of the tenure (even past its expiry: nobody took it
            // meanwhile, as the holder is still ours); taking it starts a new one.
            let renewed = diesel::update(row.filter(leases::holder.eq(holder)))
                .set(leases::expires_at.eq(until))
                .execute(conn)?;
            if renewed == 1 {
                return Ok(Taken::Renewed);
            }
            diesel::update(row.filter(leases::expires_at.lt(now)))
                .set((
                    leases::holder.eq(holder),
                    leases::expires_at.eq(until),
                    leases::started_at.eq(now),
                    leases::runs.eq(leases::runs + 1),
                ))
                .execute(conn)?
        }
    };
    Ok(if took == 1 { Taken::New } else { Taken::No })
}

/// Extends the holder's unexpired lease to `ttl` from now; false when it is no longer the
/// holder's, or ran out (released, or not renewed in time).
///
/// Errors: the store's.
pub fn renew(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    ttl: chrono::Duration,
) -> Result<bool, AppError> {
    // Only while unexpired: a renewal that lands after a release (or after the lease ran out)
    // must not revive it.
    let now = crate::db::now();
    let n = diesel::update(
        leases::table
            .find(name)
            .filter(leases::holder.eq(holder))
            .filter(leases::expires_at.ge(now)),
    )
    .set(leases::expires_at.eq(now + ttl))
    .execute(conn)?;
    Ok(n == 1)
}

/// Frees the holder's lease now (its run ended, or it stops); nothing when it is not the
/// holder's. The start of its last run stays, which spaces the next run.
///
/// Also: [`holds`] for a holder's fencing check inside the transaction of what it does.
///
/// Errors: the store's.
pub fn release(conn: &mut DbConnection, name: &str, holder: &str) -> Result<(), AppError> {
    // A moment in the past, so "expired" holds at once on every replica.
    let past = crate::db::now() - chrono::Duration::microseconds(1);
    diesel::update(leases::table.find(name).filter(leases::holder.eq(holder)))
        .set(leases::expires_at.eq(past))
        .execute(conn)?;
    Ok(())
}

/// Whether `holder` holds `name` now (unexpired): the fencing check a leader makes in the
/// transaction of an action it starts and of a registry change it makes, so one that lost the
/// lease (a stall past its expiry) starts and changes nothing more. On PostgreSQL the row is
/// read `FOR SHARE`: inside a transaction, another process's take (an UPDATE of that row)
/// waits for the commit, so the answer holds until then. On SQLite the same comes from the
/// writer lock that both callers (the agent's start of an action and the registry's fence)
/// take first, through the audit head.
///
/// Errors: the store's.
pub fn holds(conn: &mut DbConnection, name: &str, holder: &str) -> Result<bool, AppError> {
    let query = leases::table
        .filter(leases::name.eq(name))
        .filter(leases::holder.eq(holder))
        .filter(leases::expires_at.ge(crate::db::now()))
        .select(leases::name);
    let found: Option<String> = match conn {
        DbConnection::Postgres(c) => query.for_share().first(c).optional()?,
        DbConnection::Sqlite(c) => query.first(c).optional()?,
    };
    Ok(found.is_some())
}

/// Every lease, by name (at most 200: one per job and the agent's).
///
/// Errors: the store's.
pub fn list(conn: &mut DbConnection) -> Result<Vec<Lease>, AppError> {
    Ok(leases::table
        .order(leases::name.asc())
        .select(Lease::as_select())
        .limit(200)
        .load(conn)?)
}

/// Renews `name` for `holder` every third of `ttl` until the task is aborted; logs when the
/// lease ran out or another process took it meanwhile (the holder stalled past its expiry)
/// and stops.
pub fn keep_renewed(
    db: crate::db::Db,
    name: String,
    holder: std::sync::Arc<str>,
    ttl: chrono::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(
            u64::try_from(ttl.num_milliseconds() / 3)
                .unwrap_or(1000)
                .max(100),
        );
        loop {
            tokio::time::sleep(every).await;
            let (n, me) = (name.clone(), holder.clone());
            match db.run(move |conn| renew(conn, &n, &me, ttl)).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::error!(lease = %name, "lost a lease while holding it: it ran out, or another process took it after it expired");
                    return;
                }
                Err(e) => tracing::warn!(lease = %name, error = %e, "renewing a lease failed"),
            }
        }
    })
}
