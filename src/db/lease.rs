//! Leases: named rows in the store with a holder and an expiry, through which processes sharing
//! one store (replicas on one PostgreSQL, or a server and the CLI on one SQLite file) agree who
//! runs what. Every change is one conditional `UPDATE`, so two processes racing for a lease get
//! one winner on either backend; no lock is held between statements.
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

/// The row that stands for "never taken": expired and never started.
fn epoch() -> NaiveDateTime {
    NaiveDateTime::default()
}

/// Takes `name` for `holder` until `ttl` from now, as `how` allows; true when it is now the
/// holder's. The row is created free on first use. A lease held by a process that `gone` says
/// has ended (one of this host whose pid is gone) is freed first rather than waited out.
///
/// Errors: the store's.
pub fn take(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    ttl: chrono::Duration,
    how: Take,
    gone: &dyn Fn(&str) -> bool,
) -> Result<bool, AppError> {
    if take_once(conn, name, holder, ttl, how)? {
        return Ok(true);
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
        _ => Ok(false),
    }
}

fn take_once(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    ttl: chrono::Duration,
    how: Take,
) -> Result<bool, AppError> {
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
                return Ok(true);
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
    Ok(took == 1)
}

/// Extends the holder's lease to `ttl` from now; false when it is no longer the holder's (it
/// expired and another process took it).
///
/// Errors: the store's.
pub fn renew(
    conn: &mut DbConnection,
    name: &str,
    holder: &str,
    ttl: chrono::Duration,
) -> Result<bool, AppError> {
    let n = diesel::update(leases::table.find(name).filter(leases::holder.eq(holder)))
        .set(leases::expires_at.eq(crate::db::now() + ttl))
        .execute(conn)?;
    Ok(n == 1)
}

/// Frees the holder's lease now (its run ended, or it stops); nothing when it is not the
/// holder's. The start of its last run stays, which spaces the next run.
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

/// Renews `name` for `holder` every third of `ttl` until the task is aborted; logs when
/// another process took it meanwhile (the holder stalled past its expiry) and stops.
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
                    tracing::error!(lease = %name, "lost a lease while holding it: another process took it after it expired");
                    return;
                }
                Err(e) => tracing::warn!(lease = %name, error = %e, "renewing a lease failed"),
            }
        }
    })
}
