//! The SQLite adapter of [`Store`], the default backend.
//!
//! Writer discipline: every write goes through one writer connection behind a
//! mutex and starts with `BEGIN IMMEDIATE`, while reads use an r2d2 pool. With
//! WAL, readers never block the writer and writers never meet each other, so
//! concurrent requests never see `database is locked`.
//!
//! `sqlite::memory:` opens a uniquely named database on SQLite's `memdb` VFS,
//! which every connection of this process can open by name: the pool and the
//! writer share one in-memory database. (Shared-cache mode would answer
//! `SQLITE_LOCKED`, which the busy timeout does not retry.) Two stores in one
//! process get two names and never see each other.
//!
//! Every call runs in one `spawn_blocking` hop carrying the caller's span.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use uuid::Uuid;

use super::*;
use crate::domain::{Email, Phone};

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a `sqlite:` URL points.
#[derive(Debug, Clone, PartialEq)]
pub enum SqliteTarget {
    Memory,
    File(PathBuf),
}

impl SqliteTarget {
    pub fn from_url(url: &str) -> Option<Self> {
        if url == "sqlite::memory:" {
            return Some(SqliteTarget::Memory);
        }
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let path = path.split('?').next().unwrap_or(path);
        (!path.is_empty()).then(|| SqliteTarget::File(PathBuf::from(path)))
    }
}

struct Inner {
    writer: Mutex<Connection>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    target: SqliteTarget,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn configure(conn: &Connection, wal: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if wal {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database and applies pending migrations.
    pub fn open(url: &str, pool_size: u32) -> anyhow::Result<Self> {
        let target =
            SqliteTarget::from_url(url).with_context(|| format!("database.url {url:?} is not a sqlite URL"))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let (path, wal) = match &target {
            SqliteTarget::Memory => (format!("file:/forge-{}?vfs=memdb", Uuid::new_v4()), false),
            SqliteTarget::File(p) => (p.to_string_lossy().into_owned(), true),
        };
        let mut writer = Connection::open_with_flags(&path, flags)
            .with_context(|| format!("cannot open database {}", display_target(&target)))?;
        configure(&writer, wal).context("cannot configure database")?;
        embedded::migrations::runner()
            .run(&mut writer)
            .context("cannot apply database migrations")?;

        let manager = SqliteConnectionManager::file(&path)
            .with_flags(flags)
            .with_init(move |c| configure(c, false));
        let readers = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .context("cannot open database read pool")?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                target,
            }),
        })
    }

    /// Applies pending migrations and reports how many ran (`forge migrate`).
    pub fn migrate(url: &str) -> anyhow::Result<usize> {
        let target = SqliteTarget::from_url(url).context("not a sqlite URL")?;
        let SqliteTarget::File(path) = target else {
            return Ok(0);
        };
        let mut conn = Connection::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        configure(&conn, true)?;
        let report = embedded::migrations::runner().run(&mut conn)?;
        Ok(report.applied_migrations().len())
    }

    /// A consistent online copy of the database (`forge backup`), taken with
    /// `VACUUM INTO` on a read connection so writers are not held up.
    pub async fn backup_to(&self, dest: PathBuf) -> StoreResult<()> {
        self.read_conn(move |c| {
            c.execute("VACUUM INTO ?1", params![dest.to_string_lossy()])?;
            Ok(())
        })
        .await
    }

    pub fn target(&self) -> &SqliteTarget {
        &self.inner.target
    }

    pub(super) async fn read_conn<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let conn = inner
                .readers
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("store task failed: {e}")))?
    }

    pub(super) async fn write_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            // A panic while holding the lock cannot leave a half-written
            // transaction (it rolls back on drop), so a poisoned lock is safe to reuse.
            let mut conn = inner.writer.lock().unwrap_or_else(|p| p.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("store task failed: {e}")))?
    }
}

// ---- the driver seam (see `sql.rs`) ----

