//! Webhook endpoints of each tenant: the administrators' use cases
//! (register, list, change, delete, rotate the secret, list deliveries,
//! replay one). Delivery itself is `crate::webhooks`.
//!
//! Who. The HTTP layer checks `webhooks:read` / `webhooks:write` before a
//! use case runs; the use cases act inside the caller's tenant ([`Actor`]),
//! so another tenant's endpoint is simply not found.
//!
//! Secrets. A signing secret is made here, shown once (in the answer to
//! the registration or the rotation) and stored sealed with its own key,
//! the tenant and webhook id as associated data. During a rotation the old
//! secret signs as well for [`ROTATION_OVERLAP`], so receivers can switch
//! without dropping a delivery.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use super::paging::{self, Page};
use crate::clock::Clock;
use crate::crypto::seal::SealingKey;
use crate::domain::AuditEvent;
use crate::domain::webhooks::{BadTarget, EventFilter, MAX_DESCRIPTION_CHARS};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::store::{Delivery, NewWebhook, Replay, Store, StoreError, Webhook, WebhookPatch};
use crate::webhooks::{Guard, secret_aad, sign};

pub use crate::service::clients::Actor;

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_OVERLAP: i64 = 24 * 3600;
/// The cursor kind of a delivery list.
const DELIVERY_CURSOR: &str = "deliveries";

/// What a `PATCH` asks for, unchecked.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` removes it.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Clone)]
pub struct Webhooks {
    store: Arc<dyn Store>,
    clock: Clock,
    key: SealingKey,
    guard: Guard,
}

fn not_found() -> AppError {
    AppError::not_found("webhook")
}

fn not_found_as_webhook(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => not_found(),
        other => other.into(),
    }
}

fn bad_target(e: BadTarget) -> AppError {
    match e {
        BadTarget::Invalid(why) => AppError::validation("url", why),
        BadTarget::Forbidden => AppError::bad_request(
            ErrorCode::ForbiddenTarget,
            "webhooks may not point at forge itself or at loopback, private, link-local or metadata addresses",
        ),
    }
}

fn events(patterns: &[String]) -> AppResult<EventFilter> {
    EventFilter::parse(patterns).map_err(|why| AppError::validation("events", why))
}

fn description(d: Option<String>) -> AppResult<Option<String>> {
    let d = d.map(|d| d.trim().to_owned()).filter(|d| !d.is_empty());
    if let Some(d) = &d
        && (d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control))
    {
        return Err(AppError::validation(
            "description",
            format!("at most {MAX_DESCRIPTION_CHARS} characters, no control characters"),
        ));
    }
    Ok(d)
}

fn parse_id(id: &str) -> AppResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

impl Webhooks {
    /// `key` seals signing secrets ([`SealingKey::webhook_secrets`]).
    pub fn new(store: Arc<dyn Store>, clock: Clock, key: SealingKey, guard: Guard) -> Self {
        Self {
            store,
            clock,
            key,
            guard,
        }
    }

    fn seal(&self, tenant_id: Uuid, id: Uuid, secret: &[u8]) -> AppResult<Vec<u8>> {
        self.key
            .seal(secret, &secret_aad(tenant_id, id))
            .map_err(AppError::internal)
    }

