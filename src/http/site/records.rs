//! The read-mostly records of the tenant the pages show: the audit log
//! (filter by event and user, keyset paging) and the notification outbox
//! (filter by status, paging, resend a failed message).
//!
//! Message bodies and codes are secrets and never reach a page: the outbox
//! table shows recipient, kind, status, attempts and the last error only. A
//! failed message keeps its code until it expires, and until then can be
//! queued again.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::guard::{Admin, done};
use super::views::{self, Layout, PageError, PageQuery, non_empty, page};
use crate::config::NotifyChannel;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::audit;
use crate::service::site::sessions::SiteAdmin;
use crate::state::AppState;
use crate::store::{AuditEvent, OutboxStatus};

/// Rows per page of the audit log and the outbox.
const PAGE: u32 = 50;

/// A user named in an audit row: a link to their page and a label.
pub struct Person {
    pub id: String,
    pub label: String,
    /// Whether the id belongs to a user of the shown tenant (so the page
    /// exists); operators acting across tenants are named by id only.
    pub linked: bool,
}

/// One audit row, ready to print.
pub struct EventRow {
    pub at: String,
    pub ago: String,
    pub event: String,
    pub failure: bool,
    pub user: Option<Person>,
    pub actor: Option<Person>,
    pub ip: String,
    pub user_agent: String,
    /// The detail object as (key, value) pairs, values shortened.
    pub detail: Vec<(String, String)>,
}

/// An audit row's detail as short `key value` pairs for a table cell.
fn detail_pairs(detail: &serde_json::Value) -> Vec<(String, String)> {
    let short = |v: &serde_json::Value| -> String {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if text.chars().count() > 40 {
            format!("{}…", text.chars().take(39).collect::<String>())
        } else {
            text
        }
    };
    match detail {
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| (k.replace('_', " "), short(v))).collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![("detail".into(), short(other))],
    }
}

