//! Pages whose capability has not been built yet. Each says so plainly and names what will
//! fill it; none shows made-up data.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::{Chrome, html};
use crate::auth::Identity;
use crate::error::AppError;
use crate::state::AppState;

struct Planned {
    path: &'static str,
    title: &'static str,
    capability: &'static str,
    will_show: &'static str,
}

const PLANNED: &[Planned] = &[Planned {
    path: "/approvals",
    title: "Approvals",
    capability: "the remediation agent",
    will_show: "the agent's pending requests with their evidence, to approve or reject",
}];

#[derive(Template)]
#[template(path = "planned.html")]
struct PlannedPage {
    chrome: Chrome,
    title: &'static str,
    capability: &'static str,
    will_show: &'static str,
}

pub async fn get_planned_page(
    state: web::Data<AppState>,
    identity: Identity,
    page: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let path = format!("/{}", page.into_inner());
    let planned = PLANNED
        .iter()
        .find(|p| p.path == path)
        .ok_or_else(|| AppError::NotFound(format!("no page {path}")))?;
    identity.require_read(&state.settings.auth)?;
    let page = PlannedPage {
        chrome: Chrome::new(&identity, planned.path),
        title: planned.title,
        capability: planned.capability,
        will_show: planned.will_show,
    };
    Ok(html(page.render()?))
}
