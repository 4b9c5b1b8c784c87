//! Webhook delivery: the worker that takes due deliveries from the store
//! and POSTs them, signed as Standard Webhooks says ([`sign`]), to
//! endpoints the SSRF [`guard`] lets it reach.
//!
//! Events and their deliveries are written by the store in the transaction
//! of the change that caused them (`store::webhooks`); this worker only
//! moves them on. Each delivery is a POST of the event's stored JSON with
//! `webhook-id` (the event id, the same on every retry and every endpoint),
//! `webhook-timestamp` (the time of this attempt) and `webhook-signature`.
//! A 2xx answer within 10 s delivers it; anything else (another status, a
//! redirect, a timeout, a refused address) is retried after 5 s, 5 min,
//! 30 min, 2 h, 5 h, 10 h and 10 h, then failed. An endpoint that has
//! failed for `webhooks.disable_after` without a single success is turned
//! off (an audit row `webhook_disabled`, a warning in the log and a
//! `webhook_disabled` notice to the tenant's administrators say so);
//! enabling it again resumes its pending deliveries in order.
//!
//! Error texts stored with a delivery never hold the URL (it may carry a
//! token), the secret or the receiver's body.

pub mod guard;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::seal::SealingKey;
use crate::domain::Timestamp;
use crate::notify::is_stopped;
use crate::service::notices::Notices;
use crate::store::{DeliveryOutcome, DueDelivery, Store};
pub use guard::Guard;

/// The delay before each retry; one attempt more than delays in all.
const RETRY_DELAYS: [i64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];
/// Deliveries claimed per round.
const BATCH: u32 = 16;
/// Sends under way at once.
const CONCURRENCY: usize = 8;
/// How long a claimed delivery stays leased: longer than any send.
const LEASE_SECS: i64 = 60;
/// Finished deliveries (and events no delivery needs) are kept this long.
pub const DELIVERY_RETENTION_SECS: i64 = 30 * 24 * 3600;
/// How often the worker looks for due deliveries.
const POLL: Duration = Duration::from_secs(1);

/// The associated data a webhook's sealed secret is bound to.
pub fn secret_aad(tenant_id: Uuid, webhook_id: Uuid) -> Vec<u8> {
    format!("{tenant_id}/webhook/{webhook_id}").into_bytes()
}

/// Delivers webhooks. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    clock: Clock,
    key: SealingKey,
    guard: Guard,
    client: reqwest::Client,
    /// Seconds of failure without a success that turn an endpoint off.
    disable_after: i64,
    /// Tells the tenant's administrators when an endpoint is turned off.
    notices: Notices,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        key: SealingKey,
        guard: Guard,
        disable_after: Duration,
        notices: Notices,
    ) -> anyhow::Result<Self> {
        let client = guard.client()?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                key,
                guard,
                client,
                disable_after: i64::try_from(disable_after.as_secs()).unwrap_or(i64::MAX),
                notices,
            }),
        })
    }

    /// Starts the worker; it stops claiming when `shutdown` turns true (or
    /// its sender goes), finishes the sends under way and returns.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(run(self.inner.clone(), shutdown))
    }
}

