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

use std::time::Duration;

use uuid::Uuid;

use crate::cache::{CacheKey, CacheResult};
use crate::state::AppState;

fn ttl(state: &AppState) -> Duration {
    state.config.jwt.access_ttl + state.config.jwt.leeway + Duration::from_secs(60)
}

#[tracing::instrument(skip_all, fields(sessions = ids.len()))]
pub async fn deny_sessions(state: &AppState, ids: &[Uuid]) -> CacheResult<()> {
    for id in ids {
        state.cache.set(&CacheKey::deny_session(*id), b"1", ttl(state)).await?;
    }
    Ok(())
}

#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn deny_user(state: &AppState, id: Uuid) -> CacheResult<()> {
    state.cache.set(&CacheKey::deny_user(id), b"1", ttl(state)).await
}

/// Lifts a user's entry (re-enabled). Their old sessions were revoked when
/// they were disabled and stay denied by session id.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn allow_user(state: &AppState, id: Uuid) -> CacheResult<()> {
    state.cache.delete(&CacheKey::deny_user(id)).await
}

#[tracing::instrument(skip_all, fields(session_id = %session_id, user_id = %user_id))]
pub async fn is_denied(state: &AppState, session_id: Uuid, user_id: Uuid) -> CacheResult<bool> {
    Ok(state.cache.get(&CacheKey::deny_session(session_id)).await?.is_some()
        || state.cache.get(&CacheKey::deny_user(user_id)).await?.is_some())
}

/// Refills the deny list after a restart from what the database recorded
/// within the last access-token lifetime.
#[tracing::instrument(skip_all)]
pub async fn warm(state: &AppState) -> anyhow::Result<()> {
    let since = state.clock.now() - ttl(state).as_secs() as i64;
    let (sessions, users) = state.store.revoked_since(since).await?;
    deny_sessions(state, &sessions).await?;
    for user in users {
        deny_user(state, user).await?;
    }
    Ok(())
}
