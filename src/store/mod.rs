//! The storage port.
//!
//! Each [`Store`] method is one unit of work of a use case: the adapter runs
//! it on one connection, in one transaction, in one blocking hop, and writes
//! its audit row in that same transaction, so an action and its audit record
//! land together or not at all. Every method that touches user data takes a
//! tenant id; there is no way to read a user without naming its tenant.
//! Driver errors are mapped to the neutral [`StoreError`].

pub mod accounts;
pub mod backup;
pub mod clients;
pub mod directory;
pub mod factors;
pub mod import;
pub mod outbox;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod providers;
pub mod records;
mod rows;
pub mod site;
pub mod sql;
pub mod sqlite;
pub mod webhooks;

use uuid::Uuid;

pub use accounts::*;
pub use clients::*;
pub use directory::*;
pub use factors::*;
pub use import::*;
pub use outbox::*;
pub use providers::*;
pub use records::*;
pub use site::*;
pub use webhooks::{
    Delivery, DeliveryStatus, DueDelivery, NewWebhook, Outcome as DeliveryOutcome, Replay, Webhook, WebhookPatch,
    WebhookStore,
};

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

/// Every port a backend implements; the application holds an `Arc<dyn Store>`.
/// Each area's methods live in their own trait (and their own file per
/// backend) so the areas can grow independently.
pub trait Store:
    AccountStore
    + ClientStore
    + DirectoryStore
    + FactorStore
    + ImportStore
    + OutboxStore
    + ProviderStore
    + SiteStore
    + WebhookStore
{
}

impl<
    T: AccountStore
        + ClientStore
        + DirectoryStore
        + FactorStore
        + ImportStore
        + OutboxStore
        + ProviderStore
        + SiteStore
        + WebhookStore,
> Store for T
{
}
