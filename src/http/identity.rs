//! The `Identity` extractor: a bearer token or a session cookie becomes an
//! [`Identity`](crate::auth::Identity).
//!
//! Requests that change something through a session must also carry the session's CSRF token
//! in the `X-CSRF-Token` header (htmx sends it on every request); bearer requests can't be
//! forged cross-site, so they need none. The route guard ([`super::routes`]) resolves the
//! identity once and leaves it in the request's extensions, where the extractor finds it.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};

use crate::auth::secrets::constant_time_eq;
use crate::auth::{Identity, sessions, tokens, users};
use crate::error::AppError;
use crate::state::AppState;

pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Longest bearer token looked up; anything longer is no token of ours.
const MAX_TOKEN_CHARS: usize = 128;

impl FromRequest for Identity {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(identity) = req.extensions().get::<Identity>().cloned() {
            return Box::pin(async move { Ok(identity) });
        }
        let req = req.clone();
        Box::pin(async move { resolve(&req).await })
    }
}

/// Works out who sent `req`: its bearer token, else its session cookie (with the CSRF check
/// for changes), else anonymous.
pub async fn resolve(req: &HttpRequest) -> Result<Identity, AppError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("AppState is not registered")))?;
    // A credential given twice is ambiguous: refuse it rather than pick one.
    for name in [actix_web::http::header::AUTHORIZATION.as_str(), CSRF_HEADER] {
        if req.headers().get_all(name).count() > 1 {
            return Err(AppError::BadRequest(format!(
                "the {name} header is given twice"
            )));
        }
    }
    if req
        .cookies()
        .map(|c| {
            c.iter()
                .filter(|c| c.name() == sessions::COOKIE_NAME)
                .count()
                > 1
        })
        .unwrap_or(false)
    {
        return Err(AppError::BadRequest(
            "the session cookie is given twice".into(),
        ));
    }
    let authorization = req.headers().get(actix_web::http::header::AUTHORIZATION);
    if accepts_basic(req.path()) {
        if let Some(credentials) = authorization.and_then(|v| v.to_str().ok()).and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        }) {
            return from_basic(&state, req, credentials.trim()).await;
        }
    }
    let bearer = authorization.map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
    });
    let cookie = req
        .cookie(sessions::COOKIE_NAME)
        .map(|c| c.value().to_owned());
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    match (bearer, cookie) {
        (Some(None), _) => Err(AppError::Unauthenticated(
            "the Authorization header must be `Bearer <token>`".into(),
        )),
        (Some(Some(token)), _) => from_token(&state, token).await,
        (None, Some(cookie)) => {
            let identity = from_session(&state, cookie).await?;
            if changes_state {
                if let Identity::Session { csrf_token, .. } = &identity {
                    let presented = req
                        .headers()
                        .get(CSRF_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    if !constant_time_eq(presented, csrf_token) {
                        return Err(AppError::Csrf);
                    }
                }
            }
            Ok(identity)
        }
        (None, None) => Ok(Identity::Anonymous),
    }
}

async fn from_token(state: &AppState, plaintext: String) -> Result<Identity, AppError> {
    if plaintext.is_empty() || plaintext.len() > MAX_TOKEN_CHARS {
        return Err(AppError::Unauthenticated("unknown API token".into()));
    }
    let (identity, stale) = state
        .db
        .run(move |conn| {
            let token = tokens::find_by_plaintext(conn, &plaintext)?
                .ok_or_else(|| AppError::Unauthenticated("unknown API token".into()))?;
            if token.revoked_at.is_some() {
                return Err(AppError::Unauthenticated(
                    "this API token has been revoked".into(),
                ));
            }
            if token.is_expired(crate::db::now()) {
                return Err(AppError::Unauthenticated(
                    "this API token has expired".into(),
                ));
            }
            let mut user = users::find(conn, &token.user_id)?
                .ok_or_else(|| AppError::Unauthenticated("the token's user is gone".into()))?;
            if user.disabled {
                return Err(AppError::Unauthenticated(format!(
                    "user {} is disabled",
                    user.username
                )));
            }
            if let Some(role) = token.role()? {
                user.role = user.role.min(role);
            }
            let stale = tokens::use_is_stale(&token).then(|| token.clone());
            let scoped = token.role_name.is_some() || token.expires_at.is_some();
            Ok((
                Identity::Token {
                    user,
                    token_id: token.id,
                    expires_at: token.expires_at,
                    scoped,
                },
                stale,
            ))
        })
        .await?;
    // When a token was last used is a courtesy: written off the request's path, one write at
    // a time (a busy store then holds one connection, not one per request), and skipped while
    // another is in flight.
    if let Some(token) = stale {
        if let Ok(permit) = state.token_touch_gate.clone().try_acquire_owned() {
            let db = state.db.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = db.run(move |conn| tokens::touch(conn, &token)).await {
                    tracing::warn!(error = %e, "recording a token's last use");
                }
            });
        }
    }
    Ok(identity)
}

