use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::auth::tokens::{self, ApiToken};
use crate::auth::{Identity, Role, accounts};
use crate::error::AppError;
use crate::http::body::StrictJson;
use crate::state::AppState;

/// A viewer sees their own tokens; an admin sees everyone's.
pub async fn list_tokens(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Viewer)?.clone();
    let tokens = state
        .db
        .run(move |conn| {
            let owner = (user.role < Role::Admin).then_some(user.id.as_str());
            tokens::list(conn, owner)
        })
        .await?;
    Ok(HttpResponse::Ok().json(tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// The most the token may do (`viewer`, `approver`, `admin`); default: the caller's role.
    #[serde(default)]
    pub role: Option<Role>,
    /// Lifetime such as `30m`, `12h`, `90d`; default: until revoked (or, for a token made with
    /// an expiring token, required and no later than that token's expiry).
    #[serde(default)]
    pub expires_in: Option<String>,
}

/// The only response that ever carries the token itself.
#[derive(Serialize)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: ApiToken,
    pub secret: String,
}

pub async fn create_token(
    state: web::Data<AppState>,
    identity: Identity,
    body: StrictJson<NewToken>,
) -> Result<HttpResponse, AppError> {
    let owner = identity.require(Role::Viewer)?.clone();
    let actor = identity.actor();
    let NewToken {
        name,
        role,
        expires_in,
    } = body.into_inner();
    let expires_at = match expires_in {
        Some(text) => Some(crate::db::now() + accounts::parse_lifetime(&text)?),
        None => None,
    };
    let scope = tokens::Scope { role, expires_at };
    let ceiling = identity.token_ceiling();
    let (token, secret) = state
        .db
        .run(move |conn| accounts::create_token(conn, &actor, &owner, &name, scope, ceiling))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(CreatedToken { token, secret }))
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Viewer)?.clone();
    let actor = identity.actor();
    let id = path.into_inner();
    // A scoped token revokes only tokens no wider than itself (and itself).
    let limit = identity
        .is_scoped_token()
        .then(|| identity.token_ceiling())
        .flatten();
    let own = identity.token_id().map(str::to_owned);
    let token = state
        .db
        .run(move |conn| {
            accounts::revoke_token(conn, &actor, &id, |t| {
                let owned = t.user_id == user.id || user.role == Role::Admin;
                let itself = own.as_deref() == Some(t.id.as_str());
                itself
                    || (owned
                        && limit.is_none_or(|(role, expires)| accounts::no_wider(t, role, expires)))
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(token))
}
