//! Webhook endpoints of the tenant the pages show: list and register, then
//! per endpoint its deliveries (status, attempts, last answer) with replay,
//! turning it off and on, rotating its secret and deleting it, all through
//! `service::webhooks`, which validates (the SSRF guard included), seals the
//! secret and audits.
//!
//! The signing secret is shown once, on the page that answers the
//! registration or the rotation; no other page shows it. Events are typed
//! as patterns separated by spaces (`user.* session.created`). A
//! registration that does not validate comes back as the list page with the
//! form filled in as sent and the failing field named (400). Another
//! tenant's endpoints, looked at by an operator, are read-only.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Admin, done};
use super::users::ConfirmPage;
use super::views::{self, Layout, PageError, PageForm, page, page_with};
use crate::error::AppError;
use crate::http::extract::ClientMeta;
use crate::secret::Secret;
use crate::service::site::sessions::SiteAdmin;
use crate::service::webhooks::{Actor, Changes};
use crate::state::AppState;
use crate::store::{DeliveryStatus, Webhook};

struct WebhookRow {
    id: String,
    url: String,
    events: String,
    enabled: bool,
    reason: String,
}

impl WebhookRow {
    fn of(w: &Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url.clone(),
            events: w.events.patterns().join(" "),
            enabled: w.enabled,
            reason: w.disabled_reason.clone().unwrap_or_default(),
        }
    }
}

/// The registration form as posted.
#[derive(Deserialize, Default)]
pub struct WebhookForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

#[derive(Template)]
#[template(path = "site/webhooks.html")]
struct WebhooksPage {
    l: Layout,
    webhooks: Vec<WebhookRow>,
    url: String,
    events: String,
    description: String,
    error: String,
}

async fn list_page(
    state: &AppState,
    admin: &SiteAdmin,
    form: WebhookForm,
    error: String,
) -> Result<WebhooksPage, PageError> {
    let webhooks = state.webhooks.list_as(Actor::user(admin.viewing())).await?;
    Ok(WebhooksPage {
        l: Layout::new(admin, "webhooks", "Webhooks"),
        webhooks: webhooks.iter().map(WebhookRow::of).collect(),
        url: form.url,
        events: if form.events.is_empty() {
            "user.*".into()
        } else {
            form.events
        },
        description: form.description,
        error,
    })
}

/// `GET /admin/webhooks`.
pub async fn list(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    Ok(page(
        &list_page(&state, &admin, WebhookForm::default(), String::new()).await?,
    ))
}

#[derive(Template)]
#[template(path = "site/webhook_secret.html")]
struct SecretPage {
    l: Layout,
    heading: String,
    id: String,
    url: String,
    secret: String,
}

fn secret_page(admin: &SiteAdmin, heading: &str, w: &Webhook, secret: &Secret) -> Response {
    page(&SecretPage {
        l: Layout::new(admin, "webhooks", "Webhook secret"),
        heading: heading.to_owned(),
        id: w.id.to_string(),
        url: w.url.clone(),
        secret: secret.expose().to_owned(),
    })
}

/// `POST /admin/webhooks`: registers the endpoint and shows its secret once.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<WebhookForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        let events: Vec<String> = form.events.split_whitespace().map(str::to_owned).collect();
        let description = views::non_empty(&form.description).map(str::to_owned);
        state
            .webhooks
            .create_as(by, form.url.trim(), &events, description, &meta)
            .await
    }
    .await;
    match outcome {
        Ok((w, secret)) => Ok(secret_page(&admin, "Endpoint added", &w, &secret)),
        Err(e @ (AppError::Validation { .. } | AppError::BadRequest { .. })) => {
            let error = views::describe(&e);
            Ok(page_with(
                StatusCode::BAD_REQUEST,
                &list_page(&state, &admin, form, error).await?,
            ))
        }
        Err(e) => Ok(done(&state, &admin, "/admin/webhooks", Err(e)).await),
    }
}

struct DeliveryRow {
    id: String,
    event_id: String,
    kind: String,
    status: &'static str,
    attempts: u32,
    code: String,
    error: String,
    created: String,
    ago: String,
    next_attempt: String,
    replayable: bool,
}

#[derive(Template)]
#[template(path = "site/webhook.html")]
struct WebhookPage {
    l: Layout,
    w: WebhookRow,
    description: String,
    failing_since: String,
    rotating_until: String,
    created: String,
    deliveries: Vec<DeliveryRow>,
}

