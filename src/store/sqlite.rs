//! The SQLite driver of the store, the default backend: opening and
//! migrating the database, the writer discipline, error mapping, and the
//! [`sql::Conn`] / [`sql::Driver`] seam every store area is written over
//! once (`accounts.rs`, `outbox.rs`, ...). Only SQLite's own needs live
//! here as inherent methods.
//!
//! Writer discipline: every write goes through one writer connection on its
//! own thread, which commits the writes waiting for it together in one
//! `BEGIN IMMEDIATE` transaction, each in its own savepoint (group commit,
//! see `group_commit`), while reads use an r2d2 pool. With WAL, readers never
//! block the writer and writers never meet each other, so concurrent requests
//! never see `database is locked`.
//!
//! `sqlite::memory:` opens a uniquely named database on SQLite's `memdb` VFS,
//! which every connection of this process can open by name: the pool and the
//! writer share one in-memory database. (Shared-cache mode would answer
//! `SQLITE_LOCKED`, which the busy timeout does not retry.) Two stores in one
//! process get two names and never see each other.
//!
//! A read runs in one `spawn_blocking` hop, a write as one job of the writer
//! thread; both carry the caller's span. A keyed lookup runs on the caller's
//! thread when a pooled connection is idle (see [`sql::Driver::lookup`]).

mod checkpoint;
mod group_commit;
mod schema;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use uuid::Uuid;

