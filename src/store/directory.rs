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
//! - A built-in role (`builtin = TRUE`, the `admin` role each tenant is born
//!   with) is never updated or deleted: the statements themselves carry
//!   `builtin = FALSE`, whatever the service checked before.
//! - Listing is keyset pagination over an index, never `OFFSET`: a page costs
//!   the same on the first and the ten-thousandth page, and rows inserted
//!   while a client walks the list cause neither duplicates nor gaps.
//!
//! Written once for both databases (see `sql.rs`). Each listing walks an
//! index in its own order and resumes with `key > cursor`: all users by
//! `users_tenant_id (tenant_id, id)`, an email prefix by
//! `users_tenant_email (tenant_id, email)` as the range
//! `prefix <= email < prefix || U+10FFFF` (no `LIKE`, so no wildcard to
//! escape and the index is always usable), phones likewise. The range
//! compares bytes on both databases: SQLite's default `BINARY` collation,
//! and PostgreSQL's key columns are declared `COLLATE "C"` by its first
//! migration, so a prefix matches the same rows in the same order on each.
//! [`SqliteStore::explain_directory_queries`] shows SQLite's plans of these
//! very statements, and the scale test asserts them on a million users.
//!
//! The one dialect pair: PostgreSQL reads the row a change depends on `FOR
//! UPDATE` (a role being deleted, a tenant being deleted, the settings
//! being overlaid), so a concurrent writer waits instead of slipping in
//! between; SQLite's single writer already runs each change alone.
//!
//! Longer than most files on purpose: the port, its one implementation and
//! SQLite's plan check stay together, so a statement and the invariant it
//! keeps are read side by side.

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{TENANT_COLUMNS, insert_audit, load_user, tenant_from_row, user_columns, user_from_row};
use super::sql::{Conn, Driver, Row, Value, args, to_sqlite};
use super::sqlite::SqliteStore;
use super::{DEFAULT_TENANT_ID, NewAuditEvent, NewUser, StoreError, StoreResult, Tenant, User};
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
    /// Up to `limit` enabled users of the tenant holding the role named
    /// `role`, oldest first (whom to tell of something only administrators
    /// can fix).
    async fn users_with_role(&self, tenant_id: Uuid, role: &str, limit: u32) -> StoreResult<Vec<User>>;

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

/// One page of a tenant's users: `$1` is the tenant, the condition binds
/// `$2` on (`$3` too for a prefix's upper bound), the last parameter is the
/// limit.
macro_rules! users_page {
    ($condition:literal, $order:literal, $limit:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            " FROM users u WHERE u.tenant_id = $1 AND ",
            $condition,
            " ORDER BY ",
            $order,
            " LIMIT ",
            $limit
        )
    };
}
const LIST_ALL: &str = users_page!("u.id > $2", "u.id", "$3");
const WITH_ROLE: &str = users_page!(
    "u.disabled = $3 AND u.id IN (SELECT ur.user_id FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
     WHERE ur.tenant_id = $1 AND r.name = $2)",
    "u.id",
    "$4"
);
const EMAIL_FROM: &str = users_page!("u.email >= $2 AND u.email < $3", "u.email", "$4");
const EMAIL_AFTER: &str = users_page!("u.email > $2 AND u.email < $3", "u.email", "$4");
const PHONE_FROM: &str = users_page!("u.phone >= $2 AND u.phone < $3", "u.phone", "$4");
const PHONE_AFTER: &str = users_page!("u.phone > $2 AND u.phone < $3", "u.phone", "$4");

const ROLE_COLUMNS: &str = "id, tenant_id, name, permissions, builtin, created_at, updated_at";
const AUDIT_COLUMNS: &str = "id, tenant_id, at, event, user_id, actor_id, ip, user_agent, detail";

/// Above every character an email or phone can continue a prefix with.
const PREFIX_END: char = '\u{10FFFF}';

