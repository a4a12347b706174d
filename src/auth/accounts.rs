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

/// Longest lifetime a token may be given, in days.
pub const MAX_TOKEN_DAYS: i64 = 3650;

/// Parses a lifetime such as `90d`, `12h` or `30m` (at most [`MAX_TOKEN_DAYS`] days).
pub fn parse_lifetime(text: &str) -> Result<chrono::Duration, AppError> {
    let bad = || {
        AppError::validation(
            "expires_in",
            format!(
                "must be a number of minutes, hours or days such as 30m, 12h or 90d (at most {MAX_TOKEN_DAYS}d)"
            ),
        )
    };
    let text = text.trim();
    let (number, unit) = [("m", 'm'), ("h", 'h'), ("d", 'd')]
        .into_iter()
        .find_map(|(unit, c)| text.strip_suffix(c).map(|n| (n, unit)))
        .ok_or_else(bad)?;
    let n: i64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "m" => chrono::Duration::try_minutes(n),
        "h" => chrono::Duration::try_hours(n),
        _ => chrono::Duration::try_days(n),
    }
    .ok_or_else(bad)?;
    if n <= 0 || duration > chrono::Duration::days(MAX_TOKEN_DAYS) {
        return Err(bad());
    }
    Ok(duration)
}

/// Creates a token for `owner`. `ceiling` is what the caller's own credential allows (its role
/// and its expiry): a token never gets a higher role than that or than its owner has, nor an
/// expiry later than the caller's own token. `None` means the CLI on the store itself.
pub fn create_token(
    conn: &mut DbConnection,
    actor: &str,
    owner: &User,
    name: &str,
    scope: tokens::Scope,
    ceiling: Option<(Role, Option<chrono::NaiveDateTime>)>,
) -> Result<(ApiToken, String), AppError> {
    if let Some(role) = scope.role {
        let most = ceiling
            .map(|(r, _)| r.min(owner.role))
            .unwrap_or(owner.role);
        if role > most {
            let why = if ceiling.is_some_and(|(r, _)| r < owner.role) {
                "the token you call with"
            } else {
                "its user"
            };
            return Err(AppError::Forbidden(format!(
                "role {role} is more than {why} may do: at most {most}"
            )));
        }
    }
    if let Some((_, Some(cap))) = ceiling {
        match scope.expires_at {
            Some(at) if at <= cap => {}
            _ => {
                return Err(AppError::Forbidden(format!(
                    "the token you call with expires at {} UTC, and a token it makes must \
                     expire no later: give expires_in (such as 1h or 7d) within that",
                    cap.format("%Y-%m-%d %H:%M")
                )));
            }
        }
    }
    audit::with_event(conn, |conn| {
        // The owner's stored role: a caller acting through a narrower token sees its own
        // role in `owner`, and what it makes must be that narrow too, by default.
        let stored = users::find(conn, &owner.id)?
            .ok_or_else(|| AppError::NotFound(format!("no user `{}`", owner.username)))?;
        let role = match (scope.role, ceiling) {
            (Some(r), _) => Some(r),
            (None, Some((r, _))) if r < stored.role => Some(r),
            (None, _) => None,
        };
        let scope = tokens::Scope { role, ..scope };
        let (token, plaintext) = tokens::insert(conn, &owner.id, name, scope)?;
        let event =
            NewEvent::new(actor, "token.create", format!("token:{}", token.id)).after(json!({
                "owner": owner.username,
                "name": token.name,
                "prefix": token.prefix,
                "role": token.role_name,
                "expires_at": token.expires_at,
            }));
        Ok(((token, plaintext), event))
    })
}

/// Whether `token` does no more than a caller limited to `role` until `expires_at`: it has a
/// role of its own at most `role`, and (when the caller expires) an expiry no later. A scoped
/// token may revoke only such tokens, never its owner's wider ones.
pub fn no_wider(token: &ApiToken, role: Role, expires_at: Option<chrono::NaiveDateTime>) -> bool {
    let role_ok = token.role().ok().flatten().is_some_and(|r| r <= role);
    let expiry_ok = match expires_at {
        None => true,
        Some(limit) => token.expires_at.is_some_and(|e| e <= limit),
    };
    role_ok && expiry_ok
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

/// Longest password a login checks; a longer one fails without hashing (argon2's cost grows
/// with the input).
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// The stored account behind a login name, read before the password is checked, so that the
/// check (argon2, tens of milliseconds) holds no store connection.
pub fn login_candidate(
    conn: &mut DbConnection,
    username: &str,
) -> Result<Option<users::UserRow>, AppError> {
    if users::check_username(username).is_err() {
        return Ok(None);
    }
    users::find_by_username(conn, username)
}

/// Checks a password against the candidate (blocking: argon2). A wrong password, an unknown
/// user and a disabled user all fail the same way, in about the same time.
pub fn verify_login(candidate: Option<&users::UserRow>, plain_password: &str) -> Option<User> {
    if plain_password.chars().count() > MAX_PASSWORD_CHARS {
        return None;
    }
    match candidate {
        Some(row) if password::verify(&row.password_hash, plain_password) && !row.disabled => {
            User::try_from(row.clone()).ok()
        }
        Some(_) => None,
        None => {
            password::verify_dummy(plain_password);
            None
        }
    }
}

/// Audits a login. A failure for a name that is no user is recorded without the name (a
/// mistyped password often lands in the name field): a short keyed digest lets repeats be
/// told apart, and nothing more.
pub fn record_login(
    conn: &mut DbConnection,
    username: &str,
    known: bool,
    user: Option<&User>,
    client: &str,
) -> Result<(), AppError> {
    let event = match user {
        Some(user) => NewEvent::new(
            format!("user:{}", user.username),
            "auth.login",
            format!("user:{}", user.username),
        )
        .after(json!({ "client": client })),
        None if known => {
            NewEvent::new("anonymous", "auth.login_failed", format!("user:{username}"))
                .after(json!({ "client": client }))
        }
        None => {
            let digest = audit::process_key()?.label_digest("login-name", username);
            NewEvent::new("anonymous", "auth.login_failed", "user:?").after(json!({
                "client": client,
                "unknown_name_digest": digest,
            }))
        }
    };
    audit::append(conn, event)?;
    Ok(())
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
