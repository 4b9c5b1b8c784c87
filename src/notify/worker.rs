//! The outbox worker: takes due messages from the [`OutboxStore`], hands
//! each to its channel, and records the outcome.
//!
//! The loop: expire what is too old to matter; claim up to a batch of due
//! messages under a lease; send them, a few at a time; mark each delivered,
//! due again later (exponential backoff with jitter) or failed (a permanent
//! refusal, or out of attempts); then sleep until woken by a new message,
//! until the next retry falls due, or for the poll interval.
//!
//! Guarantees: delivery is at-least-once. A graceful shutdown stops claiming,
//! lets the sends already under way finish and be recorded, and hands
//! claimed-but-unstarted messages back untried — nothing is lost. A crash
//! leaves messages `sending`; their lease runs out and a worker claims them
//! again (so a receiver may see a message twice: the webhook's `id` is stable
//! for deduplication). A message claimed more than `max_attempts` times
//! (because it keeps killing its worker) is failed without another try.
//!
//! Times stored are whole seconds from the [`Clock`](crate::clock::Clock);
//! a retry due in less than a second is stored as due now and the worker
//! itself sleeps the exact delay, which keeps millisecond delays (tests)
//! honest on a single worker without sub-second columns.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::Inner;
use super::channel::{Delivery, scrub};
use crate::store::OutboxMessage;

/// Tuning of the outbox worker. The defaults suit production; tests shorten
/// the delays with [`WorkerSettings::new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Delay before the first retry; doubled for each further one.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// How often the worker looks for due messages when nobody wakes it (a
    /// retry falling due, another instance's messages, a stale lease).
    pub poll_interval: Duration,
    /// Messages claimed per round.
    pub batch: u32,
    /// Sends under way at once.
    pub concurrency: usize,
    /// How long a claimed message stays leased before another worker may
    /// take it over; longer than any send (channels time out after 10 s).
    pub lease: Duration,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            batch: 16,
            concurrency: 4,
            lease: Duration::from_secs(60),
        }
    }
}

impl WorkerSettings {
    /// The defaults with other delays (tests use milliseconds).
    pub fn new(base_delay: Duration, max_delay: Duration, poll_interval: Duration) -> Self {
        Self {
            base_delay,
            max_delay,
            poll_interval,
            ..Self::default()
        }
    }

    /// The delay after the `attempts`-th failed attempt (1-based), before
    /// jitter: `base * 2^(attempts-1)`, capped at `max_delay`.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(31);
        self.base_delay.saturating_mul(1u32 << exp).min(self.max_delay)
    }

    /// [`backoff`](Self::backoff) spread by ±20% at random, so messages that
    /// failed together (a provider outage) do not all retry in the same
    /// second; never above `max_delay`.
    pub fn backoff_with_jitter(&self, attempts: u32) -> Duration {
        let factor = rand::thread_rng().gen_range(0.8..=1.2);
        self.backoff(attempts).mul_f64(factor).min(self.max_delay)
    }
}

/// True once shutdown was asked for, or nobody can ask any more (the sender
/// was dropped: a worker nobody can stop would outlive its server).
pub(crate) fn is_stopped(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Resolves when shutdown is asked for or the sender is dropped.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

pub(super) async fn run(inner: Arc<Inner>, settings: WorkerSettings, mut shutdown: watch::Receiver<bool>) {
    let lease_secs = i64::try_from(settings.lease.as_secs()).unwrap_or(i64::MAX).max(1);
    let batch = settings.batch.max(1);
    tracing::debug!("notification worker started");
    while !is_stopped(&shutdown) {
        let now = inner.clock.now();
        match inner.store.expire(now).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "notifications expired before they could be delivered"),
            Err(e) => tracing::warn!(error = %e, "cannot expire old notifications"),
        }
        let mut wait = settings.poll_interval;
        let mut more = false;
        match inner.store.claim_due(now, batch, lease_secs).await {
            Ok(claimed) if claimed.is_empty() => {}
            Ok(claimed) => {
                let full = claimed.len() >= batch as usize;
                let soonest_retry = send_batch(&inner, &settings, claimed, &shutdown).await;
                if let Some(delay) = soonest_retry {
                    wait = wait.min(delay);
                }
                // A full batch means more may be due right now.
                more = full && soonest_retry.is_none();
            }
            Err(e) => tracing::warn!(error = %e, "cannot claim notifications"),
        }
        if more {
            continue;
        }
        tokio::select! {
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopped(&mut shutdown) => break,
        }
    }
    tracing::debug!("notification worker stopped");
}

