//! Every route of both route tables (`steward::api::ROUTES`, `steward::web::ROUTES`), walked
//! from the tables themselves so that a new route can't be missed: anonymous callers, each
//! role by bearer token, and each role by session with and without the CSRF header, each
//! answered as the route's declared access says. Bodies are deliberately wrong, so a caller
//! who gets through starts nothing (the one exception, "Train now", trains one small model).

use steward::auth::Role;
use steward::http::{Access, RouteSpec};
use steward::ml::models::ModelKind;

use crate::helpers::{Visitor, spawn_app_with};

/// The path with each `{param}` filled with something harmless.
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .unwrap_or(rest.len() - 1);
        let name = &rest[open + 1..close];
        out.push_str(match name {
            "version" => "1",
            "page" => "drift",
            _ => "x",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

fn is_api(spec: &RouteSpec) -> bool {
    spec.path.starts_with("/api/") || steward::api::ROUTES.iter().any(|r| r.path == spec.path)
}

struct Caller {
    role: Role,
    token: String,
    session: Visitor,
    csrf: String,
}

async fn send(
    visitor: &Visitor,
    spec: &RouteSpec,
    bearer: Option<&str>,
    csrf: Option<&str>,
) -> u16 {
    let url = visitor.url(&fill(spec.path));
    let method: reqwest::Method = spec.method.to_uppercase().parse().expect("method");
    let mut request = visitor.client.request(method, url);
    if spec.mutating() {
        request = if is_api(spec) {
            request
                .header("Content-Type", "application/json")
                .body(r#"{"__probe": 1}"#)
        } else {
            request
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("__probe=1")
        };
    }
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    request.send().await.expect("send").status().as_u16()
}

#[tokio::test]
async fn every_route_enforces_its_declared_access() {
    let app = spawn_app_with(|s| {
        s.training.on_first_start = true;
        s.training.models = vec![ModelKind::Lr];
        s.auth.login_attempts_per_minute = 100;
    })
    .await;
    let admin = app.admin_token().await;
    let mut callers = Vec::new();
    for (role, name) in [
        (Role::Viewer, "vera"),
        (Role::Approver, "april"),
        (Role::Admin, "ada"),
    ] {
        let token = app.user_token(&admin, name, role.as_str()).await;
        let session = app.visitor();
        let csrf = session.login(name, &format!("{name}-password-1")).await;
        callers.push(Caller {
            role,
            token,
            session,
            csrf,
        });
    }
    let routes: Vec<&RouteSpec> = steward::api::ROUTES
        .iter()
        .chain(steward::api::mlflow::ROUTES)
        .chain(steward::web::ROUTES)
        .collect();
    assert!(
        routes.len() > 60,
        "both tables are walked: {}",
        routes.len()
    );
    let anonymous = app.visitor();
    let mut checked = 0;
    for spec in routes {
        let what = format!("{} {}", spec.method, spec.path);
        let anon = send(&anonymous, spec, None, None).await;
        assert!(anon < 500 || anon == 503, "{what}: anonymous got {anon}");
        let Some(least) = spec.access.least_role() else {
            // Open routes: never a login demand (the login form answers 403 without its own
            // CSRF cookie, which is its check, not a role).
            assert_ne!(anon, 401, "{what} is open");
            checked += 1;
            continue;
        };
        if is_api(spec) {
            assert_eq!(anon, 401, "{what}: anonymous");
        } else {
            assert_eq!(anon, 303, "{what}: anonymous is sent to the login page");
        }
        for caller in &callers {
            let expected_forbidden = caller.role < least;
            let by_token = send(&anonymous, spec, Some(&caller.token), None).await;
            let by_session = send(&caller.session, spec, None, Some(&caller.csrf)).await;
            for (how, status) in [("token", by_token), ("session", by_session)] {
                if expected_forbidden {
                    assert_eq!(status, 403, "{what}: {} by {how}", caller.role);
                } else {
                    assert!(
                        status != 401 && status != 403 && status < 500,
                        "{what}: {} by {how} got {status}",
                        caller.role
                    );
                }
            }
            if spec.mutating() && spec.access.guarded() {
                let forged = send(&caller.session, spec, None, None).await;
                assert_eq!(
                    forged, 403,
                    "{what}: {} by session without CSRF",
                    caller.role
                );
            }
        }
        checked += 1;
    }
    assert!(checked > 60);
    // Logging out: anyone may, but a session's logout carries its CSRF token.
    let logout = RouteSpec {
        method: "post",
        path: "/logout",
        access: Access::Open,
        summary: "Log out",
    };
    let vera = &callers[0];
    assert_eq!(send(&vera.session, &logout, None, None).await, 403);
    assert_eq!(
        send(&vera.session, &logout, None, Some(&vera.csrf)).await,
        303
    );
}
