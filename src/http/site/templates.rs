//! `GET /admin/templates`: each message forge sends the shown tenant's
//! people, as it would go out now, over sample values (a code `123456`, a
//! sample address and browser): part by part (subject, text, HTML, SMS),
//! with where each part comes from (built-in, the operator's file for all
//! tenants, or this tenant's file) and why an override that fails is not
//! used. Files are read at each request, like at each message, so an edit
//! shows on reload.
//!
//! `GET /admin/templates/html` is the HTML part alone, as its own document
//! under a CSP that lets its inline styles apply and nothing run
//! (`sandbox`, no script, images over https only), opened from the page.

use askama::Template;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::guard::{Admin, OwnCsp};
use super::views::{Layout, PageError, PageQuery, page};
use crate::error::AppError;
use crate::notify::{Part, PartPreview, Source};
use crate::service::notices;
use crate::service::site::sessions::SiteAdmin;
use crate::state::AppState;
use crate::store::{MessageKind, OutboxChannel};

/// The HTML part's own document: styles inline, images, nothing else.
const HTML_PART_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; \
                             form-action 'none'; frame-ancestors 'none'; base-uri 'none'; sandbox";

#[derive(Deserialize, Default)]
pub struct TemplatesQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    channel: String,
}

impl TemplatesQuery {
    /// The kind (a message to a person; `otp` when absent) and channel
    /// (`email` when absent) asked for.
    fn parse(&self) -> Result<(MessageKind, OutboxChannel), AppError> {
        let kind = match self.kind.as_str() {
            "" => MessageKind::Otp,
            k => MessageKind::parse(k)
                .filter(|k| MessageKind::TO_PEOPLE.contains(k))
                .ok_or_else(|| AppError::validation("kind", "must be the kind of a message to a person"))?,
        };
        let channel = match self.channel.as_str() {
            "" | "email" => OutboxChannel::Email,
            "sms" => OutboxChannel::Sms,
            _ => return Err(AppError::validation("channel", "must be email or sms")),
        };
        Ok((kind, channel))
    }
}

struct KindLink {
    name: &'static str,
    current: bool,
}

struct PartView {
    label: &'static str,
    source: &'static str,
    overridden: bool,
    file: String,
    error: String,
    text: String,
    html: bool,
}

impl PartView {
    fn of(p: PartPreview) -> Self {
        Self {
            label: match p.part {
                Part::Subject => "Subject",
                Part::Text => "Text",
                Part::Html => "HTML",
                Part::Sms => "SMS",
            },
            source: p.source.label(),
            overridden: p.source != Source::BuiltIn,
            file: p.file,
            error: p.error.unwrap_or_default(),
            text: p.rendered,
            html: p.part == Part::Html,
        }
    }
}

#[derive(Template)]
#[template(path = "site/templates.html")]
struct TemplatesPage {
    l: Layout,
    kinds: Vec<KindLink>,
    kind: &'static str,
    channel: &'static str,
    configured: bool,
    parts: Vec<PartView>,
}

async fn parts(
    state: &AppState,
    admin: &SiteAdmin,
    kind: MessageKind,
    channel: OutboxChannel,
) -> Result<Vec<PartPreview>, PageError> {
    Ok(notices::preview(&state.notifier, &state.clock, admin.tenant().id, kind, channel).await?)
}

/// `GET /admin/templates?kind=&channel=`.
pub async fn show(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageQuery(query): PageQuery<TemplatesQuery>,
) -> Result<Response, PageError> {
    let (kind, channel) = query.parse()?;
    let parts = parts(&state, &admin, kind, channel).await?;
    Ok(page(&TemplatesPage {
        l: Layout::new(&admin, "templates", "Message templates"),
        kinds: MessageKind::TO_PEOPLE
            .iter()
            .map(|k| KindLink {
                name: k.as_str(),
                current: *k == kind,
            })
            .collect(),
        kind: kind.as_str(),
        channel: channel.as_str(),
        configured: state.notifier.has_overrides(),
        parts: parts.into_iter().map(PartView::of).collect(),
    }))
}

/// `GET /admin/templates/html?kind=`: the HTML part as a document.
pub async fn html(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageQuery(query): PageQuery<TemplatesQuery>,
) -> Result<Response, PageError> {
    let (kind, _) = query.parse()?;
    let html = parts(&state, &admin, kind, OutboxChannel::Email)
        .await?
        .into_iter()
        .find(|p| p.part == Part::Html)
        .map(|p| p.rendered)
        .filter(|h| !h.is_empty())
        .ok_or_else(|| PageError(AppError::not_found("HTML part")))?;
    let mut response = ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response();
    response.extensions_mut().insert(OwnCsp(HTML_PART_CSP));
    Ok(response)
}
