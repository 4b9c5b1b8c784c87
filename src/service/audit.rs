//! Reading the audit log and enforcing its retention.
//!
//! Rows are written by the store in the transaction of the change they
//! record (see `store`); this module only reads them, scoped to the caller's
//! token tenant, newest first with a keyset cursor on the UUIDv7 id, and
//! deletes rows older than `audit.retention` in small batches so the sweep
//! never holds the single SQLite writer for long. Rows never hold secrets:
//! writers put only ids, names and outcomes in `detail`.

use uuid::Uuid;

use super::paging::{self, Page};
use crate::error::{AppError, AppResult};
use crate::service::sessions::Principal;
use crate::state::AppState;
use crate::store::{AuditEvent, AuditQuery};

/// Rows deleted per write transaction by the retention sweep.
const SWEEP_BATCH: u32 = 5_000;

/// Filters of `GET /v1/audit`.
#[derive(Default)]
pub struct Filter {
    pub user_id: Option<Uuid>,
    pub event: Option<String>,
}

/// Parses an event name filter: the snake_case names forge writes.
pub fn parse_event(event: &str) -> AppResult<String> {
    let event = event.trim();
    if !event.is_empty() && event.len() <= 64 && event.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        Ok(event.to_string())
    } else {
        Err(AppError::validation(
            "event",
            "must be an event name such as user_disabled",
        ))
    }
}

/// One page of the caller's tenant's audit log, newest first.
pub async fn list(
    state: &AppState,
    principal: &Principal,
    filter: Filter,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> AppResult<Page<AuditEvent>> {
    let limit = paging::limit(limit)?;
    let before = cursor.map(|c| paging::decode_uuid("a", c)).transpose()?;
    let rows = state
        .store
        .list_audit(AuditQuery {
            tenant_id: principal.tenant.id,
            user_id: filter.user_id,
            event: filter.event,
            before,
            limit: limit + 1,
        })
        .await?;
    Ok(paging::page(rows, limit, |e: &AuditEvent| {
        paging::encode("a", &e.id.to_string())
    }))
}

/// Deletes every row older than `audit.retention`; returns how many. Runs
/// from the maintenance loop; a zero retention keeps rows forever.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    let retention = state.config.audit.retention.as_secs();
    if retention == 0 {
        return Ok(0);
    }
    let before = state
        .clock
        .now()
        .saturating_sub(i64::try_from(retention).unwrap_or(i64::MAX));
    let mut total = 0;
    loop {
        let n = state.store.purge_audit(before, SWEEP_BATCH).await?;
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
pub async fn sweep_logged(state: &AppState) {
    if let Err(e) = sweep(state).await {
        tracing::warn!(error = %e, "audit retention sweep failed");
    }
}
