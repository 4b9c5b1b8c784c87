//! The cache port: short-lived shared state with a time to live.
//!
//! It holds two kinds of state, kept apart on purpose:
//!
//! - **Security state**: OTP codes (hashed), attempt counters, resend
//!   cooldowns, admin-site sessions and the deny list of revoked sessions and
//!   disabled or deleted users, WebAuthn ceremonies (`get`, `set`,
//!   `set_if_absent`, `delete`, `take`, `put_code`, `try_code`). Only events an attacker cannot mint at will
//!   (a sign-out, a code actually issued, a sign-in) add entries, and
//!   nothing here is ever evicted to make room: an entry leaves when its TTL
//!   ends or when it is deleted. A revocation that could be pushed out by
//!   load would let a signed-out token work again.
//! - **Rate-limit counters** (`count`): keyed by what clients send (their
//!   address, the identifier they name), so an attacker creates as many keys
//!   as it likes. They live in a fixed-size windowed count-min sketch per
//!   budget ([`sketch`]), which never under-counts and never grows, and never
//!   touch the security state's memory.
//!
//! Counters and compare-and-delete are single atomic operations in every
//! adapter, so two instances (or two requests) never both win.

pub mod epoch;
pub mod keys;
pub mod moka;
#[cfg(feature = "postgres")]
pub mod redis;
pub mod sketch;

use std::time::Duration;

use async_trait::async_trait;

pub use keys::{CacheKey, RateBucket};
pub use sketch::Count;

#[derive(Debug, thiserror::Error)]
#[error("cache unavailable: {0}")]
pub struct CacheError(pub String);

pub type CacheResult<T> = Result<T, CacheError>;

/// The outcome of presenting a one-time code ([`Cache::try_code`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Valid,
    /// Wrong, expired, or never issued.
    Invalid,
    /// Too many wrong tries: the code is gone; a new one must be requested.
    Burned,
}

/// What the in-process adapter holds, for tests and operators: the number
/// of security-state entries and the bytes the rate-limit sketches take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    pub security_entries: u64,
    pub rate_limit_bytes: u64,
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    /// Whether any of `keys` is set, in one round trip: the deny list asks
    /// this (of a session and its user) on every authenticated request.
    async fn any_exists(&self, keys: &[&str]) -> CacheResult<bool>;
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<()>;
    /// Sets only if absent; true when this call set it (cooldowns, locks).
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> CacheResult<bool>;
    async fn delete(&self, key: &str) -> CacheResult<()>;
    /// Reads and deletes `key` as one atomic step: of any number of
    /// concurrent takes (on any instance), at most one gets the value. For
    /// single-use state such as a WebAuthn ceremony's challenge, where a
    /// `get` then `delete` would let two racing requests both succeed.
    async fn take(&self, key: &str) -> CacheResult<Option<Vec<u8>>>;
    /// Stores a one-time code's digest under `key` for `ttl`, replacing any
    /// earlier code, its wrong tries, and a burn.
    async fn put_code(&self, key: &str, digest: &[u8], ttl: Duration) -> CacheResult<()>;
    /// Presents a code, as one atomic step (one Lua script in Redis), so
    /// concurrent guesses never get more than `max_attempts` tries between
    /// them: a burned code answers `Burned`; no code answers `Invalid` and
    /// records nothing (guesses at addresses without a code create no
    /// state); the right digest consumes the code (`Valid`, exactly once);
    /// a wrong one counts a try, and the `max_attempts`-th wrong try replaces
    /// the code by a burn mark that lives `burn_ttl` (`Burned`).
    async fn try_code(&self, key: &str, digest: &[u8], max_attempts: u32, burn_ttl: Duration)
    -> CacheResult<CodeCheck>;
    /// A rate-limit counter: counts one hit for `digest` in budget `bucket`
    /// (when `hit`) and returns its count over the last one to two `period`s
    /// (see [`sketch`]). `digest` is a keyed hash of the client's key, never
    /// the key itself; the set of buckets is fixed in code and small.
    async fn count(&self, bucket: RateBucket, digest: &[u8; 32], period: Duration, hit: bool) -> CacheResult<Count>;
    /// The in-process footprint; `None` for a shared cache (it has its own
    /// memory limits; see the README on Redis).
    fn footprint(&self) -> Option<Footprint> {
        None
    }
    /// A round trip for readiness checks.
    async fn ping(&self) -> CacheResult<()>;
}
