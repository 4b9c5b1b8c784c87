//! The deny list: revoked sessions and disabled or deleted users whose access
//! tokens must stop working at once, before they expire.
//!
//! Entries live in the cache for the longest life an access token can still
//! have, so checking a token costs a cache lookup and never a database round
//! trip. The in-process cache is empty after a restart, so start-up refills
//! it from the database ([`warm`]): revoked session rows, disabled users and
//! the tombstones of deleted users (their session rows are gone with them);
//! with Redis it is shared by all instances. Entries are security state: the
//! cache never evicts them to make room for anything (see `cache`).

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::cache::{Cache, CacheKey, CacheResult};
use crate::clock::Clock;
use crate::config::JwtConfig;
use crate::store::Store;

/// The deny list over the cache it lives in and the store it is refilled
/// from; the token lifetimes bound how long an entry must last.
#[derive(Clone)]
pub struct DenyList {
    store: Arc<dyn Store>,
    cache: Arc<dyn Cache>,
    clock: Clock,
    jwt: JwtConfig,
}

impl DenyList {
    pub fn new(store: Arc<dyn Store>, cache: Arc<dyn Cache>, clock: Clock, jwt: JwtConfig) -> Self {
        Self {
            store,
            cache,
            clock,
            jwt,
        }
    }

    fn ttl(&self) -> Duration {
        self.jwt.access_ttl + self.jwt.leeway + Duration::from_secs(60)
    }

    #[tracing::instrument(skip_all, fields(sessions = ids.len()))]
    pub async fn deny_sessions(&self, ids: &[Uuid]) -> CacheResult<()> {
        for id in ids {
            self.cache.set(&CacheKey::deny_session(*id), b"1", self.ttl()).await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn deny_user(&self, id: Uuid) -> CacheResult<()> {
        self.cache.set(&CacheKey::deny_user(id), b"1", self.ttl()).await
    }

    /// Lifts a user's entry (re-enabled). Their old sessions were revoked when
    /// they were disabled and stay denied by session id.
    #[tracing::instrument(skip_all, fields(user_id = %id))]
    pub async fn allow_user(&self, id: Uuid) -> CacheResult<()> {
        self.cache.delete(&CacheKey::deny_user(id)).await
    }

    #[tracing::instrument(skip_all, fields(session_id = %session_id, user_id = %user_id))]
    pub async fn is_denied(&self, session_id: Uuid, user_id: Uuid) -> CacheResult<bool> {
        let (session, user) = (CacheKey::deny_session(session_id), CacheKey::deny_user(user_id));
        self.cache.any_exists(&[session.as_str(), user.as_str()]).await
    }

    /// Refills the deny list after a restart from what the database recorded
    /// within the last access-token lifetime.
    #[tracing::instrument(skip_all)]
    pub async fn warm(&self) -> anyhow::Result<()> {
        let since = self.clock.now() - self.ttl().as_secs() as i64;
        let (sessions, users) = self.store.revoked_since(since).await?;
        self.deny_sessions(&sessions).await?;
        for user in users {
            self.deny_user(user).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    fn deny_list() -> DenyList {
        DenyList::new(
            test_ports::store(),
            test_ports::cache(),
            test_ports::clock(),
            crate::config::Config::default().jwt,
        )
    }

    #[tokio::test]
    async fn a_denied_session_or_user_stays_denied_until_the_user_is_allowed_again() {
        let deny = deny_list();
        let (session, other_session, user) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(!deny.is_denied(session, user).await.unwrap());
        deny.deny_sessions(&[session]).await.unwrap();
        assert!(deny.is_denied(session, user).await.unwrap());
        assert!(!deny.is_denied(other_session, user).await.unwrap());
        deny.deny_user(user).await.unwrap();
        assert!(deny.is_denied(other_session, user).await.unwrap());
        deny.allow_user(user).await.unwrap();
        assert!(!deny.is_denied(other_session, user).await.unwrap());
        // Re-enabling the user does not bring a revoked session back.
        assert!(deny.is_denied(session, user).await.unwrap());
    }

    #[tokio::test]
    async fn warming_from_an_empty_store_denies_nothing() {
        let deny = deny_list();
        deny.warm().await.unwrap();
        assert!(!deny.is_denied(Uuid::new_v4(), Uuid::new_v4()).await.unwrap());
    }
}
