//! The admin site's view of the notification outbox: listing the shown
//! tenant's messages and queueing a failed one again.

use std::sync::Arc;

use uuid::Uuid;

use super::sessions::SiteAdmin;
use crate::clock::Clock;
use crate::domain::AuditEvent;
use crate::error::AppResult;
use crate::service::RequestMeta;
use crate::service::paging::{self, Page};
use crate::store::{OutboxMessage, OutboxStatus, Store};

/// The outbox as the admin site shows it, over the store and the clock.
#[derive(Clone)]
pub struct SiteMessages {
    store: Arc<dyn Store>,
    clock: Clock,
}

impl SiteMessages {
    pub fn new(store: Arc<dyn Store>, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// One page of the shown tenant's outbox, newest first, optionally of one
    /// status. The cursor is bound to this list (`paging` kind `m`).
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id, status = ?status))]
    pub async fn messages(
        &self,
        admin: &SiteAdmin,
        status: Option<OutboxStatus>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> AppResult<Page<OutboxMessage>> {
        let limit = paging::limit(limit)?;
        let before = cursor.map(|c| paging::decode_uuid("m", c)).transpose()?;
        let rows = self.store.list(admin.tenant().id, status, limit + 1, before).await?;
        Ok(paging::page(rows, limit, |m: &OutboxMessage| {
            paging::encode("m", &m.id.to_string())
        }))
    }

    /// Puts a failed message of the shown tenant back in the queue. Returns
    /// false when the store cannot (its code was erased when it failed or
    /// expired, or it is not failed). Audited as `message_resent`.
    #[tracing::instrument(skip_all, fields(tenant_id = %admin.own.tenant.id, user_id = %admin.user.id, site_session_id = %admin.session.id, message_id = %id))]
    pub async fn resend_message(&self, admin: &SiteAdmin, id: Uuid, meta: &RequestMeta) -> AppResult<bool> {
        let tenant_id = admin.tenant().id;
        let now = self.clock.now();
        if !self.store.resend(tenant_id, id, now).await? {
            return Ok(false);
        }
        let mut audit = meta.audit(tenant_id, now, AuditEvent::MessageResent, None, Some(admin.user.id));
        audit.detail = serde_json::json!({ "message_id": id });
        self.store.record_audit(audit).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    #[tokio::test]
    async fn an_empty_outbox_lists_nothing_and_resends_nothing() {
        let store = test_ports::store();
        let admin = test_ports::site_admin(&store).await;
        let messages = SiteMessages::new(store, test_ports::clock());
        let page = messages.messages(&admin, None, None, None).await.unwrap();
        assert!(page.items.is_empty() && page.next_cursor.is_none());
        let resent = messages
            .resend_message(&admin, Uuid::new_v4(), &RequestMeta::default())
            .await
            .unwrap();
        assert!(!resent);
    }
}