/// A SQLite connection as a [`Conn`]: `$N` rewritten to `?N`, statements
/// prepared once per connection and cached.
struct SqliteConn<'a>(&'a Connection);

impl rusqlite::ToSql for sql::Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            sql::Value::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            sql::Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            sql::Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            sql::Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            sql::Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn sqlite_value(v: rusqlite::types::ValueRef<'_>, column: &str) -> StoreResult<sql::Value> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => sql::Value::Null(sql::Kind::Text),
        ValueRef::Integer(i) => sql::Value::Int(i),
        ValueRef::Text(t) => {
            sql::Value::Text(String::from_utf8(t.to_vec()).map_err(|_| sql::corrupt(column, "text is not UTF-8"))?)
        }
        ValueRef::Blob(b) => sql::Value::Bytes(b.to_vec()),
        ValueRef::Real(_) => return Err(sql::corrupt(column, "unexpected REAL")),
    })
}

impl sql::Conn for SqliteConn<'_> {
    fn dialect(&self) -> sql::Dialect {
        sql::Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[sql::Value]) -> StoreResult<u64> {
        let mut stmt = self.0.prepare_cached(&sql::to_sqlite(sql))?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[sql::Value]) -> StoreResult<Vec<sql::Row>> {
        let mut stmt = self.0.prepare_cached(&sql::to_sqlite(sql))?;
        let names: Arc<[String]> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let values = names
                .iter()
                .enumerate()
                .map(|(i, name)| sqlite_value(row.get_ref(i)?, name))
                .collect::<StoreResult<Vec<_>>>()?;
            out.push(sql::Row::new(names.clone(), values));
        }
        Ok(out)
    }

    fn lock(&mut self, _name: &str) -> StoreResult<()> {
        // Every write already runs alone: one writer connection, `BEGIN IMMEDIATE`.
        Ok(())
    }
}

impl sql::Driver for SqliteStore {
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut dyn sql::Conn) -> StoreResult<T> + Send + 'static,
    {
        self.read_conn(move |c| f(&mut SqliteConn(c))).await
    }

    async fn write<T, F>(&self, mut f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn sql::Conn) -> StoreResult<T> + Send + 'static,
    {
        self.write_tx(move |tx| f(&mut SqliteConn(tx))).await
    }

    fn connections(&self) -> (u32, u32) {
        let s = self.inner.readers.state();
        (s.connections, s.idle_connections)
    }
}

fn display_target(t: &SqliteTarget) -> String {
    match t {
        SqliteTarget::Memory => "in memory".into(),
        SqliteTarget::File(p) => p.display().to_string(),
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(e, msg) = &err {
            match e.code {
                rusqlite::ErrorCode::ConstraintViolation => {
                    let msg = msg.as_deref().unwrap_or_default();
                    let field = if msg.contains("email") {
                        "email"
                    } else if msg.contains("phone") {
                        "phone"
                    } else if msg.contains("slug") {
                        "slug"
                    } else if msg.contains("name") {
                        "name"
                    } else {
                        "record"
                    };
                    return StoreError::Conflict { field };
                }
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    return StoreError::Unavailable(err.to_string());
                }
                _ => {}
            }
        }
        StoreError::Internal(err.into())
    }
}

// ---- row mapping ----

