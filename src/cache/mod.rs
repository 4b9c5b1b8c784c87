//! The cache port: short-lived shared state with a time to live.
//!
//! It holds what must expire by itself and, with several instances, be shared
//! by all of them: OTP codes (hashed), attempt counters, resend cooldowns,
//! rate-limit budgets and the deny list of revoked sessions and disabled
//! users. Counters and compare-and-delete are single atomic operations in
//! every adapter, so two instances (or two requests) never both win.

pub mod moka;
#[cfg(feature = "postgres")]
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

pub type CacheResult<T> = Result<T, CacheError>;

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()>;
    /// Sets only if absent; true when this call set it (cooldowns, locks).
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool>;
    async fn delete(&self, key: &str) -> CacheResult<()>;
    /// Deletes the key only if it holds `expected`; true when this call
    /// deleted it. This is how a one-time code is consumed exactly once.
    async fn take_if_equals(&self, key: &str, expected: &[u8]) -> CacheResult<bool>;
    /// Increments a counter, creating it with `ttl` (a fixed window) when
    /// absent; returns the new count and the seconds left in its window.
    async fn incr(&self, key: &str, ttl: Duration) -> CacheResult<(u64, u64)>;
    /// A round trip for readiness checks.
    async fn ping(&self) -> CacheResult<()>;
}
