//! Who is making a request: `Identity`, and what it may do.
//!
//! A bearer token (JSON API, CLI) or a session cookie (dashboard) identifies the user; how a
//! request becomes an `Identity` is HTTP's business (`crate::http::identity`). A token may
//! carry a narrower role and an expiry than its user: the identity's user then has the token's
//! role, so every check below sees what the token may do, not what its owner may.

use super::role::Role;
use super::users::User;
use crate::config::AuthSettings;
use crate::error::AppError;

#[derive(Debug, Clone)]
pub enum Identity {
    Anonymous,
    Session {
        user: User,
        csrf_token: String,
    },
    Token {
        /// The owner, with `role` lowered to the token's own when it has one.
        user: User,
        token_id: String,
        /// When the token stops working; `None` never.
        expires_at: Option<chrono::NaiveDateTime>,
        /// The token has a role or an expiry of its own: it may do less than its owner.
        scoped: bool,
    },
}

impl Identity {
    pub fn user(&self) -> Option<&User> {
        match self {
            Identity::Anonymous => None,
            Identity::Session { user, .. } | Identity::Token { user, .. } => Some(user),
        }
    }

    /// The user, when they hold at least `role`.
    pub fn require(&self, role: Role) -> Result<&User, AppError> {
        let user = self
            .user()
            .ok_or_else(|| AppError::Unauthenticated("log in or send a bearer token".into()))?;
        if user.role < role {
            return Err(AppError::Forbidden(format!(
                "this needs the {role} role; {} acts as {}",
                user.username, user.role
            )));
        }
        Ok(user)
    }

    /// Reads need a viewer, unless `auth.public_read` opens them. Reads of patient data and
    /// files (the prediction log, dataset contents, validation details) use
    /// `require(Role::Viewer)` instead: public reads never open them.
    pub fn require_read(&self, auth: &AuthSettings) -> Result<(), AppError> {
        if auth.public_read {
            return Ok(());
        }
        self.require(Role::Viewer).map(|_| ())
    }

    /// True when the caller holds at least `role`.
    pub fn has(&self, role: Role) -> bool {
        self.user().is_some_and(|u| u.role >= role)
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

    /// A token narrower than its owner (a role or an expiry of its own): it may only act on
    /// tokens no wider than itself ([`crate::auth::accounts::no_wider`]).
    pub fn is_scoped_token(&self) -> bool {
        matches!(self, Identity::Token { scoped: true, .. })
    }

    /// The id of the token this request came with, if it came with one.
    pub fn token_id(&self) -> Option<&str> {
        match self {
            Identity::Token { token_id, .. } => Some(token_id),
            _ => None,
        }
    }

    /// What a token minted by this caller may be at most: its role, and an expiry no later
    /// than the caller's own token (a session or an unexpiring token sets no cap).
    pub fn token_ceiling(&self) -> Option<(Role, Option<chrono::NaiveDateTime>)> {
        match self {
            Identity::Anonymous => None,
            Identity::Session { user, .. } => Some((user.role, None)),
            Identity::Token {
                user, expires_at, ..
            } => Some((user.role, *expires_at)),
        }
    }
}
