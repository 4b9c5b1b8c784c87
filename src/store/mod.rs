//! The storage port.
//!
//! Each [`Store`] method is one unit of work of a use case: the adapter runs
//! it on one connection, in one transaction, in one blocking hop, and writes
//! its audit row in that same transaction, so an action and its audit record
//! land together or not at all. Every method that touches user data takes a
//! tenant id; there is no way to read a user without naming its tenant.
//! Driver errors are mapped to the neutral [`StoreError`].

pub mod admin;
pub mod outbox;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "postgres")]
mod postgres_admin;
#[cfg(feature = "postgres")]
mod postgres_site;
pub mod records;
// Used by the areas as they move onto the SQL layer, one commit each.
#[allow(dead_code, unused_imports)]
mod rows;
pub mod site;
pub mod sql;
pub mod sqlite;
mod sqlite_admin;
mod sqlite_site;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::{Identifier, Timestamp};
pub use admin::*;
pub use outbox::*;
pub use records::*;
pub use site::*;

/// The fixed id of the `default` tenant (created by the first migration).
pub const DEFAULT_TENANT_ID: Uuid = Uuid::from_u128(0x00000000_0000_7000_8000_000000000000);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique constraint failed; `field` names the column users know it by.
    #[error("{field} already exists")]
    Conflict { field: &'static str },
    /// The database cannot be reached right now (503, retry later).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What a refresh-token rotation found. The store decides it atomically; the
/// service only maps it to a response.
#[derive(Debug)]
pub enum Rotation {
    /// The presented token was live and is now rotated; the successor is stored.
    Rotated { session: Session, user: User },
    /// The token was rotated within the grace window and its successor is
    /// still live: the caller gets that same successor again.
    WithinGrace { session: Session, user: User },
    /// The token was already rotated outside the grace window: the session is
    /// now revoked (and the event audited in the same transaction).
    ReuseDetected { session_id: Uuid, user_id: Uuid },
    /// Unknown, expired, or its session is revoked or its user disabled.
    Invalid,
}

/// Every port a backend implements; the application holds an `Arc<dyn Store>`.
/// Each area's methods live in their own trait (and their own file per
/// backend) so the areas can grow independently.
pub trait Store: AccountStore + AdminStore + OutboxStore + SiteStore {}

impl<T: AccountStore + AdminStore + OutboxStore + SiteStore> Store for T {}

/// Tenants, users, credentials, sessions, keys and audit writes.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// A cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Connection pool state for `/metrics`: (open, idle).
    fn pool_state(&self) -> (u32, u32);

    // ---- tenants ----
    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>>;

    // ---- users and credentials ----
    /// Creates the user with its password, roles and (optionally) its first
    /// session, and writes the audit row. Conflict{email|phone} when taken.
    async fn create_user(&self, new: NewUser, session: Option<NewSession>, audit: NewAuditEvent) -> StoreResult<User>;
    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>>;
    /// The user and their password hash (if they have one) for a sign-in.
    async fn find_for_login(
        &self,
        tenant_id: Uuid,
        identifier: &Identifier,
    ) -> StoreResult<Option<(User, Option<String>)>>;
    /// Records a successful sign-in: new session, last_sign_in_at, optional
    /// password rehash, audit row. Returns the updated user.
    async fn sign_in(&self, tenant_id: Uuid, user_id: Uuid, sign_in: SignIn, audit: NewAuditEvent)
    -> StoreResult<User>;
    /// The user's password hash, if they have a password.
    async fn password_hash(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<String>>;
    /// Applies the patch; a new password or `disabled: true` also bumps
    /// the credential epoch in the same transaction.
    async fn update_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        patch: UserPatch,
        audit: NewAuditEvent,
    ) -> StoreResult<User>;
    /// Deletes the user (sessions and credentials cascade); returns the ids of
    /// the sessions that were live so the caller can deny their access tokens.
    async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>>;

    /// Current roles and permissions of a user; None if the user is gone.
    async fn access_of(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<Access>>;

    // ---- sessions and refresh tokens ----
    async fn rotate_refresh(&self, req: RotateRefresh) -> StoreResult<Rotation>;
    async fn session_by_refresh(&self, tenant_id: Uuid, token_hash: &str) -> StoreResult<Option<Session>>;
    async fn list_sessions(&self, tenant_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<Vec<Session>>;
    /// Revokes one session of the user at `now`; false if it was not theirs
    /// or not live. (`now` is stored: the deny list is refilled from it.)
    async fn revoke_session(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<bool>;
    /// Signs the user out everywhere: revokes all live sessions except
    /// `keep` and bumps the user's credential epoch (which ends their
    /// admin-site sessions) in one transaction; returns the revoked ids.
    /// Callers should use `service::sessions::sign_out_everywhere`, which
    /// also puts the revoked sessions on the deny list.
    async fn revoke_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<Vec<Uuid>>;
    /// Sessions revoked and users disabled since `since`, to rebuild the
    /// in-memory deny list after a restart.
    async fn revoked_since(&self, since: Timestamp) -> StoreResult<(Vec<Uuid>, Vec<Uuid>)>;

    // ---- keys and server secrets ----
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Inserts a key unless one in the same state exists already (first start
    /// of several instances at once creates exactly one). Returns all keys.
    async fn insert_signing_key_if_absent(&self, key: SigningKeyRecord) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Returns the named secret, creating it from `candidate` if absent.
    async fn server_secret(&self, name: &str, candidate: Vec<u8>, now: Timestamp) -> StoreResult<Vec<u8>>;

    // ---- audit ----
    async fn record_audit(&self, event: NewAuditEvent) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<u64>;
}
