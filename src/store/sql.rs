//! The driver seam: one SQL layer for SQLite and PostgreSQL.
//!
//! Every store method is written once, as a plain function over a [`Conn`]
//! (one connection, inside the unit of work the [`Driver`] opened), with its
//! SQL in one spelling both databases accept: `$N` placeholders, `TRUE` and
//! `FALSE`, `ON CONFLICT`, `RETURNING`, `CASE` rather than `GREATEST`/`MAX`,
//! `string_agg` for lists. The SQLite driver rewrites `$N` to `?N`
//! ([`to_sqlite`]): in SQLite `$N` would be a *named* parameter numbered by
//! first appearance, so `$2 ... $1` would bind backwards. The few real
//! differences are named pairs chosen with [`Conn::dialect`].
//!
//! Parameters are typed [`Value`]s, so a NULL still carries its type: the
//! PostgreSQL driver sends every statement with explicit parameter types in
//! one round trip (no prepare, execute, close), and `$1 IS NULL` needs no
//! cast. Rows come back as owned [`Row`]s read by column name; a value of the
//! wrong type or corrupt JSON is an error naming the column, never a silent
//! default (it surfaces as a logged 500).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use super::{StoreError, StoreResult};

/// Which database a [`Conn`] talks to, for the few statements that differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The type of a parameter, kept even when the value is NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bool,
    Bytes,
}

/// One typed parameter or column value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Text(String),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn kind(&self) -> Kind {
        match self {
            Value::Null(k) => *k,
            Value::Int(_) => Kind::Int,
            Value::Text(_) => Kind::Text,
            Value::Bool(_) => Kind::Bool,
            Value::Bytes(_) => Kind::Bytes,
        }
    }
}

/// A Rust value that binds as a parameter. `KIND` is what a `None` of it binds as.
pub trait Param {
    const KIND: Kind;
    fn into_value(self) -> Value;
}

macro_rules! param {
    ($t:ty, $kind:ident, |$v:ident| $e:expr) => {
        impl Param for $t {
            const KIND: Kind = Kind::$kind;
            fn into_value(self) -> Value {
                let $v = self;
                $e
            }
        }
    };
}

param!(i64, Int, |v| Value::Int(v));
param!(i32, Int, |v| Value::Int(i64::from(v)));
param!(u32, Int, |v| Value::Int(i64::from(v)));
param!(bool, Bool, |v| Value::Bool(v));
param!(String, Text, |v| Value::Text(v));
param!(&str, Text, |v| Value::Text(v.to_owned()));
param!(&String, Text, |v| Value::Text(v.clone()));
param!(Uuid, Text, |v| Value::Text(v.to_string()));
param!(&Uuid, Text, |v| Value::Text(v.to_string()));
param!(Vec<u8>, Bytes, |v| Value::Bytes(v));
param!(&[u8], Bytes, |v| Value::Bytes(v.to_vec()));
param!(&Vec<u8>, Bytes, |v| Value::Bytes(v.clone()));
param!(&serde_json::Value, Text, |v| Value::Text(v.to_string()));
param!(serde_json::Value, Text, |v| Value::Text(v.to_string()));

impl<T: Param> Param for Option<T> {
    const KIND: Kind = T::KIND;
    fn into_value(self) -> Value {
        self.map_or(Value::Null(T::KIND), Param::into_value)
    }
}

impl<'a, T> Param for &'a Option<T>
where
    &'a T: Param,
{
    const KIND: Kind = <&'a T as Param>::KIND;
    fn into_value(self) -> Value {
        self.as_ref().map_or(Value::Null(Self::KIND), Param::into_value)
    }
}

/// The parameter list of a statement: `args![tenant_id, user_id, now]`.
#[macro_export]
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        [$($crate::store::sql::Param::into_value($v)),*]
    };
}
pub use args;

/// One result row, owned, read by column name.
#[derive(Clone, Debug)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub fn new(names: Arc<[String]>, values: Vec<Value>) -> Self {
        Self { names, values }
    }

    /// The column `name`, converted; a missing column or a value of another
    /// type is an error naming the column.
    pub fn get<T: FromValue>(&self, name: &str) -> StoreResult<T> {
        let i = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| corrupt(name, "no such column"))?;
        T::from_value(&self.values[i]).map_err(|why| corrupt(name, why))
    }

    /// The column at `index` (for unnamed expressions such as `COUNT(*)`).
    pub fn at<T: FromValue>(&self, index: usize) -> StoreResult<T> {
        let value = self
            .values
            .get(index)
            .ok_or_else(|| corrupt(&index.to_string(), "no such column"))?;
        T::from_value(value).map_err(|why| corrupt(&index.to_string(), why))
    }

    /// A JSON column, parsed; corrupt JSON is an error, never a default.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> StoreResult<T> {
        let text: String = self.get(name)?;
        serde_json::from_str(&text).map_err(|e| corrupt(name, &format!("invalid JSON: {e}")))
    }
}