/// Row-mapping and audit helpers shared by every `sqlite*.rs` file of the
/// store, so the columns and shapes are written once.
pub(super) fn uuid_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<Uuid> {
    let s: String = row.get(idx)?;
    Uuid::parse_str(&s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

pub(super) fn opt_uuid_col(row: &Row<'_>, idx: &str) -> rusqlite::Result<Option<Uuid>> {
    row.get::<_, Option<String>>(idx)?
        .map(|s| {
            Uuid::parse_str(&s)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
        })
        .transpose()
}

/// The user columns (with the user's role names as a JSON array), as a
/// macro so queries elsewhere can be `concat!`ed into constants.
macro_rules! user_columns {
    () => {
        "u.id, u.tenant_id, u.email, u.email_verified, u.phone, u.phone_verified, u.disabled, \
         u.metadata, u.created_at, u.updated_at, u.last_sign_in_at, u.credential_epoch, \
         (SELECT json_group_array(r.name) FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
          WHERE ur.user_id = u.id) AS roles"
    };
}
pub(super) use user_columns;

const USER_COLUMNS: &str = user_columns!();

pub(super) fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    let metadata: String = row.get("metadata")?;
    let roles: String = row.get("roles")?;
    let mut roles: Vec<String> = serde_json::from_str(&roles).unwrap_or_default();
    roles.sort();
    Ok(User {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        email: row.get::<_, Option<String>>("email")?.map(Email::from_trusted),
        email_verified: row.get("email_verified")?,
        phone: row.get::<_, Option<String>>("phone")?.map(Phone::from_trusted),
        phone_verified: row.get("phone_verified")?,
        disabled: row.get("disabled")?,
        metadata: serde_json::from_str(&metadata).unwrap_or_default(),
        roles,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        last_sign_in_at: row.get("last_sign_in_at")?,
        credential_epoch: row.get("credential_epoch")?,
    })
}

const SESSION_COLUMNS: &str =
    "s.id, s.tenant_id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.user_agent, s.ip";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        user_id: uuid_col(row, "user_id")?,
        created_at: row.get("created_at")?,
        last_used_at: row.get("last_used_at")?,
        expires_at: row.get("expires_at")?,
        revoked_at: row.get("revoked_at")?,
        user_agent: row.get("user_agent")?,
        ip: row.get("ip")?,
    })
}

pub(super) fn key_from_row(row: &Row<'_>) -> rusqlite::Result<SigningKeyRecord> {
    let state: String = row.get("state")?;
    Ok(SigningKeyRecord {
        kid: row.get("kid")?,
        algorithm: row.get("algorithm")?,
        private_key: row.get("private_key")?,
        public_key: row.get("public_key")?,
        state: KeyState::parse(&state).unwrap_or(KeyState::Retired),
        created_at: row.get("created_at")?,
        activated_at: row.get("activated_at")?,
        retired_at: row.get("retired_at")?,
    })
}

pub(super) fn all_keys(c: &Connection) -> StoreResult<Vec<SigningKeyRecord>> {
    let mut stmt = c.prepare("SELECT * FROM signing_keys ORDER BY created_at, kid")?;
    let keys = stmt
        .query_map([], key_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(keys)
}

pub(super) fn load_user(c: &Connection, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.tenant_id = ?1 AND u.id = ?2");
    Ok(
        c.query_row(&sql, params![tenant_id.to_string(), user_id.to_string()], user_from_row)
            .optional()?,
    )
}

pub(super) fn insert_audit(c: &Connection, e: &NewAuditEvent) -> StoreResult<()> {
    c.execute(
        "INSERT INTO audit_events (id, tenant_id, at, event, user_id, actor_id, ip, user_agent, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            Uuid::now_v7().to_string(),
            e.tenant_id.to_string(),
            e.at,
            e.event.as_str(),
            e.user_id.map(|u| u.to_string()),
            e.actor_id.map(|u| u.to_string()),
            e.ip,
            e.user_agent,
            e.detail.to_string(),
        ],
    )?;
    Ok(())
}

fn insert_session(c: &Connection, tenant_id: Uuid, user_id: Uuid, s: &NewSession) -> StoreResult<()> {
    c.execute(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at, user_agent, ip) \
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
        params![
            s.id.to_string(),
            tenant_id.to_string(),
            user_id.to_string(),
            s.now,
            s.expires_at,
            s.user_agent,
            s.ip
        ],
    )?;
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![s.refresh_hash, s.id.to_string(), tenant_id.to_string(), s.now, s.expires_at],
    )?;
    Ok(())
}

