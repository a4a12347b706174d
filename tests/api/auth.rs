use serde_json::json;

use crate::helpers::{ADMIN_PASSWORD, client, spawn_app, spawn_app_with};

#[tokio::test]
async fn root_redirects_to_login_and_shows_the_overview_after_login() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"].to_str().expect("ascii"),
        "/login?next=%2F"
    );

    let login = app.get("/login").await;
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("steward_login_csrf="))
        .expect("login CSRF cookie")
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let response = app.login_attempt("admin", ADMIN_PASSWORD).await;
    assert_eq!(response.status(), 303);
    let session = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("steward_session="))
        .expect("session cookie")
        .to_owned();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );

    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("<h1>Overview</h1>"), "{html}");
    assert!(html.contains("admin"), "{html}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_repeated_failures_are_throttled() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_minute = 3).await;
    for _ in 0..3 {
        let response = app.login_attempt("admin", "not-the-password").await;
        assert_eq!(response.status(), 401);
        let html = response.text().await.expect("html");
        assert!(html.contains("wrong user name or password"), "{html}");
    }
    let response = app.login_attempt("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        response.status(),
        429,
        "even the right password waits out the throttle"
    );
    assert!(response.headers().contains_key("retry-after"));

    // Failures are audited.
    let token_app = &app;
    let events = token_app
        .client
        .get(token_app.url("/api/v1/audit"))
        .send()
        .await
        .expect("audit");
    assert_eq!(events.status(), 401, "reads need a login by default");
}

#[tokio::test]
async fn login_without_or_with_a_forged_csrf_token_is_refused() {
    let app = spawn_app().await;
    // No CSRF cookie or field at all.
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", ""),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);

    // A cookie from the login page, but a forged field.
    app.get("/login").await;
    let response = app
        .client
        .post(app.url("/login"))
        .form(&[
            ("username", "admin"),
            ("password", ADMIN_PASSWORD),
            ("csrf_token", "forgedforgedforgedforgedforged00"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 403);
    let html = response.text().await.expect("html");
    assert!(html.contains("CSRF"), "{html}");
}

#[tokio::test]
async fn session_mutations_need_the_csrf_header() {
    let app = spawn_app().await;
    let csrf = app.login_admin().await;
    let body = json!({ "name": "laptop" });

    let missing = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(missing.status(), 403);
    let err: serde_json::Value = missing.json().await.expect("json");
    assert_eq!(err["error"], "csrf_failed");

    let forged = app
        .client
        .post(app.url("/access/tokens"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", "forged")
        .form(&[("name", "laptop")])
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.headers()["hx-retarget"], "#toasts");
    let toast = forged.text().await.expect("html");
    assert!(
        toast.contains("class=\"toast\"") && toast.contains("CSRF"),
        "{toast}"
    );

    let ok = app
        .client
        .post(app.url("/access/tokens"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[("name", "laptop")])
        .send()
        .await
        .expect("send");
    assert_eq!(ok.status(), 200);
    let partial = ok.text().await.expect("html");
    assert!(
        partial.contains("shown only once") && partial.contains("stw_"),
        "{partial}"
    );
}

#[tokio::test]
async fn a_revoked_token_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let fresh = client();
    let me = fresh
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.expect("json");
    assert_eq!(me["username"], "admin");
    assert_eq!(me["role"], "admin");

    let tokens: Vec<serde_json::Value> = fresh
        .get(app.url("/api/v1/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        tokens
            .iter()
            .all(|t| t.get("secret").is_none() && t.get("token_hash").is_none())
    );
    let id = tokens[0]["id"].as_str().expect("id").to_owned();

    let revoked = fresh
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);

    let refused = fresh
        .get(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("me");
    assert_eq!(refused.status(), 401);
    let err: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(err["error"], "unauthenticated");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{err}"
    );
}

#[tokio::test]
async fn every_mutation_requires_its_role() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let api = client();
    let created = api
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({ "username": "vera", "password": "vera-password-1", "role": "viewer" }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    // Another "vera" in other letters' case would read as the same person.
    let twin = api
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({ "username": "Vera", "password": "vera-password-2", "role": "admin" }))
        .send()
        .await
        .expect("create");
    assert_eq!(twin.status(), 409);

    let viewer = app.login_token("vera", "vera-password-1").await;
    let denied = api
        .post(app.url("/api/v1/users"))
        .bearer_auth(&viewer)
        .json(&json!({ "username": "mallory", "password": "mallory-password", "role": "admin" }))
        .send()
        .await
        .expect("create");
    assert_eq!(denied.status(), 403);
    let err: serde_json::Value = denied.json().await.expect("json");
    assert_eq!(err["error"], "forbidden");

    // A viewer reads; anonymous callers don't, unless auth.public_read opens reads.
    let read = api
        .get(app.url("/api/v1/overview"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    let anonymous = api
        .get(app.url("/api/v1/overview"))
        .send()
        .await
        .expect("read");
    assert_eq!(anonymous.status(), 401);

    let open = spawn_app_with(|s| s.auth.public_read = true).await;
    let anonymous = api
        .get(open.url("/api/v1/overview"))
        .send()
        .await
        .expect("read");
    assert_eq!(anonymous.status(), 200);
    let mutation = api
        .post(open.url("/api/v1/tokens"))
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .expect("post");
    assert_eq!(mutation.status(), 401, "open reads never open mutations");
}

#[tokio::test]
async fn disabling_a_user_ends_their_sessions_and_keeps_the_last_admin() {
    let app = spawn_app().await;
    let admin = app.admin_token().await;
    let api = client();
    api.post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({ "username": "alice", "password": "alice-password", "role": "approver" }))
        .send()
        .await
        .expect("create");
    let alice_token = app.login_token("alice", "alice-password").await;

    let disabled = api
        .post(app.url("/api/v1/users/alice/disable"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("disable");
    assert_eq!(disabled.status(), 200);
    let refused = api
        .get(app.url("/api/v1/me"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .expect("me");
    assert_eq!(refused.status(), 401);

    let last_admin = api
        .post(app.url("/api/v1/users/admin/disable"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("disable");
    assert_eq!(last_admin.status(), 409);

    let weak = api
        .post(app.url("/api/v1/users"))
        .bearer_auth(&admin)
        .json(&json!({ "username": "bob", "password": "short", "role": "viewer" }))
        .send()
        .await
        .expect("create");
    assert_eq!(weak.status(), 422);
    let err: serde_json::Value = weak.json().await.expect("json");
    assert_eq!(err["details"][0]["field"], "password");
}

#[tokio::test]
async fn secrets_stay_out_of_the_api() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let settings = client()
        .get(app.url("/api/v1/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("settings");
    assert_eq!(settings.status(), 200);
    let text = settings.text().await.expect("text");
    assert!(!text.contains(ADMIN_PASSWORD), "{text}");
    assert!(text.contains("\"admin_password\":\"***\""), "{text}");
    if crate::helpers::on_postgres() {
        // The test server's password is `steward`; the URL must show it masked.
        assert!(text.contains(":***@"), "{text}");
    }
}
