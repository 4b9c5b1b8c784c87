//! The PostgreSQL driver of the store (feature `postgres`): the backend of
//! several forge instances behind one load balancer. It holds what is not
//! SQL: the pool, the [`sql::Conn`] / [`sql::Driver`] seam, the retry of
//! serialization failures, the migration lock and error mapping; the store
//! areas are written once over the seam (`accounts.rs`, `outbox.rs`, ...).
//!
//! Records are the same as on SQLite: ids are TEXT UUIDs, times BIGINT
//! seconds, JSON is text. Each unit of work is one `spawn_blocking` hop on
//! one pooled connection; every write is one transaction (READ COMMITTED),
//! retried whole when PostgreSQL reports a deadlock or serialization
//! failure. Cross-instance races are decided by the database, not by a
//! process-local lock as on SQLite: single conditional statements,
//! transaction-scoped advisory locks ([`sql::Conn::lock`]) where a
//! check-then-insert must be exclusive, a session advisory lock around
//! migrations (instances starting together), and `FOR UPDATE SKIP LOCKED`
//! for the outbox claim. Every statement is sent with typed parameters: one
//! round trip instead of a prepare, an execute and a close, which matters
//! for the reads a request makes when its copies are stale (tenant by
//! slug, a user's access; see `cache::epoch`).
//!
//! The sync `postgres` client owns a small tokio runtime and panics when it
//! is built, used or dropped on an async worker thread. So the pool is built
//! on a blocking thread (`open` runs inside `spawn_blocking`), connections are
//! only checked out inside `spawn_blocking`, and the pool itself is dropped
//! on a thread of its own ([`Inner`]'s `Drop`).
//!
//! Driver errors map to [`StoreError`]: a violated constraint is
//! `Conflict{field}` named after the constraint (`users_tenant_email` is
//! `email`, ...), a server that cannot be reached or is shutting down is
//! `Unavailable` (503), anything else `Internal`.

use std::sync::Arc;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::Type;
use ::postgres::{Client, GenericClient, NoTls, Row, Transaction};
use anyhow::Context;
use r2d2_postgres::PostgresConnectionManager;

use super::*;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

type Manager = PostgresConnectionManager<NoTls>;
pub(super) type Pool = r2d2::Pool<Manager>;

/// How long a request waits for a connection before answering 503; also the
/// TCP connect timeout when the URL sets none. Short, so `/health/ready`
/// reports an outage while a load balancer still listens.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts of a write transaction that hit a deadlock or serialization failure.
const WRITE_ATTEMPTS: usize = 3;

/// Why [`PgStore::open`] failed: a server that did not answer is worth
/// waiting for at start-up; anything else (bad credentials are reported by
/// the server, a failed migration) is not.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot reach PostgreSQL at {target}: {cause}")]
    Unreachable { target: String, cause: String },
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

struct Inner {
    /// `Some` until dropped; see the `Drop` impl.
    pool: Option<Pool>,
    last_error: LastError,
}

impl Inner {
    /// A checkout that timed out, with the reason the pool last saw.
    fn unavailable(&self, e: r2d2::Error) -> StoreError {
        match self.last_error.take() {
            Some(cause) => StoreError::Unavailable(format!("no database connection: {cause}")),
            None => StoreError::Unavailable(one_line(e)),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            // The clients in the pool own runtimes that must not be dropped
            // on an async worker; a plain thread is always safe.
            let closer = std::thread::Builder::new()
                .name("forge-pg-close".into())
                .spawn(move || drop(pool));
            if let Err(e) = closer {
                tracing::warn!(error = %e, "cannot spawn a thread to close the database pool; leaking it");
            }
        }
    }
}

#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

/// The parsed URL with forge's defaults (connect timeout, application name).
fn client_config(url: &str) -> anyhow::Result<::postgres::Config> {
    let mut config: ::postgres::Config = url
        .parse()
        .map_err(|e| anyhow::anyhow!("database.url is not a valid postgres:// URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CHECKOUT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("forge");
    }
    Ok(config)
}

/// `host:port/db` for messages; never the user or password.
fn describe(config: &::postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            ::postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            ::postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default database)");
    format!("{host}:{port}/{db}")
}

