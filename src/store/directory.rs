//! The directory port: who is in a tenant and what they may do. Users listed
//! and searched, roles and their assignment, tenants and their settings,
//! and reading and pruning the audit log.
//!
//! Invariants every adapter keeps:
//! - Tenant isolation lives here, not in handlers: every method that touches
//!   users, roles or audit rows takes a tenant id and filters by it, so a
//!   caller holding another tenant's id simply finds nothing (`NotFound` or
//!   an empty page), exactly as if the row did not exist.
//! - Every change writes its audit row in the same transaction.
//! - A built-in role (`builtin = 1`, the `admin` role each tenant is born
//!   with) is never updated or deleted: the statements themselves carry
//!   `builtin = 0`, whatever the service checked before.
//! - Listing is keyset pagination over an index, never `OFFSET`: a page costs
//!   the same on the first and the ten-thousandth page, and rows inserted
//!   while a client walks the list cause neither duplicates nor gaps.

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, NewUser, StoreResult, Tenant, User};
use crate::domain::settings::TenantSettings;
use crate::domain::{Permission, RoleName, TenantSlug, Timestamp};

/// A role of one tenant and the permission strings it grants.
#[derive(Clone, Debug)]
pub struct Role {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub permissions: Vec<String>,
    /// Built-in roles (`admin`) cannot be changed or deleted.
    pub builtin: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct NewRole {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: RoleName,
    pub permissions: Vec<Permission>,
    pub now: Timestamp,
}

/// Which users a page lists, and where it resumes. Each variant walks one
/// index in its own order, so the sort key is also the keyset cursor.
#[derive(Clone, Debug)]
pub enum UserSeek {
    /// Every user in creation order (ids are UUIDv7), after `after`.
    All { after: Option<Uuid> },
    /// Users whose (lowercased) email starts with `prefix`, in email order,
    /// after the email `after`. Emails are unique per tenant, so the email
    /// alone is a stable cursor.
    EmailPrefix { prefix: String, after: Option<String> },
    /// Users whose E.164 phone starts with `prefix`, in phone order.
    PhonePrefix { prefix: String, after: Option<String> },
}

#[derive(Clone, Debug)]
pub struct UserQuery {
    pub tenant_id: Uuid,
    pub seek: UserSeek,
    /// How many rows to return at most.
    pub limit: u32,
}

/// A stored audit row.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub at: Timestamp,
    pub event: String,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

/// Newest first, optionally filtered, resuming before the id `before`.
#[derive(Clone, Debug)]
pub struct AuditQuery {
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    pub event: Option<String>,
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// A tenant to create, with its built-in `admin` role and optionally its
/// first administrator (whose `roles` must be exactly `[admin]`).
#[derive(Clone, Debug)]
pub struct NewTenant {
    pub id: Uuid,
    pub slug: TenantSlug,
    pub name: String,
    pub now: Timestamp,
    pub admin: Option<NewUser>,
    /// The parts of its settings chosen at creation (e.g. its signup policy).
    pub settings: TenantSettings,
}

/// What a tenant deletion took with it that the caller must still act on.
#[derive(Clone, Debug)]
pub struct DeletedTenant {
    pub tenant: Tenant,
    /// Sessions that were live: their access tokens go on the deny list.
    pub live_sessions: Vec<Uuid>,
}

#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    // ---- users ----
    /// One page of a tenant's users in the order of `query.seek`.
    async fn list_users(&self, query: UserQuery) -> StoreResult<Vec<User>>;

    // ---- roles ----
    async fn list_roles(&self, tenant_id: Uuid) -> StoreResult<Vec<Role>>;
    async fn get_role(&self, tenant_id: Uuid, name: &str) -> StoreResult<Option<Role>>;
    /// Conflict{name} when the tenant has a role of that name.
    async fn create_role(&self, role: NewRole, audit: NewAuditEvent) -> StoreResult<Role>;
    /// Replaces the permissions of a role that is not built in; NotFound
    /// when there is no such role or it is built in.
    async fn set_role_permissions(
        &self,
        tenant_id: Uuid,
        name: &str,
        permissions: Vec<Permission>,
        audit: NewAuditEvent,
    ) -> StoreResult<Role>;
    /// Deletes a role that is not built in (its assignments go with it) and
    /// returns the users who held it; NotFound when absent or built in.
    async fn delete_role(&self, tenant_id: Uuid, name: &str, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>>;
    /// Gives the user the role; true when it was not held before (the audit
    /// row is written only then). NotFound when the user or role is absent.
    async fn assign_role(&self, tenant_id: Uuid, user_id: Uuid, role: &str, audit: NewAuditEvent) -> StoreResult<bool>;
    /// Takes the role away; true when it was held (audited only then).
    /// NotFound when the user or role is absent.
    async fn remove_role(&self, tenant_id: Uuid, user_id: Uuid, role: &str, audit: NewAuditEvent) -> StoreResult<bool>;

    // ---- tenants ----
    /// Tenants in creation order after `after` (the `default` tenant first).
    async fn list_tenants(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<Tenant>>;
    /// Creates the tenant, its built-in `admin` role and, when asked, its
    /// first administrator; writes every audit row given. Conflict{slug}.
    async fn create_tenant(&self, new: NewTenant, audit: Vec<NewAuditEvent>) -> StoreResult<(Tenant, Option<User>)>;
    /// Deletes a tenant other than `default` with everything it owns (users,
    /// sessions, roles, audit rows cascade). NotFound for `default` too.
    async fn delete_tenant(&self, slug: &str, audit: NewAuditEvent) -> StoreResult<DeletedTenant>;
    /// The parts of a tenant's settings that were ever set; None when the
    /// tenant does not exist.
    async fn tenant_settings(&self, tenant_id: Uuid) -> StoreResult<Option<TenantSettings>>;
    /// Replaces, in one transaction, every part that `parts` holds (other
    /// parts stay as they are) and writes the audit rows; returns the whole
    /// stored settings afterwards. NotFound when the tenant is gone.
    async fn update_tenant_settings(
        &self,
        tenant_id: Uuid,
        parts: TenantSettings,
        audit: Vec<NewAuditEvent>,
    ) -> StoreResult<TenantSettings>;

    // ---- audit ----
    async fn list_audit(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>>;
    /// Deletes at most `batch` rows older than `before`; returns how many.
    /// Small batches keep the single writer free for requests.
    async fn purge_audit(&self, before: Timestamp, batch: u32) -> StoreResult<u64>;
}
