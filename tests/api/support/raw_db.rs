//! Raw SQL against a test server's own database, for rows the API refuses
//! to create (an email with `<script>` in it, 100,000 users at once).
//!
//! The statement is written once, with `$1`, `$2`, ... placeholders: the
//! PostgreSQL spelling, rewritten to SQLite's `?1`, `?2`, ... for a SQLite
//! file. So a test that needs such rows runs on both backends (with
//! `--features postgres` and `FORGE_TEST_DATABASE_URL`, the server's URL
//! names its own schema in `search_path`, and so does this connection).

use std::time::Duration;

use forge::testing::TestServer;

/// A value bound to a placeholder: the columns the tests write directly
/// are text and integers on both backends.
#[derive(Clone, Debug)]
pub enum Param {
    Text(String),
    Int(i64),
}

impl From<&str> for Param {
    fn from(v: &str) -> Self {
        Param::Text(v.to_string())
    }
}

impl From<String> for Param {
    fn from(v: String) -> Self {
        Param::Text(v)
    }
}

impl From<uuid::Uuid> for Param {
    fn from(v: uuid::Uuid) -> Self {
        Param::Text(v.to_string())
    }
}

impl From<i64> for Param {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

/// The database a [`TestServer`] runs on, reached past the server.
pub struct RawDb {
    url: String,
}

impl RawDb {
    /// The database of `s`: a SQLite file (not `:memory:`, which only the
    /// server's process-private connection sees) or PostgreSQL.
    pub fn of(s: &TestServer) -> Self {
        let url = s.state().config.database.url.clone();
        assert!(
            !url.starts_with("sqlite:") || sqlite_path(&url).is_some(),
            "raw SQL needs the server on a SQLite file, not {url}"
        );
        Self { url }
    }

    /// `sqlite` or `postgres`, for what a test prints.
    pub fn backend(&self) -> &'static str {
        if self.url.starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        }
    }

    /// Runs `sql` once per row of `rows`, all in one transaction.
    pub async fn execute_many(&self, sql: &str, rows: Vec<Vec<Param>>) {
        let url = self.url.clone();
        let sql = sql.to_string();
        tokio::task::spawn_blocking(move || execute_blocking(&url, &sql, rows))
            .await
            .expect("raw SQL task");
    }

    pub async fn execute(&self, sql: &str, params: Vec<Param>) {
        self.execute_many(sql, vec![params]).await;
    }
}

fn sqlite_path(url: &str) -> Option<&str> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

fn execute_blocking(url: &str, sql: &str, rows: Vec<Vec<Param>>) {
    if let Some(path) = sqlite_path(url) {
        return sqlite(path, sql, rows);
    }
    #[cfg(feature = "postgres")]
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return postgres(url, sql, rows);
    }
    panic!("raw SQL on an unknown database: {url}");
}

fn sqlite(path: &str, sql: &str, rows: Vec<Vec<Param>>) {
    use rusqlite::types::Value;
    let mut db = rusqlite::Connection::open(path).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let tx = db.transaction().unwrap();
    {
        let mut stmt = tx.prepare(&forge::store::sql::to_sqlite(sql)).unwrap();
        for row in rows {
            let values = row.into_iter().map(|p| match p {
                Param::Text(t) => Value::Text(t),
                Param::Int(i) => Value::Integer(i),
            });
            stmt.execute(rusqlite::params_from_iter(values))
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    tx.commit().unwrap();
}

#[cfg(feature = "postgres")]
fn postgres(url: &str, sql: &str, rows: Vec<Vec<Param>>) {
    use postgres::types::ToSql;
    let mut config: postgres::Config = url.parse().unwrap();
    config.connect_timeout(Duration::from_secs(5));
    let mut client = config.connect(postgres::NoTls).unwrap();
    let mut tx = client.transaction().unwrap();
    let stmt = tx.prepare(sql).unwrap();
    for row in rows {
        let values: Vec<Box<dyn ToSql + Sync>> = row
            .into_iter()
            .map(|p| -> Box<dyn ToSql + Sync> {
                match p {
                    Param::Text(t) => Box::new(t),
                    Param::Int(i) => Box::new(i),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|b| b.as_ref()).collect();
        tx.execute(&stmt, &refs).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    tx.commit().unwrap();
}