/// A one-line cause, whatever the driver put in its message.
fn one_line(s: impl std::fmt::Display) -> String {
    s.to_string().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// An error and its sources in one line: the driver's own message is often
/// just "error connecting to server", the reason is in the source.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = one_line(err);
    let mut source = err.source();
    while let Some(s) = source {
        let text = one_line(s);
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Receives the pool's connection failures: keeps the last one (with its
/// cause) for the messages forge gives, and logs at debug only, so an
/// outage does not flood the log with one line per reconnect attempt (the
/// requests that fail say so themselves).
#[derive(Clone, Debug, Default)]
struct LastError(Arc<std::sync::Mutex<Option<String>>>);

impl LastError {
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl r2d2::HandleError<::postgres::Error> for LastError {
    fn handle_error(&self, error: ::postgres::Error) {
        let message = chain(&error);
        tracing::debug!(error = %message, "database connection failed");
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }
}

impl PgStore {
    /// Connects, applies pending migrations and returns the store. Must run
    /// on a blocking thread (inside `spawn_blocking`), never on an async worker.
    pub fn open(url: &str, pool_size: u32) -> Result<Self, OpenError> {
        let config = client_config(url)?;
        let target = describe(&config);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let last_error = LastError::default();
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(CHECKOUT_TIMEOUT)
            .error_handler(Box::new(last_error.clone()))
            .build(manager)
            .map_err(|e| OpenError::Unreachable {
                target: target.clone(),
                cause: last_error.take().unwrap_or_else(|| one_line(e)),
            })?;
        let store = Self {
            inner: Arc::new(Inner {
                pool: Some(pool),
                last_error,
            }),
        };
        store.run_migrations().map_err(OpenError::Failed)?;
        Ok(store)
    }

    /// Applies pending migrations and reports how many ran (`forge migrate`).
    /// Blocking, like [`PgStore::open`].
    pub fn migrate(url: &str) -> anyhow::Result<usize> {
        let config = client_config(url)?;
        let target = describe(&config);
        let mut client = config
            .connect(NoTls)
            .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL at {target}: {}", chain(&e)))?;
        let applied = migrate_locked(&mut client)?;
        // `client` owns a runtime; dropping it here is fine: this is not an async worker.
        drop(client);
        Ok(applied)
    }

    fn run_migrations(&self) -> anyhow::Result<usize> {
        let mut conn = self
            .pool()
            .get()
            .context("cannot get a connection to apply migrations")?;
        migrate_locked(&mut conn)
    }

    fn pool(&self) -> &Pool {
        // Only `Drop` takes the pool out, and nothing runs on a store being dropped.
        #[allow(clippy::expect_used)]
        self.inner.pool.as_ref().expect("the pool lives as long as the store")
    }

    /// Runs `f` on a pooled connection in one blocking hop, outside any
    /// explicit transaction (single statements, or reads that tolerate
    /// READ COMMITTED between statements).
    pub(super) async fn read_client<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Client) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        sql::blocking(move || {
            let pool = inner.pool.as_ref().ok_or_else(closed)?;
            let mut conn = pool.get().map_err(|e| inner.unavailable(e))?;
            f(&mut conn)
        })
        .await
    }

    /// Runs `f` in one transaction on one pooled connection, in one blocking
    /// hop; commits when `f` succeeds. A deadlock or serialization failure
    /// rolls back and runs `f` again (up to [`WRITE_ATTEMPTS`] times).
    pub(super) async fn write_tx<T, F>(&self, mut f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnMut(&mut Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        sql::blocking(move || {
            let pool = inner.pool.as_ref().ok_or_else(closed)?;
            let mut conn = pool.get().map_err(|e| inner.unavailable(e))?;
            let mut attempt = 1;
            loop {
                let result = (|| {
                    let mut tx = conn.transaction().map_err(StoreError::from)?;
                    let out = f(&mut tx)?;
                    tx.commit().map_err(StoreError::from)?;
                    Ok(out)
                })();
                match result {
                    Err(e) if is_transient_conflict(&e) && attempt < WRITE_ATTEMPTS => {
                        tracing::debug!(attempt, error = %e, "transaction conflict; retrying");
                        attempt += 1;
                    }
                    Err(e) if is_transient_conflict(&e) => return Err(StoreError::Unavailable(one_line(&e))),
                    other => return other,
                }
            }
        })
        .await
    }
}

// ---- the driver seam (see `sql.rs`) ----

impl ::postgres::types::ToSql for sql::Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut ::postgres::types::private::BytesMut,
    ) -> Result<::postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            sql::Value::Null(_) => Ok(::postgres::types::IsNull::Yes),
            sql::Value::Int(i) => match *ty {
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                _ => i.to_sql(ty, out),
            },
            sql::Value::Bool(b) => b.to_sql(ty, out),
            sql::Value::Text(s) => s.to_sql(ty, out),
            sql::Value::Bytes(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // The type sent is the parameter's own ([`pg_type`]), so it always matches.
        true
    }

    ::postgres::types::to_sql_checked!();
}

/// The type a parameter is sent with: the statement needs no prepare round
/// trip, and a NULL is typed too.
fn pg_type(v: &sql::Value) -> Type {
    match v.kind() {
        sql::Kind::Int => Type::INT8,
        sql::Kind::Text => Type::TEXT,
        sql::Kind::Bool => Type::BOOL,
        sql::Kind::Bytes => Type::BYTEA,
    }
}

fn pg_row(row: &Row, names: &Arc<[String]>) -> StoreResult<sql::Row> {
    let values = row
        .columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let name = col.name();
            let v = match *col.type_() {
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(sql::Value::Int),
                Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(|v| sql::Value::Int(v.into())),
                Type::INT2 => row.try_get::<_, Option<i16>>(i)?.map(|v| sql::Value::Int(v.into())),
                Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(sql::Value::Bool),
                Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(sql::Value::Bytes),
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => {
                    row.try_get::<_, Option<String>>(i)?.map(sql::Value::Text)
                }
                ref other => return Err(sql::corrupt(name, &format!("unsupported type {other}"))),
            };
            Ok(v.unwrap_or(sql::Value::Null(sql::Kind::Text)))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(sql::Row::new(names.clone(), values))
}