fn role_from_row(row: &Row) -> StoreResult<Role> {
    Ok(Role {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        name: row.get("name")?,
        permissions: row.json("permissions")?,
        builtin: row.get("builtin")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn audit_from_row(row: &Row) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        at: row.get("at")?,
        event: row.get("event")?,
        user_id: row.get("user_id")?,
        actor_id: row.get("actor_id")?,
        ip: row.get("ip")?,
        user_agent: row.get("user_agent")?,
        detail: row.json("detail")?,
    })
}

fn permissions_json(permissions: &[Permission]) -> serde_json::Value {
    serde_json::Value::from(permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>())
}

fn user_exists(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
    c.query_value(
        "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2)",
        &args![tenant_id, user_id],
    )
}

fn role_id(c: &mut dyn Conn, tenant_id: Uuid, name: &str) -> StoreResult<Option<Uuid>> {
    c.query_opt_map(
        "SELECT id FROM roles WHERE tenant_id = $1 AND name = $2",
        &args![tenant_id, name],
        |r| r.at(0),
    )
}

/// Gives or takes one role of one user with `change` (which gets the role's
/// id and returns the rows it changed); true when something changed, and
/// only then is the user's row touched and the audit row written. NotFound
/// when the user or the role is not the tenant's.
fn change_assignment(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    role: &str,
    audit: &NewAuditEvent,
    change: impl FnOnce(&mut dyn Conn, Uuid) -> StoreResult<u64>,
) -> StoreResult<bool> {
    if !user_exists(c, tenant_id, user_id)? {
        return Err(StoreError::NotFound);
    }
    let role_id = role_id(c, tenant_id, role)?.ok_or(StoreError::NotFound)?;
    let changed = change(c, role_id)? > 0;
    if changed {
        c.execute(
            "UPDATE users SET updated_at = $3 WHERE tenant_id = $1 AND id = $2",
            &args![tenant_id, user_id, audit.at],
        )?;
        insert_audit(c, audit)?;
    }
    Ok(changed)
}

/// The statement and lower bound of one page: the cursor when it lies inside
/// the prefix range, else the prefix itself (inclusive).
fn prefix_page<'a>(
    from: &'static str,
    after_sql: &'static str,
    prefix: &'a str,
    after: Option<&'a str>,
) -> (&'static str, &'a str) {
    match after {
        Some(a) if a >= prefix => (after_sql, a),
        _ => (from, prefix),
    }
}

/// The first administrator of a new tenant: the user row, the password and
/// the tenant's `admin` role, in the caller's transaction.
fn insert_tenant_admin(c: &mut dyn Conn, admin_role: Uuid, user: &NewUser) -> StoreResult<()> {
    c.execute(
        "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        &args![
            user.id,
            user.tenant_id,
            user.email.as_ref().map(|e| e.as_str()),
            user.email_verified,
            user.phone.as_ref().map(|p| p.as_str()),
            user.phone_verified,
            &user.metadata,
            user.now,
        ],
    )?;
    if let Some(hash) = &user.password_hash {
        c.execute(
            "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES ($1, $2, $3, $4)",
            &args![user.id, user.tenant_id, hash, user.now],
        )?;
    }
    c.execute(
        "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES ($1, $2, $3, $4)",
        &args![user.id, admin_role, user.tenant_id, user.now],
    )?;
    Ok(())
}

#[async_trait]
impl<D: Driver> DirectoryStore for D {
    async fn users_with_role(&self, tenant_id: Uuid, role: &str, limit: u32) -> StoreResult<Vec<User>> {
        let role = role.to_owned();
        self.read(move |c| c.query_map(WITH_ROLE, &args![tenant_id, &role, false, limit], user_from_row))
            .await
    }

