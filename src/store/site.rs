//! The admin site's port: the few reads and the one write the `/admin` pages
//! need that no other port offers: the dashboard's counts, sign-in activity
//! bucketed by hour or day from the audit log, and the rotation of the
//! signing keys in one transaction.
//!
//! It is deliberately small (three methods) so a second backend costs little:
//! the PostgreSQL adapter implements the same three with the same meaning.
//! Invariants every adapter keeps:
//! - Everything about users, sessions, messages and audit rows is filtered by
//!   the tenant id given; the signing keys are global (one keyring per
//!   deployment).
//! - Counting reads indexes only (`migrations/*/V4__admin_site.sql`): the
//!   activity query is a covering range scan of `(tenant_id, event, at)` and
//!   the live-session count a partial index, so the dashboard costs the same
//!   on a large database as on a small one, give or take the rows counted.
//! - A key rotation is atomic: `next` becomes `current`, `current` becomes
//!   `retired`, a new `next` is inserted and the audit row written, or none
//!   of it happens. The age check on `next` runs inside that transaction, so
//!   two rotations racing (a double click, two operators) cannot promote a
//!   key that verifiers have not had time to fetch.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, SigningKeyRecord, StoreResult};
use crate::domain::Timestamp;

/// The dashboard's counts for one tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SiteCounts {
    pub users: u64,
    /// Sessions neither revoked nor expired at `now`.
    pub active_sessions: u64,
    /// Messages waiting for (or leased to) the delivery worker.
    pub pending_messages: u64,
    pub failed_messages: u64,
}

/// Which audit events to count, over which window, in which buckets.
#[derive(Clone, Debug)]
pub struct ActivityQuery {
    pub tenant_id: Uuid,
    /// Start of the first bucket (inclusive).
    pub since: Timestamp,
    /// Bucket width in seconds (3600 for hours, 86400 for days); at least 1.
    pub bucket_secs: i64,
    /// How many buckets: the window ends at `since + buckets * bucket_secs`.
    pub buckets: u32,
    /// Events that count as a successful sign-in.
    pub successes: Vec<&'static str>,
    /// Events that count as a failed sign-in.
    pub failures: Vec<&'static str>,
}

/// One non-empty bucket of an [`ActivityQuery`]; buckets without events are
/// simply absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActivityCount {
    /// 0 for the bucket starting at `since`.
    pub bucket: u32,
    pub successes: u64,
    pub failures: u64,
}

/// What a rotation request found, decided inside the rotation's transaction.
#[derive(Clone, Debug)]
pub enum KeyRotation {
    /// Done; every stored key after the rotation.
    Rotated(Vec<SigningKeyRecord>),
    /// The `next` key was created after `not_after`: too recently published
    /// for cached JWKS documents to know it. Nothing changed.
    NextTooYoung { next_created_at: Timestamp },
    /// There is no `next` key to promote (HS256 deployments, or a damaged
    /// table). Nothing changed.
    NoNextKey,
}

#[async_trait]
pub trait SiteStore: Send + Sync + 'static {
    /// Users, live sessions, pending and failed messages of one tenant.
    async fn site_counts(&self, tenant_id: Uuid, now: Timestamp) -> StoreResult<SiteCounts>;

    /// Counts the query's success and failure events per bucket (only
    /// buckets holding at least one event are returned, in bucket order).
    async fn activity(&self, query: ActivityQuery) -> StoreResult<Vec<ActivityCount>>;

    /// Rotates the signing keys in one transaction: the newest `next` key
    /// becomes `current` (`activated_at = now`), every `current` key becomes
    /// `retired` (`retired_at = now`), `new_next` is inserted as `next`, and
    /// `audit` is written. When `not_after` is given and the `next` key was
    /// created after it, nothing changes ([`KeyRotation::NextTooYoung`]).
    async fn rotate_signing_keys(
        &self,
        new_next: SigningKeyRecord,
        now: Timestamp,
        not_after: Option<Timestamp>,
        audit: NewAuditEvent,
    ) -> StoreResult<KeyRotation>;
}
