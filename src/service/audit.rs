//! Reading the audit log and enforcing its retention.
//!
//! Rows are written by the store in the transaction of the change they
//! record (see `store`); this module only reads them, scoped to the caller's
//! token tenant, newest first with a keyset cursor on the UUIDv7 id, and
//! deletes rows older than `audit.retention` in small batches so the sweep
//! never holds the single SQLite writer for long. Rows never hold secrets:
//! writers put only ids, names and outcomes in `detail`.

use std::sync::Arc;

use uuid::Uuid;

use super::paging::{self, Page};
use crate::clock::Clock;
use crate::config::AuditConfig;
use crate::domain::AuditEvent;
use crate::error::{AppError, AppResult};
use crate::service::sessions::Principal;
use crate::store::{self, AuditQuery, Store};

/// Rows deleted per write transaction by the retention sweep.
const SWEEP_BATCH: u32 = 5_000;

/// Filters of `GET /v1/audit`.
#[derive(Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    pub event: Option<EventFilter>,
}

/// The event a listing is narrowed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    Known(AuditEvent),
    /// A well-formed name forge does not write today. Rows outlive the code
    /// that wrote them, so it filters like any other name instead of being
    /// refused (and a name nobody wrote is an empty page, as it always was).
    Other(String),
}

impl EventFilter {
    pub fn as_str(&self) -> &str {
        match self {
            EventFilter::Known(event) => event.as_str(),
            EventFilter::Other(name) => name,
        }
    }
}

/// Parses an event name filter: snake_case, like the names forge writes.
pub fn parse_event(event: &str) -> AppResult<EventFilter> {
    let event = event.trim();
    if let Ok(known) = event.parse::<AuditEvent>() {
        return Ok(EventFilter::Known(known));
    }
    if !event.is_empty() && event.len() <= 64 && event.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        Ok(EventFilter::Other(event.to_string()))
    } else {
        Err(AppError::validation(
            "event",
            "must be an event name such as user_disabled",
        ))
    }
}

/// The audit log over the store, with its retention setting.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn Store>,
    clock: Clock,
    audit: AuditConfig,
}

impl AuditLog {
    pub fn new(store: Arc<dyn Store>, clock: Clock, audit: AuditConfig) -> Self {
        Self { store, clock, audit }
    }

    /// One page of the caller's tenant's audit log, newest first.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(
        &self,
        principal: &Principal,
        filter: Filter,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> AppResult<Page<store::AuditEvent>> {
        let limit = paging::limit(limit)?;
        let before = cursor.map(|c| paging::decode_uuid("a", c)).transpose()?;
        let rows = self
            .store
            .list_audit(AuditQuery {
                tenant_id: principal.tenant.id,
                user_id: filter.user_id,
                event: filter.event.map(|e| e.as_str().to_string()),
                before,
                limit: limit + 1,
            })
            .await?;
        Ok(paging::page(rows, limit, |e: &store::AuditEvent| {
            paging::encode("a", &e.id.to_string())
        }))
    }

    /// Deletes every row older than `audit.retention`; returns how many. Runs
    /// from the maintenance loop; a zero retention keeps rows forever.
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self) -> AppResult<u64> {
        let retention = self.audit.retention.as_secs();
        if retention == 0 {
            return Ok(0);
        }
        let before = self
            .clock
            .now()
            .saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
        let mut total = 0;
        loop {
            let n = self.store.purge_audit(before, SWEEP_BATCH).await?;
            total += n;
            if n < u64::from(SWEEP_BATCH) {
                break;
            }
            // Let requests waiting for the writer go first.
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(deleted = total, "audit retention sweep");
        }
        Ok(total)
    }

    /// The sweep for the maintenance loop: failures are logged, not fatal.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_logged(&self) {
        if let Err(e) = self.sweep().await {
            tracing::warn!(error = %e, "audit retention sweep failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::service::test_ports;

    #[tokio::test]
    async fn the_sweep_deletes_only_rows_older_than_the_retention() {
        let store = test_ports::store();
        let clock = test_ports::clock();
        let day = Duration::from_secs(86_400);
        let log = AuditLog::new(store.clone(), clock.clone(), AuditConfig { retention: day });
        let principal = test_ports::principal(&store, &["admin"]).await;
        let rows = |log: AuditLog, principal: Principal| async move {
            log.list(&principal, Filter::default(), None, None)
                .await
                .unwrap()
                .items
                .len()
        };
        let written = rows(log.clone(), principal.clone()).await;
        assert!(written >= 1);

        assert_eq!(log.sweep().await.unwrap(), 0);
        clock.advance(day.as_secs() as i64 + 1);
        assert_eq!(log.sweep().await.unwrap(), written as u64);
        assert_eq!(rows(log.clone(), principal.clone()).await, 0);

        let forever = AuditLog::new(
            store,
            clock,
            AuditConfig {
                retention: Duration::ZERO,
            },
        );
        assert_eq!(forever.sweep().await.unwrap(), 0);
    }

    #[test]
    fn event_filters_name_known_events_and_still_accept_other_names() {
        assert_eq!(parse_event(" login ").ok(), Some(EventFilter::Known(AuditEvent::Login)));
        let other = parse_event("retired_event").ok();
        assert_eq!(other, Some(EventFilter::Other("retired_event".into())));
        assert_eq!(other.map(|e| e.as_str().to_string()).as_deref(), Some("retired_event"));
        for bad in ["", "Login!", "drop table", &"a".repeat(65)] {
            assert!(parse_event(bad).is_err(), "{bad}");
        }
    }
}
