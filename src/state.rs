//! The application state: every port and shared service behind an `Arc`,
//! passed to handlers as axum `State`. Nothing here is global, so two servers
//! in one test process never see each other.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cache::Cache;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::jwt::{AccessClaims, Keyring};
use crate::crypto::password::{PasswordHasher, PasswordPolicy};
use crate::http::metrics::Metrics;
use crate::store::{Store, Tenant};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<dyn Cache>,
    pub passwords: PasswordHasher,
    pub policy: Arc<PasswordPolicy>,
    pub keys: Keys,
    pub clock: Clock,
    pub metrics: Arc<Metrics>,
    pub notifier: crate::notify::Notifier,
    /// Access tokens whose signature was already checked, keyed by the
    /// token's SHA-256, so the forward-auth hot path skips the ~70 µs Ed25519
    /// verification. Entries never outlive the token (`exp` is rechecked) and
    /// revocation is checked separately on every request.
    pub verified_tokens: moka::sync::Cache<[u8; 32], Arc<AccessClaims>>,
    /// User id to current roles and permissions; see `service::rbac`.
    pub access: moka::sync::Cache<uuid::Uuid, Arc<crate::store::Access>>,
    /// Tenant slug to tenant; invalidated when a tenant is deleted.
    pub tenants: moka::sync::Cache<String, Tenant>,
    /// Derives a refresh token's successor from the token itself, so a retry
    /// inside the grace window gets the same successor with nothing stored
    /// in plaintext.
    pub refresh_key: Arc<Vec<u8>>,
}

impl AppState {
    pub fn verified_token_cache(ttl: Duration) -> moka::sync::Cache<[u8; 32], Arc<AccessClaims>> {
        moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(ttl)
            .build()
    }

    pub fn access_cache() -> moka::sync::Cache<uuid::Uuid, Arc<crate::store::Access>> {
        moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(30))
            .build()
    }

    pub fn tenant_cache() -> moka::sync::Cache<String, Tenant> {
        moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(60))
            .build()
    }
}

/// The signing keyring, swapped whole on rotation.
#[derive(Clone)]
pub struct Keys(Arc<RwLock<Arc<Keyring>>>);

impl Keys {
    pub fn new(keyring: Keyring) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(keyring))))
    }

    pub fn current(&self) -> Arc<Keyring> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn replace(&self, keyring: Keyring) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keyring);
    }
}
