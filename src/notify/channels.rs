//! The three channel kinds: email through lettre (SMTP with STARTTLS, implicit TLS, or plain on
//! loopback), Slack incoming webhooks (a Block Kit message: header, body, key figures, a button
//! to the dashboard), and a generic JSON webhook signed with HMAC-SHA256. Each send is blocking
//! (call from the blocking pool) and bounded by `notify.timeout_secs`.
//!
//! Every message carries its delivery id (`Message-ID: <id@steward>`, `X-Steward-Delivery`), so a
//! receiver can drop the copy a retry sends after a crash between sending and recording.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::settings::{ChannelSettings, EmailChannel, SlackChannel, Tls, WebhookChannel, secret};
use crate::outbox::Notification;

/// What one delivery sends.
pub struct Outgoing<'a> {
    /// The delivery's id: the receiver's key for dropping a repeat.
    pub delivery_id: &'a str,
    pub event: &'a Notification,
    /// The absolute link (an approval's is signed).
    pub link: Option<String>,
    /// A file for email: its name and bytes.
    pub attachment: Option<(String, Vec<u8>)>,
}

/// Why a send failed: a transient failure is retried, a permanent one is not.
#[derive(Debug)]
pub enum SendError {
    Transient(String),
    Permanent(String),
}

impl SendError {
    pub fn message(&self) -> &str {
        match self {
            SendError::Transient(m) | SendError::Permanent(m) => m,
        }
    }
}

pub fn send(
    channel: &ChannelSettings,
    out: &Outgoing<'_>,
    timeout: Duration,
) -> Result<(), SendError> {
    match channel {
        ChannelSettings::Email(c) => send_email(c, out, timeout),
        ChannelSettings::Slack(c) => post_json(
            &secret(&c.url, &c.url_env),
            &slack_payload(c, out),
            &[("X-Steward-Delivery", out.delivery_id.to_owned())],
            timeout,
        ),
        ChannelSettings::Webhook(c) => send_webhook(c, out, timeout),
    }
}

/// The plain-text body an email carries: the body, the key figures, the link.
pub fn email_text(out: &Outgoing<'_>) -> String {
    let e = out.event;
    let mut text = format!("{}\n\n", e.body);
    for (name, value) in e.facts() {
        text.push_str(&format!("{name}: {value}\n"));
    }
    if let Some(link) = &out.link {
        text.push_str(&format!("\nOpen in Steward: {link}\n"));
    }
    text.push_str(&format!(
        "\n-- \nSteward · {} · {} · {} UTC\n",
        e.kind,
        e.severity,
        e.created_at.format("%Y-%m-%d %H:%M:%S")
    ));
    text
}

fn send_email(c: &EmailChannel, out: &Outgoing<'_>, timeout: Duration) -> Result<(), SendError> {
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{Message, SmtpTransport, Transport};

    let permanent = |what: &str, e: &dyn std::fmt::Display| {
        SendError::Permanent(crate::error::bounded(&format!("{what}: {e}"), 300))
    };
    let from: Mailbox = c.from.parse().map_err(|e| permanent("from", &e))?;
    // One line: a subject never carries a header break.
    let subject: String = out
        .event
        .subject
        .chars()
        .map(|ch| if ch.is_control() { ' ' } else { ch })
        .collect();
    let mut builder = Message::builder()
        .from(from)
        .subject(subject)
        .message_id(Some(format!("<{}@steward>", out.delivery_id)))
        .raw_header(lettre::message::header::HeaderValue::new(
            lettre::message::header::HeaderName::new_from_ascii_str("X-Steward-Delivery"),
            out.delivery_id.to_owned(),
        ));
    for to in &c.to {
        builder = builder.to(to.parse().map_err(|e| permanent("to", &e))?);
    }
    let text = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(email_text(out));
    let message = match &out.attachment {
        Some((name, bytes)) => {
            let kind = if name.ends_with(".pdf") {
                "application/pdf"
            } else {
                "application/octet-stream"
            };
            let kind = ContentType::parse(kind).map_err(|e| permanent("attachment", &e))?;
            builder.multipart(
                MultiPart::mixed()
                    .singlepart(text)
                    .singlepart(Attachment::new(name.clone()).body(bytes.clone(), kind)),
            )
        }
        None => builder.singlepart(text),
    }
    .map_err(|e| permanent("message", &e))?;
    let transport = match c.tls {
        Tls::Starttls => SmtpTransport::starttls_relay(&c.smtp_host),
        Tls::Tls => SmtpTransport::relay(&c.smtp_host),
        Tls::None => Ok(SmtpTransport::builder_dangerous(&c.smtp_host)),
    }
    .map_err(|e| permanent("smtp_host", &e))?
    .port(c.smtp_port)
    .timeout(Some(timeout));
    let password = secret(&c.password, &c.password_env);
    let transport = if c.username.is_empty() {
        transport
    } else {
        transport.credentials(Credentials::new(c.username.clone(), password))
    }
    .build();
    match transport.send(&message) {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => Err(permanent("SMTP", &e)),
        Err(e) => Err(SendError::Transient(crate::error::bounded(
            &format!("SMTP: {e}"),
            300,
        ))),
    }
}

