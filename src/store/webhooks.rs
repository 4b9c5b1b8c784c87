//! The webhooks port: endpoints, the events written for them and their
//! deliveries.
//!
//! Written once, over either database (see `sql.rs`). What it keeps:
//!
//! - **An event commits with its change.** [`record_events`] runs inside
//!   `insert_audit`, so every change that writes an audit row also writes,
//!   in that transaction, the events it announces and one delivery per
//!   enabled endpoint of the tenant that wants them. A rolled-back change
//!   leaves neither; a crash right after the commit loses neither. A tenant
//!   with no endpoint pays one indexed read per announcing change.
//! - **Per-user order.** A delivery is claimed only when no earlier
//!   delivery of the same endpoint and ordering key (the user, else the
//!   tenant) is still pending or being sent; a failed one no longer holds
//!   the line.
//! - **One worker per delivery.** [`WebhookStore::claim_deliveries`] leases
//!   in one statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL); a worker
//!   that dies leaves its lease to run out, and the delivery is sent again
//!   with the same `webhook-id` (at-least-once).
//! - **A failing endpoint is turned off.** [`WebhookStore::finish_delivery`]
//!   records when an endpoint began failing and disables it, with an audit
//!   row, once it has failed for the configured time without a success.
//!
//! Secrets: the store sees signing secrets only sealed (`crypto::seal`).

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use super::rows::{insert_audit, load_user};
use super::sql::{Conn, Driver, Row, args, corrupt};
use super::{NewAuditEvent, StoreError, StoreResult};
use crate::domain::webhooks::{EventFilter, EventType};
use crate::domain::{AuditEvent, Timestamp, rfc3339};

/// A registered endpoint; never its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub events: EventFilter,
    pub description: Option<String>,
    pub enabled: bool,
    /// `failing` when forge turned the endpoint off.
    pub disabled_reason: Option<String>,
    /// Since when deliveries have failed without a success.
    pub failing_since: Option<Timestamp>,
    /// While a rotation overlaps, when the previous secret stops signing.
    pub previous_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An endpoint to register, its secret sealed.
#[derive(Clone)]
pub struct NewWebhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub events: EventFilter,
    pub description: Option<String>,
    pub sealed_secret: Vec<u8>,
    pub now: Timestamp,
}

/// What a `PATCH` changes; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<EventFilter>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// Where a delivery is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Sending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    /// The status as administrators see it: a delivery being sent right
    /// now is still pending to them.
    pub fn shown(self) -> Self {
        match self {
            DeliveryStatus::Sending => DeliveryStatus::Pending,
            s => s,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "sending" => Some(DeliveryStatus::Sending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One event on its way to one endpoint, as the API lists it.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
}

/// A claimed delivery with what sending it takes.
#[derive(Clone)]
pub struct DueDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    /// Signs as well while a rotation overlaps.
    pub sealed_previous: Option<Vec<u8>>,
    /// The exact body to send.
    pub payload: String,
    /// Counted at claim: 1 on the first attempt.
    pub attempts: u32,
}

impl std::fmt::Debug for DueDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueDelivery")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        status_code: u16,
    },
    /// Pending again, due at `at`.
    Retry {
        at: Timestamp,
        status_code: Option<u16>,
        error: String,
    },
    /// Given up on.
    Failed {
        status_code: Option<u16>,
        error: String,
    },
}

/// What [`WebhookStore::replay_delivery`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    Queued,
    /// Still pending or being sent: nothing to replay yet.
    InFlight,
    NotFound,
}

