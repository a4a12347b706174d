//! Notifications against real servers on loopback: Debian's aiosmtpd receives the mail (read
//! back from its maildir), and an HTTP receiver in this process plays Slack and the webhook. The
//! receiver is down when the first tries go out and up later: every message still arrives,
//! once. Also the signed approval links, and the outbox through the API and the CLI.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use mail_parser::MimeHeaders;
use secrecy::SecretString;
use serde_json::{Value, json};
use sha2::Sha256;
use steward::notify::settings::{
    ChannelSettings, EmailChannel, RouteSettings, SlackChannel, Tls, WebhookChannel,
};

use crate::helpers::{spawn_app_with, until};

/// Debian's aiosmtpd (python3-aiosmtpd), storing what it receives in a maildir.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl SmtpServer {
    fn start(dir: &Path) -> SmtpServer {
        let port = free_port();
        let maildir = dir.join("maildir");
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (scripts/install-deps installs it)");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        SmtpServer {
            child,
            port,
            maildir,
        }
    }

    /// The messages received so far, parsed.
    fn messages(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read(e.path()).expect("mail file"));
                }
            }
        }
        out
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use crate::helpers::free_port;

/// What the HTTP receiver got: (path, headers, body).
type Received = Arc<Mutex<Vec<(String, BTreeMap<String, String>, Vec<u8>)>>>;

/// An HTTP receiver on `port` answering 200 to every POST and keeping what it got.
fn start_receiver(port: u16, got: Received) -> actix_web::dev::ServerHandle {
    use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
    let server = HttpServer::new(move || {
        let got = got.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let got = got.clone();
            async move {
                let headers = req
                    .headers()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            v.to_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect();
                got.lock().expect("as set up").push((
                    req.path().to_owned(),
                    headers,
                    body.to_vec(),
                ));
                HttpResponse::Ok().body("ok")
            }
        }))
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .expect("bind the receiver")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    handle
}

const HOOK_SECRET: &str = "hook-secret-for-tests";

fn channels(s: &mut steward::config::Settings, smtp: u16, http: u16) {
    s.notify.poll_secs = 1;
    s.notify.backoff_secs = 1;
    s.notify.max_backoff_secs = 2;
    s.notify.max_attempts = 30;
    s.notify.timeout_secs = 5;
    s.notify.public_url = "https://steward.example.org".into();
    s.notify.channels = vec![
        ChannelSettings::Email(EmailChannel {
            name: "ops-mail".into(),
            smtp_host: "127.0.0.1".into(),
            smtp_port: smtp,
            tls: Tls::None,
            username: String::new(),
            password: SecretString::from(""),
            password_env: String::new(),
            from: "Steward <steward@example.org>".into(),
            to: vec!["ml-team@example.org".into()],
        }),
        ChannelSettings::Slack(SlackChannel {
            name: "ml-slack".into(),
            url: SecretString::from(format!("http://127.0.0.1:{http}/slack")),
            url_env: String::new(),
        }),
        ChannelSettings::Webhook(WebhookChannel {
            name: "pager".into(),
            url: SecretString::from(format!("http://127.0.0.1:{http}/hook")),
            url_env: String::new(),
            secret: SecretString::from(HOOK_SECRET),
            secret_env: String::new(),
        }),
    ];
    s.notify.routes = vec![
        RouteSettings {
            events: vec!["*".into()],
            channels: vec!["ops-mail".into(), "ml-slack".into(), "pager".into()],
            min_severity: "warning".into(),
        },
        RouteSettings {
            events: vec!["weekly_summary".into()],
            channels: vec!["ops-mail".into()],
            min_severity: "info".into(),
        },
    ];
}

fn error_rate_alert() -> Value {
    error_rate_alert_as("00000000000000e1")
}

fn error_rate_alert_as(fingerprint: &str) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "steward", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": { "alertname": "HighErrorRate", "alert_type": "error_rate", "severity": "critical" },
            "annotations": { "summary": "5xx above 5% for 10 minutes <b>&" },
            "startsAt": "2026-11-30T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint
        }]
    })
}

