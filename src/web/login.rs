//! Dashboard login and logout.
//!
//! The login form has no session yet, so its CSRF protection is a double-submit cookie: the form
//! carries the same random value as a SameSite=Strict cookie, which another site can't read or
//! set. Failed attempts are throttled per user name and per client address.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Chrome;
use crate::auth::secrets::{constant_time_eq, random_string};
use crate::auth::{Identity, accounts, sessions};
use crate::error::AppError;
use crate::state::AppState;
use crate::telemetry::LOGIN_ATTEMPTS_TOTAL;

const LOGIN_CSRF_COOKIE: &str = "steward_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf_token: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

/// Only paths on this site are followed after login, never `//host` or `https://…`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_page(
    state: &AppState,
    csrf_token: String,
    next: String,
    username: String,
    error: Option<String>,
    status: actix_web::http::StatusCode,
) -> Result<HttpResponse, AppError> {
    let page = LoginPage {
        chrome: Chrome::new(&Identity::Anonymous, ""),
        csrf_token: csrf_token.clone(),
        next,
        username,
        error,
    };
    let cookie = Cookie::build(LOGIN_CSRF_COOKIE, csrf_token)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.settings.auth.cookie_secure)
        .finish();
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .cookie(cookie)
        .body(page.render()?))
}

pub async fn get_login(
    state: web::Data<AppState>,
    identity: Identity,
    query: web::Query<LoginQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(query.next.as_deref());
    if identity.user().is_some() {
        return Ok(HttpResponse::SeeOther()
            .insert_header((header::LOCATION, next))
            .finish());
    }
    let csrf = req
        .cookie(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 32)
        .unwrap_or_else(|| random_string(32));
    login_page(
        &state,
        csrf,
        next,
        String::new(),
        None,
        actix_web::http::StatusCode::OK,
    )
}

pub async fn post_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let cookie = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned());
    match cookie {
        Some(c) if !form.csrf_token.is_empty() && constant_time_eq(&c, &form.csrf_token) => {}
        _ => return Err(AppError::Csrf),
    }
    let client = req
        .connection_info()
        .realip_remote_addr()
        .unwrap_or("unknown")
        .to_owned();
    let next = safe_next(form.next.as_deref());
    if let Err(e) = state.login_throttle.check(&form.username, &client) {
        metrics::counter!(LOGIN_ATTEMPTS_TOTAL, "outcome" => "throttled").increment(1);
        return Err(e);
    }
    let username = form.username.clone();
    let outcome = state
        .db
        .run(move |conn| accounts::check_login(conn, &username, &form.password, &client))
        .await;
    let user = match outcome {
        Ok(user) => user,
        Err(AppError::Unauthenticated(message)) => {
            metrics::counter!(LOGIN_ATTEMPTS_TOTAL, "outcome" => "failure").increment(1);
            return login_page(
                &state,
                form.csrf_token,
                next,
                form.username,
                Some(message),
                actix_web::http::StatusCode::UNAUTHORIZED,
            );
        }
        Err(e) => return Err(e),
    };
    metrics::counter!(LOGIN_ATTEMPTS_TOTAL, "outcome" => "success").increment(1);
    let ttl = state.settings.auth.session_ttl_hours;
    let user_id = user.id.clone();
    let (_, cookie_value) = state
        .db
        .run(move |conn| sessions::create(conn, &user_id, ttl))
        .await?;
    let session_cookie = Cookie::build(sessions::COOKIE_NAME, cookie_value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.settings.auth.cookie_secure)
        .max_age(time::Duration::hours(i64::from(ttl)))
        .finish();
    let mut spent = Cookie::build(LOGIN_CSRF_COOKIE, "").path("/login").finish();
    spent.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .cookie(session_cookie)
        .cookie(spent)
        .finish())
}

pub async fn post_logout(
    state: web::Data<AppState>,
    identity: Identity,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    // The extractor has already checked the CSRF token of a live session.
    if let (Some(cookie), Some(_)) = (req.cookie(sessions::COOKIE_NAME), identity.user()) {
        let value = cookie.value().to_owned();
        let actor = identity.actor();
        state
            .db
            .run(move |conn| {
                sessions::delete(conn, &value)?;
                crate::audit::append(
                    conn,
                    crate::audit::NewEvent::new(actor.clone(), "auth.logout", actor),
                )?;
                Ok(())
            })
            .await?;
    }
    let mut removal = Cookie::build(sessions::COOKIE_NAME, "").path("/").finish();
    removal.make_removal();
    // htmx follows a redirect itself; it needs HX-Redirect on a 200 to change the page.
    let mut response = if super::is_htmx(&req) {
        HttpResponse::Ok()
    } else {
        HttpResponse::SeeOther()
    };
    Ok(response
        .insert_header((header::LOCATION, "/login"))
        .insert_header(("HX-Redirect", "/login"))
        .cookie(removal)
        .finish())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/activity?x=1")), "/activity?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
