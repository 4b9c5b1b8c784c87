//! `/v1/webhooks*`: the webhook endpoints of the caller's tenant
//! (`webhooks:read`, `webhooks:write`) and their deliveries.
//!
//! The signing secret (`whsec_` + base64) appears exactly twice in its
//! life: in the answer to `POST /v1/webhooks` and in the answer to the
//! rotation that made it. An id of another tenant is 404 like an unknown one.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::double_option;
use crate::domain::rfc3339;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, Json, Query};
use crate::http::permission::{RequirePermission, WebhooksRead, WebhooksWrite};
use crate::service::webhooks::{Actor, Changes};
use crate::state::AppState;
use crate::store::{Delivery, DeliveryStatus, Webhook};

/// A registered endpoint; never its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    pub url: String,
    /// Event types and `*` wildcards (`user.*`, `*`).
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    /// `failing` when forge turned it off, `disabled` when an administrator did.
    pub disabled_reason: Option<String>,
    /// Since when deliveries have failed without a success.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failing_since: Option<String>,
    /// While a rotation overlaps: when the previous secret stops signing.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events.patterns().to_vec(),
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since.map(rfc3339),
            previous_secret_until: w.previous_until.map(rfc3339),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// An endpoint with its signing secret: only in the answer that made it.
#[derive(Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_` + base64 of 32 bytes; shown only this once.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https` (plain `http` only with `webhooks.allow_private`); not forge
    /// itself nor a loopback, private, link-local or metadata address.
    pub url: String,
    /// Event types and `*` wildcards; each must match at least one type.
    pub events: Vec<String>,
    /// At most 500 characters.
    pub description: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `true` also clears the failure record of an endpoint forge turned off.
    pub enabled: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// The `webhook-id` the receiver sees.
    #[schema(value_type = String, format = Uuid)]
    pub event_id: uuid::Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// When the next attempt is due (pending only).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let status = d.status.shown();
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: status.as_str().to_owned(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: (status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at)),
            created_at: rfc3339(d.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQueryParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

fn with_secret(webhook: Webhook, secret: &crate::secret::Secret) -> WebhookWithSecret {
    WebhookWithSecret {
        webhook: webhook.into(),
        secret: secret.expose().to_owned(),
    }
}

/// The tenant's webhook endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksRead>,
) -> AppResult<axum::Json<WebhookList>> {
    let items = state.webhooks.list_as(Actor::user(&caller)).await?;
    Ok(axum::Json(WebhookList {
        items: items.into_iter().map(WebhookView::from).collect(),
    }))
}

/// Register an endpoint; the answer carries its signing secret, shown once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhookRequest,
    responses(
        (status = 201, body = WebhookWithSecret),
        (status = 400, description = "invalid fields, or forbidden_target", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_webhook(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksWrite>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CreateWebhookRequest>,
) -> AppResult<Response> {
    let (webhook, secret) = state
        .webhooks
        .create_as(Actor::user(&caller), &req.url, &req.events, req.description, &meta)
        .await?;
    let location = HeaderValue::from_str(&format!("/v1/webhooks/{}", webhook.id)).map_err(AppError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(with_secret(webhook, &secret)),
    )
        .into_response())
}

/// One endpoint (never its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 200, body = WebhookView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_webhook(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<WebhookView>> {
    Ok(axum::Json(
        state.webhooks.get_as(Actor::user(&caller), &id).await?.into(),
    ))
}

/// Change an endpoint: only the fields sent.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    request_body = PatchWebhookRequest,
    responses(
        (status = 200, body = WebhookView),
        (status = 400, description = "invalid fields, or forbidden_target", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_webhook(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(req): Json<PatchWebhookRequest>,
) -> AppResult<axum::Json<WebhookView>> {
    let changes = Changes {
        url: req.url,
        events: req.events,
        description: req.description,
        enabled: req.enabled,
    };
    let webhook = state
        .webhooks
        .update_as(Actor::user(&caller), &id, changes, &meta)
        .await?;
    Ok(axum::Json(webhook.into()))
}

/// Delete an endpoint and its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.webhooks.delete_as(Actor::user(&caller), &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, shown once; the previous one keeps signing
/// (a second `v1,` entry) for 24 hours.
#[utoipa::path(post, path = "/v1/webhooks/{id}/secret", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id")),
    responses((status = 200, body = WebhookWithSecret), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<axum::Json<WebhookWithSecret>> {
    let (webhook, secret) = state
        .webhooks
        .rotate_secret_as(Actor::user(&caller), &id, &meta)
        .await?;
    Ok(axum::Json(with_secret(webhook, &secret)))
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "the webhook's id"), DeliveryQueryParams),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, description = "bad limit or cursor", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksRead>,
    Path(id): Path<String>,
    Query(query): Query<DeliveryQueryParams>,
) -> AppResult<axum::Json<DeliveryList>> {
    let page = state
        .webhooks
        .deliveries_as(Actor::user(&caller), &id, query.limit, query.cursor.as_deref())
        .await?;
    Ok(axum::Json(DeliveryList {
        items: page.items.into_iter().map(DeliveryView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Send a delivered or failed delivery again, from its first attempt.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/replay", tag = "webhooks",
    params(
        ("id" = String, Path, description = "the webhook's id"),
        ("delivery_id" = String, Path, description = "the delivery's id"),
    ),
    responses(
        (status = 202),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the delivery is still on its way", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<WebhooksWrite>,
    ClientMeta(meta): ClientMeta,
    Path((id, delivery_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    state
        .webhooks
        .replay_as(Actor::user(&caller), &id, &delivery_id, &meta)
        .await?;
    Ok(StatusCode::ACCEPTED)
}
