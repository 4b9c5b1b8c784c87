//! The bulk port: users imported in batches and read back for export
//! (`forge users import` / `forge users export`, `service::import`).
//!
//! Written once, over either database (see `sql.rs`). A batch is one
//! transaction, so a million rows cost a thousand commits rather than a
//! million. Re-runs are idempotent: a row whose email or phone is already
//! taken is never overwritten; it is `Unchanged` when the stored user has the
//! same email, phone and password hash, otherwise a `Conflict` naming the
//! field. Every user row is inserted with `ON CONFLICT DO NOTHING`, so a row
//! that races a sign-up (or repeats an earlier row of the same batch) is a
//! conflict too, not a failed batch. A dry run does the same work inside a
//! savepoint it rolls back, so it finds exactly what a real run would.
//!
//! No audit row per imported user: the import is an operator's command, and
//! a million audit rows would double its cost; the command prints its
//! summary instead.

use std::collections::HashMap;

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{user_columns, user_from_row};
use super::sql::{Conn, Dialect, Driver, args};
use super::{StoreResult, User};
use crate::domain::{Email, Phone, RoleName, Timestamp};

/// One user to import, parsed and checked by the caller (`service::import`).
#[derive(Clone, Debug)]
pub struct ImportUser {
    /// A UUIDv7 from the user's creation time, so id order (keyset paging)
    /// stays creation order.
    pub id: Uuid,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub phone: Option<Phone>,
    pub phone_verified: bool,
    /// As exported by the old system; checked by `ImportedHash::parse`.
    pub password_hash: Option<String>,
    pub metadata: serde_json::Value,
    pub roles: Vec<RoleName>,
    pub created_at: Timestamp,
}

/// What became of one [`ImportUser`], in batch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Created,
    /// The same user (email, phone and hash) is there already.
    Unchanged,
    /// Another user holds this email or phone.
    Conflict {
        field: &'static str,
    },
    /// The role does not exist in the tenant; nothing was written.
    UnknownRole(String),
}

/// Bulk writes and reads of users for the import and export commands.
#[async_trait]
pub trait ImportStore: Send + Sync + 'static {
    /// Imports `batch` into the tenant in one transaction (rolled back at
    /// the end when `dry_run`); one outcome per user, in order.
    async fn import_users(
        &self,
        tenant_id: Uuid,
        batch: Vec<ImportUser>,
        now: Timestamp,
        dry_run: bool,
    ) -> StoreResult<Vec<ImportOutcome>>;

    /// Up to `limit` users of the tenant after `after` in id order, each
    /// with their password hash: one page of an export.
    async fn export_users(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<(User, Option<String>)>>;
}

/// The user holding an email or phone, with what decides "identical".
const HOLDER_BY_EMAIL: &str = "SELECT u.email, u.phone, pc.hash FROM users u \
     LEFT JOIN password_credentials pc ON pc.user_id = u.id WHERE u.tenant_id = $1 AND u.email = $2";
const HOLDER_BY_PHONE: &str = "SELECT u.email, u.phone, pc.hash FROM users u \
     LEFT JOIN password_credentials pc ON pc.user_id = u.id WHERE u.tenant_id = $1 AND u.phone = $2";

/// The SQLite page cache while importing (negative: KiB).
const IMPORT_CACHE: &str = "PRAGMA cache_size = -65536";

const EXPORT_PAGE: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", pc.hash FROM users u LEFT JOIN password_credentials pc ON pc.user_id = u.id \
     WHERE u.tenant_id = $1 AND ($2 IS NULL OR u.id > $2) ORDER BY u.id LIMIT $3"
);

