//! Dashboard login and logout.
//!
//! The login form has no session yet, so its CSRF protection is a double-submit cookie: the form
//! carries the same random value as a SameSite=Strict cookie, which another site can't read or
//! set. Attempts are throttled per user name and per client address (the TCP peer, or what a
//! trusted proxy says); the name is checked for its form before it is a throttle key or written
//! anywhere, and the password is checked without holding a store connection, a few at a time.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::Chrome;
use crate::auth::secrets::{constant_time_eq, random_string};
use crate::auth::{Identity, accounts, sessions, users};
use crate::error::AppError;
use crate::http::ClientInfo;
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
#[serde(deny_unknown_fields)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf_token: String,
    next: Option<String>,
}

/// Only paths on this site are followed after login. The value is refused when it holds a
/// control character (browsers drop tabs and newlines, so `/\t/evil.example` would become
/// `//evil.example`), a backslash or a space, and otherwise resolved against a fixed origin:
/// anything that leaves it (`//host`, `https://…`) gives `/`.
fn safe_next(next: Option<&str>) -> String {
    const ORIGIN: &str = "http://steward.invalid";
    let Some(next) = next else {
        return "/".to_owned();
    };
    if next.len() > 2048
        || !next.starts_with('/')
        || next
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return "/".to_owned();
    }
    let Ok(base) = url::Url::parse(ORIGIN) else {
        return "/".to_owned();
    };
    match base.join(next) {
        Ok(resolved) if resolved.origin() == base.origin() => {
            let mut path = resolved.path().to_owned();
            if let Some(query) = resolved.query() {
                path.push('?');
                path.push_str(query);
            }
            if path.starts_with("//") {
                "/".to_owned()
            } else {
                path
            }
        }
        _ => "/".to_owned(),
    }
}

fn login_page(
    csrf_token: String,
    next: String,
    username: String,
    error: Option<String>,
    status: actix_web::http::StatusCode,
    secure: bool,
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
        .secure(secure)
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
    let secure = cookie_secure(&state, &req);
    login_page(
        csrf,
        next,
        String::new(),
        None,
        actix_web::http::StatusCode::OK,
        secure,
    )
}

/// Cookies are Secure when configured so, or when the client reached a trusted proxy over
/// HTTPS.
fn cookie_secure(state: &AppState, req: &HttpRequest) -> bool {
    state.settings.auth.cookie_secure || ClientInfo::of(req, &state.trusted_proxies).https
}

pub async fn post_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let mut form = form.into_inner();
    let cookie = req.cookie(LOGIN_CSRF_COOKIE).map(|c| c.value().to_owned());
    match cookie {
        Some(c) if !form.csrf_token.is_empty() && constant_time_eq(&c, &form.csrf_token) => {}
        _ => return Err(AppError::Csrf),
    }
    let client_info = ClientInfo::of(&req, &state.trusted_proxies);
    let client = client_info.key();
    let secure = state.settings.auth.cookie_secure || client_info.https;
    let next = safe_next(form.next.as_deref());
    let well_formed = users::check_username(&form.username).is_ok();
    let password = std::mem::take(&mut form.password);
    let (user, known) = match crate::http::identity::check_password(
        &state,
        &client,
        &form.username,
        password,
    )
    .await
    {
        Err(e @ AppError::RateLimited { .. }) => {
            metrics::counter!(LOGIN_ATTEMPTS_TOTAL, "outcome" => "throttled").increment(1);
            return Err(e);
        }
        other => other?,
    };
    let (username, recorded) = (form.username.clone(), user.clone());
    let audit_client = client.clone();
    state
        .db
        .run(move |conn| {
            accounts::record_login(conn, &username, known, recorded.as_ref(), &audit_client)
        })
        .await?;
    let Some(user) = user else {
        metrics::counter!(LOGIN_ATTEMPTS_TOTAL, "outcome" => "failure").increment(1);
        // The name goes back into the form only when it is a well-formed one.
        let shown = if well_formed {
            form.username
        } else {
            String::new()
        };
        return login_page(
            form.csrf_token,
            next,
            shown,
            Some("wrong user name or password".into()),
            actix_web::http::StatusCode::UNAUTHORIZED,
            secure,
        );
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
        .secure(secure)
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
    let mut response = if req.headers().contains_key("HX-Request") {
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
        assert_eq!(safe_next(Some("/runs/abc")), "/runs/abc");
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil.example",
            "/a\\b",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "evil.example",
            "/..//evil.example",
        ] {
            let out = safe_next(Some(bad));
            assert!(
                out == "/" || (out.starts_with('/') && !out.starts_with("//")),
                "{bad:?} -> {out:?}"
            );
            assert!(
                !out.contains("evil.example") || !out.starts_with("//"),
                "{bad:?}"
            );
        }
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
