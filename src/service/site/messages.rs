//! The admin site's view of the notification outbox: listing the shown
//! tenant's messages and queueing a failed one again.

use uuid::Uuid;

use super::sessions::SiteAdmin;
use crate::domain::AuditEvent;
use crate::error::AppResult;
use crate::service::RequestMeta;
use crate::service::paging::{self, Page};
use crate::state::AppState;
use crate::store::{OutboxMessage, OutboxStatus};

/// One page of the shown tenant's outbox, newest first, optionally of one
/// status. The cursor is bound to this list (`paging` kind `m`).
#[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id, status = ?status))]
pub async fn messages(
    state: &AppState,
    admin: &SiteAdmin,
    status: Option<OutboxStatus>,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> AppResult<Page<OutboxMessage>> {
    let limit = paging::limit(limit)?;
    let before = cursor.map(|c| paging::decode_uuid("m", c)).transpose()?;
    let rows = state.store.list(admin.tenant().id, status, limit + 1, before).await?;
    Ok(paging::page(rows, limit, |m: &OutboxMessage| {
        paging::encode("m", &m.id.to_string())
    }))
}

/// Puts a failed message of the shown tenant back in the queue. Returns
/// false when the store cannot (its code was erased when it failed or
/// expired, or it is not failed). Audited as `message_resent`.
#[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id, message_id = %id))]
pub async fn resend_message(state: &AppState, admin: &SiteAdmin, id: Uuid, meta: &RequestMeta) -> AppResult<bool> {
    let tenant_id = admin.tenant().id;
    let now = state.clock.now();
    if !state.store.resend(tenant_id, id, now).await? {
        return Ok(false);
    }
    let mut audit = meta.audit(tenant_id, now, AuditEvent::MessageResent, None, Some(admin.user.id));
    audit.detail = serde_json::json!({ "message_id": id });
    state.store.record_audit(audit).await?;
    Ok(true)
}