/// A row that does not hold what the schema promises.
pub fn corrupt(column: &str, why: &str) -> StoreError {
    let err = StoreError::Internal(anyhow::anyhow!("corrupt row: column {column}: {why}"));
    tracing::error!(column, why, "corrupt database row");
    err
}

/// A column value as a Rust type.
pub trait FromValue: Sized {
    fn from_value(v: &Value) -> Result<Self, &'static str>;
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Null(_) => Err("unexpected NULL"),
            _ => Err("not an integer"),
        }
    }
}

impl FromValue for u64 {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        u64::try_from(i64::from_value(v)?).map_err(|_| "negative count")
    }
}

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        match v {
            Value::Bool(b) => Ok(*b),
            // SQLite keeps flags as 0/1.
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Null(_) => Err("unexpected NULL"),
            _ => Err("not a flag"),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            Value::Null(_) => Err("unexpected NULL"),
            _ => Err("not text"),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Null(_) => Err("unexpected NULL"),
            _ => Err("not bytes"),
        }
    }
}

impl FromValue for Uuid {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        match v {
            Value::Text(s) => Uuid::parse_str(s).map_err(|_| "not a UUID"),
            Value::Null(_) => Err("unexpected NULL"),
            _ => Err("not a UUID"),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, &'static str> {
        match v {
            Value::Null(_) => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// One connection inside a unit of work. Object-safe, so store functions
/// take `&mut dyn Conn` and are compiled once for both backends.
pub trait Conn {
    fn dialect(&self) -> Dialect;
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Value]) -> StoreResult<u64>;
    /// Runs a query; returns every row.
    fn query(&mut self, sql: &str, params: &[Value]) -> StoreResult<Vec<Row>>;
    /// Holds `name` exclusively until the transaction ends, so a
    /// check-then-insert runs alone across instances. The SQLite writer is
    /// already alone (one connection, `BEGIN IMMEDIATE`), so only
    /// PostgreSQL takes a lock (`pg_advisory_xact_lock`).
    fn lock(&mut self, name: &str) -> StoreResult<()>;
}

impl dyn Conn + '_ {
    /// The first row, if any.
    pub fn query_opt(&mut self, sql: &str, params: &[Value]) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row; `NotFound` when there is none.
    pub fn query_one(&mut self, sql: &str, params: &[Value]) -> StoreResult<Row> {
        self.query_opt(sql, params)?.ok_or(StoreError::NotFound)
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl Fn(&Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.query(sql, params)?.iter().map(f).collect()
    }

    /// The first row, mapped.
    pub fn query_opt_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.query_opt(sql, params)?.as_ref().map(f).transpose()
    }

    /// One value of the first row (`SELECT COUNT(*)`, `SELECT EXISTS (...)`).
    pub fn query_value<T: FromValue>(&mut self, sql: &str, params: &[Value]) -> StoreResult<T> {
        self.query_one(sql, params)?.at(0)
    }

    /// The first column of every row as ids.
    pub fn query_ids(&mut self, sql: &str, params: &[Value]) -> StoreResult<Vec<Uuid>> {
        self.query_map(sql, params, |r| r.at(0))
    }

    /// `sqlite` on SQLite, `postgres` on PostgreSQL: the named pairs.
    pub fn pick(&self, sqlite: &'static str, postgres: &'static str) -> &'static str {
        match self.dialect() {
            Dialect::Sqlite => sqlite,
            Dialect::Postgres => postgres,
        }
    }
}

/// Runs `f` on a blocking thread, carrying the caller's span: the one hop a
/// unit of work takes off the async runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
        .await
        .map_err(|e| StoreError::Internal(anyhow::anyhow!("store task failed: {e}")))?
}

/// A unit of work that reads: runs once, on a blocking thread.
pub trait Read<T>: FnOnce(&mut dyn Conn) -> StoreResult<T> + Send + 'static {}
impl<T, F: FnOnce(&mut dyn Conn) -> StoreResult<T> + Send + 'static> Read<T> for F {}

/// A unit of work that writes: may run again when a transaction is retried.
pub trait Write<T>: FnMut(&mut dyn Conn) -> StoreResult<T> + Send + 'static {}
impl<T, F: FnMut(&mut dyn Conn) -> StoreResult<T> + Send + 'static> Write<T> for F {}

