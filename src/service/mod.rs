//! Use cases: the product's rules in plain Rust over the ports. Nothing here
//! knows about axum, SQL or Redis; handlers call one function each.

pub mod accounts;
pub mod address;
pub mod audit;
pub mod auth_codes;
pub mod backups;
pub mod challenges;
pub mod clients;
pub mod code_flows;
pub mod codes;
pub mod denylist;
pub mod devices;
pub mod directory;
pub mod factors;
pub mod federation;
pub mod forward_auth;
pub mod import;
pub mod keys;
pub mod limits;
pub mod mfa;
pub mod mfa_policy;
pub mod notices;
pub mod oidc;
pub mod otp;
pub mod paging;
pub mod passkey_factors;
pub mod passkeys;
pub mod proof;
pub mod providers;
pub mod rbac;
pub mod recovery;
pub mod redirects;
pub mod roles;
pub mod sessions;
pub mod settings;
pub mod sign_in;
pub mod site;
pub mod sso;
pub mod tenants;
pub mod webhooks;

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

    /// Sessions over these ports, with a fresh signing key and the default
    /// settings (an issuer set, as the configuration loader would).
    pub async fn sessions(
        store: &Arc<dyn Store>,
        cache: &Arc<dyn Cache>,
        clock: &Clock,
    ) -> crate::service::sessions::Sessions {
        sessions_over(
            store,
            cache,
            clock,
            crate::state::AppState::tenant_cache(&crate::cache::epoch::Epoch::local(), 100),
        )
        .await
    }

    /// [`sessions`] reading the tenant cache `tenants`, to share it with
    /// whoever invalidates it.
    pub async fn sessions_over(
        store: &Arc<dyn Store>,
        cache: &Arc<dyn Cache>,
        clock: &Clock,
        tenants: crate::cache::epoch::EpochCache<String, crate::store::Tenant>,
    ) -> crate::service::sessions::Sessions {
        use crate::service::denylist::DenyList;
        use crate::service::limits::Limits;
        use crate::state::Keys;

        let mut config = crate::config::Config::default();
        config.jwt.issuer = "http://forge.test".to_string();
        let stored = crate::service::keys::ensure_keys(store.as_ref(), clock.now(), &crate::service::keys::ALGORITHMS)
            .await
            .unwrap();
        let keys = Keys::new(crate::service::keys::keyring_from(&config, &stored, clock.now()).unwrap());
        let refresh_key = Arc::new(vec![7u8; 32]);
        let notifier = crate::notify::Notifier::new(&config, store.clone(), clock.clone()).unwrap();
        let devices = crate::service::devices::Devices::new(
            clock.clone(),
            refresh_key.clone(),
            config.rate_limit.device_token_ttl,
        );
        let notices = crate::service::notices::Notices::new(notifier, store.clone(), clock.clone(), devices);
        crate::service::sessions::Sessions::new(
            store.clone(),
            clock.clone(),
            notices,
            keys,
            config.jwt.clone(),
            config.rate_limit.refresh_per_ip,
            refresh_key.clone(),
            tenants,
            Limits::new(cache.clone(), refresh_key, config.rate_limit.clone()),
            DenyList::new(store.clone(), cache.clone(), clock.clone(), config.jwt.clone()),
            config.cache.local_entries,
        )
    }

    /// A fresh user of the `default` tenant holding `roles`, signed in as
    /// far as the use cases can tell.
    pub async fn principal(store: &Arc<dyn Store>, roles: &[&str]) -> crate::service::sessions::Principal {
        use crate::domain::{AuditEvent, RoleName};
        use crate::store::{DEFAULT_TENANT_ID, NewUser};

        let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
        let user_id = uuid::Uuid::new_v4();
        let new = NewUser {
            id: user_id,
            tenant_id: DEFAULT_TENANT_ID,
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            password_hash: None,
            metadata: serde_json::json!({}),
            roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
            now: START,
        };
        let audit = super::RequestMeta::default().audit(DEFAULT_TENANT_ID, START, AuditEvent::UserCreated, None, None);
        store.create_user(new, None, audit).await.unwrap();
        let claims = serde_json::from_value(serde_json::json!({
            "iss": "forge", "aud": "forge", "sub": user_id.to_string(), "sid": uuid::Uuid::new_v4().to_string(),
            "tid": "default", "roles": roles, "iat": START, "exp": START + 900, "jti": "test",
        }))
        .unwrap();
        crate::service::sessions::Principal {
            user_id,
            session_id: uuid::Uuid::new_v4(),
            tenant,
            claims: Arc::new(claims),
            epoch: None,
        }
    }

    /// An operator signed in to the admin site: a fresh `admin` of `default`.
    pub async fn site_admin(store: &Arc<dyn Store>) -> crate::service::site::sessions::SiteAdmin {
        let principal = principal(store, &["admin"]).await;
        let user = store
            .get_user(principal.tenant.id, principal.user_id)
            .await
            .unwrap()
            .unwrap();
        crate::service::site::sessions::SiteAdmin::for_tests(user, principal, true)
    }
}
