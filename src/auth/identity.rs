//! Who is making a request: the `Identity` extractor.
//!
//! A bearer token (JSON API, CLI) or a session cookie (dashboard) identifies the user. Requests
//! that change something through a session must also carry the session's CSRF token in the
//! `X-CSRF-Token` header (htmx sends it on every request); bearer requests can't be forged
//! cross-site, so they need none. Handlers then ask for the role they need with `require`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, web};

use super::role::Role;
use super::secrets::constant_time_eq;
use super::users::User;
use super::{sessions, tokens, users};
use crate::error::AppError;
use crate::state::AppState;

pub const CSRF_HEADER: &str = "X-CSRF-Token";

#[derive(Debug, Clone)]
pub enum Identity {
    Anonymous,
    Session { user: User, csrf_token: String },
    Token { user: User },
}

impl Identity {
    pub fn user(&self) -> Option<&User> {
        match self {
            Identity::Anonymous => None,
            Identity::Session { user, .. } | Identity::Token { user } => Some(user),
        }
    }

    /// The user, when they hold at least `role`.
    pub fn require(&self, role: Role) -> Result<&User, AppError> {
        let user = self
            .user()
            .ok_or_else(|| AppError::Unauthenticated("log in or send a bearer token".into()))?;
        if user.role < role {
            return Err(AppError::Forbidden(format!(
                "this needs the {role} role; {} is {}",
                user.username, user.role
            )));
        }
        Ok(user)
    }

    /// Reads need a viewer, unless `auth.public_read` opens them.
    pub fn require_read(&self, state: &AppState) -> Result<(), AppError> {
        if state.settings.auth.public_read {
            return Ok(());
        }
        self.require(Role::Viewer).map(|_| ())
    }

    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        match self.user() {
            Some(user) => format!("user:{}", user.username),
            None => "anonymous".into(),
        }
    }

    pub fn csrf_token(&self) -> Option<&str> {
        match self {
            Identity::Session { csrf_token, .. } => Some(csrf_token),
            _ => None,
        }
    }
}

impl FromRequest for Identity {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_owned()));
        let cookie = req
            .cookie(sessions::COOKIE_NAME)
            .map(|c| c.value().to_owned());
        let csrf_header = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);

        Box::pin(async move {
            let state = state
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("AppState is not registered")))?;
            match (bearer, cookie) {
                (Some(None), _) => Err(AppError::Unauthenticated(
                    "the Authorization header must be `Bearer <token>`".into(),
                )),
                (Some(Some(token)), _) => from_token(&state, token).await,
                (None, Some(cookie)) => {
                    let identity = from_session(&state, cookie).await?;
                    if changes_state {
                        if let Identity::Session { csrf_token, .. } = &identity {
                            let presented = csrf_header.unwrap_or_default();
                            if !constant_time_eq(&presented, csrf_token) {
                                return Err(AppError::Csrf);
                            }
                        }
                    }
                    Ok(identity)
                }
                (None, None) => Ok(Identity::Anonymous),
            }
        })
    }
}

async fn from_token(state: &AppState, plaintext: String) -> Result<Identity, AppError> {
    state
        .db
        .run(move |conn| {
            let token = tokens::find_by_plaintext(conn, &plaintext)?
                .ok_or_else(|| AppError::Unauthenticated("unknown API token".into()))?;
            if token.revoked_at.is_some() {
                return Err(AppError::Unauthenticated(
                    "this API token has been revoked".into(),
                ));
            }
            let user = users::find(conn, &token.user_id)?
                .ok_or_else(|| AppError::Unauthenticated("the token's user is gone".into()))?;
            if user.disabled {
                return Err(AppError::Unauthenticated(format!(
                    "user {} is disabled",
                    user.username
                )));
            }
            tokens::touch(conn, &token)?;
            Ok(Identity::Token { user })
        })
        .await
}

/// A missing or expired session is simply anonymous: the dashboard then sends the person to
/// the login page.
async fn from_session(state: &AppState, cookie: String) -> Result<Identity, AppError> {
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
