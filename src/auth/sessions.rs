//! The `sessions` table: dashboard logins. The cookie carries a random token; the table keeps
//! its digest, the user, the session's CSRF token and the expiry.

use diesel::prelude::*;

use super::secrets;
use crate::db::schema::sessions;
use crate::db::{DbConnection, now};
use crate::error::AppError;

pub const COOKIE_NAME: &str = "steward_session";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub csrf_token: String,
    pub created_at: chrono::NaiveDateTime,
    pub expires_at: chrono::NaiveDateTime,
}

/// Starts a session; returns it and the cookie value.
pub fn create(
    conn: &mut DbConnection,
    user_id: &str,
    ttl_hours: u32,
) -> Result<(Session, String), AppError> {
    let cookie = secrets::random_string(43);
    let at = now();
    let session = Session {
        id: secrets::digest(&cookie),
        user_id: user_id.to_owned(),
        csrf_token: secrets::random_string(32),
        created_at: at,
        expires_at: at + chrono::Duration::hours(i64::from(ttl_hours)),
    };
    diesel::insert_into(sessions::table)
        .values(&session)
        .execute(conn)?;
    Ok((session, cookie))
}

/// The live session for a cookie value, if any.
pub fn find_live(conn: &mut DbConnection, cookie: &str) -> Result<Option<Session>, AppError> {
    Ok(sessions::table
        .find(secrets::digest(cookie))
        .filter(sessions::expires_at.gt(now()))
        .select(Session::as_select())
        .first(conn)
        .optional()?)
}

pub fn delete(conn: &mut DbConnection, cookie: &str) -> Result<(), AppError> {
    diesel::delete(sessions::table.find(secrets::digest(cookie))).execute(conn)?;
    Ok(())
}

pub fn delete_for_user(conn: &mut DbConnection, user_id: &str) -> Result<usize, AppError> {
    Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)?)
}

/// Removes expired sessions; run by the scheduler.
pub fn sweep_expired(conn: &mut DbConnection) -> Result<usize, AppError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.le(now()))).execute(conn)?)
}

pub fn count_live(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(sessions::table
        .filter(sessions::expires_at.gt(now()))
        .count()
        .get_result(conn)?)
}
