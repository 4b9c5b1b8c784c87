//! Use cases: the product's rules in plain Rust over the ports. Nothing here
//! knows about axum, SQL or Redis; handlers call one function each.

pub mod accounts;
pub mod address;
pub mod audit;
pub mod codes;
pub mod denylist;
pub mod devices;
pub mod directory;
pub mod keys;
pub mod limits;
pub mod otp;
pub mod paging;
pub mod proof;
pub mod rbac;
pub mod recovery;
pub mod roles;
pub mod sessions;
pub mod settings;
pub mod site;
pub mod tenants;

use uuid::Uuid;

use crate::domain::AuditEvent;
use crate::store::NewAuditEvent;

/// Who is asking, as far as the audit log cares.
#[derive(Clone, Debug, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// A device token the client presented (see [`devices`]); only password
    /// sign-in reads it.
    pub device_token: Option<String>,
}

impl RequestMeta {
    pub fn audit(
        &self,
        tenant_id: Uuid,
        at: i64,
        event: AuditEvent,
        user_id: Option<Uuid>,
        actor_id: Option<Uuid>,
    ) -> NewAuditEvent {
        NewAuditEvent {
            tenant_id,
            at,
            event,
            user_id,
            actor_id,
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            detail: serde_json::json!({}),
        }
    }
}

/// Runs a `spawn_blocking`-free CPU check on a detached task; used for zxcvbn,
/// which takes milliseconds on long inputs and must not stall a runtime worker.
pub(crate) async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow::anyhow!("blocking task failed: {e}"))
}

/// The ports a use case is built from, for unit tests that need no router:
/// a fresh in-memory SQLite store, the in-process cache and a manual clock.
#[cfg(test)]
pub(crate) mod test_ports {
    use std::sync::Arc;

    use crate::cache::Cache;
    use crate::cache::moka::MokaStore;
    use crate::clock::Clock;
    use crate::store::Store;
    use crate::store::sqlite::SqliteStore;

    pub const START: i64 = 1_700_000_000;

    pub fn store() -> Arc<dyn Store> {
        Arc::new(SqliteStore::open("sqlite::memory:", 2).expect("in-memory store"))
    }

    pub fn cache() -> Arc<dyn Cache> {
        Arc::new(MokaStore::new())
    }

    pub fn clock() -> Clock {
        Clock::manual(START)
    }
}