/// Audit rows with their users' emails (one lookup per distinct user).
pub async fn event_rows(
    state: &AppState,
    admin: &SiteAdmin,
    events: Vec<AuditEvent>,
) -> Result<Vec<EventRow>, PageError> {
    let now = state.clock.now();
    let mut names: HashMap<Uuid, Option<String>> = HashMap::new();
    let principal = admin.viewing();
    let ids: Vec<Uuid> = events.iter().flat_map(|e| [e.user_id, e.actor_id]).flatten().collect();
    for id in ids {
        if names.contains_key(&id) || names.len() >= 2 * PAGE as usize {
            continue;
        }
        let user = match state.directory.get(principal, id).await {
            Ok(u) => Some(u),
            Err(AppError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let label = user.map(|u| {
            u.email
                .map(|e| e.to_string())
                .or_else(|| u.phone.map(|p| p.to_string()))
                .unwrap_or_else(|| views::short_id(&id))
        });
        names.insert(id, label);
    }
    let person = |id: Option<Uuid>| {
        id.map(|id| match names.get(&id) {
            Some(Some(label)) => Person {
                id: id.to_string(),
                label: label.clone(),
                linked: true,
            },
            _ => Person {
                id: id.to_string(),
                label: views::short_id(&id),
                linked: false,
            },
        })
    };
    Ok(events
        .into_iter()
        .map(|e| {
            let detail = detail_pairs(&e.detail);
            EventRow {
                at: views::time(e.at),
                ago: views::relative(now, e.at),
                failure: e.event.ends_with("_failed") || e.event.ends_with("_denied") || e.event.contains("reuse"),
                user: person(e.user_id),
                actor: person(e.actor_id),
                ip: e.ip.unwrap_or_default(),
                user_agent: e.user_agent.unwrap_or_default().chars().take(80).collect(),
                event: e.event,
                detail,
            }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "site/audit.html")]
struct AuditPage {
    l: Layout,
    event: String,
    user: String,
    events: Vec<EventRow>,
    /// The events forge writes, offered as suggestions in the filter.
    known: &'static [crate::domain::AuditEvent],
    error: Option<String>,
    next: Option<String>,
    filtered: bool,
    first_page: bool,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    event: String,
    #[serde(default)]
    user: String,
    cursor: Option<String>,
}

/// The user filter: a user id, or an email or phone of the shown tenant.
async fn user_filter(state: &AppState, admin: &SiteAdmin, input: &str) -> Result<Option<Uuid>, AppError> {
    if let Ok(id) = Uuid::parse_str(input) {
        return Ok(Some(id));
    }
    let principal = admin.viewing();
    let page = state.directory.list(principal, Some(input), Some(5), None).await?;
    let wanted = input.trim().to_lowercase();
    let found = page.items.into_iter().find(|u| {
        u.email.as_ref().is_some_and(|e| e.as_str() == wanted) || u.phone.as_ref().is_some_and(|p| p.as_str() == wanted)
    });
    match found {
        Some(u) => Ok(Some(u.id)),
        None => Err(AppError::validation(
            "user",
            "no user of this tenant has that id, email or phone",
        )),
    }
}

/// `GET /admin/audit?event=&user=&cursor=`.
pub async fn audit(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageQuery(query): PageQuery<AuditQuery>,
) -> Result<Response, PageError> {
    let event = non_empty(&query.event).map(str::to_string);
    let user = non_empty(&query.user).map(str::to_string);
    let outcome = async {
        let event = event.as_deref().map(audit::parse_event).transpose()?;
        let user_id = match &user {
            Some(u) => user_filter(&state, &admin, u).await?,
            None => None,
        };
        let principal = admin.viewing();
        state
            .audit
            .list(
                principal,
                audit::Filter { user_id, event },
                Some(PAGE),
                query.cursor.as_deref(),
            )
            .await
    }
    .await;
    let (events, next, error) = match outcome {
        Ok(page) => (page.items, page.next_cursor, None),
        Err(e @ (AppError::Validation { .. } | AppError::BadRequest { .. })) => {
            (Vec::new(), None, Some(views::describe(&e)))
        }
        Err(e) => return Err(e.into()),
    };
    let next = next.map(|cursor| {
        let mut params = vec![("cursor", cursor)];
        params.extend(event.clone().map(|e| ("event", e)));
        params.extend(user.clone().map(|u| ("user", u)));
        format!(
            "/admin/audit?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    });
    Ok(page(&AuditPage {
        l: Layout::new(&admin, "audit", "Audit log"),
        filtered: event.is_some() || user.is_some(),
        event: event.unwrap_or_default(),
        user: user.unwrap_or_default(),
        events: event_rows(&state, &admin, events).await?,
        known: crate::domain::AuditEvent::ALL,
        error,
        next,
        first_page: query.cursor.is_none(),
    }))
}

struct MessageRow {
    id: String,
    created: String,
    ago: String,
    channel: &'static str,
    kind: &'static str,
    recipient: String,
    subject: String,
    status: &'static str,
    attempts: u32,
    last_error: String,
    next_attempt: String,
    /// Failed, and its code is still held and valid.
    resendable: bool,
    /// Failed for good: its code expired and was erased.
    erased: bool,
}

#[derive(Template)]
#[template(path = "site/messages.html")]
struct MessagesPage {
    l: Layout,
    status: String,
    /// Each status and whether it is the current filter.
    statuses: Vec<(&'static str, bool)>,
    messages: Vec<MessageRow>,
    next: Option<String>,
    first_page: bool,
    /// The memory channel hands messages over without the outbox.
    memory_channel: bool,
}

#[derive(Deserialize)]
pub struct MessagesQuery {
    #[serde(default)]
    status: String,
    cursor: Option<String>,
}

/// `GET /admin/messages?status=&cursor=`.
pub async fn messages(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageQuery(query): PageQuery<MessagesQuery>,
) -> Result<Response, PageError> {
    let status = match non_empty(&query.status) {
        None => None,
        Some(s) => {
            Some(OutboxStatus::parse(s).ok_or_else(|| AppError::validation("status", "must be a message status"))?)
        }
    };
    let page_rows = state
        .site_messages
        .messages(&admin, status, Some(PAGE), query.cursor.as_deref())
        .await?;
    let now = state.clock.now();
    let messages = page_rows
        .items
        .into_iter()
        .map(|m| MessageRow {
            id: m.id.to_string(),
            created: views::time(m.created_at),
            ago: views::relative(now, m.created_at),
            channel: m.channel.as_str(),
            kind: m.kind.as_str(),
            recipient: m.recipient,
            subject: m.subject,
            status: m.status.as_str(),
            attempts: m.attempts,
            last_error: m.last_error.unwrap_or_default(),
            next_attempt: match m.status {
                OutboxStatus::Pending => views::relative(now, m.next_attempt_at),
                _ => String::new(),
            },
            resendable: m.status == OutboxStatus::Failed && m.body.is_some() && m.expires_at > now,
            erased: m.status == OutboxStatus::Failed && (m.body.is_none() || m.expires_at <= now),
        })
        .collect();
    let status_text = status.map(|s| s.as_str().to_string()).unwrap_or_default();
    let next = page_rows.next_cursor.map(|cursor| {
        let mut params = vec![("cursor", cursor)];
        if !status_text.is_empty() {
            params.push(("status", status_text.clone()));
        }
        format!(
            "/admin/messages?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    });
    Ok(page(&MessagesPage {
        l: Layout::new(&admin, "messages", "Messages"),
        statuses: ["pending", "sending", "delivered", "failed"]
            .into_iter()
            .map(|s| (s, s == status_text))
            .collect(),
        status: status_text,
        messages,
        next,
        first_page: query.cursor.is_none(),
        memory_channel: state.config.notify.channel == NotifyChannel::Memory,
    }))
}

/// `POST /admin/messages/{id}/resend`.
pub async fn resend(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "message")?;
    let outcome = async {
        admin.acting()?;
        state.site_messages.resend_message(&admin, id, &meta).await
    }
    .await
    .and_then(|resent| {
        if resent {
            Ok("The message is queued again; the worker sends it within seconds.".to_string())
        } else {
            Err(AppError::conflict(
                ErrorCode::NotResendable,
                "this message cannot be sent again: it is not failed, or its code expired and was erased. \
                     Ask the user to request a new code",
            ))
        }
    });
    Ok(done(&state, &admin, "/admin/messages", outcome).await)
}