fn set_roles(
    c: &Connection,
    tenant_id: Uuid,
    user_id: Uuid,
    roles: &[crate::domain::RoleName],
    now: i64,
) -> StoreResult<()> {
    for role in roles {
        let n = c.execute(
            "INSERT OR IGNORE INTO user_roles (user_id, role_id, tenant_id, created_at) \
             SELECT ?1, id, tenant_id, ?3 FROM roles WHERE tenant_id = ?2 AND name = ?4",
            params![user_id.to_string(), tenant_id.to_string(), now, role.as_str()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

/// Moves the user's credential epoch on, ending every session that records
/// the old one (the admin site's). Call it inside the transaction of the
/// event that ends the user's sessions.
pub(super) fn bump_credential_epoch(c: &Connection, tenant_id: Uuid, user_id: Uuid) -> StoreResult<()> {
    c.execute(
        "UPDATE users SET credential_epoch = credential_epoch + 1 WHERE tenant_id = ?1 AND id = ?2",
        params![tenant_id.to_string(), user_id.to_string()],
    )?;
    Ok(())
}

fn revoke_where(
    c: &Connection,
    tenant_id: Uuid,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: i64,
) -> StoreResult<Vec<Uuid>> {
    let mut stmt = c.prepare(
        "UPDATE sessions SET revoked_at = ?3 \
         WHERE tenant_id = ?1 AND user_id = ?2 AND revoked_at IS NULL AND (?4 IS NULL OR id <> ?4) RETURNING id",
    )?;
    let ids = stmt
        .query_map(
            params![
                tenant_id.to_string(),
                user_id.to_string(),
                now,
                keep.map(|k| k.to_string())
            ],
            |r| r.get::<_, String>(0),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect())
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read_conn(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    fn pool_state(&self) -> (u32, u32) {
        let s = self.inner.readers.state();
        (s.connections, s.idle_connections)
    }

    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
        let slug = slug.to_string();
        self.read_conn(move |c| {
            Ok(c.query_row(
                "SELECT id, slug, name, created_at FROM tenants WHERE slug = ?1",
                params![slug],
                |row| {
                    let slug: String = row.get("slug")?;
                    Ok(Tenant {
                        id: uuid_col(row, "id")?,
                        slug: crate::domain::TenantSlug::parse(&slug)
                            .unwrap_or_else(|_| crate::domain::TenantSlug::default_tenant()),
                        name: row.get("name")?,
                        created_at: row.get("created_at")?,
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    async fn create_user(&self, new: NewUser, session: Option<NewSession>, audit: NewAuditEvent) -> StoreResult<User> {
        self.write_tx(move |tx| {
            tx.execute(
                "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, created_at, updated_at, last_sign_in_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9)",
                params![
                    new.id.to_string(),
                    new.tenant_id.to_string(),
                    new.email.as_ref().map(|e| e.as_str()),
                    new.email_verified,
                    new.phone.as_ref().map(|p| p.as_str()),
                    new.phone_verified,
                    new.metadata.to_string(),
                    new.now,
                    session.as_ref().map(|_| new.now),
                ],
            )?;
            if let Some(hash) = &new.password_hash {
                tx.execute(
                    "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES (?1, ?2, ?3, ?4)",
                    params![new.id.to_string(), new.tenant_id.to_string(), hash, new.now],
                )?;
            }
            set_roles(tx, new.tenant_id, new.id, &new.roles, new.now)?;
            if let Some(s) = &session {
                insert_session(tx, new.tenant_id, new.id, s)?;
            }
            insert_audit(tx, &audit)?;
            load_user(tx, new.tenant_id, new.id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>> {
        self.read_conn(move |c| load_user(c, tenant_id, user_id)).await
    }

    async fn find_for_login(
        &self,
        tenant_id: Uuid,
        identifier: &Identifier,
    ) -> StoreResult<Option<(User, Option<String>)>> {
        let column = match identifier {
            Identifier::Email(_) => "email",
            Identifier::Phone(_) => "phone",
        };
        let value = identifier.as_str().to_string();
        self.read_conn(move |c| {
            let sql = format!(
                "SELECT {USER_COLUMNS}, pc.hash FROM users u LEFT JOIN password_credentials pc ON pc.user_id = u.id \
                 WHERE u.tenant_id = ?1 AND u.{column} = ?2"
            );
            Ok(c.query_row(&sql, params![tenant_id.to_string(), value], |row| {
                Ok((user_from_row(row)?, row.get::<_, Option<String>>("hash")?))
            })
            .optional()?)
        })
        .await
    }

    async fn sign_in(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        sign_in: SignIn,
        audit: NewAuditEvent,
    ) -> StoreResult<User> {
        self.write_tx(move |tx| {
            let SignIn {
                session,
                rehash,
                verified,
            } = sign_in;
            let t = tenant_id.to_string();
            let u = user_id.to_string();
            let n = tx.execute(
                "UPDATE users SET last_sign_in_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![t, u, session.now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(hash) = &rehash {
                tx.execute(
                    "UPDATE password_credentials SET hash = ?2, updated_at = ?3 WHERE user_id = ?1",
                    params![u, hash, session.now],
                )?;
            }
            let verified_column = match verified {
                Some(IdentifierKind::Email) => Some("email_verified"),
                Some(IdentifierKind::Phone) => Some("phone_verified"),
                None => None,
            };
            if let Some(column) = verified_column {
                tx.execute(
                    &format!("UPDATE users SET {column} = 1, updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2"),
                    params![t, u, session.now],
                )?;
            }
            insert_session(tx, tenant_id, user_id, &session)?;
            insert_audit(tx, &audit)?;
            load_user(tx, tenant_id, user_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn password_hash(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<String>> {
        self.read_conn(move |c| {
            Ok(c.query_row(
                "SELECT hash FROM password_credentials WHERE tenant_id = ?1 AND user_id = ?2",
                params![tenant_id.to_string(), user_id.to_string()],
                |r| r.get(0),
            )
            .optional()?)
        })
        .await
    }

    async fn update_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        patch: UserPatch,
        audit: NewAuditEvent,
    ) -> StoreResult<User> {
        self.write_tx(move |tx| {
            let t = tenant_id.to_string();
            let u = user_id.to_string();
            if load_user(tx, tenant_id, user_id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            if let Some(email) = &patch.email {
                tx.execute(
                    "UPDATE users SET email = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![t, u, email.as_ref().map(|e| e.as_str())],
                )?;
            }
            if let Some(phone) = &patch.phone {
                tx.execute(
                    "UPDATE users SET phone = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![t, u, phone.as_ref().map(|p| p.as_str())],
                )?;
            }
            let flags = [
                ("email_verified", patch.email_verified),
                ("phone_verified", patch.phone_verified),
                ("disabled", patch.disabled),
            ];
            for (column, value) in flags {
                if let Some(v) = value {
                    tx.execute(
                        &format!("UPDATE users SET {column} = ?3 WHERE tenant_id = ?1 AND id = ?2"),
                        params![t, u, v],
                    )?;
                }
            }
            if let Some(metadata) = &patch.metadata {
                tx.execute(
                    "UPDATE users SET metadata = ?3 WHERE tenant_id = ?1 AND id = ?2",
                    params![t, u, metadata.to_string()],
                )?;
            }
            match &patch.password_hash {
                Some(Some(hash)) => {
                    tx.execute(
                        "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                        params![u, t, hash, patch.now],
                    )?;
                }
                Some(None) => {
                    tx.execute(
                        "DELETE FROM password_credentials WHERE user_id = ?1 AND tenant_id = ?2",
                        params![u, t],
                    )?;
                }
                None => {}
            }
            tx.execute(
                "UPDATE users SET updated_at = ?3 WHERE tenant_id = ?1 AND id = ?2",
                params![t, u, patch.now],
            )?;
            if patch.disabled == Some(true) {
                revoke_where(tx, tenant_id, user_id, None, patch.now)?;
            }
            if patch.disabled == Some(true) || patch.password_hash.is_some() {
                bump_credential_epoch(tx, tenant_id, user_id)?;
            }
            insert_audit(tx, &audit)?;
            load_user(tx, tenant_id, user_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>> {
        self.write_tx(move |tx| {
            let live = revoke_where(tx, tenant_id, user_id, None, audit.at)?;
            let n = tx.execute(
                "DELETE FROM users WHERE tenant_id = ?1 AND id = ?2",
                params![tenant_id.to_string(), user_id.to_string()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            // The cascade took the session rows: the tombstone is what keeps
            // the user's tokens denied after a restart (see `revoked_since`).
            tx.execute(
                "INSERT INTO deleted_users (user_id, tenant_id, deleted_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET deleted_at = excluded.deleted_at",
                params![user_id.to_string(), tenant_id.to_string(), audit.at],
            )?;
            insert_audit(tx, &audit)?;
            Ok(live)
        })
        .await
    }

    async fn access_of(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<Access>> {
        self.read_conn(move |c| {
            let exists: bool = c.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = ?1 AND id = ?2)",
                params![tenant_id.to_string(), user_id.to_string()],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(None);
            }
            let mut stmt = c.prepare(
                "SELECT r.name, r.permissions FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
                 WHERE ur.tenant_id = ?1 AND ur.user_id = ?2 ORDER BY r.name",
            )?;
            let rows = stmt
                .query_map(params![tenant_id.to_string(), user_id.to_string()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let mut access = Access::default();
            for (name, permissions) in rows {
                access.roles.push(name);
                let perms: Vec<String> = serde_json::from_str(&permissions).unwrap_or_default();
                access.permissions.extend(perms);
            }
            access.permissions.sort();
            access.permissions.dedup();
            Ok(Some(access))
        })
        .await
    }

    async fn rotate_refresh(&self, req: RotateRefresh) -> StoreResult<Rotation> {
        self.write_tx(move |tx| {
            let t = req.tenant_id.to_string();
            // The one statement that decides who wins a concurrent refresh.
            let won: Option<String> = tx
                .query_row(
                    "UPDATE refresh_tokens SET rotated_at = ?3 \
                     WHERE token_hash = ?1 AND tenant_id = ?2 AND rotated_at IS NULL AND expires_at > ?3 \
                     RETURNING session_id",
                    params![req.old_hash, t, req.now],
                    |r| r.get(0),
                )
                .optional()?;
            let live_session_sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id = ?1 AND s.tenant_id = ?2 AND s.revoked_at IS NULL AND s.expires_at > ?3 AND u.disabled = 0 \
                 AND s.created_at > ?3 - ?4"
            );
            if let Some(session_id) = won {
                let Some(session) = tx.query_row(&live_session_sql, params![session_id, t, req.now, req.session_max_age], session_from_row).optional()? else {
                    return Ok(Rotation::Invalid);
                };
                // Sliding, but never past the session's absolute end.
                let expires_at = req.new_expires_at.min(session.created_at.saturating_add(req.session_max_age));
                tx.execute(
                    "INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![req.new_hash, session_id, t, req.now, expires_at],
                )?;
                tx.execute(
                    "UPDATE sessions SET last_used_at = ?2, expires_at = ?3, ip = COALESCE(?4, ip), user_agent = COALESCE(?5, user_agent) WHERE id = ?1",
                    params![session_id, req.now, expires_at, req.ip, req.user_agent],
                )?;
                insert_audit(
                    tx,
                    &NewAuditEvent {
                        tenant_id: req.tenant_id,
                        at: req.now,
                        event: crate::domain::AuditEvent::Refresh,
                        user_id: Some(session.user_id),
                        actor_id: Some(session.user_id),
                        ip: req.ip.clone(),
                        user_agent: req.user_agent.clone(),
                        detail: serde_json::json!({ "session_id": session.id }),
                    },
                )?;
                let user = load_user(tx, req.tenant_id, session.user_id)?.ok_or(StoreError::NotFound)?;
                return Ok(Rotation::Rotated { session, user });
            }

            // Lost, or presented a token that is not live: find out which.
            let prior: Option<(String, Option<i64>)> = tx
                .query_row(
                    "SELECT session_id, rotated_at FROM refresh_tokens WHERE token_hash = ?1 AND tenant_id = ?2",
                    params![req.old_hash, t],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((session_id, Some(rotated_at))) = prior else {
                return Ok(Rotation::Invalid);
            };
            let Some(session) = tx.query_row(&live_session_sql, params![session_id, t, req.now, req.session_max_age], session_from_row).optional()? else {
                return Ok(Rotation::Invalid);
            };
            let successor_live: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = ?1 AND session_id = ?2 AND rotated_at IS NULL AND expires_at > ?3)",
                params![req.new_hash, session_id, req.now],
                |r| r.get(0),
            )?;
            if req.grace_secs > 0 && req.now - rotated_at <= req.grace_secs && successor_live {
                let user = load_user(tx, req.tenant_id, session.user_id)?.ok_or(StoreError::NotFound)?;
                return Ok(Rotation::WithinGrace { session, user });
            }
            tx.execute("UPDATE sessions SET revoked_at = ?2 WHERE id = ?1", params![session_id, req.now])?;
            insert_audit(
                tx,
                &NewAuditEvent {
                    tenant_id: req.tenant_id,
                    at: req.now,
                    event: crate::domain::AuditEvent::RefreshReuseDetected,
                    user_id: Some(session.user_id),
                    actor_id: None,
                    ip: req.ip.clone(),
                    user_agent: req.user_agent.clone(),
                    detail: serde_json::json!({ "session_id": session.id }),
                },
            )?;
            Ok(Rotation::ReuseDetected {
                session_id: session.id,
                user_id: session.user_id,
            })
        })
        .await
    }

    async fn session_by_refresh(&self, tenant_id: Uuid, token_hash: &str) -> StoreResult<Option<Session>> {
        let token_hash = token_hash.to_string();
        self.read_conn(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
                 WHERE rt.token_hash = ?1 AND rt.tenant_id = ?2"
            );
            Ok(
                c.query_row(&sql, params![token_hash, tenant_id.to_string()], session_from_row)
                    .optional()?,
            )
        })
        .await
    }

    async fn list_sessions(&self, tenant_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.read_conn(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s \
                 WHERE s.tenant_id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL AND s.expires_at > ?3 \
                 ORDER BY s.created_at DESC, s.id DESC"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(
                    params![tenant_id.to_string(), user_id.to_string(), now],
                    session_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn revoke_session(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<bool> {
        self.write_tx(move |tx| {
            let n = tx.execute(
                "UPDATE sessions SET revoked_at = ?4 WHERE tenant_id = ?1 AND user_id = ?2 AND id = ?3 AND revoked_at IS NULL",
                params![tenant_id.to_string(), user_id.to_string(), session_id.to_string(), now],
            )?;
            if n > 0
                && let Some(a) = &audit
            {
                insert_audit(tx, a)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<Vec<Uuid>> {
        self.write_tx(move |tx| {
            let ids = revoke_where(tx, tenant_id, user_id, keep, now)?;
            bump_credential_epoch(tx, tenant_id, user_id)?;
            if let Some(a) = &audit {
                insert_audit(tx, a)?;
            }
            Ok(ids)
        })
        .await
    }

    async fn revoked_since(&self, since: Timestamp) -> StoreResult<(Vec<Uuid>, Vec<Uuid>)> {
        self.read_conn(move |c| {
            let collect = |sql: &str| -> StoreResult<Vec<Uuid>> {
                let mut stmt = c.prepare(sql)?;
                let ids = stmt
                    .query_map(params![since], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect())
            };
            Ok((
                collect("SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at >= ?1")?,
                collect(
                    "SELECT id FROM users WHERE disabled = 1 AND updated_at >= ?1 \
                     UNION SELECT user_id FROM deleted_users WHERE deleted_at >= ?1",
                )?,
            ))
        })
        .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.read_conn(all_keys).await
    }

    async fn insert_signing_key_if_absent(&self, key: SigningKeyRecord) -> StoreResult<Vec<SigningKeyRecord>> {
        self.write_tx(move |tx| {
            let exists: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE state = ?1)",
                params![key.state.as_str()],
                |r| r.get(0),
            )?;
            if !exists {
                tx.execute(
                    "INSERT INTO signing_keys (kid, algorithm, private_key, public_key, state, created_at, activated_at, retired_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        key.kid,
                        key.algorithm,
                        key.private_key,
                        key.public_key,
                        key.state.as_str(),
                        key.created_at,
                        key.activated_at,
                        key.retired_at
                    ],
                )?;
            }
            all_keys(tx)
        })
        .await
    }

    async fn server_secret(&self, name: &str, candidate: Vec<u8>, now: Timestamp) -> StoreResult<Vec<u8>> {
        let name = name.to_string();
        self.write_tx(move |tx| {
            tx.execute(
                "INSERT INTO server_secrets (name, value, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![name, candidate, now],
            )?;
            Ok(tx.query_row("SELECT value FROM server_secrets WHERE name = ?1", params![name], |r| r.get(0))?)
        })
        .await
    }

    async fn record_audit(&self, event: NewAuditEvent) -> StoreResult<()> {
        self.write_tx(move |tx| insert_audit(tx, &event)).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.read_conn(|c| Ok(c.query_row("SELECT COUNT(*) FROM users", [], |r| r.get::<_, i64>(0))? as u64))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(SqliteTarget::from_url("sqlite::memory:"), Some(SqliteTarget::Memory));
        assert_eq!(
            SqliteTarget::from_url("sqlite://forge.db"),
            Some(SqliteTarget::File("forge.db".into()))
        );
        assert_eq!(
            SqliteTarget::from_url("sqlite:///var/lib/forge.db"),
            Some(SqliteTarget::File("/var/lib/forge.db".into()))
        );
        assert_eq!(SqliteTarget::from_url("postgres://x"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_databases_are_shared_by_the_pool_and_private_to_the_store() {
        let a = SqliteStore::open("sqlite::memory:", 4).unwrap();
        let b = SqliteStore::open("sqlite::memory:", 4).unwrap();
        a.server_secret("x", vec![1], 0).await.unwrap();
        // Read through the pool sees the writer's commit.
        let seen = a
            .read_conn(|c| Ok(c.query_row("SELECT COUNT(*) FROM server_secrets", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(seen, 1);
        let other = b
            .read_conn(|c| Ok(c.query_row("SELECT COUNT(*) FROM server_secrets", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(other, 0);
    }

    async fn concurrent_writes_never_fail(store: SqliteStore) {
        let mut tasks = Vec::new();
        for i in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                if i % 2 == 0 {
                    s.server_secret(&format!("k{i}"), vec![i as u8], 0).await.map(|_| ())
                } else {
                    s.count_users().await.map(|_| ())
                }
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let n = store
            .read_conn(|c| Ok(c.query_row("SELECT COUNT(*) FROM server_secrets", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(n, 100);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_store_survives_concurrent_writers() {
        concurrent_writes_never_fail(SqliteStore::open("sqlite::memory:", 8).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn file_store_survives_concurrent_writers() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, 8).unwrap();
        concurrent_writes_never_fail(store.clone()).await;
        let mode: String = store
            .read_conn(|c| Ok(c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
