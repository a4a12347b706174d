//! What people do with accounts (create, disable, log in, issue and revoke tokens), each change
//! landing together with its audit event. The CLI, the JSON API and the dashboard all call these.

use serde_json::json;

use super::role::Role;
use super::tokens::{self, ApiToken};
use super::users::{self, User};
use super::{password, sessions};
use crate::audit::{self, NewEvent};
use crate::db::DbConnection;
use crate::error::AppError;

pub const BOOTSTRAP_ADMIN: &str = "admin";

pub fn create_user(
    conn: &mut DbConnection,
    actor: &str,
    username: &str,
    plain_password: &str,
    role: Role,
) -> Result<User, AppError> {
    users::check_username(username)?;
    password::check_strength(plain_password)?;
    let hash = password::hash(plain_password)?;
    audit::with_event(conn, |conn| {
        let user = users::insert(conn, username, hash, role)?;
        let event = NewEvent::new(actor, "user.create", format!("user:{username}"))
            .after(json!({ "username": username, "role": role }));
        Ok((user, event))
    })
}

/// Disables a user and ends their sessions. The last active admin can't be disabled, so that
/// someone can always manage Steward.
pub fn disable_user(
    conn: &mut DbConnection,
    actor: &str,
    username: &str,
) -> Result<User, AppError> {
    audit::with_event(conn, |conn| {
        let row = users::find_by_username(conn, username)?
            .ok_or_else(|| AppError::NotFound(format!("no user `{username}`")))?;
        let user = User::try_from(row)?;
        if user.disabled {
            return Err(AppError::Conflict(format!(
                "user `{username}` is already disabled"
            )));
        }
        if user.role == Role::Admin && users::count_active_admins(conn)? <= 1 {
            return Err(AppError::Conflict(format!(
                "`{username}` is the last active admin and can't be disabled"
            )));
        }
        users::set_disabled(conn, &user.id, true)?;
        let ended = sessions::delete_for_user(conn, &user.id)?;
        let event = NewEvent::new(actor, "user.disable", format!("user:{username}"))
            .before(json!({ "disabled": false }))
            .after(json!({ "disabled": true, "sessions_ended": ended }));
        Ok((
            User {
                disabled: true,
                ..user
            },
            event,
        ))
    })
}

pub fn create_token(
    conn: &mut DbConnection,
    actor: &str,
    owner: &User,
    name: &str,
) -> Result<(ApiToken, String), AppError> {
    audit::with_event(conn, |conn| {
        let (token, plaintext) = tokens::insert(conn, &owner.id, name)?;
        let event = NewEvent::new(actor, "token.create", format!("token:{}", token.id))
            .after(json!({ "owner": owner.username, "name": token.name, "prefix": token.prefix }));
        Ok(((token, plaintext), event))
    })
}

/// Revokes a token. `may_revoke` says whether the actor may touch this token (its owner or an
/// admin); the check happens under the same lock as the change.
pub fn revoke_token(
    conn: &mut DbConnection,
    actor: &str,
    token_id: &str,
    may_revoke: impl FnOnce(&ApiToken) -> bool,
) -> Result<ApiToken, AppError> {
    audit::with_event(conn, |conn| {
        let token = tokens::find(conn, token_id)?
            .filter(|t| may_revoke(t))
            .ok_or_else(|| AppError::NotFound(format!("no token `{token_id}`")))?;
        if token.revoked_at.is_some() {
            return Err(AppError::Conflict(format!(
                "token `{token_id}` is already revoked"
            )));
        }
        tokens::revoke(conn, &token.id)?;
        let event = NewEvent::new(actor, "token.revoke", format!("token:{}", token.id))
            .before(json!({ "revoked": false }))
            .after(json!({ "revoked": true, "name": token.name }));
        Ok((token, event))
    })
}

/// Checks a password. A wrong password, an unknown user and a disabled user all fail the same
/// way, and the failure is audited.
pub fn check_login(
    conn: &mut DbConnection,
    username: &str,
    plain_password: &str,
    client: &str,
) -> Result<User, AppError> {
    let row = users::find_by_username(conn, username)?;
    let user = match row {
        Some(row) if password::verify(&row.password_hash, plain_password) && !row.disabled => {
            Some(User::try_from(row)?)
        }
        Some(_) => None,
        None => {
            password::verify_dummy(plain_password);
            None
        }
    };
    let subject = format!("user:{username}");
    match user {
        Some(user) => {
            audit::append(
                conn,
                NewEvent::new(format!("user:{username}"), "auth.login", subject)
                    .after(json!({ "client": client })),
            )?;
            Ok(user)
        }
        None => {
            audit::append(
                conn,
                NewEvent::new("anonymous", "auth.login_failed", subject)
                    .after(json!({ "client": client })),
            )?;
            Err(AppError::Unauthenticated(
                "wrong user name or password".into(),
            ))
        }
    }
}

/// On an empty store, creates the `admin` user. Returns the generated password when none was
/// configured, for the caller to show once.
pub fn bootstrap_admin(
    conn: &mut DbConnection,
    configured_password: &str,
) -> Result<Option<String>, AppError> {
    if users::count(conn)? > 0 {
        return Ok(None);
    }
    let (plain, generated) = if configured_password.is_empty() {
        (super::secrets::random_string(20), true)
    } else {
        (configured_password.to_owned(), false)
    };
    match create_user(conn, "system", BOOTSTRAP_ADMIN, &plain, Role::Admin) {
        Ok(_) => Ok(generated.then_some(plain)),
        // Another process sharing the store bootstrapped first.
        Err(AppError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
