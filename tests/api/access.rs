//! Login and audit intake, what each role reads, the headers of dashboard pages, and token
//! scopes: the hardening of who may do and see what.

use serde_json::{Value, json};

use crate::helpers::{ADMIN_PASSWORD, client, spawn_app, spawn_app_with};

/// A name that could be a mistyped password never lands in the append-only log, nor becomes
/// a throttle key: the log keeps a keyed digest, the throttle a fixed key.
#[tokio::test]
async fn unknown_and_malformed_login_names_stay_out_of_the_audit_log() {
    let app = spawn_app().await;
    for name in [
        "Hunter2-Secret-Typed-As-Name",
        "with space and\ttab",
        &"x".repeat(500),
    ] {
        let response = app.login_attempt(name, "whatever-password").await;
        assert_eq!(response.status(), 401);
        let page = response.text().await.expect("page");
        assert!(
            !page.contains("with space") && !page.contains("xxxxxxxxxx"),
            "a malformed name is not echoed on the form"
        );
    }
    let token = app.admin_token().await;
    let (_, events) = app.get_json(&token, "/api/v1/audit?limit=50").await;
    let text = events.to_string();
    assert!(!text.contains("Hunter2"), "{text}");
    assert!(!text.contains("xxxxxxxxxx"), "{text}");
    let failed: Vec<&Value> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == "auth.login_failed")
        .collect();
    assert_eq!(failed.len(), 3, "{text}");
    for e in &failed {
        assert_eq!(e["subject"], "user:?");
        let after: Value =
            serde_json::from_str(e["after_json"].as_str().expect("after")).expect("json");
        assert_eq!(
            after["unknown_name_digest"].as_str().map(str::len),
            Some(16),
            "{after}"
        );
    }
    // A wrong password for a real user names the user (the name is no secret).
    app.login_attempt("admin", "wrong-password-here").await;
    let (_, events) = app.get_json(&token, "/api/v1/audit?limit=1").await;
    assert_eq!(events[0]["subject"], "user:admin");
}