fn path_of(id: &str) -> String {
    format!("/admin/webhooks/{id}")
}

/// `GET /admin/webhooks/{id}`: the endpoint and its latest deliveries.
pub async fn show(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let by = Actor::user(admin.viewing());
    let w = state.webhooks.get_as(by, &raw).await?;
    let deliveries = state
        .webhooks
        .deliveries_as(by, &raw, Some(crate::service::paging::DEFAULT_LIMIT), None)
        .await?;
    let now = state.clock.now();
    Ok(page(&WebhookPage {
        l: Layout::new(&admin, "webhooks", "Webhook endpoint"),
        description: w.description.clone().unwrap_or_default(),
        failing_since: w.failing_since.map(views::time).unwrap_or_default(),
        rotating_until: w
            .previous_until
            .filter(|t| *t > now)
            .map(views::time)
            .unwrap_or_default(),
        created: views::time(w.created_at),
        deliveries: deliveries
            .items
            .into_iter()
            .map(|d| {
                let status = d.status.shown();
                let pending = status == DeliveryStatus::Pending;
                DeliveryRow {
                    id: d.id.to_string(),
                    event_id: d.event_id.to_string(),
                    kind: d.event_type,
                    status: status.as_str(),
                    attempts: d.attempts,
                    code: d.last_status_code.map(|c| c.to_string()).unwrap_or_default(),
                    error: d.last_error.unwrap_or_default(),
                    created: views::time(d.created_at),
                    ago: views::relative(now, d.created_at),
                    next_attempt: if pending {
                        views::time(d.next_attempt_at)
                    } else {
                        String::new()
                    },
                    replayable: !pending,
                }
            })
            .collect(),
        w: WebhookRow::of(&w),
    }))
}

/// `POST /admin/webhooks/{id}/deliveries/{delivery_id}/replay`.
pub async fn replay(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path((raw, delivery)): Path<(String, String)>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        state.webhooks.replay_as(by, &raw, &delivery, &meta).await?;
        Ok("The delivery is queued again; the worker sends it within seconds.".to_owned())
    }
    .await;
    Ok(done(&state, &admin, &path_of(&raw), outcome).await)
}

/// `POST /admin/webhooks/{id}/enabled`: turns the endpoint on or off (on
/// also clears its failure record).
pub async fn toggle(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        let current = state.webhooks.get_as(by, &raw).await?;
        let changes = Changes {
            enabled: Some(!current.enabled),
            ..Changes::default()
        };
        let saved = state.webhooks.update_as(by, &raw, changes, &meta).await?;
        Ok(if saved.enabled {
            "Endpoint enabled."
        } else {
            "Endpoint disabled."
        }
        .to_owned())
    }
    .await;
    Ok(done(&state, &admin, &path_of(&raw), outcome).await)
}

/// `POST /admin/webhooks/{id}/secret`: a new secret, shown once.
pub async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        state.webhooks.rotate_secret_as(by, &raw, &meta).await
    }
    .await;
    match outcome {
        Ok((w, secret)) => Ok(secret_page(&admin, "New secret", &w, &secret)),
        Err(e) => Ok(done(&state, &admin, &path_of(&raw), Err(e)).await),
    }
}

/// `GET /admin/webhooks/{id}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let w = state.webhooks.get_as(Actor::user(admin.viewing()), &raw).await?;
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "webhooks", "Delete webhook endpoint"),
        heading: "Delete this endpoint?".into(),
        question: format!("Events will no longer be sent to {}.", w.url),
        consequences: vec![
            "Its pending deliveries are dropped and its delivery history is deleted.".into(),
            "The audit log keeps its rows about it.".into(),
        ],
        action: format!("{}/delete", path_of(&raw)),
        button: "Delete endpoint".into(),
        cancel: path_of(&raw),
    }))
}

/// `POST /admin/webhooks/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        state.webhooks.delete_as(by, &raw, &meta).await?;
        Ok("Endpoint deleted.".to_owned())
    }
    .await;
    Ok(match outcome {
        Ok(text) => done(&state, &admin, "/admin/webhooks", Ok(text)).await,
        Err(e) => done(&state, &admin, &path_of(&raw), Err(e)).await,
    })
}