#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    async fn create_webhook(&self, new: NewWebhook, audit: NewAuditEvent) -> StoreResult<Webhook>;
    /// The tenant's endpoints, oldest first.
    async fn list_webhooks(&self, tenant_id: Uuid) -> StoreResult<Vec<Webhook>>;
    async fn get_webhook(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<Webhook>>;
    /// Applies `patch` and writes `audit`; `NotFound` when absent. Enabling
    /// an endpoint clears its failure record.
    async fn update_webhook(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: WebhookPatch,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Webhook>;
    /// Deletes the endpoint and its deliveries; `NotFound` when absent.
    async fn delete_webhook(&self, tenant_id: Uuid, id: Uuid, audit: NewAuditEvent) -> StoreResult<()>;
    /// Makes `sealed_secret` the signing secret; the current one keeps
    /// signing until `previous_until`. `NotFound` when absent.
    async fn rotate_webhook_secret(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        sealed_secret: Vec<u8>,
        previous_until: Timestamp,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Webhook>;
    /// The endpoint's deliveries, newest first; pages with `before` (the
    /// last id of the previous page).
    async fn list_deliveries(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> StoreResult<Vec<Delivery>>;
    /// Sends a delivered or failed delivery again (attempts start over).
    async fn replay_delivery(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Replay>;
    /// Leases up to `limit` due deliveries of enabled endpoints until
    /// `now + lease_secs`, counting an attempt on each, oldest due first.
    async fn claim_deliveries(&self, now: Timestamp, limit: u32, lease_secs: i64) -> StoreResult<Vec<DueDelivery>>;
    /// Records an attempt's outcome and the endpoint's health. Returns
    /// true when this failure disabled the endpoint (it had failed for
    /// `disable_after` seconds without a success).
    async fn finish_delivery(
        &self,
        delivery: &DueDelivery,
        outcome: Outcome,
        now: Timestamp,
        disable_after: i64,
    ) -> StoreResult<bool>;
    /// Hands a leased delivery back untried (shutdown).
    async fn release_delivery(&self, id: Uuid, now: Timestamp) -> StoreResult<()>;
    /// Deletes finished deliveries created before `before`, and the events
    /// no delivery needs any more. Returns how many deliveries went.
    async fn prune_deliveries(&self, before: Timestamp) -> StoreResult<u64>;
}

// ---- events, written in the caller's transaction ----

/// Writes the events `audit` announces, with one delivery per enabled
/// endpoint of its tenant that subscribes to them. Called by
/// `insert_audit`, inside the transaction of the change.
pub(super) fn record_events(c: &mut dyn Conn, audit: &NewAuditEvent) -> StoreResult<()> {
    let types = EventType::for_audit(audit.event, &audit.detail);
    if types.is_empty() {
        return Ok(());
    }
    let hooks = c.query_map(
        "SELECT id, events FROM webhooks WHERE tenant_id = $1 AND enabled = $2",
        &args![audit.tenant_id, true],
        |r| Ok((r.get::<Uuid>("id")?, EventFilter::from_stored(r.json("events")?))),
    )?;
    if hooks.is_empty() {
        return Ok(());
    }
    let mut data: Option<serde_json::Value> = None;
    let mut tenant: Option<serde_json::Value> = None;
    let ordering_key = audit.user_id.unwrap_or(audit.tenant_id).to_string();
    for &kind in types {
        let targets: Vec<Uuid> = hooks
            .iter()
            .filter(|(_, f)| f.matches(kind))
            .map(|(id, _)| *id)
            .collect();
        if targets.is_empty() {
            continue;
        }
        if data.is_none() {
            data = Some(event_data(c, audit)?);
            let slug: Option<String> =
                c.query_opt_map("SELECT slug FROM tenants WHERE id = $1", &args![audit.tenant_id], |r| {
                    r.get("slug")
                })?;
            tenant = Some(json!({ "id": audit.tenant_id, "slug": slug }));
        }
        let id = Uuid::now_v7();
        let payload = json!({
            "id": id,
            "type": kind.as_str(),
            "version": 1,
            "created_at": rfc3339(audit.at),
            "tenant": tenant,
            "data": data,
        });
        c.execute(
            "INSERT INTO webhook_events (id, tenant_id, type, ordering_key, payload, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &args![
                id,
                audit.tenant_id,
                kind.as_str(),
                &ordering_key,
                payload.to_string(),
                audit.at
            ],
        )?;
        for webhook_id in targets {
            c.execute(
                "INSERT INTO webhook_deliveries (id, webhook_id, event_id, tenant_id, ordering_key, status, \
                 attempts, next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
                &args![Uuid::now_v7(), webhook_id, id, audit.tenant_id, &ordering_key, audit.at],
            )?;
        }
    }
    Ok(())
}

/// The `data` of an event: the user as the change left them (just their
/// id once deleted), who acted, from where, and the audit row's detail
/// (which never holds a secret).
fn event_data(c: &mut dyn Conn, audit: &NewAuditEvent) -> StoreResult<serde_json::Value> {
    let user = match audit.user_id {
        Some(user_id) => Some(match load_user(c, audit.tenant_id, user_id)? {
            Some(u) => json!({
                "id": u.id,
                "email": u.email.as_ref().map(|e| e.as_str()),
                "email_verified": u.email_verified,
                "phone": u.phone.as_ref().map(|p| p.as_str()),
                "phone_verified": u.phone_verified,
                "disabled": u.disabled,
                "roles": u.roles,
                "metadata": u.metadata,
                "created_at": rfc3339(u.created_at),
                "updated_at": rfc3339(u.updated_at),
            }),
            None => json!({ "id": user_id }),
        }),
        None => None,
    };
    Ok(json!({
        "user": user,
        "actor_id": audit.actor_id,
        "ip": audit.ip,
        "user_agent": audit.user_agent,
        "detail": audit.detail,
    }))
}

// ---- the one implementation, over either database ----

const WEBHOOK_COLUMNS: &str = "id, tenant_id, url, events, description, enabled, disabled_reason, failing_since, \
     previous_until, created_at, updated_at";

fn webhook_from_row(row: &Row) -> StoreResult<Webhook> {
    Ok(Webhook {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        url: row.get("url")?,
        events: EventFilter::from_stored(row.json("events")?),
        description: row.get("description")?,
        enabled: row.get("enabled")?,
        disabled_reason: row.get("disabled_reason")?,
        failing_since: row.get("failing_since")?,
        previous_until: row.get("previous_until")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn delivery_from_row(row: &Row) -> StoreResult<Delivery> {
    let status: String = row.get("status")?;
    let code: Option<i64> = row.get("last_status_code")?;
    Ok(Delivery {
        id: row.get("id")?,
        webhook_id: row.get("webhook_id")?,
        event_id: row.get("event_id")?,
        event_type: row.get("type")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        attempts: u32::try_from(row.get::<i64>("attempts")?).map_err(|_| corrupt("attempts", "negative"))?,
        last_status_code: code.and_then(|c| u16::try_from(c).ok()),
        last_error: row.get("last_error")?,
        next_attempt_at: row.get("next_attempt_at")?,
        created_at: row.get("created_at")?,
    })
}

fn load_webhook(c: &mut dyn Conn, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<Webhook>> {
    let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2");
    c.query_opt_map(&sql, &args![tenant_id, id], webhook_from_row)
}

fn events_json(events: &EventFilter) -> String {
    serde_json::Value::from(events.patterns().to_vec()).to_string()
}

/// The claim; see the module comment for the ordering rule. SQLite has one
/// writer, so the nested select is exclusive already; PostgreSQL workers
/// lock disjoint rows with `SKIP LOCKED`.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE webhook_deliveries SET status = 'sending', locked_until = $2, attempts = attempts + 1, \
             updated_at = $1 WHERE id IN ( \
                 SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE w.enabled = $4 \
                   AND ((d.status = 'pending' AND d.next_attempt_at <= $1) \
                     OR (d.status = 'sending' AND d.locked_until <= $1)) \
                   AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e \
                       WHERE e.webhook_id = d.webhook_id AND e.ordering_key = d.ordering_key \
                         AND e.id < d.id AND e.status IN ('pending', 'sending')) \
                 ORDER BY d.next_attempt_at, d.id LIMIT $3",
            $lock,
            ") RETURNING id"
        )
    };
}
const CLAIM_SQLITE: &str = claim!("");
const CLAIM_POSTGRES: &str = claim!(" FOR UPDATE OF d SKIP LOCKED");

#[async_trait]
impl<D: Driver> WebhookStore for D {
    async fn create_webhook(&self, new: NewWebhook, audit: NewAuditEvent) -> StoreResult<Webhook> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO webhooks (id, tenant_id, url, events, description, secret, enabled, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                &args![
                    new.id,
                    new.tenant_id,
                    &new.url,
                    events_json(&new.events),
                    &new.description,
                    &new.sealed_secret,
                    true,
                    new.now,
                ],
            )?;
            insert_audit(c, &audit)?;
            load_webhook(c, new.tenant_id, new.id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_webhooks(&self, tenant_id: Uuid) -> StoreResult<Vec<Webhook>> {
        self.read(move |c| {
            let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY id");
            c.query_map(&sql, &args![tenant_id], webhook_from_row)
        })
        .await
    }

    async fn get_webhook(&self, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<Webhook>> {
        self.lookup(move |c| load_webhook(c, tenant_id, id)).await
    }

    async fn update_webhook(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: WebhookPatch,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Webhook> {
        self.write(move |c| {
            let current = load_webhook(c, tenant_id, id)?.ok_or(StoreError::NotFound)?;
            let enabled = patch.enabled.unwrap_or(current.enabled);
            let description = patch.description.clone().unwrap_or(current.description);
            let url = patch.url.clone().unwrap_or(current.url);
            let events = patch.events.clone().unwrap_or(current.events);
            let (reason, failing_since) = match (current.enabled, enabled) {
                (_, true) => (None, if current.enabled { current.failing_since } else { None }),
                (true, false) => (Some("disabled".to_owned()), current.failing_since),
                (false, false) => (current.disabled_reason, current.failing_since),
            };
            c.execute(
                "UPDATE webhooks SET url = $3, events = $4, description = $5, enabled = $6, disabled_reason = $7, \
                 failing_since = $8, updated_at = $9 WHERE tenant_id = $1 AND id = $2",
                &args![
                    tenant_id,
                    id,
                    &url,
                    events_json(&events),
                    &description,
                    enabled,
                    &reason,
                    failing_since,
                    now,
                ],
            )?;
            insert_audit(c, &audit)?;
            load_webhook(c, tenant_id, id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_webhook(&self, tenant_id: Uuid, id: Uuid, audit: NewAuditEvent) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = $1 AND tenant_id = $2",
                &args![id, tenant_id],
            )?;
            let n = c.execute(
                "DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit(c, &audit)
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        sealed_secret: Vec<u8>,
        previous_until: Timestamp,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Webhook> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE webhooks SET previous_secret = secret, previous_until = $3, secret = $4, updated_at = $5 \
                 WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id, previous_until, &sealed_secret, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit(c, &audit)?;
            load_webhook(c, tenant_id, id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_deliveries(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        limit: u32,
        before: Option<Uuid>,
    ) -> StoreResult<Vec<Delivery>> {
        self.read(move |c| {
            c.query_map(
                "SELECT d.id, d.webhook_id, d.event_id, e.type, d.status, d.attempts, d.last_status_code, \
                 d.last_error, d.next_attempt_at, d.created_at \
                 FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
                 WHERE d.tenant_id = $1 AND d.webhook_id = $2 AND ($3 IS NULL OR d.id < $3) \
                 ORDER BY d.id DESC LIMIT $4",
                &args![tenant_id, webhook_id, before, limit],
                delivery_from_row,
            )
        })
        .await
    }

    async fn replay_delivery(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Replay> {
        self.write(move |c| {
            let status: Option<String> = c.query_opt_map(
                "SELECT status FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 AND id = $3",
                &args![tenant_id, webhook_id, id],
                |r| r.get("status"),
            )?;
            match status.as_deref() {
                None => return Ok(Replay::NotFound),
                Some("pending" | "sending") => return Ok(Replay::InFlight),
                Some(_) => {}
            }
            c.execute(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = $2, \
                 locked_until = NULL, last_error = NULL, updated_at = $2 WHERE id = $1",
                &args![id, now],
            )?;
            insert_audit(c, &audit)?;
            Ok(Replay::Queued)
        })
        .await
    }

    async fn claim_deliveries(&self, now: Timestamp, limit: u32, lease_secs: i64) -> StoreResult<Vec<DueDelivery>> {
        let locked_until = now.saturating_add(lease_secs.max(1));
        self.write(move |c| {
            let sql = c.pick(CLAIM_SQLITE, CLAIM_POSTGRES);
            let ids = c.query_ids(sql, &args![now, locked_until, limit, true])?;
            let mut due = Vec::with_capacity(ids.len());
            for id in ids {
                let row = c.query_opt_map(
                    "SELECT d.id, d.webhook_id, d.tenant_id, d.event_id, d.attempts, d.next_attempt_at, w.url, \
                     w.secret, w.previous_secret, w.previous_until, e.payload \
                     FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                     JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1",
                    &args![id],
                    |r| {
                        let previous_until: Option<i64> = r.get("previous_until")?;
                        let previous: Option<Vec<u8>> = r.get("previous_secret")?;
                        Ok((
                            r.get::<i64>("next_attempt_at")?,
                            DueDelivery {
                                id: r.get("id")?,
                                webhook_id: r.get("webhook_id")?,
                                tenant_id: r.get("tenant_id")?,
                                event_id: r.get("event_id")?,
                                url: r.get("url")?,
                                sealed_secret: r.get("secret")?,
                                sealed_previous: previous.filter(|_| previous_until.is_some_and(|t| t > now)),
                                payload: r.get("payload")?,
                                attempts: u32::try_from(r.get::<i64>("attempts")?)
                                    .map_err(|_| corrupt("attempts", "negative"))?,
                            },
                        ))
                    },
                )?;
                due.extend(row);
            }
            due.sort_by_key(|(at, d)| (*at, d.id));
            Ok(due.into_iter().map(|(_, d)| d).collect())
        })
        .await
    }

    async fn finish_delivery(
        &self,
        delivery: &DueDelivery,
        outcome: Outcome,
        now: Timestamp,
        disable_after: i64,
    ) -> StoreResult<bool> {
        let (id, webhook_id, tenant_id) = (delivery.id, delivery.webhook_id, delivery.tenant_id);
        self.write(move |c| {
            let failed = match &outcome {
                Outcome::Delivered { status_code } => {
                    c.execute(
                        "UPDATE webhook_deliveries SET status = 'delivered', locked_until = NULL, \
                         last_status_code = $2, last_error = NULL, updated_at = $3 WHERE id = $1",
                        &args![id, i64::from(*status_code), now],
                    )?;
                    c.execute(
                        "UPDATE webhooks SET failing_since = NULL WHERE id = $1",
                        &args![webhook_id],
                    )?;
                    false
                }
                Outcome::Retry { at, status_code, error } => {
                    c.execute(
                        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, locked_until = NULL, \
                         last_status_code = $3, last_error = $4, updated_at = $5 WHERE id = $1 AND status = 'sending'",
                        &args![id, *at, status_code.map(i64::from), error.as_str(), now],
                    )?;
                    true
                }
                Outcome::Failed { status_code, error } => {
                    c.execute(
                        "UPDATE webhook_deliveries SET status = 'failed', locked_until = NULL, \
                         last_status_code = $2, last_error = $3, updated_at = $4 WHERE id = $1",
                        &args![id, status_code.map(i64::from), error.as_str(), now],
                    )?;
                    true
                }
            };
            if !failed {
                return Ok(false);
            }
            c.execute(
                "UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1",
                &args![webhook_id, now],
            )?;
            let n = c.execute(
                "UPDATE webhooks SET enabled = $3, disabled_reason = 'failing', updated_at = $2 \
                 WHERE id = $1 AND enabled = $4 AND failing_since <= $5",
                &args![webhook_id, now, false, true, now.saturating_sub(disable_after)],
            )?;
            if n == 0 {
                return Ok(false);
            }
            insert_audit(
                c,
                &NewAuditEvent {
                    tenant_id,
                    at: now,
                    event: AuditEvent::WebhookDisabled,
                    user_id: None,
                    actor_id: None,
                    ip: None,
                    user_agent: None,
                    detail: json!({ "webhook_id": webhook_id, "reason": "failing" }),
                },
            )?;
            Ok(true)
        })
        .await
    }

    async fn release_delivery(&self, id: Uuid, now: Timestamp) -> StoreResult<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $2, locked_until = NULL, \
                 attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $2 \
                 WHERE id = $1 AND status = 'sending'",
                &args![id, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn prune_deliveries(&self, before: Timestamp) -> StoreResult<u64> {
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM webhook_deliveries WHERE created_at < $1 AND status IN ('delivered', 'failed')",
                &args![before],
            )?;
            c.execute(
                "DELETE FROM webhook_events WHERE created_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = webhook_events.id)",
                &args![before],
            )?;
            Ok(n)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DEFAULT_TENANT_ID;
    use crate::store::sqlite::SqliteStore;

    fn audit(event: AuditEvent, user_id: Option<Uuid>) -> NewAuditEvent {
        NewAuditEvent {
            tenant_id: DEFAULT_TENANT_ID,
            at: 100,
            event,
            user_id,
            actor_id: None,
            ip: None,
            user_agent: None,
            detail: json!({}),
        }
    }

    async fn store_with_endpoint(patterns: &[&str]) -> (SqliteStore, Uuid) {
        let store = SqliteStore::open("sqlite::memory:", 2).unwrap();
        let patterns: Vec<String> = patterns.iter().map(|p| (*p).to_owned()).collect();
        let hook = store
            .create_webhook(
                NewWebhook {
                    id: Uuid::now_v7(),
                    tenant_id: DEFAULT_TENANT_ID,
                    url: "https://hooks.example.net/x".into(),
                    events: EventFilter::parse(&patterns).unwrap(),
                    description: None,
                    sealed_secret: vec![0; 8],
                    now: 0,
                },
                audit(AuditEvent::WebhookCreated, None),
            )
            .await
            .unwrap();
        (store, hook.id)
    }

    async fn count(store: &SqliteStore, table: &'static str) -> u64 {
        store
            .read(move |c| c.query_value(&format!("SELECT COUNT(*) FROM {table}"), &[]))
            .await
            .unwrap()
    }

    /// The event is part of the change's transaction: a change that rolls
    /// back after writing its audit row leaves no event and no delivery.
    #[tokio::test]
    async fn a_rolled_back_change_leaves_no_event() {
        let (store, _) = store_with_endpoint(&["user.*"]).await;
        let failed = store
            .write(|c| {
                insert_audit(c, &audit(AuditEvent::UserDisabled, Some(Uuid::now_v7())))?;
                Err::<(), _>(StoreError::Conflict { field: "email" })
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(count(&store, "webhook_events").await, 0);
        assert_eq!(count(&store, "webhook_deliveries").await, 0);
        // The same change committed writes one event and one delivery.
        store
            .write(|c| insert_audit(c, &audit(AuditEvent::UserDisabled, Some(Uuid::now_v7()))))
            .await
            .unwrap();
        assert_eq!(count(&store, "webhook_events").await, 1);
        assert_eq!(count(&store, "webhook_deliveries").await, 1);
    }

    #[tokio::test]
    async fn only_wanted_events_are_written_and_one_user_is_delivered_in_order() {
        let (store, hook) = store_with_endpoint(&["user.disabled", "user.enabled"]).await;
        let ada = Uuid::now_v7();
        let bob = Uuid::now_v7();
        for a in [
            audit(AuditEvent::Login, Some(ada)),
            audit(AuditEvent::UserDisabled, Some(ada)),
            audit(AuditEvent::UserEnabled, Some(ada)),
            audit(AuditEvent::UserDisabled, Some(bob)),
        ] {
            store.write(move |c| insert_audit(c, &a)).await.unwrap();
        }
        assert_eq!(count(&store, "webhook_events").await, 3, "login is not wanted");
        // One per user at a time: ada's first, bob's first.
        let first = store.claim_deliveries(100, 10, 60).await.unwrap();
        assert_eq!(first.len(), 2);
        assert!(store.claim_deliveries(100, 10, 60).await.unwrap().is_empty());
        let ada_first = first
            .iter()
            .find(|d| d.payload.contains(&ada.to_string()))
            .unwrap()
            .clone();
        assert!(ada_first.payload.contains("user.disabled"));
        assert_eq!(ada_first.webhook_id, hook);
        store
            .finish_delivery(&ada_first, Outcome::Delivered { status_code: 200 }, 101, 3600)
            .await
            .unwrap();
        let next = store.claim_deliveries(101, 10, 60).await.unwrap();
        assert_eq!(next.len(), 1);
        assert!(next[0].payload.contains("user.enabled"));
    }
}
