//! The `users` table.

use diesel::prelude::*;
use serde::Serialize;

use super::role::Role;
use crate::db::schema::users;
use crate::db::{DbConnection, now};
use crate::error::AppError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: String,
    pub disabled: bool,
    pub created_at: chrono::NaiveDateTime,
    pub updated_at: chrono::NaiveDateTime,
}

/// A user as the rest of Steward sees it: no password hash, a typed role.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: chrono::NaiveDateTime,
}

impl TryFrom<UserRow> for User {
    type Error = AppError;

    fn try_from(row: UserRow) -> Result<Self, AppError> {
        let role = row
            .role
            .parse()
            .map_err(|e| AppError::Internal(anyhow::anyhow!("user {}: {e}", row.username)))?;
        Ok(User {
            id: row.id,
            username: row.username,
            role,
            disabled: row.disabled,
            created_at: row.created_at,
        })
    }
}

/// User names: 1–64 characters of letters, digits, `.`, `_`, `-` and `@`.
pub fn check_username(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AppError::validation(
            "username",
            "must be 1-64 characters of letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

pub fn insert(
    conn: &mut DbConnection,
    username: &str,
    password_hash: String,
    role: Role,
) -> Result<User, AppError> {
    // Names that differ only in case read as one person in the audit log: refused too.
    let wanted = username.to_lowercase();
    let taken: Vec<String> = users::table.select(users::username).load(conn)?;
    if let Some(existing) = taken.iter().find(|n| n.to_lowercase() == wanted) {
        return Err(AppError::Conflict(format!(
            "user `{existing}` already exists (names are told apart regardless of case)"
        )));
    }
    let at = now();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        username: username.to_owned(),
        password_hash,
        role: role.as_str().to_owned(),
        disabled: false,
        created_at: at,
        updated_at: at,
    };
    diesel::insert_into(users::table)
        .values(&row)
        .execute(conn)?;
    row.try_into()
}

pub fn find_by_username(
    conn: &mut DbConnection,
    username: &str,
) -> Result<Option<UserRow>, AppError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<User>, AppError> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(User::try_from)
        .transpose()
}

pub fn list(conn: &mut DbConnection) -> Result<Vec<User>, AppError> {
    users::table
        .order(users::username.asc())
        .select(UserRow::as_select())
        .load(conn)?
        .into_iter()
        .map(User::try_from)
        .collect()
}

pub fn count(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(users::table.count().get_result(conn)?)
}

pub fn set_disabled(conn: &mut DbConnection, id: &str, disabled: bool) -> Result<(), AppError> {
    diesel::update(users::table.find(id))
        .set((users::disabled.eq(disabled), users::updated_at.eq(now())))
        .execute(conn)?;
    Ok(())
}

pub fn count_active_admins(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)?)
}