use super::*;

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
    writer: group_commit::Writer,
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
    // Every store area's statements stay prepared (rusqlite keeps 16).
    conn.set_prepared_statement_cache_capacity(128);
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
        // Each job of a group commit runs in a savepoint, whose undo pages
        // (the sub-journal) spilled to a temporary file past 64 KiB: a
        // third of the writer's time under concurrent refreshes went to
        // those file writes. In memory they are a batch's touched pages at
        // most (64 jobs), freed at its commit.
        writer
            .pragma_update(None, "temp_store", "MEMORY")
            .context("cannot configure database")?;
        schema::migrate(&mut writer)?;
        let checkpoints = if wal {
            // See `checkpoint`: the writer never checkpoints itself.
            writer
                .pragma_update(None, "wal_autocheckpoint", 0)
                .context("cannot configure database")?;
            let conn = Connection::open_with_flags(&path, flags)
                .with_context(|| format!("cannot open database {}", display_target(&target)))?;
            configure(&conn, false).context("cannot configure database")?;
            Some(checkpoint::start(conn).context("cannot start the checkpoint thread")?)
        } else {
            None
        };

        let manager = SqliteConnectionManager::file(&path)
            .with_flags(flags)
            .with_init(move |c| configure(c, false));
        let readers = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            // A local file cannot go stale the way a network connection can;
            // the check would cost a statement per read.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .context("cannot open database read pool")?;
        Ok(Self {
            inner: Arc::new(Inner {
                writer: group_commit::Writer::start(writer, checkpoints).context("cannot start the database writer")?,
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
        schema::migrate(&mut conn)
    }

    /// This binary's migrations (`version`, `name`), for `forge restore`
    /// and `forge doctor` to compare a database's history with.
    pub fn known_migrations() -> Vec<(i64, String)> {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| (i64::from(m.version()), m.name().to_owned()))
            .collect()
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
        sql::blocking(move || {
            let conn = inner
                .readers
                .get()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            f(&conn)
        })
        .await
    }

    pub(super) async fn write_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.inner.writer.write(f).await
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
    async fn read<T: Send + 'static, F: sql::Read<T>>(&self, f: F) -> StoreResult<T> {
        self.read_conn(move |c| f(&mut SqliteConn(c))).await
    }

    async fn lookup<T: Send + 'static, F: sql::Read<T>>(&self, f: F) -> StoreResult<T> {
        // Never waits for a connection here: with none idle, the blocking
        // hop waits instead.
        match self.inner.readers.try_get() {
            Some(conn) => f(&mut SqliteConn(&conn)),
            None => self.read(f).await,
        }
    }

    async fn write<T: Send + 'static, F: sql::Write<T>>(&self, mut f: F) -> StoreResult<T> {
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
                    let field = if msg.contains("user_identities.subject") {
                        "subject"
                    } else if msg.contains("identity_providers.id") {
                        "id"
                    } else if msg.contains("credential_id") {
                        "credential_id"
                    } else if msg.contains("client_id") {
                        "client_id"
                    } else if msg.contains("email") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Driver;

    /// `.cargo/config.toml` builds the bundled SQLite without memory
    /// statistics and without the global page-cache mutex (each a lock on
    /// every allocation or page fetch of the writer); a build that lost
    /// those flags fails here.
    #[test]
    fn sqlite_is_built_with_forges_options() {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
    }

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

    /// On a current-thread runtime the test's thread is the only one that
    /// runs async code: a lookup answered there ran inline; one answered on
    /// another thread went through the blocking pool.
    #[tokio::test]
    async fn a_lookup_runs_inline_on_an_idle_connection_and_waits_for_a_busy_pool() {
        let store = SqliteStore::open("sqlite::memory:", 1).unwrap();
        store.server_secret("x", vec![1], 0).await.unwrap();
        let runtime_thread = std::thread::current().id();
        let count = |s: SqliteStore| async move {
            s.lookup(|c| {
                let n = c.query_value::<i64>("SELECT COUNT(*) FROM server_secrets", &[])?;
                Ok((n, std::thread::current().id()))
            })
            .await
            .unwrap()
        };
        assert_eq!(count(store.clone()).await, (1, runtime_thread), "inline");
        // The only pooled connection is taken: the lookup neither fails nor
        // blocks the runtime; it waits in the blocking pool until it is back.
        let held = store.inner.readers.get().unwrap();
        let waiting = tokio::spawn(count(store.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(held);
        let (n, thread) = waiting.await.unwrap();
        assert_eq!(n, 1);
        assert_ne!(thread, runtime_thread, "in the blocking pool");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_databases_are_shared_by_the_pool_and_private_to_the_store() {
        let a = SqliteStore::open("sqlite::memory:", 4).unwrap();
        let b = SqliteStore::open("sqlite::memory:", 4).unwrap();
        a.server_secret("x", vec![1], 0).await.unwrap();
        // Read through the pool sees the writer's commit.
        let seen = a
            .read(|c| c.query_value::<i64>("SELECT COUNT(*) FROM server_secrets", &[]))
            .await
            .unwrap();
        assert_eq!(seen, 1);
        let other = b
            .read(|c| c.query_value::<i64>("SELECT COUNT(*) FROM server_secrets", &[]))
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
            .read(|c| c.query_value::<i64>("SELECT COUNT(*) FROM server_secrets", &[]))
            .await
            .unwrap();
        assert_eq!(n, 100);
    }

    /// Jobs that share a commit stay atomic one by one: a job that fails
    /// after its insert, or panics, leaves nothing behind, and the jobs
    /// batched with it commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_or_panicking_write_costs_only_itself() {
        let store = SqliteStore::open("sqlite::memory:", 4).unwrap();
        let mut tasks = Vec::new();
        for i in 0..120u8 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.write(move |c| {
                    c.execute(
                        "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, 0)",
                        &crate::args![&format!("k{i}"), &vec![i]],
                    )?;
                    match i % 3 {
                        0 => Ok(()),
                        1 => Err(StoreError::NotFound),
                        _ => panic!("a write that panics"),
                    }
                })
                .await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let outcome = t.await.unwrap();
            assert_eq!(outcome.is_ok(), i % 3 == 0, "job {i}: {outcome:?}");
        }
        let names: Vec<String> = store
            .read(|c| c.query_map("SELECT name FROM server_secrets ORDER BY name", &[], |r| r.at(0)))
            .await
            .unwrap();
        let mut expected: Vec<String> = (0..120).filter(|i| i % 3 == 0).map(|i| format!("k{i}")).collect();
        expected.sort();
        assert_eq!(names, expected);
        // The writer goes on after all that.
        store.server_secret("after", vec![1], 0).await.unwrap();
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
        let mode: String = store.read(|c| c.query_value("PRAGMA journal_mode", &[])).await.unwrap();
        assert_eq!(mode, "wal");
    }
}