    /// Registers an endpoint; the answer carries its secret, shown once.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id))]
    pub async fn create_as(
        &self,
        by: Actor,
        url: &str,
        patterns: &[String],
        about: Option<String>,
        meta: &RequestMeta,
    ) -> AppResult<(Webhook, Secret)> {
        let url = self.guard.admit(url).await.map_err(bad_target)?;
        let events = events(patterns)?;
        let description = description(about)?;
        let id = Uuid::now_v7();
        let (raw, shown) = sign::new_secret();
        let sealed = self.seal(by.tenant_id, id, &raw)?;
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::WebhookCreated, None, by.user_id);
        audit.detail = serde_json::json!({ "webhook_id": id, "events": events.patterns() });
        let created = self
            .store
            .create_webhook(
                NewWebhook {
                    id,
                    tenant_id: by.tenant_id,
                    url: url.to_string(),
                    events,
                    description,
                    sealed_secret: sealed,
                    now,
                },
                audit,
            )
            .await?;
        Ok((created, shown))
    }

    pub async fn list_as(&self, by: Actor) -> AppResult<Vec<Webhook>> {
        Ok(self.store.list_webhooks(by.tenant_id).await?)
    }

    pub async fn get_as(&self, by: Actor, id: &str) -> AppResult<Webhook> {
        self.store
            .get_webhook(by.tenant_id, parse_id(id)?)
            .await?
            .ok_or_else(not_found)
    }

    /// Changes what is sent; enabling a disabled endpoint clears its
    /// failure record and resumes its pending deliveries.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, webhook = %id))]
    pub async fn update_as(&self, by: Actor, id: &str, changes: Changes, meta: &RequestMeta) -> AppResult<Webhook> {
        let id = parse_id(id)?;
        let mut patch = WebhookPatch {
            enabled: changes.enabled,
            ..WebhookPatch::default()
        };
        let mut fields = Vec::new();
        if let Some(url) = changes.url {
            patch.url = Some(self.guard.admit(&url).await.map_err(bad_target)?.to_string());
            fields.push("url");
        }
        if let Some(patterns) = changes.events {
            patch.events = Some(events(&patterns)?);
            fields.push("events");
        }
        if let Some(about) = changes.description {
            patch.description = Some(description(about)?);
            fields.push("description");
        }
        if changes.enabled.is_some() {
            fields.push("enabled");
        }
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::WebhookUpdated, None, by.user_id);
        audit.detail = serde_json::json!({ "webhook_id": id, "fields": fields, "enabled": changes.enabled });
        self.store
            .update_webhook(by.tenant_id, id, patch, now, audit)
            .await
            .map_err(not_found_as_webhook)
    }

    /// Deletes the endpoint and its deliveries.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, webhook = %id))]
    pub async fn delete_as(&self, by: Actor, id: &str, meta: &RequestMeta) -> AppResult<()> {
        let id = parse_id(id)?;
        let mut audit = meta.audit(
            by.tenant_id,
            self.clock.now(),
            AuditEvent::WebhookDeleted,
            None,
            by.user_id,
        );
        audit.detail = serde_json::json!({ "webhook_id": id });
        self.store
            .delete_webhook(by.tenant_id, id, audit)
            .await
            .map_err(not_found_as_webhook)
    }

    /// A new secret, shown once; the old one signs too for
    /// [`ROTATION_OVERLAP`].
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, webhook = %id))]
    pub async fn rotate_secret_as(&self, by: Actor, id: &str, meta: &RequestMeta) -> AppResult<(Webhook, Secret)> {
        let id = parse_id(id)?;
        let (raw, shown) = sign::new_secret();
        let sealed = self.seal(by.tenant_id, id, &raw)?;
        let now = self.clock.now();
        let until = now.saturating_add(ROTATION_OVERLAP);
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::WebhookSecretRotated, None, by.user_id);
        audit.detail = serde_json::json!({ "webhook_id": id });
        let webhook = self
            .store
            .rotate_webhook_secret(by.tenant_id, id, sealed, until, now, audit)
            .await
            .map_err(not_found_as_webhook)?;
        Ok((webhook, shown))
    }

    /// The endpoint's deliveries, newest first.
    pub async fn deliveries_as(
        &self,
        by: Actor,
        id: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> AppResult<Page<Delivery>> {
        let webhook = self.get_as(by, id).await?;
        let limit = paging::limit(limit)?;
        let before = cursor.map(|c| paging::decode_uuid(DELIVERY_CURSOR, c)).transpose()?;
        let rows = self
            .store
            .list_deliveries(by.tenant_id, webhook.id, limit + 1, before)
            .await?;
        Ok(paging::page(rows, limit, |d| {
            paging::encode(DELIVERY_CURSOR, &d.id.to_string())
        }))
    }

    /// Sends a delivered or failed delivery again, from its first attempt;
    /// 409 while it is still on its way.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, webhook = %id))]
    pub async fn replay_as(&self, by: Actor, id: &str, delivery_id: &str, meta: &RequestMeta) -> AppResult<()> {
        let webhook_id = parse_id(id)?;
        let delivery_id = Uuid::parse_str(delivery_id).map_err(|_| AppError::not_found("delivery"))?;
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::WebhookReplayed, None, by.user_id);
        audit.detail = serde_json::json!({ "webhook_id": webhook_id, "delivery_id": delivery_id });
        match self
            .store
            .replay_delivery(by.tenant_id, webhook_id, delivery_id, now, audit)
            .await?
        {
            Replay::Queued => Ok(()),
            Replay::InFlight => Err(AppError::conflict(
                ErrorCode::Conflict,
                "the delivery is still on its way",
            )),
            Replay::NotFound => Err(AppError::not_found("delivery")),
        }
    }
}
