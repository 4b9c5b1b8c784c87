//! The SQLite adapter of [`DirectoryStore`].
//!
//! Every method is one `read` or `write` hop on the store's pool or single
//! writer, with bound parameters only. Listing walks an index in its own
//! order and resumes with `key > cursor` (never `OFFSET`):
//! all users by `users_tenant_id (tenant_id, id)`, an email-prefix search by
//! `users_tenant_email (tenant_id, email)` as the range
//! `prefix <= email < prefix || U+10FFFF` (no `LIKE`, so no wildcard to
//! escape and the index is always usable), phones likewise. The lower bound
//! is computed here, so SQLite sees one range per column and stops after
//! `LIMIT` rows; [`SqliteStore::explain_admin_queries`] shows the plans and
//! the scale test asserts them on a million users.
//!
//! Row mapping for users and the audit insert are `sqlite.rs`'s own helpers.

use async_trait::async_trait;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use uuid::Uuid;

use super::directory::*;
use super::sqlite::{SqliteStore, insert_audit, load_user, opt_uuid_col, user_columns, user_from_row, uuid_col};
use super::{DEFAULT_TENANT_ID, NewAuditEvent, NewUser, StoreError, StoreResult, Tenant, User};
use crate::domain::settings::TenantSettings;
use crate::domain::{RoleName, TenantSlug, Timestamp};

/// A stored settings document; one that does not parse is an internal
/// error (fail closed: a sign-up never proceeds on settings it cannot read).
fn settings_from_text(text: &str) -> StoreResult<TenantSettings> {
    TenantSettings::from_json(text).map_err(|e| StoreError::Internal(anyhow::anyhow!("tenant settings: {e}")))
}

const LIST_ALL: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.tenant_id = ?1 AND u.id > ?2 ORDER BY u.id LIMIT ?3"
);
const EMAIL_FROM: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.tenant_id = ?1 AND u.email >= ?2 AND u.email < ?3 ORDER BY u.email LIMIT ?4"
);
const EMAIL_AFTER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.tenant_id = ?1 AND u.email > ?2 AND u.email < ?3 ORDER BY u.email LIMIT ?4"
);
const PHONE_FROM: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.tenant_id = ?1 AND u.phone >= ?2 AND u.phone < ?3 ORDER BY u.phone LIMIT ?4"
);
const PHONE_AFTER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.tenant_id = ?1 AND u.phone > ?2 AND u.phone < ?3 ORDER BY u.phone LIMIT ?4"
);
const ROLE_COLUMNS: &str = "id, tenant_id, name, permissions, builtin, created_at, updated_at";
const AUDIT_COLUMNS: &str = "id, tenant_id, at, event, user_id, actor_id, ip, user_agent, detail";

/// Above every character an email or phone can continue a prefix with.
const PREFIX_END: char = '\u{10FFFF}';

fn conversion(what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, what.into())
}

