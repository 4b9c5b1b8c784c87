//! The PostgreSQL adapter of [`DirectoryStore`].
//!
//! The statements are those of `sqlite_admin.rs` with `$N` placeholders and
//! the same keyset pagination: all users by `users_tenant_id (tenant_id, id)`,
//! an email or phone prefix as the range `prefix <= x < prefix || U+10FFFF`
//! on `users_tenant_email` / `users_tenant_phone` (no `LIKE`, so no wildcard
//! to escape). The key columns use the "C" collation (see the migration), so
//! ranges and order compare bytes here exactly as they do on SQLite.
//!
//! True differences: a user's roles are gathered with `ARRAY(SELECT ...)`
//! (see `postgres.rs`); the audit purge deletes by primary key where SQLite
//! uses its `rowid`; role ids are loaded with `FOR UPDATE` where SQLite's
//! single writer already excludes concurrent changes.

use ::postgres::types::ToSql;
use ::postgres::{GenericClient, Row, Transaction};
use async_trait::async_trait;
use uuid::Uuid;

use super::directory::*;
use super::postgres::{
    PgStore, all, ids, insert_audit, load_user, opt_uuid_col, pg_user_columns, tenant_from_row, user_from_row, uuid_col,
};
use super::{DEFAULT_TENANT_ID, NewAuditEvent, NewUser, StoreError, StoreResult, Tenant, User};
use crate::domain::settings::TenantSettings;
use crate::domain::{RoleName, Timestamp};

/// A stored settings document; one that does not parse is an internal
/// error (fail closed: a sign-up never proceeds on settings it cannot read).
fn settings_from_text(text: &str) -> StoreResult<TenantSettings> {
    TenantSettings::from_json(text).map_err(|e| StoreError::Internal(anyhow::anyhow!("tenant settings: {e}")))
}

const LIST_ALL: &str = concat!(
    "SELECT ",
    pg_user_columns!(),
    " FROM users u WHERE u.tenant_id = $1 AND u.id > $2 ORDER BY u.id LIMIT $3"
);
const EMAIL_FROM: &str = concat!(
    "SELECT ",
    pg_user_columns!(),
    " FROM users u WHERE u.tenant_id = $1 AND u.email >= $2 AND u.email < $3 ORDER BY u.email LIMIT $4"
);
const EMAIL_AFTER: &str = concat!(
    "SELECT ",
    pg_user_columns!(),
    " FROM users u WHERE u.tenant_id = $1 AND u.email > $2 AND u.email < $3 ORDER BY u.email LIMIT $4"
);
const PHONE_FROM: &str = concat!(
    "SELECT ",
    pg_user_columns!(),
    " FROM users u WHERE u.tenant_id = $1 AND u.phone >= $2 AND u.phone < $3 ORDER BY u.phone LIMIT $4"
);
const PHONE_AFTER: &str = concat!(
    "SELECT ",
    pg_user_columns!(),
    " FROM users u WHERE u.tenant_id = $1 AND u.phone > $2 AND u.phone < $3 ORDER BY u.phone LIMIT $4"
);

const ROLE_COLUMNS: &str = "id, tenant_id, name, permissions, builtin, created_at, updated_at";
const AUDIT_COLUMNS: &str = "id, tenant_id, at, event, user_id, actor_id, ip, user_agent, detail";

/// Above every character an email or phone can continue a prefix with.
const PREFIX_END: char = '\u{10FFFF}';

