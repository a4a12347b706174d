//! Access: users (admins manage them) and API tokens (everyone manages their own). Every form
//! posts through htmx and gets the refreshed partial back.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, html, when};
use crate::auth::tokens::{self, ApiToken};
use crate::auth::users::{self, User};
use crate::auth::{Identity, Role, accounts};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::state::AppState;

pub struct UserView {
    pub username: String,
    pub role: Role,
    pub disabled: bool,
    pub created: String,
}

pub struct TokenView {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub owner: String,
    pub created: String,
    pub last_used: String,
    pub role: String,
    pub expires: String,
    /// active, expired or revoked.
    pub status: &'static str,
}

#[derive(Template)]
#[template(path = "access_partial.html")]
struct AccessPartial {
    is_admin: bool,
    me: String,
    roles: [Role; 3],
    users: Vec<UserView>,
    tokens: Vec<TokenView>,
    new_secret: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    chrome: Chrome,
    partial: AccessPartial,
}

async fn partial(
    state: &AppState,
    me: &User,
    new_secret: Option<String>,
    notice: Option<String>,
) -> Result<AccessPartial, AppError> {
    let is_admin = me.role == Role::Admin;
    let me_owned = me.clone();
    let (users, tokens) = state
        .db
        .run(move |conn| {
            let users = if is_admin {
                users::list(conn)?
            } else {
                vec![me_owned.clone()]
            };
            let owner = (!is_admin).then_some(me_owned.id.as_str());
            Ok((users, tokens::list(conn, owner)?))
        })
        .await?;
    let owner_name = |t: &ApiToken| {
        users
            .iter()
            .find(|u| u.id == t.user_id)
            .map(|u| u.username.clone())
            .unwrap_or_else(|| t.user_id.clone())
    };
    let tokens = tokens
        .iter()
        .map(|t| TokenView {
            id: t.id.clone(),
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            owner: owner_name(t),
            created: when(&t.created_at),
            last_used: t
                .last_used_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            role: t.role_name.clone().unwrap_or_else(|| "as its user".into()),
            expires: t
                .expires_at
                .as_ref()
                .map(when)
                .unwrap_or_else(|| "never".into()),
            status: if t.revoked_at.is_some() {
                "revoked"
            } else if t.is_expired(crate::db::now()) {
                "expired"
            } else {
                "active"
            },
        })
        .collect();
    Ok(AccessPartial {
        is_admin,
        me: me.username.clone(),
        roles: Role::ALL,
        users: users
            .into_iter()
            .map(|u| UserView {
                created: when(&u.created_at),
                username: u.username,
                role: u.role,
                disabled: u.disabled,
            })
            .collect(),
        tokens,
        new_secret,
        notice,
    })
}

pub async fn get_access(
    state: web::Data<AppState>,
    identity: Identity,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    let me = identity.require(Role::Viewer)?;
    let partial = partial(&state, me, None, None).await?;
    page_or_partial(hx, partial, |partial| {
        AccessPage {
            chrome: Chrome::new(&identity, "/access"),
            partial,
        }
        .render()
    })
}

#[derive(Deserialize)]
pub struct NewUserForm {
    username: String,
    password: String,
    role: Role,
}

pub async fn create_user(
    state: web::Data<AppState>,
    identity: Identity,
    form: web::Form<NewUserForm>,
) -> Result<HttpResponse, AppError> {
    let me = identity.require(Role::Admin)?;
    let actor = identity.actor();
    let NewUserForm {
        username,
        password,
        role,
    } = form.into_inner();
    let created = state
        .db
        .run(move |conn| accounts::create_user(conn, &actor, &username, &password, role))
        .await?;
    let notice = format!("Created {} ({}).", created.username, created.role);
    Ok(html(
        partial(&state, me, None, Some(notice)).await?.render()?,
    ))
}

pub async fn disable_user(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let me = identity.require(Role::Admin)?;
    let actor = identity.actor();
    let username = path.into_inner();
    let disabled = state
        .db
        .run(move |conn| accounts::disable_user(conn, &actor, &username))
        .await?;
    let notice = format!("Disabled {} and ended their sessions.", disabled.username);
    Ok(html(
        partial(&state, me, None, Some(notice)).await?.render()?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTokenForm {
    name: String,
    /// Empty: the user's own role.
    #[serde(default)]
    role: String,
    /// Empty: never; else a lifetime such as `90d`.
    #[serde(default)]
    expires_in: String,
}

pub async fn create_token(
    state: web::Data<AppState>,
    identity: Identity,
    form: web::Form<NewTokenForm>,
) -> Result<HttpResponse, AppError> {
    let me = identity.require(Role::Viewer)?;
    let actor = identity.actor();
    let owner = me.clone();
    let NewTokenForm {
        name,
        role,
        expires_in,
    } = form.into_inner();
    let role = match role.trim() {
        "" => None,
        r => Some(
            r.parse::<Role>()
                .map_err(|e| AppError::validation("role", e.to_string()))?,
        ),
    };
    let expires_at = match expires_in.trim() {
        "" => None,
        text => Some(crate::db::now() + accounts::parse_lifetime(text)?),
    };
    let scope = tokens::Scope { role, expires_at };
    let ceiling = identity.token_ceiling();
    let (_, secret) = state
        .db
        .run(move |conn| accounts::create_token(conn, &actor, &owner, &name, scope, ceiling))
        .await?;
    Ok(html(
        partial(&state, me, Some(secret), None).await?.render()?,
    ))
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let me = identity.require(Role::Viewer)?;
    let actor = identity.actor();
    let id = path.into_inner();
    let (my_id, admin) = (me.id.clone(), me.role == Role::Admin);
    let revoked = state
        .db
        .run(move |conn| accounts::revoke_token(conn, &actor, &id, |t| t.user_id == my_id || admin))
        .await?;
    let notice = format!("Revoked token {} ({}).", revoked.name, revoked.prefix);
    Ok(html(
        partial(&state, me, None, Some(notice)).await?.render()?,
    ))
}
