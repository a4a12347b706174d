use actix_web::{HttpResponse, web};
use askama::Template;

use super::activity::EventView;
use super::{Chrome, html};
use crate::auth::{Identity, Role};
use crate::error::AppError;
use crate::overview::{self, Overview};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    overview: Overview,
    started: String,
    events: Vec<EventView>,
    scheduler: overview::SchedulerView,
}

pub async fn get_overview(
    state: web::Data<AppState>,
    identity: Identity,
) -> Result<HttpResponse, AppError> {
    identity.require_read(&state.settings.auth)?;
    let admin = identity.has(Role::Admin);
    let overview = overview::collect(&state, admin).await?;
    let scheduler = overview::scheduler(&state, admin).await?;
    let page = OverviewPage {
        scheduler,
        chrome: Chrome::new(&identity, "/"),
        started: overview
            .started_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        events: overview
            .recent_events
            .iter()
            .map(|e| EventView::new(e, admin))
            .collect(),
        overview,
    };
    Ok(html(page.render()?))
}