/// A pooled client or an open transaction as a [`sql::Conn`].
struct PgConn<'a, C: GenericClient>(&'a mut C);

impl<C: GenericClient> sql::Conn for PgConn<'_, C> {
    fn dialect(&self) -> sql::Dialect {
        sql::Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[sql::Value]) -> StoreResult<u64> {
        let typed: Vec<(&(dyn ::postgres::types::ToSql + Sync), Type)> =
            params.iter().map(|p| (p as _, pg_type(p))).collect();
        Ok(self.0.execute_typed(sql, &typed)?)
    }

    fn query(&mut self, sql: &str, params: &[sql::Value]) -> StoreResult<Vec<sql::Row>> {
        let typed: Vec<(&(dyn ::postgres::types::ToSql + Sync), Type)> =
            params.iter().map(|p| (p as _, pg_type(p))).collect();
        let rows = self.0.query_typed(sql, &typed)?;
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let names: Arc<[String]> = first.columns().iter().map(|c| c.name().to_string()).collect();
        rows.iter().map(|r| pg_row(r, &names)).collect()
    }

    fn lock(&mut self, name: &str) -> StoreResult<()> {
        let name = sql::Value::Text(format!("forge:{name}:"));
        self.0.execute_typed(
            "SELECT pg_advisory_xact_lock(hashtext($1 || current_schema()))",
            &[(&name, Type::TEXT)],
        )?;
        Ok(())
    }
}

impl sql::Driver for PgStore {
    async fn read<T: Send + 'static, F: sql::Read<T>>(&self, f: F) -> StoreResult<T> {
        self.read_client(move |c| f(&mut PgConn(c))).await
    }

    async fn write<T: Send + 'static, F: sql::Write<T>>(&self, mut f: F) -> StoreResult<T> {
        self.write_tx(move |tx| f(&mut PgConn(tx))).await
    }

    fn connections(&self) -> (u32, u32) {
        self.inner.pool.as_ref().map_or((0, 0), |pool| {
            let s = pool.state();
            (s.connections, s.idle_connections)
        })
    }
}

/// A deadlock or serialization failure: the transaction may succeed if run again.
fn is_transient_conflict(err: &StoreError) -> bool {
    let StoreError::Internal(e) = err else {
        return false;
    };
    e.downcast_ref::<::postgres::Error>()
        .and_then(::postgres::Error::code)
        .is_some_and(|c| *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// Applies migrations under a session advisory lock scoped to the schema, so
/// instances starting together migrate one after the other instead of racing
/// to create the same tables.
fn migrate_locked(client: &mut Client) -> anyhow::Result<usize> {
    const LOCK: &str = "SELECT pg_advisory_lock(hashtext('forge:migrate:' || current_schema()))";
    const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('forge:migrate:' || current_schema()))";
    let schema: Option<String> = client
        .query_one("SELECT current_schema()", &[])
        .and_then(|r| r.try_get(0))
        .context("cannot read the current schema")?;
    if schema.is_none() {
        anyhow::bail!(
            "the database has no schema to migrate into: the search_path names none that exists \
             (create it, or fix options=-csearch_path in database.url)"
        );
    }
    client.batch_execute(LOCK).context("cannot take the migration lock")?;
    let report = embedded::migrations::runner().run(client);
    let _ = client.batch_execute(UNLOCK);
    let report = report.context("cannot apply database migrations")?;
    Ok(report.applied_migrations().len())
}

/// Which column a violated constraint guards, as users know it.
fn conflict_field(constraint: Option<&str>) -> &'static str {
    match constraint.unwrap_or_default() {
        "users_tenant_email" => "email",
        "users_tenant_phone" => "phone",
        "tenants_slug_key" => "slug",
        "roles_tenant_name_key" => "name",
        "factors_credential" => "credential_id",
        "oauth_clients_client_id_key" => "client_id",
        "identity_providers_pkey" => "id",
        "user_identities_subject" => "subject",
        _ => "record",
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(err: ::postgres::Error) -> Self {
        if let Some(db) = err.as_db_error() {
            let code = db.code();
            if code.code().starts_with("23") {
                // Integrity constraint violation (unique, foreign key, check, not null).
                return StoreError::Conflict {
                    field: conflict_field(db.constraint()),
                };
            }
            // Connection exceptions, shutdown, too many connections, read-only standby.
            let unavailable = code.code().starts_with("08")
                || code.code().starts_with("57P")
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION;
            if unavailable {
                return StoreError::Unavailable(one_line(db.message()));
            }
            return StoreError::Internal(err.into());
        }
        if err.is_closed() || std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>()) {
            return StoreError::Unavailable(chain(&err));
        }
        StoreError::Internal(err.into())
    }
}
