//! `GET /admin`: the dashboard of the tenant the pages show: counts and the
//! sign-in charts (hourly over 24 hours, daily over 30 days).

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::chart::{Chart, Scale};
use super::guard::Admin;
use super::views::{Layout, PageError, page};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "site/dashboard.html")]
struct DashboardPage {
    l: Layout,
    users: u64,
    active_sessions: u64,
    sign_ins: u64,
    failures: u64,
    pending: u64,
    failed: u64,
    hourly: Chart,
    daily: Chart,
    /// Scheduled backups: `None` when off.
    backup: Option<BackupCard>,
}

/// The newest scheduled backup, as the dashboard shows it.
struct BackupCard {
    age: String,
    warn: bool,
    error: Option<String>,
}

fn backup_card(state: &AppState) -> Option<BackupCard> {
    let status = state.backups.status();
    if status.status == "off" {
        return None;
    }
    Some(BackupCard {
        age: status
            .age_seconds
            .map(|s| format!("{} ago", super::views::duration(s)))
            .unwrap_or_else(|| "none yet".into()),
        warn: status.status == "warning",
        error: status.last_error,
    })
}

pub async fn show(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    let d = state.site_dashboard.dashboard(&admin).await?;
    Ok(page(&DashboardPage {
        l: Layout::new(&admin, "dashboard", "Dashboard"),
        users: d.counts.users,
        active_sessions: d.counts.active_sessions,
        sign_ins: d.sign_ins_24h,
        failures: d.failures_24h,
        pending: d.counts.pending_messages,
        failed: d.counts.failed_messages,
        hourly: Chart::bars(&d.hourly, Scale::Hourly),
        daily: Chart::bars(&d.daily, Scale::Daily),
        backup: backup_card(&state),
    }))
}