fn role_from_row(row: &Row) -> StoreResult<Role> {
    let permissions: String = row.try_get("permissions")?;
    Ok(Role {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        name: row.try_get("name")?,
        permissions: serde_json::from_str(&permissions)
            .map_err(|e| StoreError::Internal(anyhow::anyhow!("role permissions: {e}")))?,
        builtin: row.try_get("builtin")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn audit_from_row(row: &Row) -> StoreResult<AuditEvent> {
    let detail: String = row.try_get("detail")?;
    Ok(AuditEvent {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        at: row.try_get("at")?,
        event: row.try_get("event")?,
        user_id: opt_uuid_col(row, "user_id")?,
        actor_id: opt_uuid_col(row, "actor_id")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        detail: serde_json::from_str(&detail).unwrap_or_default(),
    })
}

fn user_exists(c: &mut impl GenericClient, tenant_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
    Ok(c.query_one(
        "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2)",
        &[&tenant_id.to_string(), &user_id.to_string()],
    )?
    .try_get(0)?)
}

fn role_id(c: &mut impl GenericClient, tenant_id: Uuid, name: &str) -> StoreResult<Option<String>> {
    Ok(c.query_opt(
        "SELECT id FROM roles WHERE tenant_id = $1 AND name = $2",
        &[&tenant_id.to_string(), &name],
    )?
    .map(|r| r.try_get(0))
    .transpose()?)
}

fn permissions_json(permissions: &[crate::domain::Permission]) -> String {
    serde_json::Value::from(permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>()).to_string()
}

/// The statement and lower bound of one page: the cursor when it lies inside
/// the prefix range, else the prefix itself (inclusive). As in SQLite's adapter.
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

/// Marks the user's row as changed (its roles did), as SQLite's adapter does.
fn touch_user(tx: &mut Transaction<'_>, tenant_id: Uuid, user_id: Uuid, at: Timestamp) -> StoreResult<()> {
    tx.execute(
        "UPDATE users SET updated_at = $3 WHERE tenant_id = $1 AND id = $2",
        &[&tenant_id.to_string(), &user_id.to_string(), &at],
    )?;
    Ok(())
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn list_users(&self, query: UserQuery) -> StoreResult<Vec<User>> {
        self.read_client(move |c| {
            let t = query.tenant_id.to_string();
            let limit = i64::from(query.limit);
            let rows = match &query.seek {
                UserSeek::All { after } => {
                    let after = after.map(|a| a.to_string()).unwrap_or_default();
                    c.query(LIST_ALL, &[&t, &after, &limit])?
                }
                UserSeek::EmailPrefix { prefix, after } | UserSeek::PhonePrefix { prefix, after } => {
                    let (from, after_sql) = match &query.seek {
                        UserSeek::EmailPrefix { .. } => (EMAIL_FROM, EMAIL_AFTER),
                        _ => (PHONE_FROM, PHONE_AFTER),
                    };
                    let (sql, lower) = prefix_page(from, after_sql, prefix, after.as_deref());
                    let upper = format!("{prefix}{PREFIX_END}");
                    c.query(sql, &[&t, &lower, &upper, &limit])?
                }
            };
            all(rows, user_from_row)
        })
        .await
    }

    async fn list_roles(&self, tenant_id: Uuid) -> StoreResult<Vec<Role>> {
        self.read_client(move |c| {
            let rows = c.query(
                &format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = $1 ORDER BY name"),
                &[&tenant_id.to_string()],
            )?;
            all(rows, role_from_row)
        })
        .await
    }

    async fn get_role(&self, tenant_id: Uuid, name: &str) -> StoreResult<Option<Role>> {
        let name = name.to_string();
        self.read_client(move |c| {
            c.query_opt(
                &format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = $1 AND name = $2"),
                &[&tenant_id.to_string(), &name],
            )?
            .map(|r| role_from_row(&r))
            .transpose()
        })
        .await
    }

    async fn create_role(&self, role: NewRole, audit: NewAuditEvent) -> StoreResult<Role> {
        self.write_tx(move |tx| {
            let row = tx.query_one(
                &format!(
                    "INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, FALSE, $5, $5) RETURNING {ROLE_COLUMNS}"
                ),
                &[
                    &role.id.to_string(),
                    &role.tenant_id.to_string(),
                    &role.name.as_str(),
                    &permissions_json(&role.permissions),
                    &role.now,
                ],
            )?;
            let created = role_from_row(&row)?;
            insert_audit(tx, &audit)?;
            Ok(created)
        })
        .await
    }

    async fn set_role_permissions(
        &self,
        tenant_id: Uuid,
        name: &str,
        permissions: Vec<crate::domain::Permission>,
        audit: NewAuditEvent,
    ) -> StoreResult<Role> {
        let name = name.to_string();
        self.write_tx(move |tx| {
            let row = tx
                .query_opt(
                    &format!(
                        "UPDATE roles SET permissions = $3, updated_at = $4 \
                         WHERE tenant_id = $1 AND name = $2 AND builtin = FALSE RETURNING {ROLE_COLUMNS}"
                    ),
                    &[
                        &tenant_id.to_string(),
                        &name,
                        &permissions_json(&permissions),
                        &audit.at,
                    ],
                )?
                .ok_or(StoreError::NotFound)?;
            let updated = role_from_row(&row)?;
            insert_audit(tx, &audit)?;
            Ok(updated)
        })
        .await
    }

    async fn delete_role(&self, tenant_id: Uuid, name: &str, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>> {
        let name = name.to_string();
        self.write_tx(move |tx| {
            let t = tenant_id.to_string();
            // FOR UPDATE: an assignment racing the deletion waits for it and
            // then finds no role, instead of slipping in between.
            let id: String = tx
                .query_opt(
                    "SELECT id FROM roles WHERE tenant_id = $1 AND name = $2 AND builtin = FALSE FOR UPDATE",
                    &[&t, &name],
                )?
                .ok_or(StoreError::NotFound)?
                .try_get(0)?;
            let holders = tx.query("SELECT user_id FROM user_roles WHERE role_id = $1", &[&id])?;
            tx.execute(
                "DELETE FROM roles WHERE id = $1 AND tenant_id = $2 AND builtin = FALSE",
                &[&id, &t],
            )?;
            insert_audit(tx, &audit)?;
            ids(holders)
        })
        .await
    }

    async fn assign_role(&self, tenant_id: Uuid, user_id: Uuid, role: &str, audit: NewAuditEvent) -> StoreResult<bool> {
        let role = role.to_string();
        self.write_tx(move |tx| {
            if !user_exists(tx, tenant_id, user_id)? {
                return Err(StoreError::NotFound);
            }
            let role_id = role_id(tx, tenant_id, &role)?.ok_or(StoreError::NotFound)?;
            let added = tx.execute(
                "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (user_id, role_id) DO NOTHING",
                &[&user_id.to_string(), &role_id, &tenant_id.to_string(), &audit.at],
            )? > 0;
            if added {
                touch_user(tx, tenant_id, user_id, audit.at)?;
                insert_audit(tx, &audit)?;
            }
            Ok(added)
        })
        .await
    }

    async fn remove_role(&self, tenant_id: Uuid, user_id: Uuid, role: &str, audit: NewAuditEvent) -> StoreResult<bool> {
        let role = role.to_string();
        self.write_tx(move |tx| {
            if !user_exists(tx, tenant_id, user_id)? {
                return Err(StoreError::NotFound);
            }
            let role_id = role_id(tx, tenant_id, &role)?.ok_or(StoreError::NotFound)?;
            let removed = tx.execute(
                "DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2 AND tenant_id = $3",
                &[&user_id.to_string(), &role_id, &tenant_id.to_string()],
            )? > 0;
            if removed {
                touch_user(tx, tenant_id, user_id, audit.at)?;
                insert_audit(tx, &audit)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn list_tenants(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<Tenant>> {
        self.read_client(move |c| {
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            let rows = c.query(
                "SELECT id, slug, name, created_at FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &i64::from(limit)],
            )?;
            all(rows, tenant_from_row)
        })
        .await
    }

    async fn create_tenant(&self, new: NewTenant, audit: Vec<NewAuditEvent>) -> StoreResult<(Tenant, Option<User>)> {
        self.write_tx(move |tx| {
            let t = new.id.to_string();
            tx.execute(
                "INSERT INTO tenants (id, slug, name, created_at, settings) VALUES ($1, $2, $3, $4, $5)",
                &[&t, &new.slug.as_str(), &new.name, &new.now, &new.settings.to_json()],
            )?;
            let admin_role = Uuid::now_v7().to_string();
            tx.execute(
                "INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at) \
                 VALUES ($1, $2, $3, '[\"*\"]', TRUE, $4, $4)",
                &[&admin_role, &t, &RoleName::ADMIN, &new.now],
            )?;
            let admin = match &new.admin {
                None => None,
                Some(user) => {
                    insert_tenant_admin(tx, &t, &admin_role, user)?;
                    load_user(tx, new.id, user.id)?
                }
            };
            for event in &audit {
                insert_audit(tx, event)?;
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
        let slug = slug.to_string();
        self.write_tx(move |tx| {
            let row = tx
                .query_opt(
                    "SELECT id, slug, name, created_at FROM tenants WHERE slug = $1 AND id <> $2 FOR UPDATE",
                    &[&slug, &DEFAULT_TENANT_ID.to_string()],
                )?
                .ok_or(StoreError::NotFound)?;
            let tenant = tenant_from_row(&row)?;
            let t = tenant.id.to_string();
            let live = tx.query(
                "SELECT id FROM sessions WHERE tenant_id = $1 AND revoked_at IS NULL AND expires_at > $2",
                &[&t, &audit.at],
            )?;
            let live_sessions = ids(live)?;
            // Everything the tenant owns references it with ON DELETE CASCADE.
            // Tombstones outlive the cascade, so a restart still denies the
            // tenant's tokens (a tenant re-created under the same slug must
            // not accept them).
            tx.execute(
                "INSERT INTO deleted_users (user_id, tenant_id, deleted_at) \
                 SELECT id, tenant_id, $2 FROM users WHERE tenant_id = $1 \
                 ON CONFLICT (user_id) DO UPDATE SET deleted_at = excluded.deleted_at",
                &[&t, &audit.at],
            )?;
            tx.execute("DELETE FROM tenants WHERE id = $1", &[&t])?;
            insert_audit(tx, &audit)?;
            Ok(DeletedTenant { tenant, live_sessions })
        })
        .await
    }

    async fn tenant_settings(&self, tenant_id: Uuid) -> StoreResult<Option<TenantSettings>> {
        self.read_client(move |c| {
            c.query_opt("SELECT settings FROM tenants WHERE id = $1", &[&tenant_id.to_string()])?
                .map(|r| settings_from_text(&r.try_get::<_, String>(0)?))
                .transpose()
        })
        .await
    }

    async fn update_tenant_settings(
        &self,
        tenant_id: Uuid,
        parts: TenantSettings,
        audit: Vec<NewAuditEvent>,
    ) -> StoreResult<TenantSettings> {
        self.write_tx(move |tx| {
            let t = tenant_id.to_string();
            // Locks the row: concurrent changes of different parts apply one
            // after the other and neither undoes the other.
            let Some(row) = tx.query_opt("SELECT settings FROM tenants WHERE id = $1 FOR UPDATE", &[&t])? else {
                return Err(StoreError::NotFound);
            };
            let updated = settings_from_text(&row.try_get::<_, String>(0)?)?.overlay(&parts);
            tx.execute(
                "UPDATE tenants SET settings = $2 WHERE id = $1",
                &[&t, &updated.to_json()],
            )?;
            for event in &audit {
                insert_audit(tx, event)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn list_audit(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.read_client(move |c| {
            // Conditions are added only when given, so the planner sees plain
            // equalities and one range over the matching
            // (tenant_id, [user_id|event,] id) index, walked backwards.
            let tenant = query.tenant_id.to_string();
            let user = query.user_id.map(|u| u.to_string());
            let before = query.before.map(|b| b.to_string());
            let limit = i64::from(query.limit);
            let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = $1");
            let mut args: Vec<&(dyn ToSql + Sync)> = vec![&tenant];
            if let Some(user) = &user {
                args.push(user);
                sql.push_str(&format!(" AND user_id = ${}", args.len()));
            }
            if let Some(event) = &query.event {
                args.push(event);
                sql.push_str(&format!(" AND event = ${}", args.len()));
            }
            if let Some(before) = &before {
                args.push(before);
                sql.push_str(&format!(" AND id < ${}", args.len()));
            }
            args.push(&limit);
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", args.len()));
            let rows = c.query(&sql, &args)?;
            all(rows, audit_from_row)
        })
        .await
    }

    async fn purge_audit(&self, before: Timestamp, batch: u32) -> StoreResult<u64> {
        self.write_tx(move |tx| {
            // By primary key where SQLite uses its rowid.
            let n = tx.execute(
                "DELETE FROM audit_events WHERE id IN \
                 (SELECT id FROM audit_events WHERE at < $1 LIMIT $2)",
                &[&before, &i64::from(batch)],
            )?;
            Ok(n)
        })
        .await
    }
}

/// The first administrator of a new tenant: the user row, the password and
/// the tenant's `admin` role, in the caller's transaction.
fn insert_tenant_admin(tx: &mut Transaction<'_>, tenant_id: &str, admin_role: &str, user: &NewUser) -> StoreResult<()> {
    let u = user.id.to_string();
    tx.execute(
        "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        &[
            &u,
            &tenant_id,
            &user.email.as_ref().map(|e| e.as_str()),
            &user.email_verified,
            &user.phone.as_ref().map(|p| p.as_str()),
            &user.phone_verified,
            &user.metadata.to_string(),
            &user.now,
        ],
    )?;
    if let Some(hash) = &user.password_hash {
        tx.execute(
            "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES ($1, $2, $3, $4)",
            &[&u, &tenant_id, hash, &user.now],
        )?;
    }
    tx.execute(
        "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES ($1, $2, $3, $4)",
        &[&u, &admin_role, &tenant_id, &user.now],
    )?;
    Ok(())
}