/// The deliveries of the outbox's events of `kind`, by channel.
fn deliveries(outbox: &Value, kind: &str) -> BTreeMap<String, Value> {
    outbox["notifications"]
        .as_array()
        .expect("as set up")
        .iter()
        .filter(|e| e["notification"]["kind"] == kind)
        .flat_map(|e| e["deliveries"].as_array().expect("as set up").clone())
        .map(|d| (d["channel"].as_str().expect("as set up").to_owned(), d))
        .collect()
}

/// An alert the agent notifies of goes out by email, Slack and the webhook; Slack and the
/// webhook are down at first (each try fails and waits with backoff), then up: each gets the
/// message once. The weekly summary goes by email with its PDF attached.
#[tokio::test]
async fn every_channel_gets_each_message_once_even_after_being_down() {
    let workdir = tempfile::tempdir().expect("as set up");
    let smtp = SmtpServer::start(workdir.path());
    // The receiver's port, closed until the receiver starts.
    let http = free_port();
    let app = spawn_app_with(|s| {
        channels(s, smtp.port, http);
        s.reports.weekly_cron = "* * * * *".into();
        s.reports.check_secs = 1;
    })
    .await;
    let token = app.admin_token().await;
    let (status, taken) = app
        .api(&token, "POST", "/agent/alerts", error_rate_alert())
        .await;
    assert_eq!(status, 200, "{taken}");

    // Mail arrives; Slack and the webhook fail (nothing listens) and wait for a retry.
    let outbox = until(&app, &token, "/api/v1/notifications?limit=500", 60, |v| {
        let d = deliveries(v, "alert");
        d.get("ops-mail").is_some_and(|m| m["status"] == "sent")
            && ["ml-slack", "pager"].iter().all(|c| {
                d.get(*c).is_some_and(|x| {
                    x["status"] == "pending"
                        && x["attempts"].as_i64().expect("as set up") >= 2
                        && x["last_error"]
                            .as_str()
                            .is_some_and(|e| e.contains("no answer"))
                })
            })
    })
    .await;
    assert!(
        outbox["waiting"].as_i64().expect("as set up") >= 2,
        "{outbox}"
    );

    // Up: each gets its message, once.
    let got: Received = Arc::default();
    let receiver = start_receiver(http, got.clone());
    until(&app, &token, "/api/v1/notifications?limit=500", 60, |v| {
        let d = deliveries(v, "alert");
        ["ml-slack", "pager"]
            .iter()
            .all(|c| d.get(*c).is_some_and(|x| x["status"] == "sent"))
    })
    .await;
    // Passes go on; nothing is sent again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = got.lock().expect("as set up").clone();
    receiver.stop(true).await;
    let slack: Vec<_> = got.iter().filter(|r| r.0 == "/slack").collect();
    let hook: Vec<_> = got.iter().filter(|r| r.0 == "/hook").collect();
    assert_eq!(slack.len(), 1, "Slack got each message once: {got:?}");
    assert_eq!(hook.len(), 1, "the webhook got each message once: {got:?}");

    // Slack: Block Kit with a header, the escaped body, the figures and a button.
    let blocks: Value = serde_json::from_slice(&slack[0].2).expect("as set up");
    assert_eq!(blocks["blocks"][0]["type"], "header", "{blocks}");
    assert!(
        blocks["blocks"][0]["text"]["text"]
            .as_str()
            .expect("as set up")
            .contains("Error rate"),
        "{blocks}"
    );
    assert!(
        blocks["blocks"][1]["text"]["text"]
            .as_str()
            .expect("as set up")
            .contains("&lt;b&gt;&amp;"),
        "{blocks}"
    );
    let button = blocks["blocks"]
        .as_array()
        .expect("as set up")
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("a button");
    assert!(
        button["elements"][0]["url"]
            .as_str()
            .expect("as set up")
            .starts_with("https://steward.example.org/agent/incidents/"),
        "{button}"
    );

    // The webhook: the event as JSON, signed with HMAC-SHA256 of the body.
    let (_, headers, body) = hook[0];
    let mut mac = Hmac::<Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).expect("as set up");
    mac.update(body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-steward-signature"], expected);
    assert_eq!(headers["x-steward-event"], "alert");
    let event: Value = serde_json::from_slice(body).expect("as set up");
    assert_eq!(event["kind"], "alert");
    assert_eq!(event["severity"], "critical");
    assert_eq!(
        headers["x-steward-delivery"],
        event["delivery_id"].as_str().expect("as set up")
    );
    assert!(event["incident_id"].is_string(), "{event}");

    // The mail: subject, body with the link, and the weekly summary with its PDF (the first
    // scheduled minute after the store began: up to a minute and a pass away).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (alert_mail, weekly_mail) = loop {
        let raw = smtp.messages();
        let mut alert = None;
        let mut weekly = None;
        for r in &raw {
            let m = mail_parser::MessageParser::default()
                .parse(r)
                .expect("as set up");
            let subject = m.subject().unwrap_or_default().to_owned();
            if subject.contains("Error rate") {
                alert = Some(r.clone());
            }
            if subject.starts_with("Weekly summary") {
                weekly = Some(r.clone());
            }
        }
        if let (Some(a), Some(w)) = (alert, weekly) {
            assert_eq!(raw.len(), 2, "one mail each, nothing twice");
            break (a, w);
        }
        assert!(
            Instant::now() < deadline,
            "mail did not arrive: {} messages",
            raw.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let alert = mail_parser::MessageParser::default()
        .parse(&alert_mail)
        .expect("as set up");
    assert_eq!(
        alert
            .to()
            .expect("as set up")
            .first()
            .expect("as set up")
            .address()
            .expect("as set up"),
        "ml-team@example.org"
    );
    let text = alert.body_text(0).expect("as set up");
    assert!(text.contains("5xx above 5% for 10 minutes"), "{text}");
    assert!(
        text.contains("Open in Steward: https://steward.example.org/agent/incidents/"),
        "{text}"
    );
    let weekly = mail_parser::MessageParser::default()
        .parse(&weekly_mail)
        .expect("as set up");
    let pdf = weekly
        .attachments()
        .find(|a| a.attachment_name().is_some_and(|n| n.ends_with(".pdf")))
        .expect("the weekly PDF is attached");
    assert!(pdf.contents().starts_with(b"%PDF-"), "a PDF");
    let path = workdir.path().join("weekly.pdf");
    std::fs::write(&path, pdf.contents()).expect("as set up");
    let text = pdftotext(&path);
    assert!(text.contains("Weekly summary"), "{text}");
    assert!(
        text.contains("Traffic") && text.contains("Model changes"),
        "{text}"
    );
    // One weekly summary per scheduled minute, however many passes look.
    let (_, outbox) = app
        .get_json(&token, "/api/v1/notifications?limit=500")
        .await;
    let weekly_events = outbox["notifications"]
        .as_array()
        .expect("as set up")
        .iter()
        .filter(|e| e["notification"]["kind"] == "weekly_summary")
        .count();
    assert!((1..=2).contains(&weekly_events), "{outbox}");
}

pub fn pdftotext(path: &Path) -> String {
    let out = Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `steward notify test`, the API's test and retry, the outbox's filters, and a channel that
/// refuses (an HTTP 4xx) failing at once with its error; bad input named.
#[tokio::test]
async fn tests_retries_and_refusals_are_recorded() {
    let workdir = tempfile::tempdir().expect("as set up");
    let smtp = SmtpServer::start(workdir.path());
    let http = free_port();
    let got: Received = Arc::default();
    let app = spawn_app_with(|s| channels(s, smtp.port, http)).await;
    let receiver = start_receiver(http, got.clone());
    let token = app.admin_token().await;

    // The API's test: sent now, recorded.
    let (status, sent) = app
        .api(
            &token,
            "POST",
            "/api/v1/notifications/test",
            json!({"channel": "pager"}),
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    let (status, bad) = app
        .api(
            &token,
            "POST",
            "/api/v1/notifications/test",
            json!({"channel": "nope"}),
        )
        .await;
    assert_eq!(status, 404, "{bad}");
    let (status, bad) = app
        .api(
            &token,
            "POST",
            "/api/v1/notifications/test",
            json!({"channel": "pager", "extra": 1}),
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    let viewer = app.user_token(&token, "vic", "viewer").await;
    let (status, _) = app
        .api(
            &viewer,
            "POST",
            "/api/v1/notifications/test",
            json!({"channel": "pager"}),
        )
        .await;
    assert_eq!(status, 403);

    // The CLI's test, by email, through the same store and config.
    let config = workdir.path().join("notify.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify.channels]]\nkind = \"email\"\nname = \"ops-mail\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {}\ntls = \"none\"\nfrom = \"steward@example.org\"\nto = [\"ml-team@example.org\"]\n",
            smtp.port
        ),
    )
    .expect("as set up");
    let out = app
        .cli()
        .args(["--config"])
        .arg(&config)
        .args(["notify", "test", "ops-mail"])
        .output()
        .expect("as set up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent to ops-mail"));
    let out = app
        .cli()
        .args(["--config"])
        .arg(&config)
        .args(["notify", "test", "nope"])
        .output()
        .expect("as set up");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("channel"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while smtp.messages().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the CLI's test mail did not arrive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A refusing receiver (a 404: a wrong URL) fails the delivery at once, no retry.
    receiver.stop(true).await;
    let refusing = {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let server = HttpServer::new(|| {
            App::new().default_service(web::to(|| async { HttpResponse::NotFound().finish() }))
        })
        .workers(1)
        .bind(("127.0.0.1", http))
        .expect("as set up")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        handle
    };
    let (status, failed) = app
        .api(
            &token,
            "POST",
            "/api/v1/notifications/test",
            json!({"channel": "ml-slack"}),
        )
        .await;
    assert_eq!(status, 200, "{failed}");
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"], "HTTP 404", "{failed}");
    let (_, outbox) = app
        .get_json(&token, "/api/v1/notifications?status=failed")
        .await;
    assert_eq!(outbox["failed"], 1, "{outbox}");
    let delivery = failed["delivery"].as_str().expect("as set up");

    // Retried by an admin: back to pending, sent by the worker once the receiver takes it.
    refusing.stop(true).await;
    let receiver = start_receiver(http, got.clone());
    let (status, row) = app
        .api(
            &viewer,
            "POST",
            &format!("/api/v1/notifications/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{row}");
    let (status, row) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/notifications/deliveries/{delivery}/retry"),
            json!({"x": 1}),
        )
        .await;
    assert_eq!(status, 400, "a retry takes no body: {row}");
    let (status, row) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/notifications/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(row["status"], "pending");
    let (status, again) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/notifications/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await;
    assert!(status == 409 || status == 200, "{again}");
    until(&app, &token, "/api/v1/notifications?limit=500", 30, |v| {
        v["notifications"]
            .as_array()
            .expect("as set up")
            .iter()
            .any(|e| {
                e["deliveries"]
                    .as_array()
                    .expect("as set up")
                    .iter()
                    .any(|d| d["id"] == delivery && d["status"] == "sent" && d["attempts"] == 1)
            })
    })
    .await;
    receiver.stop(true).await;
    assert!(
        got.lock()
            .expect("as set up")
            .iter()
            .any(|r| r.0 == "/slack")
    );

    // Filters and bounds.
    for (path, code) in [
        ("/api/v1/notifications?status=lost", 422),
        ("/api/v1/notifications?limit=0", 422),
        ("/api/v1/notifications?limit=501", 422),
        ("/api/v1/notifications?colour=red", 400),
    ] {
        let (status, body) = app.get_json(&token, path).await;
        assert_eq!(status, code, "{path}: {body}");
    }
    // The channels, without secrets.
    let (status, channels) = app.get_json(&token, "/api/v1/notifications/channels").await;
    assert_eq!(status, 200);
    assert!(!channels.to_string().contains(HOOK_SECRET), "{channels}");
    assert_eq!(channels["channels"].as_array().expect("as set up").len(), 3);
    // The audit log has the tests and the retry.
    let (_, audit) = app.get_json(&token, "/api/v1/audit?limit=100").await;
    let text = audit.to_string();
    assert!(
        text.contains("notify.test") && text.contains("notify.retry"),
        "{text}"
    );
    app.verify_audit();
}

/// A signed approval link opens the request; a changed or expired one opens nothing.
#[tokio::test]
async fn approval_links_are_signed_and_expire() {
    let app = spawn_app_with(|_| {}).await;
    let id = uuid::Uuid::now_v7().to_string();
    let good = steward::notify::links::approval_path(&id, 1).expect("as set up");
    let response = app.get(&good).await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/approvals#approval-{id}").as_str()
    );
    // Another approval's id under the same signature, a changed expiry, garbage.
    let other = uuid::Uuid::now_v7().to_string();
    let forged = good.replace(&id, &other);
    assert_eq!(app.get(&forged).await.status(), 403);
    let later = good.replace("expires=", "expires=9");
    assert_eq!(app.get(&later).await.status(), 403);
    assert_eq!(
        app.get("/approvals/open/x?expires=1&sig=00").await.status(),
        403
    );
    assert_eq!(
        app.get(&format!("/approvals/open/{id}")).await.status(),
        400
    );
    // Expired: signed, but past its time.
    let past = chrono::Utc::now().timestamp() - 10;
    let expired = steward::notify::links::approval_path_until(&id, past).expect("as set up");
    let response = app.get(&expired).await;
    assert_eq!(response.status(), 403);
    assert!(
        response
            .text()
            .await
            .expect("as set up")
            .contains("expired")
    );
}

/// Events written while no worker runs (here: `notify.enabled = false` in the first process) are
/// routed and sent by the next process that runs one on the same store: a restart resumes what
/// is unsent. One older than `notify.max_age_hours` is kept, not sent.
#[tokio::test]
async fn a_later_process_sends_what_was_left_unsent() {
    let workdir = tempfile::tempdir().expect("tempdir");
    let http = free_port();
    let got: Received = Arc::default();
    let receiver = start_receiver(http, got.clone());
    let app = spawn_app_with(|s| {
        channels(s, 9, http);
        s.notify.enabled = false;
    })
    .await;
    let token = app.admin_token().await;
    let (status, taken) = app
        .api(&token, "POST", "/agent/alerts", error_rate_alert())
        .await;
    assert_eq!(status, 200, "{taken}");
    let outbox = until(&app, &token, "/api/v1/notifications", 30, |v| {
        v["notifications"]
            .as_array()
            .expect("a list")
            .iter()
            .any(|e| e["notification"]["kind"] == "alert")
    })
    .await;
    assert!(
        outbox["notifications"][0]["notification"]["routed_at"].is_null(),
        "nothing routes it in this process: {outbox}"
    );
    assert!(got.lock().expect("lock").is_empty());
    // That one becomes old news (written two days ago); a second alert is fresh.
    {
        use diesel::RunQueryDsl;
        let db = steward::db::Db::connect(&app.settings.database).expect("connect");
        diesel::sql_query(
            "UPDATE notifications SET created_at = '2000-01-01 00:00:00' WHERE kind = 'alert'",
        )
        .execute(&mut *db.get().expect("conn"))
        .expect("backdate");
    }
    // (Another kind of alert: the error-rate rule is cooling down for an hour.)
    let mut fresh = error_rate_alert_as("00000000000000e2");
    fresh["alerts"][0]["labels"] =
        json!({ "alertname": "BadData", "alert_type": "data_quality", "severity": "warning" });
    let (status, taken) = app.api(&token, "POST", "/agent/alerts", fresh).await;
    assert_eq!(status, 200, "{taken}");
    until(&app, &token, "/api/v1/notifications", 30, |v| {
        v["notifications"]
            .as_array()
            .expect("a list")
            .iter()
            .filter(|e| {
                ["alert", "data_quality"]
                    .contains(&e["notification"]["kind"].as_str().unwrap_or(""))
            })
            .count()
            == 2
    })
    .await;

    // The next process, with the worker on: it routes the event and sends it, once.
    let config = workdir.path().join("notify.toml");
    std::fs::write(
        &config,
        format!(
            "[notify]\npoll_secs = 1\n[[notify.channels]]\nkind = \"webhook\"\nname = \"pager\"\n\
             url = \"http://127.0.0.1:{http}/hook\"\n[[notify.routes]]\nevents = [\"*\"]\n\
             channels = [\"pager\"]\nmin_severity = \"info\"\n"
        ),
    )
    .expect("config");
    let mut next = app
        .cli()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("STEWARD__SERVER__PORT", "0")
        .env("STEWARD__AGENT__ENABLED", "false")
        .env("STEWARD__MONITORING__ENABLED", "false")
        .env("STEWARD_ADMIN_PASSWORD", crate::helpers::ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("steward serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !got.lock().expect("lock").iter().any(|r| r.0 == "/hook") {
        assert!(
            Instant::now() < deadline,
            "the next process did not send the event"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = next.kill();
    let _ = next.wait();
    receiver.stop(true).await;
    let hooks: Vec<Value> = got
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r.0 == "/hook")
        .map(|r| serde_json::from_slice(&r.2).expect("json"))
        .collect();
    assert_eq!(hooks.len(), 1, "the fresh one only: {hooks:?}");
    assert_eq!(hooks[0]["kind"], "data_quality");
    let (_, outbox) = app.get_json(&token, "/api/v1/notifications").await;
    let alerts: Vec<&Value> = outbox["notifications"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| {
            ["alert", "data_quality"].contains(&e["notification"]["kind"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(alerts.len(), 2, "{outbox}");
    for e in alerts {
        assert!(!e["notification"]["routed_at"].is_null(), "{e}");
        let old = e["notification"]["created_at"]
            .as_str()
            .expect("time")
            .starts_with("2000");
        let sent = e["deliveries"].as_array().expect("deliveries");
        if old {
            assert!(sent.is_empty(), "old news is kept, not sent: {e}");
        } else {
            assert_eq!(sent.len(), 1, "{e}");
            assert_eq!(sent[0]["status"], "sent", "{e}");
        }
    }
}

/// A channel whose receiver never answers holds up only its own messages: the others are sent
/// while its one try waits out the timeout.
#[tokio::test]
async fn a_dead_channel_holds_up_only_itself() {
    let http = free_port();
    // Takes connections and never answers.
    let hanging = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = hanging.local_addr().expect("addr").port();
    let got: Received = Arc::default();
    let receiver = start_receiver(http, got.clone());
    let app = spawn_app_with(|s| {
        channels(s, 9, http);
        s.notify.timeout_secs = 3;
        s.notify.backoff_secs = 60;
        s.notify.max_backoff_secs = 60;
        if let Some(ChannelSettings::Webhook(w)) = s.notify.channels.get_mut(2) {
            w.url = SecretString::from(format!("http://127.0.0.1:{dead}/hook"));
        }
        // Slack and the dead webhook only.
        s.notify.routes = vec![RouteSettings {
            events: vec!["*".into()],
            channels: vec!["ml-slack".into(), "pager".into()],
            min_severity: "info".into(),
        }];
    })
    .await;
    let token = app.admin_token().await;
    for fp in ["00000000000000f1", "00000000000000f2", "00000000000000f3"] {
        let mut alert = error_rate_alert_as(fp);
        alert["alerts"][0]["labels"] = json!({
            "alertname": format!("BadData{fp}"), "alert_type": "data_quality", "severity": "warning"
        });
        let (status, taken) = app.api(&token, "POST", "/agent/alerts", alert).await;
        assert_eq!(status, 200, "{taken}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while got
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r.0 == "/slack")
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "Slack did not get its three messages"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, outbox) = app.get_json(&token, "/api/v1/notifications").await;
    let tries: i64 = outbox["notifications"]
        .as_array()
        .expect("a list")
        .iter()
        .flat_map(|e| e["deliveries"].as_array().expect("deliveries").clone())
        .filter(|d| d["channel"] == "pager")
        .map(|d| d["attempts"].as_i64().expect("attempts"))
        .sum();
    assert!(
        tries <= 2,
        "Slack's three went out while the dead webhook had {tries} tries: {outbox}"
    );
    receiver.stop(true).await;
    drop(hanging);
}