/// Slack's mrkdwn escapes: `&`, `<` and `>` (the rest is literal).
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Block Kit message: a header (at most 150 characters), the body (at most 3000), the key
/// figures as fields (at most 10), a context line, and a button to the dashboard.
pub fn slack_payload(_channel: &SlackChannel, out: &Outgoing<'_>) -> Value {
    let e = out.event;
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": crate::error::bounded(&e.subject, 140)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": crate::error::bounded(&mrkdwn(&e.body), 2900)}}),
    ];
    let fields: Vec<Value> = e
        .facts()
        .iter()
        .take(10)
        .map(|(k, v)| json!({"type": "mrkdwn", "text": format!("*{}*\n{}", mrkdwn(k), mrkdwn(v))}))
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!(
            "{} · {} · {} UTC", e.severity, e.kind, e.created_at.format("%Y-%m-%d %H:%M")
        )}]}),
    );
    if let Some(link) = &out.link {
        blocks.push(json!({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open in Steward"},
            "url": link,
            "action_id": "open",
        }]}));
    }
    // `text` is the notification's fallback and is read as mrkdwn: escaped like the body, so a
    // name from an alert cannot mention @here or hide a link.
    json!({ "text": mrkdwn(&crate::error::bounded(&e.subject, 140)), "blocks": blocks })
}

/// The webhook's JSON: the event with its delivery id.
pub fn webhook_payload(out: &Outgoing<'_>) -> Value {
    let e = out.event;
    json!({
        "delivery_id": out.delivery_id,
        "notification_id": e.id,
        "kind": e.kind,
        "severity": e.severity,
        "subject": e.subject,
        "body": e.body,
        "facts": e.facts(),
        "link": out.link,
        "incident_id": e.incident_id,
        "approval_id": e.approval_id,
        "created_at": e.created_at.and_utc().to_rfc3339(),
    })
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`, the header a receiver checks.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn send_webhook(
    c: &WebhookChannel,
    out: &Outgoing<'_>,
    timeout: Duration,
) -> Result<(), SendError> {
    let body = webhook_payload(out);
    let key = secret(&c.secret, &c.secret_env);
    let bytes = body.to_string();
    let mut headers = vec![
        ("X-Steward-Event", out.event.kind.clone()),
        ("X-Steward-Delivery", out.delivery_id.to_owned()),
    ];
    if !key.is_empty() {
        headers.push(("X-Steward-Signature", signature(&key, bytes.as_bytes())));
    }
    post_bytes(&secret(&c.url, &c.url_env), bytes, &headers, timeout)
}

fn post_json(
    url: &str,
    body: &Value,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<(), SendError> {
    post_bytes(url, body.to_string(), headers, timeout)
}

/// POSTs JSON. 2xx is sent; 408, 429 and 5xx (and no answer) are retried; any other status is
/// permanent. Redirects are not followed.
fn post_bytes(
    url: &str,
    body: String,
    headers: &[(&str, String)],
    timeout: Duration,
) -> Result<(), SendError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut request = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("User-Agent", concat!("steward/", env!("CARGO_PKG_VERSION")));
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    match request.send(body) {
        Ok(response) => {
            let status = response.status().as_u16();
            match status {
                200..=299 => Ok(()),
                408 | 429 | 500..=599 => Err(SendError::Transient(format!("HTTP {status}"))),
                _ => Err(SendError::Permanent(format!("HTTP {status}"))),
            }
        }
        // A bad URL's error quotes the URL, which may carry a token: not kept.
        Err(ureq::Error::BadUri(_)) => Err(SendError::Permanent("the URL is not valid".into())),
        Err(e) => Err(SendError::Transient(crate::error::bounded(
            &format!("no answer: {e}"),
            300,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Notification {
        Notification {
            id: "n1".into(),
            incident_id: None,
            severity: "warning".into(),
            subject: "Approval needed: promote heart-disease v2".into(),
            body: "a <b> & c".into(),
            created_at: chrono::NaiveDateTime::default(),
            kind: "approval_needed".into(),
            facts_json: r#"[["Version","2"],["Model","heart-disease"]]"#.into(),
            link: None,
            approval_id: None,
            attachment_blob: None,
            attachment_name: None,
            dedupe_key: None,
            channel: None,
            routed_at: None,
        }
    }

    #[test]
    fn slack_blocks_escape_and_carry_the_button() {
        let e = event();
        let out = Outgoing {
            delivery_id: "d1",
            event: &e,
            link: Some("https://steward.example/approvals/open/a?expires=1&sig=x".into()),
            attachment: None,
        };
        let c = SlackChannel {
            name: "s".into(),
            url: secrecy::SecretString::from("https://hooks.slack.com/x"),
            url_env: String::new(),
        };
        let mut e2 = e.clone();
        e2.subject = "<!here> look".into();
        let p = slack_payload(
            &c,
            &Outgoing {
                delivery_id: "d2",
                event: &e2,
                link: None,
                attachment: None,
            },
        );
        assert_eq!(p["text"], "&lt;!here&gt; look");
        let p = slack_payload(&c, &out);
        assert_eq!(p["blocks"][0]["type"], "header");
        assert_eq!(p["blocks"][1]["text"]["text"], "a &lt;b&gt; &amp; c");
        assert_eq!(p["blocks"][2]["fields"][0]["text"], "*Version*\n2");
        assert_eq!(
            p["blocks"][4]["elements"][0]["url"],
            "https://steward.example/approvals/open/a?expires=1&sig=x"
        );
    }

    /// The signature Steward's own intake checks: HMAC-SHA256 of the body, hex. Golden value:
    /// Python 3.11 `hmac.new(b"key", b"body", "sha256").hexdigest()`.
    #[test]
    fn signature_is_hmac_sha256_hex() {
        assert_eq!(
            signature("key", b"body"),
            "sha256=515aae133b435d4000956731f68ae5cf5eb85d4f0dc6a546d2bfcd3595ec1ae1"
        );
    }
}