/// Sends one claimed batch, at most `concurrency` at a time, and waits for
/// every send to be recorded. Returns the shortest retry delay scheduled.
async fn send_batch(
    inner: &Arc<Inner>,
    settings: &WorkerSettings,
    claimed: Vec<OutboxMessage>,
    shutdown: &watch::Receiver<bool>,
) -> Option<Duration> {
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for message in claimed {
        let inner = inner.clone();
        let slots = slots.clone();
        let settings = *settings;
        let mut shutdown = shutdown.clone();
        tasks.spawn(async move {
            // A message waiting for a slot when shutdown comes is handed back
            // untried; one that has its slot is sent and recorded.
            let slot = tokio::select! {
                biased;
                slot = slots.acquire_owned() => slot.ok(),
                _ = stopped(&mut shutdown) => None,
            };
            match slot {
                Some(_slot) => deliver(&inner, &settings, message).await,
                None => {
                    if let Err(e) = inner.store.release(message.id, inner.clock.now()).await {
                        tracing::warn!(id = %message.id, error = %e, "cannot hand back a notification");
                    }
                    None
                }
            }
        });
    }
    let mut soonest: Option<Duration> = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Some(delay)) => soonest = Some(soonest.map_or(delay, |s| s.min(delay))),
            Ok(None) => {}
            // The message stays `sending`; its lease runs out and it is claimed again.
            Err(e) => tracing::error!(error = %e, "a notification send task failed"),
        }
    }
    soonest
}

/// Sends one message and records the outcome. Returns the retry delay when
/// the message was scheduled again.
async fn deliver(inner: &Inner, settings: &WorkerSettings, message: OutboxMessage) -> Option<Duration> {
    let id = message.id;
    let store = &inner.store;
    let Some(delivery) = Delivery::from_message(&message) else {
        record(
            store
                .mark_failed(id, "nothing to send: the message was erased", inner.clock.now())
                .await,
            id,
        );
        return None;
    };
    if message.attempts > inner.max_attempts {
        record(
            store
                .mark_failed(id, "gave up: claimed too often without an outcome", inner.clock.now())
                .await,
            id,
        );
        return None;
    }
    let channel = inner.channel_for(delivery.channel);
    let outcome = channel.send(&delivery).await;
    let now = inner.clock.now();
    match outcome {
        Ok(()) => {
            tracing::debug!(%id, channel = channel.name(), kind = delivery.kind.as_str(), attempts = message.attempts, "notification delivered");
            record(store.mark_delivered(id, now).await, id);
            None
        }
        Err(e) => {
            let reason = scrub(&e.reason, &delivery);
            if e.permanent || message.attempts >= inner.max_attempts {
                let reason = if e.permanent {
                    reason
                } else {
                    format!("{reason} (gave up after {} attempts)", message.attempts)
                };
                tracing::warn!(%id, channel = channel.name(), kind = delivery.kind.as_str(), attempts = message.attempts, reason = %reason, "notification failed");
                record(store.mark_failed(id, &reason, now).await, id);
                None
            } else {
                let delay = settings.backoff_with_jitter(message.attempts);
                let next = now.saturating_add(i64::try_from(delay.as_secs()).unwrap_or(i64::MAX));
                tracing::info!(%id, channel = channel.name(), kind = delivery.kind.as_str(), attempts = message.attempts, reason = %reason, retry_in_ms = delay.as_millis() as u64, "notification will be retried");
                record(store.mark_retry(id, next, &reason, now).await, id);
                Some(delay)
            }
        }
    }
}

/// Logs a failure to record an outcome; the lease then runs out and the
/// message is claimed again (at-least-once).
fn record(result: crate::store::StoreResult<()>, id: uuid::Uuid) {
    if let Err(e) = result {
        tracing::warn!(%id, error = %e, "cannot record a notification's outcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_base_and_stops_at_the_cap() {
        let s = WorkerSettings::default();
        let secs: Vec<u64> = (1..=11).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(s.backoff(0), Duration::from_secs(2));
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_the_cap() {
        let s = WorkerSettings::default();
        for attempts in 1..=12 {
            let base = s.backoff(attempts);
            for _ in 0..50 {
                let d = s.backoff_with_jitter(attempts);
                assert!(
                    d >= base.mul_f64(0.8) && d <= base.mul_f64(1.2).min(s.max_delay),
                    "{d:?} vs {base:?}"
                );
            }
        }
    }

    #[test]
    fn shutdown_is_seen_when_asked_or_when_the_sender_is_gone() {
        let (tx, rx) = watch::channel(false);
        assert!(!is_stopped(&rx));
        tx.send_replace(true);
        assert!(is_stopped(&rx));
        let (tx, rx) = watch::channel(false);
        drop(tx);
        assert!(is_stopped(&rx));
    }
}