/// Checks a user name and password as a login does: throttled per client (`client`,
/// [`crate::http::ClientInfo::key`]) and per name (a name that is no possible user name is
/// never a throttle key), the account read first, then argon2 off the workers behind the login
/// gate, holding no store connection. Returns the user when the password is theirs, and
/// whether the name is a user's (for the audit). The caller records the attempt.
pub async fn check_password(
    state: &AppState,
    client: &str,
    username: &str,
    password: String,
) -> Result<(Option<users::User>, bool), AppError> {
    let throttle_name = if users::check_username(username).is_ok() {
        username
    } else {
        "<malformed>"
    };
    state.login_throttle.check(throttle_name, client)?;
    let name = username.to_owned();
    let candidate = state
        .db
        .run(move |conn| crate::auth::accounts::login_candidate(conn, &name))
        .await?;
    let known = candidate.is_some();
    // A few password checks at a time, each off the workers and holding no connection.
    let permit = state
        .login_gate
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| AppError::Unavailable("logins are closed".into()))?;
    let user = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::auth::accounts::verify_login(candidate.as_ref(), &password)
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("password check failed: {e}")))?;
    Ok((user, known))
}

/// Paths whose callers may send `Authorization: Basic` (MLflow's REST API and its artifact
/// proxy: MLflow's client sends `MLFLOW_TRACKING_USERNAME` and `PASSWORD` that way). Elsewhere
/// only bearer tokens and sessions are taken.
pub fn accepts_basic(path: &str) -> bool {
    [
        "/api/2.0/mlflow",
        "/ajax-api/2.0/mlflow",
        "/api/2.0/mlflow-artifacts",
    ]
    .iter()
    .any(|prefix| path.starts_with(prefix))
}

/// Longest `Basic` credential decoded (base64 of a user name and a password).
const MAX_BASIC_CHARS: usize = 1400;

/// A user name and password (`Authorization: Basic`), checked like a login: throttled per
/// client and name, argon2 on the blocking pool behind the login gate, one check at a time, and
/// remembered for a while ([`crate::auth::basic::REMEMBER`]) so that a client sending it with
/// every call costs one check then. The user is read on every request: a disabled user is
/// refused at once.
async fn from_basic(
    state: &AppState,
    req: &HttpRequest,
    credentials: &str,
) -> Result<Identity, AppError> {
    use base64::Engine;
    let refused = || AppError::Unauthenticated("wrong user name or password".into());
    if credentials.len() > MAX_BASIC_CHARS {
        return Err(refused());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "the Basic credentials are not base64 of `user:password`".into(),
            )
        })?;
    let Some((username, password)) = decoded.split_once(':') else {
        return Err(AppError::Unauthenticated(
            "the Basic credentials are not base64 of `user:password`".into(),
        ));
    };
    let (username, password) = (username.to_owned(), password.to_owned());
    let cached = state.basic_auth.lookup(&username, &password);
    let user_id = match cached {
        Some(id) => id,
        None => {
            // Misses are checked one at a time; a pair checked meanwhile is taken as it is.
            // Waiting is bounded: a check stuck behind a slow store answers 503, not never.
            let checking = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                state.basic_auth.checking.lock(),
            )
            .await
            .map_err(|_| AppError::Overloaded {
                message: "password checks are queued; try again shortly".into(),
                retry_after_secs: 1,
            })?;
            if let Some(id) = state.basic_auth.lookup(&username, &password) {
                drop(checking);
                return basic_user(state, id).await;
            }
            let client = crate::http::ClientInfo::of(req, &state.trusted_proxies).key();
            let (user, known) = check_password(state, &client, &username, password.clone()).await?;
            if let Some(user) = &user {
                state.basic_auth.remember(&username, &password, &user.id);
            }
            // The next waiter goes on; the audit write and the user's read happen after.
            drop(checking);
            let Some(user) = user else {
                // A failed check is audited like a failed login.
                let name = username.clone();
                state
                    .db
                    .run(move |conn| {
                        crate::auth::accounts::record_login(conn, &name, known, None, &client)
                    })
                    .await?;
                return Err(refused());
            };
            user.id
        }
    };
    basic_user(state, user_id).await
}

/// The user a Basic pair named, read now: a disabled user is refused.
async fn basic_user(state: &AppState, user_id: String) -> Result<Identity, AppError> {
    let refused = || AppError::Unauthenticated("wrong user name or password".into());
    let user = state
        .db
        .run(move |conn| users::find(conn, &user_id))
        .await?
        .filter(|u| !u.disabled)
        .ok_or_else(refused)?;
    Ok(Identity::Token {
        user,
        token_id: "basic".into(),
        expires_at: None,
        scoped: false,
    })
}

/// A missing or expired session is simply anonymous: the dashboard then sends the person to
/// the login page.
async fn from_session(state: &AppState, cookie: String) -> Result<Identity, AppError> {
    if cookie.len() > MAX_TOKEN_CHARS {
        return Ok(Identity::Anonymous);
    }
    state
        .db
        .run(move |conn| {
            let Some(session) = sessions::find_live(conn, &cookie)? else {
                return Ok(Identity::Anonymous);
            };
            match users::find(conn, &session.user_id)? {
                Some(user) if !user.disabled => Ok(Identity::Session {
                    user,
                    csrf_token: session.csrf_token,
                }),
                _ => Ok(Identity::Anonymous),
            }
        })
        .await
}