/// Runs units of work on a backend: each call is one blocking hop on one
/// connection, carrying the caller's tracing span.
pub trait Driver: Clone + Send + Sync + 'static {
    /// Runs `f` on a read connection, outside an explicit transaction.
    fn read<T: Send + 'static, F: Read<T>>(&self, f: F) -> impl Future<Output = StoreResult<T>> + Send;

    /// Runs `f`, a read bounded by a key (one row, or the few rows of one
    /// user or session), where it costs least. SQLite answers it on the
    /// calling thread when a pooled connection is idle: an indexed lookup in
    /// cached pages takes microseconds, less than the two thread hand-offs
    /// of a blocking hop (a third of the time of `GET /v1/users/me` in the
    /// profile). Anything that scans, sorts or pages goes through
    /// [`Driver::read`], which never holds up the async runtime.
    fn lookup<T: Send + 'static, F: Read<T>>(&self, f: F) -> impl Future<Output = StoreResult<T>> + Send {
        self.read(f)
    }

    /// Runs `f` in one write transaction and commits when it succeeds. `f`
    /// may run more than once (PostgreSQL retries a transaction that hit a
    /// deadlock or serialization failure), so it must not consume its inputs.
    fn write<T: Send + 'static, F: Write<T>>(&self, f: F) -> impl Future<Output = StoreResult<T>> + Send;

    /// Connection pool state for `/metrics`: (open, idle).
    fn connections(&self) -> (u32, u32);
}

/// Rewrites `$N` placeholders to SQLite's positional `?N`, leaving string
/// literals, quoted identifiers and comments alone.
///
/// It runs before every SQLite statement, so it stays cheap: a statement
/// without a `$` comes back as it is (no scan, no copy), and otherwise the
/// text between placeholders is copied in runs. Every character it looks for
/// is ASCII, so byte offsets always fall on character boundaries.
pub fn to_sqlite(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    // `sql[..copied]` is already in `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                // SQL escapes a quote by doubling it, which this loop
                // handles as leaving and re-entering the literal.
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                i += 1;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push_str(&sql[copied..i]);
                out.push('?');
                i += 1;
                copied = i;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_positional() {
        assert_eq!(to_sqlite("SELECT $1"), "SELECT ?1");
        assert_eq!(
            to_sqlite("a = $10 AND b = $2 AND c = $10 AND d = $1"),
            "a = ?10 AND b = ?2 AND c = ?10 AND d = ?1"
        );
        assert_eq!(to_sqlite("x IN ($3,$1)"), "x IN (?3,?1)");
    }

    #[test]
    fn quoted_text_and_comments_are_left_alone() {
        assert_eq!(to_sqlite("SELECT '$1', $1"), "SELECT '$1', ?1");
        assert_eq!(to_sqlite("SELECT 'it''s $2', $2"), "SELECT 'it''s $2', ?2");
        assert_eq!(
            to_sqlite("SELECT \"$1\" FROM t WHERE a = $1"),
            "SELECT \"$1\" FROM t WHERE a = ?1"
        );
        assert_eq!(to_sqlite("SELECT $1 -- not $2\n, $3"), "SELECT ?1 -- not $2\n, ?3");
    }

    #[test]
    fn a_statement_without_a_dollar_is_not_copied() {
        let sql = "SELECT a FROM t WHERE b = 'x' -- no parameters";
        assert!(matches!(to_sqlite(sql), Cow::Borrowed(s) if std::ptr::eq(s, sql)));
        assert!(matches!(to_sqlite("SELECT $1"), Cow::Owned(_)));
    }

    #[test]
    fn text_around_placeholders_survives_whole() {
        assert_eq!(
            to_sqlite("SELECT 'é $1', $1 -- ü $2\n, \"ß$3\", $3"),
            "SELECT 'é $1', ?1 -- ü $2\n, \"ß$3\", ?3"
        );
        assert_eq!(to_sqlite("SELECT $1, '$2"), "SELECT ?1, '$2");
        assert_eq!(to_sqlite("SELECT $1 -- $2"), "SELECT ?1 -- $2");
        assert_eq!(to_sqlite("$12$3"), "?12?3");
    }

    #[test]
    fn a_dollar_without_digits_stays() {
        assert_eq!(to_sqlite("SELECT '$' || $1, a$b"), "SELECT '$' || ?1, a$b");
    }

    #[test]
    fn none_keeps_its_type() {
        let [a, b, c] = args![None::<i64>, Some("x"), None::<Uuid>];
        assert_eq!(a, Value::Null(Kind::Int));
        assert_eq!(b, Value::Text("x".into()));
        assert_eq!(c.kind(), Kind::Text);
    }

    #[test]
    fn rows_read_by_name_and_refuse_wrong_types() {
        let row = Row::new(
            vec!["n".to_string(), "flag".to_string(), "meta".to_string()].into(),
            vec![Value::Int(1), Value::Int(1), Value::Text("{oops".into())],
        );
        assert_eq!(row.get::<i64>("n").unwrap(), 1);
        assert!(row.get::<bool>("flag").unwrap());
        assert!(row.get::<String>("n").is_err());
        assert!(row.get::<i64>("missing").is_err());
        assert!(row.json::<serde_json::Value>("meta").is_err());
    }
}