/// The per-client throttle keys on the TCP peer: a client can't dodge it by sending a new
/// X-Forwarded-For each time. Behind a trusted proxy, the address the proxy names counts.
#[tokio::test]
async fn the_throttle_keys_on_the_peer_unless_a_trusted_proxy_names_the_client() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_minute = 3).await;
    for i in 0..3 {
        let spoofed = format!("203.0.113.{i}");
        let r = app
            .login_with_headers(
                &format!("nobody{i}"),
                "wrong-password",
                &[("X-Forwarded-For", &spoofed)],
            )
            .await;
        assert_eq!(r.status(), 401);
    }
    let r = app
        .login_with_headers(
            "nobody9",
            "wrong-password",
            &[("X-Forwarded-For", "198.51.100.1")],
        )
        .await;
    assert_eq!(
        r.status(),
        429,
        "the peer's budget is spent, whatever the header says"
    );

    let proxied = spawn_app_with(|s| {
        s.auth.login_attempts_per_minute = 3;
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    for i in 0..6 {
        let client_ip = format!("198.51.100.{i}");
        let r = proxied
            .login_with_headers(
                &format!("someone{i}"),
                "wrong-password",
                &[("X-Forwarded-For", &client_ip)],
            )
            .await;
        assert_eq!(
            r.status(),
            401,
            "each client named by the proxy has its own budget"
        );
    }
    // Cookies are Secure when the client reached the trusted proxy over HTTPS.
    let r = proxied
        .login_with_headers(
            "admin",
            ADMIN_PASSWORD,
            &[
                ("X-Forwarded-For", "198.51.100.200"),
                ("X-Forwarded-Proto", "https"),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("steward_session="))
        .expect("session cookie")
        .to_owned();
    assert!(session.contains("Secure"), "{session}");
    let direct = app
        .login_with_headers("admin", ADMIN_PASSWORD, &[("X-Forwarded-Proto", "https")])
        .await;
    assert_eq!(direct.status(), 429, "still throttled (same peer)");
}

/// `next=` never leads off-site, whatever the encoding.
#[tokio::test]
async fn login_never_redirects_off_site() {
    let app = spawn_app().await;
    for next in [
        "/%09/evil.example",
        "//evil.example",
        "/%5Cevil.example",
        "https://evil.example",
        "/%0A/evil.example",
    ] {
        let visitor = app.visitor();
        let page = visitor
            .get(&format!("/login?next={next}"))
            .await
            .text()
            .await
            .expect("page");
        let csrf = crate::helpers::form_csrf(&page).expect("csrf");
        let decoded = url::form_urlencoded::parse(format!("n={next}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let response = visitor
            .client
            .post(app.url("/login"))
            .form(&[
                ("username", "admin"),
                ("password", ADMIN_PASSWORD),
                ("csrf_token", csrf.as_str()),
                ("next", decoded.as_str()),
            ])
            .send()
            .await
            .expect("login");
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().expect("ascii");
        assert_eq!(location, "/", "{next} led to {location}");
    }
}

/// Viewers and public reads see that configuration, user, token and login events happened,
/// not their details; patient features, dataset files and validation details need a viewer
/// even with public reads.
#[tokio::test]
async fn readers_see_what_their_role_may() {
    let app = spawn_app_with(|s| s.auth.public_read = true).await;
    let admin = app.admin_token().await;
    let viewer = app.user_token(&admin, "vera", "viewer").await;
    let (_, as_viewer) = app.get_json(&viewer, "/api/v1/audit?limit=100").await;
    let config = as_viewer
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "config.applied")
        .expect("config event")
        .clone();
    assert_eq!(config["redacted"], true);
    assert_eq!(config["after_json"], Value::Null);
    // Nor who, on what: a failed login's subject would tell a real name from a made-up one,
    // and user events would list the users.
    for name in ["admin", "nobody-here"] {
        let response = app.login_with_headers(name, "wrong-password-1", &[]).await;
        assert_eq!(response.status(), 401);
    }
    let (_, as_viewer) = app.get_json(&viewer, "/api/v1/audit?limit=100").await;
    for e in as_viewer.as_array().expect("events") {
        let action = e["action"].as_str().unwrap_or_default();
        if ["auth.", "user.", "token.", "config."]
            .iter()
            .any(|p| action.starts_with(p))
        {
            assert_eq!(e["subject"], "(admin only)", "{e}");
            assert_eq!(e["actor"], "(admin only)", "{e}");
        }
    }
    assert!(!as_viewer.to_string().contains("user:vera"), "{as_viewer}");
    let (_, as_admin) = app.get_json(&admin, "/api/v1/audit?limit=100").await;
    let config = as_admin
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["action"] == "config.applied")
        .expect("config event")
        .clone();
    assert_eq!(config["redacted"], false);
    assert!(
        config["after_json"]
            .as_str()
            .unwrap_or("")
            .contains("database")
    );

    // The Overview and the activity feed say the same to a viewer.
    let visitor = app.visitor();
    visitor.login("vera", "vera-password-1").await;
    let page = visitor.get("/activity").await.text().await.expect("page");
    assert!(page.contains("details are shown to admins"), "{page}");
    assert!(!page.contains("\"database\""), "{page}");

    let anonymous = client();
    let (_, versions) = app.get_json(&admin, "/api/v1/validations").await;
    let run = versions[0]["id"]
        .as_str()
        .expect("a validation run")
        .to_owned();
    for path in [
        "/api/v1/predictions".to_owned(),
        "/api/v1/predictions/dead-letters".to_owned(),
        "/api/v1/datasets/heart/versions/1/content".to_owned(),
        format!("/api/v1/validations/{run}"),
        "/api/v1/users".to_owned(),
        "/api/v1/settings".to_owned(),
    ] {
        let status = anonymous
            .get(app.url(&path))
            .send()
            .await
            .expect("get")
            .status();
        assert_eq!(status, 401, "{path} is not open to public reads");
    }
    for path in [
        "/api/v1/overview",
        "/api/v1/datasets/heart/versions/1",
        "/api/v1/audit",
    ] {
        let status = anonymous
            .get(app.url(path))
            .send()
            .await
            .expect("get")
            .status();
        assert_eq!(status, 200, "{path} is open to public reads");
    }
    assert_eq!(
        app.visitor().get("/predictions").await.status(),
        303,
        "to the login page"
    );
}

/// Dashboard pages carry a CSP that fits htmx, no framing, nosniff, a referrer policy and no
/// caching; the API's errors have the JSON shape whatever went wrong.
#[tokio::test]
async fn pages_carry_security_headers_and_every_error_has_the_json_shape() {
    let app = spawn_app().await;
    app.login_admin().await;
    for path in ["/", "/access", "/login", "/no-such-page"] {
        let r = app.get(path).await;
        let h = r.headers();
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("default-src 'self'"),
            "{path}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert!(
            h["vary"].to_str().expect("vary").contains("HX-Request"),
            "{path}"
        );
    }
    // Every other response is not sniffed and not framed either: Swagger UI, the API, assets.
    for path in [
        "/docs/",
        "/openapi.json",
        "/static/steward.css",
        "/health",
        "/api/v1/overview",
    ] {
        let r = app.get(path).await;
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert!(
            h["content-security-policy"]
                .to_str()
                .expect("csp")
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
    let token = app.admin_token().await;
    for (method, path, status) in [
        ("GET", "/api/v1/audit?limit=many", 400),
        ("GET", "/invocations", 405),
        ("POST", "/openapi.json", 405),
        ("GET", "/api/v1/datasets/heart/versions/abc", 400),
        ("GET", "/api/v1/no/such/route", 404),
        ("DELETE", "/api/v1/users", 405),
        ("GET", "/predict", 405),
        ("GET", "/api/v1/audit?limit=1&colour=red", 400),
    ] {
        let r = client()
            .request(method.parse().expect("method"), app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{method} {path}: {body}"
        );
    }
}

/// Tokens may expire and be narrower than their user; a token never mints a stronger or
/// longer-lived one. The CLI takes --expires-in and --role.
#[tokio::test]
async fn tokens_carry_an_expiry_and_never_mint_more_than_they_are() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let (status, narrow) = app
        .api(
            &admin,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "ro", "role": "viewer", "expires_in": "1h" }),
        )
        .await;
    assert_eq!(status, 201, "{narrow}");
    assert_eq!(narrow["role"], "viewer");
    assert!(narrow["expires_at"].is_string());
    let narrow_secret = narrow["secret"].as_str().expect("secret").to_owned();
    let (status, _) = app.get_json(&narrow_secret, "/api/v1/users").await;
    assert_eq!(status, 403, "a viewer token of an admin acts as a viewer");
    let (status, out) = app
        .api(
            &narrow_secret,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "up", "role": "admin", "expires_in": "10m" }),
        )
        .await;
    assert_eq!(status, 403, "no higher role: {out}");
    let (status, out) = app
        .api(
            &narrow_secret,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "forever" }),
        )
        .await;
    assert_eq!(status, 403, "no later expiry than its own: {out}");
    let (status, out) = app
        .api(
            &narrow_secret,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "later", "expires_in": "2h" }),
        )
        .await;
    assert_eq!(status, 403, "{out}");
    let (status, child) = app
        .api(
            &narrow_secret,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "shorter", "expires_in": "10m" }),
        )
        .await;
    assert_eq!(status, 201, "{child}");
    assert_eq!(child["role"], "viewer", "narrow by default");
    let (status, out) = app
        .api(
            &admin,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "bad", "expires_in": "soon" }),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    // A unit past ASCII is a 422, not a panic.
    let (status, out) = app
        .api(
            &admin,
            "POST",
            "/api/v1/tokens",
            json!({ "name": "odd", "expires_in": "1é" }),
        )
        .await;
    assert_eq!(status, 422, "{out}");

    // A scoped token revokes only tokens no wider than itself: not its owner's others.
    let (_, tokens) = app.get_json(&admin, "/api/v1/tokens").await;
    let wide = tokens
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["role"].is_null() && t["revoked_at"].is_null())
        .and_then(|t| t["id"].as_str())
        .expect("the admin's own token")
        .to_owned();
    let (status, out) = app
        .api(
            &narrow_secret,
            "DELETE",
            &format!("/api/v1/tokens/{wide}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 404, "{out}");
    let child_id = child["id"].as_str().expect("id");
    let (status, out) = app
        .api(
            &narrow_secret,
            "DELETE",
            &format!("/api/v1/tokens/{child_id}"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{out}");

    // An expired token is refused.
    let id = narrow["id"].as_str().expect("id").to_owned();
    let db = app.store();
    let mut conn = db.get().expect("conn");
    use diesel::prelude::*;
    use steward::db::schema::api_tokens;
    diesel::update(api_tokens::table.find(&id))
        .set(api_tokens::expires_at.eq(Some(steward::db::now() - chrono::Duration::minutes(1))))
        .execute(&mut *conn)
        .expect("expire");
    let (status, out) = app.get_json(&narrow_secret, "/api/v1/me").await;
    assert_eq!(status, 401);
    assert!(
        out["message"].as_str().unwrap_or("").contains("expired"),
        "{out}"
    );

    let (code, out, err) = app.run_cli(&[
        "tokens",
        "create",
        "--user",
        "admin",
        "--name",
        "ci",
        "--role",
        "approver",
        "--expires-in",
        "90d",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("role approver") && out.contains("expires 20"),
        "{out}"
    );
    let (code, _, err) = app.run_cli(&[
        "tokens",
        "create",
        "--user",
        "admin",
        "--name",
        "ci",
        "--expires-in=0d",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("expires_in"), "{err}");
}

/// A password in the database URL's query is masked like the userinfo's, in `steward config`
/// and never echoed when the URL does not parse.
#[test]
fn database_url_passwords_are_masked_everywhere() {
    let out = std::process::Command::new(crate::helpers::steward_bin())
        .arg("config")
        .env(
            "STEWARD__DATABASE__URL",
            "postgres://steward@db/steward?sslmode=require&password=hunter2",
        )
        .output()
        .expect("steward config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("password=***"), "{text}");
}