async fn run(inner: Arc<Inner>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    while !is_stopped(&shutdown) {
        let claimed = match inner.store.claim_deliveries(inner.clock.now(), BATCH, LEASE_SECS).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim webhook deliveries");
                Vec::new()
            }
        };
        let full = claimed.len() >= BATCH as usize;
        let mut tasks = JoinSet::new();
        for delivery in claimed {
            let inner = inner.clone();
            let slots = slots.clone();
            let stop = shutdown.clone();
            tasks.spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else { return };
                if is_stopped(&stop) {
                    if let Err(e) = inner.store.release_delivery(delivery.id, inner.clock.now()).await {
                        tracing::warn!(id = %delivery.id, error = %e, "cannot hand back a webhook delivery");
                    }
                    return;
                }
                inner.deliver(delivery).await;
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Err(e) = done {
                // The delivery stays leased; it is claimed again when the lease runs out.
                tracing::error!(error = %e, "a webhook delivery task failed");
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

impl Inner {
    async fn deliver(&self, delivery: DueDelivery) {
        let outcome = self.attempt(&delivery).await;
        let now = self.clock.now();
        let delivered = matches!(outcome, DeliveryOutcome::Delivered { .. });
        match self
            .store
            .finish_delivery(&delivery, outcome, now, self.disable_after)
            .await
        {
            Ok(true) => {
                tracing::warn!(
                    webhook_id = %delivery.webhook_id,
                    tenant_id = %delivery.tenant_id,
                    "webhook endpoint disabled: its deliveries have failed for webhooks.disable_after"
                );
                let failed_for = Duration::from_secs(u64::try_from(self.disable_after).unwrap_or(u64::MAX));
                if let Err(e) = self
                    .notices
                    .webhook_disabled(delivery.tenant_id, delivery.webhook_id, &delivery.url, failed_for)
                    .await
                {
                    tracing::warn!(webhook_id = %delivery.webhook_id, error = %e, "cannot tell the administrators of a disabled webhook endpoint");
                }
            }
            Ok(false) => {
                if !delivered {
                    tracing::info!(webhook_id = %delivery.webhook_id, id = %delivery.id, "webhook delivery failed");
                }
            }
            Err(e) => tracing::warn!(id = %delivery.id, error = %e, "cannot record a webhook delivery"),
        }
    }

    /// One attempt; never fails, the outcome says what happened.
    async fn attempt(&self, d: &DueDelivery) -> DeliveryOutcome {
        let now = self.clock.now();
        let failed = |status_code: Option<u16>, error: String| failure(d.attempts, now, status_code, error);
        // The URL is checked again: the rules may have changed since it was
        // registered (and a row may not have come through the API).
        let url = match self.guard.check(&d.url) {
            Ok(url) => url,
            Err(_) => return failed(None, "forbidden_target: the endpoint may not be reached".into()),
        };
        let aad = secret_aad(d.tenant_id, d.webhook_id);
        let mut secrets = Vec::with_capacity(2);
        for sealed in std::iter::once(&d.sealed_secret).chain(d.sealed_previous.as_ref()) {
            match self.key.open(sealed, &aad) {
                Ok(secret) => secrets.push(secret),
                Err(_) => return failed(None, "the signing secret cannot be opened".into()),
            }
        }
        let id = d.event_id.to_string();
        let signature = sign::signature_header(secrets.iter().map(Vec::as_slice), &id, now, d.payload.as_bytes());
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", now.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => DeliveryOutcome::Delivered {
                status_code: response.status().as_u16(),
            },
            Ok(response) => {
                let code = response.status().as_u16();
                failed(Some(code), format!("the endpoint answered {code}"))
            }
            Err(e) => failed(None, crate::notify::describe_request_error(e)),
        }
    }
}

/// A failed attempt: retried on the schedule, or failed once it is spent.
fn failure(attempts: u32, now: Timestamp, status_code: Option<u16>, error: String) -> DeliveryOutcome {
    let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    match RETRY_DELAYS.get(index) {
        Some(&delay) => {
            // Up to a tenth more, so endpoints that failed together do not
            // all come back in the same second.
            let jitter = rand::thread_rng().gen_range(0..=delay / 10);
            DeliveryOutcome::Retry {
                at: now.saturating_add(delay + jitter),
                status_code,
                error,
            }
        }
        None => DeliveryOutcome::Failed { status_code, error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_and_then_give_up() {
        match failure(1, 1000, Some(500), "x".into()) {
            DeliveryOutcome::Retry { at, .. } => assert!((1005..=1005).contains(&at), "{at}"),
            other => panic!("{other:?}"),
        }
        match failure(3, 0, None, "x".into()) {
            DeliveryOutcome::Retry { at, .. } => assert!((1_800..=1_980).contains(&at), "{at}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            failure(8, 0, None, "x".into()),
            DeliveryOutcome::Failed { .. }
        ));
    }
}
