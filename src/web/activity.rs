//! Activity: the audit feed, newest first, polled live by htmx. The agent's decisions and
//! actions will land here beside the user and configuration events recorded today.

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::{Chrome, when};
use crate::audit::{self, AuditEvent};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::http::{HxRequest, page_or_partial};
use crate::state::AppState;

const PAGE_SIZE: i64 = 50;

/// An audit event as the dashboard shows it.
pub struct EventView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// What changed, a line per key: (key, before, after); a side left empty did not have it.
    pub change: Vec<(String, String, String)>,
    /// Set instead of `change` when the reader may not see the details.
    pub withheld: bool,
    pub hash: String,
}

/// Most lines of change an event shows; the rest are counted.
const CHANGE_LINES: usize = 8;
/// Longest value shown in a line of change, in characters.
const VALUE_CHARS: usize = 80;

fn shown(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => crate::error::bounded(s, VALUE_CHARS),
        Some(other) => crate::error::bounded(&super::spaced_json(other), VALUE_CHARS),
    }
}

/// The before/after of an event as readable lines: for objects, one line per key that
/// differs (or, with only an after, per key), else one line for the whole value.
fn change_lines(before: Option<&str>, after: Option<&str>) -> Vec<(String, String, String)> {
    let parse = |t: Option<&str>| t.and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
    let (b, a) = (parse(before), parse(after));
    let (bo, ao) = (
        b.as_ref().and_then(|v| v.as_object()),
        a.as_ref().and_then(|v| v.as_object()),
    );
    let mut lines = Vec::new();
    if bo.is_some() || ao.is_some() {
        let mut keys: Vec<&String> = bo.into_iter().chain(ao).flat_map(|o| o.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (x, y) = (bo.and_then(|o| o.get(key)), ao.and_then(|o| o.get(key)));
            if x != y {
                lines.push((key.clone(), shown(x), shown(y)));
            }
        }
    } else if b.is_some() || a.is_some() {
        lines.push((String::new(), shown(b.as_ref()), shown(a.as_ref())));
    }
    if lines.len() > CHANGE_LINES {
        let more = lines.len() - CHANGE_LINES;
        lines.truncate(CHANGE_LINES);
        lines.push(("…".into(), String::new(), format!("{more} more")));
    }
    lines
}

impl EventView {
    /// The event as `reader` may see it: configuration, user, token and login details are for
    /// admins; others see that the event happened.
    pub fn new(e: &AuditEvent, admin: bool) -> Self {
        let mut e = e.clone();
        let withheld = audit::redact(&mut e, admin);
        let change = if withheld {
            Vec::new()
        } else {
            change_lines(e.before_json.as_deref(), e.after_json.as_deref())
        };
        EventView {
            seq: e.seq,
            at: when(&e.created_at),
            actor: e.actor.clone(),
            action: e.action.clone(),
            subject: e.subject.clone(),
            change,
            withheld,
            hash: e.hash.chars().take(12).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::change_lines;

    #[test]
    fn changes_read_as_lines() {
        let lines = change_lines(
            Some(r#"{"stage": "None", "production": 1}"#),
            Some(r#"{"stage": "Production", "production": 1, "reason": "better"}"#),
        );
        assert_eq!(
            lines,
            vec![
                ("reason".to_owned(), String::new(), "better".to_owned()),
                (
                    "stage".to_owned(),
                    "None".to_owned(),
                    "Production".to_owned()
                ),
            ]
        );
        let long = format!(r#"{{"x": "{}"}}"#, "y".repeat(500));
        let lines = change_lines(None, Some(&long));
        assert!(lines[0].2.chars().count() <= 81);
        let many: String = (0..20)
            .map(|i| format!(r#""k{i:02}": {i}"#))
            .collect::<Vec<_>>()
            .join(",");
        let lines = change_lines(None, Some(&format!("{{{many}}}")));
        assert_eq!(lines.len(), 9);
        assert_eq!(lines[8].2, "12 more");
    }
}

#[derive(Template)]
#[template(path = "activity_partial.html")]
struct ActivityPartial {
    events: Vec<EventView>,
    older: Option<i64>,
}

/// The full page also walks the hash chain; the 10-second poll only fetches the newest events,
/// so an open tab does not re-verify the whole log every time.
#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    chrome: Chrome,
    verification: audit::Verification,
    partial: ActivityPartial,
}

#[derive(Deserialize)]
pub struct Paging {
    before: Option<i64>,
}

pub async fn get_activity(
    state: web::Data<AppState>,
    identity: Identity,
    paging: web::Query<Paging>,
    hx: HxRequest,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let before = paging.before;
    let events = state
        .db
        .run(move |conn| audit::list(conn, PAGE_SIZE, before))
        .await?;
    let older = (events.len() as i64 == PAGE_SIZE)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let admin = identity.has(Role::Admin);
    let partial = ActivityPartial {
        events: events.iter().map(|e| EventView::new(e, admin)).collect(),
        older,
    };
    let verification = if hx.0 {
        None
    } else {
        let cache = state.audit_verified.clone();
        Some(state.db.run(move |conn| cache.verify(conn)).await?)
    };
    page_or_partial(hx, partial, |partial| match verification {
        Some(verification) => ActivityPage {
            chrome: Chrome::new(&identity, "/activity"),
            verification,
            partial,
        }
        .render(),
        None => partial.render(),
    })
}