fn role_from_row(row: &Row<'_>) -> rusqlite::Result<Role> {
    let permissions: String = row.get("permissions")?;
    Ok(Role {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        name: row.get("name")?,
        permissions: serde_json::from_str(&permissions).map_err(|e| conversion(format!("permissions: {e}")))?,
        builtin: row.get("builtin")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    let slug: String = row.get("slug")?;
    Ok(Tenant {
        id: uuid_col(row, "id")?,
        slug: TenantSlug::parse(&slug).map_err(|e| conversion(format!("slug {slug:?}: {e}")))?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
    })
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    let detail: String = row.get("detail")?;
    Ok(AuditEvent {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        at: row.get("at")?,
        event: row.get("event")?,
        user_id: opt_uuid_col(row, "user_id")?,
        actor_id: opt_uuid_col(row, "actor_id")?,
        ip: row.get("ip")?,
        user_agent: row.get("user_agent")?,
        detail: serde_json::from_str(&detail).unwrap_or_default(),
    })
}

fn user_exists(c: &Connection, tenant_id: Uuid, user_id: Uuid) -> StoreResult<bool> {
    Ok(c.query_row(
        "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1 AND id = ?2)",
        params![tenant_id.to_string(), user_id.to_string()],
        |r| r.get(0),
    )?)
}

fn role_id(c: &Connection, tenant_id: Uuid, name: &str) -> StoreResult<Option<String>> {
    Ok(c.query_row(
        "SELECT id FROM roles WHERE tenant_id = ?1 AND name = ?2",
        params![tenant_id.to_string(), name],
        |r| r.get(0),
    )
    .optional()?)
}

fn permissions_json(permissions: &[crate::domain::Permission]) -> String {
    serde_json::Value::from(permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>()).to_string()
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

impl SqliteStore {
    /// `EXPLAIN QUERY PLAN` of the listing and search statements exactly as
    /// [`DirectoryStore::list_users`] runs them, as (name, plan lines). For the
    /// scale test and for operators checking a large database's plans.
    pub async fn explain_admin_queries(&self) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
        self.read_conn(|c| {
            let t = DEFAULT_TENANT_ID.to_string();
            let end = format!("a{PREFIX_END}");
            let cases: [(&'static str, &'static str, Vec<SqlValue>); 5] = [
                (
                    "list_all",
                    LIST_ALL,
                    vec![t.clone().into(), "".to_string().into(), 51i64.into()],
                ),
                (
                    "email_prefix_first_page",
                    EMAIL_FROM,
                    vec![
                        t.clone().into(),
                        "a".to_string().into(),
                        end.clone().into(),
                        51i64.into(),
                    ],
                ),
                (
                    "email_prefix_next_page",
                    EMAIL_AFTER,
                    vec![t.clone().into(), "ab@x.io".to_string().into(), end.into(), 51i64.into()],
                ),
                (
                    "phone_prefix_first_page",
                    PHONE_FROM,
                    vec![
                        t.clone().into(),
                        "+1".to_string().into(),
                        format!("+1{PREFIX_END}").into(),
                        51i64.into(),
                    ],
                ),
                (
                    "phone_prefix_next_page",
                    PHONE_AFTER,
                    vec![
                        t.into(),
                        "+1415".to_string().into(),
                        format!("+1{PREFIX_END}").into(),
                        51i64.into(),
                    ],
                ),
            ];
            let mut out = Vec::new();
            for (name, sql, args) in cases {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let lines = stmt
                    .query_map(params_from_iter(args), |r| r.get::<_, String>("detail"))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                out.push((name, lines));
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn list_users(&self, query: UserQuery) -> StoreResult<Vec<User>> {
        self.read_conn(move |c| {
            let t = query.tenant_id.to_string();
            let limit = i64::from(query.limit);
            let rows = match &query.seek {
                UserSeek::All { after } => {
                    let after = after.map(|a| a.to_string()).unwrap_or_default();
                    let mut stmt = c.prepare_cached(LIST_ALL)?;
                    stmt.query_map(params![t, after, limit], user_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                }
                UserSeek::EmailPrefix { prefix, after } | UserSeek::PhonePrefix { prefix, after } => {
                    let (from, after_sql) = match &query.seek {
                        UserSeek::EmailPrefix { .. } => (EMAIL_FROM, EMAIL_AFTER),
                        _ => (PHONE_FROM, PHONE_AFTER),
                    };
                    let (sql, lower) = prefix_page(from, after_sql, prefix, after.as_deref());
                    let upper = format!("{prefix}{PREFIX_END}");
                    let mut stmt = c.prepare_cached(sql)?;
                    stmt.query_map(params![t, lower, upper, limit], user_from_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()?
                }
            };
            Ok(rows)
        })
        .await
    }

    async fn list_roles(&self, tenant_id: Uuid) -> StoreResult<Vec<Role>> {
        self.read_conn(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = ?1 ORDER BY name"
            ))?;
            let roles = stmt
                .query_map(params![tenant_id.to_string()], role_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(roles)
        })
        .await
    }

    async fn get_role(&self, tenant_id: Uuid, name: &str) -> StoreResult<Option<Role>> {
        let name = name.to_string();
        self.read_conn(move |c| {
            Ok(c.query_row(
                &format!("SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = ?1 AND name = ?2"),
                params![tenant_id.to_string(), name],
                role_from_row,
            )
            .optional()?)
        })
        .await
    }

    async fn create_role(&self, role: NewRole, audit: NewAuditEvent) -> StoreResult<Role> {
        self.write_tx(move |tx| {
            let created = tx.query_row(
                &format!(
                    "INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5) RETURNING {ROLE_COLUMNS}"
                ),
                params![
                    role.id.to_string(),
                    role.tenant_id.to_string(),
                    role.name.as_str(),
                    permissions_json(&role.permissions),
                    role.now
                ],
                role_from_row,
            )?;
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
            let updated = tx
                .query_row(
                    &format!(
                        "UPDATE roles SET permissions = ?3, updated_at = ?4 \
                         WHERE tenant_id = ?1 AND name = ?2 AND builtin = 0 RETURNING {ROLE_COLUMNS}"
                    ),
                    params![tenant_id.to_string(), name, permissions_json(&permissions), audit.at],
                    role_from_row,
                )
                .optional()?
                .ok_or(StoreError::NotFound)?;
            insert_audit(tx, &audit)?;
            Ok(updated)
        })
        .await
    }

    async fn delete_role(&self, tenant_id: Uuid, name: &str, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>> {
        let name = name.to_string();
        self.write_tx(move |tx| {
            let t = tenant_id.to_string();
            let id: String = tx
                .query_row(
                    "SELECT id FROM roles WHERE tenant_id = ?1 AND name = ?2 AND builtin = 0",
                    params![t, name],
                    |r| r.get(0),
                )
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let holders = {
                let mut stmt = tx.prepare("SELECT user_id FROM user_roles WHERE role_id = ?1")?;
                stmt.query_map(params![id], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute(
                "DELETE FROM roles WHERE id = ?1 AND tenant_id = ?2 AND builtin = 0",
                params![id, t],
            )?;
            insert_audit(tx, &audit)?;
            Ok(holders.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect())
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
                "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (user_id, role_id) DO NOTHING",
                params![user_id.to_string(), role_id, tenant_id.to_string(), audit.at],
            )? > 0;
            if added {
                tx.execute(
                    "UPDATE users SET updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant_id.to_string(), user_id.to_string(), audit.at],
                )?;
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
                "DELETE FROM user_roles WHERE user_id = ?1 AND role_id = ?2 AND tenant_id = ?3",
                params![user_id.to_string(), role_id, tenant_id.to_string()],
            )? > 0;
            if removed {
                tx.execute(
                    "UPDATE users SET updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant_id.to_string(), user_id.to_string(), audit.at],
                )?;
                insert_audit(tx, &audit)?;
            }
            Ok(removed)
        })
        .await
    }

    async fn list_tenants(&self, after: Option<Uuid>, limit: u32) -> StoreResult<Vec<Tenant>> {
        self.read_conn(move |c| {
            let mut stmt =
                c.prepare("SELECT id, slug, name, created_at FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2")?;
            let after = after.map(|a| a.to_string()).unwrap_or_default();
            let tenants = stmt
                .query_map(params![after, i64::from(limit)], tenant_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(tenants)
        })
        .await
    }

    async fn create_tenant(&self, new: NewTenant, audit: Vec<NewAuditEvent>) -> StoreResult<(Tenant, Option<User>)> {
        self.write_tx(move |tx| {
            let t = new.id.to_string();
            tx.execute(
                "INSERT INTO tenants (id, slug, name, created_at, settings) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t, new.slug.as_str(), new.name, new.now, new.settings.to_json()],
            )?;
            let admin_role = Uuid::now_v7().to_string();
            tx.execute(
                "INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, '[\"*\"]', 1, ?4, ?4)",
                params![admin_role, t, RoleName::ADMIN, new.now],
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
                slug: new.slug,
                name: new.name,
                created_at: new.now,
            };
            Ok((tenant, admin))
        })
        .await
    }

    async fn delete_tenant(&self, slug: &str, audit: NewAuditEvent) -> StoreResult<DeletedTenant> {
        let slug = slug.to_string();
        self.write_tx(move |tx| {
            let tenant = tx
                .query_row(
                    "SELECT id, slug, name, created_at FROM tenants WHERE slug = ?1 AND id <> ?2",
                    params![slug, DEFAULT_TENANT_ID.to_string()],
                    tenant_from_row,
                )
                .optional()?
                .ok_or(StoreError::NotFound)?;
            let t = tenant.id.to_string();
            let live_sessions = {
                let mut stmt = tx.prepare(
                    "SELECT id FROM sessions WHERE tenant_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
                )?;
                stmt.query_map(params![t, audit.at], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
                    .iter()
                    .filter_map(|s| Uuid::parse_str(s).ok())
                    .collect()
            };
            // Users, credentials, sessions, refresh tokens, roles, role
            // assignments, audit rows and outbox messages all reference the
            // tenant with ON DELETE CASCADE.
            // Tombstones outlive the cascade, so a restart still denies the
            // tenant's tokens (a tenant re-created under the same slug must
            // not accept them).
            tx.execute(
                "INSERT INTO deleted_users (user_id, tenant_id, deleted_at) \
                 SELECT id, tenant_id, ?2 FROM users WHERE tenant_id = ?1 \
                 ON CONFLICT (user_id) DO UPDATE SET deleted_at = excluded.deleted_at",
                params![t, audit.at],
            )?;
            tx.execute("DELETE FROM tenants WHERE id = ?1", params![t])?;
            insert_audit(tx, &audit)?;
            Ok(DeletedTenant { tenant, live_sessions })
        })
        .await
    }

    async fn tenant_settings(&self, tenant_id: Uuid) -> StoreResult<Option<TenantSettings>> {
        self.read_conn(move |c| {
            let text: Option<String> = c
                .query_row(
                    "SELECT settings FROM tenants WHERE id = ?1",
                    params![tenant_id.to_string()],
                    |r| r.get(0),
                )
                .optional()?;
            text.map(|t| settings_from_text(&t)).transpose()
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
            let text: Option<String> = tx
                .query_row("SELECT settings FROM tenants WHERE id = ?1", params![t], |r| r.get(0))
                .optional()?;
            let Some(text) = text else {
                return Err(StoreError::NotFound);
            };
            let updated = settings_from_text(&text)?.overlay(&parts);
            tx.execute(
                "UPDATE tenants SET settings = ?2 WHERE id = ?1",
                params![t, updated.to_json()],
            )?;
            for event in &audit {
                insert_audit(tx, event)?;
            }
            Ok(updated)
        })
        .await
    }

    async fn list_audit(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        self.read_conn(move |c| {
            // Conditions are added only when given, so SQLite sees plain
            // equalities and one range and picks the matching
            // (tenant_id, [user_id|event,] id) index walked backwards.
            let mut sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE tenant_id = ?1");
            let mut args: Vec<SqlValue> = vec![query.tenant_id.to_string().into()];
            if let Some(user) = query.user_id {
                args.push(user.to_string().into());
                sql.push_str(&format!(" AND user_id = ?{}", args.len()));
            }
            if let Some(event) = &query.event {
                args.push(event.clone().into());
                sql.push_str(&format!(" AND event = ?{}", args.len()));
            }
            if let Some(before) = query.before {
                args.push(before.to_string().into());
                sql.push_str(&format!(" AND id < ?{}", args.len()));
            }
            args.push(i64::from(query.limit).into());
            sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt
                .query_map(params_from_iter(args), audit_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn purge_audit(&self, before: Timestamp, batch: u32) -> StoreResult<u64> {
        self.write_tx(move |tx| {
            let n = tx.execute(
                "DELETE FROM audit_events WHERE rowid IN \
                 (SELECT rowid FROM audit_events WHERE at < ?1 LIMIT ?2)",
                params![before, i64::from(batch)],
            )?;
            Ok(n as u64)
        })
        .await
    }
}

/// The first administrator of a new tenant: the user row, the password and
/// the tenant's `admin` role, in the caller's transaction.
fn insert_tenant_admin(c: &Connection, tenant_id: &str, admin_role: &str, user: &NewUser) -> StoreResult<()> {
    let u = user.id.to_string();
    c.execute(
        "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
        params![
            u,
            tenant_id,
            user.email.as_ref().map(|e| e.as_str()),
            user.email_verified,
            user.phone.as_ref().map(|p| p.as_str()),
            user.phone_verified,
            user.metadata.to_string(),
            user.now,
        ],
    )?;
    if let Some(hash) = &user.password_hash {
        c.execute(
            "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES (?1, ?2, ?3, ?4)",
            params![u, tenant_id, hash, user.now],
        )?;
    }
    c.execute(
        "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![u, admin_role, tenant_id, user.now],
    )?;
    Ok(())
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