    async fn list_users(&self, query: UserQuery) -> StoreResult<Vec<User>> {
        self.read(move |c| match &query.seek {
            UserSeek::All { after } => {
                let after = after.map(|a| a.to_string()).unwrap_or_default();
                c.query_map(LIST_ALL, &args![query.tenant_id, after, query.limit], user_from_row)
            }
            UserSeek::EmailPrefix { prefix, after } | UserSeek::PhonePrefix { prefix, after } => {
                let (from, after_sql) = match &query.seek {
                    UserSeek::EmailPrefix { .. } => (EMAIL_FROM, EMAIL_AFTER),
                    _ => (PHONE_FROM, PHONE_AFTER),
                };
                let (sql, lower) = prefix_page(from, after_sql, prefix, after.as_deref());
                let upper = format!("{prefix}{PREFIX_END}");
                c.query_map(sql, &args![query.tenant_id, lower, upper, query.limit], user_from_row)
            }
        })
        .await
    }

    async fn list_roles(&self, tenant_id: Uuid) -> StoreResult<Vec<Role>> {
        self.read(move |c| {
            let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = $1 ORDER BY name");
            c.query_map(&sql, &args![tenant_id], role_from_row)
        })
        .await
    }

    async fn get_role(&self, tenant_id: Uuid, name: &str) -> StoreResult<Option<Role>> {
        let name = name.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = $1 AND name = $2");
            c.query_opt_map(&sql, &args![tenant_id, &name], role_from_row)
        })
        .await
    }

    async fn create_role(&self, role: NewRole, audit: NewAuditEvent) -> StoreResult<Role> {
        self.write(move |c| {
            let sql = format!(
                "INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, FALSE, $5, $5) RETURNING {ROLE_COLUMNS}"
            );
            let params = args![
                role.id,
                role.tenant_id,
                role.name.as_str(),
                permissions_json(&role.permissions),
                role.now,
            ];
            let created = role_from_row(&c.query_one(&sql, &params)?)?;
            insert_audit(c, &audit)?;
            Ok(created)
        })
        .await
    }

    async fn set_role_permissions(
        &self,
        tenant_id: Uuid,
        name: &str,
        permissions: Vec<Permission>,
        audit: NewAuditEvent,
    ) -> StoreResult<Role> {
        let name = name.to_owned();
        self.write(move |c| {
            let sql = format!(
                "UPDATE roles SET permissions = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND name = $2 AND builtin = FALSE RETURNING {ROLE_COLUMNS}"
            );
            let params = args![tenant_id, &name, permissions_json(&permissions), audit.at];
            let updated = c
                .query_opt_map(&sql, &params, role_from_row)?
                .ok_or(StoreError::NotFound)?;
            insert_audit(c, &audit)?;
            Ok(updated)
        })
        .await
    }

    async fn delete_role(&self, tenant_id: Uuid, name: &str, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>> {
        let name = name.to_owned();
        self.write(move |c| {
            // FOR UPDATE: an assignment racing the deletion waits for it and
            // then finds no role, instead of slipping in between.
            let sql = c.pick(
                "SELECT id FROM roles WHERE tenant_id = $1 AND name = $2 AND builtin = FALSE",
                "SELECT id FROM roles WHERE tenant_id = $1 AND name = $2 AND builtin = FALSE FOR UPDATE",
            );
            let id: Uuid = c
                .query_opt_map(sql, &args![tenant_id, &name], |r| r.at(0))?
                .ok_or(StoreError::NotFound)?;
            let holders = c.query_ids("SELECT user_id FROM user_roles WHERE role_id = $1", &args![id])?;
            c.execute(
                "DELETE FROM roles WHERE id = $1 AND tenant_id = $2 AND builtin = FALSE",
                &args![id, tenant_id],
            )?;
            insert_audit(c, &audit)?;
            Ok(holders)
        })
        .await
    }

    async fn assign_role(&self, tenant_id: Uuid, user_id: Uuid, role: &str, audit: NewAuditEvent) -> StoreResult<bool> {
        let role = role.to_owned();
        self.write(move |c| {
            change_assignment(c, tenant_id, user_id, &role, &audit, |c, role_id| {
                c.execute(
                    "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, role_id) DO NOTHING",
                    &args![user_id, role_id, tenant_id, audit.at],
                )
            })
        })
        .await
    }

    async fn remove_role(&self, tenant_id: Uuid, user_id: Uuid, role: &str, audit: NewAuditEvent) -> StoreResult<bool> {
        let role = role.to_owned();
        self.write(move |c| {
            change_assignment(c, tenant_id, user_id, &role, &audit, |c, role_id| {
                c.execute(
                    "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2 AND tenant_id = $3",
                    &args![user_id, role_id, tenant_id],
                )
            })
        })
        .await
    }

    async fn list_tenants(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<Tenant>> {
        self.read(move |c| {
            let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id > $1 ORDER BY id LIMIT $2");
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            c.query_map(&sql, &args![after, limit], tenant_from_row)
        })
        .await
    }

    async fn create_tenant(&self, new: NewTenant, audit: Vec<NewAuditEvent>) -> StoreResult<(Tenant, Option<User>)> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO tenants (id, slug, name, created_at, settings) VALUES ($1, $2, $3, $4, $5)",
                &args![new.id, new.slug.as_str(), &new.name, new.now, new.settings.to_json()],
            )?;
            let admin_role = Uuid::now_v7();
            c.execute(
                "INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at) \
                 VALUES ($1, $2, $3, '[\"*\"]', TRUE, $4, $4)",
                &args![admin_role, new.id, RoleName::ADMIN, new.now],
            )?;
            let admin = match &new.admin {
                None => None,
                Some(user) => {
                    insert_tenant_admin(c, admin_role, user)?;
                    load_user(c, new.id, user.id)?
                }
            };
            for event in &audit {
                insert_audit(c, event)?;
            }
            let tenant = Tenant {
                id: new.id,
                slug: new.slug.clone(),
                name: new.name.clone(),
                created_at: new.now,
            };
            Ok((tenant, admin))
        })
        .await
    }

    async fn delete_tenant(&self, slug: &str, audit: NewAuditEvent) -> StoreResult<DeletedTenant> {
        let slug = slug.to_owned();
        self.write(move |c| {
            let sql = format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1 AND id <> $2{}",
                c.pick("", " FOR UPDATE")
            );
            let tenant = c
                .query_opt_map(&sql, &args![&slug, DEFAULT_TENANT_ID], tenant_from_row)?
                .ok_or(StoreError::NotFound)?;
            let live_sessions = c.query_ids(
                "SELECT id FROM sessions WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                &args![tenant.id, audit.at],
            )?;
            // Users, credentials, sessions, refresh tokens, roles, role
            // assignments, audit rows and outbox messages all reference the
            // tenant with ON DELETE CASCADE.
            // Tombstones outlive the cascade, so a restart still denies the
            // tenant's tokens (a tenant re-created under the same slug must
            // not accept them).
            c.execute(
                "INSERT INTO deleted_users (user_id, tenant_id, deleted_at) \
                 SELECT id, tenant_id, $2 FROM users WHERE tenant_id = $1 \
                 ON CONFLICT (user_id) DO UPDATE SET deleted_at = excluded.deleted_at",
                &args![tenant.id, audit.at],
            )?;
            c.execute("DELETE FROM tenants WHERE id = $1", &args![tenant.id])?;
            insert_audit(c, &audit)?;
            Ok(DeletedTenant { tenant, live_sessions })
        })
        .await
    }

    async fn tenant_settings(&self, tenant_id: Uuid) -> StoreResult<Option<TenantSettings>> {
        // A stored document that does not parse is an error (fail closed: a
        // sign-up never proceeds on settings it cannot read).
        self.read(move |c| {
            c.query_opt_map("SELECT settings FROM tenants WHERE id = $1", &args![tenant_id], |r| {
                r.json("settings")
            })
        })
        .await
    }

    async fn update_tenant_settings(
        &self,
        tenant_id: Uuid,
        parts: TenantSettings,
        audit: Vec<NewAuditEvent>,
    ) -> StoreResult<TenantSettings> {
        self.write(move |c| {
            // Locks the row: concurrent changes of different parts apply one
            // after the other and neither undoes the other.
            let sql = c.pick(
                "SELECT settings FROM tenants WHERE id = $1",
                "SELECT settings FROM tenants WHERE id = $1 FOR UPDATE",
            );
            let stored: TenantSettings = c
                .query_opt_map(sql, &args![tenant_id], |r| r.json("settings"))?
                .ok_or(StoreError::NotFound)?;
            let updated = stored.overlay(&parts);
            c.execute(
                "UPDATE tenants SET settings = $2 WHERE id = $1",
                &args![tenant_id, updated.to_json()],
            )?;
            for event in &audit {
                insert_audit(c, event)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn list_audit(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.read(move |c| {
            // Conditions are added only when given, so the planner sees
            // plain equalities and one range and picks the matching
            // (tenant_id, [user_id|event,] id) index, walked backwards.
            let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = $1");
            let mut params = args![query.tenant_id].to_vec();
            if let Some(user) = query.user_id {
                params.extend(args![user]);
                sql.push_str(&format!(" AND user_id = ${}", params.len()));
            }
            if let Some(event) = &query.event {
                params.extend(args![event]);
                sql.push_str(&format!(" AND event = ${}", params.len()));
            }
            if let Some(before) = query.before {
                params.extend(args![before]);
                sql.push_str(&format!(" AND id < ${}", params.len()));
            }
            params.extend(args![query.limit]);
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", params.len()));
            c.query_map(&sql, &params, audit_from_row)
        })
        .await
    }

    async fn purge_audit(&self, before: Timestamp, batch: u32) -> StoreResult<u64> {
        self.write(move |c| {
            // By primary key, which both databases have (SQLite's rowid would
            // save an index lookup per row, PostgreSQL has none).
            c.execute(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)",
                &args![before, batch],
            )
        })
        .await
    }
}

impl SqliteStore {
    /// `EXPLAIN QUERY PLAN` of the listing and search statements exactly as
    /// [`DirectoryStore::list_users`] runs them, as (name, plan lines). For
    /// the scale test and for operators checking a large database's plans.
    pub async fn explain_directory_queries(&self) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        self.read_conn(|c| {
            let t = DEFAULT_TENANT_ID;
            let end = |p: &str| format!("{p}{PREFIX_END}");
            let cases = [
                ("list_all", LIST_ALL, args![t, "", 51i64].to_vec()),
                (
                    "email_prefix_first_page",
                    EMAIL_FROM,
                    args![t, "a", end("a"), 51i64].to_vec(),
                ),
                (
                    "email_prefix_next_page",
                    EMAIL_AFTER,
                    args![t, "ab@x.io", end("a"), 51i64].to_vec(),
                ),
                (
                    "phone_prefix_first_page",
                    PHONE_FROM,
                    args![t, "+1", end("+1"), 51i64].to_vec(),
                ),
                (
                    "phone_prefix_next_page",
                    PHONE_AFTER,
                    args![t, "+1415", end("+1"), 51i64].to_vec(),
                ),
            ];
            let mut out = Vec::new();
            for (name, sql, params) in cases {
                out.push((name, sqlite_plan(c, sql, &params)?));
            }
            Ok(out)
        })
        .await
    }
}

/// `EXPLAIN QUERY PLAN` of one statement exactly as the SQLite driver runs
/// it (`$N` rewritten by [`to_sqlite`]), as its plan lines.
pub(super) fn sqlite_plan(c: &rusqlite::Connection, sql: &str, params: &[Value]) -> StoreResult<Vec<String>> {
    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {}", to_sqlite(sql)))?;
    let lines = stmt
        .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>("detail"))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_the_lower_bound_only_inside_the_prefix_range() {
        assert_eq!(prefix_page("F", "A", "ab", None), ("F", "ab"));
        assert_eq!(prefix_page("F", "A", "ab", Some("abz@x.io")), ("A", "abz@x.io"));
        // A cursor before the prefix (from another search) must not widen it.
        assert_eq!(prefix_page("F", "A", "ab", Some("aa@x.io")), ("F", "ab"));
    }
}
