//! The `api_tokens` table: bearer tokens for the JSON API and the CLI.
//!
//! A token is `stw_` + 40 random characters. Only its BLAKE3 digest is stored (a token has far
//! more entropy than a password, so a slow hash buys nothing); the token itself is shown once.
//! A token may carry a role narrower than its user's and an expiry; without them it acts as its
//! user for as long as it is not revoked.

use diesel::prelude::*;
use serde::Serialize;

use super::role::Role;
use super::secrets;
use crate::db::schema::api_tokens;
use crate::db::{DbConnection, now};
use crate::error::AppError;

pub const TOKEN_PREFIX: &str = "stw_";

#[derive(Debug, Clone, Queryable, Selectable, Insertable, Serialize)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    #[serde(skip)]
    pub token_hash: String,
    /// The first characters of the token, so a person can tell tokens apart.
    pub prefix: String,
    pub created_at: chrono::NaiveDateTime,
    pub last_used_at: Option<chrono::NaiveDateTime>,
    pub revoked_at: Option<chrono::NaiveDateTime>,
    /// When the token stops working; `None` never.
    pub expires_at: Option<chrono::NaiveDateTime>,
    /// The most the token may do (`viewer`, `approver`, `admin`); `None`: what its user may.
    #[serde(rename = "role")]
    #[diesel(column_name = role)]
    pub role_name: Option<String>,
}

impl ApiToken {
    pub fn is_expired(&self, at: chrono::NaiveDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= at)
    }

    /// The token's own role cap, if it has one.
    pub fn role(&self) -> Result<Option<Role>, AppError> {
        self.role_name
            .as_deref()
            .map(|r| {
                r.parse::<Role>()
                    .map_err(|e| AppError::Internal(anyhow::anyhow!("token {}: {e}", self.id)))
            })
            .transpose()
    }
}

/// What a new token may do and until when.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    pub role: Option<Role>,
    pub expires_at: Option<chrono::NaiveDateTime>,
}

/// Creates a token; returns the row and the plaintext, which is never stored.
pub fn insert(
    conn: &mut DbConnection,
    user_id: &str,
    name: &str,
    scope: Scope,
) -> Result<(ApiToken, String), AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AppError::validation(
            "name",
            "must be 1-100 characters, none of them control characters",
        ));
    }
    let plaintext = format!("{TOKEN_PREFIX}{}", secrets::random_string(40));
    let row = ApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        name: name.to_owned(),
        token_hash: secrets::digest(&plaintext),
        prefix: plaintext.chars().take(TOKEN_PREFIX.len() + 6).collect(),
        created_at: now(),
        last_used_at: None,
        revoked_at: None,
        expires_at: scope.expires_at,
        role_name: scope.role.map(|r| r.as_str().to_owned()),
    };
    diesel::insert_into(api_tokens::table)
        .values(&row)
        .execute(conn)?;
    Ok((row, plaintext))
}

/// Looks a presented token up by digest, revoked or not: the caller decides what revoked means.
pub fn find_by_plaintext(
    conn: &mut DbConnection,
    plaintext: &str,
) -> Result<Option<ApiToken>, AppError> {
    Ok(api_tokens::table
        .filter(api_tokens::token_hash.eq(secrets::digest(plaintext)))
        .select(ApiToken::as_select())
        .first(conn)
        .optional()?)
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<ApiToken>, AppError> {
    Ok(api_tokens::table
        .find(id)
        .select(ApiToken::as_select())
        .first(conn)
        .optional()?)
}

/// Tokens of one user, or of everyone when `user_id` is `None`; newest first.
pub fn list(conn: &mut DbConnection, user_id: Option<&str>) -> Result<Vec<ApiToken>, AppError> {
    let mut query = api_tokens::table
        .select(ApiToken::as_select())
        .order(api_tokens::created_at.desc())
        .into_boxed();
    if let Some(user_id) = user_id {
        query = query.filter(api_tokens::user_id.eq(user_id.to_owned()));
    }
    Ok(query.load(conn)?)
}

pub fn revoke(conn: &mut DbConnection, id: &str) -> Result<(), AppError> {
    diesel::update(api_tokens::table.find(id))
        .set(api_tokens::revoked_at.eq(Some(now())))
        .execute(conn)?;
    Ok(())
}

/// The token's recorded last use is over a minute old (so [`touch`] would write).
pub fn use_is_stale(token: &ApiToken) -> bool {
    token
        .last_used_at
        .is_none_or(|last| now() - last > chrono::Duration::minutes(1))
}

/// Records use, at most once a minute per token, so reads don't each cost a write.
pub fn touch(conn: &mut DbConnection, token: &ApiToken) -> Result<(), AppError> {
    let at = now();
    if use_is_stale(token) {
        diesel::update(api_tokens::table.find(&token.id))
            .set(api_tokens::last_used_at.eq(Some(at)))
            .execute(conn)?;
    }
    Ok(())
}

pub fn count_active(conn: &mut DbConnection) -> Result<i64, AppError> {
    Ok(api_tokens::table
        .filter(api_tokens::revoked_at.is_null())
        .count()
        .get_result(conn)?)
}
