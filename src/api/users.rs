use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::auth::{Identity, Role, accounts, users};
use crate::error::AppError;
use crate::http::body::StrictJson;
use crate::state::AppState;

pub async fn get_me(identity: Identity) -> Result<HttpResponse, AppError> {
    let user = identity.require(Role::Viewer)?;
    Ok(HttpResponse::Ok().json(user))
}

pub async fn list_users(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let users = state.db.run(users::list).await?;
    Ok(HttpResponse::Ok().json(users))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub role: Role,
}

pub async fn create_user(
    state: web::Data<AppState>,
    identity: Identity,
    body: StrictJson<NewUser>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let actor = identity.actor();
    let NewUser {
        username,
        password,
        role,
    } = body.into_inner();
    let user = state
        .db
        .run(move |conn| accounts::create_user(conn, &actor, &username, &password, role))
        .await?;
    Ok(HttpResponse::Created().json(user))
}

pub async fn disable_user(
    state: web::Data<AppState>,
    identity: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    identity.require(Role::Admin)?;
    let actor = identity.actor();
    let username = path.into_inner();
    let user = state
        .db
        .run(move |conn| accounts::disable_user(conn, &actor, &username))
        .await?;
    Ok(HttpResponse::Ok().json(user))
}
