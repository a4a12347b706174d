use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_page_of_the_navigation_renders_for_a_viewer() {
    let app = spawn_app().await;
    app.login_admin().await;
    let overview = app.get("/").await.text().await.expect("html");
    let paths: Vec<String> = overview
        .split("<nav>")
        .nth(1)
        .and_then(|nav| nav.split("</nav>").next())
        .expect("navigation")
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(paths.len(), 13, "{paths:?}");
    // The replicas' jobs: this one's role, and (to an admin) the agent's lease with its holder.
    assert!(overview.contains("Jobs across replicas"), "{overview}");
    assert!(overview.contains("<code>all</code>"), "{overview}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = app.get("/").await.text().await.expect("html");
        let table = page.split("id=\"leases\"").nth(1).unwrap_or("");
        if table.contains("<code>agent</code>")
            && table.contains(&format!(":{}:", std::process::id()))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent's lease on the Overview: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for path in &paths {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.expect("html");
        assert!(
            html.contains("aria-current=\"page\""),
            "{path} marks itself active"
        );
    }

    // The agent's pages before any alert: nothing waits, nothing happened.
    let html = app.get("/approvals").await.text().await.expect("html");
    assert!(html.contains("Nothing is waiting for a person"), "{html}");
    let html = app.get("/agent").await.text().await.expect("html");
    assert!(
        html.contains("running") && html.contains("Pause (kill switch)"),
        "{html}"
    );
    assert!(
        html.contains("1. quarantine-bad-values"),
        "the policy is shown"
    );
    // Monitoring's pages before any check: they say how checks come, and show none.
    let html = app.get("/drift").await.text().await.expect("html");
    assert!(html.contains("No check yet"), "{html}");
    let html = app.get("/trends").await.text().await.expect("html");
    assert!(html.contains("No completed check yet"), "{html}");
    assert_eq!(app.get("/no-such-page").await.status(), 404);
}

#[tokio::test]
async fn the_activity_feed_shows_the_audit_chain() {
    let app = spawn_app().await;
    app.login_admin().await;
    let html = app.get("/activity").await.text().await.expect("html");
    assert!(html.contains("Chain intact"), "{html}");
    assert!(
        html.contains("user.create") && html.contains("auth.login"),
        "{html}"
    );
    assert!(html.contains("hx-trigger=\"every 10s\""), "the feed polls");

    // htmx polling gets only the partial.
    let partial = app
        .client
        .get(app.url("/activity"))
        .header("HX-Request", "true")
        .send()
        .await
        .expect("partial")
        .text()
        .await
        .expect("html");
    assert!(
        partial.contains("auth.login") && !partial.contains("<html"),
        "{partial}"
    );
}

#[tokio::test]
async fn anonymous_htmx_requests_are_sent_to_login() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/activity"))
        .header("HX-Request", "true")
        .send()
        .await
        .expect("send");
    assert_eq!(response.headers()["hx-redirect"], "/login?next=%2Factivity");
}

#[tokio::test]
async fn htmx_errors_come_back_as_toasts() {
    let app = spawn_app().await;
    let csrf = app.login_admin().await;
    let response = app
        .client
        .post(app.url("/access/users"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[
            ("username", "dan"),
            ("password", "short"),
            ("role", "viewer"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 422);
    assert_eq!(response.headers()["hx-retarget"], "#toasts");
    assert_eq!(response.headers()["hx-reswap"], "beforeend");
    let toast = response.text().await.expect("html");
    assert!(
        toast.contains("class=\"toast\"") && toast.contains("at least 10"),
        "{toast}"
    );

    let created = app
        .client
        .post(app.url("/access/users"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &csrf)
        .form(&[
            ("username", "dan"),
            ("password", "dan-password-1"),
            ("role", "viewer"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(created.status(), 200);
    let partial = created.text().await.expect("html");
    assert!(partial.contains("Created dan (viewer)"), "{partial}");
}

#[tokio::test]
async fn static_files_are_embedded_with_versioned_htmx() {
    let app = spawn_app_with(|s| s.auth.public_read = true).await;
    let page = app.get("/").await.text().await.expect("html");
    assert!(page.contains("/static/htmx-2.0.11.min.js"), "{page}");
    assert!(
        page.contains("integrity=\"sha384-"),
        "htmx carries an SRI hash"
    );
    let js = app.get("/static/htmx-2.0.11.min.js").await;
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .contains("javascript")
    );
    let body = js.bytes().await.expect("bytes");
    let on_disk = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/static/htmx-2.0.11.min.js"
    ))
    .expect("file");
    assert_eq!(body.as_ref(), on_disk.as_slice());
    assert_eq!(app.get("/static/nope.js").await.status(), 404);
}

/// Headless Chromium (Debian's `chromium`) renders the page under its Content-Security-Policy:
/// htmx's script loads with its SRI hash accepted, and the console reports no CSP violation
/// (no inline script or style anywhere). That htmx then works under this policy (clicks,
/// swaps, CSRF headers) is driven by the browser tests in tests/e2e.
#[tokio::test]
async fn a_real_browser_loads_the_dashboard_under_its_content_security_policy() {
    let app = spawn_app_with(|s| s.auth.public_read = true).await;
    let page = app.get("/activity").await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let url = app.url("/activity");
    let out = tokio::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            &format!("--user-data-dir={}", profile.path().display()),
            "--dump-dom",
            &url,
        ])
        .output()
        .await
        .expect("chromium is installed (make test installs it)");
    let dom = String::from_utf8_lossy(&out.stdout);
    let console = String::from_utf8_lossy(&out.stderr);
    assert!(dom.contains("<h1>Activity</h1>"), "page rendered:\n{dom}");
    assert!(dom.contains("Chain intact"), "{dom}");
    assert!(
        dom.contains("htmx-2.0.11.min.js"),
        "the page loads htmx:\n{dom}"
    );
    for refusal in ["Content Security Policy", "Failed to find a valid digest"] {
        assert!(
            !console.contains(refusal),
            "the browser refused something ({refusal}):\n{console}"
        );
    }
}