fn import_one(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    user: &ImportUser,
    roles: &HashMap<String, String>,
    now: Timestamp,
) -> StoreResult<ImportOutcome> {
    if let Some(missing) = user.roles.iter().find(|r| !roles.contains_key(r.as_str())) {
        return Ok(ImportOutcome::UnknownRole(missing.as_str().to_owned()));
    }
    let email = user.email.as_ref().map(|e| e.as_str());
    let phone = user.phone.as_ref().map(|p| p.as_str());
    let holder = match (email, phone) {
        (Some(e), _) => match c.query_opt(HOLDER_BY_EMAIL, &args![tenant_id, e])? {
            Some(row) => Some(("email", row)),
            None => match phone {
                Some(p) => c
                    .query_opt(HOLDER_BY_PHONE, &args![tenant_id, p])?
                    .map(|r| ("phone", r)),
                None => None,
            },
        },
        (None, Some(p)) => c
            .query_opt(HOLDER_BY_PHONE, &args![tenant_id, p])?
            .map(|r| ("phone", r)),
        (None, None) => None,
    };
    if let Some((field, row)) = holder {
        let same = row.get::<Option<String>>("email")?.as_deref() == email
            && row.get::<Option<String>>("phone")?.as_deref() == phone
            && row.get::<Option<String>>("hash")? == user.password_hash;
        return Ok(if same {
            ImportOutcome::Unchanged
        } else {
            ImportOutcome::Conflict { field }
        });
    }
    let inserted = c.execute(
        "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
        &args![
            user.id,
            tenant_id,
            email,
            user.email_verified,
            phone,
            user.phone_verified,
            &user.metadata,
            user.created_at,
            now,
        ],
    )?;
    if inserted == 0 {
        // Taken since the look-up (a concurrent sign-up) or a duplicate id.
        return Ok(ImportOutcome::Conflict {
            field: if email.is_some() { "email" } else { "phone" },
        });
    }
    if let Some(hash) = &user.password_hash {
        c.execute(
            "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES ($1, $2, $3, $4)",
            &args![user.id, tenant_id, hash, now],
        )?;
    }
    for role in &user.roles {
        if let Some(role_id) = roles.get(role.as_str()) {
            c.execute(
                "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                &args![user.id, role_id, tenant_id, now],
            )?;
        }
    }
    Ok(ImportOutcome::Created)
}

#[async_trait]
impl<D: Driver> ImportStore for D {
    async fn import_users(
        &self,
        tenant_id: Uuid,
        batch: Vec<ImportUser>,
        now: Timestamp,
        dry_run: bool,
    ) -> StoreResult<Vec<ImportOutcome>> {
        self.write(move |c| {
            if c.dialect() == Dialect::Sqlite {
                // Each row looks its email up in an index that outgrows
                // SQLite's default 2 MiB page cache after some 100,000
                // users; from there every look-up re-reads pages from the
                // OS and the import slows threefold. The setting stays
                // with the writer connection: 64 MiB at most, and only a
                // process that imports (the CLI) ever sets it.
                c.execute(IMPORT_CACHE, &[])?;
            }
            if dry_run {
                c.execute("SAVEPOINT forge_import_dry_run", &[])?;
            }
            let roles: HashMap<String, String> = c
                .query("SELECT id, name FROM roles WHERE tenant_id = $1", &args![tenant_id])?
                .iter()
                .map(|r| Ok((r.get::<String>("name")?, r.get::<String>("id")?)))
                .collect::<StoreResult<_>>()?;
            let outcomes = batch
                .iter()
                .map(|user| import_one(c, tenant_id, user, &roles, now))
                .collect::<StoreResult<Vec<_>>>()?;
            if dry_run {
                c.execute("ROLLBACK TO SAVEPOINT forge_import_dry_run", &[])?;
                c.execute("RELEASE SAVEPOINT forge_import_dry_run", &[])?;
            }
            Ok(outcomes)
        })
        .await
    }

    async fn export_users(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> StoreResult<Vec<(User, Option<String>)>> {
        self.read(move |c| {
            c.query_map(EXPORT_PAGE, &args![tenant_id, after, i64::from(limit)], |row| {
                Ok((user_from_row(row)?, row.get::<Option<String>>("hash")?))
            })
        })
        .await
    }
}
